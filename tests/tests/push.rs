//! Push for offline devices (issue 21, item 4), with real processes and a
//! local HTTP server as the push endpoint: a registered device that is
//! offline gets exactly one content-free POST when mail arrives for it,
//! none while it is connected, and a new token after it registers again.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hush_node::MAILBOX_PROTOCOL;
use hush_protocol::{
    ContactCard, DepositItem, DepositResult, MailboxId, MailboxRequest, MailboxResponse,
    SealedEnvelope, Wire,
};
use hush_tests::raw::{ask, client};
use hush_tests::{RelayProc, User, introduce, wait_for};
use libp2p::Multiaddr;
use serde_json::Value;

/// One POST the endpoint received: its request line and its body.
#[derive(Debug, Clone)]
struct Post {
    line: String,
    headers: String,
    body: String,
}

/// A webhook on loopback that answers 204 and keeps what it was sent.
struct Endpoint {
    port: u16,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Endpoint {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the endpoint");
        let port = listener.local_addr().expect("its address").port();
        let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
        let kept = posts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                if let Some(post) = read_post(&mut conn) {
                    kept.lock().expect("posts").push(post);
                }
                let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            }
        });
        Self { port, posts }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("posts").clone()
    }
}

fn read_post(conn: &mut std::net::TcpStream) -> Option<Post> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = String::new();
    let mut len = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header.trim().is_empty() {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        headers.push_str(&header);
    }
    let mut body = vec![0u8; len.min(64 * 1024)];
    reader.read_exact(&mut body).ok()?;
    Some(Post {
        line: line.trim_end().to_owned(),
        headers,
        body: String::from_utf8(body).ok()?,
    })
}

/// The token of a wake-up, after checking it carries nothing else.
fn token_of(post: &Post) -> String {
    assert_eq!(post.line, "POST /wake/bob-4f2a HTTP/1.1", "{post:?}");
    let body: Value = serde_json::from_str(&post.body).expect("a JSON body");
    let fields: Vec<&String> = body.as_object().expect("an object").keys().collect();
    assert_eq!(fields, ["token", "type"], "only a type and a token: {body}");
    assert_eq!(body["type"], "hush.wake");
    let token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 32, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    token
}

fn relay_push_state(user: &User) -> Option<String> {
    let status = user.json(&["push", "status", "--json"]);
    status["relays"][0]["push"].as_str().map(str::to_owned)
}

fn wait_registered(user: &User) {
    wait_for(
        "the push registration at the relay",
        Duration::from_secs(20),
        || (relay_push_state(user).as_deref() == Some("registered")).then_some(()),
    );
}

/// Leaves one sealed junk envelope in bob's own mailbox, as a stranger
/// would (bob cannot open it: it is only something arriving for him).
async fn stranger_deposit(relay: &RelayProc, bob: &User, n: u32) {
    let card: ContactCard = bob.card().parse().expect("card");
    let device = card.device_list.devices[0];
    let mailbox = MailboxId::of(&device.device_id);
    let sealed =
        SealedEnvelope::seal(&device.mailbox_key, &mailbox, &n.to_be_bytes()).expect("seal");
    let request = MailboxRequest::Deposit {
        right: None,
        items: vec![DepositItem::new(mailbox, sealed)],
    };
    let addr: Multiaddr = relay.address.parse().expect("relay address");
    let peer = hush_node::peer_in(&addr).expect("relay peer id");
    let answer = ask(
        &mut client(MAILBOX_PROTOCOL),
        peer,
        &addr,
        request.to_bytes(),
    )
    .await
    .expect("the relay answers");
    assert_eq!(
        MailboxResponse::from_bytes(&answer).expect("an answer"),
        MailboxResponse::Deposited {
            results: vec![DepositResult::Stored]
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_device_gets_one_content_free_wake_up_and_none_while_connected() {
    // Loopback endpoints are private: this relay serves a test LAN.
    let relay = RelayProc::start(
        "[push]\nallow_http = true\nallow_private = true\nmin_interval_secs = 3600\n",
    );
    let endpoint = Endpoint::start();
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    bob.start_with(&["--relay", &relay.address]);
    alice.start();
    introduce(&alice, &bob);
    let set = bob.json(&["push", "set", &endpoint.url("/wake/bob-4f2a"), "--json"]);
    assert_eq!(set["push"], "127.0.0.1", "{set}");
    wait_registered(&bob);
    assert_eq!(relay.metric("hush_relay_push_devices"), Some(1.0));
    bob.send_delivered("alice", "hello before I go");
    assert!(endpoint.posts().is_empty(), "woken while online");
    // The relay learns which pairwise mailboxes are bob's (alice's mail
    // lands in one) only from his fetches (relay/engine/push.rs): let him
    // make one (every 0.5–1.5 s) with alice in it before he goes. When
    // everything above took 0.2 s, he stopped first and was not woken.
    std::thread::sleep(Duration::from_secs(3));

    // Offline: three messages, one wake-up.
    bob.stop();
    for text in ["one", "two", "three"] {
        alice.send_sent("bob", text);
    }
    relay.wait_stored(3);
    let first = wait_for("a wake-up", Duration::from_secs(20), || {
        endpoint.posts().first().cloned()
    });
    let token = token_of(&first);
    for secret in ["one", "two", "three", "alice", "bob"] {
        let seen = format!("{} {}", first.headers, first.body);
        assert!(!seen.contains(secret), "{secret:?} in the wake-up: {seen}");
    }
    // Time for a second POST to show up, were one coming.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(endpoint.posts().len(), 1, "{:?}", endpoint.posts());

    // Back online: it reads its mail; what arrives now wakes nobody.
    bob.start();
    wait_for("bob's three messages", Duration::from_secs(40), || {
        (bob.history("alice").len() >= 4).then_some(())
    });
    relay.wait_stored(0);
    // A new registration: a new token, and a new interval.
    bob.run(&["push", "set", &endpoint.url("/wake/bob-4f2a")]);
    wait_registered(&bob);
    stranger_deposit(&relay, &bob, 1).await;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(endpoint.posts().len(), 1, "woken while connected");

    // Offline again: one wake-up, with the new token.
    bob.stop();
    stranger_deposit(&relay, &bob, 2).await;
    let second = wait_for("the second wake-up", Duration::from_secs(20), || {
        endpoint.posts().get(1).cloned()
    });
    assert_ne!(
        token_of(&second),
        token,
        "the token changes on re-registration"
    );
    assert_eq!(relay.metric("hush_relay_pushes_sent_total"), Some(2.0));

    // Off: the relay forgets the endpoint.
    bob.start();
    let off = bob.json(&["push", "off", "--json"]);
    assert_eq!(off["push"], Value::Null, "{off}");
    wait_for("the relay to forget", Duration::from_secs(20), || {
        (relay.metric("hush_relay_push_devices") == Some(0.0)).then_some(())
    });
}

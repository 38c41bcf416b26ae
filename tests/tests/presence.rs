//! Presence with real relay and node processes: online, offline on a
//! graceful stop, offline after a crash, no flapping across a short
//! disconnect, last seen, sharing switched off, DHT lookups.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hush_tests::{RelayProc, User, hush_bin, introduce, wait_for};
use serde_json::Value;

/// `hush events --json` of one user, written to a file as it runs.
struct EventTap {
    child: Child,
    path: PathBuf,
}

impl EventTap {
    fn start(user: &User) -> Self {
        let path = user.home.join(format!("events-{}.jsonl", rand_suffix()));
        let out = std::fs::File::create(&path).expect("events file");
        let child = Command::new(hush_bin())
            .arg("--home")
            .arg(&user.home)
            .args(["events", "--json"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hush events");
        // The subscription is live once the client connected; give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        Self { child, path }
    }

    /// Presence events about `contact`, oldest first: (state, last_seen).
    fn presence(&self, contact: &str) -> Vec<(String, Option<String>)> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["type"] == "presence" && e["contact"] == contact)
            .map(|e| {
                (
                    e["state"].as_str().unwrap_or_default().to_owned(),
                    e["last_seen"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }
}

impl Drop for EventTap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn presence(user: &User, of: &str) -> Value {
    user.json(&["presence", of, "--json"])
}

fn wait_state(user: &User, of: &str, state: &str, timeout: Duration) -> Value {
    wait_for(
        &format!("{} to see {of} {state}", user.name),
        timeout,
        || {
            let view = presence(user, of);
            (view["state"] == state).then_some(view)
        },
    )
}

/// Node arguments: a home relay, presence timing, no mDNS (the tests
/// check the relay and direct paths).
fn args<'a>(relay: &'a RelayProc, ttl: &'a str, grace: &'a str) -> Vec<&'a str> {
    vec![
        "--relay",
        relay.address.as_str(),
        "--presence-ttl",
        ttl,
        "--presence-grace",
        grace,
        "--no-mdns",
    ]
}

#[test]
fn online_graceful_stop_and_last_seen() {
    let relay = RelayProc::start("");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    // Long TTL and grace: within this test, only bob's goodbye can make
    // him offline.
    alice.start_with(&args(&relay, "600", "300"));
    bob.start_with(&args(&relay, "600", "300"));
    introduce(&alice, &bob);
    let view = wait_state(&alice, "bob", "online", Duration::from_secs(20));
    assert_eq!(view["devices_online"], 1, "{view}");
    wait_state(&bob, "alice", "online", Duration::from_secs(20));

    let tap = EventTap::start(&alice);
    let stopped_at = hush_node::now_ms();
    let started = Instant::now();
    bob.stop();
    let view = wait_state(&alice, "bob", "offline", Duration::from_secs(20));
    println!(
        "offline seen {} ms after bob's stop began (grace 300 s, TTL 600 s: only the goodbye explains it)",
        started.elapsed().as_millis()
    );
    let last_seen = view["last_seen_ms"].as_u64().expect("last seen is known");
    assert!(
        last_seen + 1000 >= stopped_at && last_seen <= hush_node::now_ms(),
        "last seen {last_seen} is not the time bob stopped ({stopped_at})"
    );
    let events = tap.presence("bob");
    assert_eq!(
        events.last().map(|e| e.0.as_str()),
        Some("offline"),
        "{events:?}"
    );
    assert!(events.last().is_some_and(|e| e.1.is_some()), "{events:?}");

    // Bob comes back: online again, told directly.
    bob.start_with(&args(&relay, "600", "300"));
    wait_state(&alice, "bob", "online", Duration::from_secs(20));
}

#[test]
fn crash_goes_offline_after_grace_and_short_disconnect_does_not_flap() {
    let relay = RelayProc::start("");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    alice.start_with(&args(&relay, "6", "3"));
    bob.start_with(&args(&relay, "6", "3"));
    introduce(&alice, &bob);
    wait_state(&alice, "bob", "online", Duration::from_secs(20));
    let tap = EventTap::start(&alice);

    // A short disconnect: bob's process dies and is back well within the
    // grace period. Alice must not see him go offline.
    bob.kill9();
    bob.start_with(&args(&relay, "6", "3"));
    // Past the grace period of the first drop.
    std::thread::sleep(Duration::from_secs(5));
    let events = tap.presence("bob");
    assert!(
        events.iter().all(|(state, _)| state != "offline"),
        "a short disconnect flapped bob's presence: {events:?}"
    );
    assert_eq!(presence(&alice, "bob")["state"], "online");

    // A crash: no goodbye, so offline only once the grace period (3 s)
    // passes; the TTL (6 s) bounds it too.
    let killed_at = hush_node::now_ms();
    bob.kill9();
    let view = wait_state(&alice, "bob", "offline", Duration::from_secs(30));
    let last_seen = view["last_seen_ms"].as_u64().expect("last seen");
    assert!(
        last_seen + 1000 >= killed_at,
        "last seen {last_seen} is before the crash ({killed_at})"
    );
    let events = tap.presence("bob");
    assert_eq!(
        events.iter().filter(|(s, _)| s == "offline").count(),
        1,
        "{events:?}"
    );
}

#[test]
fn sharing_off_hides_presence_and_last_seen() {
    let relay = RelayProc::start("");
    let (mut alice, mut bob, mut carol) =
        (User::new("alice"), User::new("bob"), User::new("carol"));
    alice.start_with(&args(&relay, "600", "300"));
    bob.start_with(&args(&relay, "600", "300"));
    carol.start_with(&args(&relay, "600", "300"));
    introduce(&alice, &bob);
    introduce(&alice, &carol);
    wait_state(&bob, "alice", "online", Duration::from_secs(20));
    wait_state(&carol, "alice", "online", Duration::from_secs(20));

    let run = alice.run(&["contact", "set", "carol", "--share-presence", "off"]);
    assert!(run.ok(), "{run:?}");
    // Carol is told alice is offline with the old key's last word...
    let view = wait_state(&carol, "alice", "offline", Duration::from_secs(20));
    let carol_last_seen = view["last_seen_ms"].as_u64();

    // ...and after alice restarts, bob sees her online again, carol never.
    alice.stop();
    alice.start_with(&args(&relay, "600", "300"));
    wait_state(&bob, "alice", "online", Duration::from_secs(20));
    let view = carol.json(&["presence", "alice", "--refresh", "--json"]);
    assert_eq!(view["state"], "offline", "{view}");
    assert_eq!(
        view["last_seen_ms"].as_u64(),
        carol_last_seen,
        "carol's last seen of alice moved after sharing was switched off: {view}"
    );
    // A contact who never got alice's key sees "never seen".
    let mut dave = User::new("dave");
    dave.start_with(&args(&relay, "600", "300"));
    let run = alice.run(&["presence", "--share", "off"]);
    assert!(run.ok(), "{run:?}");
    introduce(&alice, &dave);
    std::thread::sleep(Duration::from_secs(2));
    let view = dave.json(&["presence", "alice", "--refresh", "--json"]);
    assert_eq!(view["state"], "offline", "{view}");
    assert!(view["last_seen"].is_null(), "{view}");
    // Bob, too, no longer sees alice once the global switch is off.
    wait_state(&bob, "alice", "offline", Duration::from_secs(20));
    let status = alice.json(&["status", "--json"]);
    assert_eq!(
        status["reachability"]["sharing_presence"], false,
        "{status}"
    );
}

#[test]
fn presence_is_found_in_the_dht() {
    // Two relays that know each other; bob publishes through one, alice
    // through the other.
    let r1 = RelayProc::start("");
    let r2 = RelayProc::start_with("", &["--bootstrap", r1.address.as_str()]);
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    alice.start_with(&args(&r1, "600", "300"));
    bob.start_with(&args(&r2, "600", "300"));
    introduce(&alice, &bob);
    wait_state(&alice, "bob", "online", Duration::from_secs(20));
    alice.stop();
    // Bob freezes: his record stays in the DHT, but he answers nobody, so
    // the only way alice can learn he is online is a DHT lookup.
    let bob_pid = bob.pid().expect("bob runs").to_string();
    let stop = Command::new("kill").args(["-STOP", &bob_pid]).status();
    assert!(stop.is_ok_and(|s| s.success()), "could not SIGSTOP bob");
    alice.start_with(&args(&r1, "600", "300"));
    let view = alice.json(&["presence", "bob", "--refresh", "--json"]);
    let status = alice.json(&["status", "--json"]);
    let _ = Command::new("kill").args(["-CONT", &bob_pid]).status();
    assert_eq!(view["state"], "online", "{view}");
    assert_eq!(view["devices_online"], 1, "{view}");
    let direct = status["reachability"]["direct"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !direct.iter().any(|c| c == "bob"),
        "alice reached frozen bob directly, so the DHT path was not tested: {status}"
    );
}

/// Attack (issue 18, item 2): a relay in the DHT that logs who connects
/// and what they look up would learn whose presence a node watches. The
/// lookups of other people's records now come from a short-lived identity
/// (the courier): here bob names a DHT server that logs everything as his
/// relay, alice looks bob up, and the server is asked, but never sees
/// alice's own PeerId.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_lookups_reach_the_dht_from_a_short_lived_identity() {
    let (logger, seen) = hush_tests::raw::dht_logger().await;
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    bob.start_with(&["--relay", logger.as_str()]);
    alice.start();
    introduce(&alice, &bob);
    // A fresh start: alice's node finds the DHT again, bob's relay known.
    alice.stop();
    alice.start();
    let alice_peer: libp2p::PeerId = alice.json(&["status", "--json"])["peer_id"]
        .as_str()
        .expect("peer id")
        .parse()
        .expect("a peer id");
    let deadline = Instant::now() + Duration::from_secs(40);
    while seen.lock().expect("lock").lookups == 0 {
        assert!(Instant::now() < deadline, "the DHT was never asked");
        alice.json(&["presence", "bob", "--refresh", "--json"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = seen.lock().expect("lock");
    assert!(
        !seen.peers.contains(&alice_peer),
        "the DHT server saw alice's own peer id: {seen:?}"
    );
}

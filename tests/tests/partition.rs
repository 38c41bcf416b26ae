//! A network cut in two and healed: six nodes and two relays, each in its
//! own namespace behind one router (the hub). The hub drops every packet
//! between the halves, silently (no reset, no ICMP: what a Wi-Fi that goes
//! away, a suspended laptop or a NAT that forgot its mapping looks like);
//! both halves keep sending; then the cut heals.
//!
//! ```text
//!  half A: r1 10.1.1.2  a1 10.1.2.2  a2 10.1.3.2  a3 10.1.4.2
//!  half B: r2 10.2.1.2  b1 10.2.2.2  b2 10.2.3.2  b3 10.2.4.2
//!  each ── veth ── hub (10.H.K.1, routes between all; the cut: iptables DROP A ↔ B)
//! ```
//!
//! Every node has both relays as home relays; a1 has everyone as a contact
//! and runs a group of all six; a2↔b2 and a3↔b3 are contacts across the
//! cut. The test checks what users see: while cut, the relay across the cut
//! shows as not connected and contacts across it go offline after the
//! grace period; after the heal, every message sent during the cut is
//! delivered, every member has the same group history, nothing twice. It
//! prints how long detection and convergence took (figures for
//! `docs/benchmarks.md`; nothing here fails on timing except generous
//! limits that mean "broken").

use std::time::{Duration, Instant};

use hush_tests::netns::{Namespaces, RelayInNs, ns, skip_without_namespaces};
use hush_tests::{User, introduce, wait_for};

const RELAY_PORT: u16 = 7001;
const GRACE_SECS: u64 = 5;

/// Member `k` (1-based) of half `h` (1 = A, 2 = B) sits at 10.h.k.2.
fn ip(half: u8, k: u8) -> String {
    format!("10.{half}.{k}.2")
}

struct Net {
    spaces: Namespaces,
    hub: String,
}

impl Net {
    fn build() -> Result<Self, String> {
        let mut spaces = Namespaces::new();
        let hub = spaces.add("hub")?;
        ns(&hub, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        for half in 1..=2u8 {
            for k in 1..=4u8 {
                let member = spaces.add(&format!("m{half}{k}"))?;
                let (gw, me) = (format!("10.{half}.{k}.1"), ip(half, k));
                spaces.link(
                    (&hub, &format!("m{half}{k}"), &format!("{gw}/24")),
                    (&member, "eth0", &format!("{me}/24")),
                )?;
                ns(&member, &["ip", "route", "add", "default", "via", &gw])?;
            }
        }
        Ok(Self { spaces, hub })
    }

    fn member(&self, half: u8, k: u8) -> String {
        self.spaces.name(&format!("m{half}{k}"))
    }

    /// The two relays, r1 in half A and r2 in half B, with their addresses.
    fn relays(&self) -> ((RelayInNs, String), (RelayInNs, String)) {
        let start = |half: u8| {
            let relay = RelayInNs::start(
                &self.member(half, 1),
                &[format!("/ip4/{}/tcp/{RELAY_PORT}", ip(half, 1))],
            );
            let address = relay.address(&ip(half, 1));
            (relay, address)
        };
        (start(1), start(2))
    }

    /// Starts `name`'s node at member `k` of half `half`.
    fn start_user(&self, half: u8, k: u8, name: &str, args: &[&str]) -> User {
        let mut user = User::new(name);
        // Listening on 0.0.0.0, a node shares no private address unless
        // told: these hosts are routed to each other.
        let announce = format!("/ip4/{}/tcp/{}", ip(half, k), user.port);
        let mut args = args.to_vec();
        args.extend(["--announce", announce.as_str()]);
        user.start_in_netns(&self.member(half, k), &args);
        user
    }

    /// Drops everything to and from one host (`-I`), or stops (`-D`): its
    /// own link goes silent.
    fn silence(&self, host: &str, action: &str) {
        for (side, addr) in [("-s", host), ("-d", host)] {
            ns(
                &self.hub,
                &["iptables", action, "FORWARD", side, addr, "-j", "DROP"],
            )
            .expect("iptables");
        }
    }

    /// Drops everything between the halves (`-I`), or stops (`-D`).
    fn cut(&self, action: &str) {
        for (from, to) in [
            ("10.1.0.0/16", "10.2.0.0/16"),
            ("10.2.0.0/16", "10.1.0.0/16"),
        ] {
            ns(
                &self.hub,
                &[
                    "iptables", action, "FORWARD", "-s", from, "-d", to, "-j", "DROP",
                ],
            )
            .expect("iptables");
        }
    }
}

/// `admin` creates the group `name` and invites `others`, who join; its id.
fn group_of(admin: &User, name: &str, others: &[&User]) -> String {
    let created = admin.run(&["group", "create", name]);
    assert!(created.ok(), "{created:?}");
    let group = created.stdout.trim().to_owned();
    for other in others {
        let r = admin.run(&["group", "invite", &group, &other.name]);
        assert!(r.ok(), "{r:?}");
    }
    for other in others {
        wait_for(
            &format!("{}'s invitation", other.name),
            Duration::from_secs(60),
            || other.run(&["group", "join", &group]).ok().then_some(()),
        );
    }
    group
}

fn send(from: &User, to: &str, text: &str) -> String {
    let r = from.json(&["send", to, text, "--json"]);
    r["id"].as_str().expect("message id").to_owned()
}

fn group_send(from: &User, group: &str, text: &str) {
    let r = from.run(&["group", "send", group, text, "--json"]);
    assert!(r.ok(), "{} sends to the group: {r:?}", from.name);
}

fn relay_connected(user: &User, relay: &str) -> Option<bool> {
    let status = user.json(&["status", "--json"]);
    status["relays"]
        .as_array()?
        .iter()
        .find(|r| r["address"] == relay)?["connected"]
        .as_bool()
}

fn presence(user: &User, of: &str) -> String {
    user.json(&["presence", of, "--json"])["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls `check` every 200 ms until it holds (panics after `limit`);
/// returns when the first check that held started, in seconds after
/// `since` (a check may take a while: `presence` of an offline contact
/// waits for a DHT lookup).
fn time_until(what: &str, since: Instant, limit: Duration, mut check: impl FnMut() -> bool) -> f64 {
    let started = wait_for(what, limit, || {
        let started = Instant::now();
        if check() {
            Some(started)
        } else {
            std::thread::sleep(Duration::from_millis(200));
            None
        }
    });
    started.saturating_duration_since(since).as_secs_f64()
}

#[test]
fn a_silent_network_cut_is_noticed_and_everything_converges_after_the_heal() {
    if skip_without_namespaces() {
        return;
    }
    let net = Net::build().expect("build the network");
    let ((r1, r1_addr), (r2, r2_addr)) = net.relays();
    let grace = GRACE_SECS.to_string();
    let args = [
        "--relay",
        r1_addr.as_str(),
        "--relay",
        r2_addr.as_str(),
        "--presence-grace",
        grace.as_str(),
    ];
    let mut users: Vec<User> = Vec::new();
    for (half, prefix) in [(1u8, "a"), (2, "b")] {
        for k in 2..=4u8 {
            users.push(net.start_user(half, k, &format!("{prefix}{}", k - 1), &args));
        }
    }
    let [a1, a2, a3, b1, b2, b3] = &users[..] else {
        unreachable!("six users")
    };
    for other in [a2, a3, b1, b2, b3] {
        introduce(a1, other);
    }
    introduce(a2, b2);
    introduce(a3, b3);

    // A group of all six, run by a1.
    let group = group_of(a1, "all", &[a2, a3, b1, b2, b3]);
    for u in &users {
        wait_for(
            &format!("{} to see six members", u.name),
            Duration::from_secs(60),
            || {
                let list = u.json(&["group", "list", "--json"]);
                let g = list
                    .as_array()?
                    .iter()
                    .find(|g| g["id"] == group.as_str())?
                    .clone();
                (g["members"].as_u64() == Some(6)).then_some(())
            },
        );
    }
    // Everyone talks once before the cut; connections across are up.
    let mut group_sent = Vec::new();
    for u in &users {
        let text = format!("{} before the cut", u.name);
        group_send(u, &group, &text);
        group_sent.push(text);
    }
    for (from, to) in [(a1, b1), (a2, b2), (a3, b3), (b2, a2)] {
        let id = send(
            from,
            &to.name,
            &format!("{} to {} before the cut", from.name, to.name),
        );
        from.wait_status(&to.name, &id, "delivered");
    }
    for u in &users {
        wait_for(
            &format!("{} to have the group's first messages", u.name),
            Duration::from_secs(60),
            || (u.group_history(&group).len() >= group_sent.len()).then_some(()),
        );
    }
    wait_for("a1 to see b1 online", Duration::from_secs(30), || {
        (presence(a1, "b1") == "online").then_some(())
    });
    assert_eq!(relay_connected(a1, &r2_addr), Some(true));

    // The cut. Both halves keep sending at once...
    net.cut("-I");
    let cut = Instant::now();
    let mut direct: Vec<(&User, &User, String)> = Vec::new();
    for (from, to) in [(a2, b2), (b2, a2), (a3, b3), (b3, a3), (a1, b1), (b1, a1)] {
        let text = format!("{} to {} during the cut", from.name, to.name);
        direct.push((from, to, send(from, &to.name, &text)));
    }
    for u in [a1, b1] {
        let text = format!("{} during the cut", u.name);
        group_send(u, &group, &text);
        group_sent.push(text);
    }
    // ...and see the other half go away.
    let relay_down = time_until("a1 to see r2 down", cut, Duration::from_secs(60), || {
        relay_connected(a1, &r2_addr) == Some(false)
    });
    let relay_down_b = time_until("b1 to see r1 down", cut, Duration::from_secs(60), || {
        relay_connected(b1, &r1_addr) == Some(false)
    });
    let offline = time_until("a1 to see b1 offline", cut, Duration::from_secs(90), || {
        presence(a1, "b1") == "offline"
    });
    // Once the direct path is known dead, new mail goes to the relays at once.
    let text = "a2 to b2 once the cut was noticed".to_owned();
    let late = Instant::now();
    let id = send(a2, "b2", &text);
    let to_relay = time_until(
        "a2's message to reach a relay",
        late,
        Duration::from_secs(60),
        || a2.status_of("b2", &id).as_deref() == Some("sent"),
    );
    direct.push((a2, b2, id));
    for u in [a2, b2] {
        let text = format!("{} late in the cut", u.name);
        group_send(u, &group, &text);
        group_sent.push(text);
    }
    // Stay cut a while longer: long enough for kernel backoffs to grow.
    while cut.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let cut_for = cut.elapsed().as_secs_f64();

    net.cut("-D");
    let healed = Instant::now();
    let reconnected = time_until(
        "a1 to reconnect to r2",
        healed,
        Duration::from_secs(60),
        || relay_connected(a1, &r2_addr) == Some(true),
    );
    let delivered = time_until(
        "every message of the cut to be delivered",
        healed,
        Duration::from_secs(120),
        || {
            direct
                .iter()
                .all(|(from, to, id)| from.status_of(&to.name, id).as_deref() == Some("delivered"))
        },
    );
    let converged = time_until(
        "every member to have the whole group history",
        healed,
        Duration::from_secs(120),
        || {
            users
                .iter()
                .all(|u| u.group_history(&group).len() >= group_sent.len())
        },
    );
    let back_online = time_until(
        "a1 to see b1 online again",
        healed,
        Duration::from_secs(120),
        || presence(a1, "b1") == "online",
    );

    // Nothing lost, nothing twice, one order for everyone.
    let reference = a1.group_history(&group);
    let texts: Vec<&str> = reference.iter().map(|(_, t)| t.as_str()).collect();
    for text in &group_sent {
        assert_eq!(
            texts.iter().filter(|t| **t == text.as_str()).count(),
            1,
            "{text:?} once in {texts:?}"
        );
    }
    for u in &users {
        assert_eq!(
            u.group_history(&group),
            reference,
            "{} sees another history",
            u.name
        );
    }
    for (from, to, id) in &direct {
        let copies = to
            .history(&from.name)
            .iter()
            .filter(|m| m["id"] == id.as_str())
            .count();
        assert_eq!(copies, 1, "{}'s message {id} at {}", from.name, to.name);
    }
    let dead: usize = users
        .iter()
        .map(|u| u.node_log().matches("connection went silent").count())
        .sum();
    let relay_dead = |r: &RelayInNs| r.log().matches("connection went silent").count();
    println!(
        "partition: cut for {cut_for:.1} s; r2 shown down at a1 after {relay_down:.1} s (r1 at b1 \
         {relay_down_b:.1} s); b1 offline at a1 after {offline:.1} s (grace {GRACE_SECS} s); a message \
         sent once the cut was noticed reached a relay in {to_relay:.1} s; {dead} node and {} relay \
         connections closed as silent\n\
         heal: r2 reconnected at a1 after {reconnected:.1} s; every 1:1 message of the cut delivered \
         after {delivered:.1} s; every group history complete after {converged:.1} s; b1 online at a1 \
         again after {back_online:.1} s",
        relay_dead(&r1) + relay_dead(&r2),
    );
}

/// The sender's own link goes silent just as it sends to its group: the
/// message waits in connections that die (every peer, the relays too), so
/// no one, not even a relay's history, has it when the link comes back.
/// The sender must notice and send it again.
#[test]
fn a_group_message_sent_as_the_senders_link_goes_silent_reaches_every_member() {
    if skip_without_namespaces() {
        return;
    }
    let net = Net::build().expect("build the network");
    let ((_r1, r1_addr), (_r2, r2_addr)) = net.relays();
    let args = ["--relay", r1_addr.as_str(), "--relay", r2_addr.as_str()];
    let users: Vec<User> = [(1u8, 2u8, "a1"), (1, 3, "a2"), (2, 2, "b1")]
        .into_iter()
        .map(|(half, k, name)| net.start_user(half, k, name, &args))
        .collect();
    let [a1, a2, b1] = &users[..] else {
        unreachable!("three users")
    };
    introduce(a1, a2);
    introduce(a1, b1);
    let group = group_of(a1, "three", &[a2, b1]);
    let mut sent = Vec::new();
    for u in &users {
        let text = format!("{} before the silence", u.name);
        group_send(u, &group, &text);
        sent.push(text);
    }
    for u in &users {
        wait_for(
            &format!("{} to have the first messages", u.name),
            Duration::from_secs(60),
            || (u.group_history(&group).len() >= sent.len()).then_some(()),
        );
    }

    // a1's link goes silent, and a1 sends at once: its connections still
    // look alive, so the message goes into them.
    let a1_ip = ip(1, 2);
    net.silence(&a1_ip, "-I");
    let silent = Instant::now();
    let text = "a1 as its link went silent".to_owned();
    group_send(a1, &group, &text);
    sent.push(text);
    let noticed = time_until("a1 to see r1 down", silent, Duration::from_secs(60), || {
        relay_connected(a1, &r1_addr) == Some(false)
    });
    while silent.elapsed() < Duration::from_secs(25) {
        std::thread::sleep(Duration::from_millis(200));
    }
    net.silence(&a1_ip, "-D");
    let back = Instant::now();
    let converged = time_until(
        "every member to have a1's message",
        back,
        Duration::from_secs(150),
        || {
            users
                .iter()
                .all(|u| u.group_history(&group).len() >= sent.len())
        },
    );
    let reference = a1.group_history(&group);
    for u in &users {
        assert_eq!(
            u.group_history(&group),
            reference,
            "{} sees another history",
            u.name
        );
    }
    println!(
        "silence: a1 saw r1 down after {noticed:.1} s; after the link came back every member \
         had a1's message in {converged:.1} s"
    );
}

//! Two nodes on one LAN (hosts on a bridge in network namespaces, no relay,
//! no addresses in their cards): with `--mdns` they find each other and
//! chat; without it they announce nothing. Also: a node listening on
//! `0.0.0.0` puts no loopback or private address in its card.

use std::time::Duration;

use hush_protocol::ContactCard;
use hush_tests::netns::{Namespaces, skip_without_namespaces};
use hush_tests::{User, introduce, wait_for};

struct Lan {
    spaces: Namespaces,
}

impl Lan {
    /// Hosts `a` (10.77.0.1) and `b` (10.77.0.2) on a bridge.
    fn build() -> Result<Self, String> {
        let mut spaces = Namespaces::new();
        let switch = spaces.add("sw")?;
        spaces.bridge(&switch, "br0")?;
        for (host, ip) in [("a", "10.77.0.1/24"), ("b", "10.77.0.2/24")] {
            let name = spaces.add(host)?;
            spaces.plug((&switch, "br0"), (&name, "eth0", ip))?;
        }
        Ok(Self { spaces })
    }

    fn host(&self, role: &str) -> String {
        self.spaces.name(role)
    }
}

/// Whether anything in namespace `space` has a UDP socket on port 5353.
fn mdns_socket_in(space: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", space, "ss", "-uanH"])
        .output()
        .expect("ss");
    assert!(out.status.success(), "ss: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.contains(":5353 "))
}

fn card_addresses(user: &User) -> Vec<String> {
    let card: ContactCard = user.card().parse().expect("a card");
    card.addresses
}

fn is_private_or_loopback(addr: &str) -> bool {
    [
        "/ip4/127.",
        "/ip4/10.",
        "/ip4/192.168.",
        "/ip4/172.",
        "/ip6/::1/",
        "/ip6/fe80",
        "/ip6/fd",
    ]
    .iter()
    .any(|p| addr.starts_with(p))
}

#[test]
fn with_mdns_two_nodes_on_a_lan_find_each_other_and_chat() {
    if skip_without_namespaces() {
        return;
    }
    let lan = Lan::build().expect("build the LAN");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    alice.start_in_netns(&lan.host("a"), &["--mdns"]);
    bob.start_in_netns(&lan.host("b"), &["--mdns"]);
    // Both listen on 0.0.0.0: their cards carry neither 10.77.0.x nor
    // loopback, so only the LAN discovery can bring them together.
    for user in [&alice, &bob] {
        let listening = user.json(&["status", "--json"])["listen_addresses"].to_string();
        assert!(listening.contains("10.77.0."), "{listening}");
        let shared = card_addresses(user);
        assert!(
            shared.iter().all(|a| !is_private_or_loopback(a)),
            "{} shares {shared:?}",
            user.name
        );
    }
    // They hear each other before they are contacts (so the first dial
    // finds a stranger and is closed): adding the contact must make the
    // node look at the LAN again.
    for user in [&alice, &bob] {
        wait_for(
            &format!("{} to hear the other on the LAN", user.name),
            Duration::from_secs(30),
            || {
                user.node_log()
                    .contains("discovered peer on address")
                    .then_some(())
            },
        );
    }
    introduce(&alice, &bob);
    let sent = alice.json(&["send", "bob", "found you on the LAN", "--json"]);
    let id = sent["id"].as_str().expect("message id").to_owned();
    alice.wait_status("bob", &id, "delivered");
    let history = bob.history("alice");
    assert!(
        history.iter().any(|m| m["text"] == "found you on the LAN"),
        "{history:?}"
    );
    let reply = bob.json(&["send", "alice", "and you", "--json"]);
    bob.wait_status("alice", reply["id"].as_str().expect("id"), "delivered");
    // The messages may have gone over bob's dial; alice's own dial of what
    // she heard follows within a tick.
    wait_for(
        "alice to find bob on the LAN",
        Duration::from_secs(30),
        || {
            let reach = alice.json(&["status", "--json"])["reachability"]["lan"].to_string();
            reach.contains("bob").then_some(())
        },
    );
    // The announcement does not name the device: what alice's node heard
    // (libp2p logs each discovery) is a random id, not bob's peer id.
    let bob_peer = bob.json(&["status", "--json"])["peer_id"]
        .as_str()
        .expect("peer id")
        .to_owned();
    let log = alice.node_log();
    let heard: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("discovered peer on address"))
        .collect();
    assert!(!heard.is_empty(), "alice's node heard an announcement");
    assert!(
        heard.iter().all(|l| !l.contains(&bob_peer)),
        "bob's device id was announced on the LAN: {heard:?}"
    );
}

#[test]
fn without_mdns_nodes_on_a_lan_do_not_announce_themselves() {
    if skip_without_namespaces() {
        return;
    }
    let lan = Lan::build().expect("build the LAN");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    // No flag at all: the default is off.
    alice.start_in_netns(&lan.host("a"), &["--no-mdns"]);
    bob.start_in_netns(&lan.host("b"), &[]);
    for (user, host) in [(&alice, "a"), (&bob, "b")] {
        wait_for(
            &format!("{}'s node up", user.name),
            Duration::from_secs(10),
            || user.run(&["status"]).ok().then_some(()),
        );
        assert!(
            !mdns_socket_in(&lan.host(host)),
            "{}'s node listens for mDNS",
            user.name
        );
    }
}

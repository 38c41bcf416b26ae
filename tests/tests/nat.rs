//! Two nodes, each behind its own NAT, and a public relay, in network
//! namespaces this test builds (iproute2 + iptables MASQUERADE):
//!
//! ```text
//!  host-a 192.168.1.2 ── 192.168.1.1 router-a 10.0.1.2 ──┐
//!                                                 10.0.1.1
//!                                                   pub  (relay; forwards)
//!                                                 10.0.2.1
//!  host-b 192.168.2.2 ── 192.168.2.1 router-b 10.0.2.2 ──┘
//! ```
//!
//! Neither host can be dialled from outside its NAT: the routers drop what
//! arrives unasked for, as home routers do. The hosts reach each other
//! through circuits at the relay, then DCUtR punches a hole: both dial the
//! address the relay observed for the other at the same moment, from the
//! port they listen on, so each router sees its own host's packet go out
//! before the other's comes in.
//!
//! - Routers that keep a connection's source port (Linux `MASQUERADE`, most
//!   home routers): the hole punch succeeds and messages flow directly.
//! - Routers that pick a random port per connection (`--random-fully`, like
//!   symmetric carrier NATs): the punch fails and messages keep flowing
//!   through the relay.
//!
//! Without the privileges to build namespaces the tests say so and skip.

use std::time::Duration;

use hush_tests::netns::{Namespaces, RelayInNs, ns, skip_without_namespaces};
use hush_tests::{User, hush_bin, introduce, wait_for};

const RELAY_PORT: u16 = 4001;

/// `random_ports`: the routers pick a random outside port for every
/// connection (`MASQUERADE --random-fully`), as symmetric NATs do, so an
/// address observed by the relay is useless to anyone else.
fn build(random_ports: bool) -> Result<Namespaces, String> {
    let mut net = Namespaces::new();
    for role in ["pub", "ra", "rb", "ha", "hb"] {
        net.add(role)?;
    }
    let (public, ra, rb, ha, hb) = (
        net.name("pub"),
        net.name("ra"),
        net.name("rb"),
        net.name("ha"),
        net.name("hb"),
    );
    net.link((&public, "wa", "10.0.1.1/24"), (&ra, "wan", "10.0.1.2/24"))?;
    net.link((&public, "wb", "10.0.2.1/24"), (&rb, "wan", "10.0.2.2/24"))?;
    net.link(
        (&ra, "lan", "192.168.1.1/24"),
        (&ha, "eth0", "192.168.1.2/24"),
    )?;
    net.link(
        (&rb, "lan", "192.168.2.1/24"),
        (&hb, "eth0", "192.168.2.2/24"),
    )?;
    for (router, host, gw) in [(&ra, &ha, "192.168.1.1"), (&rb, &hb, "192.168.2.1")] {
        ns(host, &["ip", "route", "add", "default", "via", gw])?;
        ns(router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let mut masquerade = vec![
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "wan",
            "-j",
            "MASQUERADE",
        ];
        if random_ports {
            masquerade.push("--random-fully");
        }
        ns(router, &masquerade)?;
        // Like a home router: what arrives from outside unasked for is
        // dropped silently (not answered with a reset), at the router
        // itself and on the way in.
        for chain in ["INPUT", "FORWARD"] {
            ns(
                router,
                &[
                    "iptables",
                    "-A",
                    chain,
                    "-i",
                    "wan",
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "NEW,INVALID",
                    "-j",
                    "DROP",
                ],
            )?;
        }
    }
    ns(&ra, &["ip", "route", "add", "default", "via", "10.0.1.1"])?;
    ns(&rb, &["ip", "route", "add", "default", "via", "10.0.2.1"])?;
    ns(&public, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    Ok(net)
}

/// Alice and bob, each behind its router, both with circuits at the relay,
/// contacts of each other.
struct Behind {
    alice: User,
    bob: User,
    _relay: RelayInNs,
    _net: Namespaces,
}

impl Behind {
    fn start(random_ports: bool) -> Self {
        let net = build(random_ports).expect("build the NAT network");
        let relay = RelayInNs::start(
            &net.name("pub"),
            &[
                format!("/ip4/10.0.1.1/tcp/{RELAY_PORT}"),
                format!("/ip4/10.0.2.1/tcp/{RELAY_PORT}"),
            ],
        );
        let (relay_a, relay_b) = (relay.address("10.0.1.1"), relay.address("10.0.2.1"));
        let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
        for (user, host, relay) in [(&mut alice, "ha", &relay_a), (&mut bob, "hb", &relay_b)] {
            let args = [
                "--relay",
                relay.as_str(),
                "--no-mdns",
                "--presence-ttl",
                "60",
            ];
            user.start_in_netns(&net.name(host), &args);
        }
        for user in [&alice, &bob] {
            wait_for(
                &format!("{}'s circuit at the relay", user.name),
                Duration::from_secs(30),
                || {
                    let status = user.json(&["status", "--json"]);
                    let via = status["reachability"]["relayed_via"].as_array()?.clone();
                    (!via.is_empty()).then_some(())
                },
            );
        }
        introduce(&alice, &bob);
        Self {
            alice,
            bob,
            _relay: relay,
            _net: net,
        }
    }

    /// Texts both ways, each waited for until delivered.
    fn talk(&self, round: &str) {
        for (from, to) in [
            (&self.alice, "bob"),
            (&self.bob, "alice"),
            (&self.alice, "bob"),
        ] {
            let receipt = from.json(&[
                "send",
                to,
                &format!("{round}: hello {to}, through the NAT"),
                "--wait",
                "delivered",
                "--timeout",
                "60",
                "--json",
            ]);
            assert_eq!(receipt["status"], "delivered", "{receipt}");
        }
    }

    /// Names in alice's `reachability.KIND` (`direct`, `relayed`,
    /// `hole_punched`).
    fn alice_sees(&self, kind: &str) -> Vec<String> {
        let status = self.alice.json(&["status", "--json"]);
        status["reachability"][kind]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn hole_punch_log(&self) -> String {
        let mut out = String::new();
        for user in [&self.alice, &self.bob] {
            for line in user.node_log().lines().filter(|l| l.contains("hole punch")) {
                out.push_str(&format!("{}: {line}\n", user.name));
            }
        }
        out
    }
}

impl Drop for Behind {
    fn drop(&mut self) {
        self.alice.stop();
        self.bob.stop();
    }
}

#[test]
fn two_nodes_behind_port_preserving_nats_punch_a_hole_and_talk_directly() {
    if skip_without_namespaces() {
        return;
    }
    let two = Behind::start(false);
    // The first messages go through the relay's circuit; the connection
    // they open lets DCUtR coordinate the hole punch.
    two.talk("relayed");
    wait_for("the hole punch", Duration::from_secs(60), || {
        two.alice_sees("hole_punched")
            .contains(&"bob".to_owned())
            .then_some(())
    });
    // Once the direct connection is up, the circuit goes idle and closes.
    wait_for(
        "the relayed connection to go",
        Duration::from_secs(60),
        || {
            let direct = two.alice_sees("direct").contains(&"bob".to_owned());
            (direct && two.alice_sees("relayed").is_empty()).then_some(())
        },
    );
    two.talk("direct");
    assert!(
        two.alice_sees("direct").contains(&"bob".to_owned()),
        "the messages flowed while alice held a direct connection to bob"
    );
    assert!(
        two.alice_sees("relayed").is_empty(),
        "and no relayed one: they went over the punched hole"
    );
    println!(
        "NAT test (port-preserving): hole punched\n{}",
        two.hole_punch_log()
    );
}

#[test]
fn behind_nats_that_randomise_ports_messages_still_flow_through_the_relay() {
    if skip_without_namespaces() {
        return;
    }
    let two = Behind::start(true);
    two.talk("first");
    // DCUtR tries (three dial attempts) and gives up: the ports the relay
    // observed are not the ports a new connection gets.
    wait_for("the hole punch to give up", Duration::from_secs(60), || {
        two.hole_punch_log().contains("failed").then_some(())
    });
    two.talk("after the failed punch");
    assert!(
        two.alice_sees("hole_punched").is_empty(),
        "no hole punched through port-randomising NATs: {}",
        two.hole_punch_log()
    );
    assert!(
        two.alice_sees("relayed").contains(&"bob".to_owned()),
        "the messages went over the relayed circuit"
    );
    println!("NAT test (random ports): relayed\n{}", two.hole_punch_log());
}

#[test]
fn a_device_behind_another_nat_links_through_the_relay_circuit() {
    if skip_without_namespaces() {
        return;
    }
    let two = Behind::start(false);
    // alice's new laptop is on bob's network: alice's own address is
    // behind her router, so only the circuit in the code gets through.
    let code = two.alice.json(&["device", "link", "--no-wait", "--json"]);
    let code = code["code"].as_str().expect("a code").to_owned();
    let laptop = User::empty("alice-laptop");
    let home = laptop.home.to_string_lossy().into_owned();
    let bin = hush_bin().to_string_lossy().into_owned();
    let joined = ns(
        &two._net.name("hb"),
        &[
            &bin, "--home", &home, "device", "join", &code, "--name", "laptop",
        ],
    );
    assert!(joined.is_ok(), "the join failed: {joined:?}");
    let list = two.alice.json(&["device", "list", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    assert!(laptop.home.join("hush.redb").exists());
}

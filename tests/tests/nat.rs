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
//! Neither host can be dialled from outside its NAT. They reach each other
//! through circuits at the relay and try to punch a hole (DCUtR). The test
//! passes if messages flow both ways over a live connection, and reports
//! whether that connection went direct or stayed relayed. Without the
//! privileges to build namespaces it says so and skips.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hush_tests::{User, hush_bin, introduce, wait_for};

const RELAY_PORT: u16 = 4001;

/// Runs `ip ARGS…` (or another tool), returning its error text on failure.
fn sh(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ns(name: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["netns", "exec", name];
    full.extend_from_slice(args);
    sh("ip", &full)
}

/// The namespaces, removed on drop.
struct Net {
    names: Vec<String>,
}

impl Net {
    fn name(&self, role: &str) -> String {
        format!("hush{}-{role}", std::process::id())
    }

    fn build() -> Result<Self, String> {
        let mut net = Self { names: Vec::new() };
        for role in ["pub", "ra", "rb", "ha", "hb"] {
            let name = net.name(role);
            sh("ip", &["netns", "add", &name])?;
            net.names.push(name.clone());
            ns(&name, &["ip", "link", "set", "lo", "up"])?;
        }
        let (public, ra, rb, ha, hb) = (
            net.name("pub"),
            net.name("ra"),
            net.name("rb"),
            net.name("ha"),
            net.name("hb"),
        );
        let pid = std::process::id() % 100_000;
        // veth pairs: (ns1, if1, addr1, ns2, if2, addr2)
        let links = [
            (&public, "wa", "10.0.1.1/24", &ra, "wan", "10.0.1.2/24"),
            (&public, "wb", "10.0.2.1/24", &rb, "wan", "10.0.2.2/24"),
            (&ra, "lan", "192.168.1.1/24", &ha, "eth0", "192.168.1.2/24"),
            (&rb, "lan", "192.168.2.1/24", &hb, "eth0", "192.168.2.2/24"),
        ];
        for (i, (n1, if1, a1, n2, if2, a2)) in links.iter().enumerate() {
            let (t1, t2) = (format!("h{pid}x{i}"), format!("h{pid}y{i}"));
            sh(
                "ip",
                &["link", "add", &t1, "type", "veth", "peer", "name", &t2],
            )?;
            sh("ip", &["link", "set", &t1, "netns", n1])?;
            sh("ip", &["link", "set", &t2, "netns", n2])?;
            ns(n1, &["ip", "link", "set", &t1, "name", if1])?;
            ns(n2, &["ip", "link", "set", &t2, "name", if2])?;
            ns(n1, &["ip", "addr", "add", a1, "dev", if1])?;
            ns(n2, &["ip", "addr", "add", a2, "dev", if2])?;
            ns(n1, &["ip", "link", "set", if1, "up"])?;
            ns(n2, &["ip", "link", "set", if2, "up"])?;
        }
        for (router, host, gw) in [(&ra, &ha, "192.168.1.1"), (&rb, &hb, "192.168.2.1")] {
            ns(host, &["ip", "route", "add", "default", "via", gw])?;
            ns(router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
            ns(
                router,
                &[
                    "iptables",
                    "-t",
                    "nat",
                    "-A",
                    "POSTROUTING",
                    "-o",
                    "wan",
                    "-j",
                    "MASQUERADE",
                ],
            )?;
        }
        ns(&ra, &["ip", "route", "add", "default", "via", "10.0.1.1"])?;
        ns(&rb, &["ip", "route", "add", "default", "via", "10.0.2.1"])?;
        ns(&public, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = sh("ip", &["netns", "del", name]);
        }
    }
}

struct RelayInNs {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl RelayInNs {
    fn start(netns: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("relay.log");
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(hush_bin())
            .args(["relay", "run"])
            .args(["--listen", &format!("/ip4/10.0.1.1/tcp/{RELAY_PORT}")])
            .args(["--listen", &format!("/ip4/10.0.2.1/tcp/{RELAY_PORT}")])
            .arg("--data")
            .arg(dir.path().join("data"))
            .env("HUSH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("relay log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the relay");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    /// The relay's full address on one of its interfaces.
    fn address(&self, ip: &str) -> String {
        wait_for("the relay's address", Duration::from_secs(30), || {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            log.lines()
                .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/ip4/")))
                .find(|a| a.starts_with(&format!("/ip4/{ip}/tcp/")) && a.contains("/p2p/"))
                .map(str::to_owned)
        })
    }
}

impl Drop for RelayInNs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn can_build_namespaces() -> Result<(), String> {
    let probe = format!("hush{}-probe", std::process::id());
    sh("ip", &["netns", "add", &probe])?;
    let nat = ns(&probe, &["iptables", "-t", "nat", "-L", "-n"]);
    let _ = sh("ip", &["netns", "del", &probe]);
    nat
}

#[test]
fn two_nodes_behind_nat_talk_through_relay_or_hole_punch() {
    if let Err(why) = can_build_namespaces() {
        println!(
            "SKIPPED: this test needs root (CAP_NET_ADMIN), iproute2 and iptables to build \
             network namespaces with NAT; `.ci/run` installs them. Reason: {why}"
        );
        return;
    }
    let net = Net::build().expect("build the NAT network");
    let relay = RelayInNs::start(&net.name("pub"));
    let (relay_a, relay_b) = (relay.address("10.0.1.1"), relay.address("10.0.2.1"));
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    let node_args = |relay: &str| -> Vec<String> {
        vec![
            "--relay".into(),
            relay.into(),
            "--no-mdns".into(),
            "--presence-ttl".into(),
            "60".into(),
        ]
    };
    let a_args = node_args(&relay_a);
    let b_args = node_args(&relay_b);
    alice.start_in_netns(
        &net.name("ha"),
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    bob.start_in_netns(
        &net.name("hb"),
        &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
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

    for (from, to) in [(&alice, "bob"), (&bob, "alice"), (&alice, "bob")] {
        let receipt = from.json(&[
            "send",
            to,
            &format!("hello {to}, through the NAT"),
            "--wait",
            "delivered",
            "--timeout",
            "60",
            "--json",
        ]);
        assert_eq!(receipt["status"], "delivered", "{receipt}");
    }
    // Let DCUtR finish its attempts, then see how they are connected.
    std::thread::sleep(Duration::from_secs(3));
    let status = alice.json(&["status", "--json"]);
    let r = &status["reachability"];
    let names = |k: &str| {
        r[k].as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let path = if names("direct").contains(&"bob") {
        if names("hole_punched").contains(&"bob") {
            "direct (hole punched)"
        } else {
            "direct"
        }
    } else if names("relayed").contains(&"bob") {
        "relayed through the circuit"
    } else {
        "no live connection (delivered through the mailbox)"
    };
    println!("NAT test: alice ↔ bob messages flowed; connection: {path}; alice's view: {r}");
    println!("alice's NAT status: {}", r["nat"]);
    assert!(
        path != "no live connection (delivered through the mailbox)",
        "messages were delivered, but never over a connection between the two NATed nodes: {status}"
    );
    alice.stop();
    bob.stop();
}

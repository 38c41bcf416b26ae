//! `hush bench link`: linking a device, measured on in-process nodes on
//! loopback (durable storage everywhere).
//!
//! - `link_ms`: `hush device join` called with the code → it returns, the
//!   new device holding all `--messages` messages of history (its database
//!   complete and moved into its home) and the old device's list updated;
//! - `fanout_p50_ratio`: send → delivered p50 from bob to alice, who has 3
//!   devices, over the same to carol, who has 1 (same run, sends
//!   alternating between the two, one at a time); `delivered` is the first
//!   of the recipient's devices storing it.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hush_node::{Home, JoinOptions, Node, NodeConfig, Status};
use libp2p::Multiaddr;
use serde_json::json;

use crate::bench::{percentile, throughput};
use crate::demo::init_home;

const TEXT_LEN: usize = 256;

pub async fn link(messages: usize, fanout_messages: usize, as_json: bool) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("hush-bench-").tempdir()?;
    let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse()?;
    let config = || NodeConfig::default().with_listen(loopback.clone());
    let alice = Node::start(&init_home(dir.path(), "alice")?, config()).await?;
    let bob = Node::start(&init_home(dir.path(), "bob")?, config()).await?;
    let carol = Node::start(&init_home(dir.path(), "carol")?, config()).await?;
    alice.add_contact("bob", &bob.card().await?).await?;
    bob.add_contact("alice", &alice.card().await?).await?;
    bob.add_contact("carol", &carol.card().await?).await?;
    carol.add_contact("bob", &bob.card().await?).await?;
    let text = "x".repeat(TEXT_LEN);
    if !as_json {
        eprintln!("filling alice's history with {messages} messages...");
    }
    throughput(&alice, "bob", &text, messages).await?;

    // The measured link: all history.
    let laptop = Home::new(dir.path().join("alice-laptop"));
    let (link_ms, joined) = join(&alice, &laptop, 0).await?;
    if joined.messages != messages {
        bail!(
            "the new device received {} of {messages} messages",
            joined.messages
        );
    }
    // A third device, without history, for the fan-out.
    let desktop = Home::new(dir.path().join("alice-desktop"));
    join(&alice, &desktop, u64::MAX).await?;
    let laptop = Node::start(&laptop, config()).await?;
    let desktop = Node::start(&desktop, config()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while bob
        .contacts()?
        .iter()
        .find(|c| c.name == "alice")
        .is_none_or(|c| c.devices < 3)
    {
        if Instant::now() > deadline {
            bail!("bob did not learn alice's three devices within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Warm up both paths (sessions with every device), then alternate.
    for to in ["alice", "carol"] {
        for _ in 0..20 {
            send(&bob, to, &text).await?;
        }
    }
    let (mut three, mut one) = (Vec::new(), Vec::new());
    for _ in 0..fanout_messages {
        three.push(send(&bob, "alice", &text).await?);
        one.push(send(&bob, "carol", &text).await?);
    }
    three.sort_unstable();
    one.sort_unstable();
    let (p50_three, p50_one) = (percentile(&three, 0.5), percentile(&one, 0.5));
    let ratio = p50_three as f64 / p50_one.max(1) as f64;
    for node in [&alice, &bob, &carol, &laptop, &desktop] {
        node.shutdown().await;
    }
    let report = json!({
        "messages": messages,
        "link_ms": link_ms,
        "fanout_messages": fanout_messages,
        "fanout_p50_us_3_devices": p50_three,
        "fanout_p50_us_1_device": p50_one,
        "fanout_p50_ratio": (ratio * 100.0).round() / 100.0,
    });
    if as_json {
        println!("{report}");
    } else {
        println!("link with {messages} messages of history: {link_ms} ms");
        println!(
            "send → delivered p50: {p50_three} µs to a 3-device contact, {p50_one} µs to a 1-device one ({ratio:.2}×)"
        );
    }
    Ok(())
}

/// Links `home` to `node`'s account; (ms from the call to its return, what
/// it brought).
async fn join(node: &Node, home: &Home, since: u64) -> Result<(u64, hush_node::Joined)> {
    let code = node.link_code(false).await?;
    let waiter = {
        let node = node.clone();
        tokio::spawn(async move { node.link_wait().await })
    };
    let options = JoinOptions {
        name: "bench".into(),
        history_since_ms: since,
        timeout: Duration::from_secs(300),
    };
    let t0 = Instant::now();
    let joined = hush_node::join(home, &code.code, options).await?;
    let ms = t0.elapsed().as_millis() as u64;
    waiter.await??;
    Ok((ms, joined))
}

/// One message, waited for until delivered; µs.
async fn send(node: &Node, to: &str, text: &str) -> Result<u64> {
    let t0 = Instant::now();
    let r = node
        .send_and_wait(to, text, Status::Delivered, Duration::from_secs(30))
        .await?;
    if r.timed_out {
        bail!("a message to {to} was not delivered within 30 s");
    }
    Ok(t0.elapsed().as_micros() as u64)
}

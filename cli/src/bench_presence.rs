//! `hush bench presence`: a contact's presence looked up in the DHT across
//! 20 relays on loopback, and how soon a watching contact hears that a
//! contact came online.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hush_node::{Event, Node, NodeConfig};
use libp2p::Multiaddr;
use serde_json::json;

use crate::bench::percentile;
use crate::bench_relay::{RunningRelay, start_dht};
use crate::demo::init_home;

/// Relays in the DHT.
const RELAYS: usize = 20;
/// Lookups timed.
const LOOKUPS: usize = 300;
/// Times bob comes online while alice watches.
const RESTARTS: usize = 30;

pub async fn presence(as_json: bool) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("hush-bench-").tempdir()?;
    let relays = start_dht(dir.path(), RELAYS).await?;
    // Let the relays find each other (bootstrap + identify).
    tokio::time::sleep(Duration::from_secs(2)).await;

    let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse()?;
    // Alice and bob use different home relays: lookups cross the DHT.
    let config = |homes: &[&RunningRelay]| {
        let mut c = NodeConfig::default().with_listen(loopback.clone());
        c.mdns = false;
        for r in homes {
            c = c.with_relay(r.address.clone());
        }
        c
    };
    let alice_home = init_home(dir.path(), "alice")?;
    let bob_home = init_home(dir.path(), "bob")?;
    let alice = Node::start(&alice_home, config(&[&relays[0], &relays[1], &relays[2]])).await?;
    let bob_config = config(&[&relays[17], &relays[18], &relays[19]]);
    let mut bob = Node::start(&bob_home, bob_config.clone()).await?;
    let _ = &mut bob;
    alice.add_contact("bob", &bob.card().await?).await?;
    bob.add_contact("alice", &alice.card().await?).await?;
    wait_online(&alice, Duration::from_secs(20)).await?;
    // Bob's record must be in the DHT: his heartbeat put it there at start,
    // and again when his key went to alice. Warm the lookup path.
    for _ in 0..20 {
        alice.presence("bob", true).await?;
    }

    let mut lookups = Vec::with_capacity(LOOKUPS);
    for _ in 0..LOOKUPS {
        let started = Instant::now();
        let view = alice.presence("bob", true).await?;
        lookups.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        if view.state != "online" {
            bail!("the lookup did not find bob online: {view:?}");
        }
    }
    lookups.sort_unstable();

    let mut changes = Vec::with_capacity(RESTARTS);
    for _ in 0..RESTARTS {
        bob.shutdown().await;
        // The store is released once the last handle is gone.
        drop(bob);
        wait_state(&alice, "offline", Duration::from_secs(20)).await?;
        let mut events = alice.subscribe();
        let started = Instant::now();
        bob = Node::start(&bob_home, bob_config.clone()).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(journaled)) => {
                    if let Event::Presence { contact, state, .. } = &journaled.event
                        && contact == "bob"
                        && state == "online"
                    {
                        break;
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => bail!("alice's events ended: {e}"),
                Err(_) => bail!("alice did not see bob come online within 20 s"),
            }
        }
        changes.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    changes.sort_unstable();
    bob.shutdown().await;
    alice.shutdown().await;
    for relay in relays {
        relay.stop().await;
    }

    let report = json!({
        "lookup_p50_us": percentile(&lookups, 0.50),
        "lookup_p99_us": percentile(&lookups, 0.99),
        "change_seen_p50_ms": percentile(&changes, 0.50) as f64 / 1000.0,
        "change_seen_p99_ms": percentile(&changes, 0.99) as f64 / 1000.0,
        "relays": RELAYS,
        "lookups": LOOKUPS,
        "changes": RESTARTS,
    });
    if as_json {
        println!("{report}");
    } else {
        println!(
            "DHT lookup of a contact's presence across {RELAYS} relays: p50 {} µs, p99 {} µs",
            report["lookup_p50_us"], report["lookup_p99_us"]
        );
        println!(
            "contact starts → watcher's presence event: p50 {} ms, p99 {} ms",
            report["change_seen_p50_ms"], report["change_seen_p99_ms"]
        );
    }
    Ok(())
}

async fn wait_online(alice: &Node, timeout: Duration) -> Result<()> {
    wait_state(alice, "online", timeout).await
}

async fn wait_state(alice: &Node, state: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let view = alice.presence("bob", false).await?;
        if view.state == state {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!("bob is not {state} for alice")).context("bench set-up");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

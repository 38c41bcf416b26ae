//! `hush bench relay --idle-connections N`: what an idle connection costs a
//! relay in memory.
//!
//! A real `hush relay run` process on loopback (its `[limits]` raised so
//! one address may hold N connections); the bench opens N connections to
//! it (TCP, Noise, Yamux, and whatever the relay's behaviours exchange on a
//! new connection: identify, Kademlia and gossipsub hellos, and the
//! liveness probe streams both sides open, as a node's would), from fresh
//! identities, four per identity (the relay's per-peer limit), lets them
//! settle, and reads the relay's resident memory before and after.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use hush_host::liveness;
use libp2p::swarm::{DialError, SwarmEvent, dial_opts::DialOpts, dial_opts::PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm};
use serde_json::json;

use crate::demo::RelayProcess;

/// The relay's per-peer connection limit.
const PER_IDENTITY: usize = 4;

/// Memory of a process, from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: u64,
    anon: u64,
    file: u64,
}

fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(Memory {
        rss: field("VmRSS:")?,
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
    })
}

struct Relay {
    process: RelayProcess,
    address: Multiaddr,
    peer: PeerId,
}

async fn start_relay(dir: &std::path::Path, connections: usize) -> Result<Relay> {
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!("[limits]\nconnections_per_ip = {}\n", connections + 16),
    )?;
    let process = RelayProcess::start_with(&dir.join("data"), Some(&config)).await?;
    let mut address: Multiaddr = process.address.parse()?;
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = address.pop() else {
        bail!("the relay's address has no /p2p/ part: {address}");
    };
    Ok(Relay {
        process,
        address,
        peer,
    })
}

/// A client that does nothing but hold connections open and answer (and
/// send) liveness probes, as every node does.
fn client() -> Result<Swarm<liveness::Behaviour>> {
    let activity = liveness::Activity::default();
    let behaviour = liveness::Behaviour::default().with_activity(activity.clone());
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| hush_host::tcp_transport(key, activity))?
        .with_behaviour(|_| behaviour)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build())
}

pub async fn relay_idle(as_json: bool, connections: usize) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("hush-bench-idle-")
        .tempdir()?;
    let mut relay = start_relay(dir.path(), connections).await?;
    let pid = relay.process.child.id().context("the relay has no pid")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = memory(pid)?;

    let (established_tx, mut established) = tokio::sync::mpsc::channel::<Result<()>>(1024);
    let clients = connections.div_ceil(PER_IDENTITY);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let n = PER_IDENTITY.min(connections - i * PER_IDENTITY);
        let mut swarm = client()?;
        let (address, peer, tx) = (relay.address.clone(), relay.peer, established_tx.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                let dial = DialOpts::peer_id(peer)
                    .addresses(vec![address.clone()])
                    .condition(PeerCondition::Always)
                    .build();
                if let Err(e) = swarm.dial(dial) {
                    let _ = tx.send(Err(dial_failed(e))).await;
                    return;
                }
            }
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { .. } => {
                        let _ = tx.send(Ok(())).await;
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        let _ = tx
                            .send(Err(anyhow::anyhow!("a connection failed: {error}")))
                            .await;
                    }
                    SwarmEvent::ConnectionClosed { cause, .. } => {
                        let _ = tx
                            .send(Err(anyhow::anyhow!(
                                "the relay closed a connection: {cause:?}"
                            )))
                            .await;
                    }
                    _ => {}
                }
            }
        }));
        // Pace the handshakes a little: the relay and the bench share 2 cores.
        if i % 64 == 63 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(established_tx);
    let mut open = 0usize;
    while open < connections {
        match tokio::time::timeout(Duration::from_secs(120), established.recv()).await {
            Ok(Some(Ok(()))) => open += 1,
            Ok(Some(Err(e))) => {
                return Err(e.context(format!("after {open} of {connections} connections")));
            }
            Ok(None) => bail!("the clients stopped after {open} of {connections} connections"),
            Err(_) => bail!("only {open} of {connections} connections opened within 120 s"),
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    // Let identify and the other hellos finish, then read.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = memory(pid)?;
    let closed = matches!(
        established.try_recv(),
        Ok(Err(_)) | Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
    );
    if closed {
        bail!("a connection closed while the bench measured");
    }
    let per = |a: u64, b: u64| (a.saturating_sub(b) as f64 * 1024.0 / connections as f64).round();
    let report = json!({
        "connections": connections,
        "connect_s": (connect_s * 10.0).round() / 10.0,
        "relay_rss_kib_before": before.rss,
        "relay_rss_kib_after": after.rss,
        "rss_bytes_per_connection": per(after.rss, before.rss),
        "anon_bytes_per_connection": per(after.anon, before.anon),
        "file_bytes_per_connection": per(after.file, before.file),
    });
    for task in tasks {
        task.abort();
    }
    let _ = relay.process.child.kill().await;
    if as_json {
        println!("{report}");
    } else {
        println!(
            "{connections} idle connections (opened in {connect_s:.1} s): relay RSS {} → {} KiB, {} bytes per connection ({} anonymous)",
            before.rss,
            after.rss,
            report["rss_bytes_per_connection"],
            report["anon_bytes_per_connection"]
        );
    }
    Ok(())
}

fn dial_failed(e: DialError) -> anyhow::Error {
    anyhow::anyhow!("could not dial the relay: {e}")
}

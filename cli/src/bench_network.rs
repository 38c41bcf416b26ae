//! `hush bench network`: the relay network on loopback (issue 19, item 5).
//!
//! N relays run in this process, form the DHT through the first one and
//! announce themselves (`RelayRecord`). Then M mailboxes, each a node's as
//! it would be, search for home relays exactly as `hush node run
//! --bootstrap` does (`hush_node::discovery::search`, from a relay picked
//! at random): how long a search takes, how many DHT requests its lookup
//! makes, and how evenly the choices spread over the relays. Last, churn:
//! a few real nodes get their home relays from the DHT, go offline, get a
//! message each, a fifth of the relays stop for good, and the nodes come
//! back: the share of messages delivered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use hush_node::{Node, NodeConfig};
use hush_protocol::MailboxId;
use libp2p::{Multiaddr, PeerId};
use rand::seq::SliceRandom;
use serde_json::json;

use crate::bench::percentile;
use crate::bench_relay::{RunningRelay, start_dht};
use crate::demo::init_home;

/// Searches run at once.
const PARALLEL: usize = 8;
/// The share of relays stopped in the churn run.
const CHURN: f64 = 0.2;
/// Lookups whose rounds are counted (`crate::bench_hops`), at most.
const HOP_LOOKUPS: usize = 500;

pub async fn network(relays: usize, nodes: usize, churn_nodes: usize, as_json: bool) -> Result<()> {
    if relays < 4 {
        bail!("--relays must be at least 4 (three home relays and one to stop)");
    }
    let dir = tempfile::Builder::new().prefix("hush-bench-").tempdir()?;
    let rss_before = rss_kib()?;
    let mut running = start_dht(dir.path(), relays).await?;
    // Let the DHT form and every relay's record spread (each relay puts
    // it again as its routing table grows).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_per_relay_mib = rss_kib()?.saturating_sub(rss_before) as f64 / 1024.0 / relays as f64;
    let addresses: Vec<Multiaddr> = running.iter().map(|r| r.address.clone()).collect();

    let started = Instant::now();
    let searches: Vec<hush_node::discovery::Search> = futures::stream::iter(0..nodes)
        .map(|_| {
            let bootstrap = addresses
                .choose(&mut rand::thread_rng())
                .cloned()
                .into_iter()
                .collect::<Vec<_>>();
            let mailbox = MailboxId(rand::random());
            async move { hush_node::discovery::search(&bootstrap, mailbox, 3).await }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let search_secs = started.elapsed().as_secs_f64();
    let mut lookup_ms: Vec<u64> = searches.iter().map(|s| s.took.as_millis() as u64).collect();
    lookup_ms.sort_unstable();
    let mut requests: Vec<u64> = searches.iter().map(|s| u64::from(s.requests)).collect();
    requests.sort_unstable();
    let mut load: HashMap<PeerId, u64> = running.iter().map(|r| (r.peer, 0)).collect();
    let mut short = 0;
    for search in &searches {
        if search.chosen.len() < 3 {
            short += 1;
        }
        for addr in &search.chosen {
            if let Some(peer) = peer_in(addr) {
                *load.entry(peer).or_default() += 1;
            }
        }
    }
    let total: u64 = load.values().sum();
    let mean = total as f64 / relays as f64;
    let max = load.values().copied().max().unwrap_or(0) as f64;
    let max_over_mean = if mean > 0.0 { max / mean } else { 0.0 };

    let mut hops = lookup_hops(&addresses, nodes.min(HOP_LOOKUPS)).await?;
    hops.sort_unstable();
    let hops_bound = (relays as f64).log2() / 2.0 + 2.0;

    let delivered = churn(dir.path(), &addresses, &mut running, churn_nodes, as_json).await?;
    for relay in running {
        relay.stop().await;
    }

    let report = json!({
        "relays": relays,
        "nodes": nodes,
        "lookup_ms_p50": percentile(&lookup_ms, 0.50),
        "lookup_ms_p99": percentile(&lookup_ms, 0.99),
        "lookup_requests_p50": percentile(&requests, 0.50),
        "lookup_hops_p50": percentile(&hops, 0.50),
        "lookup_hops_p99": percentile(&hops, 0.99),
        "lookup_hops_bound": (hops_bound * 100.0).round() / 100.0,
        "hop_lookups": hops.len(),
        "home_relay_load_max_over_mean": (max_over_mean * 100.0).round() / 100.0,
        "searches_with_fewer_than_3": short,
        "searches_per_s": (nodes as f64 / search_secs).round(),
        "delivery_after_churn": delivered,
        "churn_nodes": churn_nodes,
        "rss_mib_per_relay": (rss_per_relay_mib * 10.0).round() / 10.0,
    });
    if as_json {
        println!("{report}");
    } else {
        println!(
            "{relays} relays, {nodes} searches for home relays: p50 {} ms, p99 {} ms, {} DHT requests (p50)",
            report["lookup_ms_p50"], report["lookup_ms_p99"], report["lookup_requests_p50"]
        );
        println!(
            "lookup rounds (hops), α = 3, over {} lookups: p50 {}, p99 {} (log2(N)/2 + 2 = {hops_bound:.1})",
            hops.len(),
            report["lookup_hops_p50"],
            report["lookup_hops_p99"]
        );
        println!(
            "mailboxes per relay: max {max} against a mean of {mean:.1} ({max_over_mean:.2}); {short} searches found fewer than 3"
        );
        println!(
            "offline mail delivered after {:.0} % of the relays stopped: {delivered:.2} ({churn_nodes} nodes)",
            CHURN * 100.0
        );
        println!("memory per relay: {rss_per_relay_mib:.1} MiB");
    }
    Ok(())
}

/// Rounds of `count` lookups of random keys, each from a random relay
/// (see `crate::bench_hops`); lookups that could not start are left out.
async fn lookup_hops(addresses: &[Multiaddr], count: usize) -> Result<Vec<u64>> {
    let prober = crate::bench_hops::Prober::new()?;
    let starts: Vec<(PeerId, Multiaddr)> = addresses
        .iter()
        .filter_map(|a| Some((peer_in(&a.to_string())?, a.clone())))
        .collect();
    let prober = &prober;
    let hops: Vec<u64> = futures::stream::iter(0..count)
        .map(|_| {
            let start = starts.choose(&mut rand::thread_rng()).cloned();
            let key: [u8; 32] = rand::random();
            async move {
                match prober.hops(start?, &key).await {
                    Ok(rounds) => Some(rounds as u64),
                    Err(e) => {
                        tracing::warn!(error = %e, "a lookup of the hop count failed");
                        None
                    }
                }
            }
        })
        .buffer_unordered(PARALLEL)
        .filter_map(|rounds| async move { rounds })
        .collect()
        .await;
    if hops.is_empty() {
        bail!("no lookup could count its hops: the relays did not answer FIND_NODE");
    }
    Ok(hops)
}

/// `count` nodes pick their home relays through the DHT, go offline, and
/// each gets a message from a sender; a fifth of the relays stop; the
/// nodes come back. The share of messages they read.
async fn churn(
    dir: &std::path::Path,
    addresses: &[Multiaddr],
    running: &mut Vec<RunningRelay>,
    count: usize,
    as_json: bool,
) -> Result<f64> {
    if count == 0 {
        return Ok(1.0);
    }
    let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse()?;
    let config = |bootstrap: &Multiaddr| {
        let mut c = NodeConfig::default().with_listen(loopback.clone());
        c.bootstrap = vec![bootstrap.clone()];
        c
    };
    let sender_home = init_home(dir, "sender")?;
    let sender = Node::start(&sender_home, config(&addresses[0])).await?;
    let mut homes = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("n{i}");
        let home = init_home(dir, &name)?;
        let node = Node::start(&home, config(&addresses[i % addresses.len()])).await?;
        node.add_contact("sender", &sender.card().await?).await?;
        sender.add_contact(&name, &node.card().await?).await?;
        // Both online: rights and pairwise mailboxes change hands, and
        // the node stocks keys at its relays.
        sender.send(&name, "hello").await?;
        wait_for(Duration::from_secs(20), || async {
            Ok(node
                .status()
                .await?
                .relays
                .iter()
                .all(|r| r.keys_left.is_some_and(|n| n > 0)))
        })
        .await
        .context("a node's keys at its relays")?;
        node.shutdown().await;
        homes.push((name, home, node));
    }
    for (name, _, _) in &homes {
        sender.send(name, "while you were away").await?;
    }
    // Deposited at every relay of each recipient (the outbox keeps them,
    // as `sent`, until the recipient acks).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stop = ((running.len() as f64) * CHURN).round() as usize;
    running.shuffle(&mut rand::thread_rng());
    for relay in running.drain(..stop) {
        relay.stop().await;
    }
    if !as_json {
        eprintln!("{stop} relays stopped; {count} nodes coming back");
    }
    let mut delivered = 0;
    for (name, home, old) in homes {
        drop(old);
        let node = Node::start(&home, NodeConfig::default().with_listen(loopback.clone())).await?;
        let got = wait_for(Duration::from_secs(30), || async {
            Ok(node
                .history("sender", hush_node::Page::Before(None), 10)?
                .iter()
                .any(|m| m.text == "while you were away"))
        })
        .await
        .is_ok();
        if got {
            delivered += 1;
        } else if !as_json {
            eprintln!("{name} did not get its message");
        }
        node.shutdown().await;
    }
    sender.shutdown().await;
    Ok(delivered as f64 / count as f64)
}

async fn wait_for<F, Fut>(timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn peer_in(addr: &str) -> Option<PeerId> {
    addr.rsplit("/p2p/").next()?.parse().ok()
}

/// This process's resident memory, KiB.
fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

//! `hush bench group --members N`: N in-process nodes on loopback TCP in one
//! group. The first creates it and invites the others (each is its
//! contact); all join. After a warm-up (Olm sessions, the Megolm key, the
//! gossipsub mesh), the creator publishes `messages` 256-byte texts, one
//! every `--interval-ms` (20), and every other member's event stream timestamps each one.
//!
//! - `p50_ms`, `p99_ms`: `group.send` called → decrypted and stored at a
//!   member, over every (message, member) pair;
//! - `late`: (message, member) pairs slower than 50 ms, at `late_members`
//!   members, over `late_messages` messages (a few members: their mesh;
//!   many members over a few messages: the process stalled);
//! - `missing`: (message, member) pairs not arrived 10 s after the last
//!   send, at `missing_members` members (named on stderr, with the first
//!   messages short by their index in the run and how many members each
//!   reached, and the events the bench's listeners lagged); of those,
//!   `missing_after_40s` still had not 30 s later (lost, not late);
//! - `bytes_per_member_per_msg`: all loopback traffic during the measured
//!   run (gossip copies, control frames, receipts over Olm, pings: from
//!   `/proc/net/dev`), per member and message; `ciphertext_bytes` is one
//!   published message, for the ratio;
//! - `cpu_cores_busy`, `cpu_us_per_delivery`: the process's CPU time over
//!   the measured run (all N nodes share the machine's cores: once they are
//!   all busy, latency is queueing), and `idle_cores_busy` over the last
//!   two of the quiet seconds before it (`--quiet-secs`, 2 unless told:
//!   more lets what setup left running end first);
//! - `invite_s`: the creator adding every member as a contact and
//!   inviting it, one after another (before `setup_s` starts);
//! - `setup_s`: from the last invitation, every member joining and seeing
//!   every other joined, and the warm-up (each change is published once on
//!   the group's channel; Olm carries the op set to each invitee), then
//!   the quiet seconds (`quiet_s`, `idle_cores_busy`); its phases, in seconds from the
//!   same start: `joined_s` (every `group.join` returned), `converged_s`
//!   (every member sees all N joined), `warm_s` (a message reached all);
//!   until `converged_s`, all loopback traffic (`setup_loopback_mb`) and
//!   the process's CPU (`setup_cores_busy`); after the quiet seconds, the
//!   peers a node is connected to, on average (`connected_peers_mean`);
//! - `peak_rss_mib`: the whole process (all N nodes), and per node;
//! - with `--trace`, `per_message`: each measured message's index, when
//!   it was sent (ms from the first send), how long it took to reach its
//!   first, median and last member and how many it reached (counted after
//!   the extra 30 s when deliveries were missing), `slow_from` (the first
//!   message whose median member took over 50 ms) and `cores_by_second`
//!   (the process's cores busy in each second of the measured run): when
//!   a run goes slow, which messages went slow first and whether the
//!   process was saturated by then.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hush_node::{Event, Node, NodeConfig};
use hush_protocol::{
    AccountId, Body, DeviceId, MegolmOutbound, MessageId, Payload, PublishKey, Wire,
};
use libp2p::Multiaddr;
use serde_json::json;
use tokio::sync::{Mutex, broadcast};

use crate::bench::percentile;
use crate::demo::init_home;

const TEXT_LEN: usize = 256;
/// A delivery slower than this is counted as late (`late`,
/// `late_members`, `late_messages`).
const LATE: Duration = Duration::from_millis(50);

/// Message id → (member index, when it was stored there).
type Arrivals = HashMap<String, Vec<(usize, Instant)>>;
/// How long the bench waits for one node's answer before naming it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn loopback_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/dev") else {
        return 0;
    };
    text.lines()
        .find(|l| l.trim_start().starts_with("lo:"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|rx| rx.parse().ok())
        .unwrap_or(0)
}

/// CPU time used by this process so far (user + system), in clock ticks
/// of 10 ms (Linux `USER_HZ`).
pub(crate) fn cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name, which is in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some(user + system)
        })
        .unwrap_or(0)
}

fn peak_rss_kib() -> u64 {
    crate::bench::peak_rss_kib("self")
}

/// The size of one published message carrying a `TEXT_LEN` text.
fn ciphertext_bytes() -> usize {
    let payload = Payload {
        sender_account: AccountId([0; 32]),
        sender_device: DeviceId([0; 32]),
        id: MessageId(0),
        body: Body::Text("x".repeat(TEXT_LEN)),
    };
    let mut session = MegolmOutbound::new();
    let key = PublishKey::from_secret(&[0; 32]);
    key.seal(session.id(), session.encrypt(&payload.to_padded()))
        .to_bytes()
        .len()
}

/// What `hush bench group` runs.
pub struct Shape {
    pub members: usize,
    pub messages: usize,
    /// Between two measured messages.
    pub interval: Duration,
    /// Between the warm-up and the measured messages; the idle load is
    /// read over its last two seconds.
    pub quiet: Duration,
    /// Report each message's way and the cores busy each second.
    pub trace: bool,
}

/// One measured message's way to the members (`--trace`).
#[derive(Debug, Clone, PartialEq)]
struct MessageTrace {
    /// Since the first measured message was sent.
    sent_ms: f64,
    /// To its first, median and last member (none if it reached none).
    first_ms: Option<f64>,
    median_ms: Option<f64>,
    last_ms: Option<f64>,
    reached: usize,
}

/// Each sent message's way, from its arrivals so far.
fn message_traces(sent: &[(String, Instant)], arrivals: &Arrivals) -> Vec<MessageTrace> {
    let Some((_, start)) = sent.first() else {
        return Vec::new();
    };
    let ms = |d: Duration| (d.as_micros() as f64 / 100.0).round() / 10.0;
    sent.iter()
        .map(|(id, at)| {
            let mut took: Vec<u64> = arrivals
                .get(id)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|(_, t)| t.duration_since(*at).as_micros() as u64)
                .collect();
            took.sort_unstable();
            let at_q =
                |q| (!took.is_empty()).then(|| ms(Duration::from_micros(percentile(&took, q))));
            MessageTrace {
                sent_ms: ms(at.duration_since(*start)),
                first_ms: at_q(0.0),
                median_ms: at_q(0.5),
                last_ms: at_q(1.0),
                reached: took.len(),
            }
        })
        .collect()
}

/// The first message whose median member took longer than `LATE`.
fn slow_from(traces: &[MessageTrace]) -> Option<usize> {
    let late = LATE.as_secs_f64() * 1000.0;
    traces
        .iter()
        .position(|t| t.median_ms.is_some_and(|m| m > late))
}

pub async fn group(shape: Shape, as_json: bool) -> Result<()> {
    let Shape {
        members,
        messages,
        interval,
        quiet,
        trace,
    } = shape;
    if members < 2 {
        bail!("--members must be at least 2");
    }
    let dir = tempfile::Builder::new().prefix("hush-bench-").tempdir()?;
    let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse()?;
    let mut nodes = Vec::with_capacity(members);
    for i in 0..members {
        let home = init_home(dir.path(), &format!("m{i}"))?;
        let mut config = NodeConfig::default().with_listen(loopback.clone());
        config.mdns = false;
        nodes.push(Node::start(&home, config).await?);
    }
    let creator = nodes[0].clone();
    let creator_card = creator.card().await?;
    let invite_started = Instant::now();
    let view = creator.group_create("bench").await?;
    let mut report_at = invite_started + Duration::from_secs(10);
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let name = format!("m{i}");
        creator.add_contact(&name, &node.card().await?).await?;
        node.add_contact("m0", &creator_card).await?;
        creator.group_invite(&view.id, &name, false).await?;
        if Instant::now() > report_at {
            eprintln!(
                "bench group: m0 has invited {i} of {} after {} s",
                members - 1,
                invite_started.elapsed().as_secs()
            );
            report_at += Duration::from_secs(10);
        }
    }
    let invite_s = invite_started.elapsed().as_secs();
    // Every member sees the invitation, joins, and sees everyone joined
    // (each invitation and join once on the group's channel, what gossip
    // lost repaired by the heads exchange).
    let setup_started = Instant::now();
    let setup_ticks = cpu_ticks();
    let setup_bytes = loopback_bytes();
    let deadline = setup_started + Duration::from_secs(60 + (members * members) as u64 / 10);
    // Members join independently, each as soon as its node has the
    // invitation (as people do; one after another, the joins queued
    // behind each other's commits and invitations: 7-9 s of 100 members'
    // setup was that queue).
    let joins = nodes.iter().skip(1).map(|node| async {
        loop {
            match node.group_join(&view.id).await {
                Ok(_) => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("a member never saw its invitation"),
            }
        }
    });
    futures::future::try_join_all(joins).await?;
    let joined_s = setup_started.elapsed().as_secs_f64();
    eprintln!(
        "bench group: all joined after {} s; waiting for every member to see all {members}",
        setup_started.elapsed().as_secs()
    );
    let mut report_at = Instant::now() + Duration::from_secs(10);
    // When each member first saw all N (to the poll's half second): the
    // spread says whether setup waits on most members or on a few.
    let mut saw_all: Vec<Option<f64>> = vec![None; members];
    loop {
        let mut behind = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            // A node that does not answer is named, not waited on forever.
            let seen = tokio::time::timeout(CALL_TIMEOUT, node.group_members(&view.id))
                .await
                .with_context(|| format!("member m{i} did not answer within {CALL_TIMEOUT:?}"))??
                .group
                .members;
            if seen < members {
                behind.push((i, seen));
            } else if saw_all[i].is_none() {
                saw_all[i] = Some(setup_started.elapsed().as_secs_f64());
            }
        }
        if behind.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "membership did not converge: {} members see fewer than {members} joined \
                 (member: joined seen) {behind:?}",
                behind.len()
            );
        }
        if Instant::now() > report_at {
            // Who is behind, so a stall can be traced in the logs (the
            // node span's `name` is `m{i}`).
            let named: Vec<String> = behind
                .iter()
                .take(8)
                .map(|(i, seen)| format!("m{i} sees {seen}"))
                .collect();
            eprintln!(
                "bench group: after {} s, {} members see fewer than {members} joined: {}{}",
                setup_started.elapsed().as_secs(),
                behind.len(),
                named.join(", "),
                if behind.len() > named.len() {
                    ", …"
                } else {
                    ""
                }
            );
            report_at += Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converged_s = setup_started.elapsed().as_secs_f64();
    let setup_mb = loopback_bytes().saturating_sub(setup_bytes) as f64 / 1e6;
    let setup_cores = cpu_ticks().saturating_sub(setup_ticks) as f64 / 100.0 / converged_s;
    let mut saw: Vec<f64> = saw_all.into_iter().flatten().collect();
    saw.sort_by(f64::total_cmp);
    let at = |q: f64| {
        saw.get(((saw.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    eprintln!(
        "bench group: every member sees all {members} after {converged_s:.1} s \
         (members seeing all by: half {:.1} s, 90 % {:.1} s, 99 % {:.1} s); warming up",
        at(0.5),
        at(0.9),
        at(0.99)
    );

    // Each member's arrivals: message id → which member stored it, when.
    let arrivals: Arc<Mutex<Arrivals>> = Arc::default();
    // Events the listeners missed (a broadcast receiver that fell behind).
    let lagged: Arc<AtomicU64> = Arc::default();
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let mut events = node.subscribe();
        let arrivals = arrivals.clone();
        let lagged = lagged.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(journaled) => {
                        if let Event::GroupMessage { message, .. } = &journaled.event {
                            arrivals
                                .lock()
                                .await
                                .entry(message.id.clone())
                                .or_default()
                                .push((i, Instant::now()));
                        }
                    }
                    // Events this listener was too slow for are lost to the
                    // figures (counted as missing), not to the node.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
    let text = "x".repeat(TEXT_LEN);
    let others = members - 1;
    // Warm up until a message reaches everyone: one message, then another
    // if none of those sent reached every member within 5 s. (Any of them
    // counts: asking one message to reach all within half a second, as
    // this did, measured latency, and under load it never came.)
    let warm_deadline = Instant::now() + Duration::from_secs(120 + members as u64);
    let mut warm_ids: Vec<String> = Vec::new();
    let mut report_at = Instant::now() + Duration::from_secs(10);
    'warm: loop {
        warm_ids.push(creator.group_send(&view.id, &text).await?.id);
        let next = Instant::now() + Duration::from_secs(5);
        while Instant::now() < next {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let a = arrivals.lock().await;
            let best = warm_ids
                .iter()
                .map(|id| a.get(id).map_or(0, Vec::len))
                .max()
                .unwrap_or(0);
            if best == others {
                break 'warm;
            }
            if Instant::now() > report_at {
                // Who lacks the first message: the same members lacking
                // every one points at their key or their mesh.
                let lacking: Vec<usize> = match warm_ids.first().map(|id| a.get(id)) {
                    Some(Some(got)) if got.len() + 32 >= others => (1..members)
                        .filter(|i| !got.iter().any(|(m, _)| m == i))
                        .collect(),
                    _ => Vec::new(),
                };
                eprintln!(
                    "bench group: warm-up after {} s: {} messages sent, the best reached {best} of {others} ({} events lagged){}",
                    setup_started.elapsed().as_secs(),
                    warm_ids.len(),
                    lagged.load(Ordering::Relaxed),
                    if lacking.is_empty() {
                        String::new()
                    } else {
                        format!("; the first lacks at members {lacking:?}")
                    }
                );
                report_at += Duration::from_secs(10);
            }
            if Instant::now() > warm_deadline {
                bail!(
                    "warm-up: the best of {} messages reached {best} of {others} members in time",
                    warm_ids.len()
                );
            }
        }
    }
    let warm_s = setup_started.elapsed().as_secs_f64();
    // Quiet seconds (`--quiet-secs`); the last two: what N idle nodes
    // cost (heartbeats, pings, ticks, and what setup left running).
    let idle_window = Duration::from_secs(2);
    tokio::time::sleep(quiet.saturating_sub(idle_window)).await;
    let idle_before = cpu_ticks();
    tokio::time::sleep(idle_window).await;
    let idle_cores = (cpu_ticks().saturating_sub(idle_before)) as f64 / 200.0;
    let setup_s = setup_started.elapsed().as_secs();
    // The peers each node is connected to once the group formed (what
    // setup dialled: the creator holds one to every invitee).
    let mut connected = 0;
    for (i, node) in nodes.iter().enumerate() {
        connected += tokio::time::timeout(CALL_TIMEOUT, node.status())
            .await
            .with_context(|| format!("member m{i} did not answer within {CALL_TIMEOUT:?}"))??
            .connected_peers;
    }
    let connected_mean = connected as f64 / members as f64;
    // Progress on stderr, so a profiler can be attached for the run alone.
    eprintln!(
        "bench group: {members} members joined and warm after {setup_s} s; measuring {messages} messages"
    );

    let bytes_before = loopback_bytes();
    let (cpu_before, wall_before) = (cpu_ticks(), Instant::now());
    // The cores busy in each second of the measured run (`--trace`).
    let cores_by_second: Arc<std::sync::Mutex<Vec<f64>>> = Arc::default();
    let sampler = trace.then(|| {
        let seconds = cores_by_second.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut before = cpu_ticks();
            loop {
                tick.tick().await;
                let now = cpu_ticks();
                if let Ok(mut seconds) = seconds.lock() {
                    seconds.push(now.saturating_sub(before) as f64 / 100.0);
                }
                before = now;
            }
        })
    });
    let mut sent: Vec<(String, Instant)> = Vec::with_capacity(messages);
    let mut next = Instant::now();
    for _ in 0..messages {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let at = Instant::now();
        let r = creator.group_send(&view.id, &text).await?;
        sent.push((r.id, at));
    }
    // Let the last ones land (and their receipts travel).
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        let done = {
            let a = arrivals.lock().await;
            sent.iter()
                .all(|(id, _)| a.get(id).map_or(0, Vec::len) >= others)
        };
        if done || Instant::now() > settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bytes = loopback_bytes().saturating_sub(bytes_before);
    let cpu_ms = cpu_ticks().saturating_sub(cpu_before) * 10;
    let wall_ms = wall_before.elapsed().as_millis().max(1) as u64;
    if let Some(task) = sampler {
        task.abort();
    }
    let cores_by_second: Vec<f64> = cores_by_second
        .lock()
        .map(|seconds| seconds.clone())
        .unwrap_or_default();
    eprintln!("bench group: measured");

    let a = arrivals.lock().await;
    let mut latencies: Vec<u64> = Vec::new();
    let mut missing = 0;
    // Which members lack how many, to trace a member that falls behind.
    let mut lacking: BTreeMap<usize, usize> = BTreeMap::new();
    // Deliveries over `LATE`: at few members, a member's mesh; over few
    // messages at many members, a stall of the whole process.
    let (mut late, mut late_members, mut late_messages) = (0, HashSet::new(), 0);
    for (id, at) in &sent {
        let got = a.get(id).map_or(&[][..], Vec::as_slice);
        missing += others.saturating_sub(got.len());
        for i in (1..members).filter(|i| !got.iter().any(|(m, _)| m == i)) {
            *lacking.entry(i).or_default() += 1;
        }
        let before = late;
        for (m, t) in got {
            let latency = t.duration_since(*at);
            if latency > LATE {
                late += 1;
                late_members.insert(*m);
            }
            latencies.push(latency.as_micros() as u64);
        }
        late_messages += usize::from(late > before);
    }
    drop(a);
    // Late or lost: what is missing now gets another 30 s (gossip's
    // repair, the heads exchange, the relays' history).
    let mut missing_after_40s = 0;
    if missing > 0 {
        let a = arrivals.lock().await;
        let short: Vec<(usize, usize)> = sent
            .iter()
            .enumerate()
            .map(|(n, (id, _))| (n, a.get(id).map_or(0, Vec::len)))
            .filter(|(_, got)| *got < others)
            .take(20)
            .collect();
        drop(a);
        eprintln!(
            "bench group: {missing} deliveries missing after 10 s, at {} members (member m: count) {:?}; messages short (index: members reached) {short:?}; {} events lagged; waiting 30 s more",
            lacking.len(),
            lacking.iter().take(20).collect::<Vec<_>>(),
            lagged.load(Ordering::Relaxed),
        );
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let still = {
                let a = arrivals.lock().await;
                sent.iter()
                    .map(|(id, _)| others.saturating_sub(a.get(id).map_or(0, Vec::len)))
                    .sum::<usize>()
            };
            missing_after_40s = still;
            if still == 0 || Instant::now() > until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    latencies.sort_unstable();
    let traces = if trace {
        message_traces(&sent, &*arrivals.lock().await)
    } else {
        Vec::new()
    };
    let ciphertext = ciphertext_bytes();
    let per_member = bytes as f64 / (others as f64 * messages as f64);
    let rss = peak_rss_kib();
    let mut report = json!({
        "members": members,
        "interval_ms": interval.as_millis() as u64,
        "quiet_s": quiet.as_secs(),
        "invite_s": invite_s,
        "setup_s": setup_s,
        "joined_s": (joined_s * 10.0).round() / 10.0,
        "converged_s": (converged_s * 10.0).round() / 10.0,
        "warm_s": (warm_s * 10.0).round() / 10.0,
        "setup_loopback_mb": setup_mb.round(),
        "setup_cores_busy": (setup_cores * 100.0).round() / 100.0,
        "connected_peers_mean": (connected_mean * 10.0).round() / 10.0,
        "messages": messages,
        "p50_ms": percentile(&latencies, 0.50) as f64 / 1000.0,
        "p99_ms": percentile(&latencies, 0.99) as f64 / 1000.0,
        "missing": missing,
        "missing_members": lacking.len(),
        "missing_after_40s": missing_after_40s,
        "late": late,
        "late_members": late_members.len(),
        "late_messages": late_messages,
        "events_lagged": lagged.load(Ordering::Relaxed),
        "bytes_per_member_per_msg": per_member.round() as u64,
        "ciphertext_bytes": ciphertext,
        "bytes_ratio": (per_member / ciphertext as f64 * 100.0).round() / 100.0,
        "cpu_cores_busy": (cpu_ms as f64 / wall_ms as f64 * 100.0).round() / 100.0,
        "idle_cores_busy": (idle_cores * 100.0).round() / 100.0,
        "cpu_us_per_delivery": cpu_ms * 1000 / (others * messages).max(1) as u64,
        "peak_rss_mib": (rss as f64 / 1024.0 * 10.0).round() / 10.0,
        "peak_rss_mib_per_node": (rss as f64 / 1024.0 / members as f64 * 10.0).round() / 10.0,
    });
    if trace {
        report["slow_from"] = json!(slow_from(&traces));
        report["cores_by_second"] = json!(cores_by_second);
        report["per_message"] = traces
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({
                    "i": i,
                    "sent_ms": t.sent_ms,
                    "first_ms": t.first_ms,
                    "median_ms": t.median_ms,
                    "last_ms": t.last_ms,
                    "reached": t.reached,
                })
            })
            .collect();
    }
    for node in &nodes {
        node.shutdown().await;
    }
    if as_json {
        println!("{report}");
    } else {
        println!(
            "group of {members} (invited in {invite_s} s, formed in {setup_s} s more, {} peers connected per node), {messages} messages of {TEXT_LEN} bytes, one per {} ms",
            report["connected_peers_mean"],
            interval.as_millis()
        );
        println!(
            "publish → decrypted at a member: p50 {} ms, p99 {} ms ({} deliveries missing; {late} over {} ms, at {} members)",
            report["p50_ms"],
            report["p99_ms"],
            missing,
            LATE.as_millis(),
            report["late_members"]
        );
        println!(
            "bytes per member per message: {} ({}× the {ciphertext}-byte ciphertext)",
            report["bytes_per_member_per_msg"], report["bytes_ratio"]
        );
        println!(
            "CPU: {} cores busy on average, {} µs per delivery ({} cores busy idle)",
            report["cpu_cores_busy"], report["cpu_us_per_delivery"], report["idle_cores_busy"]
        );
        println!(
            "peak RSS: {} MiB ({} MiB per node)",
            report["peak_rss_mib"], report["peak_rss_mib_per_node"]
        );
        if trace {
            print_traces(&traces, &cores_by_second, others);
        }
    }
    Ok(())
}

/// `--trace` in text: the messages in tenths of the run, then the cores
/// busy by second.
fn print_traces(traces: &[MessageTrace], cores_by_second: &[f64], others: usize) {
    match slow_from(traces) {
        Some(i) => println!(
            "the first message whose median member took over {} ms: #{i}",
            LATE.as_millis()
        ),
        None => println!(
            "no message's median member took over {} ms",
            LATE.as_millis()
        ),
    }
    let tenth = traces.len().div_ceil(10).max(1);
    for (n, part) in traces.chunks(tenth).enumerate() {
        let (from, to) = (n * tenth, n * tenth + part.len() - 1);
        let mut medians: Vec<u64> = part
            .iter()
            .filter_map(|t| t.median_ms.map(|m| (m * 1000.0) as u64))
            .collect();
        medians.sort_unstable();
        let last = part.iter().filter_map(|t| t.last_ms).fold(0.0, f64::max);
        let fewest = part.iter().map(|t| t.reached).min().unwrap_or(0);
        println!(
            "messages #{from}-#{to} (sent from {:.1} s): median of medians {:.1} ms, slowest last member {last:.1} ms, fewest reached {fewest} of {others}",
            part[0].sent_ms / 1000.0,
            percentile(&medians, 0.5) as f64 / 1000.0,
        );
    }
    let cores: Vec<String> = cores_by_second.iter().map(|c| format!("{c:.2}")).collect();
    println!("cores busy by second: {}", cores.join(" "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_is_traced_to_its_first_median_and_last_member_and_the_first_slow_one_named() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let sent = vec![
            ("a".to_string(), start),
            ("b".to_string(), start + ms(200)),
            ("c".to_string(), start + ms(400)),
        ];
        let mut arrivals = Arrivals::new();
        // "a" reaches three members in 5, 10 and 30 ms.
        arrivals.insert(
            "a".into(),
            vec![(2, start + ms(10)), (1, start + ms(5)), (3, start + ms(30))],
        );
        // "b" reaches two, its median member after 120 ms; "c" none.
        arrivals.insert("b".into(), vec![(1, start + ms(300)), (2, start + ms(320))]);
        let traces = message_traces(&sent, &arrivals);
        assert_eq!(
            traces[0],
            MessageTrace {
                sent_ms: 0.0,
                first_ms: Some(5.0),
                median_ms: Some(10.0),
                last_ms: Some(30.0),
                reached: 3,
            }
        );
        assert_eq!(traces[1].sent_ms, 200.0);
        assert_eq!(traces[1].first_ms, Some(100.0));
        assert_eq!(traces[1].last_ms, Some(120.0));
        assert_eq!(traces[1].reached, 2);
        assert_eq!(
            traces[2],
            MessageTrace {
                sent_ms: 400.0,
                first_ms: None,
                median_ms: None,
                last_ms: None,
                reached: 0,
            }
        );
        assert_eq!(slow_from(&traces), Some(1));
        assert_eq!(slow_from(&traces[..1]), None);
        assert!(message_traces(&[], &arrivals).is_empty());
    }
}

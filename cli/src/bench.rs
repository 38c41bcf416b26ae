//! `hush bench direct`: two nodes on loopback TCP, durable storage at both
//! ends. Prints one JSON object (or a table).
//!
//! - `p50_us`, `p99_us`: `send` called → delivered ack processed by the
//!   sender, at a steady `--rate` (500 msg/s unless told);
//! - `max_us`, `late`, `late_sent_ms`: the slowest delivery of the latency
//!   run, how many took over 50 ms, and when the first and the last of
//!   those were sent (ms into the run): one stall of the process or the
//!   host puts them close together, a slow path spreads them out;
//! - `msgs_per_s`: pipelined 256-byte texts, first send to last delivered;
//! - `floor_rtt_us`: a bare libp2p request-response round trip (same
//!   transport stack, no storage, no crypto) carrying as many bytes as one
//!   text's envelope batch, median;
//! - `fsync_us`: one 4 KiB write and `fdatasync` in the nodes' folder,
//!   median;
//! - `floor_durable_us`: `floor_rtt_us` + 2 × `fsync_us`, the least a
//!   durable send → delivered can take (one round trip, the sender's and
//!   the receiver's disk), and `p50_over_floor`, the p50 in units of it;
//! - the same three measured at the latency run's pace (one round trip,
//!   one fsync every `1/rate` s) as `floor_rtt_paced_us`, `fsync_paced_us`,
//!   `floor_durable_paced_us` and `p50_over_paced_floor`. On a virtual
//!   machine a disk flush or a packet that comes after a pause costs more
//!   than one right after another (idle CPUs halt and take time to
//!   wake), and the latency run's messages come after pauses;
//! - `idle_rss_kib`: resident memory of one idle `hush node run` process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use hush_node::{Event, FrameCodec, Node, NodeConfig, Status};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use crate::demo::{NodeProcess, init_home};

const TEXT_LEN: usize = 256;

/// The most resident memory process `pid` (or `self`) reached
/// (`VmHWM`), in KiB; 0 if it cannot be read.
pub(crate) fn peak_rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A 256-byte text of ordinary words (`--words`).
fn words_text() -> String {
    const WORDS: &str = "see you at the lighthouse on friday for lunch and bring the maps \
        we talked about last week since the ferry leaves early and the weather \
        might turn so pack a coat and some water and call me when you are on \
        the way because the road along the coast is closed after the storm ok";
    let mut text: String = WORDS.split_whitespace().collect::<Vec<_>>().join(" ");
    text.truncate(TEXT_LEN);
    while text.len() < TEXT_LEN {
        text.push('.');
    }
    text
}

/// `sizes`: messages in the latency run, its rate, messages in the
/// throughput run.
pub async fn direct(as_json: bool, sizes: (usize, u64, usize), words: bool) -> Result<()> {
    let (latency_n, rate, throughput_n) = sizes;
    let dir = tempfile::Builder::new().prefix("hush-bench-").tempdir()?;
    let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse()?;
    let alice_home = init_home(dir.path(), "alice")?;
    let bob_home = init_home(dir.path(), "bob")?;
    let alice = Node::start(
        &alice_home,
        NodeConfig::default().with_listen(loopback.clone()),
    )
    .await?;
    let bob = Node::start(&bob_home, NodeConfig::default().with_listen(loopback)).await?;
    alice.add_contact("bob", &bob.card().await?).await?;
    bob.add_contact("alice", &alice.card().await?).await?;
    let text = if words {
        words_text()
    } else {
        "x".repeat(TEXT_LEN)
    };

    // Warm up: session set-up, connection, caches.
    for _ in 0..100 {
        let r = alice
            .send_and_wait("bob", &text, Status::Delivered, Duration::from_secs(20))
            .await?;
        if r.timed_out {
            bail!("warm-up message was not delivered within 20 s");
        }
    }

    let measured = latency(&alice, &text, latency_n, rate).await?;
    let (p50, p99) = (measured.p50_us, measured.p99_us);
    let msgs_per_s = throughput(&alice, "bob", &text, throughput_n).await?;
    let floor_rtt = bare_rtt(envelope_len(&text), None).await?;
    let fsync = fsync_us(dir.path(), None)?;
    let floor_durable = floor_rtt + 2 * fsync;
    let pace = Duration::from_micros(1_000_000 / rate.max(1));
    let floor_rtt_paced = bare_rtt(envelope_len(&text), Some(pace)).await?;
    let fsync_paced = fsync_us(dir.path(), Some(pace))?;
    let floor_durable_paced = floor_rtt_paced + 2 * fsync_paced;
    alice.shutdown().await;
    bob.shutdown().await;
    let idle_rss = idle_rss(dir.path()).await?;

    let report = json!({
        "p50_us": p50,
        "p99_us": p99,
        "max_us": measured.max_us,
        "late": measured.late,
        "late_sent_ms": measured.late_sent_ms.map(|(a, b)| [a, b]),
        "msgs_per_s": msgs_per_s.round() as u64,
        "floor_rtt_us": floor_rtt,
        "fsync_us": fsync,
        "floor_durable_us": floor_durable,
        "p50_over_floor": ratio(p50, floor_durable),
        "floor_rtt_paced_us": floor_rtt_paced,
        "fsync_paced_us": fsync_paced,
        "floor_durable_paced_us": floor_durable_paced,
        "p50_over_paced_floor": ratio(p50, floor_durable_paced),
        "idle_rss_kib": idle_rss,
        "latency_messages": latency_n,
        "latency_rate_per_s": rate,
        "throughput_messages": throughput_n,
        "text_bytes": TEXT_LEN,
        "words": words,
    });
    if as_json {
        println!("{report}");
    } else {
        println!(
            "send → delivered ack at {rate} msg/s: p50 {p50} µs, p99 {p99} µs, slowest {} µs",
            measured.max_us
        );
        if let Some((first, last)) = measured.late_sent_ms {
            println!(
                "{} deliveries over {} ms, sent between {first} and {last} ms into the run",
                measured.late,
                LATE.as_millis()
            );
        }
        println!(
            "pipelined throughput: {msgs_per_s:.0} msg/s ({throughput_n} × {TEXT_LEN} B, durable)"
        );
        println!("bare request-response round trip: {floor_rtt} µs; fsync {fsync} µs");
        println!(
            "durable floor (round trip + an fsync on each side): {floor_durable} µs; p50 is {:.2}× that",
            ratio(p50, floor_durable)
        );
        println!(
            "the same at {rate} per second: round trip {floor_rtt_paced} µs, fsync {fsync_paced} µs, floor {floor_durable_paced} µs; p50 is {:.2}× that",
            ratio(p50, floor_durable_paced)
        );
        println!("idle node resident memory: {idle_rss} KiB");
    }
    Ok(())
}

/// `a / b`, two decimals.
fn ratio(a: u64, b: u64) -> f64 {
    (a as f64 / b.max(1) as f64 * 100.0).round() / 100.0
}

/// A delivery slower than this is counted as late (`late`).
const LATE: Duration = Duration::from_millis(50);

/// What the latency run measured.
struct Latency {
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// Deliveries slower than [`LATE`].
    late: usize,
    /// When the first and the last late message were sent, in ms from the
    /// run's first send: one stall of the process or the host puts them
    /// close together, a slow path spreads them over the run.
    late_sent_ms: Option<(u64, u64)>,
}

/// Sends `n` messages at a steady rate, one after another.
async fn latency(node: &Node, text: &str, n: usize, rate: u64) -> Result<Latency> {
    let mut events = node.subscribe();
    let (started_tx, mut started_rx) = mpsc::channel::<(String, Instant)>(n.max(1));
    let sender = {
        let node = node.clone();
        let text = text.to_owned();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            for _ in 0..n {
                tick.tick().await;
                let (node, text, started_tx) = (node.clone(), text.clone(), started_tx.clone());
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    if let Ok(r) = node.send("bob", &text).await {
                        let _ = started_tx.send((r.id, t0)).await;
                    }
                });
            }
        })
    };
    let mut delivered: HashMap<String, Instant> = HashMap::with_capacity(n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60 + n as u64 / rate.min(100));
    while delivered.len() < n {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(journaled)) => {
                if let Event::Status {
                    id,
                    status: Status::Delivered,
                    ..
                } = &journaled.event
                {
                    delivered.insert(id.clone(), Instant::now());
                }
            }
            Ok(Err(e)) => bail!("event stream failed during the latency run: {e}"),
            Err(_) => bail!(
                "only {} of {n} messages were delivered in time",
                delivered.len()
            ),
        }
    }
    sender.await?;
    started_rx.close();
    let mut samples = Vec::with_capacity(n);
    let mut sent_late = Vec::new();
    let mut first_sent: Option<Instant> = None;
    while let Some((id, t0)) = started_rx.recv().await {
        first_sent = Some(first_sent.map_or(t0, |f| f.min(t0)));
        if let Some(t1) = delivered.get(&id) {
            let took = t1.duration_since(t0);
            samples.push(took.as_micros() as u64);
            if took > LATE {
                sent_late.push(t0);
            }
        }
    }
    samples.sort_unstable();
    let since_first =
        |t: &Instant| first_sent.map_or(0, |f| t.saturating_duration_since(f).as_millis() as u64);
    Ok(Latency {
        p50_us: percentile(&samples, 0.50),
        p99_us: percentile(&samples, 0.99),
        max_us: samples.last().copied().unwrap_or(0),
        late: sent_late.len(),
        late_sent_ms: sent_late
            .iter()
            .min()
            .zip(sent_late.iter().max())
            .map(|(a, b)| (since_first(a), since_first(b))),
    })
}

/// Sends `n` messages without waiting; returns messages per second until
/// the outbox is empty again (every message acked as stored by bob).
pub(crate) async fn throughput(node: &Node, to: &str, text: &str, n: usize) -> Result<f64> {
    let in_flight = Arc::new(Semaphore::new(4096));
    let start = Instant::now();
    let mut sends = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = in_flight.clone().acquire_owned().await?;
        let (node, text, to) = (node.clone(), text.to_owned(), to.to_owned());
        sends.push(tokio::spawn(async move {
            let r = node.send(&to, &text).await;
            drop(permit);
            r
        }));
    }
    for s in sends {
        s.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if node.status().await?.outbox == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the throughput run did not drain within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

const ECHO: StreamProtocol = StreamProtocol::new("/hush/bench-echo/1");

pub(crate) type RrSwarm = libp2p::Swarm<request_response::Behaviour<FrameCodec>>;

/// A swarm with a fresh identity (TCP, Noise, Yamux) that speaks one
/// request-response protocol with frames of up to `max_frame` bytes.
pub(crate) fn rr_swarm(
    protocol: StreamProtocol,
    max_frame: usize,
    support: ProtocolSupport,
    config: request_response::Config,
) -> Result<RrSwarm> {
    let behaviour = request_response::Behaviour::with_codec(
        FrameCodec::new(max_frame, max_frame),
        [(protocol, support)],
        config,
    );
    Ok(hush_host::tcp_swarm(
        libp2p::identity::Keypair::generate_ed25519(),
        behaviour,
    )?)
}

/// The bytes one text of `text`'s length takes on the wire: its padded
/// payload, and the Olm message and envelope around it (a few dozen bytes
/// of header and MAC, rounded up).
fn envelope_len(text: &str) -> usize {
    let payload = hush_protocol::Payload {
        sender_account: hush_protocol::AccountId([0; 32]),
        sender_device: hush_protocol::DeviceId([0; 32]),
        id: hush_protocol::MessageId(0),
        body: hush_protocol::Body::Text(text.to_owned()),
    };
    payload.to_padded().len() + 256
}

/// Median time of a 4 KiB write plus `fdatasync` to a file in `dir` (the
/// disk the nodes' databases are on), one after another or one per `pace`.
fn fsync_us(dir: &std::path::Path, pace: Option<Duration>) -> Result<u64> {
    use std::io::{Seek, Write};
    let mut file = std::fs::File::create(dir.join("fsync-probe"))?;
    let page = [7u8; 4096];
    let mut samples = Vec::with_capacity(300);
    for i in 0..300u64 {
        file.seek(std::io::SeekFrom::Start((i % 16) * 4096))?;
        file.write_all(&page)?;
        let t0 = Instant::now();
        file.sync_data()?;
        let took = t0.elapsed();
        samples.push(took.as_micros() as u64);
        if let Some(pace) = pace {
            std::thread::sleep(pace.saturating_sub(took));
        }
    }
    samples.sort_unstable();
    Ok(percentile(&samples, 0.5))
}

/// Median round trip of a bare request-response exchange over loopback TCP
/// carrying `len` bytes each way, one after another or one per `pace`.
async fn bare_rtt(len: usize, pace: Option<Duration>) -> Result<u64> {
    let make = || {
        rr_swarm(
            ECHO,
            len.max(1024),
            ProtocolSupport::Full,
            request_response::Config::default(),
        )
    };
    let mut server = make()?;
    let mut client = make()?;
    server.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
            break address;
        }
    };
    let server_peer = *server.local_peer_id();
    let server_task = tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = server.select_next_some().await
            {
                let _ = server.behaviour_mut().send_response(channel, request);
            }
        }
    });
    client.add_peer_address(server_peer, addr);
    let mut samples = Vec::new();
    for i in 0..1100 {
        let t0 = Instant::now();
        client
            .behaviour_mut()
            .send_request(&server_peer, vec![0u8; len]);
        loop {
            match client.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                }) => break,
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => {
                    bail!("bare round trip failed: {error}")
                }
                _ => {}
            }
        }
        let took = t0.elapsed();
        if i >= 100 {
            samples.push(took.as_micros() as u64);
        }
        if let Some(pace) = pace {
            tokio::time::sleep(pace.saturating_sub(took)).await;
        }
    }
    server_task.abort();
    samples.sort_unstable();
    Ok(percentile(&samples, 0.5))
}

/// Resident memory of one idle node process, in KiB.
async fn idle_rss(dir: &std::path::Path) -> Result<u64> {
    let home = init_home(dir, "idle")?;
    let node = NodeProcess::start(&home).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = node.pid().context("the idle node has no pid")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    node.stop().await?;
    Ok(rss)
}

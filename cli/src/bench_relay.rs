//! `hush bench relay`: a real relay (in this process, durable redb in a
//! temporary folder) under load on loopback TCP.
//!
//! - `ingest_msgs_per_s`: 512-byte sealed envelopes durably acked per
//!   second, from `senders` concurrent clients (each its own libp2p
//!   connection, `window` deposit requests of `batch` envelopes in flight);
//! - `ack_p50_us`, `ack_p99_us`: deposit request sent → durable ack
//!   received, under that load;
//! - `drain_10k_ms`: a node that was offline starts and fetches, decrypts,
//!   stores (durably) and acks 10,000 messages queued at its relay: from
//!   `Node::start` to the last message stored;
//! - `drain_floor_ms`: the same number of sealed envelopes opened (under a
//!   pairwise mailbox's deposit key, as a contact's mail is) on two threads
//!   and nothing else: what the drain cannot go below here;
//! - `hpke_open_10k_ms`: as many sealed to a device's mailbox key (HPKE,
//!   as a stranger's mail is) opened the same way.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use hush_node::{Event, MAILBOX_PROTOCOL, Node, NodeConfig, Status};
use hush_protocol::{
    AccountId, DepositResult, MAX_MAILBOX_FRAME, MailboxGrant, MailboxId, MailboxRequest,
    MailboxResponse, MailboxSecret, PairwiseKey, SealedEnvelope, Wire,
};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use serde_json::json;
use tokio::sync::oneshot;

use crate::bench::{RrSwarm, percentile, rr_swarm};
use crate::demo::init_home;

/// Bytes of each deposited sealed envelope.
const ITEM_BYTES: usize = 512;
/// Mailboxes the load spreads over.
const MAILBOXES: usize = 500;
const DRAIN_MESSAGES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub senders: usize,
    pub messages: usize,
    pub batch: usize,
    pub window: usize,
    /// Offered load in envelopes per second over all senders (open loop:
    /// requests go out on a schedule, whatever is in flight); `None`
    /// saturates the relay (closed loop, `window` in flight per sender).
    pub rate: Option<u64>,
}

/// Deposits one sender may have in flight in the open-loop run.
const MAX_OPEN_LOOP_IN_FLIGHT: usize = 64;

pub(crate) struct RunningRelay {
    pub(crate) address: Multiaddr,
    pub(crate) peer: PeerId,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// `count` relays in `dir`, each joining the DHT through the first.
pub(crate) async fn start_dht(dir: &std::path::Path, count: usize) -> Result<Vec<RunningRelay>> {
    let mut relays: Vec<RunningRelay> = Vec::with_capacity(count);
    for i in 0..count {
        let bootstrap: Vec<Multiaddr> = relays
            .first()
            .map(|r| r.address.clone())
            .into_iter()
            .collect();
        relays.push(start_relay(&dir.join(format!("relay-{i}")), &bootstrap).await?);
    }
    Ok(relays)
}

pub(crate) async fn start_relay(
    data: &std::path::Path,
    bootstrap: &[Multiaddr],
) -> Result<RunningRelay> {
    let mut config = hush_relay::Config {
        listen: vec!["/ip4/127.0.0.1/tcp/0".to_owned()],
        data: data.to_owned(),
        bootstrap: bootstrap.iter().map(ToString::to_string).collect(),
        ..hush_relay::Config::default()
    };
    // One sender queues all 10,000 messages of the drain run for one device.
    config.quotas.sender_items = 2 * DRAIN_MESSAGES as u64;
    config.quotas.mailbox_items = 2 * DRAIN_MESSAGES as u64;
    // The bench's senders hold no deposit rights (its mailboxes are made
    // up): they are strangers, whose share would otherwise cap the load.
    config.quotas.stranger_items = 2 * DRAIN_MESSAGES as u64;
    let (relay, started) = hush_relay::Relay::start(config).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async move {
        let _ = stopped.await;
    }));
    Ok(RunningRelay {
        address: started
            .addresses
            .first()
            .cloned()
            .context("the relay has no address")?,
        peer: started.peer_id,
        stop: Some(stop),
        task,
    })
}

impl RunningRelay {
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

pub async fn relay(as_json: bool, load: Load) -> Result<()> {
    if load.senders == 0 || load.batch == 0 || load.window == 0 || load.messages == 0 {
        bail!("--senders, --messages, --batch and --window must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("hush-bench-relay-")
        .tempdir()?;
    let relay = start_relay(&dir.path().join("relay"), &[]).await?;
    let (ingest, acks) = ingest(&relay, load).await?;
    relay.stop().await;

    let drain = drain(dir.path()).await?;
    let floor = tokio::task::spawn_blocking(drain_floor).await??;
    let report = json!({
        "ingest_msgs_per_s": ingest.round() as u64,
        "ack_p50_us": percentile(&acks, 0.50),
        "ack_p99_us": percentile(&acks, 0.99),
        "drain_10k_ms": drain.as_millis() as u64,
        "drain_floor_ms": floor.deposit_key.as_millis() as u64,
        "hpke_open_10k_ms": floor.hpke.as_millis() as u64,
        "senders": load.senders,
        "messages": load.messages,
        "batch": load.batch,
        "window": load.window,
        "offered_msgs_per_s": load.rate,
        "item_bytes": ITEM_BYTES,
    });
    if as_json {
        println!("{report}");
    } else {
        let pacing = match load.rate {
            Some(rate) => format!("offered at {rate} msg/s"),
            None => format!("{} deposits in flight each", load.window),
        };
        println!(
            "ingest: {ingest:.0} msg/s durably acked ({} senders, {} × {ITEM_BYTES} B, {} per deposit, {pacing})",
            load.senders, load.messages, load.batch
        );
        println!(
            "deposit → durable ack: p50 {} µs, p99 {} µs",
            percentile(&acks, 0.50),
            percentile(&acks, 0.99)
        );
        println!(
            "drain of {DRAIN_MESSAGES} queued messages by a node coming online: {} ms \
             (opening their seals alone, on 2 threads: {} ms; \
             as many sealed to a mailbox key (HPKE): {} ms)",
            drain.as_millis(),
            floor.deposit_key.as_millis(),
            floor.hpke.as_millis()
        );
    }
    Ok(())
}

/// The drain's floor on this machine: opening 10,000 sealed envelopes,
/// split over two threads as the node does, and nothing else. The drain's
/// mail comes from a contact, sealed under its pairwise mailbox's deposit
/// key (`deposit_key`); mail in a device's own mailbox (first contacts,
/// strangers) is sealed to its mailbox key (`hpke`, an X25519 agreement
/// each). Both are timed.
fn drain_floor() -> Result<Floor> {
    let pairwise = PairwiseKey::derive(&rand::random(), &AccountId([1; 32]), 1);
    let grant = pairwise.grant([0; 16]);
    let hpke = MailboxGrant {
        deposit_key: None,
        ..grant
    };
    let envelope = vec![7u8; 512];
    let time_opens = |grant: &MailboxGrant| -> Result<Duration> {
        let sealed = (0..DRAIN_MESSAGES)
            .map(|_| grant.seal(&envelope))
            .collect::<Result<Vec<_>, _>>()?;
        let open = |part: &[Vec<u8>]| part.iter().all(|s| pairwise.open(s).is_ok());
        let (first, second) = sealed.split_at(sealed.len() / 2);
        let t0 = Instant::now();
        let opened = std::thread::scope(|scope| {
            let later = scope.spawn(|| open(second));
            open(first) && later.join().unwrap_or(false)
        });
        let elapsed = t0.elapsed();
        if !opened {
            bail!("a sealed envelope of the floor run did not open");
        }
        Ok(elapsed)
    };
    Ok(Floor {
        deposit_key: time_opens(&grant)?,
        hpke: time_opens(&hpke)?,
    })
}

/// What opening [`DRAIN_MESSAGES`] seals costs alone, by kind of seal.
struct Floor {
    deposit_key: Duration,
    hpke: Duration,
}

/// A valid sealed envelope of exactly `ITEM_BYTES`, varied per message by
/// rewriting bytes inside its ciphertext (the relay cannot tell).
fn template() -> Result<Vec<u8>> {
    let secret = MailboxSecret::derive(&rand::random());
    let envelope_len = ITEM_BYTES - SealedEnvelope::sealed_len(0);
    let sealed = SealedEnvelope::seal(
        &secret.public_key(),
        &MailboxId([0; 32]),
        &vec![7u8; envelope_len],
    )?;
    if sealed.len() != ITEM_BYTES {
        bail!(
            "sealed envelope is {} bytes, not {ITEM_BYTES}",
            sealed.len()
        );
    }
    Ok(sealed)
}

fn sender() -> Result<RrSwarm> {
    rr_swarm(
        MAILBOX_PROTOCOL,
        MAX_MAILBOX_FRAME,
        ProtocolSupport::Outbound,
        request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
    )
}

/// Runs the load; returns (messages per second, ack latencies in µs).
async fn ingest(relay: &RunningRelay, load: Load) -> Result<(f64, Vec<u64>)> {
    let template = template()?;
    let per_sender = load.messages.div_ceil(load.senders);
    let mut tasks = Vec::new();
    // Every sender connects first; the load starts when all have, so no
    // measured request waits for a handshake.
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(load.senders + 1));
    for s in 0..load.senders {
        let mut swarm = sender()?;
        let (peer, template, ready) = (relay.peer, template.clone(), ready.clone());
        swarm.dial(
            relay
                .address
                .clone()
                .with(libp2p::multiaddr::Protocol::P2p(peer)),
        )?;
        tasks.push(tokio::spawn(async move {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { .. } => break,
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        bail!("could not connect to the relay: {error}")
                    }
                    _ => {}
                }
            }
            ready.wait().await;
            let mut latencies = Vec::with_capacity(per_sender / load.batch + 1);
            let mut next = 0usize;
            let mut acked = 0usize;
            let mut in_flight = std::collections::HashMap::new();
            let request = |next: &mut usize| {
                let mut items = Vec::with_capacity(load.batch);
                while items.len() < load.batch && *next < per_sender {
                    let mut sealed = template.clone();
                    let tag = ((s as u64) << 32) | *next as u64;
                    let at = sealed.len() - 24;
                    sealed[at..at + 8].copy_from_slice(&tag.to_be_bytes());
                    let mailbox = (s * 7 + *next) % MAILBOXES;
                    let mut id = [0u8; 32];
                    id[..8].copy_from_slice(&(mailbox as u64).to_be_bytes());
                    items.push(hush_protocol::DepositItem::new(MailboxId(id), sealed));
                    *next += 1;
                }
                items
            };
            let mut schedule = load.rate.map(|rate| {
                let every = (load.batch * load.senders) as f64 / rate.max(1) as f64;
                // Each sender starts at its own phase of the period, so the
                // load arrives spread out, not as one burst of every
                // sender's request per period.
                let phase = every * s as f64 / load.senders as f64;
                let mut tick = tokio::time::interval_at(
                    tokio::time::Instant::now() + Duration::from_secs_f64(phase),
                    Duration::from_secs_f64(every),
                );
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                tick
            });
            while acked < per_sender {
                let event = match schedule.as_mut() {
                    None => {
                        while in_flight.len() < load.window && next < per_sender {
                            let items = request(&mut next);
                            let n = items.len();
                            let id = swarm.behaviour_mut().send_request(
                                &peer,
                                MailboxRequest::Deposit { right: None, items }.to_bytes(),
                            );
                            in_flight.insert(id, (Instant::now(), n));
                        }
                        swarm.select_next_some().await
                    }
                    Some(tick) => {
                        let can_send =
                            next < per_sender && in_flight.len() < MAX_OPEN_LOOP_IN_FLIGHT;
                        tokio::select! {
                            // Latency counts from the scheduled time, so a
                            // late send is not hidden.
                            at = tick.tick(), if can_send => {
                                let items = request(&mut next);
                                let n = items.len();
                                let id = swarm.behaviour_mut().send_request(
                                    &peer,
                                    MailboxRequest::Deposit { right: None, items }.to_bytes(),
                                );
                                in_flight.insert(id, (at.into_std(), n));
                                continue;
                            }
                            event = swarm.select_next_some() => event,
                        }
                    }
                };
                match event {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message:
                            request_response::Message::Response {
                                request_id,
                                response,
                            },
                        ..
                    }) => {
                        let Some((t0, n)) = in_flight.remove(&request_id) else {
                            continue;
                        };
                        latencies.push(t0.elapsed().as_micros() as u64);
                        match MailboxResponse::from_bytes(&response) {
                            Ok(MailboxResponse::Deposited { results })
                                if results.len() == n
                                    && results.iter().all(|r| *r == DepositResult::Stored) =>
                            {
                                acked += n;
                            }
                            other => bail!("a deposit was not stored: {other:?}"),
                        }
                    }
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        error,
                        ..
                    }) => bail!("a deposit failed: {error}"),
                    _ => {}
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    ready.wait().await;
    let start = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let total = per_sender * load.senders;
    Ok((total as f64 / elapsed.as_secs_f64(), latencies))
}

/// Queues 10,000 real messages for an offline node at its relay, then
/// times that node coming online and storing them all.
async fn drain(dir: &std::path::Path) -> Result<Duration> {
    let relay = start_relay(&dir.join("drain-relay"), &[]).await?;
    let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse()?;
    let alice_home = init_home(dir, "alice")?;
    let bob_home = init_home(dir, "bob")?;
    let bob_config = NodeConfig::default()
        .with_listen(loopback.clone())
        .with_relay(relay.address.clone());
    let alice = Node::start(
        &alice_home,
        NodeConfig::default().with_listen(loopback.clone()),
    )
    .await?;
    let bob = Node::start(&bob_home, bob_config.clone()).await?;
    alice.add_contact("bob", &bob.card().await?).await?;
    bob.add_contact("alice", &alice.card().await?).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !bob
        .status()
        .await?
        .relays
        .iter()
        .all(|r| r.keys_left.is_some_and(|n| n > 0))
    {
        if Instant::now() > deadline {
            bail!("bob's keys never reached his relay");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bob.shutdown().await;
    drop(bob);

    // Alice queues 10,000 messages; each is `sent` once the relay has it.
    let mut events = alice.subscribe();
    let text = "x".repeat(256);
    for _ in 0..DRAIN_MESSAGES {
        alice.send("bob", &text).await?;
    }
    let mut sent = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while sent < DRAIN_MESSAGES {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(journaled)) => {
                if let Event::Status {
                    status: Status::Sent,
                    ..
                } = &journaled.event
                {
                    sent += 1;
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                sent += n as usize;
            }
            Ok(Err(e)) => bail!("alice's events failed: {e}"),
            Err(_) => bail!("only {sent} of {DRAIN_MESSAGES} messages reached the relay"),
        }
    }
    // Let the last deposits settle, then take alice offline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.shutdown().await;
    drop(alice);

    let t0 = Instant::now();
    let bob = Node::start(&bob_home, bob_config).await?;
    let mut events = bob.subscribe();
    let mut stored = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while stored < DRAIN_MESSAGES {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(journaled)) => {
                if let Event::Message { .. } = &journaled.event {
                    stored += 1;
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => stored += n as usize,
            Ok(Err(e)) => bail!("bob's events failed: {e}"),
            Err(_) => bail!("bob stored only {stored} of {DRAIN_MESSAGES} messages"),
        }
    }
    let elapsed = t0.elapsed();
    let history = bob.history("alice", hush_node::Page::Before(None), 10)?;
    if history.len() != 10 {
        bail!("bob's history is missing messages after the drain");
    }
    bob.shutdown().await;
    relay.stop().await;
    Ok(elapsed)
}

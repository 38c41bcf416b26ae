//! The relay's one task: it owns the swarm, the usage counters and the
//! write batch, like the node's event loop.
//!
//! Deposits from every sender gather into one batch while the previous batch
//! commits on a blocking thread (group commit); a deposit is acked, a key
//! handed out and an ack answered only after the batch holding it is
//! durable ([`After`]). Reads (fetch, key lookup, dedupe) go straight to redb.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hush_node::{
    FrameCodec, HISTORY_PROTOCOL, MAILBOX_PROTOCOL, create_private_file, gossipsub_behaviour,
    peer_in,
};
use hush_protocol::{
    Auth, DepositResult, DeviceId, HistoryRequest, HistoryResponse, KeyBundle, MAX_FETCH_WAIT_MS,
    MAX_HISTORY_FRAME, MAX_MAILBOX_FRAME, MAX_MAILBOX_ITEMS, MAX_PRESENCE_RECORD_LEN,
    MAX_PRESENCE_TTL_MS, MailboxId, MailboxRequest, MailboxResponse, OwnerRequest, Refusal,
    SealedEnvelope, SealedPresence, Wire,
};
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder, autonat, connection_limits, gossipsub, identify,
    identity, kad, noise, ping, relay, tcp, yamux,
};
use thiserror::Error;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::history::{self, History};
use crate::metrics::{self, Metrics};
use crate::store::{self, Applied, Item, Op, Removal, Store, StoreError};

pub use hush_node::KAD_PROTOCOL;
/// Presence records (and other DHT values) held at most.
const MAX_DHT_RECORDS: usize = 200_000;
const IDENTIFY_PROTOCOL: &str = "/hush/id/1";
/// A challenge is good for this long.
const CHALLENGE_LIFETIME: Duration = Duration::from_secs(600);
/// Deposits waiting for the next commit may hold at most this many bytes;
/// beyond it the relay answers `Unavailable` and senders retry.
const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// Fetches held open waiting for mail, at most one per mailbox.
const MAX_WAITERS: usize = 10_000;
/// Bytes of mail one fetch answer carries, about.
const FETCH_BYTES: usize = 1024 * 1024;
const TICK: Duration = Duration::from_millis(250);
/// Expired items deleted per sweep (the rest go in the next one).
const EXPIRE_BATCH: usize = 10_000;
const MAX_CONNECTIONS: u32 = 10_000;
const MAX_CONNECTIONS_PER_PEER: u32 = 4;

#[derive(Debug, Error)]
pub enum RelayError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("could not create the data folder {path}")]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the relay's network could not start: {0}")]
    Network(String),
    #[error("the bootstrap address {addr} is not valid: {reason}")]
    Bootstrap { addr: String, reason: String },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    mailbox: request_response::Behaviour<FrameCodec>,
    history: request_response::Behaviour<FrameCodec>,
    gossipsub: gossipsub::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    relay: relay::Behaviour,
    autonat: autonat::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    limits: connection_limits::Behaviour,
}

/// Mail and key counts per mailbox, sender and relay, kept in memory and
/// rebuilt from the store at start.
#[derive(Debug, Default)]
struct Usage {
    mailboxes: HashMap<MailboxId, (u64, u64)>,
    senders: HashMap<(MailboxId, u64), u64>,
    items: u64,
    bytes: u64,
}

impl Usage {
    fn add(&mut self, mailbox: MailboxId, bytes: u64, tag: u64) {
        let m = self.mailboxes.entry(mailbox).or_default();
        m.0 += 1;
        m.1 += bytes;
        *self.senders.entry((mailbox, tag)).or_default() += 1;
        self.items += 1;
        self.bytes += bytes;
    }

    fn remove(&mut self, mailbox: MailboxId, bytes: u64, tag: u64) {
        if let Some(m) = self.mailboxes.get_mut(&mailbox) {
            m.0 = m.0.saturating_sub(1);
            m.1 = m.1.saturating_sub(bytes);
            if m.0 == 0 {
                self.mailboxes.remove(&mailbox);
            }
        }
        if let Some(n) = self.senders.get_mut(&(mailbox, tag)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.senders.remove(&(mailbox, tag));
            }
        }
        self.items = self.items.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

/// Runs once the batch it was queued with is durable.
#[derive(Debug)]
enum After {
    Respond(ResponseChannel<Vec<u8>>, MailboxResponse),
    /// New mail in this mailbox: answer a fetch waiting on it.
    Wake(MailboxId),
    /// These deposits are on disk now (or failed): the store answers for them.
    Settled(Vec<[u8; 32]>),
    KeyGone([u8; 32], [u8; 32]),
}

#[derive(Debug, Default)]
struct Batch {
    ops: Vec<Op>,
    after: Vec<After>,
    bytes: usize,
}

struct Commit {
    task: JoinHandle<Result<Applied, StoreError>>,
    after: Vec<After>,
}

/// A fetch held open until mail arrives or `deadline`.
#[derive(Debug)]
struct Waiter {
    channel: ResponseChannel<Vec<u8>>,
    device: DeviceId,
    after: u64,
    limit: usize,
    deadline: Instant,
}

/// What a started relay tells its operator.
#[derive(Debug, Clone)]
pub struct Started {
    pub peer_id: PeerId,
    /// Full addresses (ending in `/p2p/<peer id>`) for nodes' `--relay`.
    pub addresses: Vec<Multiaddr>,
    pub metrics: Option<std::net::SocketAddr>,
}

pub struct Relay {
    swarm: Swarm<Behaviour>,
    store: Arc<Store>,
    config: Config,
    metrics: Arc<Metrics>,
    metrics_listener: Option<tokio::net::TcpListener>,
    next_seq: u64,
    seq_changed: bool,
    usage: Usage,
    batch: Batch,
    commit: Option<Commit>,
    /// Digests of deposits not yet durable.
    pending: HashSet<[u8; 32]>,
    /// One-time keys handed out but not yet deleted on disk.
    taken: HashSet<([u8; 32], [u8; 32])>,
    waiters: HashMap<MailboxId, Waiter>,
    /// Per-process secrets: challenges and sender tags made with them mean
    /// nothing after a restart.
    challenge_key: [u8; 32],
    tag_key: [u8; 32],
    last_sweep: Instant,
    history: History,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Circuit relay limits for nodes behind NAT: enough for chat and for the
/// hole punch that replaces the circuit, not for bulk transfer.
fn relay_config() -> relay::Config {
    let per_minute = |n| std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN);
    relay::Config {
        max_reservations: 4096,
        max_reservations_per_peer: 4,
        reservation_duration: Duration::from_secs(60 * 60),
        reservation_rate_limiters: Vec::new(),
        max_circuits: 1024,
        max_circuits_per_peer: 8,
        max_circuit_duration: Duration::from_secs(10 * 60),
        max_circuit_bytes: 8 << 20,
        circuit_src_rate_limiters: Vec::new(),
    }
    // Per peer, not per IP: many users share one address behind NAT.
    .reservation_rate_per_peer(per_minute(30), Duration::from_secs(60))
    .circuit_src_per_peer(per_minute(60), Duration::from_secs(60))
}

fn build_swarm(
    keypair: identity::Keypair,
    bootstrap: bool,
) -> Result<Swarm<Behaviour>, RelayError> {
    let net = |e: &dyn std::fmt::Display| RelayError::Network(e.to_string());
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| net(&e))?
        .with_quic()
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let gossipsub = gossipsub_behaviour()?;
            let mut kad_config = kad::Config::new(KAD_PROTOCOL);
            if !bootstrap {
                // A lone relay: nothing to bootstrap from until others
                // find it (identify adds them).
                kad_config.set_periodic_bootstrap_interval(None);
            }
            // Every value put here is checked first (see `on_kad`).
            kad_config
                .set_record_filtering(kad::StoreInserts::FilterBoth)
                .set_max_packet_size(16 * 1024);
            let store = kad::store::MemoryStore::with_config(
                peer_id,
                kad::store::MemoryStoreConfig {
                    max_records: MAX_DHT_RECORDS,
                    max_value_bytes: MAX_PRESENCE_RECORD_LEN,
                    max_providers_per_key: 0,
                    max_provided_keys: 0,
                },
            );
            let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
            kad.set_mode(Some(kad::Mode::Server));
            let mut relay = relay::Behaviour::new(peer_id, relay_config());
            relay.set_status(Some(relay::Status::Enable));
            Ok(Behaviour {
                history: request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_HISTORY_FRAME, MAX_HISTORY_FRAME),
                    [(HISTORY_PROTOCOL, ProtocolSupport::Inbound)],
                    request_response::Config::default().with_max_concurrent_streams(64),
                ),
                gossipsub,
                mailbox: request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_MAILBOX_FRAME, MAX_MAILBOX_FRAME),
                    [(MAILBOX_PROTOCOL, ProtocolSupport::Inbound)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_millis(
                            u64::from(MAX_FETCH_WAIT_MS) + 30_000,
                        ))
                        .with_max_concurrent_streams(256),
                ),
                kad,
                relay,
                autonat: autonat::Behaviour::new(
                    peer_id,
                    autonat::Config {
                        only_global_ips: false,
                        ..autonat::Config::default()
                    },
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_PROTOCOL.to_owned(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established(Some(MAX_CONNECTIONS))
                        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
                ),
            })
        })
        .map_err(|e| net(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

impl Relay {
    /// Opens the store, binds every address and the metrics endpoint.
    pub async fn start(config: Config) -> Result<(Self, Started), RelayError> {
        config.validate()?;
        create_private_dir(&config.data).map_err(|source| RelayError::DataDir {
            path: config.data.clone(),
            source,
        })?;
        let db_path = config.data.join("relay.redb");
        // The relay's secret key lives in the database: private from the start.
        create_private_file(&db_path).map_err(|source| RelayError::DataDir {
            path: db_path.clone(),
            source,
        })?;
        let store = Arc::new(Store::open(&db_path)?);
        let mut secret = store.identity()?;
        let keypair = identity::Keypair::ed25519_from_bytes(&mut secret)
            .map_err(|e| RelayError::Network(e.to_string()))?;
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = build_swarm(keypair, !config.bootstrap.is_empty())?;
        let history = History::open(&config.data.join("history.redb"), config.retention_secs)?;
        for topic in history.topics() {
            let _ = swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&gossipsub::IdentTopic::new(topic.clone()));
        }

        let mut usage = Usage::default();
        for (mailbox, bytes, tag) in store.usage()? {
            usage.add(mailbox, bytes, tag);
        }
        let metrics = Arc::new(Metrics::default());
        metrics
            .stored_messages
            .store(usage.items, Ordering::Relaxed);
        metrics.stored_bytes.store(usage.bytes, Ordering::Relaxed);

        for addr in &config.listen {
            let parsed: Multiaddr =
                addr.parse()
                    .map_err(|e: libp2p::multiaddr::Error| RelayError::Listen {
                        addr: addr.clone(),
                        reason: e.to_string(),
                    })?;
            swarm.listen_on(parsed).map_err(|e| RelayError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        }
        let mut addresses = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while addresses.len() < config.listen.len() {
            let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
                .await
                .map_err(|_| RelayError::Listen {
                    addr: config.listen.join(", "),
                    reason: "timed out binding".into(),
                })?;
            match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    swarm.add_external_address(address.clone());
                    addresses.push(address.with_p2p(peer_id).unwrap_or_else(|a| a));
                }
                SwarmEvent::ListenerError { error, .. }
                | SwarmEvent::ListenerClosed {
                    reason: Err(error), ..
                } => {
                    return Err(RelayError::Listen {
                        addr: config.listen.join(", "),
                        reason: error.to_string(),
                    });
                }
                _ => {}
            }
        }
        for addr in &config.bootstrap {
            let bad = |reason: &str| RelayError::Bootstrap {
                addr: addr.clone(),
                reason: reason.to_owned(),
            };
            let parsed: Multiaddr = addr.parse().map_err(|_| bad("not a multiaddr"))?;
            let peer = peer_in(&parsed).ok_or_else(|| bad("it must end in /p2p/<relay id>"))?;
            swarm.behaviour_mut().kad.add_address(&peer, parsed.clone());
            if let Err(e) = swarm.dial(parsed) {
                tracing::warn!(%addr, error = %e, "could not dial a bootstrap relay");
            }
        }
        if !config.bootstrap.is_empty() {
            let _ = swarm.behaviour_mut().kad.bootstrap();
        }
        let metrics_listener = match config.metrics {
            Some(addr) => Some(
                metrics::bind(addr)
                    .await
                    .map_err(|source| RelayError::Metrics { addr, source })?,
            ),
            None => None,
        };
        let started = Started {
            peer_id,
            addresses,
            metrics: metrics_listener.as_ref().and_then(|l| l.local_addr().ok()),
        };
        tracing::info!(%peer_id, stored = usage.items, "relay started");
        let relay = Self {
            swarm,
            next_seq: store.next_seq()?,
            store,
            config,
            metrics,
            metrics_listener,
            seq_changed: false,
            usage,
            batch: Batch::default(),
            commit: None,
            pending: HashSet::new(),
            taken: HashSet::new(),
            waiters: HashMap::new(),
            challenge_key: rand::random(),
            tag_key: rand::random(),
            last_sweep: Instant::now(),
            history,
        };
        Ok((relay, started))
    }

    /// Serves until `shutdown` resolves, then lands what is being written.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        if let Some(listener) = self.metrics_listener.take() {
            tokio::spawn(metrics::serve(listener, self.metrics.clone()));
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            self.flush();
            let commit = &mut self.commit;
            let commit_done = async {
                match commit {
                    Some(c) => (&mut c.task).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                result = commit_done => self.on_commit(join_result(result)),
                _ = tick.tick() => self.on_tick(),
            }
        }
        // Graceful stop: land the running batch and the one gathered after it.
        for _ in 0..3 {
            if let Some(commit) = self.commit.as_mut() {
                let result = (&mut commit.task).await;
                self.on_commit(join_result(result));
            }
            self.flush();
        }
        tracing::info!("relay stopped");
    }

    fn flush(&mut self) {
        if self.commit.is_some() {
            return;
        }
        if std::mem::take(&mut self.seq_changed) {
            self.batch.ops.push(Op::NextSeq(self.next_seq));
        }
        if self.batch.ops.is_empty() && self.batch.after.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let store = self.store.clone();
        let ops = batch.ops;
        self.commit = Some(Commit {
            task: tokio::task::spawn_blocking(move || store.apply(ops)),
            after: batch.after,
        });
    }

    fn on_commit(&mut self, result: Result<Applied, StoreError>) {
        let Some(commit) = self.commit.take() else {
            return;
        };
        let mut afters = commit.after;
        match &result {
            Ok(applied) => {
                self.metrics.commits.fetch_add(1, Ordering::Relaxed);
                // Counted once durable: deposits, deliveries and expiries.
                self.metrics
                    .deposits
                    .fetch_add(applied.deposited, Ordering::Relaxed);
                for (item, why) in &applied.deleted {
                    self.usage
                        .remove(item.mailbox, item.sealed.len() as u64, item.sender_tag);
                    let counter = match why {
                        Removal::Acked => &self.metrics.delivered,
                        Removal::Expired => &self.metrics.expired,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a relay write batch failed; refusing what it held");
                // What was gathered since may build on it (a duplicate of a
                // lost deposit): refuse that too, and recount from disk.
                let later = std::mem::take(&mut self.batch);
                afters.extend(later.after);
                self.usage = Usage::default();
                match self.store.usage() {
                    Ok(rows) => {
                        for (mailbox, bytes, tag) in rows {
                            self.usage.add(mailbox, bytes, tag);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not recount usage"),
                }
                match self.store.next_seq() {
                    Ok(seq) => self.next_seq = self.next_seq.max(seq),
                    Err(e) => tracing::error!(error = %e, "could not reread the sequence"),
                }
            }
        }
        self.metrics
            .stored_messages
            .store(self.usage.items, Ordering::Relaxed);
        self.metrics
            .stored_bytes
            .store(self.usage.bytes, Ordering::Relaxed);
        for after in afters {
            match (after, &result) {
                (After::Respond(channel, response), Ok(_)) => self.respond(channel, response),
                (After::Respond(channel, response), Err(_)) => {
                    let refused = match response {
                        MailboxResponse::Deposited { results } => MailboxResponse::Deposited {
                            results: vec![
                                DepositResult::Refused(Refusal::Unavailable);
                                results.len()
                            ],
                        },
                        _ => MailboxResponse::refused(Refusal::Unavailable),
                    };
                    self.respond(channel, refused);
                }
                (After::Wake(mailbox), Ok(_)) => self.wake(mailbox),
                (After::Settled(digests), _) => {
                    for d in digests {
                        self.pending.remove(&d);
                    }
                }
                (After::KeyGone(device, key), _) => {
                    self.taken.remove(&(device, key));
                }
                (After::Wake(_), Err(_)) => {}
            }
        }
    }

    fn respond(&mut self, channel: ResponseChannel<Vec<u8>>, response: MailboxResponse) {
        if let MailboxResponse::Refused { reason, .. } = &response {
            self.metrics.refused(*reason);
        }
        if self
            .swarm
            .behaviour_mut()
            .mailbox
            .send_response(channel, response.to_bytes())
            .is_err()
        {
            tracing::debug!("peer went away before its answer");
        }
    }

    fn on_tick(&mut self) {
        if let Err(e) = self.history.flush(now_ms()) {
            tracing::error!(error = %e, "could not write group history");
        }
        let now = Instant::now();
        let expired: Vec<MailboxId> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(m, _)| *m)
            .collect();
        for mailbox in expired {
            if let Some(w) = self.waiters.remove(&mailbox) {
                let keys_left = self.store.keys_left(&w.device.0).unwrap_or(0);
                self.respond(
                    w.channel,
                    MailboxResponse::Items {
                        items: Vec::new(),
                        more: false,
                        keys_left,
                    },
                );
            }
        }
        let every = Duration::from_secs(self.config.retention_secs / 4)
            .clamp(TICK, Duration::from_secs(60));
        if now.duration_since(self.last_sweep) >= every {
            self.last_sweep = now;
            self.sweep();
        }
        let dht_peers = self
            .swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries() as u64)
            .sum();
        self.metrics.dht_peers.store(dht_peers, Ordering::Relaxed);
    }

    /// A value someone asks us to keep in the DHT: only well-formed sealed
    /// presence records under a 32-byte locator, expiring within a week.
    /// The content is encrypted to the owner's contacts; we cannot and
    /// need not read it.
    fn on_put_record(&mut self, source: PeerId, mut record: kad::Record) {
        let max_expiry = Instant::now() + Duration::from_millis(MAX_PRESENCE_TTL_MS);
        let well_formed = record.key.as_ref().len() == 32
            && record.value.len() <= MAX_PRESENCE_RECORD_LEN
            && SealedPresence::from_bytes(&record.value).is_ok();
        if !well_formed {
            tracing::debug!(peer = %source, "refused a malformed DHT record");
            return;
        }
        record.expires = Some(record.expires.map_or(max_expiry, |e| e.min(max_expiry)));
        record.publisher = None;
        use kad::store::RecordStore as _;
        if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(record) {
            tracing::warn!(error = %e, "could not keep a DHT record");
        }
    }

    /// Deletes mail older than the retention period.
    fn sweep(&mut self) {
        let cutoff = now_ms().saturating_sub(self.config.retention_secs.saturating_mul(1000));
        match self.store.expired(cutoff, EXPIRE_BATCH) {
            Ok(items) => {
                if !items.is_empty() {
                    tracing::info!(count = items.len(), "deleting expired mail");
                }
                for (mailbox, seq) in items {
                    self.batch
                        .ops
                        .push(Op::Delete(mailbox, seq, Removal::Expired));
                }
            }
            Err(e) => tracing::error!(error = %e, "could not look for expired mail"),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Mailbox(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            })) => self.on_request(peer, &request, channel),
            SwarmEvent::Behaviour(BehaviourEvent::Mailbox(
                request_response::Event::InboundFailure { peer, error, .. },
            )) => tracing::debug!(%peer, %error, "mailbox request failed"),
            SwarmEvent::Behaviour(BehaviourEvent::History(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            })) => self.on_history(peer, &request, channel),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let acceptance = if history::well_formed(&message.data) {
                    let topic = message.topic.as_str();
                    if self.history.is_kept(topic) {
                        self.history.add(topic, message.data, now_ms());
                    }
                    gossipsub::MessageAcceptance::Accept
                } else {
                    tracing::debug!(peer = %propagation_source, "malformed group message rejected");
                    gossipsub::MessageAcceptance::Reject
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            })) => self.on_put_record(source, record),
            // Other relays speak the hush DHT protocol: remember them, so
            // relays find each other through the DHT.
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if info.protocols.contains(&KAD_PROTOCOL) => {
                for addr in info.listen_addrs.into_iter().take(8) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. } => {
                let n = self
                    .swarm
                    .network_info()
                    .connection_counters()
                    .num_established();
                self.metrics
                    .connections
                    .store(u64::from(n), Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Keep a group topic's history, or page it out. Anyone may ask: what
    /// is kept is Megolm ciphertext, under a topic only members can name.
    fn on_history(&mut self, peer: PeerId, bytes: &[u8], channel: ResponseChannel<Vec<u8>>) {
        let response = match HistoryRequest::from_bytes(bytes) {
            Err(e) => HistoryResponse::Refused {
                reason: format!("malformed request: {e}"),
            },
            Ok(HistoryRequest::Keep { topic }) => {
                if self.history.keep(&topic) {
                    let t = gossipsub::IdentTopic::new(topic);
                    if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&t) {
                        tracing::warn!(error = ?e, "could not subscribe to a group topic");
                    }
                    HistoryResponse::Keeping
                } else {
                    HistoryResponse::Refused {
                        reason: "this relay keeps the history of as many groups as it can".into(),
                    }
                }
            }
            Ok(HistoryRequest::Fetch {
                topic,
                after,
                limit,
            }) => {
                // Land what was just published, so a page never skips it.
                if let Err(e) = self.history.flush(now_ms()) {
                    tracing::error!(error = %e, "could not write group history");
                }
                self.history
                    .page(&topic, after, usize::from(limit))
                    .unwrap_or_else(|e| HistoryResponse::Refused {
                        reason: format!("the relay could not read its store: {e}"),
                    })
            }
        };
        if self
            .swarm
            .behaviour_mut()
            .history
            .send_response(channel, response.to_bytes())
            .is_err()
        {
            tracing::debug!(%peer, "peer went away before its history page");
        }
    }

    fn challenge(&self, at_secs: u64) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..8].copy_from_slice(&at_secs.to_be_bytes());
        let mac = blake3::keyed_hash(&self.challenge_key, &at_secs.to_be_bytes());
        out[8..].copy_from_slice(&mac.as_bytes()[..24]);
        out
    }

    fn challenge_is_fresh(&self, challenge: &[u8; 32]) -> bool {
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&challenge[..8]);
        let at = u64::from_be_bytes(stamp);
        let now = now_ms() / 1000;
        at <= now + 5 && now.saturating_sub(at) <= CHALLENGE_LIFETIME.as_secs() && {
            // Constant-time comparison of the MAC part.
            let expected = self.challenge(at);
            expected
                .iter()
                .zip(challenge.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        }
    }

    /// An unlinkable tag for the sending peer, for per-sender quotas. It is
    /// keyed with a secret that dies with the process, so a stored tag
    /// says nothing about who deposited once the relay restarts.
    fn sender_tag(&self, peer: &PeerId) -> u64 {
        let hash = blake3::keyed_hash(&self.tag_key, &peer.to_bytes());
        let mut word = [0u8; 8];
        word.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_be_bytes(word)
    }

    fn on_request(&mut self, peer: PeerId, bytes: &[u8], channel: ResponseChannel<Vec<u8>>) {
        let request = match MailboxRequest::from_bytes(bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "malformed mailbox request");
                let response = MailboxResponse::Refused {
                    reason: Refusal::Malformed,
                    message: format!("the relay could not decode the request: {e}"),
                };
                self.respond(channel, response);
                return;
            }
        };
        match request {
            MailboxRequest::Info => {
                let challenge = self.challenge(now_ms() / 1000);
                let response = MailboxResponse::Info {
                    challenge,
                    retention_secs: self.config.retention_secs,
                    max_item_len: u32::try_from(self.config.quotas.max_item_bytes)
                        .unwrap_or(u32::MAX),
                };
                self.respond(channel, response);
            }
            MailboxRequest::Deposit { items } => self.deposit(peer, items, channel),
            MailboxRequest::ClaimKey { device } => self.claim_key(device, channel),
            MailboxRequest::Owner { auth, request } => {
                if !self.challenge_is_fresh(&auth.challenge) {
                    self.respond(channel, MailboxResponse::refused(Refusal::StaleChallenge));
                    return;
                }
                if !auth.verify(&request.body_bytes()) {
                    tracing::info!(%peer, "mailbox request not signed by the owner, refused");
                    self.respond(channel, MailboxResponse::refused(Refusal::NotOwner));
                    return;
                }
                self.owner_request(*auth, request, channel);
            }
        }
    }

    fn deposit(
        &mut self,
        peer: PeerId,
        items: Vec<(MailboxId, Vec<u8>)>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let tag = self.sender_tag(&peer);
        let quotas = self.config.quotas.clone();
        let mut results = Vec::with_capacity(items.len());
        let mut wait_for_commit = false;
        let mut settled = Vec::new();
        let mut woken = HashSet::new();
        let stored_at_ms = now_ms();
        let digests: Vec<[u8; 32]> = items.iter().map(|(_, s)| store::digest(s)).collect();
        // One read transaction for the whole deposit; if it fails, the
        // items are refused as unavailable (never stored twice).
        let known = self.store.has_digests(&digests).ok();
        for (((mailbox, sealed), digest), i) in items.into_iter().zip(digests).zip(0..) {
            let len = sealed.len() as u64;
            let known = known
                .as_ref()
                .map(|k: &Vec<bool>| k.get(i).copied().unwrap_or(false));
            let refuse = |r| DepositResult::Refused(r);
            let result =
                if SealedEnvelope::from_bytes(&sealed).is_err() {
                    refuse(Refusal::Malformed)
                } else if len > quotas.max_item_bytes {
                    refuse(Refusal::TooLarge)
                } else if self.pending.contains(&digest) {
                    // Its first copy is being committed: answer once that is done.
                    wait_for_commit = true;
                    DepositResult::Duplicate
                } else if known == Some(true) {
                    DepositResult::Duplicate
                } else if known.is_none() || self.batch.bytes + sealed.len() > MAX_PENDING_BYTES {
                    refuse(Refusal::Unavailable)
                } else if self.usage.bytes + len > quotas.disk_bytes {
                    refuse(Refusal::RelayFull)
                } else if self.usage.mailboxes.get(&mailbox).is_some_and(|(n, b)| {
                    *n >= quotas.mailbox_items || b + len > quotas.mailbox_bytes
                }) {
                    refuse(Refusal::MailboxFull)
                } else if self
                    .usage
                    .senders
                    .get(&(mailbox, tag))
                    .is_some_and(|n| *n >= quotas.sender_items)
                {
                    refuse(Refusal::SenderQuota)
                } else {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.seq_changed = true;
                    self.usage.add(mailbox, len, tag);
                    self.pending.insert(digest);
                    settled.push(digest);
                    self.batch.bytes += sealed.len();
                    self.batch.ops.push(Op::Deposit(Item {
                        mailbox,
                        seq,
                        stored_at_ms,
                        sender_tag: tag,
                        sealed,
                    }));
                    woken.insert(mailbox);
                    wait_for_commit = true;
                    DepositResult::Stored
                };
            match result {
                DepositResult::Duplicate => {
                    self.metrics.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                DepositResult::Refused(reason) => self.metrics.refused(reason),
                DepositResult::Stored => {}
            }
            results.push(result);
        }
        let response = MailboxResponse::Deposited { results };
        if wait_for_commit {
            self.batch.after.push(After::Respond(channel, response));
            self.batch.after.push(After::Settled(settled));
            for mailbox in woken {
                self.batch.after.push(After::Wake(mailbox));
            }
        } else {
            // `respond` would count these refusals a second time.
            let _ = self
                .swarm
                .behaviour_mut()
                .mailbox
                .send_response(channel, response.to_bytes());
        }
    }

    fn claim_key(&mut self, device: DeviceId, channel: ResponseChannel<Vec<u8>>) {
        let taken = &self.taken;
        let found = self
            .store
            .key_for(&device.0, &|k| taken.contains(&(device.0, *k)));
        match found {
            Ok(Some((Some(key), bundle))) => {
                let Ok(bundle) = KeyBundle::from_bytes(&bundle) else {
                    self.respond(channel, MailboxResponse::refused(Refusal::Unavailable));
                    return;
                };
                self.metrics.keys_claimed.fetch_add(1, Ordering::Relaxed);
                // Handed out once: deleted before anyone hears of it.
                self.taken.insert((device.0, key));
                self.batch.ops.push(Op::TakeKey {
                    device: device.0,
                    key,
                });
                self.batch
                    .after
                    .push(After::Respond(channel, MailboxResponse::Key(bundle)));
                self.batch.after.push(After::KeyGone(device.0, key));
            }
            Ok(Some((None, fallback))) => match KeyBundle::from_bytes(&fallback) {
                Ok(bundle) => {
                    self.metrics.keys_claimed.fetch_add(1, Ordering::Relaxed);
                    self.respond(channel, MailboxResponse::Key(bundle));
                }
                Err(_) => self.respond(channel, MailboxResponse::refused(Refusal::Unavailable)),
            },
            Ok(None) => self.respond(channel, MailboxResponse::refused(Refusal::NoKeys)),
            Err(e) => {
                tracing::error!(error = %e, "could not read hosted keys");
                self.respond(channel, MailboxResponse::refused(Refusal::Unavailable));
            }
        }
    }

    fn owner_request(
        &mut self,
        auth: Auth,
        request: OwnerRequest,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let mailbox = MailboxId::of(&auth.device);
        match request {
            OwnerRequest::Fetch {
                after,
                limit,
                wait_ms,
            } => {
                self.metrics.fetches.fetch_add(1, Ordering::Relaxed);
                let limit = usize::from(limit).clamp(1, MAX_MAILBOX_ITEMS);
                let response = match self.page(&mailbox, &auth.device, after, limit) {
                    Ok(MailboxResponse::Items { items, .. }) if items.is_empty() && wait_ms > 0 => {
                        self.park(mailbox, auth.device, after, limit, wait_ms, channel);
                        return;
                    }
                    Ok(response) => response,
                    Err(e) => {
                        tracing::error!(error = %e, "could not read a mailbox");
                        MailboxResponse::refused(Refusal::Unavailable)
                    }
                };
                self.respond(channel, response);
            }
            OwnerRequest::Ack { seqs } => {
                let removed = u32::try_from(seqs.len()).unwrap_or(u32::MAX);
                for seq in seqs {
                    self.batch
                        .ops
                        .push(Op::Delete(mailbox, seq, Removal::Acked));
                }
                self.batch
                    .after
                    .push(After::Respond(channel, MailboxResponse::Acked { removed }));
            }
            OwnerRequest::PutKeys { one_time, fallback } => {
                let max = usize::try_from(self.config.quotas.one_time_keys_per_device)
                    .unwrap_or(usize::MAX);
                let foreign = one_time
                    .iter()
                    .chain([&fallback])
                    .any(|b| b.device_id != auth.device);
                if foreign || one_time.len() > max {
                    let response = MailboxResponse::Refused {
                        reason: Refusal::Malformed,
                        message: format!(
                            "keys must be the signing device's own, at most {max} one-time keys"
                        ),
                    };
                    self.respond(channel, response);
                    return;
                }
                let count = u32::try_from(one_time.len()).unwrap_or(u32::MAX);
                self.batch.ops.push(Op::PutKeys {
                    device: auth.device.0,
                    one_time: one_time
                        .iter()
                        .map(|b| (b.one_time_key, b.to_bytes()))
                        .collect(),
                    fallback: fallback.to_bytes(),
                });
                self.batch.after.push(After::Respond(
                    channel,
                    MailboxResponse::KeysStored { one_time: count },
                ));
            }
        }
    }

    fn page(
        &self,
        mailbox: &MailboxId,
        device: &DeviceId,
        after: u64,
        limit: usize,
    ) -> Result<MailboxResponse, StoreError> {
        let (items, more) = self.store.fetch(mailbox, after, limit, FETCH_BYTES)?;
        Ok(MailboxResponse::Items {
            items: items.into_iter().map(|i| (i.seq, i.sealed)).collect(),
            more,
            keys_left: self.store.keys_left(&device.0)?,
        })
    }

    /// Holds an empty fetch open until mail arrives (a push, without a
    /// second protocol). One waiter per mailbox: a newer fetch replaces it.
    fn park(
        &mut self,
        mailbox: MailboxId,
        device: DeviceId,
        after: u64,
        limit: usize,
        wait_ms: u32,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let empty = |keys_left| MailboxResponse::Items {
            items: Vec::new(),
            more: false,
            keys_left,
        };
        if self.waiters.len() >= MAX_WAITERS && !self.waiters.contains_key(&mailbox) {
            let keys_left = self.store.keys_left(&device.0).unwrap_or(0);
            self.respond(channel, empty(keys_left));
            return;
        }
        let wait = Duration::from_millis(u64::from(wait_ms.min(MAX_FETCH_WAIT_MS)));
        let waiter = Waiter {
            channel,
            device,
            after,
            limit,
            deadline: Instant::now() + wait,
        };
        if let Some(old) = self.waiters.insert(mailbox, waiter) {
            let keys_left = self.store.keys_left(&old.device.0).unwrap_or(0);
            self.respond(old.channel, empty(keys_left));
        }
    }

    fn wake(&mut self, mailbox: MailboxId) {
        let Some(w) = self.waiters.remove(&mailbox) else {
            return;
        };
        match self.page(&mailbox, &w.device, w.after, w.limit) {
            Ok(response) => self.respond(w.channel, response),
            Err(e) => {
                tracing::error!(error = %e, "could not read a mailbox");
                self.respond(w.channel, MailboxResponse::refused(Refusal::Unavailable));
            }
        }
    }
}

fn join_result(
    result: Result<Result<Applied, StoreError>, tokio::task::JoinError>,
) -> Result<Applied, StoreError> {
    result.unwrap_or_else(|e| {
        Err(StoreError::Storage(redb::StorageError::Io(
            std::io::Error::other(e),
        )))
    })
}

fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

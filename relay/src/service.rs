//! The relay host: one task owns the swarm, the stores and the relay
//! engine, and only translates. Swarm events become engine inputs; the
//! engine's batches are committed on a blocking thread (group commit: the
//! next batch gathers meanwhile) and reported back; its replies go out on
//! their response channels. Every decision (quotas, owners, durability
//! before acks, which topics and DHT values are kept) is the engine's
//! (`hush_protocol::relay`).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hush_host::{
    FrameCodec, HostClock, create_private_dir, create_private_file, liveness, peer_in,
};
use hush_protocol::relay::{
    Applied, HistoryAction, Publication, RateLimit, RelayEngine, RelayEvent, RelayRules,
    StoreFault, TopicBook, dht_record_lifetime,
};
use hush_protocol::{HistoryResponse, MailboxRequest, MailboxResponse, Wire};
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, autonat, connection_limits, gossipsub, identify, identity, kad, relay,
};
use thiserror::Error;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::history::History;
use crate::metrics::{self, Metrics};
use crate::store::{Store, StoreError};

mod announce;
mod circuits;
mod swarm;

use circuits::CircuitUsage;

pub use hush_host::KAD_PROTOCOL;
const TICK: Duration = Duration::from_millis(250);
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
    #[error("could not load the relay's mail store: {0}")]
    Load(String),
    #[error(
        "cannot listen on {addr}: {reason} (is another program using that port? pick another with --listen or `listen` in the config)"
    )]
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
    #[error("could not set up push: {0}")]
    Push(#[from] crate::push::PushError),
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
    liveness: liveness::Behaviour,
    limits: connection_limits::Behaviour,
    /// Raw streams: files held for offline recipients (`crate::blobs`).
    stream: libp2p_stream::Behaviour,
}

/// What a started relay tells its operator.
#[derive(Debug, Clone)]
pub struct Started {
    pub peer_id: PeerId,
    /// Full addresses (ending in `/p2p/<peer id>`) for nodes' `--relay`.
    pub addresses: Vec<Multiaddr>,
    pub metrics: Option<std::net::SocketAddr>,
}

/// A libp2p response channel.
type Channel = ResponseChannel<Vec<u8>>;

/// The reply token the engine hands back with each answer: where the
/// answer goes, and when the request arrived (for the latency metrics).
struct Reply {
    channel: Channel,
    received: Instant,
}

pub struct Relay {
    swarm: Swarm<Behaviour>,
    store: Arc<Store>,
    engine: RelayEngine<Reply>,
    topics: TopicBook,
    history: History,
    /// Files held for offline recipients (served off this loop).
    blobs: Arc<crate::blobs::RelayBlobs>,
    /// Posts the engine's wake-ups for offline devices.
    pusher: crate::push::Pusher,
    clock: HostClock,
    metrics: Arc<Metrics>,
    /// libp2p's own metrics (swarm, Kademlia, relay, gossipsub, identify).
    libp2p_metrics: libp2p::metrics::Metrics,
    /// Serves `/metrics`, `/healthz` and `/readyz`; stopped with the relay.
    _metrics_server: Option<metrics::Server>,
    circuit_usage: CircuitUsage,
    commit: Option<JoinHandle<Result<Applied, StoreError>>>,
    /// Open connections per remote IP address, and each connection's.
    ips: HashMap<IpAddr, u32>,
    connection_ips: HashMap<ConnectionId, (PeerId, IpAddr)>,
    /// DHT puts per peer and per IP address.
    puts_per_peer: RateLimit<PeerId>,
    puts_per_ip: RateLimit<IpAddr>,
    connections_per_ip: u32,
    retention_ms: u64,
    next_history_sweep_ms: u64,
    /// Puts this relay's record in the DHT; `None` for a private relay.
    announcer: Option<announce::Announcer>,
}

/// How often group history is swept for what expired and topics unused.
const HISTORY_SWEEP_MS: u64 = 10 * 60 * 1000;

impl Relay {
    /// Opens the store, binds every address and the metrics endpoint.
    pub async fn start(config: Config) -> Result<(Self, Started), RelayError> {
        config.validate()?;
        // Served from the start, so `/healthz` answers and `/readyz` says
        // "not yet" while the store opens (replaying its logs) and the
        // relay binds its addresses.
        let metrics = Arc::new(Metrics::default());
        let metrics_server = match config.metrics {
            Some(addr) => Some(
                metrics::Server::start(addr, metrics.clone())
                    .await
                    .map_err(|source| RelayError::Metrics { addr, source })?,
            ),
            None => None,
        };
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
        let store = Arc::new(Store::open_cached(&db_path, config.store_cache_bytes())?);
        let mut secret = store.identity()?;
        // The same key signs the relay's DHT record (issue 19).
        let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
        let keypair = identity::Keypair::ed25519_from_bytes(&mut secret)
            .map_err(|e| RelayError::Network(e.to_string()))?;
        let peer_id = keypair.public().to_peer_id();
        let (mut swarm, libp2p_metrics) = {
            let mut registry = metrics.registry();
            let swarm = swarm::build(keypair, !config.bootstrap.is_empty(), &mut registry)?;
            (swarm, libp2p::metrics::Metrics::new(&mut registry))
        };
        let history = History::open(&config.data.join("history.redb"), config.history_rules())?;
        let blobs = crate::blobs::RelayBlobs::open(
            config.data.join("blobs"),
            &config.files,
            config.retention_secs,
            config.quotas.disk_bytes,
        )
        .map_err(|source| RelayError::DataDir {
            path: config.data.join("blobs"),
            source,
        })?;
        blobs.start(&mut swarm.behaviour().stream.new_control());
        for topic in history.topics() {
            let _ = swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&gossipsub::IdentTopic::new(topic.clone()));
        }

        let topics = TopicBook::new(history.topics().cloned(), config.limits.topics_per_ip);
        let clock = HostClock::default();
        let rules = RelayRules {
            quotas: config.quotas.clone(),
            retention_secs: config.retention_secs,
            push: config.push.clone(),
        };
        let mut engine = RelayEngine::load(
            rules,
            [rand::random(), rand::random()],
            &*store,
            clock.now(),
        )
        .map_err(|StoreFault(e)| RelayError::Load(e))?;
        engine.set_other_bytes(history.bytes() + blobs.bytes());
        blobs.set_other_bytes(engine.mail_bytes() + history.bytes());
        metrics.record(&engine.stats());

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
                        reason: io_reason(&error),
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
        let limits = config.limits.clone();
        let retention_ms = config.history_rules().retention_secs.saturating_mul(1000);
        let started = Started {
            peer_id,
            addresses,
            metrics: metrics_server.as_ref().map(metrics::Server::address),
        };
        tracing::info!(%peer_id, stored = engine.stats().stored_messages, "relay started");
        let relay = Self {
            pusher: crate::push::Pusher::new(&config.push, metrics.clone())?,
            swarm,
            store,
            engine,
            topics,
            history,
            blobs,
            clock,
            metrics,
            libp2p_metrics,
            _metrics_server: metrics_server,
            circuit_usage: CircuitUsage::default(),
            commit: None,
            ips: HashMap::new(),
            connection_ips: HashMap::new(),
            puts_per_peer: RateLimit::new(
                limits.dht_puts_per_peer_minute,
                MAX_CONNECTIONS as usize,
            ),
            puts_per_ip: RateLimit::new(limits.dht_puts_per_ip_minute, MAX_CONNECTIONS as usize),
            connections_per_ip: limits.connections_per_ip,
            retention_ms,
            next_history_sweep_ms: 0,
            announcer: config.announce.then(|| {
                let what = hush_protocol::relay::Announcement {
                    addrs: config.announce_addresses.clone(),
                    retention_secs: config.retention_secs,
                    max_item_len: u32::try_from(config.quotas.max_item_bytes).unwrap_or(u32::MAX),
                    accepting: true,
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                };
                announce::Announcer::new(signing, what, &started.addresses)
            }),
        };
        Ok((relay, started))
    }

    /// Serves until `shutdown` resolves, then lands what is being written.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        self.metrics.set_ready(true);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            self.drive();
            let commit = &mut self.commit;
            let commit_done = async {
                match commit {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => {
                    // Load balancers stop sending new nodes here first.
                    self.metrics.set_ready(false);
                    break;
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                result = commit_done => self.on_commit(join_result(result)),
                _ = tick.tick() => self.on_tick(),
            }
        }
        // Graceful stop: land the running batch and the one gathered after it.
        for _ in 0..3 {
            if let Some(task) = self.commit.as_mut() {
                let result = task.await;
                self.on_commit(join_result(result));
            }
            self.drive();
        }
        tracing::info!("relay stopped");
    }

    /// Carries out what the engine asks: answers, log lines, the next
    /// commit; and publishes its counters.
    fn drive(&mut self) {
        while let Some((channel, response)) = self.engine.poll_reply() {
            self.respond(channel, &response);
        }
        while let Some(event) = self.engine.poll_event() {
            match event {
                RelayEvent::Fault { during, error } => {
                    tracing::error!(%error, "relay store failed while {during}");
                }
                RelayEvent::ForgedOwnerRequest => {
                    tracing::info!("mailbox request not signed by the owner, refused");
                }
                RelayEvent::Expiring { items } => {
                    tracing::info!(count = items, "deleting expired mail");
                }
            }
        }
        while self.pusher.has_room()
            && let Some(target) = self.engine.poll_push()
        {
            self.pusher.send(target);
        }
        if self.commit.is_none()
            && let Some(writes) = self.engine.poll_commit()
        {
            let store = self.store.clone();
            self.commit = Some(tokio::task::spawn_blocking(move || store.apply(writes)));
        }
        self.metrics.record(&self.engine.stats());
    }

    fn on_relay(&mut self, event: &relay::Event) {
        self.circuit_usage.on_event(event);
        self.metrics.record_circuits(
            self.circuit_usage.reservations.len(),
            self.circuit_usage.circuits,
        );
    }

    fn on_commit(&mut self, result: Result<Applied, StoreError>) {
        self.commit = None;
        let result = result.map_err(|e| StoreFault(e.to_string()));
        self.engine.handle_committed(result, &*self.store);
    }

    fn respond(&mut self, reply: Reply, response: &MailboxResponse) {
        match response {
            MailboxResponse::Deposited { .. } => {
                self.metrics.deposit_answered(reply.received.elapsed());
            }
            MailboxResponse::Items { .. } | MailboxResponse::Batch { .. } => {
                self.metrics.fetch_answered(reply.received.elapsed())
            }
            _ => {}
        }
        if self
            .swarm
            .behaviour_mut()
            .mailbox
            .send_response(reply.channel, response.to_bytes())
            .is_err()
        {
            tracing::debug!("peer went away before its answer");
        }
    }

    /// Mail, group history and files share one disk budget
    /// (`quotas.disk_bytes`): each side learns what the others hold.
    fn count_disk(&mut self) {
        self.engine
            .set_other_bytes(self.history.bytes() + self.blobs.bytes());
        self.blobs
            .set_other_bytes(self.engine.mail_bytes() + self.history.bytes());
    }

    fn on_tick(&mut self) {
        let now = self.clock.now();
        if let Err(e) = self.history.flush(now.unix_ms) {
            tracing::error!(error = %e, "could not write group history");
        }
        if now.mono_ms >= self.next_history_sweep_ms {
            self.next_history_sweep_ms = now.mono_ms + HISTORY_SWEEP_MS;
            self.sweep_history(now.unix_ms);
        }
        self.count_disk();
        let (files, file_bytes) = self.blobs.stats();
        self.metrics
            .record_files(files, file_bytes, self.blobs.served());
        self.metrics
            .values
            .history_bytes
            .store(self.history.bytes(), std::sync::atomic::Ordering::Relaxed);
        for target in self.pusher.take_gone() {
            self.engine.handle_push_gone(&target);
        }
        self.engine.handle_timeout(now, &*self.store);
        self.metrics.record_log(&self.store.log_stats());
        let dht_peers = self
            .swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries() as u64)
            .sum();
        self.metrics
            .values
            .dht_peers
            .store(dht_peers, Ordering::Relaxed);
        self.announce(now, dht_peers);
        match self.store.hosted_keys() {
            Ok((devices, keys)) => self.metrics.record_hosted_keys(devices, keys),
            Err(e) => tracing::warn!(error = %e, "could not count the hosted keys"),
        }
    }

    /// A value someone asks us to keep in the DHT, if the engine's rule
    /// takes it, for no longer than the rule allows.
    fn on_put_record(&mut self, source: PeerId, mut record: kad::Record) {
        let now = self.clock.now().mono_ms;
        let ip = self
            .connection_ips
            .values()
            .find(|(peer, _)| *peer == source)
            .map(|(_, ip)| *ip);
        if !self.puts_per_peer.allow(now, source)
            || ip.is_some_and(|ip| !self.puts_per_ip.allow(now, ip))
        {
            self.metrics.dht_puts_refused();
            tracing::debug!(peer = %source, "DHT put over the rate limit; refused");
            return;
        }
        let Some(lifetime) = dht_record_lifetime(record.key.as_ref(), &record.value) else {
            tracing::debug!(peer = %source, "refused a malformed DHT record");
            return;
        };
        let max_expiry = Instant::now() + Duration::from_millis(lifetime);
        record.expires = Some(record.expires.map_or(max_expiry, |e| e.min(max_expiry)));
        record.publisher = None;
        use kad::store::RecordStore as _;
        if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(record) {
            tracing::warn!(error = %e, "could not keep a DHT record");
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.record_libp2p(&event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Mailbox(request_response::Event::Message {
                peer,
                connection_id,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
            })) => {
                // What a relay that logs would keep (tests read it).
                tracing::trace!(%peer, bytes = request.len(), "mailbox request");
                if tracing::enabled!(tracing::Level::TRACE)
                    && let Ok(MailboxRequest::Deposit { items, .. }) =
                        MailboxRequest::from_bytes(&request)
                {
                    for item in &items {
                        tracing::trace!(%peer, mailbox = %item.mailbox, "deposit item");
                    }
                }
                let now = self.clock.now();
                // Strangers' deposits count per address too (not those from
                // this machine: tests and benches run every node there).
                let ip = self
                    .connection_ips
                    .get(&connection_id)
                    .map(|(_, ip)| *ip)
                    .filter(|ip| !ip.is_loopback());
                let sender = peer.to_bytes();
                self.engine
                    .set_other_bytes(self.history.bytes() + self.blobs.bytes());
                let store = &*self.store;
                let reply = Reply {
                    channel,
                    received: Instant::now(),
                };
                self.engine
                    .handle_request_from(now, &sender, ip, &request, reply, store);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mailbox(
                request_response::Event::InboundFailure { peer, error, .. },
            )) => tracing::debug!(%peer, %error, "mailbox request failed"),
            SwarmEvent::Behaviour(BehaviourEvent::History(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                connection_id,
            })) => {
                let ip = self.connection_ips.get(&connection_id).map(|(_, ip)| *ip);
                self.on_history(peer, ip, &request, channel);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let topic = message.topic.as_str();
                let now_ms = self.clock.now().unix_ms;
                let acceptance = match self.topics.handle_publication(now_ms, topic, &message.data)
                {
                    Publication::Accept {
                        keep,
                        expires_at_ms,
                    } => {
                        if keep {
                            let len = message.data.len() as u64;
                            if self.engine.disk_has_room(len) {
                                let now_ms = self.clock.now().unix_ms;
                                self.history.add(topic, message.data, now_ms, expires_at_ms);
                                self.count_disk();
                            } else {
                                self.metrics.history_dropped();
                                tracing::debug!(
                                    "disk budget full: group message forwarded, not kept"
                                );
                            }
                        }
                        gossipsub::MessageAcceptance::Accept
                    }
                    Publication::Reject => {
                        tracing::debug!(peer = %propagation_source, "malformed group message rejected");
                        gossipsub::MessageAcceptance::Reject
                    }
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
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => self.on_relay(&event),
            SwarmEvent::Behaviour(BehaviourEvent::Liveness(liveness::Event::Dead {
                peer,
                silent_for,
                ..
            })) => {
                tracing::info!(%peer, silent_ms = silent_for.as_millis() as u64, "connection went silent; closed");
                self.metrics.dead_connection();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if num_established.get() == 1 {
                    self.engine.handle_connection(&peer_id.to_bytes(), true);
                }
                if let Some(ip) = ip_of(endpoint.get_remote_address()) {
                    let n = self.ips.entry(ip).or_default();
                    *n += 1;
                    self.connection_ips.insert(connection_id, (peer_id, ip));
                    // Files are counted per address too (not from this
                    // machine: tests and benches run every node there).
                    self.blobs
                        .set_address(peer_id, Some(ip).filter(|ip| !ip.is_loopback()));
                    if *n > self.connections_per_ip {
                        tracing::debug!(%ip, "too many connections from one address; closing");
                        self.swarm.close_connection(connection_id);
                    }
                }
                self.count_connections();
            }
            SwarmEvent::ConnectionClosed {
                connection_id,
                peer_id,
                num_established,
                ..
            } => {
                if let Some((_, ip)) = self.connection_ips.remove(&connection_id)
                    && let Some(n) = self.ips.get_mut(&ip)
                {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.ips.remove(&ip);
                    }
                }
                if num_established == 0 {
                    self.blobs.set_address(peer_id, None);
                    self.engine.handle_connection(&peer_id.to_bytes(), false);
                }
                self.count_connections();
            }
            _ => {}
        }
    }

    /// libp2p's metrics of the event (the swarm's, and the protocol's).
    fn record_libp2p(&self, event: &SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        let m = &self.libp2p_metrics;
        m.record(event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => m.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => m.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => m.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => m.record(e),
            _ => {}
        }
    }

    fn count_connections(&self) {
        let n = self
            .swarm
            .network_info()
            .connection_counters()
            .num_established();
        self.metrics
            .values
            .connections
            .store(u64::from(n), Ordering::Relaxed);
    }

    /// Drops the topics nobody used for the retention period, and the
    /// messages past it in every topic.
    fn sweep_history(&mut self, now_ms: u64) {
        let gone = self.topics.expire(now_ms, self.retention_ms);
        for topic in &gone {
            let t = gossipsub::IdentTopic::new(topic.clone());
            self.swarm.behaviour_mut().gossipsub.unsubscribe(&t);
        }
        if !gone.is_empty() {
            tracing::info!(count = gone.len(), "stopped keeping unused group topics");
        }
        if let Err(e) = self.history.maintain(now_ms, &gone) {
            tracing::error!(error = %e, "could not sweep group history");
        }
    }

    /// Keep a group topic's history, or page it out, as the engine says.
    fn on_history(&mut self, peer: PeerId, ip: Option<IpAddr>, bytes: &[u8], channel: Channel) {
        let now_ms = self.clock.now().unix_ms;
        // Loopback is not counted: tests and benches run every node there.
        let ip = ip.filter(|ip| !ip.is_loopback());
        let response = match self.topics.handle_request(now_ms, ip, bytes) {
            HistoryAction::Answer(response) => response,
            HistoryAction::Keep(topic) => {
                self.history.keep(&topic);
                let t = gossipsub::IdentTopic::new(topic);
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&t) {
                    tracing::warn!(error = ?e, "could not subscribe to a group topic");
                }
                HistoryResponse::Keeping
            }
            HistoryAction::Page {
                topic,
                after,
                limit,
            } => {
                // Land what was just published, so a page never skips it.
                if let Err(e) = self.history.flush(self.clock.now().unix_ms) {
                    tracing::error!(error = %e, "could not write group history");
                }
                self.history.page(&topic, after, limit).unwrap_or_else(|e| {
                    HistoryResponse::Refused {
                        reason: format!("the relay could not read its store: {e}"),
                    }
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

/// The IP address in a multiaddr (the first `/ip4` or `/ip6`), if any.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        libp2p::multiaddr::Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// An I/O error with what caused it, for people: libp2p's listener errors
/// can have an empty message of their own.
fn io_reason(error: &std::io::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        format!("{:?}", error.kind())
    } else {
        parts.join(": ")
    }
}

//! The one task that owns the swarm, the Olm state and the outbox.
//!
//! In: [`Command`]s from [`Node`](crate::Node) handles, swarm events, commit
//! completions, a retry tick. Out: requests and responses on the swarm,
//! [`Op`] batches to the store, [`Event`]s to subscribers.
//!
//! Writes are group-committed: while one batch commits on a blocking thread,
//! the loop gathers the next. Anything that must not happen before its state
//! is durable — acking an envelope, handing out a one-time key, sending an
//! envelope, replying to `send` — is queued as an [`After`] and runs only
//! once its batch committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hush_protocol::device::{
    CardReach, ContactBook, DeviceEngine, DeviceSelf, MessageClock, RightIssuer,
};
use hush_protocol::{AccountId, ContactCard, OlmDevice};
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

/// A [`Ctx`](hush_protocol::device::Ctx) for an engine call: now, the
/// loop's message clock, fresh randomness.
macro_rules! ctx {
    ($loop:ident) => {
        &mut hush_protocol::device::Ctx {
            now: $loop.host_clock.now(),
            clock: &mut $loop.clock,
            rng: &mut rand::thread_rng(),
        }
    };
}

mod commit;
mod contacts;
mod counts;
mod devices;
mod direct;
mod drain;
mod expiry;
mod failover;
mod files;
mod group_history;
mod groups;
mod linking;
mod liveness;
mod muting;
mod presence;
mod push;
mod reach;
mod relays;
mod watchdog;

pub(crate) use commit::Landing;
use commit::{After, Batch, Commit, SNAPSHOT_KEPT};
pub(crate) use contacts::ContactAction;
pub(crate) use failover::Failover;
pub(crate) use files::{FileConfig, file_view};
pub(crate) use groups::{GroupCommand, GroupConfig};
pub(crate) use presence::PresenceConfig;
use watchdog::{Turn, Watchdog};

use crate::error::NodeError;
use crate::identity::Me;
use crate::journal::Journal;
use crate::network::{self, BehaviourEvent, NodeSwarm};
use crate::node::Command;
use crate::outbox::Outbox;
use crate::records::ContactRecord;
use crate::store::{Op, Store, StoreError};
use crate::view::NodeStatus;

/// The loop's tick (retries, timeouts, held commits, receipts and
/// heartbeats due are looked at on it) while anything happened in the last
/// [`BUSY_FOR`].
const BUSY_TICK: Duration = Duration::from_millis(100);
/// The tick of a node at rest. Each tick wakes the loop and polls the whole
/// swarm: at 100 ms that was three quarters of a lone idle node's CPU. What
/// is due at rest (heartbeats, retries seconds apart, expiry, the lazy
/// commit's landing) is due seconds apart, and any event brings the busy
/// tick back at once.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How long after the last event (a command, a swarm event, a commit, a
/// file or courier event) the loop keeps the busy tick.
const BUSY_FOR: Duration = Duration::from_secs(5);
/// On graceful stop, contacts get our offline record within this long.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);
/// At start, how long sends to an account of several devices wait for our
/// relays to be read (they may hold its newer list) before going anyway.
const LIST_CHECK_GRACE: Duration = Duration::from_secs(15);
/// Addresses remembered per contact device (from its card and Identify).
const MAX_ADDRESSES_PER_DEVICE: usize = 8;

/// The contact book, in the node's terms.
type Contacts = ContactBook<PeerId, Multiaddr>;

/// The device engine, in the node's terms.
type Engine = DeviceEngine<PeerId, Multiaddr, OutboundRequestId, libp2p::gossipsub::MessageId>;

/// Loads the contact book from the stored records; a card that no longer
/// verifies is skipped (and logged).
fn load_contacts(records: Vec<ContactRecord>) -> Contacts {
    let mut contacts = Contacts::default();
    for record in records {
        match record.card.parse::<ContactCard>() {
            Ok(card) => {
                let reach = card_reach(&card);
                contacts.insert(record, card, reach);
            }
            Err(e) => {
                tracing::error!(contact = %record.name, error = %e, "stored contact card no longer verifies; skipping it")
            }
        }
    }
    contacts
}

/// A card's devices, addresses and relays as libp2p sees them.
fn card_reach(card: &ContactCard) -> CardReach<PeerId, Multiaddr> {
    CardReach {
        devices: card
            .device_list
            .devices
            .iter()
            .filter_map(|d| Some((d.device_id, network::peer_id(&d.device_id)?)))
            .collect(),
        addresses: card
            .addresses
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect(),
        relays: card
            .relays
            .iter()
            .filter_map(|a| a.parse::<Multiaddr>().ok())
            .filter_map(|a| Some((network::peer_in(&a)?, a)))
            .collect(),
    }
}

/// How the loop is set up, from [`crate::NodeConfig`].
#[derive(Debug, Clone)]
pub(crate) struct LoopOptions {
    pub mail_poll: Duration,
    pub presence: PresenceConfig,
    pub groups: GroupConfig,
    pub mdns: bool,
    pub hidden: bool,
    pub files: FileConfig,
    /// Which addresses cards and presence records carry.
    pub addresses: crate::addresses::AddressPolicy,
    /// How long a home relay found through the DHT may be silent before
    /// it is replaced.
    pub relay_failover: Duration,
    /// Where a search for a replacement enters the DHT.
    pub bootstrap: Vec<Multiaddr>,
    /// What to run for each new message.
    pub notify: Option<crate::notify::NotifyConfig>,
}

pub(crate) struct EventLoop {
    swarm: NodeSwarm,
    /// When the gossip state was last logged (at debug level).
    gossip_logged: Instant,
    store: Arc<Store>,
    me: Me,
    /// Every protocol decision of this device (`hush_protocol::device`).
    engine: Engine,
    /// Mints our message ids; stored with the batch after it moved.
    clock: MessageClock,
    /// The time handed to the engine parts (`hush_protocol::device`).
    host_clock: hush_host::HostClock,
    /// Since when commits have been lazy (see [`Batch::may_wait`]): the
    /// next commit is durable once [`LAZY_WINDOW`] has passed, even an
    /// empty one.
    lazy_since: Option<Instant>,
    /// Since when the gathered batch has waited to ride with a durable
    /// commit (see `Batch::may_ride`).
    held_since: Option<Instant>,
    /// Shutting down: every commit is durable.
    closing: bool,
    commands: mpsc::Receiver<Command>,
    /// Where events go: numbered, kept and handed to every subscriber.
    events: Arc<Journal>,
    /// Whether events went out for a batch not landed yet (shared with the
    /// node's reads).
    landing: Landing,
    batch: Batch,
    commit: Option<Commit>,
    /// A read of the store kept for received group messages from one
    /// commit to the next (`EventLoop::group_snapshot`, in `commit.rs`): dropped
    /// when a commit lands, since the engine then forgets what that commit
    /// stored, and when older than [`SNAPSHOT_KEPT`].
    group_snapshot: Option<(crate::store::Snapshot, Instant)>,
    /// Messages whose receipt counts wait to be told (`counts.rs`).
    counts_due: counts::CountsDue,
    /// Pages of mail whose seals are being opened off the loop.
    opening: drain::Opening,
    /// The order of our direct requests, and of the batches peers send us
    /// (`/hush/direct/2`).
    direct_order: direct::DirectOrder,
    listen_addresses: Vec<Multiaddr>,
    address_policy: crate::addresses::AddressPolicy,
    /// What the connection gate was last told: the contact book's
    /// generation and our home relays.
    gate_synced: Option<(u64, Vec<PeerId>)>,
    /// Our home relays and the drain loop for each, then the replaced
    /// ones still read (`failover.rs`). Requests name a relay by its slot
    /// here.
    home: Vec<relays::HomeRelay>,
    /// Replacing home relays that stopped answering.
    failover: Failover,
    /// Runs `--notify-cmd` for new messages.
    notifier: Option<crate::notify::Notifier>,
    /// Conversations the user muted (no notification).
    muted: std::collections::HashSet<hush_protocol::ConversationId>,
    /// Where the home relays wake this device while it is offline.
    push_endpoint: Option<String>,
    /// How often home relays are asked for mail.
    mail_poll: Duration,
    /// Home relays to send the stored revocations again when they next
    /// answer (the last sending failed).
    drops_due: std::collections::HashSet<usize>,
    mail_requests: HashMap<OutboundRequestId, relays::MailRequest>,
    /// Deposits and key claims at other people's relays, and lookups of
    /// other people's presence, go from here: a short-lived identity, not
    /// our PeerId (`crate::courier`). Made when first needed; `None` until
    /// then, after it was spent, or if it could not be built (then they go
    /// from the swarm).
    courier: Option<crate::courier::Courier<relays::MailRequest>>,
    presence: presence::PresenceHost,
    reach: reach::Reach,
    groups: groups::GroupHost,
    /// Peers whose connections died silently (see `liveness`).
    lost: liveness::Lost,
    /// The link code in flight (`hush device link`).
    link: linking::LinkHost,
    /// Downloads, and who may fetch our blobs.
    files: files::FileHost,
    /// Applying a contact change another device of ours made: not told
    /// back to our devices.
    applying_own_change: bool,
    /// Disappearing messages being deleted.
    expiry: expiry::Expiry,
    /// When every home relay was last read to the end (Unix ms), as
    /// stored: how far back our pairwise mailboxes are fetched.
    drained_at: Option<u64>,
}

impl EventLoop {
    pub(crate) fn new(
        me: Me,
        olm: OlmDevice,
        store: Arc<Store>,
        commands: mpsc::Receiver<Command>,
        events: Arc<Journal>,
        landing: Landing,
        options: LoopOptions,
    ) -> Result<Self, NodeError> {
        let swarm = network::build_swarm(
            me.keypair.clone(),
            network::SwarmOptions {
                mdns: options.mdns,
                hole_punch: !options.hidden,
            },
        )
        .map_err(NodeError::Identity)?;
        let files = files::FileHost::new(options.files, swarm.behaviour().stream.new_control());
        let host_clock = hush_host::HostClock::default();
        let mut presence = presence::PresenceHost::load(
            options.presence,
            &me,
            store.own_presence()?,
            store.presence()?,
            host_clock.now(),
        );
        presence.set_seed(store.presence_seed()?);
        let mut home =
            relays::HomeRelay::parse_all(&me.relays, host_clock.now(), options.mail_poll);
        let muted = store.muted()?.into_iter().collect();
        let push_endpoint = store.push_endpoint()?;
        let retired = store.retired_relays()?;
        for mut relay in relays::HomeRelay::parse_all(&retired, host_clock.now(), options.mail_poll)
        {
            if home.len() < failover::MAX_HOME_SLOTS && home.iter().all(|h| h.peer != relay.peer) {
                relay.retired = true;
                home.push(relay);
            }
        }
        let clock = MessageClock::resume(store.clock()?);
        let contacts = load_contacts(store.contacts()?);
        let mut outbox = Outbox::default();
        let now = host_clock.now();
        for (key, record) in store.outbox()? {
            outbox.insert(key, record, now);
        }
        tracing::info!(
            account = %me.account,
            peer = %me.keypair.public().to_peer_id(),
            contacts = contacts.len(),
            outbox = outbox.len(),
            "node loaded"
        );
        let batch = Batch::default();
        let group_book = groups::load_groups(&store, &me, options.groups);
        let mut engine = Engine::new(
            DeviceSelf {
                account: me.account,
                keys: me.device,
                issuer: right_issuer(&me.keypair)?,
            },
            olm,
            contacts,
            group_book,
            card_reach,
        );
        engine.outbox = outbox;
        for (device, right) in store.rights()? {
            engine.restore_right(device, right);
        }
        for (device, grant) in store.grants()? {
            engine.restore_grant(device, grant);
        }
        for (device, stated) in store.device_relays()? {
            engine.load_home_relays(device, &stated);
        }
        let drained_at = store.drained_at()?;
        for (account, timer) in store.timers()? {
            let timer = hush_protocol::device::ConversationTimer {
                secs: timer.secs,
                set_by: timer.set_by,
            };
            engine.restore_timer(account, timer);
        }
        let mut event_loop = Self {
            swarm,
            store,
            me,
            engine,
            clock,
            host_clock,
            lazy_since: None,
            held_since: None,
            gossip_logged: Instant::now(),
            closing: false,
            commands,
            events,
            landing,
            batch,
            commit: None,
            group_snapshot: None,
            counts_due: counts::CountsDue::default(),
            opening: drain::Opening::default(),
            direct_order: direct::DirectOrder::new(rand::random()),
            listen_addresses: Vec::new(),
            address_policy: options.addresses,
            gate_synced: None,
            home,
            failover: Failover::new(options.relay_failover, options.bootstrap.clone()),
            notifier: options.notify.clone().map(crate::notify::Notifier::new),
            muted,
            push_endpoint,
            mail_poll: options.mail_poll,
            drops_due: std::collections::HashSet::new(),
            mail_requests: HashMap::new(),
            courier: None,
            presence,
            reach: reach::Reach::default(),
            groups: groups::GroupHost::default(),
            lost: liveness::Lost::default(),
            link: linking::LinkHost::default(),
            files,
            applying_own_change: false,
            expiry: expiry::Expiry::default(),
            drained_at,
        };
        event_loop.restore_trust()?;
        // A new device's presence key goes to disk with the first batch.
        event_loop.drive_presence();
        event_loop.groups_start();
        Ok(event_loop)
    }

    /// Starts listening and waits until every address is bound, so the
    /// card printed right after start lists them.
    pub(crate) async fn listen(mut self, addrs: &[Multiaddr]) -> Result<Self, NodeError> {
        for addr in addrs {
            self.swarm
                .listen_on(addr.clone())
                .map_err(|e| NodeError::InvalidListenAddress {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?;
        }
        let mut bound = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while bound < addrs.len() {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| NodeError::InvalidListenAddress {
                    addr: format!("{addrs:?}"),
                    reason: "timed out binding".into(),
                })?;
            match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    self.listen_addresses.push(address);
                    bound += 1;
                }
                SwarmEvent::ListenerError { error, .. }
                | SwarmEvent::ListenerClosed {
                    reason: Err(error), ..
                } => {
                    return Err(NodeError::InvalidListenAddress {
                        addr: format!("{addrs:?}"),
                        reason: error.to_string(),
                    });
                }
                other => self.on_swarm_event(other),
            }
        }
        self.batch
            .ops
            .push(Op::PutListenAddresses(self.shared_address_strings()));
        self.share_direct_addresses();
        // Our other devices become known with our card; revoked ones are
        // refused.
        self.own_card_to_engine();
        if let Err(e) = self.restore_revoked() {
            tracing::warn!(error = %e, "could not read the revoked devices");
        }
        // Revocations a home relay may have missed (or a relay added since).
        for i in 0..self.home.len() {
            self.send_drops(i);
        }
        if !self.home.is_empty() {
            // A device revoked while we were away: its account's new list
            // waits at our relays. Nothing goes to an account of several
            // devices before we read them (or they stay silent too long).
            self.engine
                .hold_until_drained(ctx!(self), millis(LIST_CHECK_GRACE));
        }
        // Say hello to every contact device (and our own other devices),
        // so both sides flush their outboxes.
        let peers: Vec<(PeerId, Vec<Multiaddr>)> = self
            .engine
            .contacts
            .device_peers()
            .filter_map(|(peer, account)| {
                let c = self.engine.contacts.known(&account)?;
                Some((peer, c.addresses.clone()))
            })
            .collect();
        for (peer, addresses) in peers {
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(addresses)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "could not dial contact");
            }
        }
        self.reserve_circuits();
        self.presence_start();
        // Contacts added before we had a key, or while sharing was off.
        let accounts: Vec<AccountId> = self.engine.contacts.accounts();
        for account in accounts {
            self.share_key_with(&account);
        }
        self.push_list_if_new();
        self.push_relays_if_changed();
        self.resume_downloads();
        self.resume_uploads();
        Ok(self)
    }

    pub(crate) async fn run(mut self) {
        // The first tick runs at once: what waits at our relays (the drain
        // of a node that was offline) and in the outbox starts moving now,
        // not a tick after start.
        let mut next_tick = Instant::now();
        let mut last_event = Instant::now();
        let tick = tokio::time::sleep_until(next_tick.into());
        tokio::pin!(tick);
        let mut watchdog = Watchdog::start();
        // Its task waits in this worker's own slot, which the other
        // worker cannot take: let it start now, not after a first turn
        // that might never end.
        tokio::task::yield_now().await;
        loop {
            if tick.deadline() != next_tick.into() {
                tick.as_mut().reset(next_tick.into());
            }
            watchdog.begin(Turn::Flush);
            self.sync_gate();
            self.flush();
            watchdog.end();
            let commit = &mut self.commit;
            let commit_done = async {
                match commit {
                    Some(c) => (&mut c.task).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = self.commands.recv() => {
                    watchdog.begin(Turn::Command);
                    match command {
                        Some(Command::Shutdown { reply }) => {
                            watchdog.end();
                            self.presence_goodbye(GOODBYE_WAIT).await;
                            self.send_receipts();
                            self.finish().await;
                            self.tell_waiting_counts();
                            let _ = reply.send(Ok(()));
                            return;
                        }
                        Some(command) => self.on_command(command),
                        None => break,
                    }
                }
                event = self.swarm.select_next_some() => {
                    watchdog.begin(Turn::Network);
                    self.on_swarm_event(event);
                }
                event = self.files.next() => {
                    watchdog.begin(Turn::Files);
                    self.on_file_event(event);
                }
                event = courier_next(&mut self.courier) => {
                    watchdog.begin(Turn::Courier);
                    self.on_courier_event(event);
                }
                (replacing, found) = Failover::finished(self.failover.search_slot()) => {
                    watchdog.begin(Turn::Failover);
                    self.on_replacement(replacing, found);
                }
                Some((page, opened)) = self.opening.next(), if !self.opening.is_empty() => {
                    watchdog.begin(Turn::Mail);
                    self.on_opening_done(page, opened);
                }
                result = commit_done => {
                    watchdog.begin(Turn::Commit);
                    let result = result.unwrap_or_else(|e| Err(StoreError::Storage(redb::StorageError::Io(std::io::Error::other(e)))));
                    self.on_commit(result);
                }
                () = &mut tick => {
                    watchdog.begin(Turn::Tick);
                    self.on_tick();
                    watchdog.end();
                    let period = if last_event.elapsed() < BUSY_FOR {
                        BUSY_TICK
                    } else {
                        IDLE_TICK
                    };
                    next_tick = Instant::now() + period;
                    continue;
                }
            }
            watchdog.end();
            last_event = Instant::now();
            next_tick = next_tick.min(last_event + BUSY_TICK);
        }
        watchdog.end();
        self.finish().await;
    }

    fn on_tick(&mut self) {
        // A quiet loop holds no read of the store (redb cannot reuse the
        // pages a reader may still see).
        if self
            .group_snapshot
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() >= SNAPSHOT_KEPT)
        {
            self.group_snapshot = None;
        }
        self.engine.handle_tick(ctx!(self));
        self.drive();
        self.direct_tick();
        self.relay_tick();
        self.presence_tick();
        self.reach_tick();
        self.groups_tick();
        self.link_tick();
        self.files_tick();
        self.expiry_tick();
        self.report_slow_commit();
        if self
            .courier
            .as_ref()
            .is_some_and(|c| c.is_spent(Instant::now()))
        {
            // A fresh identity for what goes next (made when needed).
            self.courier = None;
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::AddContact {
                name,
                card,
                card_text,
                update,
                reply,
            } => self.add_contact(name, *card, card_text, update, reply),
            Command::Send {
                contact,
                text,
                reply,
            } => self.send(&contact, text, reply),
            Command::Land { reply } => self.land(reply),
            Command::MarkRead { contact, reply } => self.mark_read(&contact, reply),
            Command::Mute { target, on, reply } => self.mute(target, on, reply),
            Command::SetPush { endpoint, reply } => self.set_push(endpoint, reply),
            Command::SetReceipts { contact, on, reply } => {
                let set = self.engine.set_receipts(&contact, on);
                self.drive();
                match set {
                    Ok(record) => {
                        self.tell_own_devices_contact(&record.account);
                        let view = self.view_of(&record);
                        self.batch.after.push(After::ReplyContact(reply, view));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::SetTimer {
                contact,
                secs,
                reply,
            } => {
                let set = self.engine.set_timer(ctx!(self), &contact, secs);
                self.drive();
                match set {
                    Ok(_) => match self.engine.contacts.contact(&contact) {
                        Some(c) => {
                            let view = self.view_of(&c.record.clone());
                            self.batch.after.push(After::ReplyContact(reply, view));
                        }
                        None => {
                            let _ = reply.send(Err(NodeError::UnknownContact { name: contact }));
                        }
                    },
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::ContactAction {
                contact,
                action,
                reply,
            } => self.contact_action(&contact, action, reply),
            Command::Names { accounts, reply } => {
                let names = accounts.iter().map(|a| self.member_name(a)).collect();
                let _ = reply.send(Ok(names));
            }
            Command::Status { reply } => {
                let status = NodeStatus {
                    name: self.me.name.clone(),
                    account: self.me.account.to_string(),
                    device: self.me.device_id().to_string(),
                    peer_id: self.swarm.local_peer_id().to_string(),
                    listen_addresses: self
                        .listen_addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect(),
                    connected_peers: self.swarm.connected_peers().count(),
                    contacts: self.engine.contacts.len(),
                    outbox: self.engine.outbox.len(),
                    relays: self.relay_views(),
                    relay_search: self.me.relay_search.clone(),
                    push: self.push_host(),
                    reachability: self.reachability(),
                    devices: self.me.device_list.devices.len(),
                    account_key: self.me.account_key().is_some(),
                    revoked: self.engine.is_revoked(),
                    sync_waiting: self.engine.outbox.count_for(&self.me.account),
                    files_served_bytes: self.files.served(),
                    // Filled in by the handle, which knows the home.
                    at_rest: String::new(),
                };
                let _ = reply.send(Ok(status));
            }
            Command::Shutdown { reply } => {
                let _ = reply.send(Ok(()));
            }
            Command::Presence {
                contact,
                refresh,
                reply,
            } => self.query_presence(&contact, refresh, reply),
            Command::SharePresence { contact, on, reply } => {
                self.set_presence_sharing(contact.as_deref(), on, reply);
            }
            Command::Group(command) => self.on_group_command(command),
            Command::LinkStart {
                with_account_key,
                reply,
            } => self.link_start(with_account_key, reply),
            Command::LinkWait { reply } => self.link_wait(reply),
            Command::Devices { reply } => {
                let _ = reply.send(self.device_views());
            }
            Command::DeviceRevoke { device, reply } => self.revoke_device(&device, reply),
            Command::SendFile {
                contact,
                offer,
                path,
                reply,
            } => self.send_file(&contact, *offer, path, reply),
            Command::FileGet { id, to, reply } => self.file_get(&id, to, reply),
            Command::FileCancel { id, reply } => self.file_cancel(&id, reply),
            Command::Files { reply } => {
                let views = self.store.files().map(|files| {
                    files
                        .iter()
                        .map(|(conversation, id, file)| self.view_file(*conversation, *id, file))
                        .collect()
                });
                let _ = reply.send(views.map_err(Into::into));
            }
            Command::Card { reply } => {
                let addresses = self.shared_address_strings();
                let _ = reply.send(Ok(self.me.card(&addresses).to_string()));
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Direct(event)) => self.on_direct(event),
            SwarmEvent::Behaviour(BehaviourEvent::Keys(event)) => self.on_keys(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mailbox(event)) => self.on_mailbox(event),
            SwarmEvent::Behaviour(BehaviourEvent::Presence(event)) => self.on_presence(event),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::History(event)) => self.on_history(event),
            SwarmEvent::Behaviour(BehaviourEvent::Link(event)) => self.on_link(event),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(event)) => self.on_autonat(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => {
                self.on_relay_client(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => self.on_dcutr(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(event)) => self.on_mdns(event),
            SwarmEvent::Behaviour(BehaviourEvent::Liveness(hush_host::liveness::Event::Dead {
                peer,
                silent_for,
                ..
            })) => self.connection_dead(peer, silent_for),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                libp2p::identify::Event::Received { peer_id, info, .. },
            )) if self.engine.contacts.is_known_peer(&peer_id) => {
                for addr in info.listen_addrs.into_iter().take(MAX_ADDRESSES_PER_DEVICE) {
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                self.lan_connected(peer_id, connection_id);
                self.connection_opened(peer_id, &endpoint);
                self.relay_connected(&peer_id, true);
                if num_established.get() == 1
                    && self.home.iter().any(|r| r.peer == peer_id && !r.retired)
                {
                    self.groups_relay_connected(peer_id);
                }
                if let Some((_, keys)) = self.engine.contacts.device_by_peer(&peer_id) {
                    self.engine.routes.reached(&keys.device_id);
                    self.engine
                        .outbox
                        .wake(&keys.device_id, self.host_clock.now());
                    if num_established.get() == 1 {
                        self.presence_connected(&peer_id);
                    }
                }
                // A relay we back off from for deposits answers again.
                self.engine.routes.relay_ok(&peer_id);
                self.peer_answered(&peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                self.connection_closed(peer_id, &endpoint);
                if num_established == 0 {
                    self.direct_order.forget(&peer_id);
                    self.own_device_left(&peer_id);
                    self.relay_connected(&peer_id, false);
                    self.presence_disconnected(&peer_id);
                }
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => self.circuit_closed(listener_id),
            SwarmEvent::NewListenAddr { address, .. }
                if !self.listen_addresses.contains(&address) =>
            {
                self.listen_addresses.push(address);
                self.batch
                    .ops
                    .push(Op::PutListenAddresses(self.shared_address_strings()));
                self.share_direct_addresses();
                self.network_back("a new address");
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addresses.retain(|a| *a != address);
                self.network_back("an address went away");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "reachable at");
            }
            SwarmEvent::OutgoingConnectionError { connection_id, .. } => {
                self.lan_dial_failed(connection_id);
            }
            _ => {}
        }
    }
}

/// A duration in whole milliseconds, as the engine parts take them.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Our deposit-right issuer: the device key is the libp2p Ed25519 key.
fn right_issuer(keypair: &libp2p::identity::Keypair) -> Result<RightIssuer, NodeError> {
    let ed = keypair.clone().try_into_ed25519().map_err(|_| {
        NodeError::Identity(std::io::Error::other(
            "the device key is not an Ed25519 key",
        ))
    })?;
    let mut secret = [0u8; 32];
    secret.copy_from_slice(ed.secret().as_ref());
    Ok(RightIssuer::new(secret))
}

/// A courier with a fresh identity that finds the DHT through `seeds`, or
/// `None` (and a warning) if it could not be built.
fn new_courier(
    seeds: &[(PeerId, Multiaddr)],
) -> Option<crate::courier::Courier<relays::MailRequest>> {
    match crate::courier::Courier::new(seeds) {
        Ok(courier) => {
            tracing::debug!(courier = %courier.peer_id(), "a fresh courier identity");
            Some(courier)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no courier: deposits go from this node's own identity");
            None
        }
    }
}

/// What the courier brings back next; never, without a courier.
async fn courier_next(
    courier: &mut Option<crate::courier::Courier<relays::MailRequest>>,
) -> crate::courier::CourierEvent<relays::MailRequest> {
    match courier {
        Some(c) => c.next().await,
        None => std::future::pending().await,
    }
}

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
    Arrival, CardReach, ContactBook, Inbox, KeyDecision, KeyService, MessageClock, Opened, Routes,
};
use hush_protocol::{
    AccountId, AckBatch, Body, ContactCard, ConversationId, DeviceId, DeviceKeys, DirectAck,
    EnvelopeBatch, KeyBundle, KeyRequest, MAX_BATCH_LEN, MAX_RECEIPT_IDS, MAX_TEXT_LEN, MessageId,
    OlmDevice, Payload, ReceiptKind, RejectReason, Wire,
};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

mod groups;
mod presence;
mod reach;
mod relays;

pub(crate) use groups::{GroupCommand, GroupConfig};
pub(crate) use presence::PresenceConfig;

use crate::error::NodeError;
use crate::identity::Me;
use crate::network::{self, Behaviour, BehaviourEvent};
use crate::node::{Command, Reply, contact_view, now_ms};
use crate::outbox::{MAX_BATCH_ENVELOPES, MAX_OUTBOX_ENTRIES, Outbox};
use crate::records::{ContactRecord, MessageRecord, OutboxKind, OutboxRecord, Status};
use crate::store::{Durability, Op, OutboxKey, Store, StoreError};
use crate::view::{Event, GroupView, MessageView, NodeStatus, PresenceView, SendReceipt};

const RETRY_TICK: Duration = Duration::from_millis(100);
/// On graceful stop, contacts get our offline record within this long.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);
/// Addresses remembered per contact device (from its card and Identify).
const MAX_ADDRESSES_PER_DEVICE: usize = 8;

/// The contact book, in the node's terms.
type Contacts = ContactBook<PeerId, Multiaddr>;

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

/// Where an envelope came from: `/hush/direct/1` or a mailbox.
type Source = hush_protocol::device::Source<PeerId>;

/// What became of one envelope the recipient did not refuse.
#[derive(Debug)]
enum Received {
    /// Accepted into the next write batch; the ack goes out after it
    /// commits. `text` names a new text message (for a delivered receipt).
    Queued {
        ack: DirectAck,
        text: Option<(AccountId, MessageId)>,
    },
    /// Stored earlier (its digest is on disk): acked as a duplicate at once.
    AlreadyStored,
    /// A copy is in the batch being committed right now.
    InProgress,
}

/// Runs once the batch it was queued with has committed.
#[derive(Debug)]
enum After {
    Ack(ResponseChannel<Vec<u8>>, AckBatch),
    KeyBundle(ResponseChannel<Vec<u8>>, KeyBundle),
    Dispatch(OutboxKey),
    Emit(Event),
    Received([u8; 32]),
    ReplySend(Reply<SendReceipt>, SendReceipt),
    ReplyContact(Reply<crate::view::ContactView>, crate::view::ContactView),
    ReplyRead(Reply<usize>, usize),
    /// Mail from this home relay is stored: tell the relay to delete it.
    MailAck(usize, Vec<u64>),
    /// One-time keys are on disk: hand them to this home relay.
    UploadKeys(usize, hush_protocol::OwnerRequest),
    ReplyPresence(Reply<Option<PresenceView>>, Option<PresenceView>),
    ReplyGroup(Reply<GroupView>, GroupView),
    /// A group message and the Megolm ratchet that made it are stored:
    /// publish it on the group's topic.
    Publish(hush_protocol::GroupId, Vec<u8>),
    /// A group message waiting for its key is on disk now.
    PendingStored([u8; 32], [u8; 32]),
    /// Receipts for these messages of ours are on disk: tell the counts.
    ReceiptCounts(hush_protocol::GroupId, Vec<hush_protocol::MessageId>),
}

#[derive(Debug, Default)]
struct Batch {
    ops: Vec<Op>,
    after: Vec<After>,
}

/// How long a lazy commit may stay off the disk (see [`Batch::may_wait`]).
const LAZY_WINDOW: Duration = Duration::from_secs(1);

impl Batch {
    /// Whether this batch may be committed without waiting for the disk:
    /// only group messages received (the message, its digest, the clock)
    /// whose only consequence is an event. Everything that answers a peer
    /// or the user, moves a cursor, or touches a key waits for the disk.
    ///
    /// Safe because nothing outside learns of a lazy commit before a later
    /// durable one (which lands every commit before it): receipts leave
    /// through the outbox, in a durable commit; the relay history cursor
    /// moves only in a durable commit, so a message a crash took is fetched
    /// again. The user may have seen it in the event stream, and sees it
    /// again.
    fn may_wait(&self) -> bool {
        self.ops
            .iter()
            .all(|op| matches!(op, Op::PutSeen(..) | Op::PutMessage(..) | Op::PutClock(_)))
            && self
                .after
                .iter()
                .all(|a| matches!(a, After::Emit(_) | After::Received(_)))
    }
}

#[derive(Debug)]
struct Commit {
    task: JoinHandle<Result<(), StoreError>>,
    after: Vec<After>,
}

/// How the loop is set up, from [`crate::NodeConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoopOptions {
    pub mail_poll: Duration,
    pub presence: PresenceConfig,
    pub groups: GroupConfig,
    pub mdns: bool,
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    store: Arc<Store>,
    me: Me,
    olm: OlmDevice,
    clock: MessageClock,
    /// The time handed to the engine parts (`hush_protocol::device`).
    host_clock: hush_host::HostClock,
    /// Since when commits have been lazy (see [`Batch::may_wait`]): the
    /// next commit is durable once [`LAZY_WINDOW`] has passed, even an
    /// empty one.
    lazy_since: Option<Instant>,
    /// Shutting down: every commit is durable.
    closing: bool,
    contacts: Contacts,
    outbox: Outbox,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    batch: Batch,
    commit: Option<Commit>,
    /// Digests of envelopes decrypted but not yet committed.
    inbox: Inbox,
    listen_addresses: Vec<Multiaddr>,
    /// When each contact device last got a one-time key (one entry per
    /// contact device at most).
    key_service: KeyService<PeerId>,
    /// Our home relays and the drain loop for each.
    home: Vec<relays::HomeRelay>,
    mail_requests: HashMap<OutboundRequestId, relays::MailRequest>,
    /// Direct or through relays, per contact device; deposits at relays
    /// (a device engine part).
    routes: Routes<PeerId>,
    /// The last refusal shown per outbox entry, so it is reported once.
    problems: HashMap<OutboxKey, String>,
    presence: presence::PresenceBook,
    reach: reach::Reach,
    groups: groups::GroupHost,
}

impl EventLoop {
    pub(crate) fn new(
        me: Me,
        olm: OlmDevice,
        store: Arc<Store>,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<Event>,
        options: LoopOptions,
    ) -> Result<Self, NodeError> {
        let swarm = network::build_swarm(
            me.keypair.clone(),
            network::SwarmOptions { mdns: options.mdns },
        )
        .map_err(NodeError::Identity)?;
        let (presence, presence_op) = presence::PresenceBook::load(
            options.presence,
            store.own_presence()?,
            store.presence()?,
        );
        let host_clock = hush_host::HostClock::default();
        let home = relays::HomeRelay::parse_all(&me.relays, host_clock.now(), options.mail_poll);
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
        let mut batch = Batch::default();
        batch.ops.extend(presence_op);
        let groups = groups::GroupHost::load(&store, &me, options.groups);
        let mut event_loop = Self {
            swarm,
            store,
            me,
            olm,
            clock,
            host_clock,
            lazy_since: None,
            closing: false,
            contacts,
            outbox,
            commands,
            events,
            batch,
            commit: None,
            inbox: Inbox::default(),
            listen_addresses: Vec::new(),
            key_service: KeyService::default(),
            home,
            mail_requests: HashMap::new(),
            routes: Routes::default(),
            problems: HashMap::new(),
            presence,
            reach: reach::Reach::default(),
            groups,
        };
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
        self.batch.ops.push(Op::PutListenAddresses(
            self.listen_addresses
                .iter()
                .map(|a| a.to_string())
                .collect(),
        ));
        // Say hello to every contact device, so both sides flush their outboxes.
        let peers: Vec<(PeerId, Vec<Multiaddr>)> = self
            .contacts
            .device_peers()
            .filter_map(|(peer, account)| {
                let c = self.contacts.known(&account)?;
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
        let accounts: Vec<AccountId> = self.contacts.accounts();
        for account in accounts {
            self.share_key_with(&account);
        }
        Ok(self)
    }

    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(RETRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.presence_goodbye(GOODBYE_WAIT).await;
                        self.send_receipts();
                        self.finish().await;
                        let _ = reply.send(Ok(()));
                        return;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                result = commit_done => {
                    let result = result.unwrap_or_else(|e| Err(StoreError::Storage(redb::StorageError::Io(std::io::Error::other(e)))));
                    self.on_commit(result);
                }
                _ = tick.tick() => self.on_tick(),
            }
        }
        self.finish().await;
    }

    /// Lands the running commit and whatever was gathered after it, and runs
    /// their after-commit actions (acks, replies), so nothing queued is dropped.
    async fn finish(&mut self) {
        // From here every commit is durable, and lazy ones are landed.
        self.closing = true;
        self.flush();
        // Each round lands one commit; acks and replies can queue at most a
        // little more, so this settles within a few rounds.
        for _ in 0..8 {
            if self.commit.is_none() {
                break;
            }
            if let Some(commit) = self.commit.as_mut() {
                let result = (&mut commit.task).await;
                self.on_commit(result.unwrap_or_else(|e| {
                    Err(StoreError::Storage(redb::StorageError::Io(
                        std::io::Error::other(e),
                    )))
                }));
            }
            self.flush();
        }
    }

    /// Starts committing the gathered batch, unless a commit is running.
    fn flush(&mut self) {
        if self.commit.is_some() {
            return;
        }
        let changes = self.olm.take_changes(&self.me.pickle_key);
        let sync = self
            .lazy_since
            .is_some_and(|since| self.closing || since.elapsed() >= LAZY_WINDOW);
        if self.batch.ops.is_empty()
            && self.batch.after.is_empty()
            && changes.is_empty()
            && !self.clock.is_changed()
            && !sync
        {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        if let Some(last) = self.clock.take_changed() {
            batch.ops.push(Op::PutClock(last));
        }
        if let Some(account) = changes.account {
            batch.ops.push(Op::PutOlmAccount(account));
        }
        for (peer, pickles) in changes.sessions {
            batch.ops.push(Op::PutSessions(peer, pickles));
        }
        let store = self.store.clone();
        let durability = if sync || self.closing || !batch.may_wait() {
            self.lazy_since = None;
            Durability::Now
        } else {
            self.lazy_since.get_or_insert_with(Instant::now);
            Durability::Lazy
        };
        let ops = batch.ops;
        self.commit = Some(Commit {
            task: tokio::task::spawn_blocking(move || store.apply(ops, durability)),
            after: batch.after,
        });
    }

    fn on_commit(&mut self, result: Result<(), StoreError>) {
        let Some(commit) = self.commit.take() else {
            return;
        };
        let mut afters = commit.after;
        if let Err(e) = &result {
            tracing::error!(error = %e, "a write batch failed; reloading state from disk");
            // What was gathered since was built on the state that failed to
            // commit (e.g. envelopes from Olm keys now rolled back): drop it too.
            afters.extend(std::mem::take(&mut self.batch).after);
            self.reload();
        }
        let mut receipts = Vec::new();
        for after in afters {
            match (after, &result) {
                (After::ReceiptCounts(group, ids), Ok(())) => receipts.push((group, ids)),
                (After::Ack(channel, acks), Ok(())) => self.respond(channel, acks.to_bytes()),
                (After::Ack(channel, acks), Err(_)) => {
                    // Nothing of this batch is stored: ask for all of it again.
                    let unavailable = DirectAck::Rejected(RejectReason::Unavailable);
                    let acks = AckBatch {
                        acks: vec![unavailable; acks.acks.len()],
                    };
                    self.respond(channel, acks.to_bytes());
                }
                (After::KeyBundle(channel, bundle), Ok(())) => {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .keys
                        .send_response(channel, bundle.to_bytes());
                }
                (After::Dispatch(key), Ok(())) => {
                    self.outbox.committed(&key);
                    self.pump(&key.1);
                }
                (After::Emit(event), Ok(())) => {
                    let _ = self.events.send(event);
                }
                (After::PendingStored(session, digest), _) => {
                    self.groups.book.pending_stored(session, digest);
                }
                (After::Received(digest), _) => {
                    self.inbox.settled(&digest);
                    self.groups.book.settled(&digest);
                }
                (After::ReplySend(reply, receipt), Ok(())) => {
                    let _ = reply.send(Ok(receipt));
                }
                (After::ReplyContact(reply, view), Ok(())) => {
                    let _ = reply.send(Ok(view));
                }
                (After::ReplyRead(reply, n), Ok(())) => {
                    let _ = reply.send(Ok(n));
                }
                (After::ReplyPresence(reply, view), Ok(())) => {
                    let _ = reply.send(Ok(view));
                }
                (After::ReplyGroup(reply, view), Ok(())) => {
                    let _ = reply.send(Ok(view));
                }
                (After::ReplyGroup(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::Publish(group, bytes), Ok(())) => self.publish_group(group, bytes),
                (After::ReplyPresence(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::ReplySend(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::ReplyContact(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::ReplyRead(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::MailAck(relay, seqs), Ok(())) => self.ack_mail(relay, seqs),
                (After::UploadKeys(relay, request), Ok(())) => self.upload_keys(relay, request),
                (After::UploadKeys(relay, _), Err(_)) => self.upload_failed(relay),
                (
                    After::KeyBundle(..)
                    | After::ReceiptCounts(..)
                    | After::Dispatch(_)
                    | After::Emit(_)
                    | After::MailAck(..)
                    | After::Publish(..),
                    Err(_),
                ) => {}
            }
        }
        if !receipts.is_empty() {
            self.emit_receipt_counts(receipts);
        }
    }

    /// After a failed commit, memory is ahead of disk: start again from disk.
    fn reload(&mut self) {
        let restored = (|| -> Result<(), NodeError> {
            self.olm = OlmDevice::restore(
                &self.store.olm_account()?,
                self.store.sessions()?,
                &self.me.pickle_key,
            )?;
            self.contacts = load_contacts(self.store.contacts()?);
            let config = self.groups.book.config();
            self.groups = groups::GroupHost::load(&self.store, &self.me, config);
            self.sync_peers();
            self.routes.forget_marks();
            let now = self.host_clock.now().plus_ms(1_000);
            self.outbox.reload(self.store.outbox()?, now);
            Ok(())
        })();
        if let Err(e) = restored {
            tracing::error!(error = %e, "could not reload state from disk");
        }
    }

    fn respond(&mut self, channel: ResponseChannel<Vec<u8>>, bytes: Vec<u8>) {
        if self
            .swarm
            .behaviour_mut()
            .direct
            .send_response(channel, bytes)
            .is_err()
        {
            tracing::debug!("peer went away before the ack");
        }
    }

    fn on_tick(&mut self) {
        for device in self.outbox.due_devices(self.host_clock.now()) {
            self.pump(&device);
        }
        self.relay_tick();
        self.presence_tick();
        self.reach_tick();
        self.groups_tick();
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::AddContact {
                name,
                card,
                card_text,
                update: false,
                reply,
            } => self.add_contact(name, *card, card_text, reply),
            Command::AddContact {
                name,
                card,
                card_text,
                update: true,
                reply,
            } => self.update_contact(name, *card, card_text, reply),
            Command::Send {
                contact,
                text,
                reply,
            } => self.send(&contact, text, reply),
            Command::MarkRead { contact, reply } => self.mark_read(&contact, reply),
            Command::SetReceipts { contact, on, reply } => {
                let Some(c) = self.contacts.contact_mut(&contact) else {
                    let _ = reply.send(Err(NodeError::UnknownContact { name: contact }));
                    return;
                };
                c.record.send_receipts = on;
                let record = c.record.clone();
                let view = contact_view(&self.me.account, &record);
                self.batch.ops.push(Op::PutContact(record));
                self.batch.after.push(After::ReplyContact(reply, view));
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
                    contacts: self.contacts.len(),
                    outbox: self.outbox.len(),
                    relays: self.relay_views(),
                    reachability: self.reachability(),
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
            Command::Card { reply } => {
                let addresses: Vec<String> = self
                    .listen_addresses
                    .iter()
                    .map(|a| a.to_string())
                    .collect();
                let _ = reply.send(Ok(self.me.card(&addresses).to_string()));
            }
        }
    }

    fn update_contact(
        &mut self,
        name: String,
        card: ContactCard,
        card_text: String,
        reply: Reply<crate::view::ContactView>,
    ) {
        let Some(existing) = self.contacts.contact(&name) else {
            let _ = reply.send(Err(NodeError::UnknownContact { name }));
            return;
        };
        if existing.card.account() != card.account() {
            let _ = reply.send(Err(NodeError::CardOfAnotherAccount { name }));
            return;
        }
        if card.device_list.issued_at_ms < existing.card.device_list.issued_at_ms {
            let _ = reply.send(Err(NodeError::OlderCard { name }));
            return;
        }
        let mut record = existing.record.clone();
        record.card = card_text;
        let old_card = existing.card.clone();
        // Forget the old card's devices; the new card lists the current ones.
        self.contacts.forget_devices(&old_card);
        let old_devices = old_card.device_list.devices;
        let view = contact_view(&self.me.account, &record);
        self.batch.ops.push(Op::PutContact(record.clone()));
        let reach = card_reach(&card);
        self.contacts.insert(record, card, reach);
        self.batch.after.push(After::ReplyContact(reply, view));
        // New addresses or relays: try what is queued for them again now.
        let now = self.host_clock.now();
        for device in &old_devices {
            self.routes.reached(&device.device_id);
            self.outbox.wake(&device.device_id, now);
        }
    }

    fn add_contact(
        &mut self,
        name: String,
        card: ContactCard,
        card_text: String,
        reply: Reply<crate::view::ContactView>,
    ) {
        let refused = if card.account() == self.me.account {
            Some(NodeError::OwnCard)
        } else if self.contacts.has_name(&name) {
            Some(NodeError::DuplicateContact { name: name.clone() })
        } else {
            self.contacts
                .name_of(&card.account())
                .map(|existing| NodeError::DuplicateAccount {
                    existing: existing.clone(),
                })
        };
        if let Some(e) = refused {
            let _ = reply.send(Err(e));
            return;
        }
        let card_account = card.account();
        let record = ContactRecord {
            name: name.clone(),
            card: card_text,
            account: card.account(),
            send_receipts: true,
            added_at_ms: now_ms(),
        };
        let view = contact_view(&self.me.account, &record);
        self.batch.ops.push(Op::PutContact(record.clone()));
        let reach = card_reach(&card);
        self.contacts.insert(record, card, reach);
        self.batch.after.push(After::ReplyContact(reply, view));
        self.batch
            .after
            .push(After::Emit(Event::ContactAdded { contact: name }));
        self.share_key_with(&card_account);
        // Mail from them may be waiting unread at our relays: read it again.
        self.reread_mail();
    }

    /// Queues `payload` to every device of `account`, encrypting now where a
    /// session exists. Dispatch happens after the commit.
    fn enqueue(
        &mut self,
        account: &AccountId,
        kind: OutboxKind,
        payload: &Payload,
    ) -> Result<(), NodeError> {
        let contact = self
            .contacts
            .known(account)
            .ok_or_else(|| NodeError::UnknownContact {
                name: account.to_string(),
            })?;
        let devices = contact.card.device_list.devices.clone();
        if self.outbox.len() + devices.len() > MAX_OUTBOX_ENTRIES {
            return Err(NodeError::OutboxFull {
                len: self.outbox.len(),
            });
        }
        let conversation = ConversationId::direct(&self.me.account, account);
        let padded = payload.to_padded();
        let now = self.host_clock.now();
        for device in devices {
            let key = (payload.id, device.device_id);
            let envelope = if self.olm.has_session(&device.olm_curve25519) {
                self.olm
                    .encrypt(&device, &padded)
                    .ok()
                    .map(|e| e.to_bytes())
            } else {
                None
            };
            let record = OutboxRecord {
                kind,
                conversation,
                recipient: *account,
                device: device.device_id,
                payload: padded.clone(),
                envelope,
                created_at_ms: now_ms(),
            };
            self.batch.ops.push(Op::PutOutbox(key, record.clone()));
            self.outbox.insert_committing(key, record, now);
            self.batch.after.push(After::Dispatch(key));
        }
        Ok(())
    }

    fn next_id(&mut self) -> MessageId {
        self.clock.next(self.host_clock.now(), rand::random())
    }

    fn send(&mut self, contact: &str, text: String, reply: Reply<SendReceipt>) {
        match self.queue_message(contact, text) {
            Ok(receipt) => self.batch.after.push(After::ReplySend(reply, receipt)),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Stores an outgoing message and its outbox entries in the next batch.
    fn queue_message(&mut self, contact: &str, text: String) -> Result<SendReceipt, NodeError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(NodeError::TextTooLong { len: text.len() });
        }
        if text.is_empty() {
            return Err(NodeError::EmptyText);
        }
        let account = self
            .contacts
            .contact(contact)
            .map(|c| c.card.account())
            .ok_or_else(|| NodeError::UnknownContact {
                name: contact.to_owned(),
            })?;
        let id = self.next_id();
        let payload = Payload {
            sender_account: self.me.account,
            sender_device: self.me.device_id(),
            id,
            body: Body::Text(text.clone()),
        };
        self.enqueue(&account, OutboxKind::Message, &payload)?;
        let conversation = ConversationId::direct(&self.me.account, &account);
        self.batch.ops.push(Op::PutMessage(
            conversation,
            MessageRecord {
                id,
                from: self.me.account,
                outgoing: true,
                text,
                status: Status::Pending,
                sent_at_ms: id.millis(),
                stored_at_ms: now_ms(),
            },
        ));
        Ok(SendReceipt {
            id: id.to_string(),
            status: Status::Pending,
            timed_out: false,
            problem: None,
        })
    }

    fn mark_read(&mut self, contact: &str, reply: Reply<usize>) {
        let Some(c) = self.contacts.contact(contact) else {
            let _ = reply.send(Err(NodeError::UnknownContact {
                name: contact.to_owned(),
            }));
            return;
        };
        let (account, send_receipts) = (c.card.account(), c.record.send_receipts);
        let conversation = ConversationId::direct(&self.me.account, &account);
        let unread = match self.store.unread(&conversation) {
            Ok(ids) => ids,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        let count = unread.len();
        if count == 0 {
            // Nothing to store: no commit to wait for.
            let _ = reply.send(Ok(0));
            return;
        }
        self.batch
            .ops
            .push(Op::MarkRead(conversation, unread.clone()));
        for id in &unread {
            self.batch.after.push(After::Emit(Event::Status {
                contact: contact.to_owned(),
                id: id.to_string(),
                status: Status::Read,
            }));
        }
        if send_receipts {
            self.queue_receipts(&account, ReceiptKind::Read, &unread);
        }
        self.batch.after.push(After::ReplyRead(reply, count));
    }

    /// Queues receipts for `ids` to every device of `account`, through the
    /// outbox like messages (at most `MAX_RECEIPT_IDS` ids per payload).
    fn queue_receipts(&mut self, account: &AccountId, kind: ReceiptKind, ids: &[MessageId]) {
        for ids in ids.chunks(MAX_RECEIPT_IDS) {
            let payload = Payload {
                sender_account: self.me.account,
                sender_device: self.me.device_id(),
                id: self.next_id(),
                body: Body::Receipt {
                    kind,
                    ids: ids.to_vec(),
                },
            };
            if let Err(e) = self.enqueue(account, OutboxKind::Receipt, &payload) {
                tracing::warn!(error = %e, ?kind, "could not queue a receipt");
            }
        }
    }

    fn device_route(&self, key: &OutboxKey) -> Option<(PeerId, Vec<Multiaddr>, DeviceKeys)> {
        let record = self.outbox.get(key)?.record();
        let (_, keys) = self.contacts.device(&record.recipient, &record.device)?;
        let peer = self.contacts.peer_of(&keys.device_id)?;
        Some((peer, self.dial_addresses(&keys.device_id), keys))
    }

    /// Where to dial a contact device: what its latest presence record
    /// announced (fresh, with relay circuits), then its card's addresses.
    fn dial_addresses(&self, device: &DeviceId) -> Vec<Multiaddr> {
        let mut out: Vec<Multiaddr> = self.presence.addresses_of(device).to_vec();
        if let Some(contact) = self
            .contacts
            .of_device(device)
            .and_then(|(account, _)| self.contacts.known(&account))
        {
            for a in &contact.addresses {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    /// Moves one outbox entry that has no envelope yet forward: encrypt it,
    /// or fetch the device's one-time key first. Entries with an envelope
    /// are sent by [`EventLoop::pump`].
    fn dispatch(&mut self, key: OutboxKey) {
        let Some(entry) = self.outbox.get(&key) else {
            return;
        };
        if !entry.is_waiting() || entry.envelope().is_some() {
            return;
        }
        let Some((peer, addresses, keys)) = self.device_route(&key) else {
            // The contact or device is gone: nobody to deliver to.
            tracing::warn!(id = %key.0, "outbox entry has no known recipient device; keeping it");
            self.outbox.retry_later(&key, self.host_clock.now());
            return;
        };
        if self.olm.has_session(&keys.olm_curve25519) {
            let padded = entry.record().payload.clone();
            match self.olm.encrypt(&keys, &padded) {
                Ok(envelope) => {
                    if let Some(record) = self.outbox.encrypted(&key, envelope.to_bytes()) {
                        self.batch.ops.push(Op::PutOutbox(key, record.clone()));
                        self.batch.after.push(After::Dispatch(key));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "encryption failed; retrying later");
                    self.outbox.retry_later(&key, self.host_clock.now());
                }
            }
        } else if self.is_unreachable(&keys.device_id) && self.has_relays(&keys.device_id) {
            if self.outbox.await_key(&key) {
                self.claim_key(keys.device_id);
            }
        } else if self.outbox.await_key(&key) {
            let request = self.swarm.behaviour_mut().keys.send_request_with_addresses(
                &peer,
                KeyRequest.to_bytes(),
                addresses,
            );
            self.outbox.key_requested(request, keys.device_id);
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
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(event)) => self.on_autonat(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => {
                self.on_relay_client(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => self.on_dcutr(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(event)) => self.on_mdns(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                libp2p::identify::Event::Received { peer_id, info, .. },
            )) if self.contacts.is_known_peer(&peer_id) => {
                for addr in info.listen_addrs.into_iter().take(MAX_ADDRESSES_PER_DEVICE) {
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                self.connection_opened(peer_id, &endpoint);
                self.relay_connected(&peer_id, true);
                if num_established.get() == 1 && self.home.iter().any(|r| r.peer == peer_id) {
                    self.groups_relay_connected(peer_id);
                }
                if let Some((_, keys)) = self.contacts.device_by_peer(&peer_id) {
                    self.routes.reached(&keys.device_id);
                    self.outbox.wake(&keys.device_id, self.host_clock.now());
                    if num_established.get() == 1 {
                        self.presence_connected(&peer_id);
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                self.connection_closed(peer_id, &endpoint);
                if num_established == 0 {
                    self.relay_connected(&peer_id, false);
                    self.presence_disconnected(&peer_id);
                }
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => self.circuit_closed(listener_id),
            SwarmEvent::NewListenAddr { address, .. }
                if !self.listen_addresses.contains(&address) =>
            {
                self.listen_addresses.push(address);
                self.batch.ops.push(Op::PutListenAddresses(
                    self.listen_addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect(),
                ));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addresses.retain(|a| *a != address);
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "reachable at");
            }
            _ => {}
        }
    }

    fn on_keys(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    channel, request, ..
                },
                ..
            } => {
                let known = self.contacts.is_known_peer(&peer);
                let now = self.host_clock.now();
                match self.key_service.request(now, peer, known, &request) {
                    KeyDecision::Serve => {}
                    KeyDecision::Stranger => {
                        tracing::debug!(%peer, "one-time key request from a stranger, ignored");
                        return;
                    }
                    KeyDecision::TooOften => {
                        tracing::debug!(%peer, "one-time key requested too often, ignored");
                        return;
                    }
                    KeyDecision::Malformed => return,
                }
                let bundle = self.olm.one_time_key_bundle(self.me.device_id());
                // The key's secret must be on disk before anyone can use it.
                self.batch.after.push(After::KeyBundle(channel, bundle));
            }
            E::Message {
                peer,
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(device) = self.outbox.key_request_ended(&request_id) else {
                    return;
                };
                let started = KeyBundle::from_bytes(&response)
                    .map_err(|e| e.to_string())
                    .and_then(|bundle| {
                        let (_, keys) =
                            self.contacts.device_by_peer(&peer).ok_or("not a contact")?;
                        self.olm
                            .start_session(&bundle, &keys)
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = &started {
                    tracing::warn!(%peer, error = %e, "could not start an Olm session");
                }
                self.after_key(&device, started.is_ok());
            }
            E::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(device) = self.outbox.key_request_ended(&request_id) {
                    tracing::debug!(error = %error, "one-time key request failed");
                    self.mark_unreachable(device);
                    self.after_key(&device, false);
                }
            }
            _ => {}
        }
    }

    /// Moves entries that waited for a device's key on: to encryption, or to
    /// a later retry.
    fn after_key(&mut self, device: &DeviceId, started: bool) {
        let now = self.host_clock.now();
        for key in self.outbox.key_arrived(now, device, started) {
            self.dispatch(key);
        }
    }

    fn on_direct(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    channel, request, ..
                },
                ..
            } => self.on_batch(peer, request, channel),
            E::Message {
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(keys) = self.outbox.end_flight(&request_id) else {
                    return;
                };
                let acks = match AckBatch::from_bytes(&response) {
                    Ok(b) if b.acks.len() == keys.len() => b.acks,
                    other => {
                        tracing::debug!(?other, "malformed ack batch; retrying its envelopes");
                        vec![DirectAck::Rejected(RejectReason::Unavailable); keys.len()]
                    }
                };
                let mut refused = Vec::new();
                let mut undecryptable = None;
                for (key, ack) in keys.iter().zip(acks) {
                    match ack {
                        DirectAck::Stored | DirectAck::Duplicate => self.on_delivered(*key),
                        DirectAck::Rejected(RejectReason::Undecryptable) => {
                            undecryptable.get_or_insert(*key);
                        }
                        DirectAck::Rejected(reason) => {
                            tracing::info!(id = %key.0, ?reason, "recipient refused; retrying later");
                            refused.push(*key);
                        }
                    }
                }
                if let Some(key) = undecryptable {
                    // Re-encrypts everything queued, the refused ones too.
                    self.restart_session(&key);
                } else {
                    // Later envelopes must not overtake the refused ones.
                    self.outbox
                        .retry_device_later(&refused, self.host_clock.now());
                }
                if let Some(key) = keys.first() {
                    self.pump(&key.1);
                }
            }
            E::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(keys) = self.outbox.end_flight(&request_id) {
                    tracing::debug!(count = keys.len(), error = %error, "delivery attempt failed");
                    self.outbox.retry_device_later(&keys, self.host_clock.now());
                    if let Some(key) = keys.first() {
                        // Not reachable now: leave it at the device's relays.
                        self.mark_unreachable(key.1);
                        self.deposit_pump(&key.1);
                    }
                }
            }
            E::InboundFailure { error, peer, .. } => {
                tracing::debug!(%peer, error = %error, "inbound request failed");
            }
            E::ResponseSent { .. } => {}
        }
    }

    /// Moves the device's oldest waiting entries on: those with envelopes go
    /// out as one batch (in encryption order) unless a request to the device
    /// is already on its way; the others are encrypted or wait for a
    /// one-time key.
    fn pump(&mut self, device: &DeviceId) {
        if self.is_unreachable(device) && self.has_relays(device) {
            // Encrypt (or get a key for) what is not yet, in order, then
            // deposit. Unencrypted entries are the newest ones, so look from
            // the end; while a key is on its way they wait for it anyway.
            if !self.outbox.is_awaiting_key(device) {
                for key in self.outbox.unencrypted_tail(device, MAX_BATCH_ENVELOPES) {
                    self.dispatch(key);
                }
            }
            self.deposit_pump(device);
            return;
        }
        let ready = self
            .outbox
            .next_for(device, self.host_clock.now(), MAX_BATCH_ENVELOPES);
        let mut keys: Vec<OutboxKey> = Vec::new();
        let mut envelopes: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        for key in ready {
            let Some(envelope) = self.outbox.get(&key).and_then(|e| e.envelope().cloned()) else {
                self.dispatch(key);
                continue;
            };
            if bytes + envelope.len() + 4 > MAX_BATCH_LEN - 16 {
                // The rest waits for the next request.
                break;
            }
            bytes += envelope.len() + 4;
            keys.push(key);
            envelopes.push(envelope);
        }
        if !keys.is_empty() {
            self.send_batch(keys, envelopes);
        }
    }

    fn send_batch(&mut self, keys: Vec<OutboxKey>, envelopes: Vec<Vec<u8>>) {
        let Some((peer, addresses, _)) = keys.first().and_then(|k| self.device_route(k)) else {
            return;
        };
        let request = self
            .swarm
            .behaviour_mut()
            .direct
            .send_request_with_addresses(&peer, EnvelopeBatch { envelopes }.to_bytes(), addresses);
        self.outbox.start_flight(request, keys);
    }

    /// The device can no longer decrypt our session: start a new one and
    /// re-encrypt everything still queued for it.
    /// The device can no longer decrypt our session (`key` was refused as
    /// undecryptable): start a new one and re-encrypt, in order, everything
    /// still queued for it. No request to it is in flight at this point.
    fn restart_session(&mut self, key: &OutboxKey) {
        let Some((_, _, keys)) = self.device_route(key) else {
            return;
        };
        tracing::warn!(device = %keys.device_id, "recipient cannot decrypt our session; starting a new one");
        self.olm.drop_sessions(&keys.olm_curve25519);
        for (k, record) in self.outbox.forget_envelopes(&keys.device_id) {
            self.batch.ops.push(Op::PutOutbox(k, record.clone()));
        }
        // New envelopes: every relay needs them again.
        let device = keys.device_id;
        self.routes.forget_marks_of(&device);
        self.outbox
            .retry_device_later(&[*key], self.host_clock.now());
    }

    fn on_delivered(&mut self, key: OutboxKey) {
        let Some(record) = self.outbox.remove(&key) else {
            return;
        };
        self.batch.ops.push(Op::DeleteOutbox(key));
        let conversation = record.conversation;
        let behind = self
            .store
            .message(&conversation, key.0)
            .ok()
            .flatten()
            .is_some_and(|m| m.status < Status::Delivered);
        if record.kind == OutboxKind::Message && behind {
            self.batch
                .ops
                .push(Op::RaiseStatus(conversation, key.0, Status::Delivered));
            // The ack itself is the durable fact (the recipient device has
            // stored the message), so say so now; our own record of it
            // lands with the next batch, and if we crash first, the entry is
            // resent on restart and acked again as a duplicate.
            if let Some(name) = self.contacts.name_of(&record.recipient) {
                let _ = self.events.send(Event::Status {
                    contact: name.clone(),
                    id: key.0.to_string(),
                    status: Status::Delivered,
                });
            }
        }
    }

    /// Handles one batch: each envelope is checked, decrypted and queued for
    /// storage in order; the acks go back once that is durable.
    fn on_batch(&mut self, peer: PeerId, bytes: Vec<u8>, channel: ResponseChannel<Vec<u8>>) {
        // The device just reached us: whatever waits for it (e.g. our
        // presence key, which only travels directly) can go now.
        if let Some((_, keys)) = self.contacts.device_by_peer(&peer)
            && self.routes.reached(&keys.device_id)
        {
            self.outbox.wake(&keys.device_id, self.host_clock.now());
        }
        let Ok(batch) = EnvelopeBatch::from_bytes(&bytes) else {
            tracing::debug!(%peer, "malformed envelope batch refused");
            self.respond(channel, AckBatch { acks: Vec::new() }.to_bytes());
            return;
        };
        let mut acks = Vec::with_capacity(batch.envelopes.len());
        let mut stored = false;
        for envelope in &batch.envelopes {
            let ack = match self.receive(Source::Direct(peer), envelope) {
                Ok(Received::Queued { ack, .. }) => {
                    stored = true;
                    ack
                }
                Ok(Received::AlreadyStored) => DirectAck::Duplicate,
                // The sender asks again later and then hears `Duplicate`.
                Ok(Received::InProgress) => DirectAck::Rejected(RejectReason::Unavailable),
                Err(reason) => {
                    tracing::debug!(%peer, ?reason, "envelope refused");
                    DirectAck::Rejected(reason)
                }
            };
            acks.push(ack);
        }
        let acks = AckBatch { acks };
        if stored {
            self.batch.after.push(After::Ack(channel, acks));
        } else {
            self.respond(channel, acks.to_bytes());
        }
    }

    /// Checks, decrypts and queues one envelope for storage.
    fn receive(&mut self, source: Source, bytes: &[u8]) -> Result<Received, RejectReason> {
        let me = self.me.device_id();
        let store = &self.store;
        let arrival = self.inbox.open(
            &me,
            source,
            bytes,
            &self.contacts,
            &mut self.olm,
            |digest| store.seen(digest),
        )?;
        let Opened {
            account,
            keys,
            payload,
            digest,
        } = match arrival {
            Arrival::New(opened) => *opened,
            Arrival::InProgress => return Ok(Received::InProgress),
            Arrival::AlreadyStored => return Ok(Received::AlreadyStored),
        };
        // Accepted: its digest goes to disk in the same batch as what it carries.
        self.batch.ops.push(Op::PutSeen(digest, now_ms()));
        self.batch.after.push(After::Received(digest));
        let conversation = ConversationId::direct(&self.me.account, &account);
        let now = now_ms();
        self.clock.observe(payload.id, self.host_clock.now());
        let Some(contact) = self.contacts.name_of(&account).cloned() else {
            // A group peer, not a contact: only group control is theirs to send.
            if let Body::Group(control) = payload.body {
                self.on_group_control(account, keys.device_id, control);
            } else {
                tracing::debug!("a group peer sent something other than group control; dropped");
            }
            return Ok(Received::Queued {
                ack: DirectAck::Stored,
                text: None,
            });
        };
        match payload.body {
            Body::Group(control) => self.on_group_control(account, keys.device_id, control),
            Body::Text(text) => {
                let known = self
                    .store
                    .message(&conversation, payload.id)
                    .map_err(|_| RejectReason::Unavailable)?;
                if known.is_some() {
                    return Ok(Received::Queued {
                        ack: DirectAck::Duplicate,
                        text: None,
                    });
                }
                let record = MessageRecord {
                    id: payload.id,
                    from: account,
                    outgoing: false,
                    text,
                    status: Status::Delivered,
                    sent_at_ms: payload.id.millis(),
                    stored_at_ms: now,
                };
                let view = MessageView::new(&record, contact.clone());
                self.batch.ops.push(Op::PutMessage(conversation, record));
                self.batch.after.push(After::Emit(Event::Message {
                    contact,
                    message: view,
                }));
                return Ok(Received::Queued {
                    ack: DirectAck::Stored,
                    text: Some((account, payload.id)),
                });
            }
            Body::PresenceKey(key) => self.on_presence_key(&account, &key),
            Body::Receipt { kind, ids } => {
                let status = match kind {
                    ReceiptKind::Delivered => Status::Delivered,
                    ReceiptKind::Read => Status::Read,
                };
                for id in ids {
                    // The device has it: whatever waited at its relays for
                    // a direct resend is done.
                    self.settle_outbox(&(id, keys.device_id));
                    let current = self
                        .store
                        .message(&conversation, id)
                        .map_err(|_| RejectReason::Unavailable)?;
                    if current.is_some_and(|m| m.outgoing && m.status < status) {
                        self.batch
                            .ops
                            .push(Op::RaiseStatus(conversation, id, status));
                        self.batch.after.push(After::Emit(Event::Status {
                            contact: contact.clone(),
                            id: id.to_string(),
                            status,
                        }));
                    }
                }
            }
        }
        Ok(Received::Queued {
            ack: DirectAck::Stored,
            text: None,
        })
    }
}

fn store_failed(e: &StoreError) -> NodeError {
    NodeError::Store(StoreError::Storage(redb::StorageError::Io(
        std::io::Error::other(e.to_string()),
    )))
}

/// A duration in whole milliseconds, as the engine parts take them.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

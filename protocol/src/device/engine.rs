//! The device engine: every decision of one device, without IO.
//!
//! [`DeviceEngine`] owns the parts (contacts, Olm sessions, the outbox,
//! the inbox, routes, the one-time key service and the groups) and drives
//! the 1:1 flow between them:
//!
//! ```text
//!  send_text ─▶ payload ─▶ outbox entry per device (encrypted if a session
//!     exists) ─▶ Write ─▶ (commit) ─▶ dispatched ─▶ pump ─▶ SendBatch
//!                                     └─ no session: RequestKey / ClaimKey
//!  acks ─▶ delivered (status, outbox entry gone) │ undecryptable ─▶ new session
//!  batch / mail ─▶ inbox (check, attribute, decrypt) ─▶ what the payload
//!     does: a text stored, a receipt raises a status, group control to the
//!     groups, a presence key to the host ─▶ Write ─▶ (commit) ─▶ ack
//! ```
//!
//! Like quinn-proto's `Connection`: methods take the time (in a [`Ctx`])
//! and what happened, and the engine says what follows as
//! [`DeviceEffect`]s in order ([`DeviceEngine::poll_effect`]). An effect
//! that may happen only once the batch is on disk comes as
//! [`DeviceEffect::After`]. Reads of what is stored go through
//! [`DeviceLookup`].
//!
//! Draining our own mailboxes is decided by the
//! [`HomeMailbox`](crate::device::HomeMailbox) part, one per home relay,
//! which the host holds beside the engine; the pages it brings are placed
//! by [`DeviceEngine::handle_mail`].

mod contacts;
mod gate;
mod mail;
mod own;
mod receive;
mod rights;
mod stated;
#[cfg(test)]
mod tests;
mod texts;
mod timers;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use crate::device::{
    CardReach, ContactBook, ContactRecord, ContactTrust, Ctx, DeviceLookup, FileRecord, GroupBook,
    GroupEffect, Inbox, KeyService, MAX_OUTBOX_ENTRIES, MessageRecord, Outbox, OutboxKey,
    OutboxKind, OutboxRecord, Routes, SeenKey, Severity, Status,
};
use crate::{
    AccountId, AckBatch, Body, ContactCard, ConversationId, DepositRight, DeviceId, DeviceKeys,
    DirectAck, EnvelopeBatch, KeyBundle, MAX_BATCH_ENVELOPES, MAX_BATCH_LEN, MAX_TEXT_LEN,
    MailboxGrant, MessageId, OlmDevice, Payload, PresenceKey, RejectReason, Wire,
};

pub use contacts::{ContactError, Removed};
pub use mail::{FULL_RELAY_RETRY_MS, MailPage};
pub use receive::{BatchAnswer, Received};
pub use rights::RightIssuer;
pub use stated::StatedRelays;
pub use timers::ConversationTimer;

/// Who this device is, as the engine needs it.
#[derive(Debug, Clone)]
pub struct DeviceSelf {
    pub account: AccountId,
    pub keys: DeviceKeys,
    /// Grants our contacts the right to deposit into our mailbox.
    pub issuer: RightIssuer,
}

impl DeviceSelf {
    pub fn device_id(&self) -> DeviceId {
        self.keys.device_id
    }
}

/// What the engine hands the host to store with the current batch.
#[derive(Debug, Clone)]
pub enum DeviceWrite {
    Contact(ContactRecord),
    Outbox(OutboxKey, OutboxRecord),
    DropOutbox(OutboxKey),
    /// Inserted unless one with the same id is stored.
    Message(ConversationId, MessageRecord),
    /// Raises a message's status; never lowers it.
    RaiseStatus(ConversationId, MessageId, Status),
    MarkRead(ConversationId, Vec<MessageId>),
    /// An envelope's digest (under its [`SeenKey`]): the same bytes are not
    /// stored twice.
    Seen(SeenKey, u64),
    /// A contact device's deposit right for us (replaces the one stored).
    DepositRight(DeviceId, DepositRight),
    /// A contact device's pairwise mailbox for us (replaces the one
    /// stored; goes with its deposit right).
    MailboxGrant(DeviceId, MailboxGrant),
    /// A contact device's newest statement of its home relays (replaces
    /// the one stored; goes with its deposit right).
    HomeRelays(DeviceId, crate::HomeRelays),
    /// The user removed the contact: its record and its devices' deposit
    /// rights go; its conversation too when `history` is `Some`. (Its
    /// trust is replaced by a separate `Trust` write.)
    ForgetContact {
        name: String,
        account: AccountId,
        devices: Vec<DeviceId>,
        history: Option<ConversationId>,
    },
    /// What the user decided about a contact (default: delete the row).
    Trust(AccountId, ContactTrust),
    /// The file a message carries (stored beside it, same key); replaces
    /// the one stored.
    File(ConversationId, MessageId, FileRecord),
    /// The disappearing timer of the conversation with an account.
    Timer(AccountId, ConversationTimer),
}

/// What the user hears of.
#[derive(Debug, Clone)]
pub enum DeviceNotice {
    /// A contact the user verified has keys the user did not verify (a
    /// newer card listed other devices or keys).
    KeysChanged { contact: String },
    Message {
        contact: String,
        message: MessageRecord,
        /// The file it carries, if it is a file message.
        file: Option<FileRecord>,
    },
    Status {
        contact: String,
        id: MessageId,
        status: Status,
    },
    /// A relay of the contact refused a message for good (full, over a
    /// quota): it stays queued.
    Undeliverable {
        contact: String,
        id: MessageId,
        relay: String,
        reason: String,
    },
}

/// What happens once the batch holding the effects before it committed.
#[derive(Debug, Clone)]
pub enum DeviceAfter {
    /// The entry is on disk: give it to [`DeviceEngine::dispatched`].
    Dispatch(OutboxKey),
    /// The envelope with this digest is stored (or its batch failed): give
    /// it to [`DeviceEngine::settled`] either way.
    Received([u8; 32]),
    Notice(Box<DeviceNotice>),
}

/// What follows from a call, in order.
#[derive(Debug)]
pub enum DeviceEffect<P, A, M> {
    Write(DeviceWrite),
    After(DeviceAfter),
    /// Tell the user now (a fact already durable elsewhere).
    Notice(Box<DeviceNotice>),
    /// Ask the device directly for a one-time key, then tell the outbox
    /// (`Outbox::key_requested`).
    RequestKey(DeviceId),
    /// Ask `relay` (one of the device's) for the device's one-time key;
    /// the answer goes to [`DeviceEngine::handle_claimed`].
    ClaimKey {
        relay: P,
        addr: A,
        device: DeviceId,
    },
    /// Send these envelopes to the device in one request (an encoded
    /// `EnvelopeBatch`), then tell the outbox (`Outbox::start_flight`).
    SendBatch {
        device: DeviceId,
        keys: Vec<OutboxKey>,
        batch: Vec<u8>,
    },
    /// Leave sealed envelopes for `device` at `relay` (`request` is an
    /// encoded `MailboxRequest::Deposit`); the answer goes to
    /// [`DeviceEngine::handle_deposited`] with `keys`.
    Deposit {
        relay: P,
        addr: A,
        device: DeviceId,
        keys: Vec<OutboxKey>,
        request: Vec<u8>,
    },
    /// A contact shared the key its presence records are sealed with.
    PresenceKey {
        account: AccountId,
        key: PresenceKey,
    },
    /// What the groups ask that the engine does not do itself.
    Group(GroupEffect<P, M>),
    /// Another device of our account sent a newer card of the account
    /// (verified, its list newer than ours): the host stores it as our
    /// list. The engine already knows the account's devices from it.
    OwnCard(Box<ContactCard>),
    /// Another device of our account changed a contact (added, updated,
    /// settings, removed) or presence sharing: the host applies it as if
    /// the user had (without telling the other devices again).
    OwnContact(crate::SyncItem),
    /// Our account's own device answered that this device is no longer on
    /// the account's list: the host stores it and says so; the engine
    /// sends nothing more.
    Revoked,
    Note(Severity, &'static str),
}

/// Why a message or control payload could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("no contact named {name:?}")]
    UnknownContact { name: String },
    #[error("the message is {len} bytes, over the limit of {MAX_TEXT_LEN}")]
    TextTooLong { len: usize },
    #[error("the message is empty")]
    EmptyText,
    #[error("the outbox holds {len} entries, the most it may")]
    OutboxFull { len: usize },
    #[error("you blocked {name:?}")]
    Blocked { name: String },
    #[error(
        "this device was removed from its account (revoked on another of its devices): it can no longer send"
    )]
    Revoked,
}

/// The device engine. The parts are public while the host still drives
/// deposits and mailbox drains through them.
pub struct DeviceEngine<P, A, Q, M> {
    me: DeviceSelf,
    /// A card's devices, addresses and relays in the host's terms.
    reach: fn(&ContactCard) -> CardReach<P, A>,
    pub olm: OlmDevice,
    pub contacts: ContactBook<P, A>,
    pub outbox: Outbox<Q, P>,
    pub inbox: Inbox,
    pub routes: Routes<P>,
    pub key_service: KeyService<P>,
    pub groups: GroupBook<P, A, M>,
    /// The last refusal told per outbox entry, so each is told once.
    problems: HashMap<OutboxKey, String>,
    /// Contact devices' deposit rights for us: our mail to their mailboxes
    /// goes with them (one per device on a contact's card).
    rights: HashMap<DeviceId, DepositRight>,
    /// Contact devices' pairwise mailboxes for us (see `MailboxGrant`).
    grants: HashMap<DeviceId, MailboxGrant>,
    /// Contact devices' own statements of their home relays (one per
    /// device on a contact's or our card; see `stated.rs`).
    stated: HashMap<DeviceId, stated::Stated<P, A>>,
    /// Contacts given our deposit right since this engine started, and
    /// the generation of the pairwise mailbox given with it.
    granted: HashMap<AccountId, Option<u32>>,
    /// Our pairwise mailboxes being fetched, derived once each.
    pairwise: HashMap<(AccountId, u32), Arc<crate::PairwiseKey>>,
    /// This device was taken off its account's list: it sends nothing.
    revoked: bool,
    /// The disappearing timer of each 1:1 conversation that has one set.
    timers: HashMap<AccountId, ConversationTimer>,
    gate: gate::ListGate,
    effects: VecDeque<DeviceEffect<P, A, M>>,
}

impl<P, A, Q, M> fmt::Debug for DeviceEngine<P, A, Q, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceEngine")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    pub fn new(
        me: DeviceSelf,
        olm: OlmDevice,
        contacts: ContactBook<P, A>,
        groups: GroupBook<P, A, M>,
        reach: fn(&ContactCard) -> CardReach<P, A>,
    ) -> Self {
        let mut engine = Self {
            me,
            reach,
            olm,
            contacts,
            outbox: Outbox::default(),
            inbox: Inbox::default(),
            routes: Routes::default(),
            key_service: KeyService::default(),
            groups,
            problems: HashMap::new(),
            rights: HashMap::new(),
            grants: HashMap::new(),
            stated: HashMap::new(),
            granted: HashMap::new(),
            pairwise: HashMap::new(),
            revoked: false,
            timers: HashMap::new(),
            gate: gate::ListGate::default(),
            effects: VecDeque::new(),
        };
        engine.sync_peers(0);
        engine
    }

    pub fn me(&self) -> &DeviceSelf {
        &self.me
    }

    /// The next effect of what was handled, in order.
    pub fn poll_effect(&mut self) -> Option<DeviceEffect<P, A, M>> {
        self.effects.pop_front()
    }

    fn note(&mut self, severity: Severity, what: &'static str) {
        self.effects.push_back(DeviceEffect::Note(severity, what));
    }

    /// Runs `f` on the groups, then does what they asked that is the
    /// engine's to do (queue control messages, track members' devices);
    /// the rest comes out as [`DeviceEffect::Group`].
    pub fn with_groups<T>(
        &mut self,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut GroupBook<P, A, M>, &mut Ctx<'_>) -> T,
    ) -> T {
        let out = f(&mut self.groups, ctx);
        self.run_groups(ctx);
        out
    }

    fn run_groups(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(effect) = self.groups.poll_effect() {
            match effect {
                // For our own other devices, when there are any.
                GroupEffect::Send { to, .. }
                    if to == self.me.account && !self.contacts.has_other_devices() => {}
                GroupEffect::Send { to, payload } => {
                    if let Err(e) = self.enqueue(ctx, &to, OutboxKind::Group, &payload) {
                        let what = match e {
                            SendError::UnknownContact { .. } => {
                                "a group control message for an account whose devices we do not know; dropped"
                            }
                            SendError::OutboxFull { .. } => {
                                "the outbox is full; a group control message dropped"
                            }
                            _ => "could not queue a group control message",
                        };
                        self.note(Severity::Warn, what);
                    }
                }
                GroupEffect::PeersChanged => {
                    self.sync_peers(ctx.now.unix_ms);
                    // The host too: who may gossip with us follows the
                    // members.
                    self.effects
                        .push_back(DeviceEffect::Group(GroupEffect::PeersChanged));
                }
                other => self.effects.push_back(DeviceEffect::Group(other)),
            }
        }
    }

    /// Makes the devices of every group member known (for Olm): members
    /// who are not contacts are group peers.
    pub fn sync_peers(&mut self, now_unix_ms: u64) {
        let peers = self.groups.peers();
        for account in self.contacts.peer_accounts() {
            if !peers.contains_key(&account) {
                self.contacts.remove_peer(&account);
            }
        }
        for (account, card) in peers {
            if self.contacts.is_contact(&account) {
                continue;
            }
            if self.contacts.is_peer(&account) {
                // A member's newer card (its `Card` op) replaces the one
                // we held: its new devices become known, revoked ones not.
                let held = self.contacts.known(&account).map(|c| &c.card);
                if held.is_none_or(|c| c.signature == card.signature) {
                    continue;
                }
                self.contacts.remove_peer(&account);
            }
            // Never stored: no text form (base58 of a card costs ~1 ms).
            let record = ContactRecord {
                name: card.name.clone(),
                card: String::new(),
                account,
                send_receipts: false,
                added_at_ms: now_unix_ms,
            };
            let reach = (self.reach)(&card);
            self.contacts
                .insert_peer(record, ContactCard::clone(&card), reach);
        }
    }

    /// Queues `payload` to every device of `account`, encrypting now where
    /// a session exists. Each entry is dispatched once it is on disk.
    pub fn enqueue(
        &mut self,
        ctx: &mut Ctx<'_>,
        account: &AccountId,
        kind: OutboxKind,
        payload: &Payload,
    ) -> Result<(), SendError> {
        let contact = self
            .contacts
            .known(account)
            .ok_or_else(|| SendError::UnknownContact {
                name: account.to_string(),
            })?;
        let devices: Vec<DeviceKeys> = contact
            .card
            .device_list
            .devices
            .iter()
            .filter(|d| self.contacts.owns(account, d))
            .copied()
            .collect();
        if self.outbox.len() + devices.len() > MAX_OUTBOX_ENTRIES {
            return Err(SendError::OutboxFull {
                len: self.outbox.len(),
            });
        }
        let conversation = ConversationId::direct(&self.me.account, account);
        let padded = payload.to_padded();
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
                created_at_ms: ctx.now.unix_ms,
            };
            self.effects
                .push_back(DeviceEffect::Write(DeviceWrite::Outbox(
                    key,
                    record.clone(),
                )));
            self.outbox.insert_committing(key, record, ctx.now);
            self.effects
                .push_back(DeviceEffect::After(DeviceAfter::Dispatch(key)));
        }
        Ok(())
    }

    /// A payload for every device of `account` that is not a message:
    /// sent like one, with no status of its own.
    pub fn send_control(
        &mut self,
        ctx: &mut Ctx<'_>,
        account: &AccountId,
        kind: OutboxKind,
        body: Body,
    ) -> Result<MessageId, SendError> {
        let id = ctx.next_id();
        let payload = Payload {
            sender_account: self.me.account,
            sender_device: self.me.device_id(),
            id,
            body,
        };
        self.enqueue(ctx, account, kind, &payload)?;
        Ok(id)
    }

    /// The recipient device of an outbox entry, if still known (and
    /// reachable in the host's terms).
    fn recipient_keys(&self, key: &OutboxKey) -> Option<DeviceKeys> {
        let record = self.outbox.get(key)?.record();
        let (_, keys) = self.contacts.device(&record.recipient, &record.device)?;
        self.contacts.peer_of(&keys.device_id)?;
        Some(keys)
    }

    /// Whether the device has relays to leave mail at.
    pub fn has_relays(&self, device: &DeviceId) -> bool {
        self.stated.contains_key(device)
            || self
                .contacts
                .of_device(device)
                .and_then(|(account, _)| self.contacts.known(&account))
                .is_some_and(|c| !c.relays.is_empty())
    }

    /// Whether mail for the device goes through its relays now.
    fn via_relays(&self, ctx: &Ctx<'_>, device: &DeviceId) -> bool {
        self.routes.is_unreachable(ctx.now, device) && self.has_relays(device)
    }

    /// The device did not answer: send through its relays for a while.
    pub fn mark_unreachable(&mut self, ctx: &Ctx<'_>, device: DeviceId) {
        if self.contacts.has_device(&device) {
            self.routes.mark_unreachable(ctx.now, device);
        }
    }

    /// Moves one outbox entry that has no envelope yet forward: encrypt it,
    /// or get the device's one-time key first.
    pub fn dispatch(&mut self, ctx: &mut Ctx<'_>, key: OutboxKey) {
        let Some(entry) = self.outbox.get(&key) else {
            return;
        };
        if !entry.is_waiting() || entry.envelope().is_some() {
            return;
        }
        let Some(keys) = self.recipient_keys(&key) else {
            // The contact or device is gone: nobody to deliver to.
            self.note(
                Severity::Warn,
                "outbox entry has no known recipient device; keeping it",
            );
            self.outbox.retry_later(&key, ctx.now);
            return;
        };
        if self.olm.has_session(&keys.olm_curve25519) {
            let Some(padded) = self.outbox.get(&key).map(|e| e.record().payload.clone()) else {
                return;
            };
            match self.olm.encrypt(&keys, &padded) {
                Ok(envelope) => {
                    if let Some(record) = self.outbox.encrypted(&key, envelope.to_bytes()) {
                        let write = DeviceWrite::Outbox(key, record.clone());
                        self.effects.push_back(DeviceEffect::Write(write));
                        self.effects
                            .push_back(DeviceEffect::After(DeviceAfter::Dispatch(key)));
                    }
                }
                Err(_) => {
                    self.note(Severity::Warn, "encryption failed; retrying later");
                    self.outbox.retry_later(&key, ctx.now);
                }
            }
        } else if self.via_relays(ctx, &keys.device_id) {
            if self.outbox.await_key(&key) {
                self.claim_key(ctx, keys.device_id);
            }
        } else if self.outbox.await_key(&key) {
            self.effects
                .push_back(DeviceEffect::RequestKey(keys.device_id));
        }
    }

    /// An entry's batch committed: it may go now.
    pub fn dispatched(&mut self, ctx: &mut Ctx<'_>, key: OutboxKey) {
        self.outbox.committed(&key);
        self.pump(ctx, &key.1);
    }

    /// What is due in the outbox (the host's tick).
    pub fn handle_tick(&mut self, ctx: &mut Ctx<'_>) {
        for device in self.outbox.due_devices(ctx.now) {
            self.pump(ctx, &device);
        }
        let outbox = &self.outbox;
        self.problems.retain(|key, _| outbox.get(key).is_some());
    }

    /// A connection to the device opened (or it reached us): what waits
    /// for it goes now.
    pub fn reached(&mut self, ctx: &mut Ctx<'_>, device: &DeviceId, always: bool) {
        if self.routes.reached(device) || always {
            self.outbox.wake(device, ctx.now);
        }
    }

    /// Moves the device's oldest waiting entries on: those with envelopes go
    /// out as one batch (in encryption order) unless a request to the
    /// device is already on its way; the others are encrypted or wait for
    /// a one-time key. A device reached only through its relays gets
    /// deposits.
    ///
    /// Envelopes for one device go out in the order they were encrypted,
    /// one batch request at a time, or two to a device that handles them
    /// in order (`/hush/direct/2`, `Outbox::window`). Olm keeps at most 40
    /// skipped message keys per chain, so envelopes must not overtake each
    /// other by more than that: one request cannot overtake another, and
    /// after a failed request the whole device backs off
    /// (`Outbox::retry_device_later`).
    pub fn pump(&mut self, ctx: &mut Ctx<'_>, device: &DeviceId) {
        if self.contacts.is_blocked_device(device) {
            // Held, in order, until the user unblocks the contact.
            return;
        }
        if self.held_by_gate(ctx, device) {
            // Held until we know the account's current list (at start).
            return;
        }
        if self.via_relays(ctx, device) {
            // Encrypt (or get a key for) what is not yet, in order, then
            // deposit. Unencrypted entries are the newest ones, so look from
            // the end; while a key is on its way they wait for it anyway.
            if !self.outbox.is_awaiting_key(device) {
                for key in self.outbox.unencrypted_tail(device, MAX_BATCH_ENVELOPES) {
                    self.dispatch(ctx, key);
                }
            }
            self.deposit(ctx, device);
            return;
        }
        let ready = self.outbox.next_for(device, ctx.now, MAX_BATCH_ENVELOPES);
        let mut keys: Vec<OutboxKey> = Vec::new();
        let mut envelopes: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        for key in ready {
            let Some(envelope) = self.outbox.get(&key).and_then(|e| e.envelope().cloned()) else {
                self.dispatch(ctx, key);
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
        if !keys.is_empty() && keys.first().and_then(|k| self.recipient_keys(k)).is_some() {
            self.effects.push_back(DeviceEffect::SendBatch {
                device: *device,
                keys,
                batch: EnvelopeBatch { envelopes }.to_bytes(),
            });
        }
    }

    /// Starts a session from a device's one-time key bundle (from the
    /// device itself or one of its relays). The bundle must be signed by the
    /// device's Olm key from its signed device list: nobody else can slip
    /// in a key of their own.
    pub fn start_session(&mut self, device: &DeviceId, bundle: &KeyBundle) -> Result<(), String> {
        let (_, keys) = self
            .contacts
            .of_device(device)
            .ok_or("not a contact device")?;
        self.olm
            .start_session(bundle, &keys)
            .map_err(|e| e.to_string())
    }

    /// A key request to the device ended (`started`: a session exists now):
    /// entries that waited for it move on.
    pub fn key_arrived(&mut self, ctx: &mut Ctx<'_>, device: &DeviceId, started: bool) {
        for key in self.outbox.key_arrived(ctx.now, device, started) {
            self.dispatch(ctx, key);
        }
    }

    /// The answer to a batch of envelopes sent to a device.
    pub fn handle_acks<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        keys: &[OutboxKey],
        response: &[u8],
    ) {
        let acks = match AckBatch::from_bytes(response) {
            Ok(b) if b.acks.len() == keys.len() => b.acks,
            _ => {
                self.note(
                    Severity::Debug,
                    "malformed ack batch; retrying its envelopes",
                );
                vec![DirectAck::Rejected(RejectReason::Unavailable); keys.len()]
            }
        };
        // The messages acked as stored, and their statuses, in one read.
        let wanted: Vec<(ConversationId, MessageId)> = keys
            .iter()
            .zip(&acks)
            .filter(|(_, ack)| matches!(ack, DirectAck::Stored | DirectAck::Duplicate))
            .filter_map(|(key, _)| {
                let record = self.outbox.get(key)?.record();
                (record.kind == OutboxKind::Message).then_some((record.conversation, key.0))
            })
            .collect();
        let statuses: HashMap<MessageId, Status> = lookup
            .statuses(&wanted)
            .unwrap_or_default()
            .into_iter()
            .zip(&wanted)
            .filter_map(|(status, (_, id))| Some((*id, status?)))
            .collect();
        let mut refused = Vec::new();
        let mut undecryptable = None;
        for (key, ack) in keys.iter().zip(acks) {
            match ack {
                DirectAck::Stored | DirectAck::Duplicate => {
                    self.delivered(*key, statuses.get(&key.0).copied());
                }
                DirectAck::Rejected(RejectReason::Undecryptable) => {
                    undecryptable.get_or_insert(*key);
                }
                // Only our own account's devices know: from anyone else it
                // is a plain refusal.
                DirectAck::Rejected(RejectReason::Revoked) if self.is_to_own(key) => {
                    self.learn_revoked();
                    return;
                }
                DirectAck::Rejected(_) => {
                    self.note(Severity::Info, "recipient refused; retrying later");
                    refused.push(*key);
                }
            }
        }
        if let Some(key) = undecryptable {
            // Re-encrypts everything queued, the refused ones too.
            self.restart_session(ctx, &key);
        } else {
            // Later envelopes must not overtake the refused ones.
            self.outbox.retry_device_later(&refused, ctx.now);
        }
        if let Some(key) = keys.first() {
            self.pump(ctx, &key.1);
        }
    }

    /// A batch of envelopes did not reach the device: leave them at its
    /// relays, and try directly again later.
    pub fn handle_send_failed(&mut self, ctx: &mut Ctx<'_>, keys: &[OutboxKey]) {
        self.outbox.retry_device_later(keys, ctx.now);
        if let Some(key) = keys.first() {
            self.mark_unreachable(ctx, key.1);
            self.deposit(ctx, &key.1);
        }
    }

    /// The device can no longer decrypt our session (`key` was refused as
    /// undecryptable): start a new one and re-encrypt, in order, everything
    /// still queued for it. No request to it is in flight at this point.
    fn restart_session(&mut self, ctx: &mut Ctx<'_>, key: &OutboxKey) {
        let Some(keys) = self.recipient_keys(key) else {
            return;
        };
        self.note(
            Severity::Warn,
            "recipient cannot decrypt our session; starting a new one",
        );
        self.olm.drop_sessions(&keys.olm_curve25519);
        let forgotten: Vec<(OutboxKey, OutboxRecord)> = self
            .outbox
            .forget_envelopes(&keys.device_id)
            .into_iter()
            .map(|(k, r)| (k, r.clone()))
            .collect();
        for (k, record) in forgotten {
            self.effects
                .push_back(DeviceEffect::Write(DeviceWrite::Outbox(k, record)));
        }
        // New envelopes: every relay needs them again.
        self.routes.forget_marks_of(&keys.device_id);
        self.outbox.retry_device_later(&[*key], ctx.now);
    }

    /// The recipient device stored the entry: it leaves the outbox, and a
    /// message (stored with `status`) is `delivered`.
    fn delivered(&mut self, key: OutboxKey, status: Option<Status>) {
        let Some(record) = self.outbox.remove(&key) else {
            return;
        };
        self.effects
            .push_back(DeviceEffect::Write(DeviceWrite::DropOutbox(key)));
        let conversation = record.conversation;
        let behind = status.is_some_and(|s| s < Status::Delivered);
        if record.kind == OutboxKind::Message && behind {
            self.effects
                .push_back(DeviceEffect::Write(DeviceWrite::RaiseStatus(
                    conversation,
                    key.0,
                    Status::Delivered,
                )));
            // The ack itself is the durable fact (the recipient device has
            // stored the message), so say so now; our own record of it
            // lands with the next batch, and if we crash first, the entry is
            // resent on restart and acked again as a duplicate.
            if let Some(name) = self.contacts.name_of(&record.recipient) {
                self.effects
                    .push_back(DeviceEffect::Notice(Box::new(DeviceNotice::Status {
                        contact: name.clone(),
                        id: key.0,
                        status: Status::Delivered,
                    })));
            }
        }
    }

    /// The device confirmed it has `key` (a delivered or read receipt):
    /// drop what still waited for a direct resend after a deposit.
    fn settle_outbox(&mut self, key: &OutboxKey) {
        let removable = self
            .outbox
            .get(key)
            .is_some_and(|e| e.is_waiting() && !e.sent_to().is_empty());
        if removable {
            self.outbox.remove(key);
            self.effects
                .push_back(DeviceEffect::Write(DeviceWrite::DropOutbox(*key)));
        }
    }

    /// A relay of the recipient holds the entry durably: a message is
    /// `sent`; anything else is done.
    pub fn sent<L: DeviceLookup>(&mut self, lookup: &L, key: OutboxKey) {
        self.problems.remove(&key);
        let Some(entry) = self.outbox.get(&key) else {
            return;
        };
        let record = entry.record();
        let (kind, conversation, recipient) = (record.kind, record.conversation, record.recipient);
        if kind != OutboxKind::Message {
            // Receipts and control payloads get no receipt back: once a
            // relay has one, it is done.
            self.outbox.remove(&key);
            self.effects
                .push_back(DeviceEffect::Write(DeviceWrite::DropOutbox(key)));
            return;
        }
        let behind = lookup
            .message(&conversation, key.0)
            .ok()
            .flatten()
            .is_some_and(|m| m.status < Status::Sent);
        if behind {
            self.effects
                .push_back(DeviceEffect::Write(DeviceWrite::RaiseStatus(
                    conversation,
                    key.0,
                    Status::Sent,
                )));
            if let Some(name) = self.contacts.name_of(&recipient) {
                let notice = DeviceNotice::Status {
                    contact: name.clone(),
                    id: key.0,
                    status: Status::Sent,
                };
                self.effects
                    .push_back(DeviceEffect::After(DeviceAfter::Notice(Box::new(notice))));
            }
        }
    }

    /// An envelope's batch finished (committed or not): the store answers
    /// for its digest from now on.
    pub fn settled(&mut self, digest: &[u8; 32]) {
        self.inbox.settled(digest);
        self.groups.settled(digest);
    }

    /// A one-time key request from `peer`: the bundle to hand out once its
    /// secret is on disk, or why not.
    pub fn handle_key_request(
        &mut self,
        now: crate::Now,
        peer: P,
        request: &[u8],
    ) -> Result<KeyBundle, crate::device::KeyDecision> {
        let known = self.contacts.is_known_peer(&peer);
        match self.key_service.request(now, peer, known, request) {
            crate::device::KeyDecision::Serve => {
                Ok(self.olm.one_time_key_bundle(self.me.device_id()))
            }
            refused => Err(refused),
        }
    }
}

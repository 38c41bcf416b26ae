//! What arrives for groups: messages on a topic or from a relay's
//! history, and control messages (ops, sync requests, room keys, receipts)
//! over Olm.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;

use super::Severity;
use super::membership::OpsFrom;
use super::{
    DeviceLookup, EARLY_ROOM_KEY_MS, EarlyRoomKey, GroupAfter, GroupBook, GroupEffect, GroupNotice,
    GroupWrite, MAX_AWAITING, MAX_EARLY_ROOM_KEYS, MAX_GROUPS, MAX_OUTSIDERS_LOGGED,
    MAX_UNCLAIMED_BYTES, UNCLAIMED_FOR_MS, VALIDATION_WAIT_MS, Waiting,
};
use crate::device::{Ctx, GroupRecord, MessageRecord, PendingRecord, SeenKey, Status};
use crate::{
    AccountId, Action, Body, CHANNEL_SESSION, ControlKind, ConversationId, DeviceId, GroupControl,
    GroupId, GroupMessage, GroupOp, MegolmInbound, OpHash, OpSet, Payload, ReceiptKind, SessionId,
    Wire, room_key_claim,
};

/// Whether a topic message is forwarded to the topic's other peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Read, from a member: forward it.
    Accept,
    /// Not for us to forward (unreadable, or not from a member).
    Ignore,
    /// Malformed: penalise the peer that sent it.
    Reject,
}

/// Ops by accounts the group has not named yet whose parents we lack: a
/// join that overtook, on the channel, the invitation naming its author.
/// Held in memory this long, at most this many and this many encoded
/// bytes over all groups (the oldest go first), until an op naming their
/// author is applied.
pub(super) const EARLY_OPS_FOR_MS: u64 = 60_000;
pub(super) const MAX_EARLY_OPS: usize = 512;
const MAX_EARLY_OP_BYTES: usize = 1024 * 1024;

/// A verified op by an account its group has not named yet, whose parents
/// we lack: held until an op naming its author is applied (see
/// [`EARLY_OPS_FOR_MS`]).
#[derive(Debug)]
pub(super) struct EarlyOp {
    group: GroupId,
    op: GroupOp,
    hash: OpHash,
    from: OpsFrom,
    since: u64,
    bytes: usize,
}

/// What became of one group message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Received {
    /// Read and stored, or already had.
    Read,
    /// Kept until its session's key arrives.
    Waiting(SessionId),
    /// Not readable, not wanted.
    Refused,
    /// No key yet, and no room to keep it waiting: read it again later
    /// (from the relay's history, whose cursor stays before it).
    Deferred,
}

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + Hash + fmt::Display,
{
    /// A message on a group's topic, from `peer`. `home_relay`: the peer is
    /// one of our home relays (a source for every group). The validation
    /// result comes as [`GroupEffect::Validate`], now or once the message's
    /// key arrived or is late.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_topic_message<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        topic: &str,
        message: M,
        peer: P,
        home_relay: bool,
        data: &[u8],
    ) {
        let known = self.by_topic(topic);
        let acceptance = match (known, GroupMessage::from_bytes(data)) {
            (_, Err(_)) => Acceptance::Reject,
            (None, Ok(_)) => Acceptance::Ignore,
            // Not made by a holder of the topic's publish key: nobody who holds it
            // made this, and every relay on the way should have refused it.
            (Some(id), Ok(m))
                if !self
                    .groups
                    .get(&id)
                    .is_some_and(|g| g.authentic_for(topic, &m)) =>
            {
                self.note(
                    id,
                    Severity::Warn,
                    "group message not signed by its topic's publish key; rejected",
                );
                Acceptance::Reject
            }
            // The channel proves itself (sealed under the epoch's key, ops
            // signed by their authors), whoever hands it over: a member who
            // missed some joins does not know the peers around it, and the
            // ops that would tell it come this way.
            (Some(id), Ok(m)) if m.session == CHANNEL_SESSION => {
                let digest = GroupMessage::digest(data);
                let read = self.receiving.contains(&digest)
                    || lookup
                        .seen(&SeenKey::of_group(&m.session, digest))
                        .unwrap_or(false);
                if read
                    || self.on_channel(ctx, lookup, id, topic, &m, digest, true) == Received::Read
                {
                    Acceptance::Accept
                } else {
                    Acceptance::Ignore
                }
            }
            (Some(id), Ok(_)) if !home_relay && !self.is_source(id, &peer) => {
                if self.outsiders.len() >= MAX_OUTSIDERS_LOGGED {
                    self.outsiders.clear();
                }
                if self.outsiders.insert((peer, id)) {
                    self.note(id, Severity::Info, "group message from a peer that is neither a member's device nor a member's relay; ignored");
                }
                Acceptance::Ignore
            }
            (Some(id), Ok(_)) => match self.on_message(ctx, lookup, id, data) {
                Received::Read => Acceptance::Accept,
                Received::Refused | Received::Deferred => Acceptance::Ignore,
                Received::Waiting(session) if self.awaiting_count < MAX_AWAITING => {
                    // Forwarded (or not) once we know whether its key comes.
                    self.awaiting_count += 1;
                    self.awaiting.entry(session).or_default().push((
                        message,
                        peer,
                        ctx.now.mono_ms,
                    ));
                    return;
                }
                Received::Waiting(_) => Acceptance::Ignore,
            },
        };
        self.effects.push_back(GroupEffect::Validate {
            message,
            peer,
            acceptance,
        });
    }

    /// Whether `peer` is a member's device or a member's relay.
    pub fn is_source(&self, id: GroupId, peer: &P) -> bool {
        self.groups
            .get(&id)
            .is_some_and(|g| g.sources.contains(peer))
    }

    /// Whether `peer` sent on the group's topic without being a source
    /// (remembered to report each once, within a bound).
    pub fn is_outsider(&self, peer: &P, id: GroupId) -> bool {
        self.outsiders.contains(&(*peer, id))
    }

    /// A page of the history of one of the group's topics from `relay`:
    /// (sequence, message). The cursor moves past it; `more`: fetch the
    /// next page.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_history_page<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        relay: P,
        id: GroupId,
        topic: &str,
        items: Vec<(u64, Vec<u8>)>,
        more: bool,
    ) {
        let mut last = None;
        let mut deferred = false;
        for (seq, bytes) in items {
            // The same check as on the topic: a relay that stored what the
            // publish key did not sign gets nothing read.
            let authentic = GroupMessage::from_bytes(&bytes).ok().filter(|m| {
                self.groups
                    .get(&id)
                    .is_some_and(|g| g.authentic_for(topic, m))
            });
            let Some(message) = authentic else {
                self.note(
                    id,
                    Severity::Warn,
                    "history item not signed by its topic's publish key; skipped",
                );
                last = Some(seq);
                continue;
            };
            if message.session == CHANNEL_SESSION {
                let digest = GroupMessage::digest(&bytes);
                let seen = SeenKey::of_group(&message.session, digest);
                if !self.receiving.contains(&digest) && !lookup.seen(&seen).unwrap_or(false) {
                    self.on_channel(ctx, lookup, id, topic, &message, digest, false);
                }
                last = Some(seq);
                continue;
            }
            if self.on_message(ctx, lookup, id, &bytes) == Received::Deferred {
                // A message is never skipped because its key is late: the
                // cursor stays before it, and it is read again next time.
                deferred = true;
                break;
            }
            last = Some(seq);
        }
        if let Some(seq) = last
            && let Some(g) = self.groups.get_mut(&id)
            && let Some(k) = g.keys.iter_mut().find(|k| k.topic == topic)
        {
            let key = relay.to_string();
            k.cursors.retain(|(r, _)| *r != key);
            k.cursors.push((key, seq));
            let write = GroupWrite::PublishKey(id, k.epoch, k.record());
            self.effects.push_back(GroupEffect::Write(write));
        }
        if more
            && !deferred
            && let Some(after) = self.history_cursor(&id, topic, &relay)
        {
            self.effects.push_back(GroupEffect::Fetch {
                relay,
                group: id,
                topic: topic.to_owned(),
                after,
            });
        }
    }

    /// Settles messages held unvalidated: those of `session` (its key
    /// arrived) as `Accept`, and those waiting over
    /// [`VALIDATION_WAIT_MS`] as `Ignore`.
    pub(super) fn settle_awaiting(&mut self, now: u64, session: Option<SessionId>) {
        let mut settled = Vec::new();
        if let Some(session) = session {
            for (message, peer, _) in self.awaiting.remove(&session).unwrap_or_default() {
                settled.push((message, peer, Acceptance::Accept));
            }
        }
        let mut stale_sessions: Vec<SessionId> = Vec::new();
        for (session, held) in &self.awaiting {
            if held
                .iter()
                .any(|(_, _, since)| now.saturating_sub(*since) >= VALIDATION_WAIT_MS)
            {
                stale_sessions.push(*session);
            }
        }
        for session in stale_sessions {
            let Some(held) = self.awaiting.remove(&session) else {
                continue;
            };
            let mut kept = Vec::new();
            for (message, peer, since) in held {
                if now.saturating_sub(since) >= VALIDATION_WAIT_MS {
                    settled.push((message, peer, Acceptance::Ignore));
                } else {
                    kept.push((message, peer, since));
                }
            }
            if !kept.is_empty() {
                self.awaiting.insert(session, kept);
            }
        }
        self.awaiting_count = self.awaiting_count.saturating_sub(settled.len());
        for (message, peer, acceptance) in settled {
            self.effects.push_back(GroupEffect::Validate {
                message,
                peer,
                acceptance,
            });
        }
    }

    /// One group message, from the topic, a relay's history or a member
    /// that found it for us.
    pub(super) fn on_message<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        id: GroupId,
        bytes: &[u8],
    ) -> Received {
        let Ok(message) = GroupMessage::from_bytes(bytes) else {
            return Received::Refused;
        };
        let digest = GroupMessage::digest(bytes);
        let seen = SeenKey::of_group(&message.session, digest);
        if self.receiving.contains(&digest) || lookup.seen(&seen).unwrap_or(false) {
            return Received::Read;
        }
        let Some(inbound) = self.inbound.get_mut(&message.session) else {
            return self.keep_pending(ctx, id, &message, digest, bytes);
        };
        if inbound.group != id {
            self.note(
                id,
                Severity::Warn,
                "group message under another group's session; ignored",
            );
            return Received::Refused;
        }
        let Ok((plaintext, index)) = inbound.session.decrypt(&message.ciphertext) else {
            self.note(id, Severity::Warn, "group message undecryptable");
            return Received::Refused;
        };
        let gap = inbound.gaps.read(index);
        let (account, device) = (inbound.account, inbound.device);
        if gap {
            self.catch_ups.entry(id).or_default().gap(ctx.now.mono_ms);
        }
        let payload = match Payload::from_padded(&plaintext) {
            Ok(p) if p.sender_account == account && p.sender_device == device => p,
            _ => {
                let what = "group message from a session whose owner it does not name; ignored";
                self.note(id, Severity::Warn, what);
                return Received::Refused;
            }
        };
        self.keep_recent(id, message.session, index, bytes);
        let (timer, body) = payload.body.untimed();
        let (text, file) = match body {
            Body::Text(text) => (text, None),
            Body::File(offer) => {
                let file = crate::device::FileRecord {
                    manifest: offer.manifest.to_bytes(),
                    outgoing: account == self.account(),
                    source: device,
                    state: crate::device::FileState::Offered,
                    path: None,
                    error: None,
                };
                (offer.caption, Some(file))
            }
            _ => {
                self.note(
                    id,
                    Severity::Debug,
                    "group message with a body other than text or a file; ignored",
                );
                return Received::Refused;
            }
        };
        let conversation = ConversationId::group(&id);
        let now = ctx.now.unix_ms;
        self.receiving.insert(digest);
        self.effects.extend([
            GroupEffect::Write(GroupWrite::Seen(seen, now)),
            GroupEffect::After(GroupAfter::Settled(digest)),
        ]);
        if self.blocked.contains(&account) {
            return Received::Read;
        }
        if lookup
            .message(&conversation, payload.id)
            .ok()
            .flatten()
            .is_some()
        {
            return Received::Read;
        }
        ctx.clock.observe(payload.id, ctx.now);
        let record = MessageRecord {
            id: payload.id,
            from: account,
            outgoing: account == self.account(),
            text,
            status: Status::Delivered,
            sent_at_ms: payload.id.millis(),
            stored_at_ms: now,
            timer_secs: timer,
            kind: crate::device::MessageKind::Message,
        };
        if record.expires_at_ms().is_some_and(|at| at <= now) {
            // It disappeared before it arrived: never stored or shown.
            return Received::Read;
        }
        let name = self
            .groups
            .get(&id)
            .map(|g| g.state.name.clone())
            .unwrap_or_default();
        self.effects
            .push_back(GroupEffect::Write(GroupWrite::Message(
                conversation,
                record.clone(),
            )));
        if let Some(file) = &file {
            self.effects.push_back(GroupEffect::Write(GroupWrite::File(
                conversation,
                payload.id,
                file.clone(),
            )));
        }
        self.effects
            .push_back(GroupEffect::After(GroupAfter::Notice(Box::new(
                GroupNotice::Message {
                    group: id,
                    name,
                    message: record,
                    file,
                },
            ))));
        if account != self.account() {
            self.queue_receipt(ctx, account, id, ReceiptKind::Delivered, payload.id);
        }
        Received::Read
    }

    fn keep_pending(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        message: &GroupMessage,
        digest: [u8; 32],
        bytes: &[u8],
    ) -> Received {
        if self.pending.contains(message.session, &digest) {
            return Received::Waiting(message.session);
        }
        if let Err(full) = self.pending.admits(&id, &message.session) {
            self.note(id, Severity::Warn, full.describe());
            return Received::Deferred;
        }
        // Ordinary when a sender starts a session: its key comes over Olm,
        // the message over the topic (the log warns if the key is late).
        self.note(
            id,
            Severity::Debug,
            "group message ahead of its session's key: kept until the key arrives",
        );
        self.pending
            .insert(ctx.now.unix_ms, message.session, digest, id);
        self.fresh_pending
            .entry(message.session)
            .or_default()
            .push((digest, id, bytes.to_vec()));
        let record = PendingRecord {
            group: id,
            message: bytes.to_vec(),
            received_at_ms: ctx.now.unix_ms,
        };
        self.effects.extend([
            GroupEffect::Write(GroupWrite::Pending(message.session, digest, record)),
            GroupEffect::After(GroupAfter::PendingStored(message.session, digest)),
        ]);
        Received::Waiting(message.session)
    }

    /// A group control message over Olm from a verified device of
    /// `account`.
    pub fn handle_control<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        account: AccountId,
        device: DeviceId,
        control: GroupControl,
    ) {
        let id = control.group;
        match control.kind {
            ControlKind::Ops(ops) => self.on_ops(ctx, lookup, OpsFrom::Olm(account), id, ops),
            ControlKind::SyncRequest => {
                if !self.may_answer(ctx, id, account, true) {
                    return;
                }
                let ops: Option<Vec<GroupOp>> =
                    self.groups.get(&id).map(|g| g.ops.ops().cloned().collect());
                self.send_ops(ctx, account, id, ops.unwrap_or_default());
            }
            ControlKind::RoomKey { key, claim } => {
                self.on_room_key(ctx, lookup, (account, device), id, &key, &claim);
            }
            ControlKind::PublishKey { epoch, key } => {
                self.on_publish_key(ctx, account, id, epoch, *key);
            }
            ControlKind::PublishKeyRequest { epoch } => {
                self.on_publish_key_request(ctx, account, id, epoch);
            }
            // Over Olm, heads ask for what they lack (see `ask_for_ops`).
            ControlKind::Heads(heads) => self.on_asked_with_heads(ctx, id, account, &heads),
            // A want is for every member: the channel carries it.
            ControlKind::Want(_) => {
                let what = "a want of ops over Olm (the channel carries those); ignored";
                self.note(id, Severity::Info, what);
            }
            ControlKind::Missed { session, indices } => {
                self.on_missed(ctx, id, account, session, &indices);
            }
            ControlKind::Found(messages) => self.on_found(ctx, lookup, id, account, messages),
            ControlKind::Receipt { kind, ids } => {
                let Some(g) = self.groups.get(&id) else {
                    return;
                };
                if !g.state.members.contains_key(&account) {
                    return;
                }
                let conversation = g.conversation();
                let Ok(ours) = lookup.outgoing(&conversation, &ids) else {
                    return;
                };
                if ours.is_empty() {
                    return;
                }
                self.unconfirmed.confirmed(&ours);
                self.tails.confirmed(&account, &ours);
                self.drop_forgotten();
                for message in &ours {
                    self.effects
                        .push_back(GroupEffect::Write(GroupWrite::Receipt(
                            conversation,
                            *message,
                            account,
                            kind,
                        )));
                }
                // The counts go out once the receipts are on disk.
                self.effects
                    .push_back(GroupEffect::After(GroupAfter::ReceiptCounts(id, ours)));
            }
        }
    }

    pub(super) fn on_ops<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        from: OpsFrom,
        id: GroupId,
        mut ops: Vec<GroupOp>,
    ) {
        // Ops we hold are verified already (several signatures each, for
        // the card an invitation carries): a whole set sent again costs a
        // lookup by signature and a comparison per op, not its signatures
        // (nor encoding it again to hash it).
        if let Some(g) = self.groups.get(&id) {
            ops.retain(|op| !g.ops.holds(op));
            if ops.is_empty() {
                return;
            }
        }
        let count = ops.len();
        let mut verified: Vec<GroupOp> = ops
            .into_iter()
            .filter(|op| op.group == id && op.verify().is_ok())
            .collect();
        if verified.len() < count {
            self.note(id, Severity::Warn, "invalid group op ignored");
        }
        if !self.groups.contains_key(&id) {
            // Only an invitation of us starts a group here. A big group's
            // ops come in several messages, ours maybe last: hold the
            // others until they make us a member.
            let mut probe = OpSet::default();
            let held = self
                .unclaimed
                .remove(&id)
                .map(|(_, ops, _)| ops)
                .unwrap_or_default();
            for op in held.into_iter().chain(verified) {
                probe.insert(op);
            }
            verified = probe.ops().cloned().collect();
            let state = probe.fold(id);
            if !state.members.contains_key(&self.account()) {
                self.note(id, Severity::Debug, "ops of a group we are not in; held in case they are an invitation still arriving");
                self.hold_unclaimed(ctx.now.mono_ms, id, verified);
                return;
            }
            if self.groups.len() >= MAX_GROUPS {
                self.note(
                    id,
                    Severity::Warn,
                    "invited into more groups than the limit; ignored",
                );
                return;
            }
            self.insert(id, OpSet::default(), GroupRecord::default(), None);
        }
        // Only accounts the group has named (its creator, and whoever they
        // or those they invited invited) author its ops: a stranger's
        // signed ops would otherwise be kept for good.
        let me = self.account();
        let mut early = Vec::new();
        if let Some(g) = self.groups.get_mut(&id) {
            let named = named_accounts(g.ops.ops().chain(verified.iter()));
            let (kept, unnamed): (Vec<GroupOp>, Vec<GroupOp>) = verified
                .into_iter()
                .partition(|op| named.contains(&op.author));
            verified = kept;
            if !unnamed.is_empty() {
                // Not kept (yet); but an invitation we missed may name
                // their authors: what lies below them that we lack is
                // asked for like heads we lack (a heads answer hands over
                // heads, not what is below them, and the same answer would
                // otherwise come again and again).
                let below: Vec<OpHash> = unnamed
                    .iter()
                    .flat_map(|op| op.parents.iter())
                    .filter(|h| !g.ops.contains(h))
                    .copied()
                    .collect();
                let ask = super::channel::whom_to_ask(&g.state, from.account(), &me);
                g.sync.lack(ctx.now.mono_ms, below, ask);
                // Those whose parents we lack may have overtaken that
                // invitation on the channel: held until it comes. An op
                // on parents we hold cannot be waiting for one below it.
                let (waiting, ignored): (Vec<GroupOp>, Vec<GroupOp>) = unnamed
                    .into_iter()
                    .partition(|op| op.parents.iter().any(|h| !g.ops.contains(h)));
                early = waiting;
                if !ignored.is_empty() {
                    let what = "group ops by accounts the group never named; ignored";
                    self.note(id, Severity::Info, what);
                }
            }
        }
        if !early.is_empty() {
            let what =
                "group ops by accounts the group has not named yet; held for their invitation";
            self.note(id, Severity::Debug, what);
            for op in early {
                self.hold_early_op(ctx.now.mono_ms, id, op, from);
            }
        }
        for op in &verified {
            ctx.clock.observe(op.at, ctx.now);
        }
        let names = verified.iter().any(names_an_account);
        self.apply_ops(ctx, id, verified, from);
        if names {
            self.release_early_ops(ctx, id);
        }
        // Room keys that came before their member's join.
        let ready: VecDeque<EarlyRoomKey> = {
            let g = self.groups.get(&id);
            let (ready, rest) = std::mem::take(&mut self.early_room_keys)
                .into_iter()
                .partition(|k| k.0 == id && g.is_some_and(|g| g.state.is_joined(&k.1)));
            self.early_room_keys = rest;
            ready
        };
        for (id, account, device, key, claim, _) in ready {
            self.on_room_key(ctx, lookup, (account, device), id, &key, &claim);
        }
    }

    fn on_room_key<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        (account, device): (AccountId, DeviceId),
        id: GroupId,
        key: &[u8],
        claim: &[u8],
    ) {
        let member = self
            .groups
            .get(&id)
            .is_some_and(|g| g.state.is_joined(&account));
        if !member {
            // Its join travels on the channel, the key over Olm: the key
            // may come first. Held (bounded) until the join does.
            if self.groups.contains_key(&id) {
                let now = ctx.now.mono_ms;
                self.early_room_keys
                    .retain(|k| now.saturating_sub(k.5) < EARLY_ROOM_KEY_MS);
                if self.early_room_keys.len() >= MAX_EARLY_ROOM_KEYS {
                    self.early_room_keys.pop_front();
                }
                let held = (id, account, device, key.to_vec(), claim.to_vec(), now);
                self.early_room_keys.push_back(held);
            }
            self.note(
                id,
                Severity::Debug,
                "Megolm key from a member not joined (yet): held until its join comes",
            );
            return;
        }
        let Ok(mut session) = MegolmInbound::new(key) else {
            self.note(id, Severity::Warn, "malformed Megolm key ignored");
            return;
        };
        // Only the session's maker can encrypt under it: a claim that
        // decrypts to the presenter's name proves the session is theirs.
        let claimed = session
            .decrypt(claim)
            .is_ok_and(|(said, _)| said == room_key_claim(&id, &account, &device));
        if !claimed {
            let what = "a room key whose claim does not name the member presenting it; refused";
            self.note(id, Severity::Warn, what);
            return;
        }
        // A session belongs to the first member device that presented it:
        // another member holding the same key (every member does) cannot
        // claim it, which would make the group drop its owner's messages.
        if let Some(known) = self.inbound.get(&session.id()) {
            if (known.group, known.account, known.device) != (id, account, device) {
                let what = "a room key another member device presented first; refused";
                self.note(id, Severity::Warn, what);
            }
            return;
        }
        let session_id = self.keep_inbound(id, account, device, session);
        // What waited for this key can be read now: on disk, or still in a
        // batch being written.
        let mut waiting: Vec<Waiting> = self.fresh_pending.remove(&session_id).unwrap_or_default();
        for (digest, record) in lookup.pending(&session_id).unwrap_or_default() {
            if !waiting.iter().any(|(d, _, _)| *d == digest) {
                waiting.push((digest, record.group, record.message));
            }
        }
        for (digest, group, bytes) in waiting {
            self.effects
                .push_back(GroupEffect::Write(GroupWrite::DropPending(
                    session_id, digest,
                )));
            self.pending.remove(session_id, &digest);
            self.on_message(ctx, lookup, group, &bytes);
        }
        // Held on the topic for this key: forward them now.
        self.settle_awaiting(ctx.now.mono_ms, Some(session_id));
    }

    /// Holds `ops` of a group we are not in, within [`MAX_UNCLAIMED_BYTES`]
    /// (the oldest group's ops go first).
    fn hold_unclaimed(&mut self, now: u64, id: GroupId, ops: Vec<GroupOp>) {
        self.unclaimed
            .retain(|_, (since, _, _)| now.saturating_sub(*since) < UNCLAIMED_FOR_MS);
        let bytes: usize = ops.iter().map(|op| op.to_bytes().len()).sum();
        if bytes > MAX_UNCLAIMED_BYTES {
            return;
        }
        let since = self
            .unclaimed
            .remove(&id)
            .map_or(now, |(since, _, _)| since);
        while self.unclaimed.values().map(|(_, _, b)| b).sum::<usize>() + bytes
            > MAX_UNCLAIMED_BYTES
        {
            let Some(oldest) = self
                .unclaimed
                .iter()
                .min_by_key(|(_, (since, _, _))| *since)
                .map(|(id, _)| *id)
            else {
                break;
            };
            self.unclaimed.remove(&oldest);
        }
        self.unclaimed.insert(id, (since, ops, bytes));
    }
}

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + Hash + fmt::Display,
{
    /// Holds `op` (by an account `id` has not named, on parents we lack)
    /// until an op naming its author comes, within the bounds.
    fn hold_early_op(&mut self, now: u64, id: GroupId, op: GroupOp, from: OpsFrom) {
        let hash = op.hash();
        self.expire_early_ops(now);
        if self.early_ops.iter().any(|e| e.hash == hash) {
            return;
        }
        let bytes = op.to_bytes().len();
        if bytes > MAX_EARLY_OP_BYTES {
            return;
        }
        let mut held: usize = self.early_ops.iter().map(|e| e.bytes).sum();
        while !self.early_ops.is_empty()
            && (self.early_ops.len() >= MAX_EARLY_OPS || held + bytes > MAX_EARLY_OP_BYTES)
        {
            if let Some(oldest) = self.early_ops.pop_front() {
                held -= oldest.bytes;
            }
        }
        self.early_ops.push_back(EarlyOp {
            group: id,
            op,
            hash,
            from,
            since: now,
            bytes,
        });
    }

    /// Applies the held ops of group `id` whose authors the group names
    /// now (and those the ops released name in turn), in arrival order.
    /// Called when ops that name accounts were added.
    fn release_early_ops(&mut self, ctx: &mut Ctx<'_>, id: GroupId) {
        let mut names = true;
        while names && self.early_ops.iter().any(|e| e.group == id) {
            let Some(g) = self.groups.get(&id) else {
                return;
            };
            let named = named_accounts(g.ops.ops());
            let (ready, rest): (VecDeque<EarlyOp>, VecDeque<EarlyOp>) =
                std::mem::take(&mut self.early_ops)
                    .into_iter()
                    .partition(|e| e.group == id && named.contains(&e.op.author));
            self.early_ops = rest;
            if ready.is_empty() {
                return;
            }
            // Ops from one sender go together (the sender is who a
            // missing parent is asked from).
            names = ready.iter().any(|e| names_an_account(&e.op));
            let mut batches: Vec<(OpsFrom, Vec<GroupOp>)> = Vec::new();
            for e in ready {
                ctx.clock.observe(e.op.at, ctx.now);
                match batches.last_mut() {
                    Some((from, ops)) if *from == e.from => ops.push(e.op),
                    _ => batches.push((e.from, vec![e.op])),
                }
            }
            for (from, ops) in batches {
                self.apply_ops(ctx, id, ops, from);
            }
        }
    }

    /// Lets go of held ops that waited [`EARLY_OPS_FOR_MS`] (they are in
    /// arrival order).
    pub(super) fn expire_early_ops(&mut self, now: u64) {
        while self
            .early_ops
            .front()
            .is_some_and(|e| now.saturating_sub(e.since) >= EARLY_OPS_FOR_MS)
        {
            self.early_ops.pop_front();
        }
    }

    #[cfg(test)]
    pub(super) fn early_ops_held(&self) -> usize {
        self.early_ops.len()
    }
}

/// Whether `op` may name an account to the group (see [`named_accounts`]).
fn names_an_account(op: &GroupOp) -> bool {
    matches!(op.action, Action::Create { .. } | Action::Invite { .. })
}

/// The accounts a set of ops names, from the creator on: the creator, and
/// every account invited by an account already named.
fn named_accounts<'a>(ops: impl Iterator<Item = &'a GroupOp>) -> HashSet<AccountId> {
    let mut creators = Vec::new();
    let mut invited: HashMap<AccountId, Vec<AccountId>> = HashMap::new();
    for op in ops {
        match &op.action {
            Action::Create { .. } => creators.push(op.author),
            Action::Invite { card, .. } => {
                invited.entry(op.author).or_default().push(card.account())
            }
            _ => {}
        }
    }
    let mut named: HashSet<AccountId> = HashSet::new();
    let mut next = creators;
    while let Some(account) = next.pop() {
        if named.insert(account) {
            next.extend(invited.get(&account).into_iter().flatten().copied());
        }
    }
    named
}

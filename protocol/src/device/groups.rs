//! Groups, the device engine's part: membership ops over Olm, Megolm
//! messages on the group's topic, history from the home relays.
//!
//! ```text
//!  create/invite/join/remove/leave/promote
//!     └─ sign a GroupOp ─▶ fold ─▶ Send (Olm, through the outbox) ─▶ every member
//!  send ─▶ Megolm (our outbound session; new one after a membership change,
//!          N messages or T time, its key to every joined member over Olm)
//!        ─▶ Write ─▶ (commit) ─▶ Publish on the group's topic
//!  topic / relay history ─▶ validate ─▶ Megolm decrypt ─▶ Write ─▶ receipt
//!                                         └─ no key yet: kept as pending
//! ```
//!
//! [`GroupBook`] takes what happened (a command, a control message over
//! Olm, a topic message, a history page, a tick, a finished commit) with
//! the time and says what follows as [`GroupEffect`]s, in order: writes for
//! the current batch, control messages to queue, topics to join or leave,
//! validation results, and what may happen only after the batch commits
//! ([`GroupAfter`]). What it must read from storage it reads through
//! [`DeviceLookup`].
//!
//! What arrives on a topic is forwarded (validated `Accept`) only when it
//! came from a member's device or a member's relay and we could read it.
//! A message under a session whose key has not arrived yet is held
//! unvalidated for [`VALIDATION_WAIT_MS`]: accepted if the key lands in
//! time, ignored otherwise (a non-member's session key never lands).

mod channel;
mod effects;
mod epochs;
mod gaps;
mod membership;
pub mod pending;
mod receive;
mod recent;
mod resend;
mod sending;
mod sources;
mod tails;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;

use self::sources::Sources;
use crate::device::DeviceLookup;
use crate::device::{CardReach, Ctx, GroupRecord, InboundRecord};
use crate::{
    AccountId, AccountKey, ContactCard, ConversationId, DeviceId, GroupError, GroupId, GroupOp,
    GroupState, MAX_CONTROL_OPS, MAX_TEXT_LEN, MegolmInbound, MegolmOutbound, MemberStatus,
    MessageId, OpSet, ReceiptKind, Role, SessionId, Wire,
};

pub use effects::{GroupAfter, GroupEffect, GroupNotice, GroupWrite, Severity};
pub use epochs::MAX_EPOCH_KEYS;
pub use receive::Acceptance;
pub use resend::RESEND_AFTER_MS;

/// Groups one device may be in.
pub const MAX_GROUPS: usize = 1024;
/// Encoded ops per control message at most (under the padded payload's
/// 64 KiB).
const MAX_CONTROL_BYTES: usize = 48 * 1024;
/// Group members dialled directly per group (beyond the relays), so small
/// groups form a mesh without relays and large ones do not open a
/// connection per member.
const DIRECT_DIAL_MEMBERS: usize = 8;
/// Ops whose parents are missing (or announced heads we lack) this long
/// make us ask a member over Olm: first for what our heads lack, then
/// (`SyncRequest`) for every op. The ops are usually on their way on the
/// channel; what the channel lost in a burst of joins, this recovers.
pub const ASK_AFTER_MS: u64 = 3_000;
/// Each member gets an answer to its asks at most once per this window.
pub const SYNC_AFTER_MS: u64 = 10_000;
/// A message under a session we hold no key for waits this long for the
/// key before it is validated `Ignore` (not forwarded). Under gossipsub's
/// message cache span (5 heartbeats of 500 ms), after which it could not
/// be forwarded anyway.
pub const VALIDATION_WAIT_MS: u64 = 2_000;
/// Messages held unvalidated, over all groups.
const MAX_AWAITING: usize = 4096;
/// An invitation's op set may come in several control messages, ours last:
/// ops of a group we are not (yet) in are held this long, at most this many
/// bytes over all groups, until they make us a member.
const UNCLAIMED_FOR_MS: u64 = 600_000;
const MAX_UNCLAIMED_BYTES: usize = 8 * 1024 * 1024;
/// Room keys from members whose join has not reached us (it travels on the
/// channel, the key over Olm), held this long, at most this many.
const EARLY_ROOM_KEY_MS: u64 = 600_000;
const MAX_EARLY_ROOM_KEYS: usize = 256;
/// (group, account, device, key, claim, since).
type EarlyRoomKey = (GroupId, AccountId, DeviceId, Vec<u8>, Vec<u8>, u64);
/// Topic senders that are not members, remembered to log each once.
const MAX_OUTSIDERS_LOGGED: usize = 256;
/// Receipts are gathered this long (plus up to as much again at random,
/// so members who got the same message do not all answer at once) before
/// they go: a busy group costs each member one Olm message per author per
/// second or two, not one per message.
pub const RECEIPT_BATCH_MS: u64 = 1_000;

/// How groups behave.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// A new Megolm session after this many messages.
    pub rotate_messages: u32,
    /// ... or after this long.
    pub rotate_after_ms: u64,
    /// The member limit of groups we create.
    pub member_limit: u32,
    /// A member lacking ops named in heads it heard announces its own
    /// heads (which tell holders everything it lacks) while it holds at
    /// most this many; past that, it says only which ops it lacks (a
    /// [`ControlKind::Want`](crate::ControlKind::Want)), see
    /// [`LACK_HEADS_MAX`].
    pub lack_heads_max: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            rotate_messages: 100,
            rotate_after_ms: 7 * 24 * 3600 * 1000,
            member_limit: crate::DEFAULT_MEMBER_LIMIT,
            lack_heads_max: LACK_HEADS_MAX,
        }
    }
}

/// The default of [`GroupConfig::lack_heads_max`]: as many heads as a full
/// want names ([`crate::MAX_WANTS`]), so a lacking member's heads cost the
/// group no more than its want could. While a large group forms at once,
/// each join stays a head (it names only the few its author saw), and at
/// 300 members every lacking member's heads named 256 ops (16 KiB) to
/// every member: 870–1,240 such announcements were three quarters of
/// setup's traffic. A smaller group's heads go as before: they also tell
/// holders what the member lacks without knowing of it.
pub const LACK_HEADS_MAX: usize = crate::MAX_WANTS;

/// Who this device is, as groups need it.
#[derive(Clone)]
pub struct GroupSelf {
    pub account: AccountId,
    /// Signs our membership changes; `None` on a device linked without
    /// the account key (it reads and writes in groups, but changes no
    /// membership).
    pub key: Option<AccountKey>,
    pub device: DeviceId,
    /// Encrypts the Megolm pickles at rest.
    pub pickle_key: [u8; 32],
}

impl fmt::Debug for GroupSelf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupSelf")
            .field("account", &self.account)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Where we stand in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Invited,
    Admin,
    Member,
    Left,
    Removed,
}

impl Standing {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Left => "left",
            Self::Removed => "removed",
        }
    }
}

/// What a group command was refused for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupCommandError {
    #[error("no group named {name:?}")]
    UnknownGroup { name: String },
    #[error("{count} groups match {name:?}")]
    AmbiguousGroup { name: String, count: usize },
    #[error("{member:?} is not in group {group:?}")]
    UnknownMember { group: String, member: String },
    #[error("already in {count} groups, the most one device may be in")]
    TooManyGroups { count: usize },
    #[error("removed from group {group:?}")]
    Removed { group: String },
    #[error("not in group {group:?}: {hint}")]
    NotIn { group: String, hint: &'static str },
    #[error("{action} in group {group:?} refused: {reason}")]
    Refused {
        group: String,
        action: &'static str,
        #[source]
        reason: GroupError,
    },
    #[error("the message is {len} bytes, over the limit of {MAX_TEXT_LEN}")]
    TextTooLong { len: usize },
    #[error("the message is empty")]
    EmptyText,
    #[error(
        "this device has not received the publish key of group {group:?} yet (the admin who made its last change sends it; it is asked for again every 10 s): try again shortly"
    )]
    NoPublishKey { group: String },
    #[error(
        "this device does not hold the account key, which signs group changes: make the change on the device that holds it (or link this one again with `hush device link --with-account-key`)"
    )]
    NoAccountKey,
    #[error(
        "{group:?} does not list this device for your account yet: its members take messages from it once the device holding the account key has put it there (that device's node must be running); send from another device until then"
    )]
    NotGroupDevice { group: String },
}

/// One group as this device knows it.
pub struct Group<P> {
    id: GroupId,
    ops: OpSet,
    state: GroupState,
    /// The publish keys of the last epochs we hold ([`MAX_EPOCH_KEYS`]).
    keys: Vec<epochs::EpochKey>,
    record: GroupRecord,
    outbound: Option<MegolmOutbound>,
    /// Our next sending session, its key shared ahead (see
    /// `ensure_outbound`).
    next: Option<sending::NextSession>,
    /// Who may hand us messages on the topic: members' devices and their
    /// relays (from the cards the group holds), following the state.
    sources: Sources<P>,
    /// Heads announced and ops owed on the group's channel.
    sync: channel::ChannelSync,
}

impl<P> Group<P> {
    pub fn id(&self) -> GroupId {
        self.id
    }
    pub fn state(&self) -> &GroupState {
        &self.state
    }
    pub fn ops(&self) -> &OpSet {
        &self.ops
    }
    pub fn has_left(&self) -> bool {
        self.record.left
    }
    pub fn conversation(&self) -> ConversationId {
        ConversationId::group(&self.id)
    }

    /// Where `me` stands in the group.
    pub fn standing(&self, me: &AccountId) -> Standing {
        match self.state.members.get(me) {
            Some(m) if m.status == MemberStatus::Invited => Standing::Invited,
            Some(m) if m.role == Role::Admin => Standing::Admin,
            Some(_) => Standing::Member,
            None if self.record.left => Standing::Left,
            None if self.state.removed.contains(me) => Standing::Removed,
            None => Standing::Left,
        }
    }

    /// Ends our sending sessions, the current and the one shared ahead:
    /// our next message starts a new one, its key going to who is in the
    /// group then.
    fn end_sessions(&mut self) {
        self.outbound = None;
        self.next = None;
    }

    fn write_record(&self, pickle_key: &[u8; 32]) -> GroupWrite {
        let mut record = self.record.clone();
        record.outbound = self.outbound.as_ref().map(|o| o.pickle(pickle_key));
        GroupWrite::Record(self.id, record)
    }
}

impl<P> fmt::Debug for Group<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("version", &self.state.version)
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// A member device's Megolm session as we received it.
struct Inbound {
    group: GroupId,
    account: AccountId,
    device: DeviceId,
    session: MegolmInbound,
    /// Its indices this member has not read (kept in memory only).
    gaps: gaps::IndexGaps,
}

/// A group message waiting for its session's key: (digest, group, bytes).
type Waiting = ([u8; 32], GroupId, Vec<u8>);

/// Every group of this device, and what is in flight for them.
pub struct GroupBook<P, A, M> {
    me: GroupSelf,
    config: GroupConfig,
    /// A card's devices and relays in the host's terms.
    reach: fn(&ContactCard) -> CardReach<P, A>,
    groups: HashMap<GroupId, Group<P>>,
    /// Our account has other devices: our new sessions go to them too.
    own_devices: bool,
    by_topic: HashMap<String, GroupId>,
    inbound: HashMap<SessionId, Inbound>,
    /// Receipts to send, per (author, group, kind), and when they are due.
    receipts: HashMap<(AccountId, GroupId, ReceiptKind), Vec<MessageId>>,
    receipts_due_ms: Option<u64>,
    /// Groups with messages missed on the topic: when to ask the relays.
    catch_ups: HashMap<GroupId, gaps::CatchUp>,
    /// Messages read and sent last, for members that missed them; whom we
    /// asked for ours and answered.
    recent: recent::Recent,
    /// Stored messages no peer on the topic took yet: published again on
    /// the tick (with the id of ours that are watched).
    unpublished: VecDeque<(GroupId, String, Vec<u8>, Option<MessageId>)>,
    /// Our messages no member has confirmed yet: published again if none
    /// does.
    unconfirmed: resend::Unconfirmed,
    /// Our messages some joined member has not confirmed yet: handed to it
    /// if nothing else brings them.
    tails: tails::Tails,
    epoch_waits: epochs::EpochWaits,
    /// Messages kept for their key, on disk or on the way there.
    pending: pending::PendingIndex,
    /// When the log last warned of messages whose key is late, and when
    /// we last looked for them (Unix ms).
    late_keys_noted_ms: Option<u64>,
    late_keys_checked_ms: u64,
    /// Pending messages whose batch has not committed yet (a key arriving
    /// now would not find them in the store).
    fresh_pending: HashMap<SessionId, Vec<Waiting>>,
    /// Digests of messages read but not yet committed.
    receiving: HashSet<[u8; 32]>,
    /// Members the user blocked: their group messages are read (so the
    /// mesh goes on) and dropped.
    blocked: HashSet<AccountId>,
    /// Groups holding ops whose parents we lack: since when, whom to ask
    /// if they do not arrive, and how many times we asked.
    missing_since: HashMap<GroupId, (u64, AccountId, u8)>,
    /// When each member last got an answer over Olm to an ask for ops,
    /// by the kind of ask (`true`: for every op) (see [`SYNC_AFTER_MS`]);
    /// entries older than that are dropped.
    synced: HashMap<(GroupId, AccountId, bool), u64>,
    /// Topic messages held unvalidated until their session's key arrives:
    /// session → (message id, the peer it came from, since when).
    awaiting: HashMap<SessionId, Vec<(M, P, u64)>>,
    awaiting_count: usize,
    /// Room keys that came before their member's join: (group, account,
    /// device, key, claim, since).
    early_room_keys: VecDeque<EarlyRoomKey>,
    /// Ops waiting for the invitation of their author (see
    /// [`receive::EARLY_OPS_FOR_MS`]).
    early_ops: VecDeque<receive::EarlyOp>,
    /// Non-members seen sending on a topic (each logged once).
    outsiders: HashSet<(P, GroupId)>,
    /// Verified ops of groups we are not in: since when, the ops, their
    /// encoded size (see [`UNCLAIMED_FOR_MS`]).
    unclaimed: HashMap<GroupId, (u64, Vec<GroupOp>, usize)>,
    effects: VecDeque<GroupEffect<P, M>>,
}

impl<P, A, M> fmt::Debug for GroupBook<P, A, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupBook")
            .field("me", &self.me)
            .field("groups", &self.groups.len())
            .field("inbound", &self.inbound.len())
            .field("pending", &self.pending.len())
            .field("awaiting", &self.awaiting_count)
            .finish_non_exhaustive()
    }
}

/// Splits ops into control messages that fit a payload.
fn chunks(ops: Vec<GroupOp>) -> Vec<Vec<GroupOp>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for op in ops {
        let len = op.to_bytes().len() + 4;
        if !current.is_empty()
            && (bytes + len > MAX_CONTROL_BYTES || current.len() >= MAX_CONTROL_OPS)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += len;
        current.push(op);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + Hash + fmt::Display,
{
    pub fn new(
        me: GroupSelf,
        config: GroupConfig,
        reach: fn(&ContactCard) -> CardReach<P, A>,
    ) -> Self {
        Self {
            me,
            config,
            reach,
            groups: HashMap::new(),
            by_topic: HashMap::new(),
            inbound: HashMap::new(),
            receipts: HashMap::new(),
            receipts_due_ms: None,
            catch_ups: HashMap::new(),
            recent: recent::Recent::default(),
            blocked: HashSet::new(),
            own_devices: false,
            unpublished: VecDeque::new(),
            unconfirmed: resend::Unconfirmed::default(),
            tails: tails::Tails::default(),
            epoch_waits: epochs::EpochWaits::default(),
            pending: pending::PendingIndex::default(),
            late_keys_noted_ms: None,
            late_keys_checked_ms: 0,
            fresh_pending: HashMap::new(),
            receiving: HashSet::new(),
            missing_since: HashMap::new(),
            synced: HashMap::new(),
            awaiting: HashMap::new(),
            early_room_keys: VecDeque::new(),
            early_ops: VecDeque::new(),
            awaiting_count: 0,
            outsiders: HashSet::new(),
            unclaimed: HashMap::new(),
            effects: VecDeque::new(),
        }
    }

    pub fn config(&self) -> GroupConfig {
        self.config
    }

    /// Drops (or takes again) the group messages of `account`.
    /// A device of `account` (ours when it is our account) left its
    /// account's list: our sessions in the groups it is in end, so our next
    /// message there starts a new one that device never gets.
    pub fn device_gone(&mut self, account: &AccountId) {
        let me = self.me.account;
        let ids: Vec<GroupId> = self
            .groups
            .values()
            .filter(|g| *account == me || g.state.members.contains_key(account))
            .map(|g| g.id)
            .collect();
        for id in ids {
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            if g.outbound.is_some() || g.next.is_some() {
                g.end_sessions();
                let write = g.write_record(&self.me.pickle_key);
                self.effects.push_back(GroupEffect::Write(write));
            }
        }
    }

    /// Whether our account has other devices (they get our new sessions).
    pub fn set_own_devices(&mut self, any: bool) {
        self.own_devices = any;
    }

    pub fn set_blocked(&mut self, account: AccountId, blocked: bool) {
        if blocked {
            self.blocked.insert(account);
        } else {
            self.blocked.remove(&account);
        }
    }

    fn account(&self) -> AccountId {
        self.me.account
    }

    /// A stored group: its record and its encoded ops (a corrupt op or an
    /// unreadable session is skipped and reported in the `Err`s).
    pub fn restore_group(
        &mut self,
        id: GroupId,
        record: GroupRecord,
        ops: &[Vec<u8>],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let mut set = OpSet::default();
        for bytes in ops {
            match GroupOp::from_bytes(bytes) {
                Ok(op) => {
                    set.insert(op);
                }
                Err(e) => problems.push(format!("stored group op is corrupt ({e}); skipped")),
            }
        }
        let outbound = record.outbound.as_deref().and_then(|p| {
            MegolmOutbound::restore(p, &self.me.pickle_key)
                .map_err(|e| {
                    problems.push(format!(
                        "stored Megolm session unreadable ({e}); a new one will be made"
                    ));
                })
                .ok()
        });
        self.insert(id, set, record, outbound);
        problems
    }

    /// Keeps (and stores) a member device's inbound session for the group;
    /// its id.
    fn keep_inbound(
        &mut self,
        group: GroupId,
        account: AccountId,
        device: DeviceId,
        session: MegolmInbound,
    ) -> SessionId {
        let session_id = session.id();
        let record = InboundRecord {
            group,
            account,
            device,
            pickle: session.pickle(&self.me.pickle_key),
        };
        self.effects
            .push_back(GroupEffect::Write(GroupWrite::Inbound(session_id, record)));
        let inbound = Inbound {
            group,
            account,
            device,
            session,
            gaps: gaps::IndexGaps::default(),
        };
        self.inbound.insert(session_id, inbound);
        session_id
    }

    /// A stored inbound session.
    pub fn restore_inbound(&mut self, id: SessionId, record: &InboundRecord) -> Result<(), String> {
        let session = MegolmInbound::restore(&record.pickle, &self.me.pickle_key)
            .map_err(|e| format!("stored Megolm inbound session unreadable: {e}"))?;
        self.inbound.insert(
            id,
            Inbound {
                group: record.group,
                account: record.account,
                device: record.device,
                session,
                gaps: gaps::IndexGaps::default(),
            },
        );
        Ok(())
    }

    /// A message the store keeps for its key: its session, digest, group
    /// and when it came (Unix ms).
    pub fn restore_pending(
        &mut self,
        session: SessionId,
        digest: [u8; 32],
        group: GroupId,
        at_ms: u64,
    ) {
        self.pending.insert(at_ms, session, digest, group);
    }

    fn insert(
        &mut self,
        id: GroupId,
        ops: OpSet,
        record: GroupRecord,
        outbound: Option<MegolmOutbound>,
    ) {
        let state = ops.fold(id);
        self.groups.insert(
            id,
            Group {
                id,
                ops,
                sources: Sources::new(&state, self.reach),
                state,
                keys: Vec::new(),
                record,
                outbound,
                next: None,
                sync: channel::ChannelSync::default(),
            },
        );
    }

    fn note(&mut self, id: GroupId, severity: Severity, what: &'static str) {
        self.effects
            .push_back(GroupEffect::Note(id, severity, what));
    }

    /// The next effect of what was handled, in order.
    pub fn poll_effect(&mut self) -> Option<GroupEffect<P, M>> {
        self.effects.pop_front()
    }

    pub fn group(&self, id: &GroupId) -> Option<&Group<P>> {
        self.groups.get(id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group<P>> {
        self.groups.values()
    }

    /// The group whose topic this is.
    pub fn by_topic(&self, topic: &str) -> Option<GroupId> {
        self.by_topic.get(topic).copied()
    }

    /// The groups we are in (not left).
    pub fn joined_groups(&self) -> Vec<GroupId> {
        self.groups
            .values()
            .filter(|g| !g.record.left)
            .map(|g| g.id)
            .collect()
    }

    /// Every account in any group we are in, with the card the group has.
    pub fn peers(&self) -> HashMap<AccountId, std::sync::Arc<ContactCard>> {
        let me = self.account();
        let mut out = HashMap::new();
        for g in self.groups.values().filter(|g| !g.record.left) {
            for (account, m) in &g.state.members {
                if *account != me {
                    out.entry(*account).or_insert_with(|| m.card.clone());
                }
            }
        }
        out
    }

    /// Where to ask `relay` for the history of one of the group's topics
    /// from: the last sequence number read from it.
    pub fn history_cursor(&self, id: &GroupId, topic: &str, relay: &P) -> Option<u64> {
        let k = self
            .groups
            .get(id)?
            .keys
            .iter()
            .find(|k| k.topic == *topic)?;
        let relay = relay.to_string();
        Some(
            k.cursors
                .iter()
                .find(|(r, _)| *r == relay)
                .map_or(0, |(_, c)| *c),
        )
    }

    /// A group by id, name or id prefix (8 characters at least).
    pub fn resolve(&self, name: &str) -> Result<GroupId, GroupCommandError> {
        if let Ok(id) = name.parse::<GroupId>()
            && self.groups.contains_key(&id)
        {
            return Ok(id);
        }
        let matches: Vec<GroupId> = self
            .groups
            .values()
            .filter(|g| {
                g.state.name == name || g.id.to_string().starts_with(name) && name.len() >= 8
            })
            .map(|g| g.id)
            .collect();
        match matches.as_slice() {
            [id] => Ok(*id),
            [] => Err(GroupCommandError::UnknownGroup {
                name: name.to_owned(),
            }),
            many => Err(GroupCommandError::AmbiguousGroup {
                name: name.to_owned(),
                count: many.len(),
            }),
        }
    }

    /// A member of `id` by display name (`name_of`) or account id.
    pub fn resolve_member(
        &self,
        id: &GroupId,
        group: &str,
        member: &str,
        name_of: impl Fn(&AccountId) -> String,
    ) -> Result<AccountId, GroupCommandError> {
        self.groups
            .get(id)
            .and_then(|g| {
                g.state
                    .members
                    .keys()
                    .copied()
                    .find(|a| name_of(a) == member || a.to_string() == member)
            })
            .ok_or_else(|| GroupCommandError::UnknownMember {
                group: group.to_owned(),
                member: member.to_owned(),
            })
    }

    /// Warns, at most once every [`pending::LATE_KEY_NOTED_EVERY_MS`], while
    /// a message of a group we are in has waited [`pending::LATE_KEY_MS`]
    /// or longer for its key. (Those of a group we left or were removed
    /// from wait, unread, until they expire: nothing to warn of.) Looked
    /// for once a minute: they can be thousands.
    fn note_late_keys(&mut self, now_ms: u64) {
        let noted = self
            .late_keys_noted_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < pending::LATE_KEY_NOTED_EVERY_MS);
        if noted || now_ms.saturating_sub(self.late_keys_checked_ms) < 60_000 {
            return;
        }
        self.late_keys_checked_ms = now_ms;
        let me = self.me.account;
        let cutoff = now_ms.saturating_sub(pending::LATE_KEY_MS);
        let late = self.pending.waiting_since(cutoff).find(|group| {
            self.groups
                .get(group)
                .is_some_and(|g| matches!(g.standing(&me), Standing::Member | Standing::Admin))
        });
        if let Some(group) = late {
            self.late_keys_noted_ms = Some(now_ms);
            self.note(
                group,
                Severity::Warn,
                "group messages have waited minutes for their session's key; they open when it \
                 arrives (the sender's device may be offline, or the key lost on its way)",
            );
        }
    }

    /// A pending message's batch finished: the store answers for it.
    pub fn pending_stored(&mut self, session: SessionId, digest: [u8; 32]) {
        if let Some(list) = self.fresh_pending.get_mut(&session) {
            list.retain(|(d, _, _)| *d != digest);
            if list.is_empty() {
                self.fresh_pending.remove(&session);
            }
        }
    }

    /// A read message's batch finished: the store answers for it.
    pub fn settled(&mut self, digest: &[u8; 32]) {
        self.receiving.remove(digest);
    }

    /// What is due: ask for missing ops, publish what waited, send
    /// receipts gathered, stop holding topic messages whose key is late.
    pub fn handle_tick(&mut self, ctx: &mut Ctx<'_>) {
        self.expire_early_ops(ctx.now.mono_ms);
        for (session, digest) in self.pending.expire(ctx.now.unix_ms) {
            if let Some(list) = self.fresh_pending.get_mut(&session) {
                list.retain(|(d, _, _)| *d != digest);
            }
            self.effects
                .push_back(GroupEffect::Write(GroupWrite::DropPending(session, digest)));
        }
        self.note_late_keys(ctx.now.unix_ms);
        let now = ctx.now.mono_ms;
        let mut due: Vec<(GroupId, AccountId, u8)> = self
            .missing_since
            .iter()
            .filter(|(_, (at, _, asked))| now.saturating_sub(*at) >= channel::ask_wait(*asked))
            .map(|(id, (_, from, asked))| (*id, *from, *asked))
            .collect();
        due.sort();
        for (id, from, asked) in due {
            let still = self
                .groups
                .get(&id)
                .is_some_and(|g| g.ops.ops().any(|op| !g.ops.has_parents(op)));
            if still {
                self.missing_since
                    .insert(id, (now, from, asked.saturating_add(1)));
                self.ask_for_ops(ctx, id, from, asked);
            } else {
                self.missing_since.remove(&id);
            }
        }
        self.publish_again(now);
        self.hand_tails(now);
        self.ask_for_missing_keys(ctx);
        self.channel_tick(ctx);
        if self.receipts_due_ms.is_some_and(|due| now >= due) {
            self.flush_receipts(ctx);
        }
        self.catch_up_tick(ctx);
        if self.awaiting_count > 0 {
            self.settle_awaiting(now, None);
        }
    }
}

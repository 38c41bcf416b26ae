//! Groups: membership ops over Olm, Megolm messages over gossipsub, history
//! from the home relays.
//!
//! ```text
//!  create/invite/join/remove/leave/promote
//!     └─ sign a GroupOp ─▶ fold ─▶ Olm (outbox) ─▶ every member's devices
//!  send ─▶ Megolm (our outbound session; new one after a membership change,
//!          N messages or T time, its key to every joined device over Olm)
//!        ─▶ store ─▶ commit ─▶ gossipsub publish on the group's topic
//!  topic / relay history ─▶ validate ─▶ Megolm decrypt ─▶ store ─▶ receipt
//!                                         └─ no key yet: kept as pending
//! ```
//!
//! What arrives on a topic is forwarded (validated `Accept`) only when it
//! came from a member's device or a member's relay and we could read it.
//! A message under a session whose key has not arrived yet is held
//! unvalidated for [`VALIDATION_WAIT`]: accepted if the key lands in time,
//! ignored otherwise (a non-member's session key never lands).
//!
//! Members who are not our contacts are "group peers": we know their card
//! from the op that invited them, accept their Olm envelopes (group control
//! only) and hand them one-time keys, exactly as for contacts.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use hush_protocol::{
    AccountId, Action, Body, ContactCard, ControlKind, ConversationId, DeviceId, GroupControl,
    GroupError, GroupId, GroupMessage, GroupOp, GroupState, HistoryRequest, HistoryResponse,
    MAX_CONTROL_OPS, MAX_GROUP_OPS, MAX_HISTORY_ITEMS, MAX_RECEIPT_IDS, MAX_TEXT_LEN,
    MegolmInbound, MegolmOutbound, MemberStatus, MessageId, OpSet, Payload, ReceiptKind, Role,
    Wire,
};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::{Multiaddr, PeerId};

use super::{After, EventLoop};
use crate::error::NodeError;
use crate::network;
use crate::node::{Reply, now_ms};
use crate::records::{
    ContactRecord, GroupRecord, InboundRecord, MessageRecord, OutboxKind, PendingRecord, Status,
};
use crate::store::{Op, Store};
use crate::view::{
    Event, GroupMembersView, GroupMessageView, GroupView, MemberView, MessageView, SendReceipt,
};

/// Groups one device may be in.
pub const MAX_GROUPS: usize = 1024;
/// Group messages kept waiting for their key, over all groups.
const MAX_PENDING: u64 = 10_000;
/// Published messages waiting for a peer on the topic, over all groups.
const MAX_UNPUBLISHED: usize = 4096;
/// Encoded ops per control message at most (under the padded payload's
/// 64 KiB).
const MAX_CONTROL_BYTES: usize = 48 * 1024;
/// Group members dialled directly per group (beyond the relays), so small
/// groups form a mesh without relays and large ones do not open a
/// connection per member.
const DIRECT_DIAL_MEMBERS: usize = 8;

/// Ops whose parents are missing this long trigger a `SyncRequest`.
const SYNC_AFTER: Duration = Duration::from_secs(10);
/// A message under a session we hold no key for waits this long for the
/// key before it is validated `Ignore` (not forwarded). Under gossipsub's
/// message cache span (5 heartbeats of 500 ms), after which it could not
/// be forwarded anyway.
const VALIDATION_WAIT: Duration = Duration::from_secs(2);
/// Messages held unvalidated, over all groups.
const MAX_AWAITING: usize = 4096;
/// An invitation's op set may come in several control messages, ours last:
/// ops of a group we are not (yet) in are held this long, at most this many
/// bytes over all groups, until they make us a member.
const UNCLAIMED_FOR: Duration = Duration::from_secs(600);
const MAX_UNCLAIMED_BYTES: usize = 8 * 1024 * 1024;
/// Topic senders that are not members, remembered to log each once.
const MAX_OUTSIDERS_LOGGED: usize = 256;
/// Receipts are gathered this long (plus up to as much again at random,
/// so members who got the same message do not all answer at once) before
/// they go: a busy group costs each member one Olm message per author per
/// second or two, not one per message.
const RECEIPT_BATCH: Duration = Duration::from_secs(1);

/// How groups behave, from [`crate::NodeConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupConfig {
    /// A new Megolm session after this many messages.
    pub rotate_messages: u32,
    /// ... or after this long.
    pub rotate_after: Duration,
    /// The member limit of groups we create.
    pub member_limit: u32,
}

/// What the node's group commands ask of the loop.
#[derive(Debug)]
pub(crate) enum GroupCommand {
    Create {
        name: String,
        reply: Reply<GroupView>,
    },
    Invite {
        group: String,
        contact: String,
        admin: bool,
        reply: Reply<GroupView>,
    },
    Join {
        group: String,
        reply: Reply<GroupView>,
    },
    Leave {
        group: String,
        reply: Reply<GroupView>,
    },
    Remove {
        group: String,
        member: String,
        reply: Reply<GroupView>,
    },
    Promote {
        group: String,
        member: String,
        reply: Reply<GroupView>,
    },
    Send {
        group: String,
        text: String,
        reply: Reply<SendReceipt>,
    },
    List {
        reply: Reply<Vec<GroupView>>,
    },
    Members {
        group: String,
        reply: Reply<GroupMembersView>,
    },
    History {
        group: String,
        before: Option<MessageId>,
        limit: usize,
        reply: Reply<Vec<GroupMessageView>>,
    },
    MarkRead {
        group: String,
        reply: Reply<usize>,
    },
}

pub(super) struct Group {
    id: GroupId,
    ops: OpSet,
    pub(super) state: GroupState,
    topic: IdentTopic,
    record: GroupRecord,
    outbound: Option<MegolmOutbound>,
    /// Who may hand us messages on the topic: members' devices and their
    /// relays (from the cards the group holds), rebuilt with the state.
    sources: HashSet<PeerId>,
}

impl Group {
    fn set_state(&mut self, state: GroupState) {
        self.sources = topic_sources(&state);
        self.state = state;
    }

    fn conversation(&self) -> ConversationId {
        ConversationId::group(&self.id)
    }

    /// Where we stand in the group.
    fn standing(&self, me: &AccountId) -> &'static str {
        match self.state.members.get(me) {
            Some(m) if m.status == MemberStatus::Invited => "invited",
            Some(m) if m.role == Role::Admin => "admin",
            Some(_) => "member",
            None if self.record.left => "left",
            None if self.state.removed.contains(me) => "removed",
            None => "left",
        }
    }

    fn view(&self, me: &AccountId) -> GroupView {
        GroupView {
            id: self.id.to_string(),
            name: self.state.name.clone(),
            you: self.standing(me).to_owned(),
            members: self.state.joined().count(),
            invited: self.state.members.len() - self.state.joined().count(),
            member_limit: self.state.member_limit,
            version: self.state.version,
        }
    }

    fn store_record(&self, pickle_key: &[u8; 32]) -> Op {
        let mut record = self.record.clone();
        record.outbound = self.outbound.as_ref().map(|o| o.pickle(pickle_key));
        Op::PutGroup(self.id, record)
    }
}

/// Members' devices and relays, from the cards the group holds.
fn topic_sources(state: &GroupState) -> HashSet<PeerId> {
    state
        .members
        .values()
        .flat_map(|m| {
            let devices = m
                .card
                .device_list
                .devices
                .iter()
                .filter_map(|d| network::peer_id(&d.device_id));
            let relays = m
                .card
                .relays
                .iter()
                .filter_map(|r| r.parse::<Multiaddr>().ok())
                .filter_map(|a| network::peer_in(&a));
            devices.chain(relays).collect::<Vec<_>>()
        })
        .collect()
}

/// A group message waiting for its session's key: (digest, group, bytes).
type Waiting = ([u8; 32], GroupId, Vec<u8>);

struct Inbound {
    group: GroupId,
    account: AccountId,
    device: DeviceId,
    session: MegolmInbound,
}

/// Everything the loop knows about groups.
#[derive(Default)]
pub(super) struct GroupBook {
    config: Option<GroupConfig>,
    pub(super) groups: HashMap<GroupId, Group>,
    by_topic: HashMap<TopicHash, GroupId>,
    inbound: HashMap<[u8; 32], Inbound>,
    /// Receipts to send, per (author, group, kind), and when they are due.
    receipts: HashMap<(AccountId, GroupId, u8), Vec<MessageId>>,
    receipts_due: Option<Instant>,
    /// Stored messages no peer on the topic took yet: published again on
    /// the tick.
    unpublished: VecDeque<(GroupId, Vec<u8>)>,
    history_requests: HashMap<OutboundRequestId, (PeerId, GroupId)>,
    pending: u64,
    /// Pending messages whose batch has not committed yet (a key arriving
    /// now would not find them in the store): session → (digest, group,
    /// bytes).
    fresh_pending: HashMap<[u8; 32], Vec<Waiting>>,
    /// Groups holding ops whose parents we lack: since when, and whom to
    /// ask for every op if they do not arrive.
    missing_since: HashMap<GroupId, (Instant, AccountId)>,
    /// Topic messages held unvalidated until their session's key arrives:
    /// session → (gossipsub id, the peer it came from, since when).
    awaiting: HashMap<[u8; 32], Vec<(gossipsub::MessageId, PeerId, Instant)>>,
    awaiting_count: usize,
    /// Non-members seen sending on a topic (each logged once).
    outsiders: HashSet<(PeerId, GroupId)>,
    /// Verified ops of groups we are not in: since when, the ops, their
    /// encoded size (see [`UNCLAIMED_FOR`]).
    unclaimed: HashMap<GroupId, (Instant, Vec<GroupOp>, usize)>,
}

/// What became of one group message.
enum Received {
    /// Read and stored, or already had.
    Read,
    /// Kept until its session's key arrives.
    Waiting([u8; 32]),
    /// Not readable, not wanted.
    Refused,
}

impl GroupBook {
    /// Holds `ops` of a group we are not in, within [`MAX_UNCLAIMED_BYTES`]
    /// (the oldest group's ops go first).
    fn hold_unclaimed(&mut self, id: GroupId, ops: Vec<GroupOp>) {
        let now = Instant::now();
        self.unclaimed
            .retain(|_, (since, _, _)| now.duration_since(*since) < UNCLAIMED_FOR);
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

    fn queue_receipt(
        &mut self,
        author: AccountId,
        group: GroupId,
        kind: ReceiptKind,
        message: MessageId,
    ) {
        self.receipts
            .entry((author, group, kind as u8))
            .or_default()
            .push(message);
        self.receipts_due.get_or_insert_with(|| {
            Instant::now() + RECEIPT_BATCH.mul_f64(1.0 + rand::random::<f64>())
        });
    }

    pub(super) fn load(store: &Store, pickle_key: &[u8; 32], config: GroupConfig) -> Self {
        let mut book = Self {
            config: Some(config),
            pending: store.pending_count().unwrap_or(0),
            ..Self::default()
        };
        match store.groups() {
            Ok(groups) => {
                for (id, record, ops) in groups {
                    let mut set = OpSet::default();
                    for bytes in ops {
                        match GroupOp::from_bytes(&bytes) {
                            Ok(op) => {
                                set.insert(op);
                            }
                            Err(e) => {
                                tracing::error!(group = %id, error = %e, "stored group op is corrupt; skipping it")
                            }
                        }
                    }
                    let outbound = record.outbound.as_deref().and_then(|p| {
                        MegolmOutbound::restore(p, pickle_key)
                            .map_err(|e| tracing::error!(group = %id, error = %e, "stored Megolm session unreadable; a new one will be made"))
                            .ok()
                    });
                    book.insert(id, set, record, outbound);
                }
            }
            Err(e) => tracing::error!(error = %e, "could not load groups"),
        }
        match store.inbound_sessions() {
            Ok(list) => {
                for (id, r) in list {
                    match MegolmInbound::restore(&r.pickle, pickle_key) {
                        Ok(session) => {
                            book.inbound.insert(
                                id,
                                Inbound {
                                    group: r.group,
                                    account: r.account,
                                    device: r.device,
                                    session,
                                },
                            );
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "stored Megolm inbound session unreadable")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "could not load Megolm sessions"),
        }
        book
    }

    pub(super) fn config(&self) -> GroupConfig {
        self.config.unwrap_or(GroupConfig {
            rotate_messages: 100,
            rotate_after: Duration::from_secs(7 * 24 * 3600),
            member_limit: hush_protocol::DEFAULT_MEMBER_LIMIT,
        })
    }

    fn insert(
        &mut self,
        id: GroupId,
        ops: OpSet,
        record: GroupRecord,
        outbound: Option<MegolmOutbound>,
    ) {
        let state = ops.fold(id);
        let topic = IdentTopic::new(id.topic());
        self.by_topic.insert(topic.hash(), id);
        self.groups.insert(
            id,
            Group {
                id,
                ops,
                sources: topic_sources(&state),
                state,
                topic,
                record,
                outbound,
            },
        );
    }

    /// Every account in any group we are in, with the card the group has.
    pub(super) fn peers(&self, me: &AccountId) -> HashMap<AccountId, ContactCard> {
        let mut out = HashMap::new();
        for g in self.groups.values().filter(|g| !g.record.left) {
            for (account, m) in &g.state.members {
                if account != me {
                    out.entry(*account).or_insert_with(|| m.card.clone());
                }
            }
        }
        out
    }

    pub(super) fn topics(&self) -> Vec<IdentTopic> {
        self.groups
            .values()
            .filter(|g| !g.record.left)
            .map(|g| g.topic.clone())
            .collect()
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

fn refused(group: &str, action: &'static str, reason: GroupError) -> NodeError {
    NodeError::GroupRefused {
        group: group.to_owned(),
        action,
        reason,
    }
}

impl EventLoop {
    /// Subscribes to our groups' topics and registers group peers; at start.
    pub(super) fn groups_start(&mut self) {
        for topic in self.groups.topics() {
            if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&topic) {
                tracing::warn!(error = ?e, "could not subscribe to a group topic");
            }
        }
        self.sync_peers();
    }

    /// Makes the devices of every group member known to the loop (for Olm).
    pub(super) fn sync_peers(&mut self) {
        let peers = self.groups.peers(&self.me.account);
        let gone: Vec<AccountId> = self
            .contacts
            .peer_accounts()
            .into_iter()
            .filter(|a| !peers.contains_key(a))
            .collect();
        for account in gone {
            self.contacts.remove_peer(&account);
        }
        for (account, card) in peers {
            if self.contacts.is_contact(&account) || self.contacts.is_peer(&account) {
                continue;
            }
            let record = ContactRecord {
                name: card.name.clone(),
                card: card.to_string(),
                account,
                send_receipts: false,
                added_at_ms: now_ms(),
            };
            let reach = super::card_reach(&card);
            self.contacts.insert_peer(record, card, reach);
        }
    }

    /// A member's display name: our contact name, or the card's, or the id.
    fn member_name(&self, account: &AccountId) -> String {
        if *account == self.me.account {
            return self.me.name.clone();
        }
        if let Some(name) = self.contacts.name_of(account) {
            return name.clone();
        }
        if let Some(p) = self.contacts.peer(account) {
            return p.card.name.clone();
        }
        account.to_string()[..12].to_owned()
    }

    fn resolve_group(&self, name: &str) -> Result<GroupId, NodeError> {
        if let Ok(id) = name.parse::<GroupId>()
            && self.groups.groups.contains_key(&id)
        {
            return Ok(id);
        }
        let matches: Vec<GroupId> = self
            .groups
            .groups
            .values()
            .filter(|g| {
                g.state.name == name || g.id.to_string().starts_with(name) && name.len() >= 8
            })
            .map(|g| g.id)
            .collect();
        match matches.as_slice() {
            [id] => Ok(*id),
            [] => Err(NodeError::UnknownGroup {
                name: name.to_owned(),
            }),
            many => Err(NodeError::AmbiguousGroup {
                name: name.to_owned(),
                count: many.len(),
            }),
        }
    }

    fn resolve_member(
        &self,
        id: &GroupId,
        group: &str,
        member: &str,
    ) -> Result<AccountId, NodeError> {
        let state = &self.groups.groups[id].state;
        let found = state
            .members
            .keys()
            .copied()
            .find(|a| self.member_name(a) == member || a.to_string() == member);
        found.ok_or_else(|| NodeError::UnknownMember {
            group: group.to_owned(),
            member: member.to_owned(),
        })
    }

    fn own_card(&self) -> ContactCard {
        let addresses: Vec<String> = self
            .listen_addresses
            .iter()
            .map(|a| a.to_string())
            .collect();
        self.me.card(&addresses)
    }

    pub(super) fn on_group_command(&mut self, command: GroupCommand) {
        match command {
            GroupCommand::Create { name, reply } => {
                let result = self.create_group(name);
                self.reply_group(reply, result);
            }
            GroupCommand::Invite {
                group,
                contact,
                admin,
                reply,
            } => {
                let result = self.invite(&group, &contact, admin);
                self.reply_group(reply, result);
            }
            GroupCommand::Join { group, reply } => {
                let result = self.join(&group);
                self.reply_group(reply, result);
            }
            GroupCommand::Leave { group, reply } => {
                let result = self.leave(&group);
                self.reply_group(reply, result);
            }
            GroupCommand::Remove {
                group,
                member,
                reply,
            } => {
                let result = self.member_change(&group, &member, "removing a member", |account| {
                    Action::Remove { account }
                });
                self.reply_group(reply, result);
            }
            GroupCommand::Promote {
                group,
                member,
                reply,
            } => {
                let result = self.member_change(&group, &member, "promoting a member", |account| {
                    Action::Promote { account }
                });
                self.reply_group(reply, result);
            }
            GroupCommand::Send { group, text, reply } => match self.group_send(&group, text) {
                Ok(receipt) => self.batch.after.push(After::ReplySend(reply, receipt)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            GroupCommand::List { reply } => {
                let mut list: Vec<GroupView> = self
                    .groups
                    .groups
                    .values()
                    .map(|g| g.view(&self.me.account))
                    .collect();
                list.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
                let _ = reply.send(Ok(list));
            }
            GroupCommand::Members { group, reply } => {
                let _ = reply.send(self.members(&group));
            }
            GroupCommand::History {
                group,
                before,
                limit,
                reply,
            } => {
                let _ = reply.send(self.group_history(&group, before, limit));
            }
            GroupCommand::MarkRead { group, reply } => self.group_mark_read(&group, reply),
        }
    }

    /// An admin's change that names a member (remove, promote).
    fn member_change(
        &mut self,
        group: &str,
        member: &str,
        what: &'static str,
        action: impl FnOnce(AccountId) -> Action,
    ) -> Result<GroupId, NodeError> {
        let id = self.resolve_group(group)?;
        let account = self.resolve_member(&id, group, member)?;
        self.change(id, group, what, action(account))
    }

    /// Answers once the batch holding the change committed.
    fn reply_group(&mut self, reply: Reply<GroupView>, result: Result<GroupId, NodeError>) {
        match result {
            Ok(id) => {
                let view = self.groups.groups[&id].view(&self.me.account);
                self.batch.after.push(After::ReplyGroup(reply, view));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn create_group(&mut self, name: String) -> Result<GroupId, NodeError> {
        crate::identity::validate_name(&name)?;
        if self.groups.groups.len() >= MAX_GROUPS {
            return Err(NodeError::TooManyGroups {
                count: self.groups.groups.len(),
            });
        }
        let nonce: [u8; 16] = rand::random();
        let id = GroupId::derive(&self.me.account, &nonce);
        let at = self.next_id();
        let op = GroupOp::sign(
            &self.me.account_key,
            id,
            at,
            Vec::new(),
            Action::Create {
                nonce,
                name,
                member_limit: self.groups.config().member_limit,
                card: self.own_card(),
            },
        );
        self.groups
            .insert(id, OpSet::default(), GroupRecord::default(), None);
        self.apply_ops(id, vec![op], None);
        self.subscribe_group(id);
        Ok(id)
    }

    fn invite(&mut self, group: &str, contact: &str, admin: bool) -> Result<GroupId, NodeError> {
        let id = self.resolve_group(group)?;
        let card = self
            .contacts
            .contact(contact)
            .map(|c| c.card.clone())
            .ok_or_else(|| NodeError::InviteUnknownContact {
                name: contact.to_owned(),
            })?;
        let role = if admin { Role::Admin } else { Role::Member };
        self.change(id, group, "inviting", Action::Invite { role, card })
    }

    fn join(&mut self, group: &str) -> Result<GroupId, NodeError> {
        let id = self.resolve_group(group)?;
        let g = &self.groups.groups[&id];
        if g.standing(&self.me.account) == "removed" {
            return Err(NodeError::RemovedFromGroup {
                group: group.to_owned(),
            });
        }
        let id = self.change(id, group, "joining", Action::Join)?;
        if let Some(g) = self.groups.groups.get_mut(&id) {
            g.record.left = false;
        }
        self.subscribe_group(id);
        Ok(id)
    }

    fn leave(&mut self, group: &str) -> Result<GroupId, NodeError> {
        let id = self.resolve_group(group)?;
        let g = &self.groups.groups[&id];
        if g.state.members.contains_key(&self.me.account) {
            self.change(id, group, "leaving", Action::Leave)?;
        }
        // Removed or left already: forget the topic (history stays).
        if let Some(g) = self.groups.groups.get_mut(&id) {
            g.record.left = true;
            g.outbound = None;
            let topic = g.topic.clone();
            let op = g.store_record(&self.me.pickle_key);
            self.batch.ops.push(op);
            self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
        }
        self.drop_inbound(|i| i.group == id);
        self.sync_peers();
        Ok(id)
    }

    /// Signs our op, applies it and sends it on.
    fn change(
        &mut self,
        id: GroupId,
        group: &str,
        what: &'static str,
        action: Action,
    ) -> Result<GroupId, NodeError> {
        let g = &self.groups.groups[&id];
        if let Err(e) = g.state.check(&self.me.account, &action) {
            return Err(match e {
                GroupError::NotMember => NodeError::NotInGroup {
                    group: group.to_owned(),
                    hint: "you left or were never invited",
                },
                GroupError::NotInvited if g.state.removed.contains(&self.me.account) => {
                    NodeError::RemovedFromGroup {
                        group: group.to_owned(),
                    }
                }
                other => refused(group, what, other),
            });
        }
        if g.ops.len() >= MAX_GROUP_OPS {
            return Err(refused(
                group,
                what,
                GroupError::Full {
                    limit: g.state.member_limit,
                },
            ));
        }
        let parents = g.ops.heads();
        let at = self.next_id();
        let op = GroupOp::sign(&self.me.account_key, id, at, parents, action);
        self.apply_ops(id, vec![op], None);
        Ok(id)
    }

    /// Adds verified ops (ours, or from `from`), stores them, refolds, and
    /// does what the new state asks: tell members, rotate, emit events.
    fn apply_ops(&mut self, id: GroupId, ops: Vec<GroupOp>, from: Option<AccountId>) {
        let me = self.me.account;
        let Some(g) = self.groups.groups.get_mut(&id) else {
            return;
        };
        let before = g.state.clone();
        let mut new = Vec::new();
        for op in ops {
            if g.ops.len() >= MAX_GROUP_OPS {
                tracing::warn!(group = %id, "group holds the most ops it may; ignoring more");
                break;
            }
            let bytes = op.to_bytes();
            let hash = op.hash();
            if g.ops.insert(op.clone()) {
                self.batch
                    .ops
                    .push(Op::PutMembershipChange(id, hash, bytes));
                new.push(op);
            }
        }
        if new.is_empty() {
            return;
        }
        let state = g.ops.fold(id);
        g.set_state(state);
        let after = g.state.clone();
        let missing_parents = new.iter().any(|op| !g.ops.has_parents(op));
        // Ops of someone else that its author made without knowing of ours:
        // we make sure our invitees get it (its author cannot send it to
        // them), and an invitee gets our ops its inviter did not know.
        // Everything else reaches every member from its author.
        let mut forward: Vec<(AccountId, Vec<GroupOp>)> = Vec::new();
        if from.is_some() {
            for op in new.iter().filter(|op| op.author != me) {
                let unseen: Vec<GroupOp> = g
                    .ops
                    .unseen_by(op)
                    .into_iter()
                    .filter(|o| o.author == me)
                    .cloned()
                    .collect();
                if unseen.is_empty() {
                    continue;
                }
                for o in &unseen {
                    if let Action::Invite { card, .. } = &o.action
                        && card.account() != op.author
                    {
                        forward.push((card.account(), vec![op.clone()]));
                    }
                }
                if let Action::Invite { card, .. } = &op.action
                    && card.account() != me
                {
                    forward.push((card.account(), unseen));
                }
            }
        }
        let name = after.name.clone();
        let joined_before: BTreeSet<AccountId> = before.joined().map(|(a, _)| *a).collect();
        let joined_after: BTreeSet<AccountId> = after.joined().map(|(a, _)| *a).collect();
        if joined_before != joined_after {
            // A new session before our next message.
            g.outbound = None;
        }
        let record_op = g.store_record(&self.me.pickle_key);
        self.batch.ops.push(record_op);
        // New members' devices must be known before anything goes to them.
        self.sync_peers();

        if from.is_none() {
            // Our own op: to every member, the full set to whoever is new.
            let mut to: BTreeSet<AccountId> = after.members.keys().copied().collect();
            to.extend(before.members.keys().copied());
            to.remove(&me);
            for account in to {
                let newcomer =
                    !before.members.contains_key(&account) && after.members.contains_key(&account);
                let ops = match self.groups.groups.get(&id) {
                    Some(g) if newcomer => g.ops.ops().cloned().collect(),
                    _ => new.clone(),
                };
                self.send_ops(&account, id, ops);
            }
        }
        for (account, ops) in forward {
            self.send_ops(&account, id, ops);
        }
        if missing_parents && let Some(from) = from {
            // Usually the missing ops are on their way (from their own
            // authors): ask for everything only if they do not come.
            self.groups
                .missing_since
                .entry(id)
                .or_insert((Instant::now(), from));
        }

        // Members who left or were removed: their sessions no longer count.
        let gone: Vec<AccountId> = joined_before.difference(&joined_after).copied().collect();
        if !gone.is_empty() {
            self.drop_inbound(|i| i.group == id && gone.contains(&i.account));
        }
        let group_id = id.to_string();
        let was = before.members.get(&me).map(|m| m.status);
        let now = after.members.get(&me).map(|m| m.status);
        if was.is_none() && now == Some(MemberStatus::Invited) {
            let from = after
                .members
                .get(&me)
                .map(|m| m.invited_by)
                .map(|a| self.member_name(&a))
                .unwrap_or_default();
            tracing::info!(group = %name, %from, "invited into a group");
            self.batch.after.push(After::Emit(Event::GroupInvite {
                group: name.clone(),
                group_id: group_id.clone(),
                from,
            }));
            self.subscribe_group(id);
        }
        if after.removed.contains(&me) && !before.removed.contains(&me) {
            tracing::info!(group = %name, "removed from the group");
        }
        if before.digest != after.digest {
            let you = self.groups.groups[&id].standing(&me).to_owned();
            self.batch.after.push(After::Emit(Event::GroupChanged {
                group: name,
                group_id,
                version: after.version,
                you,
            }));
        }
    }

    fn drop_inbound(&mut self, mut gone: impl FnMut(&Inbound) -> bool) {
        let ids: Vec<[u8; 32]> = self
            .groups
            .inbound
            .iter()
            .filter(|(_, i)| gone(i))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.groups.inbound.remove(&id);
            self.batch.ops.push(Op::DeleteInbound(id));
        }
    }

    fn send_ops(&mut self, account: &AccountId, id: GroupId, ops: Vec<GroupOp>) {
        for chunk in chunks(ops) {
            self.send_group_control(account, id, ControlKind::Ops(chunk));
        }
    }

    /// Queues a control message to every device of `account` over Olm.
    fn send_group_control(&mut self, account: &AccountId, group: GroupId, kind: ControlKind) {
        let payload = Payload {
            sender_account: self.me.account,
            sender_device: self.me.device_id(),
            id: self.next_id(),
            body: Body::Group(GroupControl { group, kind }),
        };
        if let Err(e) = self.enqueue(account, OutboxKind::Group, &payload) {
            tracing::warn!(error = %e, "could not queue a group control message");
        }
    }

    /// Subscribes to the topic, asks the home relays to keep its history
    /// and dials a few members.
    fn subscribe_group(&mut self, id: GroupId) {
        let Some(g) = self.groups.groups.get(&id) else {
            return;
        };
        let topic = g.topic.clone();
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&topic) {
            tracing::warn!(error = ?e, "could not subscribe to the group's topic");
        }
        let relays: Vec<PeerId> = self.home.iter().map(|r| r.peer).collect();
        for relay in relays {
            self.keep_history(relay, id);
        }
        self.dial_members(id);
    }

    fn dial_members(&mut self, id: GroupId) {
        let Some(g) = self.groups.groups.get(&id) else {
            return;
        };
        let devices: Vec<DeviceId> = g
            .state
            .joined()
            .filter(|(a, _)| **a != self.me.account)
            .flat_map(|(_, m)| m.card.device_list.devices.iter().map(|d| d.device_id))
            .take(DIRECT_DIAL_MEMBERS)
            .collect();
        for device in devices {
            let Some(peer) = self.contacts.peer_of(&device) else {
                continue;
            };
            if self.swarm.is_connected(&peer) {
                continue;
            }
            let addresses = self.dial_addresses(&device);
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(addresses)
                .build();
            let _ = self.swarm.dial(opts);
        }
    }

    /// A home relay connected: make sure it keeps our groups' history, and
    /// catch up from it.
    pub(super) fn groups_relay_connected(&mut self, relay: PeerId) {
        let ids: Vec<GroupId> = self
            .groups
            .groups
            .values()
            .filter(|g| !g.record.left)
            .map(|g| g.id)
            .collect();
        for id in ids {
            self.keep_history(relay, id);
        }
    }

    fn keep_history(&mut self, relay: PeerId, id: GroupId) {
        let Some(g) = self.groups.groups.get(&id) else {
            return;
        };
        let topic = g.topic.to_string();
        let after = g
            .record
            .cursors
            .iter()
            .find(|(r, _)| *r == relay.to_string())
            .map_or(0, |(_, c)| *c);
        let history = &mut self.swarm.behaviour_mut().history;
        history.send_request(
            &relay,
            HistoryRequest::Keep {
                topic: topic.clone(),
            }
            .to_bytes(),
        );
        let request = history.send_request(
            &relay,
            HistoryRequest::Fetch {
                topic,
                after,
                limit: MAX_HISTORY_ITEMS as u16,
            }
            .to_bytes(),
        );
        self.groups.history_requests.insert(request, (relay, id));
    }

    pub(super) fn on_history(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some((relay, id)) = self.groups.history_requests.remove(&request_id) else {
                    return;
                };
                match HistoryResponse::from_bytes(&response) {
                    Ok(HistoryResponse::Page { items, more }) => {
                        let mut last = None;
                        for (seq, bytes) in items {
                            self.on_group_message(id, &bytes);
                            last = Some(seq);
                        }
                        if let Some(seq) = last
                            && let Some(g) = self.groups.groups.get_mut(&id)
                        {
                            let key = relay.to_string();
                            g.record.cursors.retain(|(r, _)| *r != key);
                            g.record.cursors.push((key, seq));
                            let op = g.store_record(&self.me.pickle_key);
                            self.batch.ops.push(op);
                        }
                        if more {
                            self.keep_history(relay, id);
                        }
                    }
                    Ok(HistoryResponse::Refused { reason }) => {
                        tracing::warn!(%relay, %reason, "home relay refused to keep group history");
                    }
                    Ok(HistoryResponse::Keeping) => {}
                    Err(e) => tracing::debug!(%relay, error = %e, "malformed history response"),
                }
            }
            E::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((relay, _)) = self.groups.history_requests.remove(&request_id) {
                    tracing::debug!(%relay, error = %error, "group history request failed");
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let known = self.groups.by_topic.get(&message.topic).copied();
        let acceptance = match (known, GroupMessage::from_bytes(&message.data)) {
            (_, Err(e)) => {
                tracing::debug!(peer = %propagation_source, error = %e, "malformed group message rejected");
                MessageAcceptance::Reject
            }
            (None, Ok(_)) => MessageAcceptance::Ignore,
            (Some(id), Ok(_)) if !self.is_topic_source(id, &propagation_source) => {
                if self.groups.outsiders.len() >= MAX_OUTSIDERS_LOGGED {
                    self.groups.outsiders.clear();
                }
                if self.groups.outsiders.insert((propagation_source, id)) {
                    tracing::info!(group = %id, peer = %propagation_source, "group message from a peer that is neither a member's device nor a member's relay; ignored");
                }
                MessageAcceptance::Ignore
            }
            (Some(id), Ok(_)) => match self.on_group_message(id, &message.data) {
                Received::Read => MessageAcceptance::Accept,
                Received::Refused => MessageAcceptance::Ignore,
                Received::Waiting(session) if self.groups.awaiting_count < MAX_AWAITING => {
                    // Forwarded (or not) once we know whether its key comes.
                    self.groups.awaiting_count += 1;
                    self.groups.awaiting.entry(session).or_default().push((
                        message_id,
                        propagation_source,
                        Instant::now(),
                    ));
                    return;
                }
                Received::Waiting(_) => MessageAcceptance::Ignore,
            },
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
    }

    /// A member's device, a member's relay or one of our home relays.
    fn is_topic_source(&self, id: GroupId, peer: &PeerId) -> bool {
        self.groups
            .groups
            .get(&id)
            .is_some_and(|g| g.sources.contains(peer))
            || self.home.iter().any(|r| r.peer == *peer)
    }

    /// Settles messages held unvalidated: those of `session` (its key
    /// arrived) as `Accept`, and those waiting over [`VALIDATION_WAIT`] as
    /// `Ignore`.
    fn settle_awaiting(&mut self, session: Option<[u8; 32]>) {
        let mut settled = Vec::new();
        if let Some(session) = session {
            for (id, peer, _) in self.groups.awaiting.remove(&session).unwrap_or_default() {
                settled.push((id, peer, MessageAcceptance::Accept));
            }
        }
        let now = Instant::now();
        self.groups.awaiting.retain(|_, held| {
            held.retain(|(id, peer, since)| {
                let stale = now.duration_since(*since) >= VALIDATION_WAIT;
                if stale {
                    settled.push((id.clone(), *peer, MessageAcceptance::Ignore));
                }
                !stale
            });
            !held.is_empty()
        });
        self.groups.awaiting_count = self.groups.awaiting_count.saturating_sub(settled.len());
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        for (id, peer, acceptance) in settled {
            gossipsub.report_message_validation_result(&id, &peer, acceptance);
        }
    }

    /// One group message, from the topic or from a relay's history.
    fn on_group_message(&mut self, id: GroupId, bytes: &[u8]) -> Received {
        let Ok(message) = GroupMessage::from_bytes(bytes) else {
            return Received::Refused;
        };
        let digest = GroupMessage::digest(bytes);
        if self.inbox.is_in_progress(&digest) || self.store.seen(&digest).unwrap_or(false) {
            return Received::Read;
        }
        let Some(inbound) = self.groups.inbound.get_mut(&message.session) else {
            return self.keep_pending(id, &message, digest, bytes);
        };
        if inbound.group != id {
            tracing::warn!(group = %id, "group message under another group's session; ignored");
            return Received::Refused;
        }
        let (plaintext, index) = match inbound.session.decrypt(&message.ciphertext) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(group = %id, error = %e, "group message undecryptable");
                return Received::Refused;
            }
        };
        let (account, device) = (inbound.account, inbound.device);
        let payload = match Payload::from_padded(&plaintext) {
            Ok(p) if p.sender_account == account && p.sender_device == device => p,
            _ => {
                tracing::warn!(group = %id, "group message from a session whose owner it does not name; ignored");
                return Received::Refused;
            }
        };
        let Body::Text(text) = payload.body else {
            tracing::debug!(group = %id, "group message with a body other than text; ignored");
            return Received::Refused;
        };
        let conversation = ConversationId::group(&id);
        self.inbox.accepted(digest);
        self.batch.ops.push(Op::PutSeen(digest, now_ms()));
        self.batch.after.push(After::Received(digest));
        if self
            .store
            .message(&conversation, payload.id)
            .ok()
            .flatten()
            .is_some()
        {
            return Received::Read;
        }
        self.clock
            .observe(payload.id, now_ms(), super::MAX_CLOCK_SKEW_MS);
        self.clock_changed = true;
        let record = MessageRecord {
            id: payload.id,
            from: account,
            outgoing: account == self.me.account,
            text,
            status: Status::Delivered,
            sent_at_ms: payload.id.millis(),
            stored_at_ms: now_ms(),
        };
        tracing::debug!(group = %id, index, "group message stored");
        let from = self.member_name(&account);
        let view = MessageView::new(&record, from);
        self.batch.ops.push(Op::PutMessage(conversation, record));
        let name = self
            .groups
            .groups
            .get(&id)
            .map(|g| g.state.name.clone())
            .unwrap_or_default();
        self.batch.after.push(After::Emit(Event::GroupMessage {
            group: name,
            group_id: id.to_string(),
            message: view,
        }));
        if account != self.me.account {
            self.groups
                .queue_receipt(account, id, ReceiptKind::Delivered, payload.id);
        }
        Received::Read
    }

    fn keep_pending(
        &mut self,
        id: GroupId,
        message: &GroupMessage,
        digest: [u8; 32],
        bytes: &[u8],
    ) -> Received {
        let held = self
            .groups
            .fresh_pending
            .get(&message.session)
            .is_some_and(|w| w.iter().any(|(d, _, _)| *d == digest));
        if held {
            return Received::Waiting(message.session);
        }
        tracing::warn!(
            group = %id,
            session = %hex::encode(&message.session[..8]),
            "group message undecryptable: no key for its session (kept until one arrives)"
        );
        if self.groups.pending >= MAX_PENDING {
            return Received::Refused;
        }
        self.groups.pending += 1;
        self.groups
            .fresh_pending
            .entry(message.session)
            .or_default()
            .push((digest, id, bytes.to_vec()));
        self.batch
            .after
            .push(After::PendingStored(message.session, digest));
        self.batch.ops.push(Op::PutPending(
            message.session,
            digest,
            PendingRecord {
                group: id,
                message: bytes.to_vec(),
                received_at_ms: now_ms(),
            },
        ));
        Received::Waiting(message.session)
    }

    /// A group control message over Olm from a verified device of `account`.
    pub(super) fn on_group_control(
        &mut self,
        account: AccountId,
        device: DeviceId,
        control: GroupControl,
    ) {
        let id = control.group;
        match control.kind {
            ControlKind::Ops(ops) => {
                let verified: Vec<GroupOp> = ops
                    .into_iter()
                    .filter(|op| op.group == id)
                    .filter(|op| match op.verify() {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(group = %id, error = %e, "invalid group op ignored");
                            false
                        }
                    })
                    .collect();
                let mut verified = verified;
                if !self.groups.groups.contains_key(&id) {
                    // Only an invitation of us starts a group here. A big
                    // group's ops come in several messages, ours maybe last:
                    // hold the others until they make us a member.
                    let mut probe = OpSet::default();
                    let held = self
                        .groups
                        .unclaimed
                        .remove(&id)
                        .map(|(_, ops, _)| ops)
                        .unwrap_or_default();
                    for op in held.into_iter().chain(verified) {
                        probe.insert(op);
                    }
                    verified = probe.ops().cloned().collect();
                    let state = probe.fold(id);
                    if !state.members.contains_key(&self.me.account) {
                        tracing::debug!(group = %id, ops = verified.len(), "ops of a group we are not in; held in case they are an invitation still arriving");
                        self.groups.hold_unclaimed(id, verified);
                        return;
                    }
                    if self.groups.groups.len() >= MAX_GROUPS {
                        tracing::warn!("invited into more groups than the limit; ignored");
                        return;
                    }
                    self.groups
                        .insert(id, OpSet::default(), GroupRecord::default(), None);
                }
                for op in &verified {
                    self.clock
                        .observe(op.at, now_ms(), super::MAX_CLOCK_SKEW_MS);
                }
                self.apply_ops(id, verified, Some(account));
            }
            ControlKind::SyncRequest => {
                let Some(g) = self.groups.groups.get(&id) else {
                    return;
                };
                if !g.state.members.contains_key(&account) {
                    return;
                }
                let ops: Vec<GroupOp> = g.ops.ops().cloned().collect();
                self.send_ops(&account, id, ops);
            }
            ControlKind::RoomKey(key) => {
                let member = self
                    .groups
                    .groups
                    .get(&id)
                    .is_some_and(|g| g.state.is_joined(&account));
                if !member {
                    tracing::debug!(group = %id, "Megolm key from a non-member ignored");
                    return;
                }
                let session = match MegolmInbound::new(&key) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(group = %id, error = %e, "malformed Megolm key ignored");
                        return;
                    }
                };
                let session_id = session.id();
                self.batch.ops.push(Op::PutInbound(
                    session_id,
                    InboundRecord {
                        group: id,
                        account,
                        device,
                        pickle: session.pickle(&self.me.pickle_key),
                    },
                ));
                self.groups.inbound.insert(
                    session_id,
                    Inbound {
                        group: id,
                        account,
                        device,
                        session,
                    },
                );
                // What waited for this key can be read now: on disk, or
                // still in a batch being written.
                let mut waiting: Vec<Waiting> = self
                    .groups
                    .fresh_pending
                    .remove(&session_id)
                    .unwrap_or_default();
                for (digest, record) in self.store.pending(&session_id).unwrap_or_default() {
                    if !waiting.iter().any(|(d, _, _)| *d == digest) {
                        waiting.push((digest, record.group, record.message));
                    }
                }
                for (digest, group, bytes) in waiting {
                    self.batch.ops.push(Op::DeletePending(session_id, digest));
                    self.groups.pending = self.groups.pending.saturating_sub(1);
                    self.on_group_message(group, &bytes);
                }
                // Held on the topic for this key: forward them now.
                self.settle_awaiting(Some(session_id));
            }
            ControlKind::Receipt { kind, ids } => {
                let Some(g) = self.groups.groups.get(&id) else {
                    return;
                };
                if !g.state.members.contains_key(&account) {
                    return;
                }
                let conversation = g.conversation();
                let ours = match self.store.outgoing(&conversation, &ids) {
                    Ok(ours) => ours,
                    Err(e) => {
                        tracing::warn!(group = %id, error = %e, "could not read the messages a receipt names");
                        return;
                    }
                };
                if ours.is_empty() {
                    return;
                }
                for message in &ours {
                    self.batch.ops.push(Op::PutGroupReceipt(
                        conversation,
                        *message,
                        account,
                        kind as u8,
                    ));
                }
                // The counts go out once the receipts are on disk.
                self.batch.after.push(After::ReceiptCounts(id, ours));
            }
        }
    }

    /// After a commit: `GroupReceipt` events with the counts now stored,
    /// once per message however many receipts for it the batch held.
    pub(super) fn emit_receipt_counts(&mut self, committed: Vec<(GroupId, Vec<MessageId>)>) {
        let mut by_group: HashMap<GroupId, BTreeSet<MessageId>> = HashMap::new();
        for (group, ids) in committed {
            by_group.entry(group).or_default().extend(ids);
        }
        for (group, ids) in by_group {
            let Some(g) = self.groups.groups.get(&group) else {
                continue;
            };
            let ids: Vec<MessageId> = ids.into_iter().collect();
            let counts = match self.store.receipt_counts(&g.conversation(), &ids) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(group = %group, error = %e, "could not count receipts");
                    continue;
                }
            };
            for (message, delivered, read) in counts {
                let _ = self.events.send(Event::GroupReceipt {
                    group: g.state.name.clone(),
                    id: message.to_string(),
                    delivered,
                    read,
                });
            }
        }
    }

    /// Encrypts, stores and (after the commit) publishes one message.
    fn group_send(&mut self, group: &str, text: String) -> Result<SendReceipt, NodeError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(NodeError::TextTooLong { len: text.len() });
        }
        if text.is_empty() {
            return Err(NodeError::EmptyText);
        }
        let id = self.resolve_group(group)?;
        let standing = self.groups.groups[&id].standing(&self.me.account);
        match standing {
            "admin" | "member" => {}
            "removed" => {
                return Err(NodeError::RemovedFromGroup {
                    group: group.to_owned(),
                });
            }
            "invited" => {
                return Err(NodeError::NotInGroup {
                    group: group.to_owned(),
                    hint: "you are invited: join it first with `hush group join`",
                });
            }
            _ => {
                return Err(NodeError::NotInGroup {
                    group: group.to_owned(),
                    hint: "you left it; an admin must invite you again",
                });
            }
        }
        self.ensure_outbound(id);
        let message_id = self.next_id();
        let payload = Payload {
            sender_account: self.me.account,
            sender_device: self.me.device_id(),
            id: message_id,
            body: Body::Text(text.clone()),
        };
        let Some(g) = self.groups.groups.get_mut(&id) else {
            return Err(NodeError::UnknownGroup {
                name: group.to_owned(),
            });
        };
        let Some(outbound) = g.outbound.as_mut() else {
            return Err(NodeError::UnknownGroup {
                name: group.to_owned(),
            });
        };
        let session = outbound.id();
        let ciphertext = outbound.encrypt(&payload.to_padded());
        let bytes = GroupMessage {
            session,
            ciphertext,
        }
        .to_bytes();
        let conversation = g.conversation();
        // The advanced ratchet is stored with the message, before anything
        // is published: a message index is never used twice.
        let record_op = g.store_record(&self.me.pickle_key);
        self.batch.ops.push(record_op);
        self.batch
            .ops
            .push(Op::PutSeen(GroupMessage::digest(&bytes), now_ms()));
        self.batch.ops.push(Op::PutMessage(
            conversation,
            MessageRecord {
                id: message_id,
                from: self.me.account,
                outgoing: true,
                text,
                status: Status::Sent,
                sent_at_ms: message_id.millis(),
                stored_at_ms: now_ms(),
            },
        ));
        self.batch.after.push(After::Publish(id, bytes));
        Ok(SendReceipt {
            id: message_id.to_string(),
            status: Status::Sent,
            timed_out: false,
            problem: None,
        })
    }

    /// Makes a new outbound session when the old one is due (membership
    /// changed, N messages, T time) and shares its key with every joined
    /// member device over Olm.
    fn ensure_outbound(&mut self, id: GroupId) {
        let config = self.groups.config();
        let me = self.me.account;
        let Some(g) = self.groups.groups.get_mut(&id) else {
            return;
        };
        let members: Vec<AccountId> = g.state.joined().map(|(a, _)| *a).collect();
        let age = Duration::from_millis(now_ms().saturating_sub(g.record.outbound_created_ms));
        let due = match &g.outbound {
            None => true,
            Some(o) => {
                o.message_index() >= config.rotate_messages
                    || age >= config.rotate_after
                    || g.record.outbound_members != members
            }
        };
        if !due {
            return;
        }
        let outbound = MegolmOutbound::new();
        let key = outbound.session_key();
        // Our own inbound copy: our other devices and our own history read it.
        if let Ok(inbound) = MegolmInbound::new(&key) {
            let session_id = inbound.id();
            self.batch.ops.push(Op::PutInbound(
                session_id,
                InboundRecord {
                    group: id,
                    account: me,
                    device: self.me.device_id(),
                    pickle: inbound.pickle(&self.me.pickle_key),
                },
            ));
            self.groups.inbound.insert(
                session_id,
                Inbound {
                    group: id,
                    account: me,
                    device: self.me.device_id(),
                    session: inbound,
                },
            );
        }
        tracing::info!(group = %id, members = members.len(), "new Megolm session for the group");
        g.outbound = Some(outbound);
        g.record.outbound_created_ms = now_ms();
        g.record.outbound_members.clone_from(&members);
        for account in members.into_iter().filter(|a| *a != me) {
            self.send_group_control(&account, id, ControlKind::RoomKey(key.clone()));
        }
    }

    /// Publishes a stored message; if no peer takes it now, later.
    pub(super) fn publish_group(&mut self, id: GroupId, bytes: Vec<u8>) {
        let Some(g) = self.groups.groups.get(&id) else {
            return;
        };
        let topic = g.topic.clone();
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, bytes.clone())
        {
            Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
            Err(e) => {
                tracing::debug!(group = %id, error = ?e, "group message not published yet; retrying");
                if self.groups.unpublished.len() < MAX_UNPUBLISHED {
                    self.groups.unpublished.push_back((id, bytes));
                }
            }
        }
    }

    /// A pending message's batch committed: the store has it now.
    pub(super) fn pending_stored(&mut self, session: [u8; 32], digest: [u8; 32]) {
        if let Some(list) = self.groups.fresh_pending.get_mut(&session) {
            list.retain(|(d, _, _)| *d != digest);
            if list.is_empty() {
                self.groups.fresh_pending.remove(&session);
            }
        }
    }

    /// On the tick: publish what waited, send receipts gathered.
    pub(super) fn groups_tick(&mut self) {
        let now = Instant::now();
        let due: Vec<(GroupId, AccountId)> = self
            .groups
            .missing_since
            .iter()
            .filter(|(_, (at, _))| now.duration_since(*at) >= SYNC_AFTER)
            .map(|(id, (_, from))| (*id, *from))
            .collect();
        for (id, from) in due {
            let still = self
                .groups
                .groups
                .get(&id)
                .is_some_and(|g| g.ops.ops().any(|op| !g.ops.has_parents(op)));
            if still {
                self.groups.missing_since.insert(id, (now, from));
                self.send_group_control(&from, id, ControlKind::SyncRequest);
            } else {
                self.groups.missing_since.remove(&id);
            }
        }
        let waiting = std::mem::take(&mut self.groups.unpublished);
        for (id, bytes) in waiting {
            self.publish_group(id, bytes);
        }
        if self.groups.receipts_due.is_some_and(|due| now >= due) {
            self.send_receipts();
        }
        if self.groups.awaiting_count > 0 {
            self.settle_awaiting(None);
        }
    }

    /// Sends the receipts gathered (on the tick when due, and on shutdown,
    /// through the outbox).
    pub(super) fn send_receipts(&mut self) {
        self.groups.receipts_due = None;
        let receipts = std::mem::take(&mut self.groups.receipts);
        for ((account, group, kind), ids) in receipts {
            let kind = if kind == ReceiptKind::Read as u8 {
                ReceiptKind::Read
            } else {
                ReceiptKind::Delivered
            };
            for ids in ids.chunks(MAX_RECEIPT_IDS) {
                self.send_group_control(
                    &account,
                    group,
                    ControlKind::Receipt {
                        kind,
                        ids: ids.to_vec(),
                    },
                );
            }
        }
    }

    fn members(&self, group: &str) -> Result<GroupMembersView, NodeError> {
        let id = self.resolve_group(group)?;
        let g = &self.groups.groups[&id];
        let mut members: Vec<MemberView> = g
            .state
            .members
            .iter()
            .map(|(account, m)| MemberView {
                name: self.member_name(account),
                account: account.to_string(),
                role: m.role.as_str().to_owned(),
                status: match m.status {
                    MemberStatus::Invited => "invited",
                    MemberStatus::Joined => "joined",
                }
                .to_owned(),
                devices: m
                    .card
                    .device_list
                    .devices
                    .iter()
                    .map(|d| d.device_id.to_string())
                    .collect(),
                contact: self.contacts.is_contact(account),
                you: *account == self.me.account,
            })
            .collect();
        members.sort_by(|a, b| b.role.cmp(&a.role).then(a.name.cmp(&b.name)));
        Ok(GroupMembersView {
            group: g.view(&self.me.account),
            members,
        })
    }

    fn group_history(
        &self,
        group: &str,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<GroupMessageView>, NodeError> {
        let id = self.resolve_group(group)?;
        let conversation = ConversationId::group(&id);
        let records = self.store.history(&conversation, before, limit)?;
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let (mut delivered_to, mut read_by) = (Vec::new(), Vec::new());
            if r.outgoing {
                for (account, kind) in self.store.group_receipts(&conversation, r.id)? {
                    let name = self.member_name(&account);
                    if kind == ReceiptKind::Read as u8 {
                        read_by.push(name.clone());
                    }
                    delivered_to.push(name);
                }
            }
            out.push(GroupMessageView {
                message: MessageView::new(&r, self.member_name(&r.from)),
                delivered: delivered_to.len(),
                read: read_by.len(),
                delivered_to,
                read_by,
            });
        }
        Ok(out)
    }

    fn group_mark_read(&mut self, group: &str, reply: Reply<usize>) {
        let id = match self.resolve_group(group) {
            Ok(id) => id,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let conversation = ConversationId::group(&id);
        let unread = match self.store.unread(&conversation) {
            Ok(ids) => ids,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        if unread.is_empty() {
            let _ = reply.send(Ok(0));
            return;
        }
        for message in &unread {
            if let Ok(Some(r)) = self.store.message(&conversation, *message)
                && !r.outgoing
            {
                self.groups
                    .queue_receipt(r.from, id, ReceiptKind::Read, *message);
            }
        }
        let count = unread.len();
        self.batch.ops.push(Op::MarkRead(conversation, unread));
        self.batch.after.push(After::ReplyRead(reply, count));
    }
}

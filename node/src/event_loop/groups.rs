//! Groups, the host side: feeds [`hush_protocol::device::GroupBook`]
//! (which decides) from the swarm, the store and the user, and does what
//! it asks: writes into the batch, control messages into the outbox,
//! topic subscriptions, publishing, validation results, history requests
//! to the home relays, events. Views of groups for the API live here too.

use std::collections::{BTreeSet, HashMap};

use hush_protocol::device::{
    Acceptance, Ctx, Group, GroupAfter, GroupEffect, DeviceLookup, GroupNotice, GroupSelf,
    GroupWrite, Severity,
};
use hush_protocol::{
    AccountId, Action, ContactCard, ConversationId, GroupId, HistoryRequest, HistoryResponse,
    MAX_HISTORY_ITEMS, MemberStatus, MessageId, ReceiptKind, Wire,
};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::{Multiaddr, PeerId};

use super::{After, EventLoop};
use crate::error::NodeError;
use crate::identity::Me;
use crate::node::{Reply, now_ms};
use crate::records::{ContactRecord, MessageRecord, OutboxKind, PendingRecord};
use crate::store::{Op, Store, StoreError};
use crate::view::{
    Event, GroupMembersView, GroupMessageView, GroupView, MemberView, MessageView, SendReceipt,
};

pub(crate) use hush_protocol::device::GroupConfig;

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

/// The device engine's groups, in the node's terms.
type Book = hush_protocol::device::GroupBook<PeerId, Multiaddr, gossipsub::MessageId>;

/// The group engine and the requests in flight for it.
pub(super) struct GroupHost {
    pub(super) book: Book,
    history_requests: HashMap<OutboundRequestId, (PeerId, GroupId)>,
}

impl GroupHost {
    /// The engine with every group, session and pending count from the store.
    pub(super) fn load(store: &Store, me: &Me, config: GroupConfig) -> Self {
        let mut book = Book::new(
            GroupSelf {
                key: me.account_key.clone(),
                device: me.device_id(),
                pickle_key: me.pickle_key,
            },
            config,
            super::card_reach,
        );
        book.restore_pending_count(store.pending_count().unwrap_or(0));
        match store.groups() {
            Ok(groups) => {
                for (id, record, ops) in groups {
                    for problem in book.restore_group(id, record, &ops) {
                        tracing::error!(group = %id, "{problem}");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "could not load groups"),
        }
        match store.inbound_sessions() {
            Ok(list) => {
                for (id, record) in list {
                    if let Err(problem) = book.restore_inbound(id, &record) {
                        tracing::error!(group = %record.group, "{problem}");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "could not load Megolm sessions"),
        }
        Self {
            book,
            history_requests: HashMap::new(),
        }
    }
}

impl DeviceLookup for Store {
    type Error = StoreError;
    fn seen(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        Store::seen(self, digest)
    }
    fn message(
        &self,
        conversation: &ConversationId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Store::message(self, conversation, id)
    }
    fn pending(&self, session: &[u8; 32]) -> Result<Vec<([u8; 32], PendingRecord)>, StoreError> {
        Store::pending(self, session)
    }
    fn outgoing(
        &self,
        conversation: &ConversationId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageId>, StoreError> {
        Store::outgoing(self, conversation, ids)
    }
    fn unread(&self, conversation: &ConversationId) -> Result<Vec<MessageId>, StoreError> {
        Store::unread(self, conversation)
    }
}

/// The store operation for what the group engine writes.
fn op_of(write: GroupWrite) -> Op {
    match write {
        GroupWrite::Op(id, hash, bytes) => Op::PutMembershipChange(id, hash, bytes),
        GroupWrite::Record(id, record) => Op::PutGroup(id, record),
        GroupWrite::Inbound(id, record) => Op::PutInbound(id, record),
        GroupWrite::DropInbound(id) => Op::DeleteInbound(id),
        GroupWrite::Pending(session, digest, record) => Op::PutPending(session, digest, record),
        GroupWrite::DropPending(session, digest) => Op::DeletePending(session, digest),
        GroupWrite::Seen(digest, at) => Op::PutSeen(digest, at),
        GroupWrite::Message(conversation, record) => Op::PutMessage(conversation, record),
        GroupWrite::Receipt(conversation, message, account, kind) => {
            Op::PutGroupReceipt(conversation, message, account, kind as u8)
        }
        GroupWrite::MarkRead(conversation, ids) => Op::MarkRead(conversation, ids),
    }
}

/// A [`Ctx`] for an engine call: now, the loop's message clock, fresh
/// randomness.
macro_rules! ctx {
    ($loop:ident) => {
        &mut Ctx {
            now: $loop.host_clock.now(),
            clock: &mut $loop.clock,
            rng: &mut rand::thread_rng(),
        }
    };
}

impl EventLoop {
    /// Subscribes to our groups' topics and registers group peers; at start.
    pub(super) fn groups_start(&mut self) {
        for id in self.groups.book.joined_groups() {
            self.subscribe_topic(id);
        }
        self.sync_peers();
    }

    /// Does what the group engine asked, in order.
    pub(super) fn drive_groups(&mut self) {
        while let Some(effect) = self.groups.book.poll_effect() {
            match effect {
                GroupEffect::Write(write) => self.batch.ops.push(op_of(write)),
                GroupEffect::Send { to, payload } => {
                    if let Err(e) = self.enqueue(&to, OutboxKind::Group, &payload) {
                        tracing::warn!(error = %e, "could not queue a group control message");
                    }
                }
                GroupEffect::PeersChanged => self.sync_peers(),
                GroupEffect::Subscribe(id) => {
                    self.subscribe_topic(id);
                    let relays: Vec<PeerId> = self.home.iter().map(|r| r.peer).collect();
                    for relay in relays {
                        self.keep_history(relay, id);
                    }
                }
                GroupEffect::Unsubscribe(id) => {
                    let topic = IdentTopic::new(id.topic());
                    self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
                }
                GroupEffect::Dial(devices) => {
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
                GroupEffect::Fetch {
                    relay,
                    group,
                    after,
                } => self.fetch_history(relay, group, after),
                GroupEffect::Publish(id, bytes) => self.publish_group(id, bytes),
                GroupEffect::Validate {
                    message,
                    peer,
                    acceptance,
                } => {
                    let acceptance = match acceptance {
                        Acceptance::Accept => MessageAcceptance::Accept,
                        Acceptance::Ignore => MessageAcceptance::Ignore,
                        Acceptance::Reject => MessageAcceptance::Reject,
                    };
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(&message, &peer, acceptance);
                }
                GroupEffect::After(after) => {
                    let after = self.after_of(after);
                    self.batch.after.push(after);
                }
                GroupEffect::Note(group, Severity::Debug, what) => {
                    tracing::debug!(%group, "{what}");
                }
                GroupEffect::Note(group, Severity::Info, what) => tracing::info!(%group, "{what}"),
                GroupEffect::Note(group, Severity::Warn, what) => tracing::warn!(%group, "{what}"),
            }
        }
    }

    /// What the loop does after the commit for what the engine asked.
    fn after_of(&self, after: GroupAfter) -> After {
        match after {
            GroupAfter::Publish(id, bytes) => After::Publish(id, bytes),
            GroupAfter::PendingStored(session, digest) => After::PendingStored(session, digest),
            GroupAfter::Settled(digest) => After::Received(digest),
            GroupAfter::ReceiptCounts(id, ids) => After::ReceiptCounts(id, ids),
            GroupAfter::Notice(GroupNotice::Invited { group, name, by }) => {
                let from = self.member_name(&by);
                tracing::info!(group = %name, %from, "invited into a group");
                After::Emit(Event::GroupInvite {
                    group: name,
                    group_id: group.to_string(),
                    from,
                })
            }
            GroupAfter::Notice(GroupNotice::Changed {
                group,
                name,
                version,
                standing,
            }) => After::Emit(Event::GroupChanged {
                group: name,
                group_id: group.to_string(),
                version,
                you: standing.as_str().to_owned(),
            }),
            GroupAfter::Notice(GroupNotice::Message {
                group,
                name,
                message,
            }) => {
                let from = self.member_name(&message.from);
                After::Emit(Event::GroupMessage {
                    group: name,
                    group_id: group.to_string(),
                    message: MessageView::new(&message, from),
                })
            }
        }
    }

    fn subscribe_topic(&mut self, id: GroupId) {
        let topic = IdentTopic::new(id.topic());
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&topic) {
            tracing::warn!(error = ?e, "could not subscribe to a group topic");
        }
    }

    /// Makes the devices of every group member known to the loop (for Olm).
    pub(super) fn sync_peers(&mut self) {
        let peers = self.groups.book.peers();
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

    fn own_card(&self) -> ContactCard {
        let addresses: Vec<String> = self
            .listen_addresses
            .iter()
            .map(|a| a.to_string())
            .collect();
        self.me.card(&addresses)
    }

    fn group_view(&self, g: &Group<PeerId>) -> GroupView {
        let state = g.state();
        GroupView {
            id: g.id().to_string(),
            name: state.name.clone(),
            you: g.standing(&self.me.account).as_str().to_owned(),
            members: state.joined().count(),
            invited: state.members.len() - state.joined().count(),
            member_limit: state.member_limit,
            version: state.version,
        }
    }

    pub(super) fn on_group_command(&mut self, command: GroupCommand) {
        match command {
            GroupCommand::Create { name, reply } => {
                let result = crate::identity::validate_name(&name).and_then(|()| {
                    let card = self.own_card();
                    Ok(self.groups.book.create(ctx!(self), name, card)?)
                });
                self.reply_group(reply, result);
            }
            GroupCommand::Invite {
                group,
                contact,
                admin,
                reply,
            } => {
                let result = match self.contacts.contact(&contact) {
                    Some(c) => {
                        let card = c.card.clone();
                        self.groups
                            .book
                            .invite(ctx!(self), &group, card, admin)
                            .map_err(NodeError::from)
                    }
                    None => Err(NodeError::InviteUnknownContact { name: contact }),
                };
                self.reply_group(reply, result);
            }
            GroupCommand::Join { group, reply } => {
                let result = self.groups.book.join(ctx!(self), &group);
                self.reply_group(reply, result.map_err(NodeError::from));
            }
            GroupCommand::Leave { group, reply } => {
                let result = self.groups.book.leave(ctx!(self), &group);
                self.reply_group(reply, result.map_err(NodeError::from));
            }
            GroupCommand::Remove {
                group,
                member,
                reply,
            } => {
                let result =
                    self.member_change(&group, &member, |account| Action::Remove { account });
                self.reply_group(reply, result);
            }
            GroupCommand::Promote {
                group,
                member,
                reply,
            } => {
                let result =
                    self.member_change(&group, &member, |account| Action::Promote { account });
                self.reply_group(reply, result);
            }
            GroupCommand::Send { group, text, reply } => {
                match self.groups.book.send(ctx!(self), &group, text) {
                    Ok(id) => {
                        let receipt = SendReceipt {
                            id: id.to_string(),
                            status: crate::records::Status::Sent,
                            timed_out: false,
                            problem: None,
                        };
                        self.drive_groups();
                        self.batch.after.push(After::ReplySend(reply, receipt));
                    }
                    Err(e) => {
                        self.drive_groups();
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            GroupCommand::List { reply } => {
                let mut list: Vec<GroupView> = self
                    .groups
                    .book
                    .groups()
                    .map(|g| self.group_view(g))
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
        action: impl FnOnce(AccountId) -> Action,
    ) -> Result<GroupId, NodeError> {
        let book = &self.groups.book;
        let id = book.resolve(group)?;
        let account = book.resolve_member(&id, group, member, |a| self.member_name(a))?;
        Ok(self
            .groups
            .book
            .member_change(ctx!(self), group, action(account))?)
    }

    /// Answers once the batch holding the change committed.
    fn reply_group(&mut self, reply: Reply<GroupView>, result: Result<GroupId, NodeError>) {
        self.drive_groups();
        match result.map(|id| self.groups.book.group(&id).map(|g| self.group_view(g))) {
            Ok(Some(view)) => self.batch.after.push(After::ReplyGroup(reply, view)),
            Ok(None) => {
                let _ = reply.send(Err(NodeError::UnknownGroup {
                    name: String::new(),
                }));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// A home relay connected: make sure it keeps our groups' history, and
    /// catch up from it.
    pub(super) fn groups_relay_connected(&mut self, relay: PeerId) {
        for id in self.groups.book.joined_groups() {
            self.keep_history(relay, id);
        }
    }

    /// Asks `relay` to keep the group's topic and for what it holds since
    /// our cursor.
    fn keep_history(&mut self, relay: PeerId, id: GroupId) {
        let Some(after) = self.groups.book.history_cursor(&id, &relay) else {
            return;
        };
        let keep = HistoryRequest::Keep { topic: id.topic() };
        self.swarm
            .behaviour_mut()
            .history
            .send_request(&relay, keep.to_bytes());
        self.fetch_history(relay, id, after);
    }

    fn fetch_history(&mut self, relay: PeerId, id: GroupId, after: u64) {
        let fetch = HistoryRequest::Fetch {
            topic: id.topic(),
            after,
            limit: MAX_HISTORY_ITEMS as u16,
        };
        let request = self
            .swarm
            .behaviour_mut()
            .history
            .send_request(&relay, fetch.to_bytes());
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
                        let store = &*self.store;
                        self.groups.book.handle_history_page(
                            ctx!(self),
                            store,
                            relay,
                            id,
                            items,
                            more,
                        );
                        self.drive_groups();
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
        let home_relay = self.home.iter().any(|r| r.peer == propagation_source);
        let store = &*self.store;
        self.groups.book.handle_topic_message(
            ctx!(self),
            store,
            message.topic.as_str(),
            message_id,
            propagation_source,
            home_relay,
            &message.data,
        );
        self.drive_groups();
    }

    /// A group control message over Olm from a verified device of `account`.
    pub(super) fn on_group_control(
        &mut self,
        account: AccountId,
        device: hush_protocol::DeviceId,
        control: hush_protocol::GroupControl,
    ) {
        let store = &*self.store;
        self.groups
            .book
            .handle_control(ctx!(self), store, account, device, control);
        self.drive_groups();
    }

    /// After a commit: `GroupReceipt` events with the counts now stored,
    /// once per message however many receipts for it the batch held.
    pub(super) fn emit_receipt_counts(&mut self, committed: Vec<(GroupId, Vec<MessageId>)>) {
        let mut by_group: HashMap<GroupId, BTreeSet<MessageId>> = HashMap::new();
        for (group, ids) in committed {
            by_group.entry(group).or_default().extend(ids);
        }
        for (group, ids) in by_group {
            let Some(g) = self.groups.book.group(&group) else {
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
                    group: g.state().name.clone(),
                    id: message.to_string(),
                    delivered,
                    read,
                });
            }
        }
    }

    /// Publishes a stored message; if no peer takes it now, later.
    pub(super) fn publish_group(&mut self, id: GroupId, bytes: Vec<u8>) {
        let topic = IdentTopic::new(id.topic());
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, bytes.clone())
        {
            Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
            Err(e) => {
                tracing::debug!(group = %id, error = ?e, "group message not published yet; retrying");
                self.groups.book.unpublished(id, bytes);
            }
        }
    }

    /// On the tick: whatever the group engine has due.
    pub(super) fn groups_tick(&mut self) {
        self.groups.book.handle_tick(ctx!(self));
        self.drive_groups();
    }

    /// Sends the receipts gathered now (on shutdown, through the outbox).
    pub(super) fn send_receipts(&mut self) {
        self.groups.book.flush_receipts(ctx!(self));
        self.drive_groups();
    }

    fn members(&self, group: &str) -> Result<GroupMembersView, NodeError> {
        let id = self.groups.book.resolve(group)?;
        let Some(g) = self.groups.book.group(&id) else {
            return Err(NodeError::UnknownGroup {
                name: group.to_owned(),
            });
        };
        let mut members: Vec<MemberView> = g
            .state()
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
            group: self.group_view(g),
            members,
        })
    }

    fn group_history(
        &self,
        group: &str,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<GroupMessageView>, NodeError> {
        let id = self.groups.book.resolve(group)?;
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
        let id = match self.groups.book.resolve(group) {
            Ok(id) => id,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        let store = &*self.store;
        let result = self.groups.book.mark_read(ctx!(self), store, id);
        self.drive_groups();
        match result {
            Ok(0) => {
                let _ = reply.send(Ok(0));
            }
            Ok(count) => self.batch.after.push(After::ReplyRead(reply, count)),
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }
}

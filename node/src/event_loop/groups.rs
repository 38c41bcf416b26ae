//! Groups, the host side: feeds [`hush_protocol::device::GroupBook`]
//! (which decides) from the swarm, the store and the user, and does what
//! it asks: writes into the batch, control messages into the outbox,
//! topic subscriptions, publishing, validation results, history requests
//! to the home relays, events. Views of groups for the API live here too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hush_protocol::device::{
    Acceptance, Ctx, DeviceLookup, Group, GroupAfter, GroupEffect, GroupNotice, GroupSelf,
    GroupWrite, SeenKey, Severity,
};
use hush_protocol::{
    AccountId, Action, ContactCard, ConversationId, GroupId, MemberStatus, MessageId, ReceiptKind,
    SessionId,
};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::OutboundRequestId;
use libp2p::{Multiaddr, PeerId};

use super::{After, EventLoop};
use crate::error::NodeError;
use crate::identity::Me;
use crate::node::Reply;
use crate::records::{MessageRecord, PendingRecord};
use crate::store::{Op, Store, StoreError};
use crate::view::{
    Event, GroupMembersView, GroupMessageView, GroupView, MemberView, MessageView, SendReceipt,
};

/// How often the gossip state is logged, at debug level.
const GOSSIP_LOG_EVERY: Duration = Duration::from_secs(10);

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
    SetTimer {
        group: String,
        secs: Option<u32>,
        reply: Reply<GroupView>,
    },
    Send {
        group: String,
        text: String,
        reply: Reply<SendReceipt>,
    },
    SendFile {
        group: String,
        offer: Box<hush_protocol::FileOffer>,
        path: String,
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
        page: crate::store::Page,
        limit: usize,
        reply: Reply<Vec<GroupMessageView>>,
    },
    MarkRead {
        group: String,
        reply: Reply<usize>,
    },
}

/// The device engine's groups, in the node's terms.
pub(super) type Book = hush_protocol::device::GroupBook<PeerId, Multiaddr, gossipsub::MessageId>;

/// The history requests in flight, for the groups.
#[derive(Default)]
pub(super) struct GroupHost {
    pub(super) history_requests: HashMap<OutboundRequestId, (PeerId, GroupId, String)>,
}

/// The group engine with every group, session and pending count from the
/// store.
pub(super) fn load_groups(store: &Store, me: &Me, config: GroupConfig) -> Book {
    let mut book = Book::new(
        GroupSelf {
            account: me.account,
            key: me.account_key().cloned(),
            device: me.device_id(),
            pickle_key: me.pickle_key,
        },
        config,
        super::card_reach,
    );
    match store.pending_index() {
        Ok(rows) => {
            for (session, digest, group, at_ms) in rows {
                book.restore_pending(SessionId(session), digest, group, at_ms);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the group messages waiting for their key")
        }
    }
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
    match store.publish_keys() {
        Ok(mut keys) => {
            keys.sort_by_key(|(_, _, record)| record.received_ms);
            for (id, epoch, record) in keys {
                book.restore_publish_key(id, epoch, &record);
            }
        }
        Err(e) => tracing::error!(error = %e, "could not load the groups' publish keys"),
    }
    match store.inbound_sessions() {
        Ok(list) => {
            for (id, record) in list {
                if let Err(problem) = book.restore_inbound(SessionId(id), &record) {
                    tracing::error!(group = %record.group, "{problem}");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "could not load Megolm sessions"),
    }
    // After the groups: messages of a group no longer ours are dropped.
    match store.kept_group_messages() {
        Ok(kept) => book.restore_kept(kept),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the group messages kept for other members; starting without them")
        }
    }
    // After the groups: a message of a group no longer ours is dropped.
    match store.unconfirmed() {
        Ok(list) => {
            for (id, record) in list {
                let conversation = hush_protocol::ConversationId::group(&record.group);
                let status = match store.message(&conversation, id) {
                    Ok(message) => message.map(|m| m.status),
                    // Unreadable: send it anyway, as not yet out.
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read an unconfirmed group message's status");
                        Some(crate::records::Status::Pending)
                    }
                };
                book.restore_unconfirmed(id, record, status);
            }
        }
        Err(e) => tracing::error!(error = %e, "could not load our unconfirmed group messages"),
    }
    book
}

impl DeviceLookup for Store {
    type Error = StoreError;
    fn seen(&self, key: &SeenKey) -> Result<bool, StoreError> {
        Store::seen(self, key)
    }
    fn message(
        &self,
        conversation: &ConversationId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Store::message(self, conversation, id)
    }
    fn statuses(
        &self,
        wanted: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Option<crate::records::Status>>, StoreError> {
        Store::statuses(self, wanted)
    }
    fn pending(&self, session: &SessionId) -> Result<Vec<([u8; 32], PendingRecord)>, StoreError> {
        Store::pending(self, &session.0)
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
        GroupWrite::Inbound(id, record) => Op::PutInbound(id.0, record),
        GroupWrite::DropInbound(id) => Op::DeleteInbound(id.0),
        GroupWrite::Pending(session, digest, record) => Op::PutPending(session.0, digest, record),
        GroupWrite::DropPending(session, digest) => Op::DeletePending(session.0, digest),
        GroupWrite::Unconfirmed(id, record) => Op::PutUnconfirmed(id, record),
        GroupWrite::DropUnconfirmed(id) => Op::DeleteUnconfirmed(id),
        GroupWrite::Status(conversation, id, status) => Op::RaiseStatus(conversation, id, status),
        GroupWrite::Seen(key, at) => Op::PutSeenKey(key.prefix, key.digest, at),
        GroupWrite::Message(conversation, record) => Op::PutMessage(conversation, record),
        GroupWrite::File(conversation, id, file) => Op::PutFile(conversation, id, file),
        GroupWrite::Receipt(conversation, message, account, kind) => {
            Op::PutGroupReceipt(conversation, message, account, kind as u8)
        }
        GroupWrite::MarkRead(conversation, ids) => Op::MarkRead(conversation, ids),
        GroupWrite::PublishKey(id, epoch, record) => Op::PutPublishKey(id, epoch, record),
        GroupWrite::DropPublishKey(id, epoch) => Op::DeletePublishKey(id, epoch),
    }
}

impl EventLoop {
    /// Runs `f` on the engine's groups and does what follows.
    pub(super) fn with_groups<T>(&mut self, f: impl FnOnce(&mut Book, &mut Ctx<'_>) -> T) -> T {
        let out = self.engine.with_groups(ctx!(self), f);
        self.drive();
        out
    }

    /// Subscribes to our groups' topics and registers group peers; at start.
    pub(super) fn groups_start(&mut self) {
        for (_, topic) in self.group_topics() {
            self.subscribe_topic(&topic);
        }
    }

    /// The topics of the groups we are in: those of every epoch whose
    /// publish key we hold.
    pub(super) fn group_topics(&self) -> Vec<(GroupId, String)> {
        let groups = &self.engine.groups;
        groups
            .joined_groups()
            .into_iter()
            .filter_map(|id| groups.group(&id))
            .flat_map(|g| {
                g.topics()
                    .map(|t| (g.id(), t.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Does what the groups asked of the host.
    pub(super) fn on_group_effect(&mut self, effect: GroupEffect<PeerId, gossipsub::MessageId>) {
        {
            match effect {
                GroupEffect::Write(write) => self.batch.ops.push(op_of(write)),
                // The engine queues control messages and tracks members'
                // devices itself.
                GroupEffect::Send { .. } => {}
                GroupEffect::PeersChanged => self.resync_gate(),
                GroupEffect::Subscribe { group, topic } => {
                    self.subscribe_topic(&topic);
                    let relays = self.active_relays();
                    for relay in relays {
                        self.keep_history(relay, group, &topic);
                    }
                }
                GroupEffect::Unsubscribe { topic } => {
                    let topic = IdentTopic::new(topic);
                    self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
                }
                GroupEffect::Dial(devices) => {
                    for device in devices {
                        let Some(peer) = self.engine.contacts.peer_of(&device) else {
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
                GroupEffect::Hand {
                    to,
                    devices,
                    group,
                    bytes,
                } => {
                    // Over Olm only to a member we are connected to: one
                    // away reads it from its relays' history when it comes
                    // back, not as a copy in its mailbox.
                    let connected = devices.iter().any(|device| {
                        self.engine
                            .contacts
                            .peer_of(device)
                            .is_some_and(|peer| self.swarm.is_connected(&peer))
                    });
                    if connected {
                        self.with_groups(|g, ctx| g.hand(ctx, to, group, bytes));
                    }
                }
                GroupEffect::Fetch {
                    relay,
                    group,
                    topic,
                    after,
                } => self.fetch_history(relay, group, topic, after),
                GroupEffect::CatchUp { group, topic } => {
                    for relay in self.active_relays() {
                        self.keep_history(relay, group, &topic);
                    }
                }
                GroupEffect::Publish {
                    group,
                    topic,
                    bytes,
                    watch,
                } => self.publish_group(group, topic, bytes, true, watch),
                GroupEffect::Validate {
                    message,
                    peer,
                    acceptance,
                } => {
                    tracing::trace!(%peer, ?acceptance, "group message validated");
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

    /// Answers a group send once its batch is on disk (or at once with its
    /// error), after doing what the engine asked; the message's id when
    /// it was stored.
    fn reply_group_sent(
        &mut self,
        result: Result<MessageId, hush_protocol::device::GroupCommandError>,
        reply: Reply<SendReceipt>,
    ) -> Option<MessageId> {
        self.drive();
        match result {
            Ok(id) => {
                let receipt = SendReceipt {
                    id: id.to_string(),
                    status: crate::records::Status::Pending,
                    timed_out: false,
                    problem: None,
                    keys_changed: false,
                };
                // After the message's own publication (queued before it).
                self.batch
                    .after
                    .push(After::ReplyGroupSent(reply, receipt, id));
                Some(id)
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                None
            }
        }
    }

    /// What the loop does after the commit for what the engine asked.
    fn after_of(&mut self, after: GroupAfter) -> After {
        match after {
            GroupAfter::Publish {
                group,
                topic,
                bytes,
                watch,
            } => After::Publish(group, topic, bytes, watch),
            GroupAfter::PendingStored(session, digest) => After::PendingStored(session, digest),
            GroupAfter::Settled(digest) => After::Received(digest),
            GroupAfter::ReceiptCounts(id, ids) => After::ReceiptCounts(id, ids),
            GroupAfter::Notice(notice) => self.after_notice(*notice),
        }
    }

    /// The event for what the groups told the user.
    fn after_notice(&mut self, notice: GroupNotice) -> After {
        match notice {
            GroupNotice::Invited { group, name, by } => {
                let from = self.member_name(&by);
                tracing::info!(group = %name, %from, "invited into a group");
                After::Emit(Box::new(Event::GroupInvite {
                    group: name,
                    group_id: group.to_string(),
                    from,
                }))
            }
            GroupNotice::Changed {
                group,
                name,
                version,
                standing,
            } => After::Emit(Box::new(Event::GroupChanged {
                group: name,
                group_id: group.to_string(),
                version,
                you: standing.as_str().to_owned(),
            })),
            GroupNotice::Message {
                group,
                name,
                message,
                file,
            } => {
                let from = self.member_name(&message.from);
                let conversation = hush_protocol::ConversationId::group(&group);
                let file = file.map(|f| {
                    if !f.outgoing {
                        self.file_arrived(conversation, message.id, &f);
                    }
                    self.view_file(conversation, message.id, &f)
                });
                After::Emit(Box::new(Event::GroupMessage {
                    group: name,
                    group_id: group.to_string(),
                    message: MessageView::new(&message, from).with_file(file),
                }))
            }
            GroupNotice::Sent { name, id, .. } => After::Emit(Box::new(Event::GroupStatus {
                group: name,
                id: id.to_string(),
                status: crate::records::Status::Sent,
            })),
        }
    }

    fn subscribe_topic(&mut self, topic: &str) {
        let topic = IdentTopic::new(topic);
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&topic) {
            tracing::warn!(error = ?e, "could not subscribe to a group topic");
        }
    }

    /// A member's display name: our contact name, or the card's, or the id.
    pub(super) fn member_name(&self, account: &AccountId) -> String {
        if *account == self.me.account {
            return self.me.name.clone();
        }
        if let Some(name) = self.engine.contacts.name_of(account) {
            return name.clone();
        }
        if let Some(p) = self.engine.contacts.peer(account) {
            return p.card.name.clone();
        }
        account.to_string()[..12].to_owned()
    }

    pub(super) fn own_card(&self) -> ContactCard {
        self.me.card(&self.shared_address_strings())
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
            disappear_secs: state.timer,
        }
    }

    pub(super) fn on_group_command(&mut self, command: GroupCommand) {
        match command {
            GroupCommand::Create { name, reply } => {
                let result = crate::identity::validate_name(&name).and_then(|()| {
                    let card = self.own_card();
                    Ok(self.with_groups(|g, ctx| g.create(ctx, name, card))?)
                });
                self.reply_group(reply, result);
            }
            GroupCommand::Invite {
                group,
                contact,
                admin,
                reply,
            } => {
                let result = match self.engine.contacts.contact(&contact) {
                    Some(c) => {
                        let card = c.card.clone();
                        self.with_groups(|g, ctx| g.invite(ctx, &group, card, admin))
                            .map_err(NodeError::from)
                    }
                    None => Err(NodeError::InviteUnknownContact { name: contact }),
                };
                self.reply_group(reply, result);
            }
            GroupCommand::Join { group, reply } => {
                let result = self.with_groups(|g, ctx| g.join(ctx, &group));
                self.reply_group(reply, result.map_err(NodeError::from));
            }
            GroupCommand::Leave { group, reply } => {
                let result = self.with_groups(|g, ctx| g.leave(ctx, &group));
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
            GroupCommand::SetTimer { group, secs, reply } => {
                let result = self
                    .with_groups(|g, ctx| g.set_timer(ctx, &group, secs))
                    .map_err(NodeError::from);
                self.reply_group(reply, result);
            }
            GroupCommand::Send { reply, .. } | GroupCommand::SendFile { reply, .. }
                if self.engine.is_revoked() =>
            {
                let _ = reply.send(Err(NodeError::Revoked));
            }
            GroupCommand::SendFile {
                group,
                offer,
                path,
                reply,
            } => {
                let root = offer.manifest.root;
                let result = self.with_groups(|g, ctx| g.send_file(ctx, &group, *offer, path));
                if let Some(id) = self.reply_group_sent(result, reply) {
                    self.upload_for_group(&group, id, root);
                }
            }
            GroupCommand::Send { group, text, reply } => {
                let result = self.with_groups(|g, ctx| g.send(ctx, &group, text));
                self.reply_group_sent(result, reply);
            }
            GroupCommand::List { reply } => {
                let mut list: Vec<GroupView> = self
                    .engine
                    .groups
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
                page,
                limit,
                reply,
            } => {
                let _ = reply.send(self.group_history(&group, page, limit));
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
        let book = &self.engine.groups;
        let id = book.resolve(group)?;
        let account = book.resolve_member(&id, group, member, |a| self.member_name(a))?;
        let action = action(account);
        Ok(self.with_groups(|g, ctx| g.member_change(ctx, group, action))?)
    }

    /// Answers once the batch holding the change committed.
    fn reply_group(&mut self, reply: Reply<GroupView>, result: Result<GroupId, NodeError>) {
        self.drive();
        match result.map(|id| self.engine.groups.group(&id).map(|g| self.group_view(g))) {
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

    pub(super) fn on_gossip(&mut self, event: gossipsub::Event) {
        let (propagation_source, message_id, message) = match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => (propagation_source, message_id, message),
            other => {
                tracing::debug!(event = ?other, "gossip");
                return;
            }
        };
        tracing::trace!(peer = %propagation_source, len = message.data.len(), "group message");
        let home_relay = self.home.iter().any(|r| r.peer == propagation_source);
        let store = self.store.clone();
        // The message's lookups (seen before? its id stored?) in one read
        // of the store, shared with the messages before and after it until
        // the next commit lands.
        let snapshot = self.group_snapshot();
        let topic = message.topic.as_str();
        let data = &message.data;
        self.with_groups(|g, ctx| match &snapshot {
            Some((snapshot, _)) => g.handle_topic_message(
                ctx,
                snapshot,
                topic,
                message_id,
                propagation_source,
                home_relay,
                data,
            ),
            None => g.handle_topic_message(
                ctx,
                &*store,
                topic,
                message_id,
                propagation_source,
                home_relay,
                data,
            ),
        });
        // No commit lands within the engine's turn (landing is a step of
        // the loop's own), so the read may serve the next message too.
        self.group_snapshot = snapshot;
    }

    /// Publishes a stored message; if no peer takes it now, later. `again`:
    /// gossip may remember publishing it (a message of ours no member
    /// confirmed, `hush_protocol::device::RESEND_AFTER_MS`), which must
    /// not stop it. `watch`: one of ours, whose resend clock waits for a
    /// peer to take it.
    pub(super) fn publish_group(
        &mut self,
        id: GroupId,
        topic: String,
        bytes: Vec<u8>,
        again: bool,
        watch: Option<MessageId>,
    ) {
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        let topic_hash = IdentTopic::new(topic.clone());
        let published = if again {
            gossipsub.republish(topic_hash, bytes.clone())
        } else {
            gossipsub.publish(topic_hash, bytes.clone())
        };
        match published {
            Ok(_) => {
                if again {
                    tracing::debug!(group = %id, "group message published again");
                }
                if let Some(message) = watch {
                    self.with_groups(|g, _| g.taken(id, message));
                }
            }
            Err(gossipsub::PublishError::Duplicate) => {}
            Err(e) => {
                tracing::debug!(group = %id, error = ?e, "group message not published yet; retrying");
                self.engine.groups.unpublished(id, topic, bytes, watch);
            }
        }
    }

    /// On the tick: whatever the group engine has due.
    pub(super) fn groups_tick(&mut self) {
        self.with_groups(|g, ctx| g.handle_tick(ctx));
        self.tell_due_counts();
        if tracing::enabled!(tracing::Level::DEBUG)
            && self.gossip_logged.elapsed() >= GOSSIP_LOG_EVERY
        {
            self.gossip_logged = Instant::now();
            self.log_gossip_state();
        }
    }

    /// Per topic: the peers in our mesh, and those we know subscribed.
    fn log_gossip_state(&self) {
        let gossip = &self.swarm.behaviour().gossipsub;
        for (group, topic) in self.group_topics() {
            let hash = IdentTopic::new(topic).hash();
            let mesh: Vec<String> = gossip.mesh_peers(&hash).map(|p| p.to_string()).collect();
            let subscribed: Vec<&PeerId> = gossip
                .all_peers()
                .filter(|(_, topics)| topics.contains(&&hash))
                .map(|(p, _)| p)
                .collect();
            let negative = subscribed
                .iter()
                .filter(|p| gossip.peer_score(p).is_some_and(|s| s < 0.0))
                .count();
            tracing::debug!(
                %group,
                mesh = mesh.join(","),
                subscribed = subscribed.len(),
                negative,
                connected = self.swarm.connected_peers().count(),
                "gossip state"
            );
        }
    }

    /// Sends the receipts gathered now (on shutdown, through the outbox).
    pub(super) fn send_receipts(&mut self) {
        self.with_groups(|g, ctx| g.flush_receipts(ctx));
    }

    fn members(&self, group: &str) -> Result<GroupMembersView, NodeError> {
        let id = self.engine.groups.resolve(group)?;
        let Some(g) = self.engine.groups.group(&id) else {
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
                contact: self.engine.contacts.is_contact(account),
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
        page: crate::store::Page,
        limit: usize,
    ) -> Result<Vec<GroupMessageView>, NodeError> {
        let id = self.engine.groups.resolve(group)?;
        let conversation = ConversationId::group(&id);
        let records = self.store.page(&conversation, page, limit)?;
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
            let file = self
                .store
                .file(&conversation, r.id)?
                .map(|f| self.view_file(conversation, r.id, &f));
            out.push(GroupMessageView {
                message: MessageView::new(&r, self.member_name(&r.from)).with_file(file),
                delivered: delivered_to.len(),
                read: read_by.len(),
                delivered_to,
                read_by,
            });
        }
        Ok(out)
    }

    fn group_mark_read(&mut self, group: &str, reply: Reply<usize>) {
        let id = match self.engine.groups.resolve(group) {
            Ok(id) => id,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        let store = self.store.clone();
        let result = self.with_groups(|g, ctx| g.mark_read(ctx, &*store, id));
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

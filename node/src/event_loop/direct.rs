//! The device engine's host side for 1:1: feeds
//! [`hush_protocol::device::DeviceEngine`] from the swarm (`/hush/direct/2`
//! and `/1`, `/hush/keys/1`) and the user, and does what it asks (see
//! [`EventLoop::drive`]).

use std::collections::HashMap;

use hush_protocol::device::{
    BatchAnswer, ContactError, DeviceAfter, DeviceEffect, DeviceNotice, DeviceWrite, InOrder,
    KeyDecision, SendError, Severity,
};
use hush_protocol::{
    BatchOrder, DeviceId, DeviceKeys, KeyBundle, KeyRequest, MailboxRequest, Wire,
};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{Multiaddr, PeerId};

use super::relays::MailRequest;
use super::{After, EventLoop};
use crate::error::NodeError;
use crate::network::{DirectRequest, DirectResponse};
use crate::node::Reply;
use crate::records::Status;
use crate::store::{Op, OutboxKey};
use crate::view::{Event, MessageView, SendReceipt};

/// A batch a peer sent us, with the channel its acks go back on.
type Inbound = (Vec<u8>, ResponseChannel<DirectResponse>);

/// The order of direct requests (`/hush/direct/2`): ours, so that a
/// recipient handles our two in flight in the order they were sent, and
/// theirs, so that we do.
#[derive(Debug)]
pub(super) struct DirectOrder {
    /// Our next `seq`: a random start each run, so a recipient that
    /// remembers our last run's numbers cannot mistake them for this one's.
    next_seq: u64,
    /// Our last request to each peer, while unanswered, and its `seq`: the
    /// one the next request names in `after`.
    last_out: HashMap<PeerId, (OutboundRequestId, u64)>,
    /// Batches from peers that overtook the one they follow.
    inbound: InOrder<PeerId, Inbound>,
}

impl DirectOrder {
    pub(super) fn new(start: u64) -> Self {
        Self {
            next_seq: start.max(1),
            last_out: HashMap::new(),
            inbound: InOrder::default(),
        }
    }

    /// The order of our next request to `peer`.
    fn next(&mut self, peer: &PeerId) -> BatchOrder {
        let seq = self.next_seq;
        // 0 means "none": skipped when the counter wraps.
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        let after = self.last_out.get(peer).map_or(0, |(_, seq)| *seq);
        BatchOrder { seq, after }
    }

    fn sent(&mut self, peer: PeerId, request: OutboundRequestId, order: BatchOrder) {
        self.last_out.insert(peer, (request, order.seq));
    }

    /// A request of ours ended (answered or failed).
    fn ended(&mut self, peer: &PeerId, request: &OutboundRequestId) {
        if self.last_out.get(peer).is_some_and(|(r, _)| r == request) {
            self.last_out.remove(peer);
        }
    }

    /// The peer has no connection left.
    pub(super) fn forget(&mut self, peer: &PeerId) {
        self.last_out.remove(peer);
        let dropped = self.inbound.forget(peer);
        if dropped > 0 {
            tracing::debug!(%peer, dropped, "peer left with batches waiting for their turn");
        }
    }
}

impl From<SendError> for NodeError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::UnknownContact { name } => Self::UnknownContact { name },
            SendError::TextTooLong { len } => Self::TextTooLong { len },
            SendError::EmptyText => Self::EmptyText,
            SendError::OutboxFull { len } => Self::OutboxFull { len },
            SendError::Blocked { name } => Self::Blocked { name },
            SendError::Revoked => Self::Revoked,
            other => Self::Send(other),
        }
    }
}

impl From<ContactError> for NodeError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::Unknown { name } => Self::UnknownContact { name },
            ContactError::DuplicateName { name } => Self::DuplicateContact { name },
            ContactError::DuplicateAccount { existing } => Self::DuplicateAccount { existing },
            ContactError::OwnCard => Self::OwnCard,
            ContactError::AnotherAccount { name } => Self::CardOfAnotherAccount { name },
            ContactError::OlderCard { name } => Self::OlderCard { name },
            other => Self::Contact(other),
        }
    }
}

/// The store operations for what the engine writes.
fn push_ops(write: DeviceWrite, ops: &mut Vec<Op>) {
    let op = match write {
        DeviceWrite::Contact(record) => Op::PutContact(record),
        DeviceWrite::Outbox(key, record) => Op::PutOutbox(key, record),
        DeviceWrite::DropOutbox(key) => Op::DeleteOutbox(key),
        DeviceWrite::Message(conversation, record) => Op::PutMessage(conversation, record),
        DeviceWrite::RaiseStatus(conversation, id, status) => {
            Op::RaiseStatus(conversation, id, status)
        }
        DeviceWrite::MarkRead(conversation, ids) => Op::MarkRead(conversation, ids),
        DeviceWrite::Seen(key, at) => Op::PutSeenKey(key.prefix, key.digest, at),
        DeviceWrite::DepositRight(device, right) => Op::PutRight(device, right),
        DeviceWrite::MailboxGrant(device, grant) => Op::PutGrant(device, grant.to_bytes()),
        DeviceWrite::HomeRelays(device, stated) => Op::PutDeviceRelays(device, stated.to_bytes()),
        DeviceWrite::Trust(account, trust) => Op::PutTrust(account, trust),
        DeviceWrite::File(conversation, id, file) => Op::PutFile(conversation, id, file),
        DeviceWrite::Timer(account, timer) => Op::PutTimer(account, timer.secs, timer.set_by),
        DeviceWrite::ForgetContact {
            name,
            devices,
            history,
            ..
        } => {
            ops.extend(devices.into_iter().map(Op::DeleteRight));
            ops.extend(history.map(Op::DeleteConversation));
            Op::DeleteContact(name)
        }
    };
    ops.push(op);
}

/// The event for what the engine tells the user; `keys_changed`: whether
/// the contact it is about is verified with keys changed since.
fn event_of(
    notice: DeviceNotice,
    file: Option<crate::view::FileView>,
    keys_changed: impl Fn(&str) -> bool,
) -> Event {
    match notice {
        DeviceNotice::Message {
            contact, message, ..
        } => Event::Message {
            message: MessageView::new(&message, contact.clone()).with_file(file),
            keys_changed: keys_changed(&contact),
            contact,
        },
        DeviceNotice::Status {
            contact,
            id,
            status,
        } => Event::Status {
            contact,
            id: id.to_string(),
            status,
        },
        DeviceNotice::Undeliverable {
            contact,
            id,
            relay,
            reason,
        } => Event::Undeliverable {
            contact,
            id: id.to_string(),
            relay,
            reason,
        },
        DeviceNotice::KeysChanged { contact } => Event::KeysChanged { contact },
    }
}

impl EventLoop {
    /// Does what the engine asked, in order: writes into the batch, what
    /// waits for the commit into its `after`, requests onto the swarm.
    pub(super) fn drive(&mut self) {
        while let Some(effect) = self.engine.poll_effect() {
            match effect {
                DeviceEffect::Write(write) => push_ops(write, &mut self.batch.ops),
                DeviceEffect::After(DeviceAfter::Dispatch(key)) => {
                    self.batch.after.push(After::Dispatch(key));
                }
                DeviceEffect::After(DeviceAfter::Received(digest)) => {
                    self.batch.after.push(After::Received(digest));
                }
                DeviceEffect::After(DeviceAfter::Notice(notice)) => {
                    let file = self.arrived_file(&notice);
                    let event = event_of(*notice, file, |name| self.keys_changed(name));
                    self.batch.after.push(After::Emit(Box::new(event)));
                }
                DeviceEffect::Notice(notice) => {
                    if let DeviceNotice::Undeliverable {
                        id, relay, reason, ..
                    } = &*notice
                    {
                        tracing::warn!(%id, %relay, problem = %reason, "a relay refused a message; it stays queued");
                    }
                    self.events
                        .send(event_of(*notice, None, |name| self.keys_changed(name)));
                }
                DeviceEffect::RequestKey(device) => self.request_key(device),
                DeviceEffect::ClaimKey {
                    relay,
                    addr,
                    device,
                } => {
                    let request = MailboxRequest::ClaimKey { device }.to_bytes();
                    let kind = MailRequest::Claim { relay, device };
                    self.ask_other_relay(relay, addr, request, kind);
                }
                DeviceEffect::SendBatch {
                    device,
                    keys,
                    batch,
                } => self.send_batch(device, keys, batch),
                DeviceEffect::Deposit {
                    relay,
                    addr,
                    device,
                    keys,
                    request,
                } => {
                    let kind = MailRequest::Deposit {
                        relay,
                        device,
                        keys,
                    };
                    self.ask_other_relay(relay, addr, request, kind);
                }
                DeviceEffect::PresenceKey { account, key } => {
                    self.on_presence_key(&account, &key);
                }
                DeviceEffect::Group(effect) => self.on_group_effect(effect),
                DeviceEffect::OwnCard(card) => self.take_own_card(*card),
                DeviceEffect::Revoked => self.learned_revoked(),
                DeviceEffect::OwnContact(item) => self.apply_own_contact(item),
                DeviceEffect::Note(Severity::Debug, what) => tracing::debug!("{what}"),
                DeviceEffect::Note(Severity::Info, what) => tracing::info!("{what}"),
                DeviceEffect::Note(Severity::Warn, what) => tracing::warn!("{what}"),
            }
        }
    }

    pub(super) fn send(&mut self, contact: &str, text: String, reply: Reply<SendReceipt>) {
        let result = self.engine.send_text(ctx!(self), contact, text);
        self.drive();
        self.reply_sent(contact, result, reply);
    }

    /// Answers a 1:1 send once its batch is on disk (or at once with its
    /// error); the message's id when it was queued.
    pub(super) fn reply_sent(
        &mut self,
        contact: &str,
        result: Result<hush_protocol::MessageId, SendError>,
        reply: Reply<SendReceipt>,
    ) -> Option<hush_protocol::MessageId> {
        match result {
            Ok(id) => {
                let receipt = SendReceipt {
                    id: id.to_string(),
                    status: Status::Pending,
                    timed_out: false,
                    problem: None,
                    keys_changed: self.keys_changed(contact),
                };
                self.batch.after.push(After::ReplySend(reply, receipt));
                Some(id)
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                None
            }
        }
    }

    pub(super) fn mark_read(&mut self, contact: &str, reply: Reply<usize>) {
        let store = &*self.store;
        let result = self.engine.mark_read(ctx!(self), store, contact);
        self.drive();
        match result {
            Ok(Ok(0)) => {
                // Nothing to store: no commit to wait for.
                let _ = reply.send(Ok(0));
            }
            Ok(Ok(count)) => self.batch.after.push(After::ReplyRead(reply, count)),
            Ok(Err(e)) => {
                let _ = reply.send(Err(e.into()));
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    /// The contact device's peer, where to dial it, and its keys.
    pub(super) fn device_route(
        &self,
        device: &DeviceId,
    ) -> Option<(PeerId, Vec<Multiaddr>, DeviceKeys)> {
        let (_, keys) = self.engine.contacts.of_device(device)?;
        let peer = self.engine.contacts.peer_of(&keys.device_id)?;
        Some((peer, self.dial_addresses(&keys.device_id), keys))
    }

    /// Where to dial a contact device: what its latest presence record
    /// announced (fresh, with relay circuits), then its card's addresses.
    pub(super) fn dial_addresses(&self, device: &DeviceId) -> Vec<Multiaddr> {
        let mut out: Vec<Multiaddr> = self.presence.addresses_of(device).to_vec();
        let contacts = &self.engine.contacts;
        if let Some(contact) = contacts
            .of_device(device)
            .and_then(|(account, _)| contacts.known(&account))
        {
            for a in &contact.addresses {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    fn request_key(&mut self, device: DeviceId) {
        let Some((peer, addresses, _)) = self.device_route(&device) else {
            self.engine.key_arrived(ctx!(self), &device, false);
            self.drive();
            return;
        };
        let request = self.swarm.behaviour_mut().keys.send_request_with_addresses(
            &peer,
            KeyRequest.to_bytes(),
            addresses,
        );
        self.engine.outbox.key_requested(request, device);
    }

    fn send_batch(&mut self, device: DeviceId, keys: Vec<OutboxKey>, batch: Vec<u8>) {
        let Some((peer, addresses, _)) = self.device_route(&device) else {
            return;
        };
        let order = self.direct_order.next(&peer);
        let request = DirectRequest {
            order: Some(order),
            batch,
        };
        let request = self
            .swarm
            .behaviour_mut()
            .direct
            .send_request_with_addresses(&peer, request, addresses);
        self.direct_order.sent(peer, request, order);
        self.engine.outbox.start_flight(request, keys);
    }

    pub(super) fn on_keys(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    channel, request, ..
                },
                ..
            } => match self
                .engine
                .handle_key_request(self.host_clock.now(), peer, &request)
            {
                // The key's secret must be on disk before anyone can use it.
                Ok(bundle) => self.batch.after.push(After::KeyBundle(channel, bundle)),
                Err(KeyDecision::Stranger) => {
                    tracing::debug!(%peer, "one-time key request from a stranger, ignored");
                }
                Err(KeyDecision::TooOften) => {
                    tracing::debug!(%peer, "one-time key requested too often, ignored");
                }
                Err(_) => {}
            },
            E::Message {
                peer,
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(device) = self.engine.outbox.key_request_ended(&request_id) else {
                    return;
                };
                let started = KeyBundle::from_bytes(&response)
                    .map_err(|e| e.to_string())
                    .and_then(|bundle| self.engine.start_session(&device, &bundle));
                if let Err(e) = &started {
                    tracing::warn!(%peer, error = %e, "could not start an Olm session");
                }
                self.engine
                    .key_arrived(ctx!(self), &device, started.is_ok());
                self.drive();
            }
            E::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(device) = self.engine.outbox.key_request_ended(&request_id) {
                    tracing::debug!(error = %error, "one-time key request failed");
                    let ctx = ctx!(self);
                    self.engine.mark_unreachable(ctx, device);
                    self.engine.key_arrived(ctx, &device, false);
                    self.drive();
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_direct(
        &mut self,
        event: request_response::Event<DirectRequest, DirectResponse>,
    ) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    channel, request, ..
                },
                ..
            } => {
                let Some(order) = request.order else {
                    // `/1`: one at a time, handled as it comes.
                    self.on_batch(peer, &request.batch, channel);
                    return;
                };
                let now = self.host_clock.now().mono_ms;
                let ready =
                    self.direct_order
                        .inbound
                        .arrive(now, peer, order, (request.batch, channel));
                for (batch, channel) in ready {
                    self.on_batch(peer, &batch, channel);
                }
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
                self.direct_order.ended(&peer, &request_id);
                let Some(keys) = self.engine.outbox.end_flight(&request_id) else {
                    return;
                };
                if let Some(key) = keys.first() {
                    // Answered on `/2`: two of ours may be in flight to it.
                    self.engine.outbox.set_ordered(key.1, response.ordered);
                }
                let store = &*self.store;
                self.engine
                    .handle_acks(ctx!(self), store, &keys, &response.acks);
                self.drive();
            }
            E::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.direct_order.ended(&peer, &request_id);
                let Some(keys) = self.engine.outbox.end_flight(&request_id) else {
                    return;
                };
                if let request_response::OutboundFailure::Io(e) = &error
                    && e.kind() == std::io::ErrorKind::Unsupported
                {
                    // It follows another in flight, and the peer speaks
                    // only `/1`: one at a time from now, these again soon.
                    if let Some(key) = keys.first() {
                        self.engine.outbox.set_ordered(key.1, false);
                    }
                    let now = self.host_clock.now();
                    self.engine.outbox.retry_device_later(&keys, now);
                    return;
                }
                tracing::debug!(count = keys.len(), error = %error, "delivery attempt failed");
                self.engine.handle_send_failed(ctx!(self), &keys);
                self.drive();
            }
            E::InboundFailure { error, peer, .. } => {
                tracing::debug!(%peer, error = %error, "inbound request failed");
            }
            E::ResponseSent { .. } => {}
        }
    }

    /// Batches that waited too long for the one they follow: handled now.
    pub(super) fn direct_tick(&mut self) {
        let now = self.host_clock.now().mono_ms;
        for (peer, (batch, channel)) in self.direct_order.inbound.expire(now) {
            tracing::debug!(%peer, "a batch waited in vain for the one it follows");
            self.on_batch(peer, &batch, channel);
        }
    }

    /// A batch of envelopes from `peer`: the acks go back once what they
    /// acknowledge is durable.
    fn on_batch(&mut self, peer: PeerId, bytes: &[u8], channel: ResponseChannel<DirectResponse>) {
        let store = &*self.store;
        // One read for the batch's lookups; the store itself if that fails
        // (each lookup then says what went wrong).
        let answer = match store.snapshot() {
            Ok(snapshot) => self.engine.handle_batch(ctx!(self), &snapshot, peer, bytes),
            Err(_) => self.engine.handle_batch(ctx!(self), store, peer, bytes),
        };
        self.drive();
        match answer {
            BatchAnswer::AfterCommit(acks) => self.batch.after.push(After::Ack(channel, acks)),
            BatchAnswer::Now(acks) => self.respond(channel, acks.to_bytes()),
        }
    }
}

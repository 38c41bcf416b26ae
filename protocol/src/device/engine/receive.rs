//! What arrives for this device over Olm: batches of envelopes straight
//! from a contact's device, and mail from our relays.

use std::fmt;
use std::hash::Hash;

use super::{DeviceAfter, DeviceEffect, DeviceEngine, DeviceNotice, DeviceWrite};
use crate::device::{
    Arrival, Ctx, DeviceLookup, FileRecord, FileState, MessageKind, MessageRecord, Opened,
    Severity, Source, Status,
};
use crate::{
    AccountId, AckBatch, Body, ConversationId, DirectAck, EnvelopeBatch, MessageId, ReceiptKind,
    RejectReason, Wire,
};

/// What became of one envelope the engine did not refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Accepted into the current batch; acknowledge it once that is on
    /// disk. `text` names a new text message (it gets a delivered receipt
    /// when it came from a relay).
    Queued {
        ack: DirectAck,
        text: Option<(AccountId, MessageId)>,
    },
    /// Stored earlier (its digest is on disk).
    AlreadyStored,
    /// A copy is in the batch being committed right now.
    InProgress,
}

/// A text or file message as it arrived.
struct Incoming {
    id: MessageId,
    text: String,
    timer: Option<u32>,
}

impl Incoming {
    fn new(id: MessageId, text: String, timer: Option<u32>) -> Self {
        Self { id, text, timer }
    }
}

/// How to answer a batch of envelopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchAnswer {
    /// Nothing of it needs the disk: answer now.
    Now(AckBatch),
    /// Answer once the current batch committed (if it fails, every ack
    /// becomes `Unavailable`: the sender tries again).
    AfterCommit(AckBatch),
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// A batch of envelopes straight from `peer`: each is checked,
    /// decrypted and queued for storage in order.
    pub fn handle_batch<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        peer: P,
        bytes: &[u8],
    ) -> BatchAnswer {
        // The device just reached us: whatever waits for it (e.g. our
        // presence key, which only travels directly) can go now.
        if let Some((_, keys)) = self.contacts.device_by_peer(&peer) {
            self.reached(ctx, &keys.device_id, false);
        }
        let Ok(batch) = EnvelopeBatch::from_bytes(bytes) else {
            self.note(Severity::Debug, "malformed envelope batch refused");
            return BatchAnswer::Now(AckBatch { acks: Vec::new() });
        };
        let mut acks = Vec::with_capacity(batch.envelopes.len());
        let mut stored = false;
        for envelope in &batch.envelopes {
            let ack = match self.receive(ctx, lookup, Source::Direct(peer), envelope) {
                Ok(Received::Queued { ack, .. }) => {
                    stored = true;
                    ack
                }
                Ok(Received::AlreadyStored) => DirectAck::Duplicate,
                // The sender asks again later and then hears `Duplicate`.
                Ok(Received::InProgress) => DirectAck::Rejected(RejectReason::Unavailable),
                Err(reason) => DirectAck::Rejected(reason),
            };
            acks.push(ack);
        }
        let acks = AckBatch { acks };
        if stored {
            BatchAnswer::AfterCommit(acks)
        } else {
            BatchAnswer::Now(acks)
        }
    }

    /// Checks, decrypts and queues one envelope for storage, and does what
    /// its payload says.
    pub fn receive<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        source: Source<P>,
        bytes: &[u8],
    ) -> Result<Received, RejectReason> {
        let me = self.me.device_id();
        let arrival =
            self.inbox
                .open(&me, source, bytes, &self.contacts, &mut self.olm, |key| {
                    lookup.seen(key)
                })?;
        let Opened {
            account,
            keys,
            payload,
            digest,
            seen,
        } = match arrival {
            Arrival::New(opened) => *opened,
            Arrival::InProgress => return Ok(Received::InProgress),
            Arrival::AlreadyStored => return Ok(Received::AlreadyStored),
        };
        // Accepted: its digest goes to disk in the same batch as what it
        // carries.
        self.effects.extend([
            DeviceEffect::Write(DeviceWrite::Seen(seen, ctx.now.unix_ms)),
            DeviceEffect::After(DeviceAfter::Received(digest)),
        ]);
        let conversation = ConversationId::direct(&self.me.account, &account);
        ctx.clock.observe(payload.id, ctx.now);
        let stored = Received::Queued {
            ack: DirectAck::Stored,
            text: None,
        };
        if account == self.me.account {
            self.on_own_device(ctx, lookup, keys.device_id, payload)?;
            return Ok(stored);
        }
        let Some(contact) = self.contacts.name_of(&account).cloned() else {
            // A group peer, not a contact: only group control (and where
            // its home relays are) is theirs to send.
            if let Body::Group(control) = payload.body {
                self.with_groups(ctx, |groups, ctx| {
                    groups.handle_control(ctx, lookup, account, keys.device_id, control);
                });
            } else if let Body::Relays(stated) = payload.body {
                // Where its group control waits for it when it is away.
                self.take_home_relays(ctx, keys.device_id, stated);
            } else {
                self.note(
                    Severity::Debug,
                    "a group peer sent something other than group control; dropped",
                );
            }
            return Ok(stored);
        };
        if self.contacts.is_blocked(&account) && !matches!(payload.body, Body::Group(_)) {
            // Taken (so its relay copy goes) and dropped: no message, no
            // receipt. Group control still counts, so the groups we share
            // stay in step.
            self.note(Severity::Debug, "dropped what a blocked contact sent");
            return Ok(stored);
        }
        let (timer, body) = payload.body.untimed();
        match body {
            Body::Group(control) => self.with_groups(ctx, |groups, ctx| {
                groups.handle_control(ctx, lookup, account, keys.device_id, control);
            }),
            Body::Text(text) => {
                let message = Incoming::new(payload.id, text, timer);
                return self.take_message(ctx, lookup, contact, account, message, None);
            }
            Body::Timer(secs) => {
                let known = lookup
                    .message(&conversation, payload.id)
                    .map_err(|_| RejectReason::Unavailable)?;
                if known.is_none() {
                    self.take_timer(ctx, account, account, payload.id, secs, Status::Delivered);
                }
                // A delivered receipt tells the sender the change arrived.
                return Ok(Received::Queued {
                    ack: DirectAck::Stored,
                    text: Some((account, payload.id)),
                });
            }
            Body::Timed { .. } => self.note(
                Severity::Warn,
                "a timed message inside a timed message; dropped",
            ),
            Body::File(offer) => {
                let file = FileRecord {
                    manifest: offer.manifest.to_bytes(),
                    outgoing: false,
                    source: keys.device_id,
                    state: FileState::Offered,
                    path: None,
                    error: None,
                };
                let message = Incoming::new(payload.id, offer.caption, timer);
                return self.take_message(ctx, lookup, contact, account, message, Some(file));
            }
            Body::Card(card) => self.take_pushed_card(ctx, &contact, account, *card),
            Body::Sync(_) => self.note(
                Severity::Warn,
                "a contact sent what only our own devices send; dropped",
            ),
            Body::PresenceKey(key) => self
                .effects
                .push_back(DeviceEffect::PresenceKey { account, key }),
            Body::DepositRight(right) => self.take_contact_rights(keys.device_id, right, None),
            Body::Relays(stated) => {
                self.take_home_relays(ctx, keys.device_id, stated);
            }
            Body::Mailbox { right, grant } => {
                self.take_contact_rights(keys.device_id, *right, Some(*grant));
            }
            Body::Receipt { kind, ids } => {
                let status = match kind {
                    ReceiptKind::Delivered => Status::Delivered,
                    ReceiptKind::Read => Status::Read,
                };
                for id in ids {
                    // The device has it: whatever waited at its relays for
                    // a direct resend is done.
                    self.settle_outbox(&(id, keys.device_id));
                    let current = lookup
                        .message(&conversation, id)
                        .map_err(|_| RejectReason::Unavailable)?;
                    if current.is_some_and(|m| m.outgoing && m.status < status) {
                        let notice = DeviceNotice::Status {
                            contact: contact.clone(),
                            id,
                            status,
                        };
                        self.effects.extend([
                            DeviceEffect::Write(DeviceWrite::RaiseStatus(conversation, id, status)),
                            DeviceEffect::After(DeviceAfter::Notice(Box::new(notice))),
                        ]);
                    }
                }
            }
        }
        Ok(stored)
    }

    /// A text or file from the contact `contact` (of `account`): stored
    /// unless it is already, and told.
    #[allow(clippy::too_many_arguments)]
    fn take_message<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        contact: String,
        account: AccountId,
        message: Incoming,
        file: Option<FileRecord>,
    ) -> Result<Received, RejectReason> {
        let Incoming { id, text, timer } = message;
        let conversation = ConversationId::direct(&self.me.account, &account);
        let known = lookup
            .message(&conversation, id)
            .map_err(|_| RejectReason::Unavailable)?;
        if known.is_some() {
            return Ok(Received::Queued {
                ack: DirectAck::Duplicate,
                text: None,
            });
        }
        let record = MessageRecord {
            id,
            from: account,
            outgoing: false,
            text,
            status: Status::Delivered,
            sent_at_ms: id.millis(),
            stored_at_ms: ctx.now.unix_ms,
            timer_secs: timer,
            kind: MessageKind::Message,
        };
        if record
            .expires_at_ms()
            .is_some_and(|at| at <= ctx.now.unix_ms)
        {
            // It disappeared before it arrived: taken (so it is not sent
            // again) and receipted, never stored or shown.
            return Ok(Received::Queued {
                ack: DirectAck::Stored,
                text: Some((account, id)),
            });
        }
        self.write_message(conversation, record.clone(), file.clone());
        let notice = DeviceNotice::Message {
            contact,
            message: record,
            file,
        };
        self.effects
            .push_back(DeviceEffect::After(DeviceAfter::Notice(Box::new(notice))));
        Ok(Received::Queued {
            ack: DirectAck::Stored,
            text: Some((account, id)),
        })
    }
}

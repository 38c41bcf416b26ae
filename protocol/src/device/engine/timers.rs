//! Disappearing messages in 1:1 conversations: the conversation's timer,
//! set by either side (the later change wins), and what it does to the
//! messages that follow. A group's timer is an op (`Action::Timer`).

use std::fmt;
use std::hash::Hash;

use super::{DeviceAfter, DeviceEffect, DeviceEngine, DeviceNotice, DeviceWrite};
use crate::device::{Ctx, MessageKind, MessageRecord, OutboxKind, SendError, Status};
use crate::{AccountId, Body, ConversationId, MessageId, Payload, SyncItem};

/// A 1:1 conversation's disappearing timer and the change that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationTimer {
    /// Seconds a message lasts after it was sent; `None`: kept.
    pub secs: Option<u32>,
    /// The id of the change (its clock orders changes made on both sides).
    pub set_by: MessageId,
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// A conversation's timer as stored (at start).
    pub fn restore_timer(&mut self, with: AccountId, timer: ConversationTimer) {
        self.timers.insert(with, timer);
    }

    /// The timer of the conversation with `with` and the change that set
    /// it, if it was ever set.
    pub fn timer(&self, with: &AccountId) -> Option<ConversationTimer> {
        self.timers.get(with).copied()
    }

    /// The disappearing timer of the conversation with `with`, in seconds.
    pub fn timer_of(&self, with: &AccountId) -> Option<u32> {
        self.timers.get(with).and_then(|t| t.secs)
    }

    /// Sets the timer of the conversation with the contact named
    /// `contact`: the contact's devices and ours hear it, and the
    /// conversation shows the change.
    pub fn set_timer(
        &mut self,
        ctx: &mut Ctx<'_>,
        contact: &str,
        secs: Option<u32>,
    ) -> Result<MessageId, SendError> {
        let account = self.writable_contact(contact)?;
        let id = ctx.next_id();
        let payload = Payload {
            sender_account: self.me.account,
            sender_device: self.me.device_id(),
            id,
            body: Body::Timer(secs),
        };
        self.enqueue(ctx, &account, OutboxKind::Message, &payload)?;
        self.take_timer(ctx, account, self.me.account, id, secs, Status::Pending);
        self.tell_own_devices(
            ctx,
            SyncItem::Timer {
                with: account,
                id,
                secs,
            },
        );
        Ok(id)
    }

    /// Messages that disappeared: whatever of them still waits to be sent
    /// is not sent (the host deletes the stored entries with the messages).
    pub fn forget_messages(&mut self, ids: &[MessageId]) {
        for id in ids {
            for key in self.outbox.keys_of(*id) {
                self.outbox.remove(&key);
                self.problems.remove(&key);
            }
        }
    }

    /// A change of the timer with `with`, made by `author` under `id`:
    /// taken if it is newer than the one held, and shown in the
    /// conversation either way (each side sees what the other did).
    /// Returns whether it is the conversation's timer now.
    pub(super) fn take_timer(
        &mut self,
        ctx: &mut Ctx<'_>,
        with: AccountId,
        author: AccountId,
        id: MessageId,
        secs: Option<u32>,
        status: Status,
    ) -> bool {
        let newer = self.timers.get(&with).is_none_or(|t| t.set_by < id);
        if newer {
            let timer = ConversationTimer { secs, set_by: id };
            self.timers.insert(with, timer);
            self.effects
                .push_back(DeviceEffect::Write(DeviceWrite::Timer(with, timer)));
        }
        let record = MessageRecord {
            id,
            from: author,
            outgoing: author == self.me.account,
            text: String::new(),
            status,
            sent_at_ms: id.millis(),
            stored_at_ms: ctx.now.unix_ms,
            timer_secs: None,
            kind: MessageKind::Timer(secs),
        };
        let conversation = ConversationId::direct(&self.me.account, &with);
        self.write_message(conversation, record.clone(), None);
        if let Some(contact) = self.contacts.name_of(&with).cloned() {
            let notice = DeviceNotice::Message {
                contact,
                message: record,
                file: None,
            };
            self.effects
                .push_back(DeviceEffect::After(DeviceAfter::Notice(Box::new(notice))));
        }
        newer
    }
}

//! The account's other devices: what this device sends or reads is told to
//! them (`Body::Sync`), and what they tell is taken as ours, so every
//! device shows the whole conversation. A newer card of the account from
//! one of them (a device was linked) becomes our list too.

use std::fmt;
use std::hash::Hash;

use super::{DeviceEffect, DeviceEngine, DeviceWrite};
use crate::device::{
    ContactRecord, Ctx, DeviceLookup, MessageRecord, OutboxKind, Severity, Status,
};
use crate::envelope::RejectReason;
use crate::{Body, ContactCard, ConversationId, DeviceId, MessageId, Payload, SyncItem};

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// Our account's card (at start, and whenever our list changes): its
    /// other devices get what this one sends and reads.
    pub fn set_own_card(&mut self, ctx: &mut Ctx<'_>, card: ContactCard) {
        let record = ContactRecord {
            name: card.name.clone(),
            card: String::new(),
            account: self.me.account,
            send_receipts: false,
            added_at_ms: ctx.now.unix_ms,
        };
        let reach = (self.reach)(&card);
        let me = self.me.device_id();
        self.contacts.set_own(record, card, reach, &me);
        if self.contacts.has_other_devices() {
            // Mail between our devices through their relays counts as a
            // contact's there.
            self.grant_right(ctx, &self.me.account.clone());
        }
    }

    /// Tells our other devices `item` (nothing when there are none).
    pub(super) fn tell_own_devices(&mut self, ctx: &mut Ctx<'_>, item: SyncItem) {
        if !self.contacts.has_other_devices() {
            return;
        }
        let account = self.me.account;
        if self
            .send_control(ctx, &account, OutboxKind::Account, Body::Sync(item))
            .is_err()
        {
            self.note(
                Severity::Warn,
                "could not queue a copy for our other devices",
            );
        }
    }

    /// What another device of our account sent.
    pub(super) fn on_own_device<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        from: DeviceId,
        payload: Payload,
    ) -> Result<(), RejectReason> {
        match payload.body {
            Body::Sync(SyncItem::Sent { with, id, text }) => {
                let conversation = ConversationId::direct(&self.me.account, &with);
                let known = lookup
                    .message(&conversation, id)
                    .map_err(|_| RejectReason::Unavailable)?;
                if known.is_none() && self.contacts.is_contact(&with) {
                    ctx.clock.observe(id, ctx.now);
                    let record = MessageRecord {
                        id,
                        from: self.me.account,
                        outgoing: true,
                        text,
                        // Another device of ours has it durably, and queued
                        // it to the contact: what it hears next (a read
                        // receipt comes to every device) raises it here too.
                        status: Status::Sent,
                        sent_at_ms: id.millis(),
                        stored_at_ms: ctx.now.unix_ms,
                    };
                    self.effects
                        .push_back(DeviceEffect::Write(DeviceWrite::Message(
                            conversation,
                            record,
                        )));
                }
            }
            Body::Sync(SyncItem::Read { with, ids }) => {
                let conversation = ConversationId::direct(&self.me.account, &with);
                let unread = lookup
                    .unread(&conversation)
                    .map_err(|_| RejectReason::Unavailable)?;
                let read: Vec<MessageId> =
                    ids.into_iter().filter(|id| unread.contains(id)).collect();
                if !read.is_empty() {
                    self.effects
                        .push_back(DeviceEffect::Write(DeviceWrite::MarkRead(
                            conversation,
                            read,
                        )));
                }
            }
            Body::Card(card) => self.take_own_card(ctx, *card),
            Body::DepositRight(right) => {
                if right.device == from && right.verify() && self.rights.get(&from) != Some(&right)
                {
                    self.rights.insert(from, right);
                    self.effects
                        .push_back(DeviceEffect::Write(DeviceWrite::DepositRight(from, right)));
                }
            }
            _ => self.note(
                Severity::Debug,
                "another device of ours sent something devices do not sync; dropped",
            ),
        }
        Ok(())
    }

    /// A card of our account from one of our devices: taken when it
    /// verifies and its list is newer than the one we know.
    fn take_own_card(&mut self, ctx: &mut Ctx<'_>, card: ContactCard) {
        let newer = self
            .contacts
            .own()
            .is_none_or(|o| card.device_list.issued_at_ms > o.card.device_list.issued_at_ms);
        if card.account() != self.me.account || card.verify().is_err() || !newer {
            self.note(
                Severity::Debug,
                "a card of our account that is not newer (or does not verify); ignored",
            );
            return;
        }
        self.set_own_card(ctx, card.clone());
        self.effects
            .push_back(DeviceEffect::OwnCard(Box::new(card)));
    }
}

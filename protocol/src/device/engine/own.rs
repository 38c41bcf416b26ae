//! The account's other devices: what this device sends or reads is told to
//! them (`Body::Sync`), and what they tell is taken as ours, so every
//! device shows the whole conversation. A newer card of the account from
//! one of them (a device was linked) becomes our list too.

use std::fmt;
use std::hash::Hash;

use super::{DeviceEffect, DeviceEngine, DeviceWrite};
use crate::device::outbox::OutboxKey;
use crate::device::{
    ContactRecord, Ctx, DeviceLookup, FileRecord, FileState, MessageKind, MessageRecord,
    OutboxKind, Severity, Status,
};
use crate::envelope::RejectReason;
use crate::{
    AccountId, Body, ContactCard, ConversationId, DeviceId, DeviceKeys, MessageId, Payload,
    SyncItem, Wire,
};

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// Our account's card (at start, and whenever our list changes): its
    /// other devices get what this one sends and reads.
    pub fn set_own_card(&mut self, ctx: &mut Ctx<'_>, card: ContactCard) {
        // Devices the new list leaves out are revoked: refused from now on,
        // and nothing queued goes to them.
        if let Some(old) = self.contacts.own() {
            let gone: Vec<DeviceKeys> = old
                .card
                .device_list
                .devices
                .iter()
                .filter(|d| card.device_list.device(&d.device_id).is_none())
                .copied()
                .collect();
            let any_gone = !gone.is_empty();
            for keys in gone {
                let peer = self.contacts.peer_of(&keys.device_id);
                self.contacts.revoke_own(&keys, peer);
                self.drop_queued_for(&keys.device_id);
            }
            if any_gone {
                let me = self.me.account;
                self.with_groups(ctx, |groups, _| groups.device_gone(&me));
            }
        }
        let record = ContactRecord {
            name: card.name.clone(),
            card: String::new(),
            account: self.me.account,
            send_receipts: false,
            added_at_ms: ctx.now.unix_ms,
        };
        let reach = (self.reach)(&card);
        let me = self.me.device_id();
        self.contacts.set_own(record, card.clone(), reach, &me);
        self.groups
            .set_own_devices(self.contacts.has_other_devices());
        // Members who are not our contacts learn the list from the groups.
        self.with_groups(ctx, |groups, ctx| groups.refresh_own_card(ctx, &card));
        if self.contacts.has_other_devices() {
            // Mail between our devices through their relays counts as a
            // contact's there.
            self.grant_right(ctx, &self.me.account.clone());
        }
    }

    /// A revoked device of our account, as stored (at start).
    pub fn restore_revoked(&mut self, keys: &DeviceKeys, peer: Option<P>) {
        self.contacts.revoke_own(keys, peer);
    }

    /// This device is no longer on its account's list (as stored, at
    /// start, or just learnt): it sends nothing more.
    pub fn set_revoked(&mut self) {
        self.revoked = true;
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked
    }

    /// An own device answered `Revoked`.
    pub(super) fn learn_revoked(&mut self) {
        if self.revoked {
            return;
        }
        self.revoked = true;
        self.note(Severity::Warn, "this device was revoked by its account");
        self.effects.push_back(DeviceEffect::Revoked);
    }

    /// Whether the outbox entry goes to our own account.
    pub(super) fn is_to_own(&self, key: &OutboxKey) -> bool {
        self.outbox
            .get(key)
            .is_some_and(|e| e.record().recipient == self.me.account)
    }

    /// Drops every outbox entry for `device` (a device no longer listed).
    pub(super) fn drop_queued_for(&mut self, device: &DeviceId) {
        for key in self.outbox.for_device(device) {
            if self.outbox.remove(&key).is_some() {
                self.effects
                    .push_back(DeviceEffect::Write(DeviceWrite::DropOutbox(key)));
            }
        }
    }

    /// Tells our other devices `item` (nothing when there are none).
    pub fn tell_own_devices(&mut self, ctx: &mut Ctx<'_>, item: SyncItem) {
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
        let (timer, body) = match payload.body {
            Body::Sync(SyncItem::Timed { secs, item }) => (Some(secs), Body::Sync(*item)),
            body => (None, body),
        };
        match body {
            Body::Sync(SyncItem::Sent { with, id, text }) => {
                self.take_own_sent(ctx, lookup, with, (id, text, timer), None)?;
            }
            Body::Sync(SyncItem::Timer { with, id, secs }) => {
                let conversation = ConversationId::direct(&self.me.account, &with);
                let known = lookup
                    .message(&conversation, id)
                    .map_err(|_| RejectReason::Unavailable)?;
                if known.is_none() && self.contacts.is_contact(&with) {
                    ctx.clock.observe(id, ctx.now);
                    let me = self.me.account;
                    self.take_timer(ctx, with, me, id, secs, Status::Sent);
                }
            }
            Body::Sync(SyncItem::Timed { .. }) => self.note(
                Severity::Warn,
                "a timed sync item inside a timed one; dropped",
            ),
            Body::Sync(SyncItem::SentFile { with, id, offer }) => {
                let file = FileRecord {
                    manifest: offer.manifest.to_bytes(),
                    outgoing: true,
                    source: from,
                    state: FileState::Offered,
                    path: None,
                    error: None,
                };
                self.take_own_sent(ctx, lookup, with, (id, offer.caption, timer), Some(file))?;
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
            Body::Sync(
                item @ (SyncItem::Contact { .. }
                | SyncItem::ContactRemoved { .. }
                | SyncItem::Presence { .. }),
            ) => {
                self.effects.push_back(DeviceEffect::OwnContact(item));
            }
            Body::Card(card) => self.take_own_card(ctx, *card),
            // Our own room keys and group control: this device is a member
            // device of every group of the account.
            Body::Group(control) => {
                let account = self.me.account;
                self.with_groups(ctx, |groups, ctx| {
                    groups.handle_control(ctx, lookup, account, from, control);
                });
            }
            Body::DepositRight(right) => {
                self.take_rights(from, right, None);
            }
            Body::Mailbox { right, grant } => {
                self.take_rights(from, *right, Some(*grant));
            }
            Body::Relays(stated) => {
                self.take_home_relays(ctx, from, stated);
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

    /// What another device of ours sent to `with`: stored as ours (sent,
    /// not pending: that device has it durably and queued it).
    fn take_own_sent<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        with: AccountId,
        (id, text, timer): (MessageId, String, Option<u32>),
        file: Option<FileRecord>,
    ) -> Result<(), RejectReason> {
        let conversation = ConversationId::direct(&self.me.account, &with);
        let known = lookup
            .message(&conversation, id)
            .map_err(|_| RejectReason::Unavailable)?;
        if known.is_some() || !self.contacts.is_contact(&with) {
            return Ok(());
        }
        ctx.clock.observe(id, ctx.now);
        let record = MessageRecord {
            id,
            from: self.me.account,
            outgoing: true,
            text,
            // What it hears next (a read receipt comes to every device)
            // raises it here too.
            status: Status::Sent,
            sent_at_ms: id.millis(),
            stored_at_ms: ctx.now.unix_ms,
            timer_secs: timer,
            kind: MessageKind::Message,
        };
        if record
            .expires_at_ms()
            .is_some_and(|at| at <= ctx.now.unix_ms)
        {
            return Ok(());
        }
        self.write_message(conversation, record, file);
        Ok(())
    }
}

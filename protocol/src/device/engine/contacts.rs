//! Adding a contact, taking a newer card of theirs, and their settings.

use std::fmt;
use std::hash::Hash;

use super::{DeviceAfter, DeviceEffect, DeviceEngine, DeviceNotice, DeviceWrite};
use crate::device::contacts::keys_fingerprint;
use crate::device::{ContactRecord, ContactTrust, Ctx, OutboxKind, Severity};
use crate::{AccountId, ContactCard, ConversationId, DeviceId, Now};

/// Why a contact was not added or updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    #[error("no contact named {name:?}")]
    Unknown { name: String },
    #[error("a contact named {name:?} already exists")]
    DuplicateName { name: String },
    #[error("this account is already a contact, named {existing:?}")]
    DuplicateAccount { existing: String },
    #[error("that card is your own")]
    OwnCard,
    #[error("the card of {name:?} is of another account")]
    AnotherAccount { name: String },
    #[error("the card of {name:?} is older than the one we have")]
    OlderCard { name: String },
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// Adds the holder of `card` as `name` (`card_text`: the card as
    /// given, stored as is). The host then shares our presence key with
    /// them and reads our mailboxes again (mail from them may wait there).
    pub fn add_contact(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: String,
        card: ContactCard,
        card_text: String,
    ) -> Result<ContactRecord, ContactError> {
        let account = card.account();
        if account == self.me.account {
            return Err(ContactError::OwnCard);
        }
        if self.contacts.has_name(&name) {
            return Err(ContactError::DuplicateName { name });
        }
        if let Some(existing) = self.contacts.name_of(&account) {
            return Err(ContactError::DuplicateAccount {
                existing: existing.clone(),
            });
        }
        let record = ContactRecord {
            name,
            card: card_text,
            account,
            send_receipts: true,
            added_at_ms: ctx.now.unix_ms,
        };
        self.effects
            .push_back(DeviceEffect::Write(DeviceWrite::Contact(record.clone())));
        let reach = (self.reach)(&card);
        self.contacts.insert(record.clone(), card, reach);
        if self.contacts.trust(&account).removed {
            // Taken back: its right counts again.
            self.set_trust(account, ContactTrust::default());
        }
        self.grant_right(ctx, &account);
        Ok(record)
    }

    /// Takes a newer card of the contact `name` (its devices, addresses and
    /// relays may have changed): what is queued for them is tried again.
    pub fn update_contact(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: String,
        card: ContactCard,
        card_text: String,
    ) -> Result<ContactRecord, ContactError> {
        let Some(existing) = self.contacts.contact(&name) else {
            return Err(ContactError::Unknown { name });
        };
        if existing.card.account() != card.account() {
            return Err(ContactError::AnotherAccount { name });
        }
        if card.device_list.issued_at_ms < existing.card.device_list.issued_at_ms {
            return Err(ContactError::OlderCard { name });
        }
        let mut record = existing.record.clone();
        record.card = card_text;
        let old_card = existing.card.clone();
        let verified_before = !self.contacts.keys_changed(&card.account());
        // Forget the old card's devices; the new card lists the current ones.
        // What waited for a device the new card leaves out never goes.
        self.contacts.forget_devices(&old_card);
        let mut any_gone = false;
        for device in &old_card.device_list.devices {
            if card.device_list.device(&device.device_id).is_none() {
                self.drop_queued_for(&device.device_id);
                any_gone = true;
            }
        }
        if any_gone {
            // Our sessions in the groups we share end: the device gone
            // never gets the next ones.
            let account = card.account();
            self.with_groups(ctx, |groups, _| groups.device_gone(&account));
        }
        self.effects
            .push_back(DeviceEffect::Write(DeviceWrite::Contact(record.clone())));
        let reach = (self.reach)(&card);
        let account = card.account();
        self.contacts.insert(record.clone(), card, reach);
        if verified_before && self.contacts.keys_changed(&account) {
            self.note(Severity::Warn, "a verified contact's keys changed");
            let notice = DeviceNotice::KeysChanged {
                contact: record.name.clone(),
            };
            self.effects
                .push_back(DeviceEffect::After(DeviceAfter::Notice(Box::new(notice))));
        }
        // New addresses or relays: try what is queued for them again now.
        for device in &old_card.device_list.devices {
            self.routes.reached(&device.device_id);
            self.outbox.wake(&device.device_id, ctx.now);
        }
        Ok(record)
    }

    /// Sends our account's new `card` to every contact that is not blocked
    /// or removed: they take its device list as ours (see
    /// [`Body::Card`](crate::Body::Card)).
    pub fn push_card(&mut self, ctx: &mut Ctx<'_>, card: &ContactCard) {
        let accounts: Vec<AccountId> = self
            .contacts
            .contacts()
            .map(|c| c.record.account)
            .filter(|a| !self.contacts.is_blocked(a) && !self.contacts.trust(a).removed)
            .collect();
        // Our other devices take it as the account's list too.
        let own = self.contacts.has_other_devices().then_some(self.me.account);
        for account in accounts.into_iter().chain(own) {
            let body = crate::Body::Card(Box::new(card.clone()));
            if self
                .send_control(ctx, &account, OutboxKind::Account, body)
                .is_err()
            {
                self.note(Severity::Warn, "could not queue our new card for a contact");
            }
        }
    }

    /// A card the contact's device pushed (it linked or revoked a device):
    /// taken if it is the sender's own account's, verifies, and its device
    /// list is newer than the one held.
    pub(super) fn take_pushed_card(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        from: AccountId,
        card: ContactCard,
    ) {
        if card.account() != from {
            self.note(
                Severity::Warn,
                "a contact pushed a card of another account; ignored",
            );
            return;
        }
        if card.verify().is_err() {
            self.note(
                Severity::Warn,
                "a contact pushed a card that does not verify; ignored",
            );
            return;
        }
        let newer = self
            .contacts
            .contact(name)
            .is_some_and(|c| card.device_list.issued_at_ms > c.card.device_list.issued_at_ms);
        if !newer {
            self.note(
                Severity::Debug,
                "a pushed card is not newer than ours; ignored",
            );
            return;
        }
        let text = card.to_string();
        if self
            .update_contact(ctx, name.to_owned(), card, text)
            .is_err()
        {
            self.note(Severity::Warn, "a pushed card was not taken");
        }
    }

    /// Whether the contact `name` gets our delivered and read receipts.
    pub fn set_receipts(&mut self, name: &str, on: bool) -> Result<ContactRecord, ContactError> {
        let Some(c) = self.contacts.contact_mut(name) else {
            return Err(ContactError::Unknown {
                name: name.to_owned(),
            });
        };
        c.record.send_receipts = on;
        let record = c.record.clone();
        self.effects
            .push_back(DeviceEffect::Write(DeviceWrite::Contact(record.clone())));
        Ok(record)
    }
}

/// What removing a contact left behind for the host to clear.
#[derive(Debug, Clone)]
pub struct Removed {
    pub record: ContactRecord,
    /// Its devices (the host drops their connections and presence state).
    pub devices: Vec<DeviceId>,
    /// Still a member of one of our groups: known as a group peer, and its
    /// group control still flows.
    pub group_peer: bool,
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// Removes the contact `name`: its card, what is queued for it in our
    /// conversation, its deposit rights for us, our Olm sessions with it
    /// (unless a group we share still needs them) and its trust; the
    /// conversation too with `delete_history`. Afterwards it is a
    /// stranger: what it sends is refused. The host rotates our presence
    /// key away from it.
    pub fn remove_contact(
        &mut self,
        now: Now,
        name: &str,
        delete_history: bool,
    ) -> Result<Removed, ContactError> {
        let Some(contact) = self.contacts.remove(name) else {
            return Err(ContactError::Unknown {
                name: name.to_owned(),
            });
        };
        let account = contact.card.account();
        let conversation = ConversationId::direct(&self.me.account, &account);
        let devices: Vec<DeviceId> = contact.card.device_list.ids().collect();
        for device in &devices {
            for key in self.outbox.for_device(device) {
                if self
                    .outbox
                    .get(&key)
                    .is_some_and(|e| e.record().conversation == conversation)
                {
                    self.outbox.remove(&key);
                    self.problems.remove(&key);
                    self.effects
                        .push_back(DeviceEffect::Write(DeviceWrite::DropOutbox(key)));
                }
            }
            self.rights.remove(device);
            self.grants.remove(device);
            self.forget_stated(device);
            self.routes.reached(device);
        }
        self.granted.remove(&account);
        self.groups.set_blocked(account, false);
        // A member of a group we share stays known as a group peer.
        self.sync_peers(now.unix_ms);
        let group_peer = self.contacts.is_peer(&account);
        if !group_peer {
            for device in &contact.card.device_list.devices {
                self.olm.drop_sessions(&device.olm_curve25519);
            }
        }
        self.effects
            .push_back(DeviceEffect::Write(DeviceWrite::ForgetContact {
                name: name.to_owned(),
                account,
                devices: devices.clone(),
                history: delete_history.then_some(conversation),
            }));
        // Its block and verification go; the right we gave it stops
        // counting at our relays.
        let removed = ContactTrust {
            removed: true,
            ..ContactTrust::default()
        };
        self.set_trust(account, removed);
        Ok(Removed {
            record: contact.record,
            devices,
            group_peer,
        })
    }

    /// Blocks (or unblocks) the contact `name`. Blocked, nothing it sends
    /// is stored (mail from it is opened and dropped; the host refuses its
    /// connections), sending to it is refused, and what was queued for it
    /// waits, in order, until it is unblocked.
    pub fn block_contact(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        blocked: bool,
    ) -> Result<(ContactRecord, ContactTrust), ContactError> {
        let (record, account, devices) = self.contact_parts(name)?;
        let mut trust = self.contacts.trust(&account);
        trust.blocked = blocked;
        self.set_trust(account, trust);
        if !blocked {
            for device in &devices {
                self.outbox.wake(device, ctx.now);
                self.pump(ctx, device);
            }
        }
        Ok((record, trust))
    }

    /// Marks the contact's current keys verified (the user compared the
    /// safety number), or takes the mark away.
    pub fn verify_contact(
        &mut self,
        name: &str,
        verified: bool,
    ) -> Result<(ContactRecord, ContactTrust), ContactError> {
        let (record, account, _) = self.contact_parts(name)?;
        let mut trust = self.contacts.trust(&account);
        trust.verified = match (verified, self.contacts.contact(name)) {
            (true, Some(c)) => Some(keys_fingerprint(&c.card)),
            _ => None,
        };
        self.set_trust(account, trust);
        Ok((record, trust))
    }

    fn contact_parts(
        &self,
        name: &str,
    ) -> Result<(ContactRecord, AccountId, Vec<DeviceId>), ContactError> {
        let c = self
            .contacts
            .contact(name)
            .ok_or_else(|| ContactError::Unknown {
                name: name.to_owned(),
            })?;
        let devices = c.card.device_list.ids();
        Ok((c.record.clone(), c.card.account(), devices.collect()))
    }

    /// What the user decided about a contact, as stored (at start).
    pub fn restore_trust(&mut self, account: AccountId, trust: ContactTrust) {
        self.contacts.set_trust(account, trust);
        self.groups.set_blocked(account, trust.blocked);
    }

    fn set_trust(&mut self, account: AccountId, trust: ContactTrust) {
        self.restore_trust(account, trust);
        self.effects
            .push_back(DeviceEffect::Write(DeviceWrite::Trust(account, trust)));
    }
}

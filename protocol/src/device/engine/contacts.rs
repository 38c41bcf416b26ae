//! Adding a contact, taking a newer card of theirs, and their settings.

use std::fmt;
use std::hash::Hash;

use super::{DeviceEffect, DeviceEngine, DeviceWrite};
use crate::ContactCard;
use crate::device::{ContactRecord, Ctx};

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
        self.grant_right(ctx, &account);
        Ok(record)
    }

    /// Takes a newer card of the contact `name` (its devices, addresses and
    /// relays may have changed): what is queued for them is tried again.
    pub fn update_contact(
        &mut self,
        ctx: &Ctx<'_>,
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
        // Forget the old card's devices; the new card lists the current ones.
        self.contacts.forget_devices(&old_card);
        self.effects
            .push_back(DeviceEffect::Write(DeviceWrite::Contact(record.clone())));
        let reach = (self.reach)(&card);
        self.contacts.insert(record.clone(), card, reach);
        // New addresses or relays: try what is queued for them again now.
        for device in &old_card.device_list.devices {
            self.routes.reached(&device.device_id);
            self.outbox.wake(&device.device_id, ctx.now);
        }
        Ok(record)
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

//! The account's devices as this device keeps them: our card in the
//! engine (what the other devices get), the list pushed to contacts,
//! `hush device list`, and revocation (`hush device revoke`).

use hush_protocol::{AccountId, ContactCard, DeviceKeys, DeviceList, SyncItem, Wire};

use super::EventLoop;
use super::contacts::ContactAction;
use crate::error::NodeError;
use crate::node::Reply;
use crate::records::{IdentityRecord, OwnDevice};
use crate::view::{DeviceView, Event, rfc3339};

impl EventLoop {
    /// At start: a device list newer than the one last pushed (this device
    /// was just linked, or the old device stopped before its push was
    /// stored) goes to every contact.
    pub(super) fn push_list_if_new(&mut self) {
        let mut record = match self.store.identity() {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the identity to push the device list");
                return;
            }
        };
        if record.pushed_list_at_ms >= self.me.device_list.issued_at_ms {
            return;
        }
        let card = self.own_card();
        self.engine.push_card(ctx!(self), &card);
        self.drive();
        record.pushed_list_at_ms = self.me.device_list.issued_at_ms;
        if let Err(e) = self.store.put_identity(&record) {
            tracing::warn!(error = %e, "could not note the device list as pushed");
        }
    }

    /// Our account's card as the engine should know it (its other devices
    /// get copies of what we send and read).
    pub(super) fn own_card_to_engine(&mut self) {
        let card = self.own_card();
        self.engine.set_own_card(ctx!(self), card);
        self.drive();
    }

    /// Another device of ours sent a newer card of the account: its list
    /// becomes ours (stored now, like a linked device's).
    pub(super) fn take_own_card(&mut self, card: ContactCard) {
        let gone = revoked_by(&self.me.device_list, &card.device_list);
        if let Err(e) = self.store.add_revoked_devices(&gone) {
            tracing::warn!(error = %e, "could not store the revoked devices");
        }
        let stored = self.store.identity().and_then(|mut record| {
            record.device_list = card.device_list.to_bytes();
            record.device_list_issued_at_ms = card.device_list.issued_at_ms;
            record.pushed_list_at_ms = record.pushed_list_at_ms.max(card.device_list.issued_at_ms);
            if self.me.account_key().is_none() {
                record.card = card.to_string();
            }
            self.store.put_identity(&record)
        });
        if let Err(e) = stored {
            tracing::warn!(error = %e, "could not store our account's newer device list");
            return;
        }
        tracing::info!(
            devices = card.device_list.devices.len(),
            "our account's device list changed"
        );
        self.me.device_list = card.device_list.clone();
        if let crate::identity::Signer::Card(held) = &mut self.me.signer {
            *held = card;
        }
    }

    /// The account's devices (`hush device list`).
    pub(super) fn device_views(&self) -> Result<Vec<DeviceView>, NodeError> {
        let record = self.store.identity()?;
        let me = self.me.device_id();
        Ok(own_devices(&record, &self.me.device_list)
            .into_iter()
            .map(|d| DeviceView {
                this_device: d.device == me,
                account_key: (d.device == me).then(|| self.me.account_key().is_some()),
                last_seen: (d.device != me)
                    .then(|| self.own_last_seen(&d.device))
                    .flatten(),
                name: d.name,
                device: d.device.to_string(),
                linked_at: (d.linked_at_ms > 0).then(|| rfc3339(d.linked_at_ms)),
            })
            .collect())
    }

    /// `online` while connected to our device `device`, else when it last
    /// was (this run).
    fn own_last_seen(&self, device: &hush_protocol::DeviceId) -> Option<String> {
        let peer = crate::network::peer_id(device)?;
        if self.swarm.is_connected(&peer) {
            return Some("online".into());
        }
        self.link.last_seen.get(device).map(|ms| rfc3339(*ms))
    }

    /// A connection to one of our other devices closed: when it was last
    /// seen.
    pub(super) fn own_device_left(&mut self, peer: &libp2p::PeerId) {
        if let Some((account, keys)) = self.engine.contacts.device_by_peer(peer)
            && account == self.me.account
        {
            let now = self.host_clock.now().unix_ms;
            self.link.last_seen.insert(keys.device_id, now);
        }
    }

    /// Takes `device` (a name or the start of an id) off the account's
    /// list: contacts and our other devices stop sending to it, and our
    /// devices answer it `Revoked`.
    pub(super) fn revoke_device(&mut self, device: &str, reply: Reply<DeviceView>) {
        let _ = reply.send(self.revoke(device));
    }

    fn revoke(&mut self, which: &str) -> Result<DeviceView, NodeError> {
        let key = self
            .me
            .account_key()
            .ok_or(NodeError::NoAccountKey)?
            .clone();
        let views = self.device_views()?;
        let matching: Vec<&DeviceView> = views
            .iter()
            .filter(|d| d.name == which || (which.len() >= 8 && d.device.starts_with(which)))
            .collect();
        let target = match matching.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(NodeError::UnknownDevice {
                    device: which.to_owned(),
                });
            }
            _ => {
                return Err(NodeError::AmbiguousDevice {
                    device: which.to_owned(),
                });
            }
        };
        if target.this_device {
            return Err(NodeError::RevokeSelf);
        }
        let old = self.me.device_list.clone();
        let (devices, proofs): (Vec<DeviceKeys>, Vec<[u8; 64]>) = old
            .devices
            .iter()
            .zip(old.proofs.iter())
            .filter(|(d, _)| d.device_id.to_string() != target.device)
            .map(|(d, p)| (*d, *p))
            .unzip();
        let issued_at_ms = self
            .host_clock
            .now()
            .unix_ms
            .max(old.issued_at_ms.saturating_add(1));
        let list = DeviceList::sign_proven(&key, issued_at_ms, devices, proofs);
        let gone = revoked_by(&old, &list);
        let mut record = self.store.identity()?;
        record
            .devices
            .retain(|d| d.device.to_string() != target.device);
        record.device_list = list.to_bytes();
        record.device_list_issued_at_ms = issued_at_ms;
        record.pushed_list_at_ms = issued_at_ms;
        self.store.add_revoked_devices(&gone)?;
        self.store.put_identity(&record)?;
        self.drop_revoked_mailboxes(&old, &list);
        self.me.device_list = list;
        let card = self.own_card();
        self.engine.set_own_card(ctx!(self), card.clone());
        self.engine.push_card(ctx!(self), &card);
        self.drive();
        tracing::info!(device = %target.device, name = %target.name, "revoked a device of the account");
        self.events.send(Event::DeviceRevoked {
            device: target.device.clone(),
            name: target.name.clone(),
        });
        Ok(target)
    }

    /// At start: the devices our account revoked, and whether this device
    /// is one of them.
    pub(super) fn restore_revoked(&mut self) -> Result<(), NodeError> {
        for bytes in self.store.revoked_devices()? {
            let keys = DeviceKeys::from_array(&bytes);
            let peer = crate::network::peer_id(&keys.device_id);
            self.engine.restore_revoked(&keys, peer);
        }
        if self.store.is_revoked()? {
            self.engine.set_revoked();
        }
        Ok(())
    }

    /// An own device answered that this device is no longer listed.
    pub(super) fn learned_revoked(&mut self) {
        if let Err(e) = self.store.set_revoked() {
            tracing::warn!(error = %e, "could not store that this device was revoked");
        }
        tracing::warn!("this device was removed from its account; it sends nothing more");
        self.events.send(Event::DeviceRevoked {
            device: self.me.device_id().to_string(),
            name: "this device".into(),
        });
    }
}

impl EventLoop {
    /// Tells our other devices how the contact `account` is now (added,
    /// card updated, settings changed), unless the change came from them.
    pub(super) fn tell_own_devices_contact(&mut self, account: &AccountId) {
        if self.applying_own_change {
            return;
        }
        let Some(name) = self.engine.contacts.name_of(account).cloned() else {
            return;
        };
        let Some(contact) = self.engine.contacts.contact(&name) else {
            return;
        };
        let trust = self.engine.contacts.trust(account);
        let item = SyncItem::Contact {
            name,
            card: contact.record.card.clone(),
            send_receipts: contact.record.send_receipts,
            blocked: trust.blocked,
            verified: trust.verified.is_some(),
        };
        self.engine.tell_own_devices(ctx!(self), item);
        self.drive();
    }

    /// Tells our other devices we removed the contact `account`.
    pub(super) fn tell_own_devices_removed(&mut self, account: AccountId, delete_history: bool) {
        if self.applying_own_change {
            return;
        }
        let item = SyncItem::ContactRemoved {
            account,
            delete_history,
        };
        self.engine.tell_own_devices(ctx!(self), item);
        self.drive();
    }

    /// A contact change another device of ours made, done here as the
    /// user would (events and all), not told back.
    pub(super) fn apply_own_contact(&mut self, item: SyncItem) {
        self.applying_own_change = true;
        match item {
            SyncItem::Contact {
                name,
                card,
                send_receipts,
                blocked,
                verified,
            } => self.apply_contact(name, card, send_receipts, blocked, verified),
            SyncItem::ContactRemoved {
                account,
                delete_history,
            } => {
                if let Some(name) = self.engine.contacts.name_of(&account).cloned() {
                    let (reply, _) = tokio::sync::oneshot::channel();
                    self.contact_action(&name, ContactAction::Remove { delete_history }, reply);
                }
            }
            SyncItem::Presence { with, share } => {
                let (reply, _) = tokio::sync::oneshot::channel();
                self.share_presence(with, share, reply);
            }
            SyncItem::Sent { .. }
            | SyncItem::Read { .. }
            | SyncItem::SentFile { .. }
            | SyncItem::Timed { .. }
            | SyncItem::Timer { .. } => {}
        }
        self.applying_own_change = false;
    }

    fn apply_contact(
        &mut self,
        name: String,
        card_text: String,
        send_receipts: bool,
        blocked: bool,
        verified: bool,
    ) {
        let Ok(card) = card_text.parse::<ContactCard>() else {
            tracing::warn!(
                "a contact from another device of ours has a card that does not verify; ignored"
            );
            return;
        };
        let account = card.account();
        let local = match self.engine.contacts.name_of(&account).cloned() {
            Some(local) => {
                let newer = self.engine.contacts.contact(&local).is_some_and(|c| {
                    card.device_list.issued_at_ms > c.card.device_list.issued_at_ms
                });
                if newer {
                    let (reply, _) = tokio::sync::oneshot::channel();
                    self.add_contact(local.clone(), card, card_text, true, reply);
                }
                local
            }
            None => {
                // The name may be another contact's here.
                let name = if self.engine.contacts.has_name(&name) {
                    format!("{name} ({})", &account.to_string()[..8])
                } else {
                    name
                };
                let (reply, _) = tokio::sync::oneshot::channel();
                self.add_contact(name.clone(), card, card_text, false, reply);
                name
            }
        };
        let Some(contact) = self.engine.contacts.contact(&local) else {
            return;
        };
        if contact.record.send_receipts != send_receipts {
            let _ = self.engine.set_receipts(&local, send_receipts);
            self.drive();
        }
        let trust = self.engine.contacts.trust(&account);
        if trust.blocked != blocked {
            let (reply, _) = tokio::sync::oneshot::channel();
            self.contact_action(&local, ContactAction::Block(blocked), reply);
        }
        if trust.verified.is_some() != verified {
            let (reply, _) = tokio::sync::oneshot::channel();
            self.contact_action(&local, ContactAction::Verify(verified), reply);
        }
    }
}

/// The entries of `old` that `new` leaves out (as 128-byte entries).
fn revoked_by(old: &DeviceList, new: &DeviceList) -> Vec<[u8; 128]> {
    old.devices
        .iter()
        .filter(|d| new.device(&d.device_id).is_none())
        .map(DeviceKeys::to_array)
        .collect()
}

/// The devices on `list`, named as the record names them (a device never
/// named is "first device" if it is the list's first, else "unnamed").
pub(super) fn own_devices(record: &IdentityRecord, list: &DeviceList) -> Vec<OwnDevice> {
    list.devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            record
                .devices
                .iter()
                .find(|o| o.device == d.device_id)
                .cloned()
                .unwrap_or_else(|| OwnDevice {
                    device: d.device_id,
                    name: if i == 0 { "first device" } else { "unnamed" }.to_owned(),
                    linked_at_ms: if i == 0 { record.created_at_ms } else { 0 },
                })
        })
        .collect()
}

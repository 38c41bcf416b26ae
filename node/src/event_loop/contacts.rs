//! A contact's life after it was added, on the host side: removing,
//! blocking and verifying go through the engine
//! ([`DeviceEngine::remove_contact`](hush_protocol::device::DeviceEngine::remove_contact)
//! and the rest); here the swarm refuses blocked devices and presence
//! retires the key a removed or blocked contact held.

use hush_protocol::device::ContactTrust;
use hush_protocol::{AccountId, DeviceId};
use libp2p::PeerId;

use super::{After, EventLoop};
use crate::error::NodeError;
use crate::node::Reply;
use crate::records::ContactRecord;
use crate::view::{ContactView, Event};

/// What the user does to a contact.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ContactAction {
    /// Forget it (and its conversation when `delete_history`).
    Remove {
        delete_history: bool,
    },
    Block(bool),
    Verify(bool),
}

impl EventLoop {
    /// Adds a contact or takes a newer card of one.
    pub(super) fn add_contact(
        &mut self,
        name: String,
        card: hush_protocol::ContactCard,
        card_text: String,
        update: bool,
        reply: Reply<ContactView>,
    ) {
        let ctx = ctx!(self);
        let added = if update {
            self.engine.update_contact(ctx, name, card, card_text)
        } else {
            self.engine.add_contact(ctx, name, card, card_text)
        };
        self.drive();
        let record = match added {
            Ok(record) => record,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        self.tell_own_devices_contact(&record.account);
        let view = self.view_of(&record);
        self.batch.after.push(After::ReplyContact(reply, view));
        if !update {
            self.batch
                .after
                .push(After::Emit(Box::new(Event::ContactAdded {
                    contact: record.name,
                })));
            self.share_key_with(&record.account);
            // Removed before and taken back: its right counts again.
            self.want_revoked();
            // Mail from them may be waiting unread at our relays: read it again.
            self.reread_mail();
        }
    }

    /// Whether the contact `name` is verified with keys changed since.
    pub(super) fn keys_changed(&self, name: &str) -> bool {
        let contacts = &self.engine.contacts;
        contacts
            .contact(name)
            .is_some_and(|c| contacts.keys_changed(&c.card.account()))
    }

    pub(super) fn view_of(&self, record: &ContactRecord) -> ContactView {
        ContactView::new(
            &self.me.account,
            record,
            self.engine.contacts.trust(&record.account),
            self.engine.timer_of(&record.account),
        )
    }

    /// The blocks and verifications on disk, into the engine, presence and
    /// the swarm (at start, and after a reload from disk).
    pub(super) fn restore_trust(&mut self) -> Result<(), NodeError> {
        for (account, trust) in self.store.trust()? {
            self.engine.restore_trust(account, trust);
            if trust.blocked {
                self.presence.restore_blocked(account);
                for peer in self.peers_of(&account) {
                    self.swarm.behaviour_mut().blocked.block_peer(peer);
                }
            }
        }
        self.want_revoked();
        Ok(())
    }

    pub(super) fn contact_action(
        &mut self,
        name: &str,
        action: ContactAction,
        reply: Reply<ContactView>,
    ) {
        let done = match action {
            ContactAction::Remove { delete_history } => self.remove_contact(name, delete_history),
            ContactAction::Block(on) => self.block_contact(name, on),
            ContactAction::Verify(on) => self
                .engine
                .verify_contact(name, on)
                .map(|(record, trust)| {
                    let event = Event::ContactVerified {
                        contact: record.name.clone(),
                        verified: trust.verified.is_some(),
                    };
                    (record, trust, event)
                })
                .map_err(NodeError::from),
        };
        self.drive();
        match done {
            Ok((record, trust, event)) => {
                match action {
                    ContactAction::Remove { delete_history } => {
                        self.tell_own_devices_removed(record.account, delete_history);
                    }
                    _ => self.tell_own_devices_contact(&record.account),
                }
                let timer = self.engine.timer_of(&record.account);
                let view = ContactView::new(&self.me.account, &record, trust, timer);
                self.batch.after.push(After::ReplyContact(reply, view));
                self.batch.after.push(After::Emit(Box::new(event)));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn remove_contact(
        &mut self,
        name: &str,
        delete_history: bool,
    ) -> Result<(ContactRecord, ContactTrust, Event), NodeError> {
        let Some(contact) = self.engine.contacts.contact(name) else {
            return Err(NodeError::UnknownContact {
                name: name.to_owned(),
            });
        };
        let account = contact.card.account();
        let trust = self.engine.contacts.trust(&account);
        let (devices, peers): (Vec<DeviceId>, Vec<PeerId>) = self
            .engine
            .contacts
            .devices_of(&account)
            .into_iter()
            .unzip();
        // Presence first, while the contact is still among `all`: it loses
        // our key.
        let all = self.engine.contacts.accounts();
        self.presence_change(&all, |book, now, world| {
            book.forget(now, account, &devices, world);
        });
        let removed = self
            .engine
            .remove_contact(self.host_clock.now(), name, delete_history)?;
        for peer in peers {
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            if !removed.group_peer {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
        // The right we gave it stops counting at our relays.
        self.want_revoked();
        tracing::info!(contact = %name, delete_history, "contact removed");
        let event = Event::ContactRemoved {
            contact: removed.record.name.clone(),
        };
        Ok((removed.record, trust, event))
    }

    fn block_contact(
        &mut self,
        name: &str,
        on: bool,
    ) -> Result<(ContactRecord, ContactTrust, Event), NodeError> {
        let (record, trust) = self.engine.block_contact(ctx!(self), name, on)?;
        let account = record.account;
        let all = self.engine.contacts.accounts();
        self.presence_change(&all, |book, now, world| {
            book.set_blocked(now, account, on, world);
        });
        for peer in self.peers_of(&account) {
            let swarm = self.swarm.behaviour_mut();
            if on {
                // Also closes the connections open now.
                swarm.blocked.block_peer(peer);
            } else {
                swarm.blocked.unblock_peer(peer);
            }
        }
        if !on {
            self.redial(&account);
        }
        // Our relays stop (or start again) counting its mail as a
        // contact's.
        self.want_revoked();
        tracing::info!(contact = %name, blocked = on, "contact block changed");
        let event = Event::ContactBlocked {
            contact: record.name.clone(),
            blocked: on,
        };
        Ok((record, trust, event))
    }

    /// The peer ids of a contact's (or group peer's) devices.
    fn peers_of(&self, account: &AccountId) -> Vec<PeerId> {
        let devices = self.engine.contacts.devices_of(account);
        devices.into_iter().map(|(_, peer)| peer).collect()
    }

    /// Dials a contact's devices again (after an unblock).
    fn redial(&mut self, account: &AccountId) {
        let addresses = self
            .engine
            .contacts
            .known(account)
            .map(|c| c.addresses.clone())
            .unwrap_or_default();
        for peer in self.peers_of(account) {
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(addresses.clone())
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "could not dial an unblocked contact");
            }
        }
    }

    /// Tells the connection gate (`crate::gate`) which peers may connect:
    /// every device the contact book knows and our home relays, again
    /// whenever either changed; open to anyone while a link code is out.
    /// The group members changed: who may gossip with us is worked out
    /// again on the next turn of the loop.
    pub(super) fn resync_gate(&mut self) {
        self.gate_synced = None;
    }

    pub(super) fn sync_gate(&mut self) {
        let generation = self.engine.contacts.generation();
        let open = self.link_offer_open();
        self.swarm.behaviour_mut().gate.set_open(open);
        // Checked on every turn of the loop: no allocation unless changed.
        if self.gate_synced.as_ref().is_some_and(|(g, r)| {
            *g == generation
                && r.len() == self.home.len()
                && r.iter().zip(&self.home).all(|(p, h)| *p == h.peer)
        }) {
            return;
        }
        let relays: Vec<PeerId> = self.home.iter().map(|r| r.peer).collect();
        let allowed = self
            .engine
            .contacts
            .device_peers()
            .map(|(peer, _)| peer)
            .chain(relays.iter().copied())
            .collect();
        self.swarm.behaviour_mut().gate.set_allowed(allowed);
        // Gossip (and so our group topics) only with those we share a
        // group with, our own devices and our relays.
        let in_groups = self.engine.groups.peers();
        let me = self.me.account;
        let gossip = self
            .engine
            .contacts
            .device_peers()
            .filter(|(_, account)| *account == me || in_groups.contains_key(account))
            .map(|(peer, _)| peer)
            .chain(relays.iter().copied())
            .collect();
        self.swarm.behaviour_mut().gossipsub.set_allowed(gossip);
        self.gate_synced = Some((generation, relays));
    }
}

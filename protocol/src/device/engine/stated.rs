//! Where a contact device's mail goes: the home relays the device itself
//! stated last (in a presence record, or pushed over Olm as
//! [`Body::Relays`]), else its account's card's. A device that replaced a
//! relay that stopped answering, or picked its own through the DHT, so
//! needs no new card: its contacts follow its newest statement.

use std::fmt;
use std::hash::Hash;

use super::{DeviceEffect, DeviceEngine, DeviceWrite};
use crate::device::{Ctx, OutboxKind, Severity};
use crate::{
    AccountId, Body, ContactCard, DeviceId, HomeRelays, MAX_PRESENCE_SKEW_MS, MAX_STATED_RELAYS,
};

/// A device's newest statement of its home relays, in the host's terms.
#[derive(Debug, Clone)]
pub(super) struct Stated<P, A> {
    issued_at_ms: u64,
    /// As the device stated them (to tell a change from a refresh).
    stated: Vec<String>,
    relays: Vec<(P, A)>,
}

/// What became of a statement handed to [`DeviceEngine::take_home_relays`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatedRelays {
    /// Newer than the one held: mail for the device goes there now.
    Taken,
    /// Not newer than the one held (a replay, or the same record again).
    Old,
    /// Newer, naming the same relays (every presence record says them
    /// again): nothing changes, nothing is written.
    Same,
    /// Not from a device of a contact (or of ours), from the future, or
    /// naming no relay that parses: ignored.
    Refused,
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// The device's home relays: its own newest statement, else its
    /// owner's card's.
    pub(super) fn relays_of(&self, device: &DeviceId) -> Vec<(P, A)> {
        if let Some(stated) = self.stated.get(device) {
            return stated.relays.clone();
        }
        self.contacts
            .of_device(device)
            .and_then(|(account, _)| self.contacts.known(&account))
            .map(|c| c.relays.clone())
            .unwrap_or_default()
    }

    /// A statement `device` made of its home relays (pushed over Olm, or
    /// in a presence record the host opened and checked): taken when the
    /// device is on a contact's (or our own account's) card and the
    /// statement is newer than the one held. What is queued for the
    /// device is tried again at once.
    pub fn take_home_relays(
        &mut self,
        ctx: &mut Ctx<'_>,
        device: DeviceId,
        stated: HomeRelays,
    ) -> StatedRelays {
        if stated.issued_at_ms > ctx.now.unix_ms.saturating_add(MAX_PRESENCE_SKEW_MS) {
            // Taken, it would outrank every later statement.
            self.note(
                Severity::Warn,
                "a contact device stated its home relays from the future; ignored",
            );
            return StatedRelays::Refused;
        }
        if self
            .stated
            .get(&device)
            .is_some_and(|s| s.issued_at_ms >= stated.issued_at_ms)
        {
            return StatedRelays::Old;
        }
        if let Some(held) = self.stated.get_mut(&device)
            && held.stated == stated.relays
        {
            held.issued_at_ms = stated.issued_at_ms;
            return StatedRelays::Same;
        }
        if !self.hold(device, &stated) {
            return StatedRelays::Refused;
        }
        self.effects
            .push_back(DeviceEffect::Write(DeviceWrite::HomeRelays(device, stated)));
        self.note(Severity::Info, "a contact device's home relays changed");
        // Mail waiting for it goes to the new relays now.
        self.outbox.wake(&device, ctx.now);
        StatedRelays::Taken
    }

    /// At start: a statement stored before (already checked when taken).
    pub fn load_home_relays(&mut self, device: DeviceId, stated: &HomeRelays) {
        self.hold(device, stated);
    }

    /// Keeps `stated` as the device's relays, if they resolve.
    fn hold(&mut self, device: DeviceId, stated: &HomeRelays) -> bool {
        let Some(relays) = self.resolve(&device, stated) else {
            return false;
        };
        self.stated.insert(
            device,
            Stated {
                issued_at_ms: stated.issued_at_ms,
                stated: stated.relays.clone(),
                relays,
            },
        );
        true
    }

    /// The statement's relays in the host's terms (as a card listing them
    /// would give), if the device is known and one of them parses.
    fn resolve(&self, device: &DeviceId, stated: &HomeRelays) -> Option<Vec<(P, A)>> {
        let (account, _) = self.contacts.of_device(device)?;
        let card = &self.contacts.known(&account)?.card;
        let as_listed = ContactCard {
            relays: stated
                .relays
                .iter()
                .take(MAX_STATED_RELAYS)
                .cloned()
                .collect(),
            ..card.clone()
        };
        let relays = (self.reach)(&as_listed).relays;
        (!relays.is_empty()).then_some(relays)
    }

    /// Our home relays changed to `relays` (at `ctx`'s time): every
    /// contact that is not blocked or removed, every member of our groups,
    /// and our other devices are told, through their relays too when they
    /// are offline.
    pub fn push_relays(&mut self, ctx: &mut Ctx<'_>, relays: &[String]) {
        if relays.is_empty() {
            return;
        }
        let stated = HomeRelays {
            issued_at_ms: ctx.now.unix_ms,
            relays: relays.iter().take(MAX_STATED_RELAYS).cloned().collect(),
        };
        // Members of our groups who are not contacts leave group control
        // for us at our relays too.
        let accounts: Vec<AccountId> = self
            .contacts
            .contacts()
            .map(|c| c.record.account)
            .chain(self.contacts.peer_accounts())
            .filter(|a| !self.contacts.is_blocked(a) && !self.contacts.trust(a).removed)
            .chain(self.contacts.has_other_devices().then_some(self.me.account))
            .collect();
        for account in accounts {
            let body = Body::Relays(stated.clone());
            if self
                .send_control(ctx, &account, OutboxKind::Account, body)
                .is_err()
            {
                self.note(
                    Severity::Warn,
                    "could not queue our new home relays for a contact",
                );
            }
        }
    }

    /// The devices of a contact that is gone: their statements go too.
    pub(super) fn forget_stated(&mut self, device: &DeviceId) {
        self.stated.remove(device);
    }
}

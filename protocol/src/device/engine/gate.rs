//! Sends to an account of several devices wait, at start, until this
//! device has read its relays: a contact that was offline while a device
//! was revoked takes the new list from there (the revoking device left it
//! there) before it sends anything to the revoked device.
//!
//! Hearing from another device of the account does not open the gate: its
//! card may be waiting at the relays while its message came directly.

use std::fmt;
use std::hash::Hash;

use super::DeviceEngine;
use crate::DeviceId;
use crate::device::Ctx;

/// Until when sends to multi-device accounts wait (mono ms), unless a
/// mailbox drained first; `None`: they go.
#[derive(Debug, Default)]
pub(super) struct ListGate {
    until_ms: Option<u64>,
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// At start, with home relays: what goes to a device of an account
    /// with several devices waits until a relay's mailbox was read to the
    /// end ([`DeviceEngine::mailbox_drained`]), or `for_ms` passed (the
    /// relays are down: send anyway).
    pub fn hold_until_drained(&mut self, ctx: &mut Ctx<'_>, for_ms: u64) {
        self.gate.until_ms = Some(ctx.now.mono_ms.saturating_add(for_ms));
    }

    /// A home relay's mailbox was read to the end: every card pushed to us
    /// while we were away is taken, so what waited goes now.
    pub fn mailbox_drained(&mut self, ctx: &mut Ctx<'_>) {
        if self.gate.until_ms.take().is_none() {
            return;
        }
        for device in self.outbox.due_devices(ctx.now) {
            self.pump(ctx, &device);
        }
    }

    /// Whether what waits for `device` must wait on (see
    /// [`DeviceEngine::hold_until_drained`]).
    pub(super) fn held_by_gate(&mut self, ctx: &Ctx<'_>, device: &DeviceId) -> bool {
        let Some(until) = self.gate.until_ms else {
            return false;
        };
        if ctx.now.mono_ms >= until {
            self.gate.until_ms = None;
            return false;
        }
        let Some((account, _)) = self.contacts.of_device(device) else {
            return false;
        };
        self.contacts
            .known(&account)
            .is_some_and(|c| c.card.device_list.devices.len() > 1)
    }
}

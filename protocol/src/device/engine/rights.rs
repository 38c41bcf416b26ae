//! Deposit rights: ours, signed for each contact and sent to it, and the
//! ones our contacts' devices gave us (see `DepositRight`).

use std::fmt;
use std::hash::Hash;

use super::DeviceEngine;
use crate::device::{Ctx, OutboxKind, Severity};
use crate::{AccountId, Body, DepositRight, DeviceId};

/// Signs this device's deposit rights ([`DepositRight`]) with the device
/// key (the Ed25519 key whose public half is the device id).
#[derive(Clone)]
pub struct RightIssuer {
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for RightIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RightIssuer { .. }")
    }
}

impl RightIssuer {
    /// From the device key's 32-byte secret.
    pub fn new(secret: [u8; 32]) -> Self {
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(&secret),
        }
    }

    /// The right we give `account`. Its holder tag is a keyed hash of the
    /// account, so a contact always gets the same one and the relay counts
    /// its mail under one tag that names nobody.
    pub fn right_for(&self, account: &AccountId) -> DepositRight {
        let hash = blake3::Hasher::new_derive_key("hush 2026-12 deposit right holder")
            .update(self.key.as_bytes())
            .update(&account.0)
            .finalize();
        let mut holder = [0; 16];
        holder.copy_from_slice(&hash.as_bytes()[..16]);
        DepositRight::grant(&self.key, holder)
    }
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// Sends a contact our deposit right, once per run (and when it is
    /// added): its mail to our mailbox then counts as a contact's at our
    /// relays, which a flood from strangers cannot crowd out. It goes only
    /// directly, like our presence key: it takes no slot of the contact's
    /// mailbox.
    pub(crate) fn grant_right(&mut self, ctx: &mut Ctx<'_>, account: &AccountId) {
        if self.granted.contains(account) {
            return;
        }
        let body = Body::DepositRight(self.me.issuer.right_for(account));
        match self.send_control(ctx, account, OutboxKind::Control, body) {
            Ok(_) => {
                self.granted.insert(*account);
            }
            Err(_) => self.note(
                Severity::Warn,
                "could not queue our deposit right for a contact",
            ),
        }
    }

    /// The holder tags of the deposit rights we gave contacts we blocked,
    /// then of those we removed: our home relays refuse those rights
    /// (`OwnerRequest::Revoke`).
    pub fn revoked_holders(&self) -> Vec<[u8; 16]> {
        self.contacts
            .refused_rights()
            .map(|account| self.me.issuer.right_for(account).holder)
            .collect()
    }

    /// A contact device's deposit right, as stored (at start).
    pub fn restore_right(&mut self, device: DeviceId, right: DepositRight) {
        if right.device == device {
            self.rights.insert(device, right);
        }
    }
}

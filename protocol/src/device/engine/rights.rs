//! Deposit rights and pairwise mailboxes: ours, made for each contact and
//! sent to it, and the ones our contacts' devices gave us (see
//! `DepositRight` and `MailboxGrant`).

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use super::{DeviceEffect, DeviceEngine, DeviceWrite};
use crate::device::{Ctx, OutboxKind, Severity};
use crate::{
    AccountId, Body, DepositRight, DeviceId, MAX_BATCH_KEYS, MailboxGrant, PairwiseKey,
    generation_at,
};

/// Generations of pairwise mailboxes fetched at least: the current one and
/// the two before it (a grant is used during its own generation and the
/// next; one more covers a clock a generation off).
pub const FETCHED_GENERATIONS: u32 = 3;
/// Fetched at most, however long ago the last full drain was: a year.
pub const MAX_FETCHED_GENERATIONS: u32 = 14;
/// Contacts given a pairwise mailbox, at most: a batch names every
/// mailbox of the fetched generations (the rest get our deposit right for
/// our own mailbox only).
pub const MAX_PAIRWISE_CONTACTS: usize = MAX_BATCH_KEYS / MAX_FETCHED_GENERATIONS as usize;

/// Signs this device's deposit rights ([`DepositRight`]) with the device
/// key (the Ed25519 key whose public half is the device id), and derives
/// its pairwise mailboxes from it.
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
        DepositRight::grant(&self.key, self.holder(account))
    }

    fn holder(&self, account: &AccountId) -> [u8; 16] {
        let hash = blake3::Hasher::new_derive_key("hush 2026-12 deposit right holder")
            .update(self.key.as_bytes())
            .update(&account.0)
            .finalize();
        let mut holder = [0; 16];
        holder.copy_from_slice(&hash.as_bytes()[..16]);
        holder
    }

    /// Our pairwise mailbox of `generation` for `account`.
    pub fn pairwise(&self, account: &AccountId, generation: u32) -> PairwiseKey {
        PairwiseKey::derive(self.key.as_bytes(), account, generation)
    }

    /// What `account` is handed for `generation`.
    pub fn grant_for(&self, account: &AccountId, generation: u32) -> MailboxGrant {
        self.pairwise(account, generation)
            .grant(self.holder(account))
    }
}

/// The generations of pairwise mailboxes to fetch at `now_ms`: the last
/// [`FETCHED_GENERATIONS`], and back to the one before our last full drain
/// (`drained_ms`, if known), at most [`MAX_FETCHED_GENERATIONS`].
pub fn fetched_generations(now_ms: u64, drained_ms: Option<u64>) -> std::ops::RangeInclusive<u32> {
    let current = generation_at(now_ms);
    let since = drained_ms
        .map(|at| generation_at(at.min(now_ms)).saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(current.saturating_sub(FETCHED_GENERATIONS - 1))
        .max(current.saturating_sub(MAX_FETCHED_GENERATIONS - 1));
    since..=current
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// Sends a contact our deposit right and, if it is one of the
    /// accounts with a pairwise mailbox, that mailbox: once per run and
    /// generation (and when it is added). Its mail then counts as a
    /// contact's at our relays, which a flood from strangers cannot crowd
    /// out, and goes to a mailbox only it knows. It goes only directly,
    /// like our presence key: it takes no slot of the contact's mailbox.
    pub(crate) fn grant_right(&mut self, ctx: &mut Ctx<'_>, account: &AccountId) {
        // Sent already this run and generation (the common case: every
        // message asks): no need to work out the pairwise accounts.
        if self.granted.get(account) == Some(&Some(generation_at(ctx.now.unix_ms))) {
            return;
        }
        let generation = (!self.contacts.is_blocked(account)
            && self.pairwise_accounts().contains(account))
        .then(|| generation_at(ctx.now.unix_ms));
        if self.granted.get(account) == Some(&generation) {
            return;
        }
        let right = self.me.issuer.right_for(account);
        let body = match generation {
            Some(generation) => Body::Mailbox {
                right: Box::new(right),
                grant: Box::new(self.me.issuer.grant_for(account, generation)),
            },
            None => Body::DepositRight(right),
        };
        match self.send_control(ctx, account, OutboxKind::Control, body) {
            Ok(_) => {
                self.granted.insert(*account, generation);
            }
            Err(_) => self.note(
                Severity::Warn,
                "could not queue our deposit right for a contact",
            ),
        }
    }

    /// The accounts whose pairwise mailboxes we fetch: our contacts but
    /// the blocked ones, our own account when it has other devices, then
    /// the accounts we blocked or removed (what they still leave there is
    /// read and dropped, not left to fill the relay); the first
    /// [`MAX_PAIRWISE_CONTACTS`], in that order.
    pub fn pairwise_accounts(&self) -> Vec<AccountId> {
        let mut contacts: Vec<AccountId> = self
            .contacts
            .accounts()
            .into_iter()
            .filter(|a| !self.contacts.is_blocked(a))
            .collect();
        if self.contacts.has_other_devices() {
            contacts.push(self.me.account);
        }
        contacts.sort_unstable();
        let mut refused: Vec<AccountId> = self.contacts.refused_rights().copied().collect();
        refused.sort_unstable();
        let mut accounts = Vec::with_capacity(contacts.len() + refused.len());
        for account in contacts.into_iter().chain(refused) {
            if !accounts.contains(&account) {
                accounts.push(account);
            }
            if accounts.len() == MAX_PAIRWISE_CONTACTS {
                break;
            }
        }
        accounts
    }

    /// Our pairwise mailboxes to fetch at `now_ms` (see
    /// [`fetched_generations`]; `drained_ms`: when every home relay was
    /// last read to the end), in a stable order: the accounts', each from
    /// its oldest generation.
    pub fn pairwise_mailboxes(
        &mut self,
        now_ms: u64,
        drained_ms: Option<u64>,
    ) -> Vec<Arc<PairwiseKey>> {
        let generations = fetched_generations(now_ms, drained_ms);
        let mut set = Vec::new();
        let mut kept = HashMap::new();
        for account in self.pairwise_accounts() {
            for generation in generations.clone() {
                let key = self
                    .pairwise
                    .remove(&(account, generation))
                    .unwrap_or_else(|| Arc::new(self.me.issuer.pairwise(&account, generation)));
                kept.insert((account, generation), key.clone());
                set.push(key);
            }
        }
        self.pairwise = kept;
        set
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

    /// A contact device's pairwise mailbox, as stored (at start).
    pub fn restore_grant(&mut self, device: DeviceId, grant: MailboxGrant) {
        self.grants.insert(device, grant);
    }

    /// A contact device's mailboxes for us; anything but its own is
    /// refused (a contact cannot send us to another device's mailbox).
    pub(super) fn take_contact_rights(
        &mut self,
        from: DeviceId,
        right: DepositRight,
        grant: Option<MailboxGrant>,
    ) {
        if !self.take_rights(from, right, grant) {
            self.note(
                Severity::Warn,
                "a contact sent a deposit right that is not its device's; ignored",
            );
        }
    }

    /// `from`'s mailboxes for us, as it sent them (`grant` is `None` from
    /// a device that gives no pairwise mailbox): taken when the right is
    /// the device's own and both signatures hold.
    pub(super) fn take_rights(
        &mut self,
        from: DeviceId,
        right: DepositRight,
        grant: Option<MailboxGrant>,
    ) -> bool {
        if right.device != from || !right.verify() || grant.is_some_and(|g| !g.verify()) {
            return false;
        }
        if self.rights.get(&from) != Some(&right) {
            self.rights.insert(from, right);
            self.effects
                .push_back(DeviceEffect::Write(DeviceWrite::DepositRight(from, right)));
        }
        if let Some(grant) = grant
            && self.grants.get(&from) != Some(&grant)
        {
            self.grants.insert(from, grant);
            self.effects
                .push_back(DeviceEffect::Write(DeviceWrite::MailboxGrant(from, grant)));
        }
        true
    }
}

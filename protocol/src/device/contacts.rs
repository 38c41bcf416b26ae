//! The contact book: contacts by name and account, every device on their
//! cards by peer, by device id and by Olm Curve25519 key (mail from a relay
//! is attributed by the key inside the sealed envelope, not by a
//! connection), and group members who are not contacts ("peers": reachable
//! for group control, but nameless).
//!
//! `P` is the host's peer id and `A` its address type: the host resolves a
//! card's devices, addresses and relays into them ([`CardReach`]) before it
//! hands the card over.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::{AccountId, ContactCard, DeviceId, DeviceKeys, Proof};

/// A contact as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactRecord {
    pub name: String,
    /// The card as added (text form); parsed and verified on load. Empty
    /// for a group peer, whose record is never stored.
    pub card: String,
    pub account: AccountId,
    /// Whether we send read receipts to this contact.
    pub send_receipts: bool,
    pub added_at_ms: u64,
}

/// What the user decided about a contact beyond its card, stored apart from
/// the contact record (by account): whether it is blocked, and which keys
/// the user verified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactTrust {
    /// Nothing from the contact is accepted and nothing goes to it.
    pub blocked: bool,
    /// [`keys_fingerprint`] of the contact's card when the user compared
    /// the safety number and marked it verified.
    pub verified: Option<[u8; 32]>,
    /// The user removed this account: the deposit right we gave it no
    /// longer counts at our relays (blocked ones are refused anyway).
    pub removed: bool,
}

impl ContactTrust {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A digest of every key a card binds to its account: the account and each
/// device's id, Olm and mailbox keys, in device id order. A verified
/// contact whose fingerprint moves has keys the user has not verified.
pub fn keys_fingerprint(card: &ContactCard) -> [u8; 32] {
    let mut devices: Vec<&DeviceKeys> = card.device_list.devices.iter().collect();
    devices.sort_by_key(|d| d.device_id.0);
    let mut hasher = blake3::Hasher::new_derive_key("hush 2026-12 verified keys");
    hasher.update(&card.account().0);
    for d in devices {
        hasher.update(&d.device_id.0);
        hasher.update(&d.olm_ed25519);
        hasher.update(&d.olm_curve25519);
        hasher.update(&d.mailbox_key);
    }
    *hasher.finalize().as_bytes()
}

/// Where a card's devices and addresses are, in the host's terms.
#[derive(Debug, Clone)]
pub struct CardReach<P, A> {
    /// Each device on the card with its peer id (devices whose id is not a
    /// valid peer id are left out).
    pub devices: Vec<(DeviceId, P)>,
    /// The card's addresses that parse.
    pub addresses: Vec<A>,
    /// The card's home relays that parse and name their peer.
    pub relays: Vec<(P, A)>,
}

/// A contact (or group peer), with its verified card.
#[derive(Debug)]
pub struct Contact<P, A> {
    pub record: ContactRecord,
    pub card: ContactCard,
    pub addresses: Vec<A>,
    /// The contact's home relays from its card.
    pub relays: Vec<(P, A)>,
}

#[derive(Debug)]
pub struct ContactBook<P, A> {
    by_name: HashMap<String, Contact<P, A>>,
    names: HashMap<AccountId, String>,
    /// Each contact device's peer id, with its account and keys.
    by_peer: HashMap<P, (AccountId, DeviceKeys)>,
    /// Bumped whenever `by_peer` changes (the host's connection gate
    /// follows it).
    generation: u64,
    /// The peer id of each contact device (deriving it decompresses a curve
    /// point: too slow to redo per message).
    peer_of: HashMap<DeviceId, P>,
    by_curve: HashMap<[u8; 32], (AccountId, DeviceKeys)>,
    /// Members of our groups who are not contacts (their devices are in
    /// the maps above too, for group control over Olm only).
    peers: HashMap<AccountId, Contact<P, A>>,
    /// Our own account's card: its other devices are in the maps above
    /// (this device is not), for what devices of one account sync.
    own: Option<Contact<P, A>>,
    /// Our account's devices taken off its list (revoked): by peer id and
    /// by Olm key, so what they send is answered `Revoked`.
    revoked_peers: HashSet<P>,
    revoked_curves: HashSet<[u8; 32]>,
    /// Devices bound by an entry the device itself signed (see
    /// [`Proof`]): no other card takes them.
    proven: HashSet<DeviceId>,
    /// Blocks and verifications, by account (only those not default).
    trust: HashMap<AccountId, ContactTrust>,
}

impl<P, A> Default for ContactBook<P, A> {
    fn default() -> Self {
        Self {
            by_name: HashMap::new(),
            names: HashMap::new(),
            by_peer: HashMap::new(),
            generation: 0,
            peer_of: HashMap::new(),
            by_curve: HashMap::new(),
            peers: HashMap::new(),
            own: None,
            revoked_peers: HashSet::new(),
            revoked_curves: HashSet::new(),
            proven: HashSet::new(),
            trust: HashMap::new(),
        }
    }
}

impl<P: Copy + Eq + Hash, A> ContactBook<P, A> {
    /// Adds (or replaces) a contact. A group peer who becomes a contact is
    /// a contact from now on.
    pub fn insert(&mut self, record: ContactRecord, card: ContactCard, reach: CardReach<P, A>) {
        self.remove_peer(&card.account());
        let contact = self.register(record, card, reach, true);
        self.names
            .insert(contact.card.account(), contact.record.name.clone());
        self.by_name.insert(contact.record.name.clone(), contact);
    }

    /// Registers a group member who is not a contact: its devices become
    /// known (Olm, dialling), but it gets no name in the contact list.
    pub fn insert_peer(
        &mut self,
        record: ContactRecord,
        card: ContactCard,
        reach: CardReach<P, A>,
    ) {
        let contact = self.register(record, card, reach, false);
        self.peers.insert(contact.card.account(), contact);
    }

    /// Takes our own account's card: its devices other than `this` become
    /// known (Olm, dialling), as the account's other devices.
    pub fn set_own(
        &mut self,
        record: ContactRecord,
        card: ContactCard,
        reach: CardReach<P, A>,
        this: &DeviceId,
    ) {
        if let Some(old) = self.own.take() {
            self.forget_devices(&old.card);
        }
        let contact = self.register_except(record, card, reach, true, Some(this));
        self.own = Some(contact);
    }

    /// One of our account's devices was revoked: what it sends is refused
    /// as `Revoked` from now on.
    pub fn revoke_own(&mut self, keys: &DeviceKeys, peer: Option<P>) {
        self.revoked_curves.insert(keys.olm_curve25519);
        self.revoked_peers.extend(peer);
    }

    /// Whether the sender (by peer id, or else by Olm key) is a revoked
    /// device of our account.
    pub fn is_revoked_own(&self, peer: Option<&P>, curve: &[u8; 32]) -> bool {
        peer.is_some_and(|p| self.revoked_peers.contains(p)) || self.revoked_curves.contains(curve)
    }

    /// Our own account's card, once set.
    pub fn own(&self) -> Option<&Contact<P, A>> {
        self.own.as_ref()
    }

    /// Whether our account has other devices we know.
    pub fn has_other_devices(&self) -> bool {
        self.own.as_ref().is_some_and(|o| {
            o.card
                .device_list
                .devices
                .iter()
                .any(|d| self.owns(&o.card.account(), d))
        })
    }

    /// Removes the contact named `name`, forgets its devices and what the
    /// user decided about it (block, verification).
    pub fn remove(&mut self, name: &str) -> Option<Contact<P, A>> {
        let contact = self.by_name.remove(name)?;
        self.names.remove(&contact.card.account());
        self.trust.remove(&contact.card.account());
        self.forget_devices(&contact.card);
        Some(contact)
    }

    /// What the user decided about `account` (default: nothing).
    pub fn trust(&self, account: &AccountId) -> ContactTrust {
        self.trust.get(account).copied().unwrap_or_default()
    }

    pub fn set_trust(&mut self, account: AccountId, trust: ContactTrust) {
        if trust.is_default() {
            self.trust.remove(&account);
        } else {
            self.trust.insert(account, trust);
        }
    }

    /// Whether the user blocked `account`.
    pub fn is_blocked(&self, account: &AccountId) -> bool {
        self.trust.get(account).is_some_and(|t| t.blocked)
    }

    /// The devices of a contact (or group peer) bound to it, with their
    /// peer ids.
    pub fn devices_of(&self, account: &AccountId) -> Vec<(DeviceId, P)> {
        let Some(contact) = self.known(account) else {
            return Vec::new();
        };
        contact
            .card
            .device_list
            .devices
            .iter()
            .filter_map(|d| Some((d.device_id, self.peer_of(&d.device_id)?)))
            .collect()
    }

    /// The accounts the user blocked, then those it removed: whose
    /// deposit rights our relays should refuse.
    pub fn refused_rights(&self) -> impl Iterator<Item = &AccountId> {
        let of = |removed: bool| {
            self.trust
                .iter()
                .filter(move |(_, t)| if removed { t.removed } else { t.blocked })
                .map(|(account, _)| account)
        };
        of(false).chain(of(true))
    }

    /// Whether the device belongs to a blocked account.
    pub fn is_blocked_device(&self, device: &DeviceId) -> bool {
        self.of_device(device)
            .is_some_and(|(account, _)| self.is_blocked(&account))
    }

    /// Whether `account` is a verified contact whose keys changed since.
    pub fn keys_changed(&self, account: &AccountId) -> bool {
        let (Some(verified), Some(name)) = (
            self.trust.get(account).and_then(|t| t.verified),
            self.names.get(account),
        ) else {
            return false;
        };
        self.by_name
            .get(name)
            .is_some_and(|c| keys_fingerprint(&c.card) != verified)
    }

    pub fn remove_peer(&mut self, account: &AccountId) {
        if let Some(peer) = self.peers.remove(account) {
            self.forget_devices(&peer.card);
        }
    }

    /// Forgets the devices a card lists (before its newer card replaces
    /// it), those bound to its account only.
    pub fn forget_devices(&mut self, card: &ContactCard) {
        let account = card.account();
        for device in &card.device_list.devices {
            if self.bound_to(&device.device_id) == Some(account)
                && let Some(p) = self.peer_of.remove(&device.device_id)
            {
                self.by_peer.remove(&p);
                self.generation += 1;
                self.proven.remove(&device.device_id);
            }
            if self
                .by_curve
                .get(&device.olm_curve25519)
                .is_some_and(|(a, _)| *a == account)
            {
                self.by_curve.remove(&device.olm_curve25519);
            }
        }
    }

    /// The account a device is bound to, if any.
    fn bound_to(&self, device: &DeviceId) -> Option<AccountId> {
        let peer = self.peer_of.get(device)?;
        self.by_peer.get(peer).map(|(account, _)| *account)
    }

    /// Whether `account` may take `device` (and its Olm key): a device
    /// bound to one account is never rebound to another by a group
    /// member's card; a contact's card (which the user added) may take it
    /// from a group member, never from another contact.
    ///
    /// An entry the device itself signed ([`Proof::Proven`]) outranks
    /// both: it takes its device from any account whose entry for it was
    /// not proven (that account listed a device it does not hold), never
    /// from one whose entry was. An entry with a proof that does not verify
    /// binds nothing.
    fn may_bind(
        &self,
        account: &AccountId,
        device: &DeviceKeys,
        contact: bool,
        proof: Proof,
    ) -> bool {
        let holders = [
            self.bound_to(&device.device_id),
            self.by_curve.get(&device.olm_curve25519).map(|(a, _)| *a),
        ];
        let held_by_proof = self.proven.contains(&device.device_id);
        match proof {
            Proof::Forged => false,
            Proof::Proven => holders
                .into_iter()
                .flatten()
                .all(|holder| holder == *account || !held_by_proof),
            Proof::Legacy => holders.into_iter().flatten().all(|holder| {
                holder == *account
                    || (contact && !held_by_proof && !self.names.contains_key(&holder))
            }),
        }
    }

    /// Unbinds `device` (and the Olm key it was bound with) from whoever
    /// held it, before another account's entry takes it.
    fn unbind(&mut self, device: &DeviceKeys) {
        if let Some(p) = self.peer_of.remove(&device.device_id) {
            self.by_peer.remove(&p);
            self.generation += 1;
        }
        self.proven.remove(&device.device_id);
        self.by_curve.remove(&device.olm_curve25519);
    }

    /// Indexes a card's devices (those it may bind, see
    /// [`ContactBook::may_bind`]).
    fn register(
        &mut self,
        record: ContactRecord,
        card: ContactCard,
        reach: CardReach<P, A>,
        contact: bool,
    ) -> Contact<P, A> {
        self.register_except(record, card, reach, contact, None)
    }

    /// [`ContactBook::register`], leaving out the device `except` (our own).
    fn register_except(
        &mut self,
        record: ContactRecord,
        card: ContactCard,
        reach: CardReach<P, A>,
        contact: bool,
        except: Option<&DeviceId>,
    ) -> Contact<P, A> {
        let account = card.account();
        for device in &card.device_list.devices {
            if except == Some(&device.device_id) {
                continue;
            }
            let proof = card.device_list.proof(device);
            if !self.may_bind(&account, device, contact, proof) {
                continue;
            }
            if self
                .bound_to(&device.device_id)
                .is_some_and(|a| a != account)
                || self
                    .by_curve
                    .get(&device.olm_curve25519)
                    .is_some_and(|(a, _)| *a != account)
            {
                self.unbind(device);
            }
            if proof == Proof::Proven {
                self.proven.insert(device.device_id);
            }
            if let Some((_, peer)) = reach.devices.iter().find(|(d, _)| *d == device.device_id) {
                self.by_peer.insert(*peer, (account, *device));
                self.generation += 1;
                self.peer_of.insert(device.device_id, *peer);
            }
            self.by_curve
                .insert(device.olm_curve25519, (account, *device));
        }
        Contact {
            record,
            card,
            addresses: reach.addresses,
            relays: reach.relays,
        }
    }

    /// How many contacts (group peers not counted).
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// A contact by name.
    pub fn contact(&self, name: &str) -> Option<&Contact<P, A>> {
        self.by_name.get(name)
    }

    pub fn contact_mut(&mut self, name: &str) -> Option<&mut Contact<P, A>> {
        self.by_name.get_mut(name)
    }

    pub fn has_name(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Every contact.
    pub fn contacts(&self) -> impl Iterator<Item = &Contact<P, A>> {
        self.by_name.values()
    }

    /// A contact's name, by its account.
    pub fn name_of(&self, account: &AccountId) -> Option<&String> {
        self.names.get(account)
    }

    pub fn is_contact(&self, account: &AccountId) -> bool {
        self.names.contains_key(account)
    }

    /// Every contact's account.
    pub fn accounts(&self) -> Vec<AccountId> {
        self.names.keys().copied().collect()
    }

    /// A contact, or else a group peer, or our own account.
    pub fn known(&self, account: &AccountId) -> Option<&Contact<P, A>> {
        self.names
            .get(account)
            .and_then(|name| self.by_name.get(name))
            .or_else(|| self.peers.get(account))
            .or_else(|| self.own.as_ref().filter(|o| o.card.account() == *account))
    }

    /// Every group peer's account.
    pub fn peer_accounts(&self) -> Vec<AccountId> {
        self.peers.keys().copied().collect()
    }

    pub fn is_peer(&self, account: &AccountId) -> bool {
        self.peers.contains_key(account)
    }

    /// A group peer (a member who is not a contact).
    pub fn peer(&self, account: &AccountId) -> Option<&Contact<P, A>> {
        self.peers.get(account)
    }

    /// The account and keys of a known device, by its peer id.
    pub fn device_by_peer(&self, peer: &P) -> Option<(AccountId, DeviceKeys)> {
        self.by_peer.get(peer).copied()
    }

    /// Changes whenever the set of known device peers may have changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_known_peer(&self, peer: &P) -> bool {
        self.by_peer.contains_key(peer)
    }

    /// Every known device's peer id, with its account.
    pub fn device_peers(&self) -> impl Iterator<Item = (P, AccountId)> + '_ {
        self.by_peer.iter().map(|(p, (a, _))| (*p, *a))
    }

    /// The account and keys of a known device, by its Olm Curve25519 key.
    pub fn device_by_curve(&self, key: &[u8; 32]) -> Option<(AccountId, DeviceKeys)> {
        self.by_curve.get(key).copied()
    }

    /// A known device's peer id.
    pub fn peer_of(&self, device: &DeviceId) -> Option<P> {
        self.peer_of.get(device).copied()
    }

    pub fn has_device(&self, device: &DeviceId) -> bool {
        self.peer_of.contains_key(device)
    }

    /// A known device's account and keys, by its id.
    pub fn of_device(&self, device: &DeviceId) -> Option<(AccountId, DeviceKeys)> {
        let peer = self.peer_of.get(device)?;
        self.by_peer.get(peer).copied()
    }

    /// A device of a known account (contact or peer), with that account.
    pub fn device(
        &self,
        account: &AccountId,
        device: &DeviceId,
    ) -> Option<(&Contact<P, A>, DeviceKeys)> {
        let contact = self.known(account)?;
        let keys = *contact.card.device_list.device(device)?;
        self.owns(account, &keys).then_some((contact, keys))
    }

    /// Whether the device (by its Olm key) is bound to `account`: a card
    /// may list a device that is someone else's (see
    /// [`ContactBook::may_bind`]); nothing goes to it on that card's behalf.
    pub fn owns(&self, account: &AccountId, keys: &DeviceKeys) -> bool {
        self.by_curve
            .get(&keys.olm_curve25519)
            .is_some_and(|(a, _)| a == account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountKey, DeviceList};

    fn card(seed: u8, devices: &[u8]) -> ContactCard {
        let key = AccountKey::from_seed([seed; 32]);
        let devices = devices
            .iter()
            .map(|d| DeviceKeys {
                device_id: DeviceId([*d; 32]),
                olm_ed25519: [*d; 32],
                olm_curve25519: [d.wrapping_add(100); 32],
                mailbox_key: [*d; 32],
            })
            .collect();
        let list = DeviceList::sign(&key, u64::from(seed), devices);
        ContactCard::sign(&key, format!("u{seed}"), list, vec![], vec![])
    }

    fn record(name: &str, card: &ContactCard) -> ContactRecord {
        ContactRecord {
            name: name.into(),
            card: card.to_string(),
            account: card.account(),
            send_receipts: true,
            added_at_ms: 0,
        }
    }

    /// Peer ids are the device byte, addresses the device byte too.
    fn reach(card: &ContactCard) -> CardReach<u8, u8> {
        CardReach {
            devices: card
                .device_list
                .devices
                .iter()
                .map(|d| (d.device_id, d.device_id.0[0]))
                .collect(),
            addresses: vec![],
            relays: vec![],
        }
    }

    #[test]
    fn devices_are_found_by_peer_curve_and_id_until_a_newer_card_replaces_them() {
        let mut book = ContactBook::<u8, u8>::default();
        let bob = card(1, &[10, 11]);
        book.insert(record("bob", &bob), bob.clone(), reach(&bob));
        let account = bob.account();
        assert_eq!(book.name_of(&account).map(String::as_str), Some("bob"));
        assert_eq!(book.device_by_peer(&11).map(|(a, _)| a), Some(account));
        assert_eq!(
            book.device_by_curve(&[110; 32]).map(|(a, _)| a),
            Some(account)
        );
        assert_eq!(book.peer_of(&DeviceId([10; 32])), Some(10));
        assert!(book.device(&account, &DeviceId([11; 32])).is_some());
        // Bob's new card drops device 10 and adds 12.
        let newer = card(1, &[11, 12]);
        book.forget_devices(&bob);
        book.insert(record("bob", &newer), newer.clone(), reach(&newer));
        assert_eq!(book.device_by_peer(&10), None);
        assert_eq!(book.device_by_curve(&[110; 32]), None);
        assert!(book.is_known_peer(&12));
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn a_group_peer_is_reachable_but_nameless_until_it_becomes_a_contact() {
        let mut book = ContactBook::<u8, u8>::default();
        let carol = card(2, &[20]);
        book.insert_peer(record("carol", &carol), carol.clone(), reach(&carol));
        let account = carol.account();
        assert!(book.is_peer(&account) && !book.is_contact(&account));
        assert!(book.known(&account).is_some());
        assert!(book.is_known_peer(&20));
        assert!(book.is_empty());
        book.insert(record("carol", &carol), carol.clone(), reach(&carol));
        assert!(!book.is_peer(&account) && book.is_contact(&account));
        assert!(book.is_known_peer(&20), "her device stays known");
        book.remove_peer(&account);
        assert!(
            book.is_known_peer(&20),
            "removing a peer leaves contacts alone"
        );
        assert_eq!(book.peer_accounts(), Vec::<AccountId>::new());
    }

    /// A device with a real key (its id is the key), and a card of account
    /// `seed` listing it, proven by the device or not.
    fn keyed_device(secret: u8) -> (ed25519_dalek::SigningKey, DeviceKeys) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[secret; 32]);
        let keys = DeviceKeys {
            device_id: DeviceId(key.verifying_key().to_bytes()),
            olm_ed25519: [secret; 32],
            olm_curve25519: [secret.wrapping_add(100); 32],
            mailbox_key: [secret; 32],
        };
        (key, keys)
    }

    fn card_with(seed: u8, device: DeviceKeys, proof: Option<[u8; 64]>) -> ContactCard {
        let key = AccountKey::from_seed([seed; 32]);
        let list = match proof {
            Some(p) => DeviceList::sign_proven(&key, 1, vec![device], vec![p]),
            None => DeviceList::sign(&key, 1, vec![device]),
        };
        ContactCard::sign(&key, format!("u{seed}"), list, vec![], vec![])
    }

    /// Attack (issue 13, item 5): mallory's card (in a group we join before
    /// we know bob) lists bob's device; bound to mallory first, it stayed
    /// hers, and bob's own group messages were refused. Bob's entry, signed
    /// by his device, takes it back; a forged proof binds nothing.
    #[test]
    fn a_device_signed_entry_takes_its_device_back_from_a_card_that_listed_it_first() {
        let mut book = ContactBook::<u8, u8>::default();
        let (bob_key, bob_device) = keyed_device(30);
        let mallory = card_with(40, bob_device, None);
        book.insert_peer(record("m", &mallory), mallory.clone(), reach(&mallory));
        assert!(book.owns(&mallory.account(), &bob_device), "first come");
        let bob_account = AccountKey::from_seed([41; 32]).id();
        let proof = bob_device.prove(&bob_account, &bob_key);
        let bob = card_with(41, bob_device, Some(proof));
        book.insert_peer(record("b", &bob), bob.clone(), reach(&bob));
        assert!(book.owns(&bob.account(), &bob_device), "proven wins");
        assert!(!book.owns(&mallory.account(), &bob_device));
        assert_eq!(
            book.of_device(&bob_device.device_id).map(|(a, _)| a),
            Some(bob.account())
        );
        // Neither a legacy contact card nor a forged proof takes it now.
        let again = card_with(42, bob_device, None);
        book.insert(record("again", &again), again.clone(), reach(&again));
        assert!(book.owns(&bob.account(), &bob_device));
        let forged = card_with(43, bob_device, Some([9; 64]));
        book.insert(record("forged", &forged), forged.clone(), reach(&forged));
        assert!(book.owns(&bob.account(), &bob_device));
        // A proof made for one account does not serve another.
        let stolen = card_with(44, bob_device, Some(proof));
        assert_eq!(stolen.device_list.proof(&bob_device), Proof::Forged);
    }

    /// Attack (issue 13, item 5, Olm keys): a Curve25519 key cannot sign,
    /// so a device's proof cannot show it holds its Olm key. Mallory lists
    /// her own device (proven by her device key) with *bob's* Olm key, on a
    /// card we see before bob's. Bob's mail (found by that key) would name
    /// her account. Bob's own proven entry takes the key back, and her card,
    /// seen again, does not retake it.
    #[test]
    fn a_proven_entry_carrying_anothers_olm_key_cannot_keep_it_from_its_owner() {
        let mut book = ContactBook::<u8, u8>::default();
        let (bob_key, bob_device) = keyed_device(50);
        let (mallory_key, mut mallory_device) = keyed_device(60);
        mallory_device.olm_curve25519 = bob_device.olm_curve25519;
        let mallory_account = AccountKey::from_seed([61; 32]).id();
        let mallory_proof = mallory_device.prove(&mallory_account, &mallory_key);
        let mallory = card_with(61, mallory_device, Some(mallory_proof));
        book.insert_peer(record("m", &mallory), mallory.clone(), reach(&mallory));
        let curve = bob_device.olm_curve25519;
        assert_eq!(
            book.device_by_curve(&curve).map(|(a, _)| a),
            Some(mallory.account()),
            "first come"
        );
        let bob_account = AccountKey::from_seed([51; 32]).id();
        let bob = card_with(
            51,
            bob_device,
            Some(bob_device.prove(&bob_account, &bob_key)),
        );
        book.insert(record("b", &bob), bob.clone(), reach(&bob));
        assert_eq!(
            book.device_by_curve(&curve),
            Some((bob.account(), bob_device)),
            "bob's mail is bob's"
        );
        book.insert_peer(record("m", &mallory), mallory.clone(), reach(&mallory));
        assert_eq!(
            book.device_by_curve(&curve).map(|(a, _)| a),
            Some(bob.account())
        );
    }
}

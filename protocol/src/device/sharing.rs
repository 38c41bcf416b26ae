//! Presence beyond the watch: our presence key and who gets it, our own
//! records (sealed, when to publish, to whom to push), and what contacts'
//! records say about them.
//!
//! Publishing: every heartbeat (half the TTL, at most a minute) a fresh
//! online record goes in the DHT under our locator and to the contact
//! devices we are connected to; on a graceful stop an offline one. Contacts
//! learn a device is online from such a record (never from a bare
//! connection); the [`PresenceWatch`] keeps it online while connected, or
//! until the record expires, with a grace period after a dropped
//! connection.
//!
//! Privacy: a contact gets our presence key only while we share with it and
//! the global switch is on. Switching either off rotates the key, shares
//! the new one with those still allowed, and overwrites the old locator
//! with a "never seen" record.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

use crate::device::{ContactBook, PresenceTiming, PresenceWatch, Sighting};
use crate::{
    AccountId, DeviceId, DeviceKeys, HomeRelays, MAX_PRESENCE_ADDRESSES, MAX_STATED_RELAYS, Now,
    Presence, PresenceKey, PresenceState, SealedPresence,
};

/// The heartbeat is half the TTL, but at least this often, so connections
/// to online contacts never sit idle long enough to be closed.
pub const MAX_HEARTBEAT_MS: u64 = 60_000;
/// A contact device gets our record on (re)connection at most this often.
pub const PUSH_INTERVAL_MS: u64 = 1_000;

/// Our side of presence: the key contacts read our records with, and the
/// global switch.
#[derive(Clone, Serialize, Deserialize)]
pub struct OwnPresenceRecord {
    /// Off: nobody sees our presence or last seen.
    pub share: bool,
    pub epoch: u32,
    pub key: [u8; 32],
}

impl fmt::Debug for OwnPresenceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnPresenceRecord")
            .field("share", &self.share)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Presence as it concerns one contact.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceRecord {
    /// We share our presence and last seen with them.
    pub share: bool,
    /// The epoch of our key they were last sent (0: none).
    pub shared_epoch: u32,
    /// Their presence key, once they shared it: (epoch, key).
    pub their_key: Option<(u32, [u8; 32])>,
    /// When we last knew them online (ms since the epoch; 0: never).
    pub last_seen_ms: u64,
}

impl Default for PresenceRecord {
    fn default() -> Self {
        Self {
            share: true,
            shared_epoch: 0,
            their_key: None,
            last_seen_ms: 0,
        }
    }
}

impl fmt::Debug for PresenceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceRecord")
            .field("share", &self.share)
            .field("shared_epoch", &self.shared_epoch)
            .field("their_epoch", &self.their_key.map(|(e, _)| e))
            .field("last_seen_ms", &self.last_seen_ms)
            .finish()
    }
}

/// Who this device is, as presence needs it.
#[derive(Clone)]
pub struct PresenceSelf {
    pub account: AccountId,
    pub device: DeviceId,
    /// The device's Ed25519 seed: signs our records.
    pub device_secret: [u8; 32],
}

impl fmt::Debug for PresenceSelf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceSelf")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// What presence hands the host to store.
#[derive(Debug, Clone)]
pub enum PresenceWrite {
    Own(OwnPresenceRecord),
    Contact(AccountId, PresenceRecord),
    /// The contact was removed: its row goes.
    Forget(AccountId),
}

/// What a change of who we share with needs to know of the host.
pub struct World<'a> {
    /// Every contact account.
    pub all: &'a [AccountId],
    /// A contact's connected devices.
    pub connected_of: &'a dyn Fn(&AccountId) -> Vec<DeviceId>,
    /// Our addresses and connected contact devices, for a record published
    /// now.
    pub addresses: &'a [String],
    pub connected: &'a [(AccountId, DeviceId)],
}

/// What follows from a call, in order.
#[derive(Debug, Clone)]
pub enum PresenceEffect {
    Write(PresenceWrite),
    /// Put `record` in the DHT under `locator`, to expire after `ttl_ms`.
    Put {
        locator: [u8; 32],
        record: SealedPresence,
        ttl_ms: u64,
    },
    /// A `PresencePush` to this contact device: our record, or none to ask
    /// for theirs.
    Push {
        device: DeviceId,
        record: Option<SealedPresence>,
    },
    /// Look this contact device's record up in the DHT (if not already),
    /// then say so ([`PresenceBook::looking_up`]).
    LookUp {
        account: AccountId,
        device: DeviceId,
        locator: [u8; 32],
    },
    /// Send our presence key to the contact over Olm, then say so
    /// ([`PresenceBook::key_sent`]).
    ShareKey {
        account: AccountId,
        key: PresenceKey,
    },
    /// The contact's state changed (the store has the new last seen).
    Changed {
        account: AccountId,
        online: bool,
        last_seen_ms: u64,
    },
}

/// What a contact's record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted<A> {
    /// Not genuine, not theirs, not readable, or older than the last.
    Refused(Refusal),
    /// Genuine, and nothing new.
    Known,
    /// Genuine and newer: the device is at these addresses, and says
    /// where its home relays are (if it does).
    Applied(Vec<A>, Option<HomeRelays>),
}

/// Why a contact's record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The sender is not a contact (a group peer, say): presence is only
    /// traded with contacts.
    NotAContact,
    /// We hold no presence key of theirs (yet).
    NoKey,
    /// It does not open with their key, or has expired.
    Unreadable,
    /// It opens, but names another account or device than the sender.
    NotTheirs,
    /// Older than the newest record accepted from the device.
    Replay,
}

/// Presence as the user asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceSummary {
    pub online: bool,
    pub devices_online: usize,
    /// 0: never seen.
    pub last_seen_ms: u64,
    /// Whether we share our presence with them.
    pub you_share: bool,
}

/// Our presence, and what we know of our contacts'.
pub struct PresenceBook<A> {
    me: PresenceSelf,
    /// Signs our records: derived from `me.device_secret` once (deriving
    /// costs as much as signing).
    signer: ed25519_dalek::SigningKey,
    ttl_ms: u64,
    own: OwnPresenceRecord,
    key: PresenceKey,
    contacts: HashMap<AccountId, PresenceRecord>,
    /// Each contact device's presence (grace, expiry).
    watch: PresenceWatch<A>,
    next_heartbeat_ms: u64,
    /// When each contact device last got our record (one entry per contact
    /// device at most).
    pushed: HashMap<DeviceId, u64>,
    /// Blocked contacts: they never get our key or records.
    blocked: HashSet<AccountId>,
    /// The account's presence seed: our rotations derive the next key from
    /// it, so every device of the account rotates to the same key.
    seed: Option<zeroize::Zeroizing<[u8; 32]>>,
    /// Our home relays now, stated in each of our records.
    relays: Vec<String>,
    effects: VecDeque<PresenceEffect>,
}

impl<A> fmt::Debug for PresenceBook<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceBook")
            .field("me", &self.me)
            .field("own", &self.own)
            .field("contacts", &self.contacts.len())
            .finish_non_exhaustive()
    }
}

impl<A: Clone> PresenceBook<A> {
    /// From what is stored; a device without a presence key makes one (and
    /// says to store it).
    pub fn load(
        me: PresenceSelf,
        timing: PresenceTiming,
        own: Option<OwnPresenceRecord>,
        contacts: Vec<(AccountId, PresenceRecord)>,
        now: Now,
    ) -> Self {
        let mut effects = VecDeque::new();
        let own = own.unwrap_or_else(|| {
            let key = PresenceKey::generate(1);
            let own = OwnPresenceRecord {
                share: true,
                epoch: key.epoch(),
                key: *key.secret(),
            };
            effects.push_back(PresenceEffect::Write(PresenceWrite::Own(own.clone())));
            own
        });
        let key = PresenceKey::from_parts(own.epoch, own.key);
        Self {
            signer: ed25519_dalek::SigningKey::from_bytes(&me.device_secret),
            me,
            ttl_ms: timing.ttl_ms,
            own,
            key,
            contacts: contacts.into_iter().collect(),
            watch: PresenceWatch::new(timing),
            next_heartbeat_ms: now.mono_ms,
            pushed: HashMap::new(),
            blocked: HashSet::new(),
            seed: None,
            relays: Vec::new(),
            effects,
        }
    }

    /// Our home relays, stated in our records from now on; a change is
    /// published at the next tick.
    pub fn set_relays(&mut self, relays: &[String]) {
        let relays: Vec<String> = relays.iter().take(MAX_STATED_RELAYS).cloned().collect();
        if relays != self.relays {
            self.relays = relays;
            self.next_heartbeat_ms = 0;
        }
    }

    /// The account's presence seed (shared by its devices at link time):
    /// rotations derive the next key from it.
    pub fn set_seed(&mut self, seed: [u8; 32]) {
        self.seed = Some(zeroize::Zeroizing::new(seed));
    }

    /// The next effect, in order.
    pub fn poll_effect(&mut self) -> Option<PresenceEffect> {
        self.effects.pop_front()
    }

    fn heartbeat_ms(&self) -> u64 {
        (self.ttl_ms / 2).min(MAX_HEARTBEAT_MS)
    }

    /// The global switch.
    pub fn sharing(&self) -> bool {
        self.own.share
    }

    /// What we hold about a contact's presence (for a device we link).
    pub fn record(&self, account: &AccountId) -> Option<&PresenceRecord> {
        self.contacts.get(account)
    }

    pub fn shares_with(&self, account: &AccountId) -> bool {
        self.own.share
            && !self.blocked.contains(account)
            && self.contacts.get(account).is_none_or(|c| c.share)
    }

    fn their_key(&self, account: &AccountId) -> Option<PresenceKey> {
        let (epoch, key) = self.contacts.get(account)?.their_key?;
        Some(PresenceKey::from_parts(epoch, key))
    }

    /// Addresses a contact device announced in its latest record.
    pub fn addresses_of(&self, device: &DeviceId) -> &[A] {
        self.watch.addresses_of(device)
    }

    /// Our record as of now, or none while the global switch is off.
    pub fn own_record(
        &self,
        now: Now,
        state: PresenceState,
        addresses: &[String],
    ) -> Option<SealedPresence> {
        self.own
            .share
            .then(|| self.seal(now, state, &self.key, true, addresses))
    }

    /// Our record now; `seen` false makes a "never seen, no addresses"
    /// record (to retire a key).
    fn seal(
        &self,
        now: Now,
        state: PresenceState,
        key: &PresenceKey,
        seen: bool,
        addresses: &[String],
    ) -> SealedPresence {
        let addresses = addresses
            .iter()
            .filter(|_| seen)
            .take(MAX_PRESENCE_ADDRESSES)
            .cloned()
            .collect();
        let presence = Presence {
            account: self.me.account,
            device: self.me.device,
            state,
            issued_at_ms: now.unix_ms,
            expires_at_ms: now.unix_ms.saturating_add(self.ttl_ms),
            last_seen_ms: if seen { now.unix_ms } else { 0 },
            addresses,
            relays: if seen {
                self.relays.clone()
            } else {
                Vec::new()
            },
        };
        presence.seal(&self.signer, key)
    }

    /// Puts our record for `state` in the DHT and pushes it to every
    /// connected contact device (`connected`); false while sharing is off.
    pub fn announce(
        &mut self,
        now: Now,
        state: PresenceState,
        addresses: &[String],
        connected: &[(AccountId, DeviceId)],
    ) -> bool {
        let Some(record) = self.own_record(now, state, addresses) else {
            return false;
        };
        self.effects.push_back(PresenceEffect::Put {
            locator: self.key.locator(&self.me.device),
            record: record.clone(),
            ttl_ms: self.ttl_ms,
        });
        for (account, device) in connected {
            self.push_to(now, account, *device, Some(record.clone()), true);
        }
        true
    }

    /// The heartbeat: a fresh record now, the next one a heartbeat later.
    pub fn publish(&mut self, now: Now, addresses: &[String], connected: &[(AccountId, DeviceId)]) {
        self.next_heartbeat_ms = now.mono_ms + self.heartbeat_ms();
        self.announce(now, PresenceState::Online, addresses, connected);
    }

    /// Our record (or nothing, to ask for theirs) to a contact device,
    /// unless we do not share with it; `force` skips the rate limit.
    fn push_to(
        &mut self,
        now: Now,
        account: &AccountId,
        device: DeviceId,
        record: Option<SealedPresence>,
        force: bool,
    ) {
        let record = record.filter(|_| self.shares_with(account));
        let wants_theirs = self.their_key(account).is_some();
        if record.is_none() && !wants_theirs {
            return;
        }
        if !force
            && self
                .pushed
                .get(&device)
                .is_some_and(|at| now.mono_ms.saturating_sub(*at) < PUSH_INTERVAL_MS)
        {
            return;
        }
        self.pushed.insert(device, now.mono_ms);
        self.effects
            .push_back(PresenceEffect::Push { device, record });
    }

    /// A contact device connected: trade records (theirs tells us it is
    /// online; ours tells it we are).
    pub fn connected<P: Copy + Eq + Hash>(
        &mut self,
        now: Now,
        contacts: &ContactBook<P, A>,
        account: &AccountId,
        device: DeviceId,
        addresses: &[String],
    ) {
        if !contacts.is_contact(account) {
            return;
        }
        self.watch.connected(&device);
        let record = self.own_record(now, PresenceState::Online, addresses);
        self.push_to(now, account, device, record, false);
    }

    /// The last connection to a contact device closed: unless it said
    /// goodbye, it stays online for the grace period.
    pub fn disconnected(&mut self, now: Now, account: &AccountId, device: &DeviceId) {
        if self.watch.disconnected(now, device)
            && let Some(c) = self.contacts.get_mut(account)
        {
            c.last_seen_ms = now.unix_ms;
        }
    }

    /// A contact device pushed (maybe) its record: the answer is ours, or
    /// none if we do not share with it.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_push<P: Copy + Eq + Hash>(
        &mut self,
        now: Now,
        contacts: &ContactBook<P, A>,
        account: &AccountId,
        keys: &DeviceKeys,
        record: Option<&SealedPresence>,
        connected: bool,
        addresses: &[String],
        parse: impl Fn(&str) -> Option<A>,
    ) -> (Accepted<A>, Option<SealedPresence>) {
        if !contacts.is_contact(account) {
            return (Accepted::Refused(Refusal::NotAContact), None);
        }
        let accepted = match record {
            Some(record) => self.accept(now, contacts, account, keys, record, connected, parse),
            None => Accepted::Known,
        };
        let mut answer = None;
        if self.shares_with(account) {
            answer = self.own_record(now, PresenceState::Online, addresses);
            self.pushed.insert(keys.device_id, now.mono_ms);
        }
        (accepted, answer)
    }

    /// Opens and applies a contact device's record if it is genuine, newer
    /// than the last one, and for that device.
    #[allow(clippy::too_many_arguments)]
    pub fn accept<P: Copy + Eq + Hash>(
        &mut self,
        now: Now,
        contacts: &ContactBook<P, A>,
        account: &AccountId,
        keys: &DeviceKeys,
        sealed: &SealedPresence,
        connected: bool,
        parse: impl Fn(&str) -> Option<A>,
    ) -> Accepted<A> {
        if !contacts.is_contact(account) {
            return Accepted::Refused(Refusal::NotAContact);
        }
        let Some(key) = self.their_key(account) else {
            return Accepted::Refused(Refusal::NoKey);
        };
        let Ok(presence) = sealed.open(&key, now.unix_ms) else {
            return Accepted::Refused(Refusal::Unreadable);
        };
        if presence.account != *account || presence.device != keys.device_id {
            return Accepted::Refused(Refusal::NotTheirs);
        }
        let before = self.contact_presence(contacts, account);
        let addresses: Vec<A> = presence.addresses.iter().filter_map(|a| parse(a)).collect();
        match self
            .watch
            .accept(now, &presence, addresses.clone(), connected)
        {
            Sighting::Replay => return Accepted::Refused(Refusal::Replay),
            Sighting::Known => return Accepted::Known,
            Sighting::Applied => {}
        }
        let record = self.contacts.entry(*account).or_default();
        let seen = match presence.state {
            PresenceState::Online => now.unix_ms,
            PresenceState::Offline => presence.last_seen_ms,
        };
        record.last_seen_ms = record.last_seen_ms.max(seen);
        self.changed(now, contacts, account, before);
        Accepted::Applied(addresses, presence.home_relays())
    }

    /// Says so (and stores last seen) if the contact's state differs from
    /// `before`.
    fn changed<P: Copy + Eq + Hash>(
        &mut self,
        now: Now,
        contacts: &ContactBook<P, A>,
        account: &AccountId,
        before: (bool, usize),
    ) {
        let after = self.contact_presence(contacts, account);
        if after.0 == before.0 || contacts.name_of(account).is_none() {
            return;
        }
        let record = self.contacts.entry(*account).or_default();
        if after.0 {
            record.last_seen_ms = record.last_seen_ms.max(now.unix_ms);
        }
        let last_seen_ms = record.last_seen_ms;
        let write = PresenceWrite::Contact(*account, record.clone());
        self.effects.push_back(PresenceEffect::Write(write));
        self.effects.push_back(PresenceEffect::Changed {
            account: *account,
            online: after.0,
            last_seen_ms,
        });
    }

    /// (online, devices online) of a contact.
    fn contact_presence<P: Copy + Eq + Hash>(
        &self,
        contacts: &ContactBook<P, A>,
        account: &AccountId,
    ) -> (bool, usize) {
        let online = contacts.known(account).map_or(0, |c| {
            self.watch
                .online_count(c.card.device_list.devices.iter().map(|d| &d.device_id))
        });
        (online > 0, online)
    }

    /// What we know of a contact's presence now.
    pub fn summary<P: Copy + Eq + Hash>(
        &self,
        now: Now,
        contacts: &ContactBook<P, A>,
        account: &AccountId,
    ) -> PresenceSummary {
        let (online, devices_online) = self.contact_presence(contacts, account);
        let last_seen_ms = if online {
            now.unix_ms
        } else {
            self.contacts.get(account).map_or(0, |c| c.last_seen_ms)
        };
        PresenceSummary {
            online,
            devices_online,
            last_seen_ms,
            you_share: self.shares_with(account),
        }
    }

    /// Asks for a DHT lookup of each device of a contact that shares with
    /// us (the host starts those not already on their way).
    pub fn look_up<P: Copy + Eq + Hash>(
        &mut self,
        contacts: &ContactBook<P, A>,
        account: &AccountId,
    ) {
        let Some(key) = self.their_key(account) else {
            return;
        };
        let Some(contact) = contacts.known(account) else {
            return;
        };
        for d in &contact.card.device_list.devices {
            self.effects.push_back(PresenceEffect::LookUp {
                account: *account,
                device: d.device_id,
                locator: key.locator(&d.device_id),
            });
        }
    }

    /// A lookup of the device started.
    pub fn looking_up(&mut self, now: Now, device: DeviceId) {
        self.watch.looked_up(now, device);
    }

    /// Whether our record is due again ([`PresenceBook::publish`] it, with
    /// the addresses and contacts of now): the host works those out only
    /// then, not on every tick.
    pub fn heartbeat_due(&self, now: Now) -> bool {
        now.mono_ms >= self.next_heartbeat_ms
    }

    /// Expiry of contacts' records and grace periods, lookups of contacts
    /// about to expire (the heartbeat is [`PresenceBook::heartbeat_due`]).
    pub fn handle_tick<P: Copy + Eq + Hash>(&mut self, now: Now, contacts: &ContactBook<P, A>) {
        // Grouped by contact: its state changes once, when its last online
        // device goes.
        let mut gone: HashMap<AccountId, usize> = HashMap::new();
        for device in self.watch.expire(now) {
            match contacts.of_device(&device) {
                Some((account, _)) => *gone.entry(account).or_default() += 1,
                None => self.watch.forget(&device),
            }
        }
        let mut gone: Vec<(AccountId, usize)> = gone.into_iter().collect();
        gone.sort();
        for (account, n) in gone {
            let (_, still) = self.contact_presence(contacts, &account);
            self.changed(now, contacts, &account, (true, still + n));
        }
        for device in self.watch.to_refresh(now) {
            if let Some((account, _)) = contacts.of_device(&device) {
                self.look_up(contacts, &account);
            }
        }
    }

    /// A contact sent its presence key: keep the newest, look it up, and
    /// ask its connected devices (`connected`) directly too.
    pub fn handle_key<P: Copy + Eq + Hash>(
        &mut self,
        now: Now,
        contacts: &ContactBook<P, A>,
        account: &AccountId,
        key: &PresenceKey,
        connected: &[DeviceId],
        addresses: &[String],
    ) {
        let record = self.contacts.entry(*account).or_default();
        if record
            .their_key
            .is_some_and(|(epoch, _)| epoch >= key.epoch())
        {
            return;
        }
        record.their_key = Some((key.epoch(), *key.secret()));
        let write = PresenceWrite::Contact(*account, record.clone());
        self.effects.push_back(PresenceEffect::Write(write));
        self.look_up(contacts, account);
        for device in connected {
            let record = self.own_record(now, PresenceState::Online, addresses);
            self.push_to(now, account, *device, record, true);
        }
    }

    /// Our current key to a contact we share with, if it lacks it.
    pub fn share_key_with(&mut self, account: &AccountId) {
        if !self.shares_with(account) {
            return;
        }
        let shared = self.contacts.get(account).map_or(0, |c| c.shared_epoch);
        if shared >= self.key.epoch() {
            return;
        }
        self.effects.push_back(PresenceEffect::ShareKey {
            account: *account,
            key: self.key.clone(),
        });
    }

    /// Our key of `epoch` is queued for the contact.
    pub fn key_sent(&mut self, account: &AccountId, epoch: u32) {
        let record = self.contacts.entry(*account).or_default();
        record.shared_epoch = epoch;
        let write = PresenceWrite::Contact(*account, record.clone());
        self.effects.push_back(PresenceEffect::Write(write));
    }

    /// Switches sharing with one contact (`Some`) or for everyone. Whoever
    /// loses access gets the old key's last word and a new key is made;
    /// everyone still allowed gets it. `all`: every contact account;
    /// `connected_of`: a contact's connected devices.
    #[allow(clippy::too_many_arguments)]
    pub fn set_sharing(
        &mut self,
        now: Now,
        account: Option<AccountId>,
        on: bool,
        all: &[AccountId],
        connected_of: impl Fn(&AccountId) -> Vec<DeviceId>,
        addresses: &[String],
        connected: &[(AccountId, DeviceId)],
    ) {
        let world = World {
            all,
            connected_of: &connected_of,
            addresses,
            connected,
        };
        self.change(now, &world, |book| match account {
            Some(account) => {
                let record = book.contacts.entry(account).or_default();
                record.share = on;
                let write = PresenceWrite::Contact(account, record.clone());
                book.effects.push_back(PresenceEffect::Write(write));
            }
            None => book.own.share = on,
        });
        if on {
            self.publish(now, addresses, connected);
        }
    }

    /// Blocks (or unblocks) a contact: blocked, it loses our key like a
    /// contact we stopped sharing with; unblocked, it gets the current one
    /// again if we share with it.
    pub fn set_blocked(&mut self, now: Now, account: AccountId, blocked: bool, world: &World<'_>) {
        self.change(now, world, |book| {
            if blocked {
                book.blocked.insert(account);
            } else {
                book.blocked.remove(&account);
            }
        });
    }

    /// A blocked contact as stored (at start): no effects.
    pub fn restore_blocked(&mut self, account: AccountId) {
        self.blocked.insert(account);
    }

    /// The contact `account` was removed: it loses our key (if it had it),
    /// its devices' presence is forgotten and its row goes. `world.all`
    /// still lists it.
    pub fn forget(
        &mut self,
        now: Now,
        account: AccountId,
        devices: &[DeviceId],
        world: &World<'_>,
    ) {
        self.change(now, world, |book| {
            book.blocked.insert(account);
        });
        self.blocked.remove(&account);
        self.contacts.remove(&account);
        for device in devices {
            self.watch.forget(device);
            self.pushed.remove(device);
        }
        self.effects
            .push_back(PresenceEffect::Write(PresenceWrite::Forget(account)));
    }

    /// Changes who we share with (`mutate`), then retires the key if
    /// anyone lost access and hands the current key to whoever lacks it.
    fn change(&mut self, now: Now, world: &World<'_>, mutate: impl FnOnce(&mut Self)) {
        let was_shared: Vec<AccountId> = world
            .all
            .iter()
            .filter(|a| self.shares_with(a))
            .copied()
            .collect();
        mutate(self);
        let lost: Vec<AccountId> = was_shared
            .into_iter()
            .filter(|a| !self.shares_with(a))
            .collect();
        if !lost.is_empty() {
            self.rotate(now, &lost, &world.connected_of);
        }
        self.effects
            .push_back(PresenceEffect::Write(PresenceWrite::Own(self.own.clone())));
        for account in world.all {
            self.share_key_with(account);
        }
        if !lost.is_empty() && self.own.share {
            // Connected contacts may hold the new key already (another
            // device of ours rotated to it first): a record under it now,
            // not at the next heartbeat.
            self.publish(now, world.addresses, world.connected);
        }
    }

    /// Someone lost access: retire the key. The old locator gets a "never
    /// seen" record, those who lost access are told we are offline (with
    /// the old key, the last one they can read), and a new key is made.
    fn rotate(
        &mut self,
        now: Now,
        lost: &[AccountId],
        connected_of: &impl Fn(&AccountId) -> Vec<DeviceId>,
    ) {
        let old = self.key.clone();
        let tombstone = self.seal(now, PresenceState::Offline, &old, false, &[]);
        self.effects.push_back(PresenceEffect::Put {
            locator: old.locator(&self.me.device),
            record: tombstone.clone(),
            ttl_ms: self.ttl_ms,
        });
        for account in lost {
            for device in connected_of(account) {
                // Sent even though we no longer share with them: it is the
                // old key's last word.
                self.effects.push_back(PresenceEffect::Push {
                    device,
                    record: Some(tombstone.clone()),
                });
            }
        }
        let key = match &self.seed {
            Some(seed) => PresenceKey::derive(seed, old.epoch().saturating_add(1)),
            None => old.rotate(),
        };
        self.own.epoch = key.epoch();
        self.own.key = *key.secret();
        self.key = key;
    }
}

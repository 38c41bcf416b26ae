//! The outbox: what waits for which device, in which state, and when to
//! try again. The durable side is the host's `outbox` table: an entry is
//! there before `send` returns and leaves only once a device acked it (or,
//! for what needs no receipt, a relay holds it).
//!
//! An entry moves through explicit states, only by the transitions below:
//!
//! ```text
//!  insert ─▶ Committing ─committed─▶ Waiting(due) ─take batch─▶ InFlight ─ack─▶ (removed)
//!                ▲                     │      ▲                    │ failed / refused
//!                └──── encrypted ──────┤      └──── retry_later ───┘ (backoff, whole device)
//!                                      └─ no session ─▶ AwaitingKey ─key─▶ Waiting
//! ```
//!
//! `Q` is the host's request id, `P` its relay id.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{AccountId, ConversationId, DeviceId, MailboxId, MessageId, Now};

/// Most undelivered entries the outbox holds; `send` fails beyond it.
pub const MAX_OUTBOX_ENTRIES: usize = 100_000;
/// The first retry comes this long after a failure (ms); each later one
/// waits twice as long, up to [`MAX_RETRY_MS`].
pub const FIRST_RETRY_MS: u64 = 500;
pub const MAX_RETRY_MS: u64 = 30_000;
/// Direct requests a device may have in flight to a recipient that handles
/// them in order (`/hush/direct/2`); to any other, one.
pub const ORDERED_WINDOW: usize = 2;

/// One entry: a message id to one device.
pub type OutboxKey = (MessageId, DeviceId);

/// What an outbox entry carries to one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxKind {
    Message,
    Receipt,
    /// Key material and settings for the contact's node (our presence key,
    /// our deposit right): no status, no receipt, only directly.
    Control,
    /// Group control (membership ops, Megolm keys, group receipts): to
    /// members who may be offline, so through their relays too.
    Group,
    /// Our account's new card (a device linked or revoked): no status,
    /// through relays too, so an offline contact learns it before it sends.
    Account,
}

/// One payload waiting to reach one device, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub kind: OutboxKind,
    pub conversation: ConversationId,
    pub recipient: AccountId,
    pub device: DeviceId,
    /// The padded plaintext payload. (`serde_bytes`: written in one piece
    /// instead of byte by byte; postcard encodes both the same way.)
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The envelope once encrypted; resends reuse it byte for byte, so the
    /// recipient recognises a resend without decrypting it.
    #[serde(with = "serde_bytes")]
    pub envelope: Option<Vec<u8>>,
    pub created_at_ms: u64,
}

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Ready to go once due.
    Waiting,
    /// Just queued or encrypted: its record is being committed; nothing
    /// leaves before that.
    Committing,
    /// Waiting for the device's one-time key.
    AwaitingKey,
    /// Sent directly; waiting for the ack.
    InFlight,
}

#[derive(Debug)]
pub struct Entry<P> {
    record: OutboxRecord,
    state: EntryState,
    attempts: u32,
    /// When it is due (mono ms), while waiting.
    due_ms: u64,
    /// Relays (of the recipient) that durably hold this envelope.
    sent_to: Vec<P>,
    /// The envelope sealed for the recipient's mailboxes, made once so a
    /// resent deposit has the same bytes and the relay dedupes it.
    sealed: Option<(MailboxId, Vec<u8>)>,
}

impl<P: PartialEq> Entry<P> {
    pub fn record(&self) -> &OutboxRecord {
        &self.record
    }

    pub fn state(&self) -> EntryState {
        self.state
    }

    pub fn is_waiting(&self) -> bool {
        self.state == EntryState::Waiting
    }

    pub fn envelope(&self) -> Option<&Vec<u8>> {
        self.record.envelope.as_ref()
    }

    pub fn sent_to(&self) -> &[P] {
        &self.sent_to
    }

    /// The sealed envelope, if it was sealed for `mailbox` (sealed for
    /// another, it is sealed again: the mailbox id is bound in).
    pub fn sealed(&self, mailbox: &MailboxId) -> Option<&Vec<u8>> {
        self.sealed
            .as_ref()
            .filter(|(m, _)| m == mailbox)
            .map(|(_, sealed)| sealed)
    }

    /// Keeps the envelope sealed for the mailboxes (made once).
    pub fn set_sealed(&mut self, mailbox: MailboxId, sealed: Vec<u8>) {
        self.sealed = Some((mailbox, sealed));
    }

    /// A relay holds it now; it is tried directly again only from
    /// `not_before_ms` (when the device may be back). Returns whether this
    /// is the first relay (then it is `sent`).
    pub fn held_by(&mut self, relay: P, not_before_ms: u64) -> bool {
        if self.sent_to.contains(&relay) {
            return false;
        }
        self.sent_to.push(relay);
        self.due_ms = self.due_ms.max(not_before_ms);
        self.sent_to.len() == 1
    }
}

/// Every undelivered entry, and the requests carrying them.
#[derive(Debug)]
pub struct Outbox<Q, P> {
    /// By device, then message (oldest first): what a tick, a pump or a
    /// wake asks is about one device's entries, which are then found
    /// without walking everyone's (the outbox can hold thousands). A
    /// device is here only while it has entries.
    entries: HashMap<DeviceId, BTreeMap<MessageId, Entry<P>>>,
    /// The entries each direct request carries, in order.
    requests: HashMap<Q, Vec<OutboxKey>>,
    /// One-time key requests on their way, by the device they are for.
    key_requests: HashMap<Q, DeviceId>,
    /// Devices whose one-time key is on its way (from them or a relay).
    awaiting_key: HashSet<DeviceId>,
    /// Direct requests in flight, by device.
    flights: HashMap<DeviceId, usize>,
    /// Devices known to handle our requests in order (they answered on
    /// `/hush/direct/2`).
    ordered: HashSet<DeviceId>,
}

impl<Q, P> Default for Outbox<Q, P> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            requests: HashMap::new(),
            key_requests: HashMap::new(),
            awaiting_key: HashSet::new(),
            flights: HashMap::new(),
            ordered: HashSet::new(),
        }
    }
}

/// The wait before retry number `attempts` (ms).
pub fn backoff_ms(attempts: u32) -> u64 {
    (FIRST_RETRY_MS << attempts.min(8)).min(MAX_RETRY_MS)
}

impl<Q: std::hash::Hash + Eq, P: PartialEq> Outbox<Q, P> {
    pub fn len(&self) -> usize {
        self.entries.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &OutboxKey) -> Option<&Entry<P>> {
        self.entries.get(&key.1)?.get(&key.0)
    }

    pub fn get_mut(&mut self, key: &OutboxKey) -> Option<&mut Entry<P>> {
        self.entries.get_mut(&key.1)?.get_mut(&key.0)
    }

    pub fn remove(&mut self, key: &OutboxKey) -> Option<OutboxRecord> {
        let queue = self.entries.get_mut(&key.1)?;
        let entry = queue.remove(&key.0)?;
        if queue.is_empty() {
            self.entries.remove(&key.1);
        }
        Some(entry.record)
    }

    /// `device`'s entries, oldest first.
    fn entries_for(
        &self,
        device: &DeviceId,
    ) -> impl DoubleEndedIterator<Item = (OutboxKey, &Entry<P>)> + '_ {
        let device = *device;
        self.entries
            .get(&device)
            .into_iter()
            .flatten()
            .map(move |(id, e)| ((*id, device), e))
    }

    /// `device`'s entries, oldest first, to change.
    fn entries_for_mut(&mut self, device: &DeviceId) -> impl Iterator<Item = &mut Entry<P>> {
        self.entries
            .get_mut(device)
            .into_iter()
            .flat_map(|queue| queue.values_mut())
    }

    /// The keys of message `id`'s entries (one per recipient device), by
    /// device.
    pub fn keys_of(&self, id: MessageId) -> Vec<OutboxKey> {
        let mut keys: Vec<OutboxKey> = self
            .entries
            .iter()
            .filter(|(_, queue)| queue.contains_key(&id))
            .map(|(device, _)| (id, *device))
            .collect();
        keys.sort_unstable();
        keys
    }

    /// The device's entries from `from` on, oldest first.
    pub fn queued_from(
        &mut self,
        device: DeviceId,
        from: MessageId,
    ) -> impl Iterator<Item = (OutboxKey, &mut Entry<P>)> {
        self.entries
            .get_mut(&device)
            .into_iter()
            .flat_map(move |queue| queue.range_mut(from..))
            .map(move |(id, e)| ((*id, device), e))
    }

    /// An entry as stored, due now (at start, or after a reload).
    pub fn insert(&mut self, key: OutboxKey, record: OutboxRecord, now: Now) {
        self.entries.entry(key.1).or_default().insert(
            key.0,
            Entry {
                record,
                state: EntryState::Waiting,
                attempts: 0,
                due_ms: now.mono_ms,
                sent_to: Vec::new(),
                sealed: None,
            },
        );
    }

    /// A new entry, being committed with the record that made it.
    pub fn insert_committing(&mut self, key: OutboxKey, record: OutboxRecord, now: Now) {
        self.insert(key, record, now);
        if let Some(e) = self.get_mut(&key) {
            e.state = EntryState::Committing;
        }
    }

    /// Its record is on disk: it may go.
    pub fn committed(&mut self, key: &OutboxKey) {
        if let Some(e) = self.get_mut(key) {
            e.state = EntryState::Waiting;
        }
    }

    /// Encrypted now: the envelope is committed before it goes. Returns the
    /// record to store.
    pub fn encrypted(&mut self, key: &OutboxKey, envelope: Vec<u8>) -> Option<&OutboxRecord> {
        let e = self.get_mut(key)?;
        e.record.envelope = Some(envelope);
        e.state = EntryState::Committing;
        Some(&e.record)
    }

    /// Waits for the device's one-time key. Returns whether a key must be
    /// asked for (none is on its way yet).
    pub fn await_key(&mut self, key: &OutboxKey) -> bool {
        if let Some(e) = self.get_mut(key) {
            e.state = EntryState::AwaitingKey;
        }
        self.awaiting_key.insert(key.1)
    }

    pub fn is_awaiting_key(&self, device: &DeviceId) -> bool {
        self.awaiting_key.contains(device)
    }

    /// A key request to `device` is on its way as `request`.
    pub fn key_requested(&mut self, request: Q, device: DeviceId) {
        self.key_requests.insert(request, device);
    }

    /// A key request ended (answered or failed): which device it was for.
    pub fn key_request_ended(&mut self, request: &Q) -> Option<DeviceId> {
        let device = self.key_requests.remove(request)?;
        self.awaiting_key.remove(&device);
        Some(device)
    }

    /// A key claim at a relay for `device` ended.
    pub fn key_claim_ended(&mut self, device: &DeviceId) {
        self.awaiting_key.remove(device);
    }

    /// The entries that waited for the device's key: on to encryption when
    /// a session started (returned, now waiting), else a later retry.
    pub fn key_arrived(&mut self, now: Now, device: &DeviceId, started: bool) -> Vec<OutboxKey> {
        let waiting: Vec<OutboxKey> = self
            .entries_for(device)
            .filter(|(_, e)| e.state == EntryState::AwaitingKey)
            .map(|(k, _)| k)
            .collect();
        if !started {
            for key in &waiting {
                self.retry_later(key, now);
            }
            return Vec::new();
        }
        for key in &waiting {
            self.committed(key);
        }
        waiting
    }

    /// The device cannot decrypt our session: every entry for it goes back
    /// to waiting without an envelope (to be encrypted again, in order).
    /// Returns the records to store.
    pub fn forget_envelopes(&mut self, device: &DeviceId) -> Vec<(OutboxKey, &OutboxRecord)> {
        for e in self.entries_for_mut(device) {
            e.record.envelope = None;
            e.sealed = None;
            e.sent_to.clear();
            e.state = EntryState::Waiting;
        }
        self.entries_for(device)
            .map(|(k, e)| (k, &e.record))
            .collect()
    }

    /// Whether the device handles our requests in order, so that
    /// [`ORDERED_WINDOW`] of them may be in flight: learned from each
    /// answer (and unlearned when a request could not be sent so).
    pub fn set_ordered(&mut self, device: DeviceId, ordered: bool) {
        if ordered {
            self.ordered.insert(device);
        } else {
            self.ordered.remove(&device);
        }
    }

    /// How many requests may be in flight to the device.
    pub fn window(&self, device: &DeviceId) -> usize {
        if self.ordered.contains(device) {
            ORDERED_WINDOW
        } else {
            1
        }
    }

    /// Records a request carrying `keys` (all for one device).
    pub fn start_flight(&mut self, request: Q, keys: Vec<OutboxKey>) {
        if let Some(key) = keys.first() {
            *self.flights.entry(key.1).or_default() += 1;
        }
        for key in &keys {
            if let Some(e) = self.get_mut(key) {
                e.state = EntryState::InFlight;
            }
        }
        self.requests.insert(request, keys);
    }

    /// The request ended (answered or failed): frees its window slots.
    pub fn end_flight(&mut self, request: &Q) -> Option<Vec<OutboxKey>> {
        let keys = self.requests.remove(request)?;
        if let Some(key) = keys.first()
            && let Some(n) = self.flights.get_mut(&key.1)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.flights.remove(&key.1);
            }
        }
        Some(keys)
    }

    /// Whether a request to `device` is on its way.
    pub fn is_busy(&self, device: &DeviceId) -> bool {
        self.flights.contains_key(device)
    }

    /// The oldest entries for `device` after those in flight, up to `max`,
    /// strictly in order: the run stops at the first entry that is not
    /// waiting and due, so no entry ever overtakes an earlier one. Nothing
    /// while the device's window is full.
    pub fn next_for(&self, device: &DeviceId, now: Now, max: usize) -> Vec<OutboxKey> {
        if self.flights.get(device).copied().unwrap_or(0) >= self.window(device) {
            return Vec::new();
        }
        let run: Vec<OutboxKey> = self
            .entries_for(device)
            .skip_while(|(_, e)| e.state == EntryState::InFlight)
            .take_while(|(_, e)| e.state == EntryState::Waiting && e.due_ms <= now.mono_ms)
            .map(|(k, _)| k)
            .take(max)
            .collect();
        // A request still in flight carries later entries (an earlier one
        // failed and these wait again): nothing goes before it ends.
        let first = run.first();
        let behind = self.is_busy(device)
            && self
                .requests
                .values()
                .any(|keys| keys.first().is_some_and(|k| k.1 == *device) && keys.last() > first);
        if behind { Vec::new() } else { run }
    }

    /// The device's newest entries that have no envelope yet (up to `max`,
    /// oldest first): they are encrypted, in order, before a deposit.
    pub fn unencrypted_tail(&self, device: &DeviceId, max: usize) -> Vec<OutboxKey> {
        let mut keys: Vec<OutboxKey> = self
            .entries_for(device)
            .rev()
            .take_while(|(_, e)| e.record.envelope.is_none())
            .map(|(k, _)| k)
            .collect();
        keys.reverse();
        keys.truncate(max);
        keys
    }

    /// Replaces the entries with what storage holds (after a failed
    /// commit), keeping track of the requests still in flight.
    pub fn reload(&mut self, records: Vec<(OutboxKey, OutboxRecord)>, now: Now) {
        let flying: HashSet<OutboxKey> = self.requests.values().flatten().copied().collect();
        self.entries.clear();
        for (key, record) in records {
            self.insert(key, record, now);
            if flying.contains(&key)
                && let Some(e) = self.get_mut(&key)
            {
                e.state = EntryState::InFlight;
            }
        }
        // Entries that were waiting for a key will ask again.
        self.key_requests.clear();
        self.awaiting_key.clear();
    }

    /// Devices with entries due for an attempt.
    pub fn due_devices(&self, now: Now) -> HashSet<DeviceId> {
        self.entries
            .iter()
            .filter(|(_, queue)| {
                queue
                    .values()
                    .any(|e| e.state == EntryState::Waiting && e.due_ms <= now.mono_ms)
            })
            .map(|(device, _)| *device)
            .collect()
    }

    /// How many entries go to `account` (our own: copies our other devices
    /// have not stored yet).
    pub fn count_for(&self, account: &AccountId) -> usize {
        self.entries
            .values()
            .flat_map(BTreeMap::values)
            .filter(|e| e.record().recipient == *account)
            .count()
    }

    pub fn for_device(&self, device: &DeviceId) -> Vec<OutboxKey> {
        self.entries_for(device).map(|(k, _)| k).collect()
    }

    /// Schedules the next attempt with exponential backoff.
    pub fn retry_later(&mut self, key: &OutboxKey, now: Now) {
        if let Some(e) = self.get_mut(key) {
            e.state = EntryState::Waiting;
            e.due_ms = now.mono_ms.saturating_add(backoff_ms(e.attempts));
            e.attempts = e.attempts.saturating_add(1);
        }
    }

    /// A request to a device failed or was refused: every waiting entry for
    /// it backs off together, so none overtakes the failed ones.
    pub fn retry_device_later(&mut self, keys: &[OutboxKey], now: Now) {
        let Some(device) = keys.first().map(|k| k.1) else {
            return;
        };
        for key in keys {
            self.retry_later(key, now);
        }
        let until = keys
            .iter()
            .filter_map(|k| self.get(k).map(|e| e.due_ms))
            .max()
            .unwrap_or(now.mono_ms);
        for e in self.entries_for_mut(&device) {
            if e.state == EntryState::Waiting && e.due_ms < until {
                e.due_ms = until;
            }
        }
    }

    /// Makes every waiting entry for `device` due now (it just came online,
    /// or its card changed).
    pub fn wake(&mut self, device: &DeviceId, now: Now) {
        for e in self.entries_for_mut(device) {
            if e.state == EntryState::Waiting {
                e.due_ms = now.mono_ms;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Box = Outbox<u32, u8>;
    const BOB: DeviceId = DeviceId([2; 32]);

    fn record(envelope: bool) -> OutboxRecord {
        OutboxRecord {
            kind: OutboxKind::Message,
            conversation: ConversationId([0; 32]),
            recipient: AccountId([1; 32]),
            device: BOB,
            payload: vec![1],
            envelope: envelope.then(|| vec![9]),
            created_at_ms: 0,
        }
    }

    fn key(n: u64) -> OutboxKey {
        (MessageId(u128::from(n) << 64), BOB)
    }

    /// Records stored before `serde_bytes` (byte vectors as sequences of
    /// u8) read back, and are written the same way: postcard encodes both
    /// as a length and the bytes.
    #[test]
    fn records_encode_as_they_did_before_serde_bytes() {
        #[derive(Serialize)]
        struct Before {
            kind: OutboxKind,
            conversation: ConversationId,
            recipient: AccountId,
            device: DeviceId,
            payload: Vec<u8>,
            envelope: Option<Vec<u8>>,
            created_at_ms: u64,
        }
        let now = OutboxRecord {
            payload: (0..=255).collect(),
            envelope: Some(vec![7; 300]),
            created_at_ms: 99,
            ..record(true)
        };
        let before = Before {
            kind: now.kind,
            conversation: now.conversation,
            recipient: now.recipient,
            device: now.device,
            payload: now.payload.clone(),
            envelope: now.envelope.clone(),
            created_at_ms: now.created_at_ms,
        };
        let old = postcard::to_allocvec(&before).unwrap();
        assert_eq!(postcard::to_allocvec(&now).unwrap(), old);
        let back: OutboxRecord = postcard::from_bytes(&old).unwrap();
        assert_eq!(back.payload, now.payload);
        assert_eq!(back.envelope, now.envelope);
    }

    fn filled(n: u64, now: Now) -> Box {
        let mut outbox = Box::default();
        for i in 1..=n {
            outbox.insert(key(i), record(true), now);
        }
        outbox
    }

    #[test]
    fn backoff_grows_then_caps() {
        assert_eq!(backoff_ms(0), 500);
        assert_eq!(backoff_ms(1), 1_000);
        assert_eq!(backoff_ms(3), 4_000);
        assert_eq!(backoff_ms(20), MAX_RETRY_MS);
    }

    #[test]
    fn a_batch_is_in_order_and_one_request_per_device_is_in_flight() {
        let now = Now::new(100, 0);
        let mut outbox = filled(5, now);
        outbox.insert_committing(key(3), record(true), now);
        assert_eq!(
            outbox.next_for(&BOB, now, 10),
            [key(1), key(2)],
            "stops at 3"
        );
        outbox.committed(&key(3));
        assert_eq!(outbox.next_for(&BOB, now, 4).len(), 4);
        outbox.start_flight(7, vec![key(1), key(2)]);
        assert!(outbox.next_for(&BOB, now, 10).is_empty(), "one in flight");
        assert_eq!(outbox.end_flight(&7), Some(vec![key(1), key(2)]));
        assert_eq!(outbox.end_flight(&7), None);
        assert!(!outbox.is_busy(&BOB));
    }

    #[test]
    fn a_device_handling_requests_in_order_gets_two_and_a_retry_waits_for_both() {
        let now = Now::new(100, 0);
        let mut outbox = filled(6, now);
        outbox.set_ordered(BOB, true);
        assert_eq!(outbox.window(&BOB), ORDERED_WINDOW);
        outbox.start_flight(1, outbox.next_for(&BOB, now, 2));
        // The second batch starts after the first.
        assert_eq!(outbox.next_for(&BOB, now, 2), [key(3), key(4)]);
        outbox.start_flight(2, vec![key(3), key(4)]);
        assert!(
            outbox.next_for(&BOB, now, 2).is_empty(),
            "the window is full"
        );
        // The first fails: its entries wait again, and nothing goes (not
        // even them) while the second, which carries later ones, flies.
        let failed = outbox.end_flight(&1).unwrap_or_default();
        outbox.retry_device_later(&failed, now);
        assert!(outbox.next_for(&BOB, now.plus_ms(10_000), 2).is_empty());
        outbox.end_flight(&2);
        assert_eq!(
            outbox.next_for(&BOB, now.plus_ms(10_000), 2),
            [key(1), key(2)]
        );
        // Unlearned: one at a time again.
        outbox.set_ordered(BOB, false);
        outbox.start_flight(3, vec![key(1), key(2)]);
        assert!(outbox.next_for(&BOB, now.plus_ms(10_000), 2).is_empty());
    }

    #[test]
    fn after_a_failure_no_later_entry_overtakes_the_failed_ones() {
        let now = Now::new(1_000, 0);
        let mut outbox = filled(3, now);
        outbox.start_flight(1, vec![key(1)]);
        let failed = outbox.end_flight(&1).unwrap_or_default();
        outbox.retry_device_later(&failed, now);
        assert!(outbox.next_for(&BOB, now, 10).is_empty());
        assert!(outbox.due_devices(now.plus_ms(499)).is_empty());
        assert_eq!(outbox.next_for(&BOB, now.plus_ms(500), 10).len(), 3);
        // The device came online: due at once.
        outbox.retry_device_later(&[key(1)], now);
        outbox.wake(&BOB, now);
        assert_eq!(outbox.next_for(&BOB, now, 10).len(), 3);
    }

    #[test]
    fn entries_wait_for_a_key_then_go_or_back_off() {
        let now = Now::new(0, 0);
        let mut outbox = Box::default();
        outbox.insert(key(1), record(false), now);
        outbox.insert(key(2), record(false), now);
        assert!(outbox.await_key(&key(1)), "ask for a key");
        assert!(!outbox.await_key(&key(2)), "one is on its way");
        outbox.key_requested(5, BOB);
        assert_eq!(outbox.key_request_ended(&5), Some(BOB));
        assert!(!outbox.is_awaiting_key(&BOB));
        assert_eq!(outbox.key_arrived(now, &BOB, true), [key(1), key(2)]);
        assert!(outbox.get(&key(1)).is_some_and(Entry::is_waiting));
        outbox.await_key(&key(1));
        assert!(outbox.key_arrived(now, &BOB, false).is_empty());
        assert!(outbox.next_for(&BOB, now, 10).is_empty(), "backing off");
        assert_eq!(
            outbox.next_for(&BOB, now.plus_ms(500), 10),
            [key(1), key(2)]
        );
        assert_eq!(outbox.unencrypted_tail(&BOB, 1), [key(1)]);
    }

    #[test]
    fn a_reload_keeps_what_is_in_flight_and_forgets_key_waits() {
        let now = Now::new(0, 0);
        let mut outbox = filled(2, now);
        outbox.start_flight(1, vec![key(1)]);
        outbox.await_key(&key(2));
        outbox.reload(vec![(key(1), record(true)), (key(2), record(true))], now);
        assert_eq!(
            outbox.get(&key(1)).map(Entry::state),
            Some(EntryState::InFlight)
        );
        assert!(!outbox.is_awaiting_key(&BOB));
        let relay = 4;
        let entry = outbox.get_mut(&key(2)).unwrap();
        assert!(entry.held_by(relay, 50));
        assert!(!entry.held_by(relay, 50));
        assert_eq!(outbox.forget_envelopes(&BOB).len(), 2);
        assert!(outbox.get(&key(2)).is_some_and(|e| e.sent_to().is_empty()));
    }

    mod by_device {
        use std::collections::BTreeSet;

        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Step {
            Insert(u8, u8),
            Remove(u8, u8),
            Retry(u8, u8),
            Fly(u8),
            Land(u32),
            Wake(u8),
            Forget(u8),
            Reload,
            Later(u64),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                4 => (0..12u8, 0..3u8).prop_map(|(m, d)| Step::Insert(m, d)),
                2 => (0..12u8, 0..3u8).prop_map(|(m, d)| Step::Remove(m, d)),
                2 => (0..12u8, 0..3u8).prop_map(|(m, d)| Step::Retry(m, d)),
                2 => (0..3u8).prop_map(Step::Fly),
                1 => (0..8u32).prop_map(Step::Land),
                1 => (0..3u8).prop_map(Step::Wake),
                1 => (0..3u8).prop_map(Step::Forget),
                1 => Just(Step::Reload),
                1 => (0..2_000u64).prop_map(Step::Later),
            ]
        }

        fn device(d: u8) -> DeviceId {
            DeviceId([d + 10; 32])
        }

        fn key_of(m: u8, d: u8) -> OutboxKey {
            // Message ids spread over the whole range, the last one the
            // largest id there is (the device index's upper bound).
            let id = if m == 11 {
                u128::MAX
            } else {
                u128::from(m) << 100
            };
            (MessageId(id), device(d))
        }

        /// What each answer must be, worked out from the keys the test
        /// put in (`held`) and each entry's state, looked up one by one.
        fn expected(
            outbox: &Box,
            held: &BTreeSet<OutboxKey>,
            now: Now,
        ) -> (Vec<Vec<OutboxKey>>, HashSet<DeviceId>) {
            let per_device = (0..3)
                .map(|d| {
                    held.iter()
                        .filter(|(_, dev)| *dev == device(d))
                        .copied()
                        .collect()
                })
                .collect();
            let due = held
                .iter()
                .filter(|k| {
                    outbox
                        .get(k)
                        .is_some_and(|e| e.state == EntryState::Waiting && e.due_ms <= now.mono_ms)
                })
                .map(|(_, d)| *d)
                .collect();
            (per_device, due)
        }

        proptest! {
            /// Entries kept by device answer every question about a device,
            /// a message or the whole outbox as a list of all entries in
            /// message order would, whatever entries come, go, fly, wait or
            /// are reloaded.
            #[test]
            fn entries_kept_by_device_answer_as_one_list_would(
                steps in proptest::collection::vec(step(), 1..80),
            ) {
                let mut outbox = Box::default();
                let mut held = BTreeSet::new();
                let mut now = Now::new(1_000, 0);
                let mut request = 0u32;
                for step in steps {
                    match step {
                        Step::Insert(m, d) => {
                            outbox.insert(key_of(m, d), record(m % 2 == 0), now);
                            held.insert(key_of(m, d));
                        }
                        Step::Remove(m, d) => {
                            let removed = outbox.remove(&key_of(m, d)).is_some();
                            prop_assert_eq!(removed, held.remove(&key_of(m, d)));
                        }
                        Step::Retry(m, d) => outbox.retry_later(&key_of(m, d), now),
                        Step::Fly(d) => {
                            let keys = outbox.next_for(&device(d), now, 3);
                            if !keys.is_empty() {
                                request += 1;
                                outbox.start_flight(request, keys);
                            }
                        }
                        Step::Land(r) => {
                            if let Some(keys) = outbox.end_flight(&r) {
                                outbox.retry_device_later(&keys, now);
                            }
                        }
                        Step::Wake(d) => outbox.wake(&device(d), now),
                        Step::Forget(d) => {
                            let forgot: Vec<OutboxKey> = outbox
                                .forget_envelopes(&device(d))
                                .into_iter()
                                .map(|(k, _)| k)
                                .collect();
                            let expected: Vec<OutboxKey> =
                                held.iter().filter(|(_, dev)| *dev == device(d)).copied().collect();
                            prop_assert_eq!(forgot, expected);
                        }
                        Step::Reload => {
                            held = held.iter().step_by(2).copied().collect();
                            let records = held
                                .iter()
                                .filter_map(|k| outbox.get(k).map(|e| (*k, e.record.clone())))
                                .collect();
                            outbox.reload(records, now);
                        }
                        Step::Later(ms) => now = now.plus_ms(ms),
                    }
                    let (per_device, due) = expected(&outbox, &held, now);
                    for (d, keys) in per_device.iter().enumerate() {
                        prop_assert_eq!(&outbox.for_device(&device(d as u8)), keys);
                    }
                    prop_assert_eq!(outbox.due_devices(now), due);
                    prop_assert_eq!(outbox.len(), held.len());
                    prop_assert_eq!(outbox.is_empty(), held.is_empty());
                    for m in 0..12 {
                        let id = key_of(m, 0).0;
                        let of: Vec<OutboxKey> =
                            held.iter().filter(|(i, _)| *i == id).copied().collect();
                        prop_assert_eq!(outbox.keys_of(id), of);
                    }
                    // A device's queue from a message on, as deposits read it.
                    for d in 0..3 {
                        let from = key_of(5, 0).0;
                        let queued: Vec<OutboxKey> =
                            outbox.queued_from(device(d), from).map(|(k, _)| k).collect();
                        let expected: Vec<OutboxKey> = held
                            .iter()
                            .filter(|(i, dev)| *dev == device(d) && *i >= from)
                            .copied()
                            .collect();
                        prop_assert_eq!(queued, expected);
                    }
                    // No device is kept without entries.
                    prop_assert!(outbox.entries.values().all(|q| !q.is_empty()));
                }
            }
        }
    }
}

//! The in-memory side of the outbox: what is waiting for which device, and
//! when to try again. The durable side is the `outbox` table; an entry is
//! there before `send` returns and leaves it only once a device acked it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use hush_protocol::DeviceId;
use libp2p::request_response::OutboundRequestId;

use crate::records::OutboxRecord;
use crate::store::OutboxKey;

/// Most undelivered entries the outbox holds; `send` fails beyond it.
pub const MAX_OUTBOX_ENTRIES: usize = 100_000;
/// Envelopes for one device go out as one batch request at a time, in the
/// order they were encrypted. Olm keeps at most 40 skipped message keys per
/// chain, so envelopes must not overtake each other by more than that:
/// with one request in flight they cannot overtake at all, and after a
/// failed request the whole device backs off (see [`Outbox::retry_device_later`]).
pub const MAX_BATCH_ENVELOPES: usize = hush_protocol::MAX_BATCH_ENVELOPES;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Ready to go at `next_at`.
    Waiting,
    /// Encrypted; its envelope is being committed before it is sent.
    Committing,
    /// Waiting for the device's one-time key.
    AwaitingKey,
    /// Sent; waiting for the ack.
    InFlight,
}

#[derive(Debug)]
pub struct Entry {
    pub record: OutboxRecord,
    pub state: State,
    pub attempts: u32,
    pub next_at: Instant,
    /// Relays (of the recipient) that durably hold this envelope.
    pub sent_to: Vec<libp2p::PeerId>,
    /// The envelope sealed for the recipient's mailboxes, made once so a
    /// resent deposit has the same bytes and the relay dedupes it.
    pub sealed: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct Outbox {
    pub entries: BTreeMap<OutboxKey, Entry>,
    /// The entries each `/hush/direct/1` request carries, in order.
    pub requests: HashMap<OutboundRequestId, Vec<OutboxKey>>,
    pub key_requests: HashMap<OutboundRequestId, DeviceId>,
    pub awaiting_key: HashSet<DeviceId>,
    in_flight: HashMap<DeviceId, usize>,
}

impl Outbox {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn insert(&mut self, key: OutboxKey, record: OutboxRecord, now: Instant) {
        self.entries.insert(
            key,
            Entry {
                record,
                state: State::Waiting,
                attempts: 0,
                next_at: now,
                sent_to: Vec::new(),
                sealed: None,
            },
        );
    }

    /// Records a request carrying `keys` (all for one device).
    pub fn start_flight(&mut self, request: OutboundRequestId, keys: Vec<OutboxKey>) {
        for key in &keys {
            *self.in_flight.entry(key.1).or_default() += 1;
            if let Some(e) = self.entries.get_mut(key) {
                e.state = State::InFlight;
            }
        }
        self.requests.insert(request, keys);
    }

    /// The request ended (answered or failed): frees its window slots.
    pub fn end_flight(&mut self, request: &OutboundRequestId) -> Option<Vec<OutboxKey>> {
        let keys = self.requests.remove(request)?;
        for key in &keys {
            if let Some(n) = self.in_flight.get_mut(&key.1) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.in_flight.remove(&key.1);
                }
            }
        }
        Some(keys)
    }

    /// Whether a request to `device` is on its way.
    pub fn is_busy(&self, device: &DeviceId) -> bool {
        self.in_flight.contains_key(device)
    }

    /// The oldest entries for `device`, up to one batch, strictly in order:
    /// the run stops at the first entry that is not waiting and due, so no
    /// entry ever overtakes an earlier one.
    pub fn next_for(&self, device: &DeviceId, now: Instant) -> Vec<OutboxKey> {
        if self.is_busy(device) {
            return Vec::new();
        }
        self.entries
            .iter()
            .filter(|((_, d), _)| d == device)
            .take_while(|(_, e)| e.state == State::Waiting && e.next_at <= now)
            .map(|(k, _)| *k)
            .take(MAX_BATCH_ENVELOPES)
            .collect()
    }

    /// Replaces the entries with what storage holds (after a failed
    /// commit), keeping track of the requests still in flight.
    pub fn reload(&mut self, records: Vec<(OutboxKey, OutboxRecord)>, now: Instant) {
        let flying: HashSet<OutboxKey> = self.requests.values().flatten().copied().collect();
        self.entries.clear();
        for (key, record) in records {
            self.insert(key, record, now);
            if flying.contains(&key)
                && let Some(e) = self.entries.get_mut(&key)
            {
                e.state = State::InFlight;
            }
        }
        // Entries that were waiting for a key will ask again.
        self.key_requests.clear();
        self.awaiting_key.clear();
    }

    /// Devices with entries due for an attempt.
    pub fn due_devices(&self, now: Instant) -> HashSet<DeviceId> {
        self.entries
            .iter()
            .filter(|(_, e)| e.state == State::Waiting && e.next_at <= now)
            .map(|((_, device), _)| *device)
            .collect()
    }

    pub fn for_device(&self, device: &DeviceId) -> Vec<OutboxKey> {
        self.entries
            .keys()
            .filter(|(_, d)| d == device)
            .copied()
            .collect()
    }

    /// Schedules the next attempt with exponential backoff.
    pub fn retry_later(&mut self, key: &OutboxKey, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.state = State::Waiting;
            e.next_at = now + backoff(e.attempts);
            e.attempts = e.attempts.saturating_add(1);
        }
    }

    /// A request to `device` failed: every waiting entry for it backs off
    /// together, so none overtakes the failed ones.
    pub fn retry_device_later(&mut self, keys: &[OutboxKey], now: Instant) {
        let Some(device) = keys.first().map(|k| k.1) else {
            return;
        };
        for key in keys {
            self.retry_later(key, now);
        }
        let until = keys
            .iter()
            .filter_map(|k| self.entries.get(k).map(|e| e.next_at))
            .max()
            .unwrap_or(now);
        for ((_, d), e) in self.entries.iter_mut() {
            if *d == device && e.state == State::Waiting && e.next_at < until {
                e.next_at = until;
            }
        }
    }

    /// Makes every waiting entry for `device` due now (it just came online).
    pub fn wake(&mut self, device: &DeviceId, now: Instant) {
        for ((_, d), e) in self.entries.iter_mut() {
            if d == device && e.state == State::Waiting {
                e.next_at = now;
            }
        }
    }
}

pub fn backoff(attempts: u32) -> Duration {
    let factor = 1u32 << attempts.min(8);
    (FIRST_RETRY * factor).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(20), MAX_RETRY);
    }
}

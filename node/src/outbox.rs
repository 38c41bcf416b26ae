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
/// Envelopes in flight to one device at once. Envelopes are sent in the
/// order they were encrypted; Olm keeps at most 40 skipped message keys per
/// chain, so a window below that means reordering and loss inside it never
/// make a message undecryptable.
pub const MAX_IN_FLIGHT_PER_DEVICE: usize = 32;
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
}

#[derive(Debug, Default)]
pub struct Outbox {
    pub entries: BTreeMap<OutboxKey, Entry>,
    pub requests: HashMap<OutboundRequestId, OutboxKey>,
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
            },
        );
    }

    /// Whether another envelope may go to `device` now.
    pub fn has_window(&self, device: &DeviceId) -> bool {
        self.in_flight.get(device).copied().unwrap_or(0) < MAX_IN_FLIGHT_PER_DEVICE
    }

    pub fn start_flight(&mut self, request: OutboundRequestId, key: OutboxKey) {
        self.requests.insert(request, key);
        *self.in_flight.entry(key.1).or_default() += 1;
        if let Some(e) = self.entries.get_mut(&key) {
            e.state = State::InFlight;
        }
    }

    /// The request ended (answered or failed): frees its window slot.
    pub fn end_flight(&mut self, request: &OutboundRequestId) -> Option<OutboxKey> {
        let key = self.requests.remove(request)?;
        if let Some(n) = self.in_flight.get_mut(&key.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&key.1);
            }
        }
        Some(key)
    }

    /// The oldest waiting entries for `device` that fit its window.
    pub fn next_for(&self, device: &DeviceId, now: Instant) -> Vec<OutboxKey> {
        let free = MAX_IN_FLIGHT_PER_DEVICE
            .saturating_sub(self.in_flight.get(device).copied().unwrap_or(0));
        self.entries
            .iter()
            .filter(|((_, d), e)| d == device && e.state == State::Waiting && e.next_at <= now)
            .map(|(k, _)| *k)
            .take(free)
            .collect()
    }

    /// Entries due for an attempt.
    pub fn due(&self, now: Instant) -> Vec<OutboxKey> {
        self.entries
            .iter()
            .filter(|(_, e)| e.state == State::Waiting && e.next_at <= now)
            .map(|(k, _)| *k)
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

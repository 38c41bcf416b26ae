//! Which way mail for a contact device goes, and how deposits at its relays
//! stand: a device we failed to reach directly gets its mail through its
//! relays for a while; each (device, relay) has at most one deposit in
//! flight and a mark up to which the relay holds everything queued; a relay
//! that failed or refused is left alone for a while (backoff).
//!
//! `P` is the host's relay (peer) id.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::device::backoff_ms;
use crate::{DeviceId, MessageId, Now};

/// A contact device we failed to reach is sent mail through its relays for
/// this long before a direct attempt is made again (ms).
pub const UNREACHABLE_FOR_MS: u64 = 30_000;

#[derive(Debug)]
pub struct Routes<P> {
    /// Until when (mono ms) each device is sent mail through its relays.
    unreachable: HashMap<DeviceId, u64>,
    /// A deposit to this relay for this device is on its way.
    depositing: HashSet<(DeviceId, P)>,
    /// Per (device, relay): every queued entry up to this message id is at
    /// that relay, so a deposit looks only at what comes after.
    marks: HashMap<(DeviceId, P), MessageId>,
    /// Relays that failed or refused: not before this time (mono ms), and
    /// how many times in a row.
    backoff: HashMap<P, (u64, u32)>,
}

impl<P> Default for Routes<P> {
    fn default() -> Self {
        Self {
            unreachable: HashMap::new(),
            depositing: HashSet::new(),
            marks: HashMap::new(),
            backoff: HashMap::new(),
        }
    }
}

impl<P: Copy + Eq + Hash> Routes<P> {
    /// Whether mail for the device goes through its relays now.
    pub fn is_unreachable(&self, now: Now, device: &DeviceId) -> bool {
        self.unreachable
            .get(device)
            .is_some_and(|until| *until > now.mono_ms)
    }

    /// A direct attempt failed: relays for a while.
    pub fn mark_unreachable(&mut self, now: Now, device: DeviceId) {
        self.unreachable
            .insert(device, now.mono_ms.saturating_add(UNREACHABLE_FOR_MS));
    }

    /// The device reached us, or we it: direct again. Returns whether it
    /// was marked unreachable.
    pub fn reached(&mut self, device: &DeviceId) -> bool {
        self.unreachable.remove(device).is_some()
    }

    /// When a direct attempt is made again (mono ms): entries held by a
    /// relay wait until then.
    pub fn direct_again_at(&self, now: Now, device: &DeviceId) -> u64 {
        self.unreachable.get(device).copied().unwrap_or(now.mono_ms)
    }

    /// Whether a deposit may go to this relay now.
    pub fn relay_ready(&self, now: Now, relay: &P) -> bool {
        self.backoff
            .get(relay)
            .is_none_or(|(at, _)| *at <= now.mono_ms)
    }

    /// The relay failed or refused: wait longer each time, at least
    /// `at_least_ms`.
    pub fn back_off_relay(&mut self, now: Now, relay: P, at_least_ms: u64) {
        let entry = self.backoff.entry(relay).or_insert((now.mono_ms, 0));
        let wait = backoff_ms(entry.1).max(at_least_ms);
        *entry = (now.mono_ms.saturating_add(wait), entry.1.saturating_add(1));
    }

    /// The relay took a deposit: no more backoff.
    pub fn relay_ok(&mut self, relay: &P) {
        self.backoff.remove(relay);
    }

    /// Whether a deposit for the device to this relay is on its way.
    pub fn is_depositing(&self, device: DeviceId, relay: P) -> bool {
        self.depositing.contains(&(device, relay))
    }

    pub fn start_deposit(&mut self, device: DeviceId, relay: P) {
        self.depositing.insert((device, relay));
    }

    pub fn end_deposit(&mut self, device: DeviceId, relay: P) {
        self.depositing.remove(&(device, relay));
    }

    /// The first message id a deposit to this relay looks at.
    pub fn deposit_from(&self, device: DeviceId, relay: P) -> MessageId {
        self.marks
            .get(&(device, relay))
            .map_or(MessageId(0), |m| MessageId(m.0.saturating_add(1)))
    }

    /// The relay holds everything queued for the device up to `id`.
    pub fn held_up_to(&mut self, device: DeviceId, relay: P, id: MessageId) {
        self.marks.insert((device, relay), id);
    }

    /// The device's envelopes are new (its session restarted): every relay
    /// needs them again.
    pub fn forget_marks_of(&mut self, device: &DeviceId) {
        self.marks.retain(|(d, _), _| d != device);
    }

    /// Memory went back to what is on disk: deposits start over.
    pub fn forget_marks(&mut self) {
        self.marks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: DeviceId = DeviceId([2; 32]);

    #[test]
    fn an_unreachable_device_gets_mail_through_relays_for_a_while() {
        let mut routes = Routes::<u8>::default();
        let now = Now::new(1_000, 0);
        assert!(!routes.is_unreachable(now, &BOB));
        routes.mark_unreachable(now, BOB);
        assert!(routes.is_unreachable(now.plus_ms(UNREACHABLE_FOR_MS - 1), &BOB));
        assert!(!routes.is_unreachable(now.plus_ms(UNREACHABLE_FOR_MS), &BOB));
        assert_eq!(
            routes.direct_again_at(now, &BOB),
            1_000 + UNREACHABLE_FOR_MS
        );
        assert!(routes.reached(&BOB));
        assert!(!routes.reached(&BOB));
        assert_eq!(routes.direct_again_at(now, &BOB), 1_000);
    }

    #[test]
    fn a_failing_relay_backs_off_longer_each_time_until_it_takes_mail() {
        let mut routes = Routes::<u8>::default();
        let now = Now::new(0, 0);
        routes.back_off_relay(now, 7, 0);
        assert!(!routes.relay_ready(now.plus_ms(backoff_ms(0) - 1), &7));
        assert!(routes.relay_ready(now.plus_ms(backoff_ms(0)), &7));
        routes.back_off_relay(now, 7, 0);
        assert!(!routes.relay_ready(now.plus_ms(backoff_ms(1) - 1), &7));
        // A full relay: at least the given wait.
        routes.back_off_relay(now, 7, 30_000);
        assert!(!routes.relay_ready(now.plus_ms(29_999), &7));
        routes.relay_ok(&7);
        assert!(routes.relay_ready(now, &7));
        assert!(routes.relay_ready(now, &8), "other relays are not affected");
    }

    #[test]
    fn deposits_resume_after_the_mark_until_the_session_restarts() {
        let mut routes = Routes::<u8>::default();
        assert_eq!(routes.deposit_from(BOB, 7), MessageId(0));
        routes.start_deposit(BOB, 7);
        assert!(routes.is_depositing(BOB, 7) && !routes.is_depositing(BOB, 8));
        routes.held_up_to(BOB, 7, MessageId(41));
        routes.end_deposit(BOB, 7);
        assert!(!routes.is_depositing(BOB, 7));
        assert_eq!(routes.deposit_from(BOB, 7), MessageId(42));
        assert_eq!(routes.deposit_from(BOB, 8), MessageId(0));
        routes.forget_marks_of(&BOB);
        assert_eq!(routes.deposit_from(BOB, 7), MessageId(0));
    }
}

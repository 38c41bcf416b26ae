//! What we know of each contact device's presence, and when it changes.
//!
//! A device is online from a genuine record saying so (never from a bare
//! connection). It stays online while we are connected to it, or until its
//! record expires. When the connection drops without an offline record, it
//! stays online for the grace period, so a short disconnect does not flap;
//! then it is offline, last seen at the drop.

use std::collections::HashMap;

use crate::{DeviceId, Now, Presence, PresenceState};

/// Presence timing, from the node's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceTiming {
    /// How long a record is valid (ms).
    pub ttl_ms: u64,
    /// How long a device stays online after its connection drops (ms).
    pub grace_ms: u64,
}

/// What became of a record handed to [`PresenceWatch::accept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// Older than the newest accepted for the device: a replay, ignored.
    Replay,
    /// The record accepted last, again.
    Known,
    /// Newer: the device's state and addresses are updated.
    Applied,
}

#[derive(Debug)]
struct Watch<A> {
    online: bool,
    /// Online until then (mono ms) unless renewed: record expiry, or the
    /// end of the grace period after a lost connection. None while
    /// connected or offline.
    until_ms: Option<u64>,
    /// The newest record accepted: older ones are replays.
    issued_at_ms: u64,
    addresses: Vec<A>,
    last_lookup_ms: Option<u64>,
}

impl<A> Default for Watch<A> {
    fn default() -> Self {
        Self {
            online: false,
            until_ms: None,
            issued_at_ms: 0,
            addresses: Vec::new(),
            last_lookup_ms: None,
        }
    }
}

/// Every contact device we have heard of, with its presence. `A` is the
/// host's address type (parsed once, when a record is accepted).
#[derive(Debug)]
pub struct PresenceWatch<A> {
    timing: PresenceTiming,
    devices: HashMap<DeviceId, Watch<A>>,
}

impl<A> PresenceWatch<A> {
    pub fn new(timing: PresenceTiming) -> Self {
        Self {
            timing,
            devices: HashMap::new(),
        }
    }

    pub fn timing(&self) -> PresenceTiming {
        self.timing
    }

    pub fn is_online(&self, device: &DeviceId) -> bool {
        self.devices.get(device).is_some_and(|w| w.online)
    }

    /// How many of these devices are online.
    pub fn online_count<'a>(&self, devices: impl IntoIterator<Item = &'a DeviceId>) -> usize {
        devices.into_iter().filter(|d| self.is_online(d)).count()
    }

    /// Where the device said it can be dialled, in its newest record.
    pub fn addresses_of(&self, device: &DeviceId) -> &[A] {
        self.devices
            .get(device)
            .map_or(&[][..], |w| w.addresses.as_slice())
    }

    /// A connection to the device opened: while it lasts, an online device
    /// stays online.
    pub fn connected(&mut self, device: &DeviceId) {
        if let Some(w) = self.devices.get_mut(device)
            && w.online
        {
            w.until_ms = None;
        }
    }

    /// The last connection to the device closed. Unless it said goodbye,
    /// an online device stays online for the grace period. Returns whether
    /// it was online (then it was last seen now).
    pub fn disconnected(&mut self, now: Now, device: &DeviceId) -> bool {
        let grace = self.timing.grace_ms;
        match self.devices.get_mut(device) {
            Some(w) if w.online => {
                w.until_ms = Some(now.mono_ms.saturating_add(grace));
                true
            }
            _ => false,
        }
    }

    /// An opened, verified record of `presence.device` (the caller checked
    /// it is the contact's device and genuine), with its addresses parsed
    /// by the host. `connected`: whether we hold a connection to it now.
    pub fn accept(
        &mut self,
        now: Now,
        presence: &Presence,
        addresses: Vec<A>,
        connected: bool,
    ) -> Sighting {
        let watch = self.devices.entry(presence.device).or_default();
        if presence.issued_at_ms < watch.issued_at_ms {
            return Sighting::Replay;
        }
        if presence.issued_at_ms == watch.issued_at_ms {
            return Sighting::Known;
        }
        watch.issued_at_ms = presence.issued_at_ms;
        watch.addresses = addresses;
        match presence.state {
            PresenceState::Online => {
                let remaining = presence.expires_at_ms.saturating_sub(now.unix_ms);
                watch.online = true;
                watch.until_ms = (!connected).then(|| now.mono_ms.saturating_add(remaining));
            }
            PresenceState::Offline => {
                watch.online = false;
                watch.until_ms = None;
            }
        }
        Sighting::Applied
    }

    /// A DHT lookup for the device started now.
    pub fn looked_up(&mut self, now: Now, device: DeviceId) {
        self.devices.entry(device).or_default().last_lookup_ms = Some(now.mono_ms);
    }

    /// Devices whose record or grace period ran out: offline from now.
    pub fn expire(&mut self, now: Now) -> Vec<DeviceId> {
        let mut gone = Vec::new();
        for (device, w) in &mut self.devices {
            if w.online && w.until_ms.is_some_and(|until| now.mono_ms >= until) {
                w.online = false;
                w.until_ms = None;
                gone.push(*device);
            }
        }
        gone
    }

    /// Online devices whose record expires within a quarter of the TTL and
    /// that were not looked up in that long: look them up again.
    pub fn to_refresh(&self, now: Now) -> Vec<DeviceId> {
        let quarter = self.timing.ttl_ms / 4;
        self.devices
            .iter()
            .filter(|(_, w)| w.online)
            .filter(|(_, w)| {
                w.until_ms.is_some_and(|until| {
                    until > now.mono_ms
                        && until - now.mono_ms < quarter
                        && w.last_lookup_ms
                            .is_none_or(|at| now.mono_ms.saturating_sub(at) > quarter)
                })
            })
            .map(|(d, _)| *d)
            .collect()
    }

    /// Forgets a device (no longer a contact's).
    pub fn forget(&mut self, device: &DeviceId) {
        self.devices.remove(device);
    }

    /// When [`PresenceWatch::expire`] next has something to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.devices
            .values()
            .filter(|w| w.online)
            .filter_map(|w| w.until_ms)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccountId;

    const TTL: u64 = 300_000;
    const GRACE: u64 = 30_000;

    fn watch() -> PresenceWatch<&'static str> {
        PresenceWatch::new(PresenceTiming {
            ttl_ms: TTL,
            grace_ms: GRACE,
        })
    }

    fn record(now: Now, state: PresenceState) -> Presence {
        Presence {
            account: AccountId([1; 32]),
            device: DeviceId([2; 32]),
            state,
            issued_at_ms: now.unix_ms,
            expires_at_ms: now.unix_ms + TTL,
            last_seen_ms: now.unix_ms,
            addresses: Vec::new(),
            relays: Vec::new(),
        }
    }

    const DEVICE: DeviceId = DeviceId([2; 32]);

    #[test]
    fn a_short_disconnect_does_not_flap_and_the_grace_period_ends_it() {
        let mut w = watch();
        let mut now = Now::new(0, 1_800_000_000_000);
        assert_eq!(
            w.accept(now, &record(now, PresenceState::Online), vec!["a"], true),
            Sighting::Applied
        );
        assert!(w.is_online(&DEVICE));
        assert_eq!(w.addresses_of(&DEVICE), ["a"]);
        assert_eq!(w.poll_timeout(), None, "connected: no deadline");
        // A disconnect shorter than the grace period: never offline.
        now = now.plus_ms(1_000);
        assert!(w.disconnected(now, &DEVICE));
        now = now.plus_ms(GRACE - 1);
        assert!(w.expire(now).is_empty());
        w.connected(&DEVICE);
        now = now.plus_ms(10 * GRACE);
        assert!(w.expire(now).is_empty());
        assert!(w.is_online(&DEVICE));
        // A real one: offline once the grace period is over, not before.
        assert!(w.disconnected(now, &DEVICE));
        assert_eq!(w.poll_timeout(), Some(now.mono_ms + GRACE));
        assert!(w.expire(now.plus_ms(GRACE - 1)).is_empty());
        assert_eq!(w.expire(now.plus_ms(GRACE)), [DEVICE]);
        assert!(!w.is_online(&DEVICE));
        assert!(!w.disconnected(now.plus_ms(GRACE), &DEVICE));
    }

    #[test]
    fn a_record_from_afar_lasts_its_ttl_and_goodbye_ends_it_at_once() {
        let mut w = watch();
        let now = Now::new(5, 1_800_000_000_000);
        w.accept(now, &record(now, PresenceState::Online), vec![], false);
        assert_eq!(w.poll_timeout(), Some(now.mono_ms + TTL));
        // Near the end of the record: look it up again, once.
        let late = now.plus_ms(TTL - TTL / 8);
        assert_eq!(w.to_refresh(late), [DEVICE]);
        w.looked_up(late, DEVICE);
        assert!(w.to_refresh(late.plus_ms(1)).is_empty());
        let bye = now.plus_ms(10);
        assert_eq!(
            w.accept(bye, &record(bye, PresenceState::Offline), vec![], false),
            Sighting::Applied
        );
        assert!(!w.is_online(&DEVICE));
        assert_eq!(w.poll_timeout(), None);
    }

    #[test]
    fn replayed_records_change_nothing() {
        let mut w = watch();
        let now = Now::new(0, 1_800_000_000_000);
        let old = record(now, PresenceState::Online);
        let later = now.plus_ms(1_000);
        w.accept(later, &record(later, PresenceState::Offline), vec![], false);
        assert_eq!(w.accept(later, &old, vec!["x"], false), Sighting::Replay);
        assert!(!w.is_online(&DEVICE));
        assert!(w.addresses_of(&DEVICE).is_empty());
        assert_eq!(
            w.accept(later, &record(later, PresenceState::Offline), vec![], false),
            Sighting::Known
        );
    }
}

//! Serving our one-time keys to contacts who want to start a session: only
//! to contact devices (strangers cannot drain them), and to each at most
//! one per interval.

use std::collections::HashMap;
use std::hash::Hash;

use crate::{KeyRequest, Now, Wire};

/// A contact device gets at most one fresh one-time key this often (ms).
pub const KEY_REQUEST_INTERVAL_MS: u64 = 2_000;
/// Devices remembered at most; past this, those served longer than an
/// interval ago are forgotten (they may ask again anyway).
const MAX_REMEMBERED: usize = 4_096;

/// What to do with a one-time key request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDecision {
    /// Hand out a fresh one-time key (once its secret is on disk).
    Serve,
    /// Not a contact device: ignore.
    Stranger,
    /// Served a key less than an interval ago: ignore.
    TooOften,
    /// Not a key request: ignore.
    Malformed,
}

#[derive(Debug)]
pub struct KeyService<P> {
    served: HashMap<P, u64>,
}

impl<P> Default for KeyService<P> {
    fn default() -> Self {
        Self {
            served: HashMap::new(),
        }
    }
}

impl<P: Copy + Eq + Hash> KeyService<P> {
    /// A request from `peer`; `known`: whether it is a contact's device.
    pub fn request(&mut self, now: Now, peer: P, known: bool, bytes: &[u8]) -> KeyDecision {
        if !known {
            return KeyDecision::Stranger;
        }
        if KeyRequest::from_bytes(bytes).is_err() {
            return KeyDecision::Malformed;
        }
        let recent = |at: &u64| now.mono_ms.saturating_sub(*at) < KEY_REQUEST_INTERVAL_MS;
        if self.served.get(&peer).is_some_and(recent) {
            return KeyDecision::TooOften;
        }
        if self.served.len() >= MAX_REMEMBERED {
            self.served.retain(|_, at| recent(at));
        }
        self.served.insert(peer, now.mono_ms);
        KeyDecision::Serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_contacts_get_keys_and_each_at_most_once_an_interval() {
        let mut keys = KeyService::<u8>::default();
        let request = KeyRequest.to_bytes();
        let now = Now::new(10_000, 0);
        assert_eq!(keys.request(now, 1, false, &request), KeyDecision::Stranger);
        assert_eq!(keys.request(now, 1, true, b"\x09"), KeyDecision::Malformed);
        assert_eq!(keys.request(now, 1, true, &request), KeyDecision::Serve);
        let soon = now.plus_ms(KEY_REQUEST_INTERVAL_MS - 1);
        assert_eq!(keys.request(soon, 1, true, &request), KeyDecision::TooOften);
        assert_eq!(keys.request(soon, 2, true, &request), KeyDecision::Serve);
        let later = now.plus_ms(KEY_REQUEST_INTERVAL_MS);
        assert_eq!(keys.request(later, 1, true, &request), KeyDecision::Serve);
    }

    #[test]
    fn the_memory_of_who_was_served_stays_bounded() {
        let mut keys = KeyService::<u32>::default();
        let request = KeyRequest.to_bytes();
        let mut now = Now::new(0, 0);
        for peer in 0..(MAX_REMEMBERED as u32 * 3) {
            now = now.plus_ms(1);
            assert_eq!(keys.request(now, peer, true, &request), KeyDecision::Serve);
        }
        assert!(keys.served.len() <= MAX_REMEMBERED);
    }
}

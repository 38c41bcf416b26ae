//! Which values a relay keeps for others in the DHT, and how fast one peer
//! or one address may ask it to.

use std::collections::HashMap;
use std::hash::Hash;

use super::announce::{RELAY_RECORD_TTL_MS, RelayRecord};
use crate::{MAX_PRESENCE_RECORD_LEN, MAX_PRESENCE_TTL_MS, SealedPresence, Wire};

/// Values held at most.
pub const MAX_DHT_RECORDS: usize = 200_000;
/// Values one peer may put per minute (a node refreshes its presence at
/// most once a minute, at a few relays).
pub const DHT_PUTS_PER_PEER_MINUTE: u32 = 30;
/// Values one IP address may put per minute (many nodes may share one
/// behind NAT; peer ids are free, addresses are not).
pub const DHT_PUTS_PER_IP_MINUTE: u32 = 600;

/// Counts events per key in one-minute windows: at most `max` a minute per
/// key, and at most `keys` keys counted at once (past that the counts start
/// afresh, which only ever lets more through, never blocks an honest key
/// for long).
#[derive(Debug)]
pub struct RateLimit<K> {
    max: u32,
    keys: usize,
    counts: HashMap<K, (u64, u32)>,
}

impl<K: Hash + Eq> RateLimit<K> {
    pub fn new(max_per_minute: u32, keys: usize) -> Self {
        Self {
            max: max_per_minute,
            keys,
            counts: HashMap::new(),
        }
    }

    /// Whether one more event of `key` at `now_ms` (monotonic) is allowed;
    /// counts it if so.
    pub fn allow(&mut self, now_ms: u64, key: K) -> bool {
        self.allow_n(now_ms, key, 1)
    }

    /// Whether `n` more events of `key` at `now_ms` are allowed; counts
    /// them if so (none if not).
    pub fn allow_n(&mut self, now_ms: u64, key: K, n: u32) -> bool {
        let minute = now_ms / 60_000;
        if self.counts.len() >= self.keys && !self.counts.contains_key(&key) {
            self.counts.retain(|_, (m, _)| *m == minute);
            if self.counts.len() >= self.keys {
                self.counts.clear();
            }
        }
        let (m, count) = self.counts.entry(key).or_insert((minute, 0));
        if *m != minute {
            *m = minute;
            *count = 0;
        }
        if n > self.max.saturating_sub(*count) {
            return false;
        }
        *count += n;
        true
    }
}

/// Whether a value someone asks us to keep in the DHT is acceptable, and
/// for how long at most (ms): well-formed sealed presence records under a
/// 32-byte locator, for at most a presence record's longest TTL (the
/// content is encrypted to the owner's contacts; we cannot and need not
/// read it); and relays' announcements that verify under their own key
/// (see [`RelayRecord`]), for at most [`RELAY_RECORD_TTL_MS`].
pub fn dht_record_lifetime(key: &[u8], value: &[u8]) -> Option<u64> {
    if key.len() != 32 || value.len() > MAX_PRESENCE_RECORD_LEN {
        return None;
    }
    if RelayRecord::accepts(key, value) {
        return Some(RELAY_RECORD_TTL_MS);
    }
    SealedPresence::from_bytes(value)
        .is_ok()
        .then_some(MAX_PRESENCE_TTL_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attack (issue 19): anyone could put a record announcing a relay
    /// that is not theirs (a made-up address for someone else's relay), or
    /// one under another relay's key.
    #[test]
    fn only_a_relays_own_signed_announcement_is_kept_under_its_key() {
        use super::super::announce::Announcement;
        let relay = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let what = Announcement {
            addrs: vec!["/ip4/198.51.100.4/tcp/7001".into()],
            retention_secs: 60,
            max_item_len: 1024,
            accepting: true,
            version: "test".into(),
        };
        let record = RelayRecord::sign(&relay, &what, 1_000);
        let key = RelayRecord::dht_key(&record.key);
        assert_eq!(
            dht_record_lifetime(&key, &record.to_bytes()),
            Some(RELAY_RECORD_TTL_MS)
        );
        let mallory = ed25519_dalek::SigningKey::from_bytes(&[6; 32]);
        let mut forged = RelayRecord::sign(&mallory, &what, 1_000);
        forged.key = record.key;
        assert_eq!(dht_record_lifetime(&key, &forged.to_bytes()), None);
        let own = RelayRecord::sign(&mallory, &what, 1_000);
        assert_eq!(
            dht_record_lifetime(&key, &own.to_bytes()),
            None,
            "under another key"
        );
    }

    /// Attack (issue 13, item 7, DHT puts): any peer could put as many
    /// records as it liked, filling the relay's record store (after which
    /// it refuses everyone's new presence records).
    #[test]
    fn one_key_puts_at_most_its_share_a_minute() {
        let mut limit = RateLimit::new(3, 2);
        for _ in 0..3 {
            assert!(limit.allow(1_000, "a"));
        }
        assert!(!limit.allow(1_000, "a"), "a fourth in the same minute");
        assert!(limit.allow(1_000, "b"), "another key has its own share");
        assert!(limit.allow(61_000, "a"), "a new minute");
        // Past the keys counted, old minutes are forgotten first.
        assert!(limit.allow(61_000, "c"));
        assert!(limit.counts.len() <= 2);
    }
}

//! Which values a relay keeps for others in the DHT.

use crate::{MAX_PRESENCE_RECORD_LEN, MAX_PRESENCE_TTL_MS, SealedPresence, Wire};

/// Values held at most.
pub const MAX_DHT_RECORDS: usize = 200_000;

/// Whether a value someone asks us to keep in the DHT is acceptable, and
/// for how long at most (ms): only well-formed sealed presence records
/// under a 32-byte locator, for at most a presence record's longest TTL.
/// The content is encrypted to the owner's contacts; we cannot and need
/// not read it.
pub fn dht_record_lifetime(key: &[u8], value: &[u8]) -> Option<u64> {
    let well_formed = key.len() == 32
        && value.len() <= MAX_PRESENCE_RECORD_LEN
        && SealedPresence::from_bytes(value).is_ok();
    well_formed.then_some(MAX_PRESENCE_TTL_MS)
}

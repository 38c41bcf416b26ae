//! Received messages' digests, kept so that a copy sent again is known
//! without reading it (see `SeenKey`).

use hush_protocol::device::SeenKey;
use redb::{ReadableDatabase, ReadableTable};

use super::snapshot::{SeenBefore, SeenByChain};
use super::{SEEN, SEEN_BY_CHAIN, Store, StoreError};

impl Store {
    /// Whether a message is stored: under its key, or (received before
    /// keys had a prefix) under its digest alone.
    pub fn seen(&self, key: &SeenKey) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        seen_in(&txn.open_table(SEEN_BY_CHAIN)?, &txn.open_table(SEEN)?, key)
    }

    /// Forgets message digests older than `cutoff_ms`; returns how many.
    pub fn prune_seen(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = {
            let mut table = txn.open_table(SEEN_BY_CHAIN)?;
            let old = table
                .iter()?
                .filter_map(|row| row.ok())
                .filter(|(_, at)| at.value() < cutoff_ms)
                .map(|(k, _)| {
                    let (prefix, digest) = k.value();
                    (*prefix, *digest)
                })
                .collect::<Vec<([u8; 16], [u8; 32])>>();
            for (prefix, digest) in &old {
                table.remove((prefix, digest))?;
            }
            let mut before = txn.open_table(SEEN)?;
            let older = before
                .iter()?
                .filter_map(|row| row.ok())
                .filter(|(_, at)| at.value() < cutoff_ms)
                .map(|(k, _)| *k.value())
                .collect::<Vec<[u8; 32]>>();
            for k in &older {
                before.remove(k)?;
            }
            old.len() + older.len()
        };
        txn.commit()?;
        Ok(removed)
    }
}

/// Whether a message is stored: under its key, or (received before keys
/// had a prefix) under its digest alone.
pub(super) fn seen_in(
    by_chain: &SeenByChain,
    before: &SeenBefore,
    key: &SeenKey,
) -> Result<bool, StoreError> {
    Ok(by_chain.get((&key.prefix, &key.digest))?.is_some() || before.get(&key.digest)?.is_some())
}

//! Received messages' digests, kept so that a copy sent again is known
//! without reading it (see `SeenKey`).

use hush_protocol::device::SeenKey;
use redb::{Key, ReadableDatabase, Table};

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
        let removed = remove_older(&mut txn.open_table(SEEN_BY_CHAIN)?, cutoff_ms)?
            + remove_older(&mut txn.open_table(SEEN)?, cutoff_ms)?;
        txn.commit()?;
        Ok(removed)
    }
}

/// Removes the rows stored before `cutoff_ms`; how many.
fn remove_older<K: Key + 'static>(
    table: &mut Table<'_, K, u64>,
    cutoff_ms: u64,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for row in table.extract_if(|_, at| at < cutoff_ms)? {
        row?;
        removed += 1;
    }
    Ok(removed)
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

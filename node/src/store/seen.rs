//! Received messages' digests, kept so that a copy sent again is known
//! without reading it (see `SeenKey`).

use std::sync::atomic::Ordering;

use hush_protocol::device::SeenKey;
use redb::{Key, ReadTransaction, ReadableDatabase, ReadableTableMetadata, Table};

use super::snapshot::{SeenBefore, SeenByChain};
use super::{SEEN, SEEN_BY_CHAIN, Store, StoreError};

impl Store {
    /// Whether a message is stored: under its key, or (received before
    /// keys had a prefix) under its digest alone.
    pub fn seen(&self, key: &SeenKey) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let before = self.seen_before(&txn)?;
        seen_in(&txn.open_table(SEEN_BY_CHAIN)?, before.as_ref(), key)
    }

    /// The digests-alone table, if it still holds any (see
    /// `Store::legacy_seen`).
    pub(super) fn seen_before(
        &self,
        txn: &ReadTransaction,
    ) -> Result<Option<SeenBefore>, StoreError> {
        if self.legacy_seen.load(Ordering::Relaxed) {
            Ok(Some(txn.open_table(SEEN)?))
        } else {
            Ok(None)
        }
    }

    /// Forgets message digests older than `cutoff_ms`; returns how many.
    pub fn prune_seen(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = remove_older(&mut txn.open_table(SEEN_BY_CHAIN)?, cutoff_ms)?;
        let mut before = txn.open_table(SEEN)?;
        let removed = removed + remove_older(&mut before, cutoff_ms)?;
        let left = !before.is_empty()?;
        drop(before);
        txn.commit()?;
        self.legacy_seen.store(left, Ordering::Relaxed);
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
    before: Option<&SeenBefore>,
    key: &SeenKey,
) -> Result<bool, StoreError> {
    if by_chain.get((&key.prefix, &key.digest))?.is_some() {
        return Ok(true);
    }
    match before {
        Some(before) => Ok(before.get(&key.digest)?.is_some()),
        None => Ok(false),
    }
}

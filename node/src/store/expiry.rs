//! Disappearing messages in the store: the 1:1 conversations' timers and
//! the expiry order (the writes are ops: `PutTimer`, `PutMessage`,
//! `DeleteMessages`).

use hush_protocol::{AccountId, ConversationId, MessageId};
use redb::{ReadableDatabase, ReadableTable};

use super::{EXPIRING, Store, StoreError, TIMERS, TimerRecord, decode};

impl Store {
    /// Every 1:1 conversation's disappearing timer, by contact account.
    pub fn timers(&self) -> Result<Vec<(AccountId, TimerRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TIMERS)?;
        table
            .iter()?
            .map(|row| {
                let (k, v) = row?;
                Ok((AccountId(*k.value()), decode("timer", v.value())?))
            })
            .collect()
    }

    /// Up to `limit` messages that expired by `now_ms`, soonest first.
    pub fn expired(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(ConversationId, MessageId)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EXPIRING)?;
        table
            .range((0, &[0; 32], 0)..=(now_ms, &[0xff; 32], u128::MAX))?
            .take(limit)
            .map(|row| {
                let (key, _) = row?;
                let (_, conversation, id) = key.value();
                Ok((ConversationId(*conversation), MessageId(id)))
            })
            .collect()
    }
}

//! Reading conversations: pages of a conversation's messages, its unread
//! marks, and which conversations are muted.

use redb::{Database, ReadableDatabase, ReadableTable};

use hush_protocol::{ConversationId, MessageId};

use super::{MESSAGES, MUTED, Store, StoreError, UNREAD, decode};
use crate::records::MessageRecord;

/// Which page of a conversation's history (`history`, `group.history`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The messages before this one (the newest when `None`).
    Before(Option<MessageId>),
    /// The messages after this one (to catch up from it).
    After(MessageId),
}

impl Store {
    /// The conversations the user muted.
    pub fn muted(&self) -> Result<Vec<ConversationId>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MUTED)?;
        table
            .iter()?
            .map(|row| Ok(ConversationId(*row?.0.value())))
            .collect()
    }

    /// Unread messages of a conversation, counted.
    pub fn unread_count(&self, conversation: &ConversationId) -> Result<usize, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UNREAD)?;
        let c = &conversation.0;
        let mut n = 0;
        for row in table.range((c, 0)..=(c, u128::MAX))? {
            row?;
            n += 1;
        }
        Ok(n)
    }

    /// Up to `limit` messages older than `before` (or the newest), oldest first.
    pub fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MESSAGES)?;
        let c = &conversation.0;
        let range = match before {
            Some(b) => table.range((c, 0)..(c, b.0))?,
            None => table.range((c, 0)..=(c, u128::MAX))?,
        };
        let mut out = range
            .rev()
            .take(limit)
            .map(|row| decode("message", row?.1.value()))
            .collect::<Result<Vec<MessageRecord>, StoreError>>()?;
        out.reverse();
        Ok(out)
    }

    /// A page of a conversation, oldest first: up to `limit` messages
    /// before a message (or the newest), or after one.
    pub fn page(
        &self,
        conversation: &ConversationId,
        page: Page,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        match page {
            Page::Before(before) => self.history(conversation, before, limit),
            Page::After(after) => match after.0.checked_add(1) {
                Some(from) => self.messages_from(conversation, from, limit),
                None => Ok(Vec::new()),
            },
        }
    }

    /// Up to `limit` messages of a conversation from id `from` on
    /// (inclusive), oldest first.
    pub fn messages_from(
        &self,
        conversation: &ConversationId,
        from: u128,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MESSAGES)?;
        let c = &conversation.0;
        table
            .range((c, from)..=(c, u128::MAX))?
            .take(limit)
            .map(|row| decode("message", row?.1.value()))
            .collect()
    }

    pub fn unread(&self, conversation: &ConversationId) -> Result<Vec<MessageId>, StoreError> {
        unread_in(&self.db, conversation)
    }
}

/// The conversation's unread messages (see [`Store::unread`]).
pub(super) fn unread_in(
    db: &Database,
    conversation: &ConversationId,
) -> Result<Vec<MessageId>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(UNREAD)?;
    let c = &conversation.0;
    let range = table.range((c, 0)..=(c, u128::MAX))?;
    range.map(|row| Ok(MessageId(row?.0.value().1))).collect()
}

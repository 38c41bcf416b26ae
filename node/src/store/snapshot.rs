//! One read of the store for a batch of received envelopes.

use hush_protocol::device::{DeviceLookup, MessageRecord, PendingRecord, SeenKey};
use hush_protocol::{ConversationId, MessageId, SessionId};
use std::sync::Arc;

use redb::{Database, ReadOnlyTable, ReadableDatabase};

use super::history::unread_in;
use super::seen::seen_in;
use super::{MESSAGES, SEEN_BY_CHAIN, Store, StoreError, decode, pending_in};

pub(super) type Messages = ReadOnlyTable<(&'static [u8; 32], u128), &'static [u8]>;
pub(super) type SeenByChain = ReadOnlyTable<(&'static [u8; 16], &'static [u8; 32]), u64>;
pub(super) type SeenBefore = ReadOnlyTable<&'static [u8; 32], u64>;

/// The store as it was committed when the snapshot was taken, with the
/// tables every envelope reads opened once: a batch of 128 envelopes asks
/// whether each is stored (when it does not decrypt) and each message is
/// (by its id), which cost a read transaction and a table each.
///
/// What the batch itself queues is not in it, nor in the store until its
/// commit; the engine keeps that in progress either way. What it reads
/// seldom (messages waiting for a key, unread ones) goes to the store as it
/// is now.
///
/// It owns what it reads, so the event loop may keep one from commit to
/// commit (see `EventLoop::group_snapshot`); a snapshot kept past a commit
/// would miss what that commit stored once the engine forgot it.
pub struct Snapshot {
    db: Arc<Database>,
    messages: Messages,
    seen_by_chain: SeenByChain,
    /// Only while it holds any (see `Store::legacy_seen`).
    seen: Option<SeenBefore>,
}

pub(super) fn message_in(
    messages: &Messages,
    conversation: &ConversationId,
    id: MessageId,
) -> Result<Option<MessageRecord>, StoreError> {
    messages
        .get((&conversation.0, id.0))?
        .map(|v| decode("message", v.value()))
        .transpose()
}

/// Of `ids`, those that are our own messages in `conversation`.
pub(super) fn outgoing_in(
    messages: &Messages,
    conversation: &ConversationId,
    ids: &[MessageId],
) -> Result<Vec<MessageId>, StoreError> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(record) = message_in(messages, conversation, *id)?
            && record.outgoing
        {
            out.push(*id);
        }
    }
    Ok(out)
}

impl Store {
    /// A read of the store for many lookups (see [`Snapshot`]).
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(Snapshot {
            db: Arc::clone(&self.db),
            messages: txn.open_table(MESSAGES)?,
            seen_by_chain: txn.open_table(SEEN_BY_CHAIN)?,
            seen: self.seen_before(&txn)?,
        })
    }
}

impl DeviceLookup for Snapshot {
    type Error = StoreError;

    fn seen(&self, key: &SeenKey) -> Result<bool, StoreError> {
        seen_in(&self.seen_by_chain, self.seen.as_ref(), key)
    }

    fn message(
        &self,
        conversation: &ConversationId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        message_in(&self.messages, conversation, id)
    }

    fn pending(&self, session: &SessionId) -> Result<Vec<([u8; 32], PendingRecord)>, StoreError> {
        pending_in(&self.db, &session.0)
    }

    fn outgoing(
        &self,
        conversation: &ConversationId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageId>, StoreError> {
        outgoing_in(&self.messages, conversation, ids)
    }

    fn unread(&self, conversation: &ConversationId) -> Result<Vec<MessageId>, StoreError> {
        unread_in(&self.db, conversation)
    }
}

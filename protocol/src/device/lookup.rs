//! What the engines read of what the host stored.

use std::fmt;

use super::{MessageRecord, PendingRecord, SeenKey, Status};
use crate::{ConversationId, MessageId, SessionId};

/// Reads the engine makes of what the host stored.
pub trait DeviceLookup {
    type Error: fmt::Display;
    /// Whether a message is stored, by its [`SeenKey`] ([`GroupWrite::Seen`](super::GroupWrite::Seen)).
    fn seen(&self, key: &SeenKey) -> Result<bool, Self::Error>;
    fn message(
        &self,
        conversation: &ConversationId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, Self::Error>;
    /// The statuses of these messages (`None`: not stored), in order: one
    /// read for the lot where the host can (an ack answers up to 128).
    fn statuses(
        &self,
        wanted: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Option<Status>>, Self::Error> {
        wanted
            .iter()
            .map(|(conversation, id)| Ok(self.message(conversation, *id)?.map(|m| m.status)))
            .collect()
    }
    /// The messages kept for this session: (digest, record).
    fn pending(&self, session: &SessionId) -> Result<Vec<([u8; 32], PendingRecord)>, Self::Error>;
    /// Which of `ids` are our own messages in the conversation.
    fn outgoing(
        &self,
        conversation: &ConversationId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageId>, Self::Error>;
    /// The conversation's unread messages.
    fn unread(&self, conversation: &ConversationId) -> Result<Vec<MessageId>, Self::Error>;
}

//! The files messages carry (`files`, under the message's key), and the
//! two indexes that find one without a scan: by message id, for commands
//! and upload outcomes, and by blob root, for a peer's request. The ops
//! that write them are in `ops.rs` (`FileIndex`); an older home gets the
//! indexes in `upgrade.rs` (format 5).

use hush_protocol::{ConversationId, MessageId};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Store, StoreError, decode};
use crate::records::FileRecord;

/// The file a message carries, under the message's key.
pub(super) const FILES: TableDefinition<(&[u8; 32], u128), &[u8]> = TableDefinition::new("files");
/// Which conversation the file of a message id is kept under (`FILES`'
/// key), so a file named by its message id is found without a scan.
pub(super) const FILE_IDS: TableDefinition<u128, &[u8; 32]> = TableDefinition::new("file_ids");
/// (blob root, message id) → the conversation its file is kept under: the
/// files of one blob, found without a scan when a peer asks for it.
pub(super) const FILE_ROOTS: TableDefinition<(&[u8; 32], u128), &[u8; 32]> =
    TableDefinition::new("file_roots");

impl Store {
    /// The file the message carries, if it is a file message.
    pub fn file(
        &self,
        conversation: &ConversationId,
        id: MessageId,
    ) -> Result<Option<FileRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FILES)?;
        table
            .get((&conversation.0, id.0))?
            .map(|v| decode("file", v.value()))
            .transpose()
    }

    /// The file message `id` carries, and its conversation, whichever
    /// that is (through `file_ids`: no scan of the files).
    pub fn file_by_id(
        &self,
        id: MessageId,
    ) -> Result<Option<(ConversationId, FileRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(conversation) = txn.open_table(FILE_IDS)?.get(id.0)?.map(|c| *c.value()) else {
            return Ok(None);
        };
        txn.open_table(FILES)?
            .get((&conversation, id.0))?
            .map(|v| Ok((ConversationId(conversation), decode("file", v.value())?)))
            .transpose()
    }

    /// The files (sent and received, in any conversation) whose blob is
    /// `root` (through `file_roots`: no scan of the files).
    pub fn files_with_root(
        &self,
        root: &hush_protocol::blob::BlobRoot,
    ) -> Result<Vec<(ConversationId, MessageId, FileRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let roots = txn.open_table(FILE_ROOTS)?;
        let files = txn.open_table(FILES)?;
        let mut found = Vec::new();
        for row in roots.range((&root.0, 0)..=(&root.0, u128::MAX))? {
            let (key, conversation) = row?;
            let (id, conversation) = (key.value().1, *conversation.value());
            if let Some(file) = files.get((&conversation, id))? {
                found.push((
                    ConversationId(conversation),
                    MessageId(id),
                    decode("file", file.value())?,
                ));
            }
        }
        Ok(found)
    }

    /// Every file of every conversation (sent and received), oldest first
    /// within a conversation.
    pub fn files(&self) -> Result<Vec<(ConversationId, MessageId, FileRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FILES)?;
        table
            .iter()?
            .map(|row| {
                let (key, value) = row?;
                let (conversation, id) = key.value();
                Ok((
                    ConversationId(*conversation),
                    MessageId(id),
                    decode("file", value.value())?,
                ))
            })
            .collect()
    }
}

/// The blob root of a file's manifest (`None` if it does not decode: no
/// peer is granted such a file anyway).
pub(super) fn file_root(file: &FileRecord) -> Option<[u8; 32]> {
    use hush_protocol::Wire;
    hush_protocol::blob::FileManifest::from_bytes(&file.manifest)
        .ok()
        .map(|m| m.root.0)
}

//! The database's format version, and the upgrades from older formats.
//!
//! | format | made by | what changed |
//! |---|---|---|
//! | 1 (no `format` key) | hush before the local store issue | — |
//! | 2 | hush of 2026-12-02 | sealed at rest (file level, see `at_rest.rs`); the search index |
//! | 3 | hush of 2026-12-02 | the search index's recent batches as one value each (`search_segments`); a format 2 index is rebuilt |
//! | 4 | hush of 2026-12-02 | messages carry their disappearing timer and kind (`MessageRecord::timer_secs`, `kind`): older records are rewritten; tables `conversation_timers` and `expiring` |
//! | 5 | this hush | tables `file_ids` (message id → the conversation of its file) and `file_roots` (blob root and message id → conversation), filled from `files` |
//!
//! An older database is upgraded in one durable transaction when it is
//! opened, so a crash leaves it either as it was or fully upgraded; a newer
//! one is refused, never read half-understood.

use redb::{Database, ReadableTable};

use super::files::file_root;
use super::ops::MessageRecordV3;
use super::search::{self, Indexer};
use super::{FILE_IDS, FILE_ROOTS, FILES, MESSAGES, META, StoreError, decode, encode};
use crate::records::{FileRecord, MessageRecord};

/// The `meta` key of the format version (`u32` big-endian).
const FORMAT_KEY: &str = "format";
/// The format this hush writes.
pub(super) const FORMAT: u32 = 5;
/// Messages indexed per flush while an old history is indexed.
const INDEX_CHUNK: usize = 10_000;

pub(super) fn format(db: &Database) -> Result<u32, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let stored = meta.get(FORMAT_KEY)?.map(|v| v.value().to_vec());
    Ok(match stored {
        Some(bytes) => match <[u8; 4]>::try_from(bytes.as_slice()) {
            Ok(b) => u32::from_be_bytes(b),
            Err(_) => {
                return Err(StoreError::IndexDamaged(
                    "the format version is not 4 bytes",
                ));
            }
        },
        None => 1,
    })
}

/// Brings the database to [`FORMAT`], or refuses a newer one.
pub(super) fn upgrade(db: &Database) -> Result<(), StoreError> {
    let found = format(db)?;
    if found > FORMAT {
        return Err(StoreError::TooNew {
            found,
            supported: FORMAT,
        });
    }
    if found == FORMAT {
        return Ok(());
    }
    let txn = db.begin_write()?;
    rewrite_messages(&txn)?;
    // Format 1 has no index; format 2's is rebuilt in format 3's layout
    // (format 3's stays as it is).
    let indexed = if found < 3 {
        search::clear(&txn)?;
        index_history(&txn)?
    } else {
        0
    };
    if found < 5 {
        index_files(&txn)?;
    }
    txn.open_table(META)?
        .insert(FORMAT_KEY, FORMAT.to_be_bytes().as_slice())?;
    txn.commit()?;
    if indexed > 0 {
        tracing::info!(
            from = found,
            to = FORMAT,
            indexed,
            "upgraded the database: its history is now searchable"
        );
    }
    Ok(())
}

/// A message's key: (conversation, message id).
type MessageKey = ([u8; 32], u128);

/// The next `INDEX_CHUNK` message rows after `after` (from the start if
/// `None`), their values undecoded; `after` moves to the last one.
fn next_messages(
    messages: &impl ReadableTable<(&'static [u8; 32], u128), &'static [u8]>,
    after: &mut Option<MessageKey>,
) -> Result<Vec<(MessageKey, Vec<u8>)>, StoreError> {
    let rows = match after {
        Some((c, id)) => messages.range((&*c, *id)..)?,
        None => messages.range::<(&[u8; 32], u128)>(..)?,
    };
    let mut chunk = Vec::new();
    for row in rows {
        let (key, value) = row?;
        let (conversation, id) = key.value();
        if *after == Some((*conversation, id)) {
            continue;
        }
        chunk.push(((*conversation, id), value.value().to_vec()));
        if chunk.len() == INDEX_CHUNK {
            break;
        }
    }
    if let Some((key, _)) = chunk.last() {
        *after = Some(*key);
    }
    Ok(chunk)
}

/// Rewrites every message record of formats 1 to 3 in format 4's shape
/// (no timer, a plain message).
fn rewrite_messages(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut messages = txn.open_table(MESSAGES)?;
    let mut after = None;
    loop {
        let chunk = next_messages(&messages, &mut after)?;
        if chunk.is_empty() {
            return Ok(());
        }
        for ((conversation, id), value) in chunk {
            let old: MessageRecordV3 = decode("message", &value)?;
            let message: MessageRecord = old.into();
            messages.insert((&conversation, id), encode(&message).as_slice())?;
        }
    }
}

/// Fills `file_ids` and `file_roots` from the files kept so far (formats
/// before 5).
fn index_files(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let files = txn.open_table(FILES)?;
    let mut ids = txn.open_table(FILE_IDS)?;
    let mut roots = txn.open_table(FILE_ROOTS)?;
    for row in files.iter()? {
        let (key, value) = row?;
        let (conversation, id) = key.value();
        ids.insert(id, conversation)?;
        if let Some(root) = file_root(&decode::<FileRecord>("file", value.value())?) {
            roots.insert((&root, id), conversation)?;
        }
    }
    Ok(())
}

/// Indexes every stored message (a format 1 database has no index);
/// returns how many.
fn index_history(txn: &redb::WriteTransaction) -> Result<usize, StoreError> {
    let mut index = Indexer::default();
    let mut indexed = 0;
    let mut after = None;
    loop {
        let mut chunk = Vec::new();
        {
            let messages = txn.open_table(MESSAGES)?;
            let files = txn.open_table(FILES)?;
            for ((conversation, id), value) in next_messages(&messages, &mut after)? {
                let message: MessageRecord = decode("message", &value)?;
                let file = match files.get((&conversation, id))? {
                    Some(f) => Some(decode::<FileRecord>("file", f.value())?),
                    None => None,
                };
                chunk.push((conversation, message, file));
            }
        }
        if chunk.is_empty() {
            return Ok(indexed);
        }
        indexed += chunk.len();
        for (conversation, message, file) in &chunk {
            let conversation = hush_protocol::ConversationId(*conversation);
            if let Some(file) = file {
                index.file(conversation, message.id, file);
            }
            index.add(conversation, message);
        }
        index.flush(txn)?;
    }
}

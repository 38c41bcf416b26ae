//! Sealing a home made before the store was sealed at rest (issue 17).

use std::path::Path;

use hush_host::sealed_db::{DbKey, SealedFile};
use redb::Database;

use super::{Store, StoreError};

/// Seals a plaintext database made by an older hush, in place: opened as
/// it is once (so its write-ahead log is applied and emptied), then copied
/// block by block into a sealed file beside it, synced, and renamed over
/// it. A crash before the rename leaves the plaintext database as it was;
/// after it, the sealed one.
pub(super) fn seal_if_plain(path: &Path, key: &DbKey) -> Result<(), StoreError> {
    use redb::StorageBackend;
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::Migrate(e)),
    };
    let len = file.metadata().map_err(StoreError::Migrate)?.len();
    if len == 0 || SealedFile::is_sealed(&file).map_err(StoreError::Migrate)? {
        return Ok(());
    }
    drop(file);
    tracing::info!(path = %path.display(), "sealing the database at rest (once)");
    // Not indexed here: the upgrade indexes the history once sealed.
    drop(Store::from_db(Database::create(path)?, path, None, false)?);
    let sealing = path.with_extension("redb.sealing");
    let _ = std::fs::remove_file(&sealing);
    let out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&sealing)
        .map_err(StoreError::Migrate)?;
    let sealed = SealedFile::new(out, key.clone())?;
    let mut plain = std::fs::File::open(path).map_err(StoreError::Migrate)?;
    let len = plain.metadata().map_err(StoreError::Migrate)?.len();
    sealed.set_len(len).map_err(StoreError::Migrate)?;
    let mut block = vec![0u8; hush_host::sealed_db::BLOCK as usize];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(block.len() as u64) as usize;
        plain
            .read_exact(&mut block[..n])
            .map_err(StoreError::Migrate)?;
        sealed.write(at, &block[..n]).map_err(StoreError::Migrate)?;
        at += n as u64;
    }
    sealed.sync_data().map_err(StoreError::Migrate)?;
    drop(sealed);
    std::fs::rename(&sealing, path).map_err(StoreError::Migrate)?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    // Everything in the log was applied before the copy.
    let _ = std::fs::remove_file(path.with_extension("wal"));
    Ok(())
}

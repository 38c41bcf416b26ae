//! A database file encrypted at rest (issue 17): a redb [`StorageBackend`]
//! that seals every 4 KiB block of the file with XChaCha20-Poly1305
//! (RustCrypto) under the home's database key, so nothing hush keeps in
//! its database (keys, sessions, contacts, messages, table names) is
//! readable without the key, and a changed byte is an error, never data.
//!
//! Physical layout (the logical file redb sees is a run of blocks):
//!
//! ```text
//! header (64 bytes): "hushdb\0\0" ‖ format u32 LE = 1 ‖ block u32 LE = 4096
//!                    ‖ key check: nonce 24 ‖ tag 16 (an empty message)
//! block 0, slot A  : version u64 LE ‖ nonce 24 ‖ ciphertext 4096 ‖ tag 16
//! block 0, slot B  : the same                                 (4144 bytes each)
//! block i ≥ 1      : the same
//! ```
//!
//! Each block's associated data is `"hush db block" ‖ index u64 ‖ version
//! u64`, so a block moved elsewhere in the file does not open. Nonces are
//! random (24 bytes: no reuse across crashes and rewrites). A block whose
//! bytes are all zero was never written (the file grew) and reads as
//! zeros, as redb expects of new space.
//!
//! redb writes pages copy-on-write and keeps its commit slots in its first
//! page, which it rewrites in place; a write torn by a power cut there
//! would leave neither slot readable. So block 0 has two physical slots: a
//! write goes to the slot not holding the current version, with the
//! version one higher, and opening takes the highest version that
//! authenticates. Other blocks are written only while redb's commit that
//! owns them is under way, so a torn one is never read after recovery.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::Mutex;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use redb::StorageBackend;
use redb::backends::FileBackend;
use zeroize::Zeroizing;

pub mod key_file;

/// Logical bytes per block (redb's page size).
pub const BLOCK: u64 = 4096;
const NONCE: u64 = 24;
const TAG: u64 = 16;
/// Physical bytes per block slot: its version, nonce, ciphertext, tag.
const SLOT: u64 = 8 + NONCE + BLOCK + TAG;
const HEADER: u64 = 64;
const MAGIC: &[u8; 8] = b"hushdb\0\0";
const FORMAT: u32 = 1;

/// The key a home's database (and its log) is sealed under. Wiped when
/// dropped; never printed.
#[derive(Clone)]
pub struct DbKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(<redacted>)")
    }
}

impl DbKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn random(rng: &mut impl rand::RngCore) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        Self(key)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.0).into())
    }

    /// Seals `plain` with a fresh random nonce: `nonce ‖ ciphertext ‖ tag`
    /// (for records kept outside the database, such as its log).
    pub fn seal(&self, ad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity((NONCE + TAG) as usize + plain.len());
        self.seal_into(ad, plain, &mut out);
        out
    }

    /// [`DbKey::seal`] appending to `out`: one copy of `plain`, sealed
    /// where it lies.
    pub fn seal_into(&self, ad: &[u8], plain: &[u8], out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE as usize];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
        out.reserve((NONCE + TAG) as usize + plain.len());
        out.extend_from_slice(&nonce);
        let body = out.len();
        out.extend_from_slice(plain);
        // Encrypting in memory fails only past ChaCha20's 256 GiB limit
        // for one message; what is sealed here is far smaller.
        let tag = self
            .cipher()
            .encrypt_inout_detached((&nonce).into(), ad, (&mut out[body..]).into())
            .unwrap_or_default();
        out.extend_from_slice(&tag);
    }

    /// Opens what [`DbKey::seal`] made with the same `ad`; `None` if it
    /// was changed or sealed under another key.
    pub fn open(&self, ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, body) = sealed.split_first_chunk::<{ NONCE as usize }>()?;
        self.cipher()
            .decrypt(nonce.into(), Payload { msg: body, aad: ad })
            .ok()
    }
}

/// Why a sealed database cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealedDbError {
    #[error("this is not a hush database sealed at rest (or its header is damaged)")]
    NotSealed,
    #[error("the database was sealed with format {0}, newer than this hush: upgrade hush")]
    NewerFormat(u32),
    #[error("the key does not open this database (a wrong passphrase or key file)")]
    WrongKey,
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn damaged(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn block_ad(index: u64, version: u64) -> [u8; 29] {
    let mut ad = [0u8; 29];
    ad[..13].copy_from_slice(b"hush db block");
    ad[13..21].copy_from_slice(&index.to_le_bytes());
    ad[21..].copy_from_slice(&version.to_le_bytes());
    ad
}

const KEY_CHECK_AD: &[u8] = b"hush db key check";

/// Where block 0 stands: which slot holds its current version, and that
/// version's bytes (redb reads and updates its header often: kept here,
/// an update is one seal).
#[derive(Debug, Clone)]
struct First {
    slot: u64,
    version: u64,
    plain: Option<Vec<u8>>,
}

/// A database file sealed block by block (see the module's docs).
pub struct SealedFile {
    inner: FileBackend,
    file: File,
    key: DbKey,
    /// Writes are read-modify-write of whole blocks: one at a time.
    writing: Mutex<First>,
}

impl std::fmt::Debug for SealedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedFile").finish_non_exhaustive()
    }
}

/// The physical offset of block `index` (slot `slot` for block 0).
fn place(index: u64, slot: u64) -> u64 {
    if index == 0 {
        HEADER + slot * SLOT
    } else {
        HEADER + (index + 1) * SLOT
    }
}

impl SealedFile {
    /// Whether `file` starts like a sealed database.
    pub fn is_sealed(file: &File) -> io::Result<bool> {
        use std::os::unix::fs::FileExt;
        let mut magic = [0u8; 8];
        match file.read_exact_at(&mut magic, 0) {
            Ok(()) => Ok(&magic == MAGIC),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The sealed database at `path` (created if there is none) under
    /// `key`.
    pub fn open_path(path: &std::path::Path, key: DbKey) -> Result<Self, SealedDbError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Self::new(file, key)
    }

    /// Seals `file` (empty: a new database) or opens it (sealed before)
    /// under `key`.
    pub fn new(file: File, key: DbKey) -> Result<Self, SealedDbError> {
        use std::os::unix::fs::FileExt;
        let len = file.metadata()?.len();
        if len == 0 {
            let mut header = Vec::with_capacity(HEADER as usize);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&FORMAT.to_le_bytes());
            header.extend_from_slice(&(BLOCK as u32).to_le_bytes());
            header.extend_from_slice(&key.seal(KEY_CHECK_AD, &[]));
            header.resize(HEADER as usize, 0);
            file.write_all_at(&header, 0)?;
            file.sync_data()?;
        }
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| SealedDbError::NotSealed)?;
        if &header[..8] != MAGIC {
            return Err(SealedDbError::NotSealed);
        }
        let format = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if format > FORMAT {
            return Err(SealedDbError::NewerFormat(format));
        }
        let check = &header[16..16 + (NONCE + TAG) as usize];
        if key.open(KEY_CHECK_AD, check).is_none() {
            return Err(SealedDbError::WrongKey);
        }
        let inner = FileBackend::new(file.try_clone()?)
            .map_err(|e| SealedDbError::Io(io::Error::other(e.to_string())))?;
        let sealed = Self {
            inner,
            file,
            key,
            writing: Mutex::new(First {
                slot: 0,
                version: 0,
                plain: None,
            }),
        };
        let first = sealed.current_first()?;
        if let Ok(mut w) = sealed.writing.lock() {
            *w = first;
        }
        Ok(sealed)
    }

    /// The slot holding block 0's newest version that authenticates.
    fn current_first(&self) -> io::Result<First> {
        let mut best: Option<First> = None;
        let mut unreadable = 0;
        for slot in 0..2 {
            match self.read_slot(0, slot)? {
                Slot::Empty => {}
                Slot::Damaged => unreadable += 1,
                Slot::Sealed { version, plain } => {
                    if best.as_ref().is_none_or(|b| version > b.version) {
                        best = Some(First {
                            slot,
                            version,
                            plain: Some(plain),
                        });
                    }
                }
            }
        }
        match best {
            Some(first) => Ok(first),
            None if unreadable == 2 => Err(damaged(
                "the database's first block does not authenticate in either copy: the file was changed outside hush or is damaged".into(),
            )),
            // Never written: the next write goes to slot 0 as version 1.
            None => Ok(First {
                slot: 1,
                version: 0,
                plain: None,
            }),
        }
    }

    fn read_slot(&self, index: u64, slot: u64) -> io::Result<Slot> {
        use std::os::unix::fs::FileExt;
        let at = place(index, slot);
        let mut raw = vec![0u8; SLOT as usize];
        match self.file.read_exact_at(&mut raw, at) {
            Ok(()) => {}
            // Past the end: not there yet.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Slot::Empty),
            Err(e) => return Err(e),
        }
        if raw.iter().all(|b| *b == 0) {
            return Ok(Slot::Empty);
        }
        let (version, sealed) = raw.split_at(8);
        let version = u64::from_le_bytes(version.try_into().unwrap_or_default());
        Ok(match self.key.open(&block_ad(index, version), sealed) {
            Some(plain) if plain.len() == BLOCK as usize => Slot::Sealed { version, plain },
            _ => Slot::Damaged,
        })
    }

    /// Block `index` as redb wrote it (zeros if never written).
    fn read_block(&self, index: u64) -> io::Result<Vec<u8>> {
        let mut slot = 0;
        if index == 0 {
            let first = self
                .writing
                .lock()
                .map_err(|_| io::Error::other("a database write panicked"))?;
            if let Some(plain) = &first.plain {
                return Ok(plain.clone());
            }
            slot = first.slot;
        }
        match self.read_slot(index, slot)? {
            Slot::Empty if (index + 2) * SLOT + HEADER > self.file.metadata()?.len() => {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a read past the end of the database",
                ))
            }
            Slot::Empty => Ok(vec![0; BLOCK as usize]),
            Slot::Sealed { plain, .. } => Ok(plain),
            Slot::Damaged => Err(damaged(format!(
                "database block {index} (bytes {} to {}) does not authenticate: the file was changed outside hush or is damaged",
                index * BLOCK,
                (index + 1) * BLOCK
            ))),
        }
    }

    /// Seals block `index` (`plain`, a whole block) into its place: for
    /// block 0, the slot not holding the current version.
    fn write_block(&self, first: &mut First, index: u64, plain: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let (slot, version) = if index == 0 {
            (1 - first.slot, first.version + 1)
        } else {
            (0, 0)
        };
        let mut raw = Vec::with_capacity(SLOT as usize);
        raw.extend_from_slice(&version.to_le_bytes());
        self.key
            .seal_into(&block_ad(index, version), plain, &mut raw);
        self.file.write_all_at(&raw, place(index, slot))?;
        if index == 0 {
            *first = First {
                slot,
                version,
                plain: Some(plain.to_vec()),
            };
        }
        Ok(())
    }

    /// Blocks in the file.
    fn blocks(&self) -> io::Result<u64> {
        let physical = self.file.metadata()?.len();
        // Block 0 takes two slots.
        Ok(physical.saturating_sub(HEADER) / SLOT).map(|slots| slots.saturating_sub(1))
    }
}

impl StorageBackend for SealedFile {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.blocks()? * BLOCK)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let end = offset + out.len() as u64;
        // Within the file (redb reads only what it wrote or grew): a block
        // past the end is caught by `read_block` (no system call here).
        let mut at = offset;
        while at < end {
            let index = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let n = ((BLOCK as usize) - within).min((end - at) as usize);
            let block = self.read_block(index)?;
            let from = (at - offset) as usize;
            out[from..from + n].copy_from_slice(&block[within..within + n]);
            at += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let blocks = len.div_ceil(BLOCK);
        let physical = if blocks == 0 {
            HEADER
        } else {
            HEADER + (blocks + 1) * SLOT
        };
        let _guard = self.writing.lock();
        self.file.set_len(physical)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut first = self
            .writing
            .lock()
            .map_err(|_| io::Error::other("a database write panicked"))?;
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let index = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let n = ((BLOCK as usize) - within).min((end - at) as usize);
            let from = (at - offset) as usize;
            let block = if n == BLOCK as usize {
                Cow::Borrowed(&data[from..from + n])
            } else {
                // Part of a block: the rest as it is.
                let cached = if index == 0 {
                    first.plain.clone()
                } else {
                    None
                };
                let slot = if index == 0 { first.slot } else { 0 };
                let read = match cached {
                    Some(plain) => Slot::Sealed { version: 0, plain },
                    None => self.read_slot(index, slot)?,
                };
                let mut block = match read {
                    Slot::Empty => vec![0; BLOCK as usize],
                    Slot::Sealed { plain, .. } => plain,
                    Slot::Damaged => {
                        return Err(damaged(format!(
                            "database block {index} does not authenticate: the file was changed outside hush or is damaged"
                        )));
                    }
                };
                block[within..within + n].copy_from_slice(&data[from..from + n]);
                Cow::Owned(block)
            };
            self.write_block(&mut first, index, &block)?;
            at += n as u64;
        }
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

enum Slot {
    Empty,
    Damaged,
    Sealed { version: u64, plain: Vec<u8> },
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

    const T: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");

    fn open(path: &std::path::Path, key: &DbKey) -> Result<Database, String> {
        let backend = SealedFile::open_path(path, key.clone()).map_err(|e| e.to_string())?;
        redb::Builder::new()
            .create_with_backend(backend)
            .map_err(|e| e.to_string())
    }

    fn put(db: &Database, from: u64, n: u64, text: &[u8]) {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            for i in from..from + n {
                t.insert(i, text).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    fn count(db: &Database) -> Result<u64, String> {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let t = txn.open_table(T).map_err(|e| e.to_string())?;
        let mut n = 0;
        for row in t.iter().map_err(|e| e.to_string())? {
            row.map_err(|e| e.to_string())?;
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn a_sealed_database_round_trips_and_shows_nothing_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hush.redb");
        let key = DbKey::random(&mut rand::thread_rng());
        {
            let db = open(&path, &key).unwrap();
            put(&db, 0, 2_000, b"meet me at the old lighthouse");
        }
        let bytes = std::fs::read(&path).unwrap();
        let needle = b"lighthouse";
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "message text in the file"
        );
        assert!(
            !bytes.windows(8).any(|w| w == b"messages"),
            "a table name in the file"
        );
        let db = open(&path, &key).unwrap();
        assert_eq!(count(&db).unwrap(), 2_000);
    }

    /// The node keeps a small page cache: pages written by unsynced
    /// commits are sealed out early when it overflows, and pages read back
    /// after leaving it are opened again, all intact.
    #[test]
    fn a_database_many_times_its_cache_writes_and_reads_back_every_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hush.redb");
        let key = DbKey::random(&mut rand::thread_rng());
        let value = |i: u64| format!("message {i} ").repeat(40).into_bytes();
        let check = |db: &Database| {
            let txn = db.begin_read().unwrap();
            let t = txn.open_table(T).unwrap();
            for i in 0..4_000 {
                let row = t
                    .get(i)
                    .unwrap()
                    .unwrap_or_else(|| panic!("row {i} is gone"));
                assert_eq!(row.value(), value(i).as_slice(), "row {i}");
            }
        };
        {
            let backend = SealedFile::open_path(&path, key.clone()).unwrap();
            let db = redb::Builder::new()
                .set_cache_size(64 * 1024)
                .create_with_backend(backend)
                .unwrap();
            for chunk in 0..40 {
                let mut txn = db.begin_write().unwrap();
                txn.set_durability(redb::Durability::None).unwrap();
                {
                    let mut t = txn.open_table(T).unwrap();
                    for i in chunk * 100..(chunk + 1) * 100 {
                        t.insert(i, value(i).as_slice()).unwrap();
                    }
                }
                txn.commit().unwrap();
            }
            check(&db);
            db.begin_write().unwrap().commit().unwrap();
        }
        check(&open(&path, &key).unwrap());
    }

    #[test]
    fn the_wrong_key_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hush.redb");
        let key = DbKey::random(&mut rand::thread_rng());
        drop(open(&path, &key).unwrap());
        let other = DbKey::random(&mut rand::thread_rng());
        let error = open(&path, &other).unwrap_err();
        assert!(error.contains("does not open"), "{error}");
    }

    /// Every database and log on users' disks was sealed by the cipher
    /// crate of an earlier build (chacha20poly1305 0.10): a record it made
    /// must open, byte for byte, whatever crate version seals today.
    #[test]
    fn a_record_sealed_by_an_earlier_build_still_opens() {
        let key = DbKey::from_bytes([7; 32]);
        let sealed = hex::decode(
            "000102030405060708090a0b0c0d0e0f1011121314151617\
             db72cae99f787bc75ce7e22f8781c7cd6de64878788e0642c32897b1b4fda4\
             bf22c9c92dbb8e3659df22b1bfcf86f4",
        )
        .unwrap();
        let plain = key.open(KEY_CHECK_AD, &sealed);
        assert_eq!(
            plain.as_deref(),
            Some(&b"sealed by chacha20poly1305 0.10"[..])
        );
        assert_eq!(key.open(b"another context", &sealed), None);
        let resealed = key.seal(KEY_CHECK_AD, b"sealed by chacha20poly1305 0.10");
        assert_eq!(resealed.len(), sealed.len());
        assert_ne!(resealed[..24], sealed[..24], "a fresh random nonce");
    }

    #[test]
    fn a_flipped_byte_is_an_error_naming_the_block_never_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hush.redb");
        let key = DbKey::random(&mut rand::thread_rng());
        {
            let db = open(&path, &key).unwrap();
            put(&db, 0, 1_000, &[7u8; 200]);
        }
        let clean = std::fs::read(&path).unwrap();
        // Every block after the first, one at a time: reading it fails
        // with an error (opening or counting), never with wrong rows.
        let blocks = (clean.len() as u64 - HEADER) / SLOT - 1;
        let mut caught = 0;
        for index in 1..blocks {
            let mut bytes = clean.clone();
            let at = (place(index, 0) + 8 + NONCE + 100) as usize;
            if bytes[at - 100..at + 100].iter().all(|b| *b == 0) {
                continue; // never written
            }
            bytes[at] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            match open(&path, &key).and_then(|db| count(&db)) {
                Ok(n) => assert_eq!(n, 1_000, "block {index}: wrong data"),
                Err(e) => {
                    assert!(
                        e.contains("does not authenticate") || e.contains("block"),
                        "block {index}: {e}"
                    );
                    caught += 1;
                }
            }
        }
        assert!(caught > 0, "no flipped block was ever read");
    }

    #[test]
    fn a_torn_write_of_the_first_block_falls_back_to_its_other_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hush.redb");
        let key = DbKey::random(&mut rand::thread_rng());
        {
            let db = open(&path, &key).unwrap();
            put(&db, 0, 10, b"first");
            put(&db, 10, 10, b"second");
        }
        // The newest copy of block 0 is half written.
        let mut bytes = std::fs::read(&path).unwrap();
        let newest = {
            let version = |slot: u64| {
                let at = place(0, slot) as usize;
                u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
            };
            if version(0) > version(1) { 0 } else { 1 }
        };
        let at = place(0, newest) as usize;
        for b in &mut bytes[at + 2000..at + SLOT as usize] {
            *b = 0;
        }
        std::fs::write(&path, &bytes).unwrap();
        let db = open(&path, &key).expect("opens from the other copy");
        let n = count(&db).unwrap();
        assert!(n == 10 || n == 20, "{n} rows");
    }
}

//! `hush.key`: the database key, as it is kept in the home (issue 17).
//!
//! Two forms:
//! - **plain**: the 32 key bytes (no passphrase; `hush status` says so);
//! - **wrapped**: `"hushkey\x01"` ‖ `m_cost` u32 LE (KiB) ‖ `t_cost` u32 LE ‖
//!   `p_cost` u32 LE ‖ salt 16 ‖ the key sealed (XChaCha20-Poly1305: nonce
//!   24 ‖ ciphertext 32 ‖ tag 16) under Argon2id(passphrase, salt, those
//!   parameters), the 32 header bytes before it as associated data.
//!
//! A passphrase change rewraps the same key: the database is not rewritten.
//! The file is replaced whole (a temporary, synced, renamed, the folder
//! synced), so a crash mid-change leaves the old file or the new one.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use super::DbKey;

const MAGIC: &[u8; 8] = b"hushkey\x01";
const SALT: usize = 16;
const HEAD: usize = 8 + 12 + SALT;
/// The wrapped key: nonce, ciphertext, tag.
const SEALED: usize = 24 + 32 + 16;
/// Argon2id memory (KiB): 64 MiB.
const M_COST: u32 = 64 * 1024;
/// Passes are added until deriving takes about this long.
const TARGET: Duration = Duration::from_millis(500);
const MAX_T_COST: u32 = 32;
/// Parameters a wrapped key file may ask for (a file that asks for more
/// is refused rather than run: it could make opening take hours).
const MAX_M_COST: u32 = 4 * 1024 * 1024;

/// Why `hush.key` does not give the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(
        "the database key is protected by a passphrase: give it (a terminal asks; else --passphrase-file FILE or HUSH_PASSPHRASE_FILE)"
    )]
    NeedsPassphrase,
    #[error("wrong passphrase: the database key does not open with it")]
    WrongPassphrase,
    #[error("hush.key is damaged or not a hush key file: restore it from your backup")]
    Damaged,
    #[error("the passphrase is empty: give one, or use `hush passphrase remove` to keep none")]
    EmptyPassphrase,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What `hush.key` holds.
#[derive(Debug)]
pub enum KeyFile {
    /// The key itself.
    Plain(DbKey),
    /// The key, sealed under a passphrase.
    Wrapped(Vec<u8>),
}

impl KeyFile {
    pub fn parse(bytes: Vec<u8>) -> Result<Self, KeyFileError> {
        if bytes.len() == 32 {
            let key: [u8; 32] = bytes.try_into().map_err(|_| KeyFileError::Damaged)?;
            return Ok(Self::Plain(DbKey::from_bytes(key)));
        }
        if bytes.len() == HEAD + SEALED && bytes.starts_with(MAGIC) {
            return Ok(Self::Wrapped(bytes));
        }
        Err(KeyFileError::Damaged)
    }

    pub fn is_wrapped(&self) -> bool {
        matches!(self, Self::Wrapped(_))
    }

    /// The key: as it is, or unwrapped with `passphrase`.
    pub fn key(&self, passphrase: Option<&str>) -> Result<DbKey, KeyFileError> {
        match self {
            Self::Plain(key) => Ok(key.clone()),
            Self::Wrapped(bytes) => {
                let passphrase = passphrase.ok_or(KeyFileError::NeedsPassphrase)?;
                let (head, sealed) = bytes.split_at(HEAD);
                let word =
                    |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
                let (m, t, p) = (word(8), word(12), word(16));
                if m > MAX_M_COST || t > MAX_T_COST || p > 16 {
                    return Err(KeyFileError::Damaged);
                }
                let kek = derive(passphrase, &head[20..HEAD], m, t, p)?;
                let key = kek
                    .open(head, sealed)
                    .ok_or(KeyFileError::WrongPassphrase)?;
                let key: [u8; 32] = key.try_into().map_err(|_| KeyFileError::Damaged)?;
                Ok(DbKey::from_bytes(key))
            }
        }
    }

    /// `key` sealed under `passphrase` (Argon2id, tuned here to about half
    /// a second).
    pub fn wrap(key: &DbKey, passphrase: &str) -> Result<Self, KeyFileError> {
        if passphrase.is_empty() {
            return Err(KeyFileError::EmptyPassphrase);
        }
        let mut salt = [0u8; SALT];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut salt);
        let t = tune(passphrase, &salt)?;
        let mut head = Vec::with_capacity(HEAD + SEALED);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&M_COST.to_le_bytes());
        head.extend_from_slice(&t.to_le_bytes());
        head.extend_from_slice(&1u32.to_le_bytes());
        head.extend_from_slice(&salt);
        let kek = derive(passphrase, &salt, M_COST, t, 1)?;
        let sealed = kek.seal(&head, key.as_bytes());
        head.extend_from_slice(&sealed);
        Ok(Self::Wrapped(head))
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Plain(key) => key.as_bytes().to_vec(),
            Self::Wrapped(bytes) => bytes.clone(),
        }
    }

    /// Reads `path`; `None` if there is none.
    pub fn read(path: &Path) -> Result<Option<Self>, KeyFileError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces `path` with this, whole or not at all (mode 0600).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let bytes = Zeroizing::new(self.bytes());
        let temp = path.with_extension("key.new");
        let _ = std::fs::remove_file(&temp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn derive(passphrase: &str, salt: &[u8], m: u32, t: u32, p: u32) -> Result<DbKey, KeyFileError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|_| KeyFileError::Damaged)?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .map_err(|_| KeyFileError::Damaged)?;
    Ok(DbKey::from_bytes(*out))
}

/// Passes of Argon2id (64 MiB) that take about [`TARGET`] here.
fn tune(passphrase: &str, salt: &[u8]) -> Result<u32, KeyFileError> {
    let started = Instant::now();
    derive(passphrase, salt, M_COST, 1, 1)?;
    let one = started.elapsed().max(Duration::from_millis(1));
    let passes = (TARGET.as_secs_f64() / one.as_secs_f64()).round() as u32;
    Ok(passes.clamp(2, MAX_T_COST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_with_its_passphrase_only_and_rewraps_without_changing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hush.key");
        let key = DbKey::random(&mut rand::thread_rng());
        KeyFile::wrap(&key, "correct horse")
            .unwrap()
            .write(&path)
            .unwrap();
        let file = KeyFile::read(&path).unwrap().unwrap();
        assert!(file.is_wrapped());
        assert_eq!(
            file.key(Some("correct horse")).unwrap().as_bytes(),
            key.as_bytes()
        );
        assert!(matches!(
            file.key(Some("wrong horse")),
            Err(KeyFileError::WrongPassphrase)
        ));
        assert!(matches!(file.key(None), Err(KeyFileError::NeedsPassphrase)));
        // Nothing of the key in the file.
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(32).any(|w| w == key.as_bytes()));
        // A change rewraps the same key.
        KeyFile::wrap(&key, "battery staple")
            .unwrap()
            .write(&path)
            .unwrap();
        let file = KeyFile::read(&path).unwrap().unwrap();
        assert_eq!(
            file.key(Some("battery staple")).unwrap().as_bytes(),
            key.as_bytes()
        );
        assert!(file.key(Some("correct horse")).is_err());
        assert!(matches!(
            KeyFile::wrap(&key, ""),
            Err(KeyFileError::EmptyPassphrase)
        ));
    }

    #[test]
    fn a_change_killed_before_its_rename_leaves_the_old_passphrase_working() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hush.key");
        let key = DbKey::random(&mut rand::thread_rng());
        KeyFile::wrap(&key, "old").unwrap().write(&path).unwrap();
        // Killed after writing the new file's temporary, before the rename.
        let new = KeyFile::wrap(&key, "new").unwrap();
        std::fs::write(path.with_extension("key.new"), new.bytes()).unwrap();
        let file = KeyFile::read(&path).unwrap().unwrap();
        assert_eq!(file.key(Some("old")).unwrap().as_bytes(), key.as_bytes());
        // The next change replaces the leftover.
        new.write(&path).unwrap();
        let file = KeyFile::read(&path).unwrap().unwrap();
        assert_eq!(file.key(Some("new")).unwrap().as_bytes(), key.as_bytes());
    }

    #[test]
    fn a_damaged_or_greedy_key_file_is_refused() {
        assert!(matches!(
            KeyFile::parse(vec![1; 31]),
            Err(KeyFileError::Damaged)
        ));
        let key = DbKey::random(&mut rand::thread_rng());
        let KeyFile::Wrapped(mut bytes) = KeyFile::wrap(&key, "p").unwrap() else {
            panic!("not wrapped");
        };
        // Asks for 1 TiB of memory: refused before running.
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let file = KeyFile::parse(bytes.clone()).unwrap();
        assert!(matches!(file.key(Some("p")), Err(KeyFileError::Damaged)));
        // A changed parameter within bounds: the header is the AEAD's
        // associated data, so the key does not open.
        bytes[8..12].copy_from_slice(&(M_COST / 2).to_le_bytes());
        let file = KeyFile::parse(bytes).unwrap();
        assert!(file.key(Some("p")).is_err());
    }
}

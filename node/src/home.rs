//! The home folder: where one device keeps its database and API socket.

use std::path::{Path, PathBuf};

pub const DB_FILE: &str = "hush.redb";
pub const SOCKET_FILE: &str = "hush.sock";
pub const CONFIG_FILE: &str = "config.toml";
/// The database key, when no passphrase protects it.
pub const KEY_FILE: &str = "hush.key";
/// The longest path a Unix socket address holds (`sun_path`, with its
/// terminating zero).
pub const MAX_SOCKET_PATH: usize = 107;

#[derive(Clone)]
pub struct Home {
    dir: PathBuf,
    /// What unwraps `hush.key` when a passphrase protects it.
    passphrase: Option<std::sync::Arc<zeroize::Zeroizing<String>>>,
}

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Home")
            .field("dir", &self.dir)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl PartialEq for Home {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
    }
}

impl Eq for Home {}

impl Home {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            passphrase: None,
        }
    }

    /// The same home, its key unwrapped with `passphrase` when it is
    /// protected by one.
    pub fn with_passphrase(mut self, passphrase: zeroize::Zeroizing<String>) -> Self {
        self.passphrase = Some(std::sync::Arc::new(passphrase));
        self
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// Whether `hush.key` is protected by a passphrase.
    pub fn key_is_wrapped(&self) -> bool {
        matches!(
            hush_host::sealed_db::key_file::KeyFile::read(&self.key_path()),
            Ok(Some(f)) if f.is_wrapped()
        )
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }
    /// Sealed blobs this device serves, and downloads in progress.
    pub fn blobs_dir(&self) -> PathBuf {
        self.dir.join("blobs")
    }
    /// Where fetched files are saved.
    pub fn files_dir(&self) -> PathBuf {
        self.dir.join("files")
    }
    /// Where the local API listens: `hush.sock` in the home folder, or,
    /// when that path is too long for a Unix socket, a name made from the
    /// home folder's path in `$XDG_RUNTIME_DIR` (private to the user).
    pub fn socket_path(&self) -> PathBuf {
        let path = self.dir.join(SOCKET_FILE);
        if path.as_os_str().len() <= MAX_SOCKET_PATH {
            return path;
        }
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(run) if !run.is_empty() => {
                use std::os::unix::ffi::OsStrExt;
                let digest = blake3::hash(self.dir.as_os_str().as_bytes()).to_hex();
                PathBuf::from(run).join(format!("hush-{}.sock", &digest[..16]))
            }
            // Binding fails and says the path is too long.
            _ => path,
        }
    }

    /// The key the database and its log are sealed under (see
    /// [`hush_host::sealed_db`]): read from `hush.key` (mode 0600), made on
    /// first use. Anyone who can read the home can read this key: it keeps
    /// the database unreadable to whoever copies it without the key (a
    /// backup of the database alone, a disk image that misses it), and
    /// tampering is detected either way.
    pub fn db_key(&self) -> Result<hush_host::sealed_db::DbKey, crate::error::NodeError> {
        use hush_host::sealed_db::DbKey;
        use hush_host::sealed_db::key_file::KeyFile;
        let path = self.key_path();
        let home_error = |source: std::io::Error| crate::error::NodeError::Home {
            path: path.clone(),
            source,
        };
        match KeyFile::read(&path).map_err(crate::error::NodeError::Key)? {
            Some(file) => file
                .key(self.passphrase.as_ref().map(|p| p.as_str()))
                .map_err(crate::error::NodeError::Key),
            None => {
                let db = self.db_path();
                let sealed = std::fs::File::open(&db)
                    .and_then(|f| hush_host::sealed_db::SealedFile::is_sealed(&f))
                    .unwrap_or(false);
                if sealed {
                    return Err(home_error(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!(
                            "missing, and {} is sealed under it: restore hush.key from your backup",
                            db.display()
                        ),
                    )));
                }
                let key = DbKey::random(&mut rand::thread_rng());
                let file = match self.passphrase.as_ref() {
                    Some(p) => KeyFile::wrap(&key, p).map_err(crate::error::NodeError::Key)?,
                    None => KeyFile::Plain(key.clone()),
                };
                file.write(&path).map_err(home_error)?;
                Ok(key)
            }
        }
    }

    /// The `node run` settings last used (`config.toml`).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// Refuses a folder other users may write: they could replace the
    /// database or put their own socket where the CLI connects. Returns the
    /// folder's owner (the only user the local API answers).
    pub fn check_private(&self) -> Result<u32, crate::error::NodeError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&self.dir).map_err(crate::error::NodeError::Identity)?;
        if meta.mode() & 0o022 != 0 {
            return Err(crate::error::NodeError::UnsafeHome {
                path: self.dir.clone(),
                mode: meta.mode() & 0o777,
            });
        }
        Ok(meta.uid())
    }

    /// Creates the folder (mode 0700: only the user may read it).
    pub fn create(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
    }
}

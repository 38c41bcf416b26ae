//! The home folder: where one device keeps its database and API socket.

use std::path::{Path, PathBuf};

pub const DB_FILE: &str = "hush.redb";
pub const SOCKET_FILE: &str = "hush.sock";
pub const CONFIG_FILE: &str = "config.toml";
/// The longest path a Unix socket address holds (`sun_path`, with its
/// terminating zero).
pub const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
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

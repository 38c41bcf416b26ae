//! Blobs on disk (issue 16), for nodes and relays alike: a sealed file
//! served from `ROOT.blob` and `ROOT.tree` ([`BlobSource`], made by
//! [`seal_file`]); a download or upload in progress, kept so that it
//! resumes after any interruption ([`PartialBlob`]); and, on a node, the
//! finished file opened into the files folder.
//!
//! A download of the blob `root` is two files in `HOME/blobs/`: the data
//! at its full length (sparse until fetched) and `ROOT.have`, the
//! [`group_hash`] each stored group proved itself with (32 bytes per
//! group, zeros for a group not stored). The data is `ROOT.part`, the
//! ciphertext as it came (relays, and compressed files, which open only
//! as a whole), or `ROOT.plain`, each group decrypted as it is stored at
//! its place in the file (a file sealed as it is: the finished download
//! *is* the file, renamed into place, with no second pass).
//!
//! A group is stored the moment it proves itself against the root: its
//! bytes, then its hash, written at once (so `kill -9` loses at most the
//! group being stored), synced every [`SYNC_EVERY`] bytes and at the end.
//! A power cut can keep a hash whose bytes did not reach the disk, so a
//! download that resumes checks every stored group against its hash again
//! (re-sealing plaintext to do it) and fetches again the few that fail.
//! Only the opened file gets a name in the files folder, and only once it
//! is whole.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hush_protocol::blob::{
    BlobError, BlobRoot, Compression, FileKey, FileManifest, GROUP_LEN, GROUP_PLAIN_LEN, TAG_LEN,
    VerifiedGroup, group_hash, group_len, groups, open_group, seal_group,
};
use thiserror::Error;

/// Why a download could not go on.
#[derive(Debug, Error)]
pub enum FileError {
    #[error("could not {doing} {path}: {source}")]
    Io {
        doing: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("the download of {root} is not complete: {missing} groups missing")]
    Incomplete { root: BlobRoot, missing: u64 },
    #[error(
        "the file's bytes on disk no longer match its hash: the download starts again (disk damage?)"
    )]
    Damaged,
    #[error("the file does not decompress: {0}")]
    Decompress(String),
    #[error("the opened file is {got} bytes, its manifest says {want}")]
    WrongSize { got: u64, want: u64 },
    #[error("the download of {root} holds plaintext: it cannot be served as it is")]
    NotCiphertext { root: BlobRoot },
}

fn io_error<'a>(doing: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FileError + 'a {
    move |source| FileError::Io {
        doing,
        path: path.to_owned(),
        source,
    }
}

/// Groups read and opened at a time when a download is opened (2 MiB).
const OPEN_BATCH: u64 = 32;
/// A download syncs its data and hashes after this many bytes: what a
/// power cut can cost it (a crash of the process costs nothing).
pub const SYNC_EVERY: u64 = 64 << 20;
/// Bytes of hash per group in `ROOT.have`.
const HASH_LEN: u64 = 32;
/// Groups whose hashes are read at a time when a download resumes.
const CHECK_BATCH: u64 = 1024;

/// How a download keeps its bytes.
#[derive(Debug)]
enum Layout {
    /// The ciphertext as it came.
    Cipher,
    /// Each group decrypted with the file's key as it is stored.
    Plain { key: FileKey },
}

/// A blob being fetched: its bytes so far and which groups are in.
#[derive(Debug)]
pub struct PartialBlob {
    root: BlobRoot,
    /// The ciphertext's length.
    len: u64,
    layout: Layout,
    data_path: PathBuf,
    have_path: PathBuf,
    data: File,
    have_file: File,
    /// One bit per group stored.
    have: Vec<u8>,
    missing: u64,
    /// Bytes written since the last sync.
    unsynced: u64,
}

impl PartialBlob {
    /// The download (or upload, on a relay) of the ciphertext `root`, `len`
    /// bytes, in `dir`: resumed if one is there for that length, else
    /// started.
    pub fn open(dir: &Path, root: BlobRoot, len: u64) -> Result<Self, FileError> {
        Self::open_as(dir, root, len, Layout::Cipher)
    }

    /// The download of the file of `manifest` in `dir`: a file sealed as it
    /// is keeps its plaintext (opened in place at the end), a compressed one
    /// its ciphertext.
    pub fn for_manifest(dir: &Path, manifest: &FileManifest) -> Result<Self, FileError> {
        let layout = match manifest.compression {
            Compression::None => Layout::Plain {
                key: manifest.key.clone(),
            },
            Compression::Zstd => Layout::Cipher,
        };
        Self::open_as(dir, manifest.root, manifest.cipher_len(), layout)
    }

    fn open_as(dir: &Path, root: BlobRoot, len: u64, layout: Layout) -> Result<Self, FileError> {
        std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        let (data_path, data_len) = match layout {
            Layout::Cipher => (dir.join(format!("{root}.part")), len),
            Layout::Plain { .. } => (dir.join(format!("{root}.plain")), plain_len(len)),
        };
        let have_path = dir.join(format!("{root}.have"));
        let count = groups(len);
        let open = |path: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io_error("open", path))
        };
        let data = open(&data_path)?;
        let have_file = open(&have_path)?;
        let size = |file: &File, path: &Path| {
            file.metadata()
                .map(|m| m.len())
                .map_err(io_error("read", path))
        };
        let resumable = size(&data, &data_path)? == data_len
            && size(&have_file, &have_path)? == count * HASH_LEN;
        let mut partial = Self {
            root,
            len,
            layout,
            data_path,
            have_path,
            data,
            have_file,
            have: vec![0; count.div_ceil(8) as usize],
            missing: count,
            unsynced: 0,
        };
        if resumable {
            partial.check_stored()?;
        } else {
            // Nothing to resume (or another length): start over.
            partial
                .data
                .set_len(data_len)
                .map_err(io_error("size", &partial.data_path))?;
            partial.forget_all()?;
        }
        Ok(partial)
    }

    /// Marks stored the groups whose bytes on disk still match the hash
    /// kept for them; clears the hashes of those that do not (a power cut
    /// kept the hash but not the bytes).
    fn check_stored(&mut self) -> Result<(), FileError> {
        let count = groups(self.len);
        let mut hashes = Vec::new();
        let mut cleared = false;
        let mut first = 0;
        while first < count {
            let n = (count - first).min(CHECK_BATCH);
            hashes.resize((n * HASH_LEN) as usize, 0);
            self.have_file
                .read_exact_at(&mut hashes, first * HASH_LEN)
                .map_err(io_error("read", &self.have_path))?;
            for (k, kept) in hashes.chunks_exact(HASH_LEN as usize).enumerate() {
                let index = first + k as u64;
                if kept.iter().all(|b| *b == 0) {
                    continue;
                }
                if self.stored_hash(index)?.as_slice() == kept {
                    set_bit(&mut self.have, index);
                    self.missing -= 1;
                } else {
                    self.have_file
                        .write_all_at(&[0; HASH_LEN as usize], index * HASH_LEN)
                        .map_err(io_error("write", &self.have_path))?;
                    cleared = true;
                }
            }
            first += n;
        }
        if cleared {
            self.have_file
                .sync_data()
                .map_err(io_error("sync", &self.have_path))?;
        }
        Ok(())
    }

    /// The [`group_hash`] of group `index` as it is on disk (its plaintext
    /// sealed again: the same key and index give the same ciphertext).
    fn stored_hash(&self, index: u64) -> Result<[u8; 32], FileError> {
        let len = group_len(self.len, index)?;
        let last = index + 1 == groups(self.len);
        let cipher = match &self.layout {
            Layout::Cipher => {
                let mut group = vec![0u8; len as usize];
                self.data
                    .read_exact_at(&mut group, index * GROUP_LEN)
                    .map_err(io_error("read", &self.data_path))?;
                group
            }
            Layout::Plain { key } => {
                let mut plain = vec![0u8; (len - TAG_LEN) as usize];
                self.data
                    .read_exact_at(&mut plain, index * GROUP_PLAIN_LEN)
                    .map_err(io_error("read", &self.data_path))?;
                seal_group(key, index, last, &plain)
            }
        };
        Ok(group_hash(self.len, index, &cipher))
    }

    /// Forgets every group.
    fn forget_all(&mut self) -> Result<(), FileError> {
        let count = groups(self.len);
        self.have_file
            .set_len(0)
            .and_then(|()| self.have_file.set_len(count * HASH_LEN))
            .and_then(|()| self.have_file.sync_data())
            .map_err(io_error("write", &self.have_path))?;
        self.have.iter_mut().for_each(|b| *b = 0);
        self.missing = count;
        self.unsynced = 0;
        Ok(())
    }

    pub fn root(&self) -> BlobRoot {
        self.root
    }

    /// Groups not fetched yet.
    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// Ciphertext bytes fetched.
    pub fn bytes_done(&self) -> u64 {
        (0..groups(self.len))
            .filter(|i| self.has(*i))
            .map(|i| group_len(self.len, i).unwrap_or(0))
            .sum()
    }

    pub fn has(&self, index: u64) -> bool {
        bit(&self.have, index)
    }

    /// The first `max` missing groups, in order (what to ask for next).
    pub fn next_missing(&self, max: usize) -> Vec<u64> {
        (0..groups(self.len))
            .filter(|i| !self.has(*i))
            .take(max)
            .collect()
    }

    /// Stores a group that proved itself (as `accept_group` returned it):
    /// its bytes (decrypted first, for a plaintext download), then its
    /// hash; synced every [`SYNC_EVERY`] bytes. Whether it was new.
    pub fn write_group(&mut self, group: &VerifiedGroup) -> Result<bool, FileError> {
        let index = group.index;
        if self.has(index) {
            return Ok(false);
        }
        let want = group_len(self.len, index)?;
        if group.bytes.len() as u64 != want {
            return Err(BlobError::WrongLength {
                index,
                got: group.bytes.len(),
                want,
            }
            .into());
        }
        match &self.layout {
            Layout::Cipher => self.data.write_all_at(&group.bytes, index * GROUP_LEN),
            Layout::Plain { key } => {
                let last = index + 1 == groups(self.len);
                let plain = open_group(key, index, last, &group.bytes)?;
                self.data.write_all_at(&plain, index * GROUP_PLAIN_LEN)
            }
        }
        .map_err(io_error("write", &self.data_path))?;
        self.have_file
            .write_all_at(&group.hash, index * HASH_LEN)
            .map_err(io_error("write", &self.have_path))?;
        set_bit(&mut self.have, index);
        self.missing -= 1;
        self.unsynced += want;
        if self.unsynced >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(true)
    }

    /// Stores groups that proved themselves ([`PartialBlob::write_group`]
    /// each), then syncs.
    pub fn write(&mut self, verified: &[VerifiedGroup]) -> Result<(), FileError> {
        for group in verified {
            self.write_group(group)?;
        }
        if self.unsynced > 0 {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes what was stored durable: the bytes, then their hashes.
    pub fn sync(&mut self) -> Result<(), FileError> {
        self.data
            .sync_data()
            .map_err(io_error("sync", &self.data_path))?;
        self.have_file
            .sync_data()
            .map_err(io_error("sync", &self.have_path))?;
        self.unsynced = 0;
        Ok(())
    }

    /// The hashes kept for every group, in order (the leaves of the blob's
    /// tree, once it is whole).
    fn hashes(&self) -> Result<Vec<[u8; 32]>, FileError> {
        let mut bytes = Vec::new();
        (&self.have_file)
            .seek(SeekFrom::Start(0))
            .and_then(|_| (&self.have_file).read_to_end(&mut bytes))
            .map_err(io_error("read", &self.have_path))?;
        Ok(bytes
            .chunks_exact(HASH_LEN as usize)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .collect())
    }

    /// Opens the whole download into `folder` under the manifest's (safe)
    /// name, made unique there; returns the path. A plaintext download is
    /// synced and moved there as it is. A ciphertext download is checked
    /// against the root once more on the way (a group damaged on disk
    /// since it was written restarts the download), decrypted group by
    /// group, decompressed if it was compressed, written to a hidden
    /// temporary, synced and moved. The download's files go.
    pub fn open_into(
        mut self,
        manifest: &FileManifest,
        folder: &Path,
    ) -> Result<PathBuf, FileError> {
        if self.missing > 0 {
            return Err(FileError::Incomplete {
                root: self.root,
                missing: self.missing,
            });
        }
        std::fs::create_dir_all(folder).map_err(io_error("create", folder))?;
        let path = match self.layout {
            Layout::Plain { .. } => {
                self.sync()?;
                let got = plain_len(self.len);
                if got != manifest.size {
                    return Err(FileError::WrongSize {
                        got,
                        want: manifest.size,
                    });
                }
                let path = place(&self.data_path, folder, &manifest.name)?;
                // The groups' hashes stay as the blob's tree: this device
                // can serve the file to others who may fetch it (the
                // group's members, our own devices), sealing it again.
                let tree = self.data_path.with_extension("tree");
                if std::fs::rename(&self.have_path, &tree).is_err() {
                    let _ = std::fs::remove_file(&self.have_path);
                }
                return Ok(path);
            }
            Layout::Cipher => {
                let temp_path = folder.join(format!(".{}.opening", self.root));
                let temp = File::create(&temp_path).map_err(io_error("create", &temp_path))?;
                let result = self
                    .decrypt_to(manifest, temp, &temp_path)
                    .and_then(|()| place(&temp_path, folder, &manifest.name));
                match result {
                    Ok(path) => {
                        let _ = std::fs::remove_file(&self.data_path);
                        path
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&temp_path);
                        if matches!(e, FileError::Damaged) {
                            self.forget_all()?;
                        }
                        return Err(e);
                    }
                }
            }
        };
        let _ = std::fs::remove_file(&self.have_path);
        Ok(path)
    }

    fn decrypt_to(
        &mut self,
        manifest: &FileManifest,
        out: File,
        out_path: &Path,
    ) -> Result<(), FileError> {
        let count = groups(self.len);
        let mut writer: Box<dyn Write> = match manifest.compression {
            Compression::None => Box::new(io::BufWriter::new(
                out.try_clone().map_err(io_error("open", out_path))?,
            )),
            Compression::Zstd => Box::new(
                zstd::stream::write::Decoder::new(io::BufWriter::new(
                    out.try_clone().map_err(io_error("open", out_path))?,
                ))
                .map_err(|e| FileError::Decompress(e.to_string()))?,
            ),
        };
        // Every group was verified against the root when it was written,
        // and each opens only if not a bit of it changed since (its AEAD
        // tag). A group that does not open is either damaged on disk (then
        // the whole no longer hashes to the root: fetch again) or sealed
        // under another key than the manifest's (the sender's fault: say
        // so); only then is the whole hashed again to tell which.
        // Groups are read a batch at a time and opened on two threads.
        let mut batch = Vec::with_capacity((OPEN_BATCH * GROUP_LEN) as usize);
        let mut first = 0;
        while first < count {
            let n = (count - first).min(OPEN_BATCH);
            let start = first * GROUP_LEN;
            let end = ((first + n) * GROUP_LEN).min(self.len);
            batch.resize((end - start) as usize, 0);
            self.data
                .read_exact_at(&mut batch, start)
                .map_err(io_error("read", &self.data_path))?;
            let groups: Vec<(u64, &[u8])> = batch
                .chunks(GROUP_LEN as usize)
                .enumerate()
                .map(|(k, g)| (first + k as u64, g))
                .collect();
            let key = &manifest.key;
            let open = |part: &[(u64, &[u8])]| -> Vec<Result<Vec<u8>, BlobError>> {
                part.iter()
                    .map(|(index, g)| open_group(key, *index, index + 1 == count, g))
                    .collect()
            };
            let (left, right) = groups.split_at(groups.len().div_ceil(2));
            let opened = std::thread::scope(|s| {
                let other = s.spawn(|| open(right));
                let mut mine = open(left);
                mine.extend(other.join().unwrap_or_default());
                mine
            });
            if opened.len() != groups.len() {
                return Err(FileError::Damaged);
            }
            for plain in opened {
                let plain = match plain {
                    Ok(plain) => plain,
                    Err(e) => {
                        return Err(if self.hashes_to_root()? {
                            e.into()
                        } else {
                            FileError::Damaged
                        });
                    }
                };
                writer
                    .write_all(&plain)
                    .map_err(|e| match manifest.compression {
                        Compression::Zstd => FileError::Decompress(e.to_string()),
                        Compression::None => FileError::Io {
                            doing: "write",
                            path: out_path.to_owned(),
                            source: e,
                        },
                    })?;
            }
            first += n;
        }
        writer.flush().map_err(io_error("write", out_path))?;
        drop(writer);
        out.sync_all().map_err(io_error("sync", out_path))?;
        let got = out.metadata().map_err(io_error("read", out_path))?.len();
        if got != manifest.size {
            return Err(FileError::WrongSize {
                got,
                want: manifest.size,
            });
        }
        Ok(())
    }

    /// Whether the ciphertext on disk hashes to the root.
    fn hashes_to_root(&self) -> Result<bool, FileError> {
        let mut hasher = blake3::Hasher::new();
        let mut file = &self.data;
        file.seek(SeekFrom::Start(0))
            .map_err(io_error("read", &self.data_path))?;
        hasher
            .update_reader(file)
            .map_err(io_error("read", &self.data_path))?;
        Ok(hasher.finalize().as_bytes() == &self.root.0)
    }
}

fn bit(map: &[u8], index: u64) -> bool {
    map.get((index / 8) as usize)
        .is_some_and(|b| b & (1 << (index % 8)) != 0)
}

fn set_bit(map: &mut [u8], index: u64) {
    if let Some(b) = map.get_mut((index / 8) as usize) {
        *b |= 1 << (index % 8);
    }
}

/// The plaintext length of a ciphertext of `len` bytes.
fn plain_len(len: u64) -> u64 {
    len.saturating_sub(groups(len) * TAG_LEN)
}

/// Moves the finished file `from` into `folder` under `name`, made unique
/// there, never replacing a file (a hard link, then the old name goes; a
/// copy, synced, when `folder` is on another disk); syncs the folder.
fn place(from: &Path, folder: &Path, name: &str) -> Result<PathBuf, FileError> {
    loop {
        let path = unique_path(folder, name);
        match std::fs::hard_link(from, &path) {
            Ok(()) => {
                let _ = std::fs::remove_file(from);
                if let Ok(dir) = File::open(folder) {
                    let _ = dir.sync_all();
                }
                return Ok(path);
            }
            // Taken since we looked: the next free name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                let file_name = from.file_name().unwrap_or_default().to_string_lossy();
                let copy = folder.join(format!(".{file_name}.copying"));
                std::fs::copy(from, &copy)
                    .and_then(|_| File::open(&copy)?.sync_all())
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&copy);
                        io_error("copy into", folder)(e)
                    })?;
                let _ = std::fs::remove_file(from);
                return place(&copy, folder, name);
            }
            Err(e) => return Err(io_error("move into", &path)(e)),
        }
    }
}

/// `name` in `folder`, or `stem (2).ext`, `stem (3).ext`… if taken.
pub fn unique_path(folder: &Path, name: &str) -> PathBuf {
    let first = folder.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    (2u64..)
        .map(|n| folder.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Ciphertext bytes of `root` stored so far in `blobs` (from the hashes
/// its download keeps; not checked).
pub fn fetched_on_disk(blobs: &Path, root: &BlobRoot, cipher_len: u64) -> u64 {
    let Ok(hashes) = std::fs::read(blobs.join(format!("{root}.have"))) else {
        return 0;
    };
    let stored = hashes
        .chunks_exact(HASH_LEN as usize)
        .filter(|h| h.iter().any(|b| *b != 0))
        .count() as u64;
    (stored.min(groups(cipher_len)) * GROUP_LEN).min(cipher_len)
}

/// Removes what a download of `root` left in `blobs`.
pub fn remove_partial(blobs: &Path, root: &BlobRoot) {
    for ext in ["part", "plain", "have"] {
        let _ = std::fs::remove_file(blobs.join(format!("{root}.{ext}")));
    }
}

mod source;
pub mod stream;

pub use source::{
    BlobSource, SealProgress, SealStep, mime_of, remove_sealed, seal_file, seal_file_with,
    sealed_age,
};

#[cfg(test)]
mod tests;

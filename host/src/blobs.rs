//! Blobs on disk (issue 16), for nodes and relays alike: a sealed file
//! served from `ROOT.blob` and `ROOT.tree` ([`BlobSource`], made by
//! [`seal_file`]); a download or upload in progress, kept so that it
//! resumes after any interruption ([`PartialBlob`]); and, on a node, the
//! finished file opened into the files folder.
//!
//! A download of the blob `root` is two files in `HOME/blobs/`:
//! `ROOT.part`, the ciphertext at its full length (sparse until fetched),
//! and `ROOT.have`, one bit per group. Verified groups are written into
//! `.part` and synced before their bits are set and synced, so a set bit
//! always names durable, verified bytes: after `kill -9` a download loses
//! at most the groups written since the last sync (one request's, at most
//! 16 groups, 1 MiB). Only the opened file gets a name in the files
//! folder, and only once it is whole (written as a hidden temporary,
//! synced, then renamed).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hush_protocol::blob::{
    BlobError, BlobRoot, Compression, FileManifest, GROUP_LEN, group_len, groups, open_group,
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

/// A blob being fetched: its ciphertext so far and which groups are in.
#[derive(Debug)]
pub struct PartialBlob {
    root: BlobRoot,
    len: u64,
    part_path: PathBuf,
    have_path: PathBuf,
    part: File,
    have_file: File,
    have: Vec<u8>,
    missing: u64,
}

impl PartialBlob {
    /// The download of `root` (`len` ciphertext bytes) in `dir`: resumed
    /// if one is there for that length, else started.
    pub fn open(dir: &Path, root: BlobRoot, len: u64) -> Result<Self, FileError> {
        std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        let part_path = dir.join(format!("{root}.part"));
        let have_path = dir.join(format!("{root}.have"));
        let count = groups(len);
        let bitmap_len = count.div_ceil(8) as usize;
        let part = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part_path)
            .map_err(io_error("open", &part_path))?;
        let mut have_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&have_path)
            .map_err(io_error("open", &have_path))?;
        let mut have = Vec::new();
        have_file
            .read_to_end(&mut have)
            .map_err(io_error("read", &have_path))?;
        let part_len = part.metadata().map_err(io_error("read", &part_path))?.len();
        if have.len() != bitmap_len || part_len != len {
            // Nothing to resume (or another length): start over.
            have = vec![0; bitmap_len];
            part.set_len(len).map_err(io_error("size", &part_path))?;
            have_file
                .set_len(0)
                .and_then(|()| have_file.seek(SeekFrom::Start(0)).map(|_| ()))
                .and_then(|()| have_file.write_all(&have))
                .and_then(|()| have_file.sync_data())
                .map_err(io_error("write", &have_path))?;
        }
        let done: u64 = (0..count).filter(|i| bit(&have, *i)).count() as u64;
        Ok(Self {
            root,
            len,
            part_path,
            have_path,
            part,
            have_file,
            have,
            missing: count - done,
        })
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

    /// Stores verified groups (as `accept_groups` returned them): their
    /// bytes durably, then their bits.
    pub fn write(&mut self, verified: &[(u64, Vec<u8>)]) -> Result<(), FileError> {
        let mut new = Vec::new();
        for (index, bytes) in verified {
            if self.has(*index) || new.contains(index) {
                continue;
            }
            let want = group_len(self.len, *index)?;
            if bytes.len() as u64 != want {
                return Err(BlobError::WrongLength {
                    index: *index,
                    got: bytes.len(),
                    want,
                }
                .into());
            }
            self.part
                .write_all_at(bytes, index * GROUP_LEN)
                .map_err(io_error("write", &self.part_path))?;
            new.push(*index);
        }
        if new.is_empty() {
            return Ok(());
        }
        self.part
            .sync_data()
            .map_err(io_error("sync", &self.part_path))?;
        for index in &new {
            set_bit(&mut self.have, *index);
        }
        self.have_file
            .write_all_at(&self.have, 0)
            .and_then(|()| self.have_file.sync_data())
            .map_err(io_error("write", &self.have_path))?;
        self.missing -= new.len() as u64;
        Ok(())
    }

    /// Opens the whole download into `folder` under the manifest's (safe)
    /// name, made unique there; returns the path. The ciphertext is
    /// checked against the root once more on the way (a group damaged on
    /// disk since it was written restarts the download), decrypted group
    /// by group, decompressed if it was compressed, written to a hidden
    /// temporary, synced and renamed. The download's files go.
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
        let temp_path = folder.join(format!(".{}.opening", self.root));
        let temp = File::create(&temp_path).map_err(io_error("create", &temp_path))?;
        let result = self.decrypt_to(manifest, temp, &temp_path);
        if let Err(e) = result {
            let _ = std::fs::remove_file(&temp_path);
            if matches!(e, FileError::Damaged) {
                self.restart()?;
            }
            return Err(e);
        }
        let path = unique_path(folder, &manifest.name);
        std::fs::rename(&temp_path, &path).map_err(io_error("rename", &path))?;
        if let Ok(dir) = File::open(folder) {
            let _ = dir.sync_all();
        }
        let _ = std::fs::remove_file(&self.part_path);
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
            self.part
                .read_exact_at(&mut batch, start)
                .map_err(io_error("read", &self.part_path))?;
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
        let mut file = &self.part;
        file.seek(SeekFrom::Start(0))
            .map_err(io_error("read", &self.part_path))?;
        hasher
            .update_reader(file)
            .map_err(io_error("read", &self.part_path))?;
        Ok(hasher.finalize().as_bytes() == &self.root.0)
    }

    /// Forgets every group (the bytes on disk do not match the root).
    fn restart(&mut self) -> Result<(), FileError> {
        self.have.iter_mut().for_each(|b| *b = 0);
        self.have_file
            .write_all_at(&self.have, 0)
            .and_then(|()| self.have_file.sync_data())
            .map_err(io_error("write", &self.have_path))?;
        self.missing = groups(self.len);
        Ok(())
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

/// Removes what a download of `root` left in `blobs`.
pub fn remove_partial(blobs: &Path, root: &BlobRoot) {
    for ext in ["part", "have"] {
        let _ = std::fs::remove_file(blobs.join(format!("{root}.{ext}")));
    }
}

mod source;
pub mod stream;

pub use source::{BlobSource, mime_of, remove_sealed, seal_file};

#[cfg(test)]
mod tests;

//! Files this device serves: a file sent from here is sealed once into
//! `HOME/blobs/ROOT.blob` (the ciphertext) and `ROOT.tree` (its groups'
//! chaining values, 32 bytes each), from which any range is served with
//! its proofs.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hush_protocol::blob::{
    BlobRequest, BlobResponse, BlobRoot, Compression, FileKey, FileManifest, GROUP_LEN,
    GROUP_PLAIN_LEN, MAX_THUMBNAIL_LEN, Sealer, TAG_LEN, Tree, group_hash, group_len,
    safe_file_name, seal_group, serve,
};

use super::{FileError, io_error};

/// Media types whose bytes are compressed already: sealed as they are.
const COMPRESSED_ALREADY: [&str; 12] = [
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "video/mp4",
    "video/webm",
    "audio/mpeg",
    "audio/ogg",
    "audio/aac",
    "application/zip",
    "application/gzip",
    "application/zstd",
];

/// The media type of a file name, by its extension (empty if unknown).
pub fn mime_of(name: &str) -> &'static str {
    let ext = name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "m4a" | "aac" => "audio/aac",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "zst" => "application/zstd",
        "pdf" => "application/pdf",
        "txt" | "md" | "log" => "text/plain",
        "json" => "application/json",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        _ => "",
    }
}

/// What sealing a file is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealStep {
    /// Reading and compressing the file.
    Compressing,
    /// Encrypting and hashing what is sent (the file, or its compressed
    /// form).
    Encrypting,
}

/// How far sealing a file went: `done` of `total` bytes of the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealProgress {
    pub step: SealStep,
    pub done: u64,
    pub total: u64,
}

/// Seals the file at `path` for sending: compressed first (zstd) unless
/// its type is compressed already, encrypted under a fresh key into
/// `blobs`; returns its manifest (with `thumbnail`, if one was made).
pub fn seal_file(
    path: &Path,
    blobs: &Path,
    thumbnail: Option<Vec<u8>>,
    rng: &mut impl rand::RngCore,
) -> Result<FileManifest, FileError> {
    seal_file_with(path, blobs, thumbnail, rng, &mut |_| {})
}

/// [`seal_file`], telling `progress` how far it went (every 1 MiB or so).
pub fn seal_file_with(
    path: &Path,
    blobs: &Path,
    thumbnail: Option<Vec<u8>>,
    rng: &mut impl rand::RngCore,
    progress: &mut dyn FnMut(SealProgress),
) -> Result<FileManifest, FileError> {
    std::fs::create_dir_all(blobs).map_err(io_error("create", blobs))?;
    let file = File::open(path).map_err(io_error("open", path))?;
    let size = file.metadata().map_err(io_error("read", path))?.len();
    let name = safe_file_name(
        &path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let mime = mime_of(&name);
    let key = FileKey::random(rng);
    // Temporary names: random, nothing of the key.
    let nonce = hex::encode(rng.next_u64().to_be_bytes());
    let compressed_path = blobs.join(format!(".{nonce}.zst"));
    let (compression, sealed_len, source_path) = if COMPRESSED_ALREADY.contains(&mime) {
        (Compression::None, size, path.to_owned())
    } else {
        let packed = compress(file, size, &compressed_path, progress)?;
        if packed < size {
            (Compression::Zstd, packed, compressed_path.clone())
        } else {
            (Compression::None, size, path.to_owned())
        }
    };
    let sealing = blobs.join(format!(".{nonce}.sealing"));
    let result = seal_into(key.clone(), &source_path, sealed_len, &sealing, progress);
    let _ = std::fs::remove_file(&compressed_path);
    let tree = match result {
        Ok(tree) => tree,
        Err(e) => {
            let _ = std::fs::remove_file(&sealing);
            return Err(e);
        }
    };
    let root = tree.root();
    let blob = blob_path(blobs, &root);
    std::fs::rename(&sealing, &blob).map_err(io_error("rename", &blob))?;
    write_tree(blobs, &tree)?;
    Ok(FileManifest {
        root,
        key,
        size,
        sealed_len,
        compression,
        name,
        mime: mime.to_owned(),
        thumbnail: thumbnail.filter(|t| t.len() <= MAX_THUMBNAIL_LEN),
    })
}

/// Progress is told this often, in bytes.
const PROGRESS_EVERY: u64 = 1 << 20;

/// A reader that tells `progress` how much was read.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    told: u64,
    total: u64,
    progress: &'a mut dyn FnMut(SealProgress),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.told >= PROGRESS_EVERY || (n == 0 && self.done > self.told) {
            self.told = self.done;
            (self.progress)(SealProgress {
                step: SealStep::Compressing,
                done: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }
}

fn compress(
    file: File,
    size: u64,
    to: &Path,
    progress: &mut dyn FnMut(SealProgress),
) -> Result<u64, FileError> {
    let out = File::create(to).map_err(io_error("create", to))?;
    let mut encoder = zstd::stream::write::Encoder::new(BufWriter::new(out), 3)
        .map_err(io_error("compress into", to))?;
    let mut input = BufReader::new(Counting {
        inner: file,
        done: 0,
        told: 0,
        total: size,
        progress,
    });
    io::copy(&mut input, &mut encoder).map_err(io_error("compress into", to))?;
    let mut out = encoder.finish().map_err(io_error("compress into", to))?;
    out.flush().map_err(io_error("write", to))?;
    let len = out
        .get_ref()
        .metadata()
        .map_err(io_error("read", to))?
        .len();
    Ok(len)
}

/// Seals `len` bytes of `from` into `to`, synced.
fn seal_into(
    key: FileKey,
    from: &Path,
    len: u64,
    to: &Path,
    progress: &mut dyn FnMut(SealProgress),
) -> Result<Tree, FileError> {
    let mut input = BufReader::new(File::open(from).map_err(io_error("open", from))?);
    let out = File::create(to).map_err(io_error("create", to))?;
    let mut writer = BufWriter::new(&out);
    let mut sealer = Sealer::new(key, len)?;
    let mut plain = vec![0u8; GROUP_PLAIN_LEN as usize];
    while !sealer.is_done() {
        let n = sealer.next_plain_len() as usize;
        input
            .read_exact(&mut plain[..n])
            .map_err(io_error("read", from))?;
        let (index, sealed) = sealer.seal(&plain[..n])?;
        writer.write_all(&sealed).map_err(io_error("write", to))?;
        // Every 16 groups (about 1 MiB), and the last.
        if index % 16 == 15 || sealer.is_done() {
            progress(SealProgress {
                step: SealStep::Encrypting,
                done: (index + 1).saturating_mul(GROUP_PLAIN_LEN).min(len),
                total: len,
            });
        }
    }
    writer.flush().map_err(io_error("write", to))?;
    drop(writer);
    out.sync_all().map_err(io_error("sync", to))?;
    // `finish` has every group: it cannot be short.
    sealer.finish().ok_or(FileError::Damaged)
}

fn blob_path(blobs: &Path, root: &BlobRoot) -> PathBuf {
    blobs.join(format!("{root}.blob"))
}

fn tree_path(blobs: &Path, root: &BlobRoot) -> PathBuf {
    blobs.join(format!("{root}.tree"))
}

/// Stores the groups' chaining values beside the blob (none for a blob of
/// one group: its root is its hash).
fn write_tree(blobs: &Path, tree: &Tree) -> Result<(), FileError> {
    let path = tree_path(blobs, &tree.root());
    let bytes = tree.leaves().concat();
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(io_error("create", &path))?;
    out.write_all(&bytes)
        .and_then(|()| out.sync_all())
        .map_err(io_error("write", &path))
}

/// A blob this device holds whole, ready to serve ranges of.
#[derive(Debug)]
pub struct BlobSource {
    tree: Tree,
    path: PathBuf,
    bytes: Bytes,
}

/// Where a source's groups come from.
#[derive(Debug)]
enum Bytes {
    /// The ciphertext itself (`ROOT.blob`).
    Sealed(File),
    /// A received file's plaintext, sealed again group by group as it is
    /// served (sealing is deterministic: the same key, index and bytes
    /// give the same ciphertext).
    Plain { file: File, key: FileKey },
}

impl BlobSource {
    /// The blob `root` in `blobs`, if this device holds it whole (its tree
    /// is checked against the root).
    pub fn open(blobs: &Path, root: &BlobRoot) -> Result<Option<Self>, FileError> {
        let path = blob_path(blobs, root);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open", &path)(e)),
        };
        let len = file.metadata().map_err(io_error("read", &path))?.len();
        let tree = if len <= GROUP_LEN {
            let mut whole = vec![0u8; len as usize];
            file.read_exact_at(&mut whole, 0)
                .map_err(io_error("read", &path))?;
            Tree::new(len, &[], Some(&whole))
        } else {
            Tree::new(len, &read_leaves(blobs, root)?, None)
        };
        match tree {
            Some(tree) if tree.root() == *root => Ok(Some(Self {
                tree,
                path,
                bytes: Bytes::Sealed(file),
            })),
            _ => Err(FileError::Damaged),
        }
    }

    /// The blob `root` of a file received here and kept as it came (sealed
    /// as it is, downloaded in place): its plaintext at `path`, its groups'
    /// hashes in `blobs/ROOT.tree`. `None` if the file is gone or is no
    /// longer what was received (its length or first group changed).
    pub fn received(
        blobs: &Path,
        root: &BlobRoot,
        path: &Path,
        key: FileKey,
    ) -> Result<Option<Self>, FileError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open", path)(e)),
        };
        let plain_len = file.metadata().map_err(io_error("read", path))?.len();
        let len = hush_protocol::blob::ciphertext_len(plain_len)?;
        let tree = if len <= GROUP_LEN {
            let mut whole = vec![0u8; plain_len as usize];
            file.read_exact_at(&mut whole, 0)
                .map_err(io_error("read", path))?;
            Tree::new(len, &[], Some(&seal_group(&key, 0, true, &whole)))
        } else {
            match read_leaves(blobs, root) {
                Ok(leaves) => Tree::new(len, &leaves, None),
                Err(_) => return Ok(None),
            }
        };
        let Some(tree) = tree.filter(|t| t.root() == *root) else {
            return Ok(None);
        };
        let source = Self {
            tree,
            path: path.to_owned(),
            bytes: Bytes::Plain { file, key },
        };
        Ok(source.group(0).is_ok().then_some(source))
    }

    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The ciphertext of group `index`.
    fn group(&self, index: u64) -> io::Result<Vec<u8>> {
        let len = self.tree.len();
        let n = group_len(len, index).map_err(io::Error::other)?;
        match &self.bytes {
            Bytes::Sealed(file) => {
                let mut group = vec![0u8; n as usize];
                file.read_exact_at(&mut group, index * GROUP_LEN)?;
                Ok(group)
            }
            Bytes::Plain { file, key } => {
                let mut plain = vec![0u8; (n - TAG_LEN) as usize];
                file.read_exact_at(&mut plain, index * GROUP_PLAIN_LEN)?;
                let last = index + 1 == hush_protocol::blob::groups(len);
                let sealed = seal_group(key, index, last, &plain);
                // The file may have been changed since it came: serve
                // nothing of it rather than bytes that do not verify.
                if self.tree.group_hash(index) != Some(group_hash(len, index, &sealed)) {
                    return Err(io::Error::other(format!(
                        "{} changed since it was received",
                        self.path.display()
                    )));
                }
                Ok(sealed)
            }
        }
    }

    /// The answer to a range request for this blob.
    pub fn serve(&self, request: &BlobRequest) -> BlobResponse {
        serve(&self.tree, request, |index| self.group(index))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The groups' chaining values kept in `blobs/ROOT.tree`.
fn read_leaves(blobs: &Path, root: &BlobRoot) -> Result<Vec<[u8; 32]>, FileError> {
    let tree_file = tree_path(blobs, root);
    let bytes = std::fs::read(&tree_file).map_err(io_error("read", &tree_file))?;
    Ok(bytes
        .chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok())
        .collect())
}

impl super::PartialBlob {
    /// A whole ciphertext download (or upload) made a blob this device
    /// serves: its tree built from the hashes kept for its groups (and the
    /// root checked once more), `ROOT.part` renamed `ROOT.blob` beside its
    /// `ROOT.tree`, the hashes gone.
    pub fn into_source(mut self, blobs: &Path) -> Result<BlobSource, FileError> {
        if self.missing > 0 {
            return Err(FileError::Incomplete {
                root: self.root,
                missing: self.missing,
            });
        }
        if !matches!(self.layout, super::Layout::Cipher) {
            return Err(FileError::NotCiphertext { root: self.root });
        }
        let tree = if self.len <= GROUP_LEN {
            let mut whole = vec![0u8; self.len as usize];
            self.data
                .read_exact_at(&mut whole, 0)
                .map_err(io_error("read", &self.data_path))?;
            Tree::new(self.len, &[], Some(&whole))
        } else {
            Tree::new(self.len, &self.hashes()?, None)
        };
        let tree = tree.ok_or(FileError::Damaged)?;
        if tree.root() != self.root {
            return Err(FileError::Damaged);
        }
        self.sync()?;
        let blob = blob_path(blobs, &self.root);
        std::fs::rename(&self.data_path, &blob).map_err(io_error("rename", &blob))?;
        write_tree(blobs, &tree)?;
        let _ = std::fs::remove_file(&self.have_path);
        BlobSource::open(blobs, &self.root)?.ok_or(FileError::Damaged)
    }
}

/// How long ago the blob `root` in `blobs` was sealed (its file's time),
/// if it is there.
pub fn sealed_age(blobs: &Path, root: &BlobRoot) -> Option<std::time::Duration> {
    let modified = std::fs::metadata(blob_path(blobs, root))
        .ok()?
        .modified()
        .ok()?;
    modified.elapsed().ok()
}

/// Removes the sealed blob `root` (and its tree) from `blobs`: it is no
/// longer served from here.
pub fn remove_sealed(blobs: &Path, root: &BlobRoot) {
    let _ = std::fs::remove_file(blob_path(blobs, root));
    let _ = std::fs::remove_file(tree_path(blobs, root));
}

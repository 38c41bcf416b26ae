//! File content (issue 16, the content layer): a file is encrypted in
//! groups under its own random key, and the ciphertext is addressed by its
//! BLAKE3 hash, the **root**. Each group of [`GROUP_LEN`] ciphertext bytes
//! is one AEAD block and one subtree of BLAKE3's own tree, so a receiver
//! checks every group it gets against the root (with the sibling chaining
//! values on its path, the **proof**) before it decrypts or stores a byte
//! of it: verified streaming, as Bao does, built on the `blake3` crate's
//! `hazmat` tree functions.
//!
//! - Encryption: ChaCha20-Poly1305 (RustCrypto) per group, nonce = `0 0 0
//!   last ‖ index u64 BE` (the last group's flag set, so a shortened file
//!   does not open), no associated data. A group holds [`GROUP_PLAIN_LEN`]
//!   plaintext bytes (its tag makes it [`GROUP_LEN`]); the last group is
//!   shorter. An empty file is one empty group (its tag alone).
//! - Addressing: the root is `blake3::hash(ciphertext)`. A group's proof is
//!   the chaining values of the siblings on its path from the root, top
//!   down; a file of one group has an empty proof (its root is its hash).

use std::collections::HashMap;

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use thiserror::Error;

/// Ciphertext bytes per group: 64 BLAKE3 chunks, one AEAD block.
pub const GROUP_LEN: u64 = 64 * 1024;
/// The AEAD tag each group carries.
pub const TAG_LEN: u64 = 16;
/// Plaintext bytes per group (all but the last).
pub const GROUP_PLAIN_LEN: u64 = GROUP_LEN - TAG_LEN;
/// The largest file hush carries: 1 TiB of plaintext (the node's own limit,
/// `--max-file-mib`, is lower).
pub const MAX_FILE_LEN: u64 = 1 << 40;

/// The BLAKE3 hash of a file's ciphertext: its name everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobRoot(pub [u8; 32]);

impl std::fmt::Display for BlobRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A file's random key. Never printed; wiped when dropped.
#[derive(Clone, PartialEq, Eq, zeroize::ZeroizeOnDrop)]
pub struct FileKey(pub [u8; 32]);

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

impl FileKey {
    pub fn random(rng: &mut impl rand::RngCore) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self(key)
    }
}

/// Why a group, a proof or a length was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlobError {
    #[error("a file of {len} bytes is larger than hush carries ({MAX_FILE_LEN} bytes)")]
    TooLarge { len: u64 },
    #[error("group {index} is past the end of the file ({groups} groups)")]
    NoSuchGroup { index: u64, groups: u64 },
    #[error("group {index} has {got} bytes, its place in the file holds {want}")]
    WrongLength { index: u64, got: usize, want: u64 },
    #[error("group {index} does not match the file's hash (wrong or damaged bytes)")]
    Mismatch { index: u64 },
    #[error("group {index} does not decrypt with the file's key")]
    Undecryptable { index: u64 },
}

/// The ciphertext length of a file of `plain_len` bytes.
pub fn ciphertext_len(plain_len: u64) -> Result<u64, BlobError> {
    if plain_len > MAX_FILE_LEN {
        return Err(BlobError::TooLarge { len: plain_len });
    }
    let groups = plain_len / GROUP_PLAIN_LEN + 1;
    Ok(plain_len + groups * TAG_LEN)
}

/// How many groups a ciphertext of `len` bytes has (at least one).
pub fn groups(len: u64) -> u64 {
    len.div_ceil(GROUP_LEN).max(1)
}

/// The ciphertext length of group `index` of a ciphertext of `len` bytes.
pub fn group_len(len: u64, index: u64) -> Result<u64, BlobError> {
    let count = groups(len);
    if index >= count {
        return Err(BlobError::NoSuchGroup {
            index,
            groups: count,
        });
    }
    Ok((len - index * GROUP_LEN).min(GROUP_LEN))
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3] = u8::from(last);
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::from(n)
}

/// Encrypts group `index` (`last`: the file's last) of a file.
pub fn seal_group(key: &FileKey, index: u64, last: bool, plain: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new((&key.0).into());
    // Encryption of an in-memory buffer cannot fail for these sizes.
    cipher
        .encrypt(&nonce(index, last), plain)
        .unwrap_or_default()
}

/// Decrypts group `index` of a file (checked against the root first).
pub fn open_group(
    key: &FileKey,
    index: u64,
    last: bool,
    sealed: &[u8],
) -> Result<Vec<u8>, BlobError> {
    let cipher = ChaCha20Poly1305::new((&key.0).into());
    cipher
        .decrypt(&nonce(index, last), sealed)
        .map_err(|_| BlobError::Undecryptable { index })
}

/// The hash group `index` of a ciphertext of `len` bytes proves itself
/// with: its chaining value, or, for a blob of one group, the root itself.
/// A download keeps it beside each group it stores, so a group can be
/// checked again after a crash without asking anyone for its proof.
pub fn group_hash(len: u64, index: u64, group: &[u8]) -> [u8; 32] {
    if len <= GROUP_LEN {
        *blake3::hash(group).as_bytes()
    } else {
        leaf(index, group)
    }
}

/// The chaining value of group `index` of a ciphertext longer than one
/// group.
pub fn leaf(index: u64, group: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(index * GROUP_LEN);
    hasher.update(group);
    hasher.finalize_non_root()
}

/// A file's tree above its groups, from their chaining values: what a
/// source needs to hand out proofs (32 bytes per group, kept with the
/// file).
#[derive(Debug, Clone)]
pub struct Tree {
    len: u64,
    root: BlobRoot,
    /// Every node's chaining value by (byte offset, byte length), the
    /// groups' included; empty for a file of one group.
    nodes: HashMap<(u64, u64), ChainingValue>,
}

impl Tree {
    /// The tree of a ciphertext of `len` bytes whose groups have the chaining
    /// values `leaves` (in order); `single` is the whole ciphertext when it
    /// is one group (its root is its plain hash).
    pub fn new(len: u64, leaves: &[ChainingValue], single: Option<&[u8]>) -> Option<Self> {
        if len <= GROUP_LEN {
            let data = single?;
            return Some(Self {
                len,
                root: BlobRoot(*blake3::hash(data).as_bytes()),
                nodes: HashMap::new(),
            });
        }
        if leaves.len() as u64 != groups(len) {
            return None;
        }
        let mut nodes = HashMap::with_capacity(leaves.len() * 2);
        let root = build(len, 0, len, leaves, &mut nodes);
        Some(Self {
            len,
            root: BlobRoot(root),
            nodes,
        })
    }

    pub fn root(&self) -> BlobRoot {
        self.root
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The groups' chaining values, in order (what [`Tree::new`] takes
    /// back; empty for a blob of one group).
    pub fn leaves(&self) -> Vec<ChainingValue> {
        if self.len <= GROUP_LEN {
            return Vec::new();
        }
        (0..groups(self.len))
            .filter_map(|i| {
                let len = group_len(self.len, i).ok()?;
                self.nodes.get(&(i * GROUP_LEN, len)).copied()
            })
            .collect()
    }

    /// The [`group_hash`] group `index` must have.
    pub fn group_hash(&self, index: u64) -> Option<[u8; 32]> {
        if self.len <= GROUP_LEN {
            return (index == 0).then_some(self.root.0);
        }
        let len = group_len(self.len, index).ok()?;
        self.nodes.get(&(index * GROUP_LEN, len)).copied()
    }

    /// The proof of group `index`: its siblings' chaining values, top down.
    pub fn proof(&self, index: u64) -> Result<Vec<ChainingValue>, BlobError> {
        group_len(self.len, index)?;
        let mut out = Vec::new();
        for step in path(self.len, index) {
            if let Some(cv) = self.nodes.get(&step.sibling) {
                out.push(*cv);
            }
        }
        Ok(out)
    }
}

/// Fills `nodes` below (and with) the subtree at `offset`, `len` bytes,
/// and returns its chaining value, or the root hash's bytes at the top.
fn build(
    total: u64,
    offset: u64,
    len: u64,
    leaves: &[ChainingValue],
    nodes: &mut HashMap<(u64, u64), ChainingValue>,
) -> [u8; 32] {
    if len <= GROUP_LEN {
        let cv = leaves[(offset / GROUP_LEN) as usize];
        nodes.insert((offset, len), cv);
        return cv;
    }
    let left = left_subtree_len(len);
    let l = build(total, offset, left, leaves, nodes);
    let r = build(total, offset + left, len - left, leaves, nodes);
    if offset == 0 && len == total {
        *merge_subtrees_root(&l, &r, Mode::Hash).as_bytes()
    } else {
        let cv = merge_subtrees_non_root(&l, &r, Mode::Hash);
        nodes.insert((offset, len), cv);
        cv
    }
}

/// One step down from the root towards a group.
struct Step {
    /// The group is in the left subtree.
    left: bool,
    /// The other subtree: (offset, length).
    sibling: (u64, u64),
}

/// The steps from the root of a ciphertext of `total` bytes (more than one
/// group) down to group `index`.
fn path(total: u64, index: u64) -> Vec<Step> {
    let target = index * GROUP_LEN;
    let (mut offset, mut len) = (0, total);
    let mut steps = Vec::new();
    while len > GROUP_LEN {
        let left = left_subtree_len(len);
        if target < offset + left {
            steps.push(Step {
                left: true,
                sibling: (offset + left, len - left),
            });
            len = left;
        } else {
            steps.push(Step {
                left: false,
                sibling: (offset, left),
            });
            offset += left;
            len -= left;
        }
    }
    steps
}

/// Checks group `index` of a ciphertext of `len` bytes named `root`
/// against its proof; its [`group_hash`] if it holds.
pub fn verify_group(
    root: &BlobRoot,
    len: u64,
    index: u64,
    group: &[u8],
    proof: &[ChainingValue],
) -> Result<[u8; 32], BlobError> {
    let want = group_len(len, index)?;
    if group.len() as u64 != want {
        return Err(BlobError::WrongLength {
            index,
            got: group.len(),
            want,
        });
    }
    let mismatch = Err(BlobError::Mismatch { index });
    if len <= GROUP_LEN {
        return if proof.is_empty() && blake3::hash(group).as_bytes() == &root.0 {
            Ok(root.0)
        } else {
            mismatch
        };
    }
    let steps = path(len, index);
    if steps.len() != proof.len() {
        return mismatch;
    }
    let hash = leaf(index, group);
    let mut cv = hash;
    for (i, (step, sibling)) in steps.iter().zip(proof).enumerate().rev() {
        let (l, r) = if step.left {
            (&cv, sibling)
        } else {
            (sibling, &cv)
        };
        if i == 0 {
            return if merge_subtrees_root(l, r, Mode::Hash).as_bytes() == &root.0 {
                Ok(hash)
            } else {
                mismatch
            };
        }
        cv = merge_subtrees_non_root(l, r, Mode::Hash);
    }
    mismatch
}

/// A source's answer to `request` for the blob whose tree it holds:
/// `read` gives the ciphertext of a group (from its file).
pub fn serve(
    tree: &Tree,
    request: &BlobRequest,
    mut read: impl FnMut(u64) -> std::io::Result<Vec<u8>>,
) -> BlobResponse {
    if request.root != tree.root() || request.len != tree.len() || request.check().is_err() {
        return BlobResponse::Refused(BlobRefusal::BadRange);
    }
    let mut out = Vec::with_capacity(usize::from(request.count));
    for index in request.first..request.first + u64::from(request.count) {
        let (Ok(bytes), Ok(proof)) = (read(index), tree.proof(index)) else {
            break;
        };
        out.push(BlobGroup {
            index,
            proof,
            bytes,
        });
    }
    if out.is_empty() {
        return BlobResponse::Refused(BlobRefusal::NotHere);
    }
    BlobResponse::Groups(out)
}

/// A group that proved itself against its blob's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedGroup {
    pub index: u64,
    pub bytes: Vec<u8>,
    /// Its [`group_hash`], kept beside it on disk.
    pub hash: [u8; 32],
}

/// Checks the group at `position` (from 0) of a source's answer to
/// `request`: it must be the group the request asked for there, and
/// verify against the root.
pub fn accept_group(
    request: &BlobRequest,
    position: usize,
    group: BlobGroup,
) -> Result<VerifiedGroup, BlobError> {
    let expected = request.first + position as u64;
    if group.index != expected || position >= usize::from(request.count) {
        return Err(BlobError::Mismatch { index: group.index });
    }
    let hash = verify_group(
        &request.root,
        request.len,
        group.index,
        &group.bytes,
        &group.proof,
    )?;
    Ok(VerifiedGroup {
        index: group.index,
        bytes: group.bytes,
        hash,
    })
}

/// Checks a source's groups for `request` (in order, from its first, each
/// against the root): the verified ones, or the first that is not (the
/// source lies or is damaged: use another).
pub fn accept_groups(
    request: &BlobRequest,
    groups: Vec<BlobGroup>,
) -> Result<Vec<VerifiedGroup>, BlobError> {
    groups
        .into_iter()
        .enumerate()
        .map(|(position, group)| accept_group(request, position, group))
        .collect()
}

/// Encrypts a file group by group as it is read, and builds its tree.
#[derive(Debug)]
pub struct Sealer {
    key: FileKey,
    plain_len: u64,
    cipher_len: u64,
    next: u64,
    leaves: Vec<ChainingValue>,
    /// The ciphertext itself while it is one group (its root is its hash).
    single: Option<Vec<u8>>,
}

impl Sealer {
    /// A sealer for a file of `plain_len` bytes.
    pub fn new(key: FileKey, plain_len: u64) -> Result<Self, BlobError> {
        let cipher_len = ciphertext_len(plain_len)?;
        Ok(Self {
            key,
            plain_len,
            cipher_len,
            next: 0,
            leaves: Vec::new(),
            single: None,
        })
    }

    pub fn cipher_len(&self) -> u64 {
        self.cipher_len
    }

    /// How many plaintext bytes the next group takes (0 when done, but for
    /// the one empty group of an empty file).
    pub fn next_plain_len(&self) -> u64 {
        let start = self.next * GROUP_PLAIN_LEN;
        self.plain_len.saturating_sub(start).min(GROUP_PLAIN_LEN)
    }

    /// Whether every group was sealed.
    pub fn is_done(&self) -> bool {
        self.next >= groups(self.cipher_len)
    }

    /// Seals the next group (`plain` must be [`Sealer::next_plain_len`]
    /// bytes): its ciphertext, to be written at `index * GROUP_LEN`.
    pub fn seal(&mut self, plain: &[u8]) -> Result<(u64, Vec<u8>), BlobError> {
        let index = self.next;
        let count = groups(self.cipher_len);
        if index >= count {
            return Err(BlobError::NoSuchGroup {
                index,
                groups: count,
            });
        }
        let want = self.next_plain_len();
        if plain.len() as u64 != want {
            return Err(BlobError::WrongLength {
                index,
                got: plain.len(),
                want,
            });
        }
        let last = index + 1 == count;
        let sealed = seal_group(&self.key, index, last, plain);
        if self.cipher_len <= GROUP_LEN {
            self.single = Some(sealed.clone());
        } else {
            self.leaves.push(leaf(index, &sealed));
        }
        self.next += 1;
        Ok((index, sealed))
    }

    /// The finished file's tree (once every group is sealed).
    pub fn finish(self) -> Option<Tree> {
        if !self.is_done() {
            return None;
        }
        Tree::new(self.cipher_len, &self.leaves, self.single.as_deref())
    }
}

mod fetch;
mod wire;

pub use fetch::{
    Fetched, Fetcher, MAX_IN_FLIGHT_PER_SOURCE, MAX_SOURCE_BACKOFF_MS, MAX_SOURCES, RequestId,
    SOURCE_BACKOFF_MS,
};

pub use wire::{
    BLOB_PROTOCOL, BLOB_UPLOAD_PROTOCOL, BlobGroup, BlobRefusal, BlobRequest, BlobResponse,
    BlobUpload, Compression, FileManifest, MAX_BLOB_REQUEST_FRAME, MAX_BLOB_RESPONSE_FRAME,
    MAX_FILE_NAME_LEN, MAX_GROUPS_PER_REQUEST, MAX_MIME_LEN, MAX_PROOF_LEN, MAX_THUMBNAIL_LEN,
    UploadAnswer, UploadRefusal, safe_file_name,
};

#[cfg(test)]
mod tests;

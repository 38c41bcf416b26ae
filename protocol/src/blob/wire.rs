//! What travels about a file: the manifest a message carries (everything
//! needed to fetch, check and open it), and the `/hush/blob/1` range
//! protocol between a fetcher and a source.

use blake3::hazmat::ChainingValue;

use super::{BlobError, BlobRoot, FileKey, GROUP_LEN, MAX_FILE_LEN, ciphertext_len, groups};
use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::text::is_unsafe_in_name;

const MANIFEST_VERSION: u8 = 1;
const BLOB_VERSION: u8 = 1;

/// Longest file name kept, in bytes (a longer one is cut at a character).
pub const MAX_FILE_NAME_LEN: usize = 255;
/// Longest media type, in bytes.
pub const MAX_MIME_LEN: usize = 127;
/// Largest thumbnail a manifest carries.
pub const MAX_THUMBNAIL_LEN: usize = 10 * 1024;
/// Most groups one request asks for (1 MiB of ciphertext).
pub const MAX_GROUPS_PER_REQUEST: u16 = 16;
/// Deepest proof: a tree over at most 2^24 groups (1 TiB of ciphertext).
pub const MAX_PROOF_LEN: usize = 26;
/// The blob protocol's name: a stream of framed requests, each answered
/// in order by a framed response.
pub const BLOB_PROTOCOL: &str = "/hush/blob/1";
/// The longest request frame (a `BlobRequest` is 51 bytes).
pub const MAX_BLOB_REQUEST_FRAME: usize = 64;
/// The longest response frame: version, tag, count, and the most groups
/// with the deepest proofs.
pub const MAX_BLOB_RESPONSE_FRAME: usize =
    4 + MAX_GROUPS_PER_REQUEST as usize * (8 + 2 + MAX_PROOF_LEN * 32 + 4 + GROUP_LEN as usize);

/// How the sealed bytes were made from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// The file's bytes as they are (media that is compressed already).
    None = 0,
    /// zstd: the sealed bytes are one zstd frame of the file.
    Zstd = 1,
}

/// A file as a message announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileManifest {
    pub root: BlobRoot,
    pub key: FileKey,
    /// The file's own size (what it takes on disk once opened).
    pub size: u64,
    /// How many bytes were sealed: `size` unless compressed.
    pub sealed_len: u64,
    pub compression: Compression,
    /// The name to save it under ([`safe_file_name`] applied on receipt).
    pub name: String,
    /// Its media type (`image/jpeg`), empty if unknown.
    pub mime: String,
    /// For images, a small preview (at most [`MAX_THUMBNAIL_LEN`]).
    pub thumbnail: Option<Vec<u8>>,
}

impl FileManifest {
    /// The ciphertext's length.
    pub fn cipher_len(&self) -> u64 {
        // `decode` checked that it is in range.
        ciphertext_len(self.sealed_len).unwrap_or(u64::MAX)
    }
}

/// `name` as a file name hush writes: its last path component only
/// (`../../.bashrc` → `.bashrc` is refused as hidden → `bashrc`), no
/// control or invisible format characters, no leading dots, at most
/// [`MAX_FILE_NAME_LEN`] bytes; `file` if nothing is left.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !is_unsafe_in_name(*c))
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_owned();
    let mut out = String::new();
    for c in cleaned.chars() {
        if out.len() + c.len_utf8() > MAX_FILE_NAME_LEN {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        "file".to_owned()
    } else {
        out
    }
}

impl Wire for FileManifest {
    const NAME: &'static str = "file manifest";

    fn encode(&self, w: &mut Writer) {
        w.u8(MANIFEST_VERSION);
        w.raw(&self.root.0);
        w.raw(&self.key.0);
        w.u64(self.size);
        w.u64(self.sealed_len);
        w.u8(self.compression as u8);
        w.str(&self.name);
        w.str(&self.mime);
        match &self.thumbnail {
            Some(t) => {
                w.u8(1);
                w.bytes(t);
            }
            None => w.u8(0),
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, MANIFEST_VERSION)?;
        let root = BlobRoot(r.array()?);
        let key = FileKey(r.array()?);
        let size = r.u64()?;
        let sealed_len = r.u64()?;
        let compression = match r.u8()? {
            0 => Compression::None,
            1 => Compression::Zstd,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "compression",
                    tag,
                });
            }
        };
        let invalid = |reason| DecodeError::Invalid {
            what: Self::NAME,
            reason,
        };
        if size > MAX_FILE_LEN || sealed_len > MAX_FILE_LEN {
            return Err(invalid("larger than hush carries"));
        }
        if compression == Compression::None && sealed_len != size {
            return Err(invalid("an uncompressed file is sealed whole"));
        }
        // Names are cut, not refused: a sender's long name is not an attack.
        let name = r.str("file name", 4 * MAX_FILE_NAME_LEN)?;
        let mime = r.str("media type", MAX_MIME_LEN)?.to_owned();
        if !mime
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '\\' && c != '"')
        {
            return Err(invalid("a media type is printable ASCII"));
        }
        let thumbnail = match r.u8()? {
            0 => None,
            1 => Some(r.bytes("thumbnail", MAX_THUMBNAIL_LEN)?.to_vec()),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "thumbnail",
                    tag,
                });
            }
        };
        Ok(Self {
            root,
            key,
            size,
            sealed_len,
            compression,
            name: safe_file_name(name),
            mime,
            thumbnail,
        })
    }
}

/// Groups `first ..first + count` of the blob `root`, whose ciphertext is
/// `len` bytes (the fetcher knows it from the manifest; a source checks it
/// against what it holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRequest {
    pub root: BlobRoot,
    pub len: u64,
    pub first: u64,
    pub count: u16,
}

impl BlobRequest {
    /// Whether the range is within the blob and not too long.
    pub fn check(&self) -> Result<(), BlobError> {
        let total = groups(self.len);
        let end = self.first.saturating_add(u64::from(self.count));
        if self.count == 0 || self.count > MAX_GROUPS_PER_REQUEST || end > total {
            return Err(BlobError::NoSuchGroup {
                index: end.saturating_sub(1),
                groups: total,
            });
        }
        Ok(())
    }
}

impl Wire for BlobRequest {
    const NAME: &'static str = "blob request";

    fn encode(&self, w: &mut Writer) {
        w.u8(BLOB_VERSION);
        w.raw(&self.root.0);
        w.u64(self.len);
        w.u64(self.first);
        w.u16(self.count);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, BLOB_VERSION)?;
        Ok(Self {
            root: BlobRoot(r.array()?),
            len: r.u64()?,
            first: r.u64()?,
            count: r.u16()?,
        })
    }
}

/// One group as a source sends it: its index, its proof, its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobGroup {
    pub index: u64,
    pub proof: Vec<ChainingValue>,
    pub bytes: Vec<u8>,
}

/// Why a source does not serve a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobRefusal {
    /// It does not hold that blob (or not those groups yet).
    NotHere = 0,
    /// The request is malformed or out of range.
    BadRange = 1,
    /// Too many fetches at once: ask again later or elsewhere.
    Busy = 2,
}

/// A source's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobResponse {
    /// The groups asked for, in order (a source may send fewer than asked,
    /// from the first; the fetcher asks again for the rest).
    Groups(Vec<BlobGroup>),
    Refused(BlobRefusal),
}

impl Wire for BlobResponse {
    const NAME: &'static str = "blob response";

    fn encode(&self, w: &mut Writer) {
        w.u8(BLOB_VERSION);
        match self {
            Self::Groups(groups) => {
                w.u8(0);
                w.list(groups, |w, g| {
                    w.u64(g.index);
                    w.list(&g.proof, |w, cv| w.raw(cv));
                    w.bytes(&g.bytes);
                });
            }
            Self::Refused(reason) => {
                w.u8(1);
                w.u8(*reason as u8);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, BLOB_VERSION)?;
        match r.u8()? {
            0 => Ok(Self::Groups(r.list(
                "blob groups",
                usize::from(MAX_GROUPS_PER_REQUEST),
                |r| {
                    Ok(BlobGroup {
                        index: r.u64()?,
                        proof: r.list("proof", MAX_PROOF_LEN, |r| r.array())?,
                        bytes: r.bytes("group", GROUP_LEN as usize)?.to_vec(),
                    })
                },
            )?)),
            1 => Ok(Self::Refused(match r.u8()? {
                0 => BlobRefusal::NotHere,
                1 => BlobRefusal::BadRange,
                2 => BlobRefusal::Busy,
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "blob refusal",
                        tag,
                    });
                }
            })),
            tag => Err(DecodeError::UnknownTag {
                what: Self::NAME,
                tag,
            }),
        }
    }
}

/// The upload protocol: a node hands a relay the blob of a file whose
/// recipient is offline. On one stream: the uploader's [`BlobUpload`], the
/// relay's [`UploadAnswer`], then the groups from `have` on as
/// [`BlobResponse::Groups`] frames, and the relay's last answer once the
/// uploader closed its side.
pub const BLOB_UPLOAD_PROTOCOL: &str = "/hush/blob-up/1";

/// What an uploader offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobUpload {
    pub root: BlobRoot,
    /// The ciphertext's length.
    pub len: u64,
}

impl Wire for BlobUpload {
    const NAME: &'static str = "blob upload";

    fn encode(&self, w: &mut Writer) {
        w.u8(BLOB_VERSION);
        w.raw(&self.root.0);
        w.u64(self.len);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, BLOB_VERSION)?;
        Ok(Self {
            root: BlobRoot(r.array()?),
            len: r.u64()?,
        })
    }
}

/// Why a relay does not take a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadRefusal {
    /// Over what the relay holds for this uploader, or in all.
    Quota = 0,
    /// Larger than any file the relay takes.
    TooLarge = 1,
    /// The relay holds no files.
    Off = 2,
    /// A group did not verify against the root (or came out of order).
    BadGroup = 3,
    /// Too many uploads at once: try again later.
    Busy = 4,
}

/// A relay's answer to an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadAnswer {
    /// Send the groups from `have` on (the relay holds those before it).
    Ready {
        have: u64,
    },
    /// The relay holds the whole blob.
    Stored,
    Refused(UploadRefusal),
}

impl Wire for UploadAnswer {
    const NAME: &'static str = "upload answer";

    fn encode(&self, w: &mut Writer) {
        w.u8(BLOB_VERSION);
        match self {
            Self::Ready { have } => {
                w.u8(0);
                w.u64(*have);
            }
            Self::Stored => w.u8(1),
            Self::Refused(reason) => {
                w.u8(2);
                w.u8(*reason as u8);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, BLOB_VERSION)?;
        match r.u8()? {
            0 => Ok(Self::Ready { have: r.u64()? }),
            1 => Ok(Self::Stored),
            2 => Ok(Self::Refused(match r.u8()? {
                0 => UploadRefusal::Quota,
                1 => UploadRefusal::TooLarge,
                2 => UploadRefusal::Off,
                3 => UploadRefusal::BadGroup,
                4 => UploadRefusal::Busy,
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "upload refusal",
                        tag,
                    });
                }
            })),
            tag => Err(DecodeError::UnknownTag {
                what: Self::NAME,
                tag,
            }),
        }
    }
}

impl std::fmt::Display for UploadRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Quota => "over the relay's quota for files",
            Self::TooLarge => "larger than the relay takes",
            Self::Off => "the relay holds no files",
            Self::BadGroup => "a piece did not match the file's hash",
            Self::Busy => "the relay is busy",
        })
    }
}

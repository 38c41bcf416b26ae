//! Files on this device (issue 16): the disk side lives in
//! [`hush_host::blobs`] (shared with relays, which hold blobs too); here
//! are what the node adds: sizes as people read them, the disk-space check,
//! and the transfers (`transfer`).

use std::io;
use std::path::Path;

pub use hush_host::blobs::{
    BlobSource, FileError, PartialBlob, SealProgress, SealStep, mime_of, remove_partial, seal_file,
    seal_file_with, unique_path,
};
use hush_protocol::blob::{Compression, FileManifest};

/// `bytes` as people read sizes: `1.9 GiB`, `512 KiB`, `17 B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Free bytes for an unprivileged user on the file system holding `path`
/// (or its nearest existing parent).
fn free_space(path: &Path) -> io::Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or_else(|| Path::new("/"));
    let stat = rustix::fs::statvfs(existing)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Whether fetching the file of `manifest` fits: a file sealed as it is
/// is downloaded in place (its plaintext in `blobs`, moved into `folder`
/// at the end), a compressed one as ciphertext in `blobs` and then opened
/// into `folder`; less what is fetched already. The error says what is
/// needed and what is there.
pub fn check_space(folder: &Path, blobs: &Path, manifest: &FileManifest) -> Result<(), String> {
    let same_disk = {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| {
            p.ancestors()
                .find_map(|a| std::fs::metadata(a).ok())
                .map(|m| m.dev())
        };
        dev(folder) == dev(blobs)
    };
    let started = ["part", "plain"]
        .iter()
        .any(|ext| blobs.join(format!("{}.{ext}", manifest.root)).exists());
    let download = match manifest.compression {
        _ if started => 0,
        Compression::None => manifest.size,
        Compression::Zstd => manifest.cipher_len(),
    };
    let opened = match manifest.compression {
        Compression::None if same_disk => 0,
        _ => manifest.size,
    };
    let checks: Vec<(&Path, u64)> = if same_disk {
        vec![(folder, download.saturating_add(opened))]
    } else {
        vec![(blobs, download), (folder, opened)]
    };
    for (path, need) in checks {
        let have = free_space(path)
            .map_err(|e| format!("cannot tell the free space of {}: {e}", path.display()))?;
        if need > have {
            return Err(format!(
                "not enough space on the disk of {}: need {}, have {} (free some, or fetch to another disk with --to)",
                path.display(),
                human_size(need),
                human_size(have)
            ));
        }
    }
    Ok(())
}

/// A small JPEG preview of the photo at `path` (JPEG or PNG), at most
/// [`MAX_THUMBNAIL_LEN`](hush_protocol::blob::MAX_THUMBNAIL_LEN) bytes;
/// `None` for other types, or a picture that does not decode within the
/// limits (decoding is bounded: at most 16384 pixels a side, 512 MiB).
pub fn make_thumbnail(path: &Path, mime: &str) -> Option<Vec<u8>> {
    if !matches!(mime, "image/jpeg" | "image/png") {
        return None;
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(512 << 20);
    let mut reader = image::ImageReader::open(path)
        .ok()?
        .with_guessed_format()
        .ok()?;
    reader.limits(limits);
    let picture = reader.decode().ok()?;
    for (side, quality) in [(160, 60), (120, 50), (96, 40), (64, 30)] {
        let small = picture.thumbnail(side, side).to_rgb8();
        let mut out = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        if small.write_with_encoder(encoder).is_ok()
            && out.len() <= hush_protocol::blob::MAX_THUMBNAIL_LEN
        {
            return Some(out);
        }
    }
    None
}

pub(crate) mod transfer;

pub use transfer::VERIFIED_TARGET;

//! Files a relay holds for offline recipients (issue 16): encrypted blobs
//! uploaded by nodes (`/hush/blob-up/1`), checked group by group against
//! their root as they come, kept under a byte quota per uploader and in
//! total, served to whoever names them (`/hush/blob/1`: the root is a
//! 256-bit name only the file's message carries, and the bytes are
//! useless without the key inside that message), and deleted with the
//! mail's retention. Everything runs in its own tasks, never on the relay's
//! event loop.
//!
//! On disk, in `DATA/blobs/`: `ROOT.part` and `ROOT.have` while an upload
//! is under way (resumed from there), `ROOT.blob` and `ROOT.tree` once
//! whole, and `ROOT.meta` (uploader, length, when it came) for each.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use hush_host::blobs::PartialBlob;
use hush_host::blobs::stream::{
    BLOB_PROTOCOL, BLOB_UPLOAD_PROTOCOL, Grant, read_frame, write_frame,
};
use hush_protocol::Wire;
use hush_protocol::blob::{
    BlobResponse, BlobRoot, BlobUpload, MAX_BLOB_REQUEST_FRAME, MAX_BLOB_RESPONSE_FRAME,
    MAX_FILE_LEN, UploadAnswer, UploadRefusal, VerifiedGroup, ciphertext_len, verify_group,
};
use libp2p::PeerId;
use serde::Deserialize;
use tokio::sync::Semaphore;

/// Uploads taken at once (more are answered `Busy`).
const MAX_UPLOADS: usize = 16;
/// How often expired blobs are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// An upload that sends nothing for this long is dropped (its groups so
/// far stay, for the uploader to resume).
const UPLOAD_IDLE: Duration = Duration::from_secs(60);

/// `[files]` in the relay's config: what it holds for offline recipients.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct FileLimits {
    /// Bytes of files held in all (they count in `quotas.disk_bytes` with
    /// mail and group history); 0 holds no files. Unset: 8 GiB, or four
    /// fifths of `quotas.disk_bytes` if that is less (mail keeps at least a
    /// fifth of the disk budget).
    pub total_bytes: Option<u64>,
    /// Bytes of files one uploader (one device) may have here at once.
    pub per_uploader_bytes: u64,
    /// Bytes of files all uploaders from one IP address may have here at
    /// once (peer ids are free: without this, one machine with many of
    /// them fills `total_bytes`). Uploads from this machine are not
    /// counted by address.
    pub per_ip_bytes: u64,
    /// Files older than this are deleted; the top-level `retention_secs`
    /// if unset.
    pub retention_secs: Option<u64>,
}

/// Files held in all, by default, at most.
pub const DEFAULT_FILES_TOTAL_BYTES: u64 = 8 << 30;

impl FileLimits {
    /// Bytes of files held in all, with a disk budget of `disk_bytes`.
    pub fn total(&self, disk_bytes: u64) -> u64 {
        self.total_bytes
            .unwrap_or_else(|| DEFAULT_FILES_TOTAL_BYTES.min(disk_bytes / 5 * 4))
    }
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            total_bytes: None,
            per_uploader_bytes: 2 << 30,
            per_ip_bytes: 4 << 30,
            retention_secs: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    uploader: PeerId,
    /// The address it came from (none from this machine).
    ip: Option<IpAddr>,
    len: u64,
    created_ms: u64,
    complete: bool,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<BlobRoot, Entry>,
    /// Being uploaded right now (one upload per blob at a time).
    uploading: HashSet<BlobRoot>,
}

/// The blobs this relay holds.
#[derive(Debug)]
pub struct RelayBlobs {
    dir: PathBuf,
    total_bytes: u64,
    per_uploader_bytes: u64,
    per_ip_bytes: u64,
    /// The relay's whole disk budget (`quotas.disk_bytes`): mail, group
    /// history and files together.
    disk_bytes: u64,
    /// Mail and group history on disk (the service keeps it current).
    other_bytes: AtomicU64,
    /// The address each connected peer came from (none from this machine;
    /// the service keeps it current, one entry per connected peer).
    addresses: Mutex<HashMap<PeerId, IpAddr>>,
    retention_ms: u64,
    state: Mutex<State>,
    served: Arc<AtomicU64>,
}

fn now_ms() -> u64 {
    hush_host::now_ms()
}

fn meta_path(dir: &Path, root: &BlobRoot) -> PathBuf {
    dir.join(format!("{root}.meta"))
}

impl RelayBlobs {
    /// The blobs in `dir` (created if need be); `retention_secs` is the
    /// relay's mail retention, used unless `[files]` sets its own.
    pub fn open(
        dir: PathBuf,
        limits: &FileLimits,
        retention_secs: u64,
        disk_bytes: u64,
    ) -> std::io::Result<Arc<Self>> {
        hush_host::create_private_dir(&dir)?;
        let mut entries = HashMap::new();
        for item in std::fs::read_dir(&dir)? {
            let path = item?.path();
            if path.extension().is_none_or(|e| e != "meta") {
                continue;
            }
            match read_meta(&path) {
                Some((root, entry)) => {
                    let whole = dir.join(format!("{root}.blob")).exists();
                    let part = dir.join(format!("{root}.part")).exists();
                    if whole || part {
                        entries.insert(
                            root,
                            Entry {
                                complete: whole,
                                ..entry
                            },
                        );
                        continue;
                    }
                    let _ = std::fs::remove_file(&path);
                }
                None => {
                    tracing::warn!(path = %path.display(), "an unreadable blob record; ignored")
                }
            }
        }
        tracing::info!(blobs = entries.len(), "files held for offline recipients");
        Ok(Arc::new(Self {
            dir,
            total_bytes: limits.total(disk_bytes),
            per_uploader_bytes: limits.per_uploader_bytes,
            per_ip_bytes: limits.per_ip_bytes,
            disk_bytes,
            other_bytes: AtomicU64::new(0),
            addresses: Mutex::new(HashMap::new()),
            retention_ms: limits
                .retention_secs
                .unwrap_or(retention_secs)
                .saturating_mul(1000),
            state: Mutex::new(State {
                entries,
                uploading: HashSet::new(),
            }),
            served: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// Blobs held and their bytes (partial ones counted whole: the space
    /// is taken).
    pub fn stats(&self) -> (u64, u64) {
        self.state.lock().map_or((0, 0), |s| {
            (
                s.entries.len() as u64,
                s.entries.values().map(|e| e.len).sum(),
            )
        })
    }

    /// Bytes of files held (partial ones counted whole).
    pub fn bytes(&self) -> u64 {
        self.stats().1
    }

    /// Mail and group history on disk now: files get what is left of the
    /// disk budget.
    pub fn set_other_bytes(&self, bytes: u64) {
        self.other_bytes.store(bytes, Ordering::Relaxed);
    }

    /// `peer` is connected from `ip` (`None`: from this machine, or gone).
    pub fn set_address(&self, peer: PeerId, ip: Option<IpAddr>) {
        if let Ok(mut a) = self.addresses.lock() {
            match ip {
                Some(ip) => a.insert(peer, ip),
                None => a.remove(&peer),
            };
        }
    }

    fn address_of(&self, peer: &PeerId) -> Option<IpAddr> {
        self.addresses.lock().ok()?.get(peer).copied()
    }

    /// Ciphertext bytes served since the start.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Serves and takes blobs on the swarm's stream behaviour, and deletes
    /// expired ones, until the relay stops.
    pub fn start(self: &Arc<Self>, control: &mut libp2p_stream::Control) {
        match control.accept(BLOB_PROTOCOL) {
            Ok(incoming) => {
                let blobs = self.clone();
                let allow: hush_host::blobs::stream::Allow = Arc::new(move |_peer, root| {
                    let whole = blobs
                        .state
                        .lock()
                        .is_ok_and(|s| s.entries.get(&root).is_some_and(|e| e.complete));
                    Box::pin(async move { whole.then_some(Grant::Sealed) })
                });
                tokio::spawn(hush_host::blobs::stream::serve(
                    incoming,
                    self.dir.clone(),
                    allow,
                    self.served.clone(),
                ));
            }
            Err(e) => tracing::error!(error = %e, "cannot serve files"),
        }
        match control.accept(BLOB_UPLOAD_PROTOCOL) {
            Ok(mut incoming) => {
                let blobs = self.clone();
                tokio::spawn(async move {
                    let slots = Arc::new(Semaphore::new(MAX_UPLOADS));
                    while let Some((peer, mut stream)) = incoming.next().await {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            let busy = UploadAnswer::Refused(UploadRefusal::Busy).to_bytes();
                            tokio::spawn(async move {
                                let _ = write_frame(&mut stream, &busy).await;
                                let _ = stream.close().await;
                            });
                            continue;
                        };
                        let blobs = blobs.clone();
                        tokio::spawn(async move {
                            if let Err(e) = blobs.upload(peer, stream).await {
                                tracing::debug!(%peer, error = %e, "an upload ended");
                            }
                            drop(slot);
                        });
                    }
                });
            }
            Err(e) => tracing::error!(error = %e, "cannot take files"),
        }
        let blobs = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                blobs.sweep(now_ms());
            }
        });
    }

    /// Deletes the blobs older than the retention (not those being
    /// uploaded right now).
    pub fn sweep(&self, now: u64) {
        let expired: Vec<BlobRoot> = match self.state.lock() {
            Ok(mut s) => {
                let old: Vec<BlobRoot> = s
                    .entries
                    .iter()
                    .filter(|(root, e)| {
                        e.created_ms.saturating_add(self.retention_ms) <= now
                            && !s.uploading.contains(*root)
                    })
                    .map(|(root, _)| *root)
                    .collect();
                for root in &old {
                    s.entries.remove(root);
                }
                old
            }
            Err(_) => return,
        };
        if !expired.is_empty() {
            tracing::info!(count = expired.len(), "deleting expired files");
        }
        for root in expired {
            for ext in ["blob", "tree", "part", "have", "meta"] {
                let _ = std::fs::remove_file(self.dir.join(format!("{root}.{ext}")));
            }
        }
    }

    /// Whether `peer` may put `len` more bytes here (over its share or the
    /// total), and the blob reserved for it if so.
    fn reserve(
        &self,
        peer: PeerId,
        ip: Option<IpAddr>,
        offer: &BlobUpload,
    ) -> Result<Reserved, UploadRefusal> {
        if self.total_bytes == 0 {
            return Err(UploadRefusal::Off);
        }
        let most = ciphertext_len(MAX_FILE_LEN).unwrap_or(u64::MAX);
        if offer.len > most || offer.len > self.per_uploader_bytes || offer.len > self.total_bytes {
            return Err(UploadRefusal::TooLarge);
        }
        let mut s = self.state.lock().map_err(|_| UploadRefusal::Busy)?;
        if let Some(e) = s.entries.get(&offer.root) {
            if e.len != offer.len {
                return Err(UploadRefusal::BadGroup);
            }
            if e.complete {
                return Ok(Reserved::Whole);
            }
        } else {
            let total: u64 = s.entries.values().map(|e| e.len).sum();
            let mine: u64 = s
                .entries
                .values()
                .filter(|e| e.uploader == peer)
                .map(|e| e.len)
                .sum();
            let from_ip: u64 = ip.map_or(0, |ip| {
                s.entries
                    .values()
                    .filter(|e| e.ip == Some(ip))
                    .map(|e| e.len)
                    .sum()
            });
            let others = self.other_bytes.load(Ordering::Relaxed);
            if mine.saturating_add(offer.len) > self.per_uploader_bytes
                || (ip.is_some() && from_ip.saturating_add(offer.len) > self.per_ip_bytes)
                || total.saturating_add(offer.len) > self.total_bytes
                || others.saturating_add(total).saturating_add(offer.len) > self.disk_bytes
            {
                return Err(UploadRefusal::Quota);
            }
        }
        if !s.uploading.insert(offer.root) {
            return Err(UploadRefusal::Busy);
        }
        let entry = s.entries.entry(offer.root).or_insert_with(|| Entry {
            uploader: peer,
            ip,
            len: offer.len,
            created_ms: now_ms(),
            complete: false,
        });
        Ok(Reserved::Upload(entry.clone()))
    }

    fn release(&self, root: &BlobRoot, complete: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.uploading.remove(root);
            if let Some(e) = s.entries.get_mut(root) {
                e.complete |= complete;
            }
        }
    }

    /// One upload stream: the offer, the answer, the groups, the end.
    async fn upload(
        self: Arc<Self>,
        peer: PeerId,
        mut stream: libp2p::Stream,
    ) -> std::io::Result<()> {
        let Some(frame) = read_frame(&mut stream, MAX_BLOB_REQUEST_FRAME).await? else {
            return Ok(());
        };
        let Ok(offer) = BlobUpload::from_bytes(&frame) else {
            let answer = UploadAnswer::Refused(UploadRefusal::BadGroup);
            write_frame(&mut stream, &answer.to_bytes()).await?;
            return stream.close().await;
        };
        let ip = self.address_of(&peer);
        let entry = match self.reserve(peer, ip, &offer) {
            Ok(Reserved::Whole) => {
                write_frame(&mut stream, &UploadAnswer::Stored.to_bytes()).await?;
                return stream.close().await;
            }
            Ok(Reserved::Upload(entry)) => entry,
            Err(refusal) => {
                tracing::info!(%peer, root = %offer.root, len = offer.len, %refusal, "an upload refused");
                write_frame(&mut stream, &UploadAnswer::Refused(refusal).to_bytes()).await?;
                return stream.close().await;
            }
        };
        let result = self.take(&mut stream, offer, entry).await;
        let complete = matches!(result, Ok(true));
        self.release(&offer.root, complete);
        if complete {
            tracing::info!(%peer, root = %offer.root, len = offer.len, "a file is held for an offline recipient");
        }
        result.map(|_| ())
    }

    /// Takes the groups of `offer` (after answering where to start);
    /// whether the blob is whole now.
    async fn take(
        &self,
        stream: &mut libp2p::Stream,
        offer: BlobUpload,
        entry: Entry,
    ) -> std::io::Result<bool> {
        let (dir, root, len) = (self.dir.clone(), offer.root, offer.len);
        let meta = meta_path(&self.dir, &root);
        let opened = tokio::task::spawn_blocking(move || {
            write_meta(&meta, &root, &entry)?;
            PartialBlob::open(&dir, root, len).map_err(std::io::Error::other)
        })
        .await
        .map_err(std::io::Error::other)??;
        let mut next = opened.next_missing(1).first().copied().unwrap_or(u64::MAX);
        let mut partial = Some(opened);
        let answer = UploadAnswer::Ready { have: next };
        write_frame(stream, &answer.to_bytes()).await?;
        loop {
            let frame =
                tokio::time::timeout(UPLOAD_IDLE, read_frame(stream, MAX_BLOB_RESPONSE_FRAME))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "upload idle")
                    })??;
            let Some(frame) = frame else { break };
            let groups = match BlobResponse::from_bytes(&frame) {
                Ok(BlobResponse::Groups(groups)) => groups,
                _ => Vec::new(),
            };
            let mut verified = Vec::with_capacity(groups.len());
            for group in groups {
                let hash = (group.index == next)
                    .then(|| verify_group(&root, len, group.index, &group.bytes, &group.proof).ok())
                    .flatten();
                let Some(hash) = hash else {
                    let answer = UploadAnswer::Refused(UploadRefusal::BadGroup);
                    write_frame(stream, &answer.to_bytes()).await?;
                    stream.close().await?;
                    return Ok(false);
                };
                next += 1;
                verified.push(VerifiedGroup {
                    index: group.index,
                    bytes: group.bytes,
                    hash,
                });
            }
            if verified.is_empty() {
                continue;
            }
            let mut p = partial
                .take()
                .ok_or_else(|| std::io::Error::other("lost"))?;
            // Synced every `SYNC_EVERY` bytes and when whole; a relay that
            // crashes checks what it kept when the upload resumes.
            let (p, written) = tokio::task::spawn_blocking(move || {
                let written = verified
                    .iter()
                    .try_for_each(|g| p.write_group(g).map(|_| ()));
                (p, written)
            })
            .await
            .map_err(std::io::Error::other)?;
            written.map_err(std::io::Error::other)?;
            partial = Some(p);
        }
        let p = partial.ok_or_else(|| std::io::Error::other("lost"))?;
        if p.missing() > 0 {
            let have = p.next_missing(1).first().copied().unwrap_or(0);
            write_frame(stream, &UploadAnswer::Ready { have }.to_bytes()).await?;
            stream.close().await?;
            return Ok(false);
        }
        let dir = self.dir.clone();
        let whole = tokio::task::spawn_blocking(move || p.into_source(&dir))
            .await
            .map_err(std::io::Error::other)?;
        let answer = match whole {
            Ok(_) => UploadAnswer::Stored,
            Err(e) => {
                tracing::warn!(%root, error = %e, "an uploaded file could not be kept");
                UploadAnswer::Refused(UploadRefusal::BadGroup)
            }
        };
        // Held whole whether or not the uploader hears it (it may be gone
        // already): what is on disk decides.
        let _ = write_frame(stream, &answer.to_bytes()).await;
        let _ = stream.close().await;
        Ok(answer == UploadAnswer::Stored)
    }
}

enum Reserved {
    /// Held whole already.
    Whole,
    Upload(Entry),
}

fn write_meta(path: &Path, root: &BlobRoot, entry: &Entry) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut text = format!(
        "root={root}\nuploader={}\nlen={}\ncreated_ms={}\n",
        entry.uploader, entry.len, entry.created_ms
    );
    if let Some(ip) = entry.ip {
        text.push_str(&format!("ip={ip}\n"));
    }
    std::fs::write(path, text)
}

fn read_meta(path: &Path) -> Option<(BlobRoot, Entry)> {
    let text = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let root: [u8; 32] = hex::decode(field("root")?).ok()?.try_into().ok()?;
    Some((
        BlobRoot(root),
        Entry {
            uploader: field("uploader")?.parse().ok()?,
            ip: field("ip").and_then(|ip| ip.parse().ok()),
            len: field("len")?.parse().ok()?,
            created_ms: field("created_ms")?.parse().ok()?,
            complete: false,
        },
    ))
}

#[cfg(test)]
mod tests;

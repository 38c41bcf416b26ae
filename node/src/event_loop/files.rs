//! The event loop's side of files (issue 16): file messages out, which
//! downloads run, who may fetch our blobs. The bytes themselves move in
//! their own tasks (`crate::files::transfer`), never on this one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hush_host::blobs::stream::Grant;
use hush_protocol::blob::{BlobRoot, Compression, FileManifest};
use hush_protocol::device::DeviceNotice;
use hush_protocol::{ConversationId, FileOffer, MessageId, Wire};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{After, EventLoop};
use crate::error::NodeError;
use crate::files::transfer::{self, Access, Job, Report};
use crate::node::Reply;
use crate::records::{FileRecord, FileState};
use crate::store::Op;
use crate::view::{Event, FileView, SendReceipt};

/// Downloads running at once; more wait their turn (state `fetching`).
const MAX_DOWNLOADS: usize = 4;
/// A failed upload to a relay is tried again after this long, doubling…
const UPLOAD_RETRY_FIRST: Duration = Duration::from_secs(5);
/// …up to this long between tries…
const UPLOAD_RETRY_MAX: Duration = Duration::from_secs(5 * 60);
/// …this many times, then the sender is told.
const MAX_UPLOAD_ATTEMPTS: u32 = 12;
/// How often sent files are checked for `--keep-sent-days`.
const EXPIRY_EVERY: Duration = Duration::from_secs(10 * 60);

mod uploads;

/// How the node treats files, from [`crate::NodeConfig`].
#[derive(Debug, Clone)]
pub(crate) struct FileConfig {
    /// Files up to this size are fetched as soon as their message arrives.
    pub auto_fetch: u64,
    /// Larger files are refused (sending) and never fetched.
    pub max_file: u64,
    /// A file sent is served this long (from when it was sealed).
    pub keep_sent: Option<Duration>,
    /// `HOME/blobs`: sealed blobs we serve, partial downloads.
    pub blobs: PathBuf,
    /// `HOME/files`: where fetched files are saved.
    pub folder: PathBuf,
}

struct Running {
    conversation: ConversationId,
    task: JoinHandle<()>,
    /// Ciphertext bytes on disk, as last reported.
    done: u64,
}

pub(crate) struct FileHost {
    config: FileConfig,
    control: libp2p_stream::Control,
    access: mpsc::Receiver<Access>,
    reports: mpsc::Receiver<Report>,
    reports_tx: mpsc::Sender<Report>,
    running: HashMap<MessageId, Running>,
    /// Downloads waiting for a slot, oldest first.
    queued: Vec<(ConversationId, MessageId, Option<PathBuf>)>,
    /// Ciphertext bytes served since the start.
    served: Arc<AtomicU64>,
    /// Uploads to our relays that failed, to try again.
    retries: HashMap<(MessageId, PeerId), UploadRetry>,
    /// Uploads not finished (running or to try again), as stored: taken up
    /// again at the next start.
    pending: std::collections::BTreeSet<(MessageId, PeerId)>,
    /// When sent files are next checked for expiry.
    next_expiry: Instant,
}

struct UploadRetry {
    attempts: u32,
    at: Instant,
}

impl FileHost {
    /// Starts serving our blobs on the swarm's stream behaviour.
    pub(crate) fn new(config: FileConfig, mut control: libp2p_stream::Control) -> Self {
        let (access_tx, access) = mpsc::channel(64);
        let served = Arc::new(AtomicU64::new(0));
        match control.accept(transfer::BLOB_PROTOCOL) {
            Ok(incoming) => {
                // Each stream's question goes to the loop, which knows who
                // is in which conversation.
                let allow: hush_host::blobs::stream::Allow = Arc::new(move |peer, root| {
                    let access = access_tx.clone();
                    Box::pin(async move {
                        let (reply, answer) = tokio::sync::oneshot::channel();
                        if access.send(Access { peer, root, reply }).await.is_err() {
                            return None;
                        }
                        answer.await.ok().flatten()
                    })
                });
                let blobs = config.blobs.clone();
                tokio::spawn(hush_host::blobs::stream::serve(
                    incoming,
                    blobs,
                    allow,
                    served.clone(),
                ));
            }
            Err(e) => tracing::error!(error = %e, "cannot serve files"),
        }
        let (reports_tx, reports) = mpsc::channel(256);
        Self {
            config,
            control,
            access,
            reports,
            reports_tx,
            running: HashMap::new(),
            queued: Vec::new(),
            served,
            retries: HashMap::new(),
            pending: std::collections::BTreeSet::new(),
            next_expiry: Instant::now(),
        }
    }

    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// The next question or report for the loop.
    pub(crate) async fn next(&mut self) -> FileEvent {
        tokio::select! {
            Some(access) = self.access.recv() => FileEvent::Access(access),
            Some(report) = self.reports.recv() => FileEvent::Report(report),
            else => std::future::pending().await,
        }
    }

    /// Ciphertext bytes a running download has on disk.
    pub(crate) fn progress(&self, id: &MessageId) -> Option<u64> {
        self.running.get(id).map(|r| r.done)
    }
}

pub(crate) enum FileEvent {
    Access(Access),
    Report(Report),
}

/// The file's bytes fetched so far, from ciphertext bytes.
fn plain_done(manifest: &FileManifest, cipher_done: u64) -> u64 {
    let len = manifest.cipher_len().max(1);
    // Proportional: compression makes the exact figure unknowable before
    // the end.
    u64::try_from(u128::from(cipher_done) * u128::from(manifest.size) / u128::from(len))
        .unwrap_or(manifest.size)
        .min(manifest.size)
}

/// What the user sees of a stored file.
pub(crate) fn file_view(
    id: MessageId,
    record: &FileRecord,
    conversation: String,
    peer: String,
    cipher_done: Option<u64>,
    blobs: &Path,
) -> FileView {
    let manifest = FileManifest::from_bytes(&record.manifest).ok();
    let (name, size, mime, thumbnail) = match &manifest {
        Some(m) => (
            m.name.clone(),
            m.size,
            m.mime.clone(),
            m.thumbnail.is_some(),
        ),
        None => ("file".to_owned(), 0, String::new(), false),
    };
    let done = match (record.state, &manifest) {
        (FileState::Complete | FileState::Shared, _) => size,
        (_, Some(m)) => {
            let cipher = cipher_done.unwrap_or_else(|| {
                hush_host::blobs::fetched_on_disk(blobs, &m.root, m.cipher_len())
            });
            plain_done(m, cipher)
        }
        (_, None) => 0,
    };
    FileView {
        id: id.to_string(),
        name,
        size,
        mime,
        state: record.state,
        done,
        path: record.path.clone(),
        error: record.error.clone(),
        outgoing: record.outgoing,
        conversation,
        peer,
        thumbnail,
    }
}

impl EventLoop {
    pub(super) fn on_file_event(&mut self, event: FileEvent) {
        match event {
            FileEvent::Access(Access { peer, root, reply }) => {
                let _ = reply.send(self.file_grant(&peer, &root));
            }
            FileEvent::Report(report) => self.on_file_report(report),
        }
    }

    /// Whether `peer` may fetch the blob `root`, and from where: a device
    /// of the contact the file was sent to (or came from), of a member of
    /// the group it was sent in, or one of our own devices. A file we sent
    /// is served from its sealed blob; one we received, kept as it came
    /// (sealed as it is), from its plaintext.
    fn file_grant(&self, peer: &PeerId, root: &BlobRoot) -> Option<Grant> {
        let (account, _) = self.engine.contacts.device_by_peer(peer)?;
        let files = self.store.files_with_root(root).ok()?;
        let direct = ConversationId::direct(&self.me.account, &account);
        let may = |conversation: &ConversationId| {
            account == self.me.account
                || *conversation == direct
                || self.engine.groups.groups().any(|g| {
                    g.conversation() == *conversation
                        && g.state().joined().any(|(a, _)| *a == account)
                })
        };
        let mut grant = None;
        for (conversation, _, f) in files.iter() {
            let Ok(m) = FileManifest::from_bytes(&f.manifest) else {
                continue;
            };
            if m.root != *root || !may(conversation) {
                continue;
            }
            if f.outgoing {
                return Some(Grant::Sealed);
            }
            if f.state == FileState::Complete
                && m.compression == Compression::None
                && let Some(path) = &f.path
            {
                grant = Some(Grant::Received {
                    path: PathBuf::from(path),
                    key: m.key.clone(),
                });
            }
        }
        grant
    }

    /// Sends a sealed file (its blob already in `HOME/blobs`) to a contact.
    pub(super) fn send_file(
        &mut self,
        contact: &str,
        offer: FileOffer,
        path: String,
        reply: Reply<SendReceipt>,
    ) {
        let root = offer.manifest.root;
        let result = self.engine.send_file(ctx!(self), contact, offer, path);
        self.drive();
        if let Some(id) = self.reply_sent(contact, result, reply) {
            self.upload_if_offline(contact, id, root);
        }
    }

    /// A file message arrived (its record is in this batch): fetch it once
    /// stored, if it is small enough to fetch by itself.
    pub(super) fn file_arrived(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
        file: &FileRecord,
    ) {
        let Ok(manifest) = FileManifest::from_bytes(&file.manifest) else {
            return;
        };
        if manifest.size <= self.files.config.auto_fetch
            && manifest.size <= self.files.config.max_file
        {
            self.batch.after.push(After::Fetch(conversation, id, None));
        }
    }

    /// The file of a message the engine tells of, as the user sees it; a
    /// file that arrived is fetched (once stored) if small enough.
    pub(super) fn arrived_file(&mut self, notice: &DeviceNotice) -> Option<FileView> {
        let DeviceNotice::Message {
            contact,
            message,
            file: Some(file),
        } = notice
        else {
            return None;
        };
        let account = self.engine.contacts.contact(contact)?.card.account();
        let conversation = ConversationId::direct(&self.me.account, &account);
        if !file.outgoing {
            self.file_arrived(conversation, message.id, file);
        }
        Some(self.view_file(conversation, message.id, file))
    }

    /// Downloads that were running when the node stopped go on.
    pub(super) fn resume_downloads(&mut self) {
        let files = match self.store.files() {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the files to resume their downloads");
                return;
            }
        };
        for (conversation, id, file) in files {
            if file.state == FileState::Fetching {
                let to = file.path.as_ref().map(PathBuf::from);
                self.start_download(conversation, id, to);
            }
        }
    }

    /// `hush file get`: fetch (or resume) the file of message `id`, into
    /// `to` (a folder) or the files folder.
    pub(super) fn file_get(&mut self, id: &str, to: Option<PathBuf>, reply: Reply<FileView>) {
        let result = self.find_file(id).and_then(|(conversation, id, file)| {
            if file.state == FileState::Complete || file.state == FileState::Shared {
                return Ok(self.view_file(conversation, id, &file));
            }
            let manifest = FileManifest::from_bytes(&file.manifest)
                .map_err(|e| NodeError::File(format!("its manifest does not decode: {e}")))?;
            if manifest.size > self.files.config.max_file {
                return Err(NodeError::File(format!(
                    "{} is {}, over this node's limit of {} (--max-file-mib)",
                    manifest.name,
                    crate::files::human_size(manifest.size),
                    crate::files::human_size(self.files.config.max_file)
                )));
            }
            let folder = to
                .clone()
                .unwrap_or_else(|| self.files.config.folder.clone());
            crate::files::check_space(&folder, &self.files.config.blobs, &manifest)
                .map_err(NodeError::File)?;
            self.start_download(conversation, id, to);
            let mut file = file;
            file.state = FileState::Fetching;
            file.error = None;
            Ok(self.view_file(conversation, id, &file))
        });
        let _ = reply.send(result);
    }

    /// `hush file cancel`: stops the download of message `id` and removes
    /// what it fetched; for a file we sent, stops sharing it (its sealed
    /// copy goes: who has not fetched it yet will not get it from here).
    pub(super) fn file_cancel(&mut self, id: &str, reply: Reply<FileView>) {
        let result = self.find_file(id).and_then(|(conversation, id, mut file)| {
            let manifest = FileManifest::from_bytes(&file.manifest).ok();
            if file.state == FileState::Shared {
                let reason = "you stopped sharing it".to_owned();
                return Ok(self.stop_sharing(conversation, id, file, reason));
            }
            if matches!(file.state, FileState::Complete | FileState::Cancelled) {
                return Err(NodeError::File(format!(
                    "file {id} is {}: there is no download to cancel",
                    file.state
                )));
            }
            if let Some(running) = self.files.running.remove(&id) {
                running.task.abort();
            }
            self.files.queued.retain(|(_, q, _)| *q != id);
            if let Some(manifest) = &manifest {
                crate::files::remove_partial(&self.files.config.blobs, &manifest.root);
            }
            file.state = FileState::Cancelled;
            let view = self.store_file(conversation, id, &file);
            self.start_queued();
            Ok(view)
        });
        let _ = reply.send(result);
    }

    /// Stops serving a file we sent: its sealed copy goes, uploads still
    /// to do are dropped, and the record says why.
    fn stop_sharing(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
        mut file: FileRecord,
        reason: String,
    ) -> FileView {
        if let Ok(m) = FileManifest::from_bytes(&file.manifest) {
            hush_host::blobs::remove_sealed(&self.files.config.blobs, &m.root);
        }
        self.files.retries.retain(|(m, _), _| *m != id);
        if self.files.pending.iter().any(|(m, _)| *m == id) {
            self.files.pending.retain(|(m, _)| *m != id);
            self.save_pending_uploads();
        }
        file.state = FileState::Cancelled;
        file.error = Some(reason);
        self.store_file(conversation, id, &file)
    }

    /// What this device holds of a file whose message disappeared: a
    /// download stops, its parts and the sealed copy go, and a received
    /// file this node saved is deleted (a file we sent stays where the
    /// user keeps it).
    pub(super) fn drop_file_of_expired(&mut self, id: MessageId, file: &FileRecord) {
        if let Some(running) = self.files.running.remove(&id) {
            running.task.abort();
        }
        self.files.queued.retain(|(_, q, _)| *q != id);
        self.files.retries.retain(|(m, _), _| *m != id);
        if self.files.pending.iter().any(|(m, _)| *m == id) {
            self.files.pending.retain(|(m, _)| *m != id);
            self.save_pending_uploads();
        }
        if let Ok(m) = FileManifest::from_bytes(&file.manifest) {
            crate::files::remove_partial(&self.files.config.blobs, &m.root);
            hush_host::blobs::remove_sealed(&self.files.config.blobs, &m.root);
        }
        if !file.outgoing
            && file.state == FileState::Complete
            && let Some(path) = &file.path
            && let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "could not delete a received file whose message disappeared");
        }
    }

    /// Files we sent longer ago than `--keep-sent-days` are no longer
    /// served: their sealed copies go (checked every few minutes).
    fn expire_sent(&mut self, now: Instant) {
        let Some(keep) = self.files.config.keep_sent else {
            return;
        };
        if now < self.files.next_expiry {
            return;
        }
        self.files.next_expiry = now + EXPIRY_EVERY;
        let (store, blobs, reports) = (
            self.store.clone(),
            self.files.config.blobs.clone(),
            self.files.reports_tx.clone(),
        );
        // Off the loop: the scan reads and opens every file record and
        // asks the disk each sealed copy's age, which for thousands of
        // files would hold every message behind it.
        tokio::spawn(async move {
            let found = tokio::task::spawn_blocking(move || expired_sent(&store, &blobs, keep));
            match found.await {
                Ok(Ok(ids)) if !ids.is_empty() => {
                    let _ = reports.send(Report::SentExpired(ids)).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not read the files sent, to expire them");
                }
                _ => {}
            }
        });
    }

    /// The files the sweep found expired stop being shared, unless that
    /// changed meanwhile.
    fn sent_expired(&mut self, ids: Vec<MessageId>) {
        let Some(keep) = self.files.config.keep_sent else {
            return;
        };
        let days = keep.as_secs() / (24 * 3600);
        for id in ids {
            let Ok(Some((conversation, file))) = self.store.file_by_id(id) else {
                continue;
            };
            if !file.outgoing || file.state != FileState::Shared {
                continue;
            }
            tracing::info!(%id, days, "a file sent is no longer shared");
            let reason =
                format!("no longer shared: sent more than {days} days ago (--keep-sent-days)");
            self.stop_sharing(conversation, id, file, reason);
        }
    }

    /// The stored file of the message whose id is `id`.
    fn find_file(&self, id: &str) -> Result<(ConversationId, MessageId, FileRecord), NodeError> {
        let wanted: MessageId = id.parse().map_err(|_| {
            NodeError::File(format!("{id:?} is not a file id (see `hush file list`)"))
        })?;
        self.store
            .file_by_id(wanted)?
            .map(|(conversation, file)| (conversation, wanted, file))
            .ok_or_else(|| NodeError::File(format!("no file with id {id} (see `hush file list`)")))
    }

    /// Starts (or queues) the download of the file of message `id`.
    pub(super) fn start_download(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
        to: Option<PathBuf>,
    ) {
        if self.files.running.contains_key(&id)
            || self.files.queued.iter().any(|(_, q, _)| *q == id)
        {
            return;
        }
        let Ok(Some(mut file)) = self.store.file(&conversation, id) else {
            return;
        };
        let Ok(manifest) = FileManifest::from_bytes(&file.manifest) else {
            return;
        };
        if file.state != FileState::Fetching || to.is_some() {
            file.state = FileState::Fetching;
            file.error = None;
            if let Some(to) = &to {
                file.path = Some(to.display().to_string());
            }
            self.batch
                .ops
                .push(Op::PutFile(conversation, id, file.clone()));
        }
        if self.files.running.len() >= MAX_DOWNLOADS {
            self.files.queued.push((conversation, id, to));
            return;
        }
        let owner = self
            .engine
            .contacts
            .of_device(&file.source)
            .map(|(account, _)| {
                if account == self.me.account {
                    "your own device".to_owned()
                } else {
                    format!("{}'s device", self.member_name(&account))
                }
            })
            .unwrap_or_else(|| "the device".to_owned());
        let mut sources: Vec<(PeerId, String)> = self
            .engine
            .contacts
            .peer_of(&file.source)
            .map(|peer| (peer, format!("{owner} {}", file.source)))
            .into_iter()
            .collect();
        // The sender's home relays hold it when we were offline as it was
        // sent (ours, for a file another device of ours sent).
        for (peer, addr) in self.relays_of(&file.source) {
            self.swarm.add_peer_address(peer, addr.clone());
            sources.push((peer, format!("the relay {addr}")));
        }
        // Whoever else may hold it and is connected now: the group's other
        // members' devices and our own other devices (each serves what it
        // received, if it was sealed as it is). All are asked at once.
        let mut accounts = vec![self.me.account];
        if let Some(group) = self
            .engine
            .groups
            .groups()
            .find(|g| g.conversation() == conversation)
        {
            accounts.extend(group.state().joined().map(|(a, _)| *a));
        }
        let me = *self.swarm.local_peer_id();
        for account in accounts {
            for (device, peer) in self.engine.contacts.devices_of(&account) {
                if device == file.source
                    || peer == me
                    || !self.swarm.is_connected(&peer)
                    || sources.iter().any(|(p, _)| *p == peer)
                {
                    continue;
                }
                let whose = if account == self.me.account {
                    "your own device".to_owned()
                } else {
                    format!("{}'s device", self.member_name(&account))
                };
                sources.push((peer, format!("{whose} {device}")));
            }
        }
        // Dial the sender first if need be: the stream finds the connection.
        if let Some((peer, addresses, _)) = self.device_route(&file.source)
            && !self.swarm.is_connected(&peer)
        {
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(addresses)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "could not dial a file's sender");
            }
        }
        let folder = to.unwrap_or_else(|| self.files.config.folder.clone());
        let job = Job {
            id,
            manifest,
            sources,
            blobs: self.files.config.blobs.clone(),
            folder,
        };
        let task = tokio::spawn(transfer::download(
            self.files.control.clone(),
            job,
            self.files.reports_tx.clone(),
        ));
        self.files.running.insert(
            id,
            Running {
                conversation,
                task,
                done: 0,
            },
        );
        let view = self.view_file(conversation, id, &file);
        self.batch
            .after
            .push(After::Emit(Box::new(Event::File { file: view })));
    }

    /// The home relays of the account of `device` (its card's, or ours).
    fn relays_of(&self, device: &hush_protocol::DeviceId) -> Vec<(PeerId, libp2p::Multiaddr)> {
        let Some((account, _)) = self.engine.contacts.of_device(device) else {
            return Vec::new();
        };
        if account == self.me.account {
            return self
                .home
                .iter()
                .filter(|r| !r.retired)
                .map(|r| (r.peer, r.addr.clone()))
                .collect();
        }
        self.engine
            .contacts
            .known(&account)
            .map(|c| {
                c.card
                    .relays
                    .iter()
                    .filter_map(|a| a.parse::<libp2p::Multiaddr>().ok())
                    .filter_map(|a| Some((crate::network::peer_in(&a)?, a)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn start_queued(&mut self) {
        while self.files.running.len() < MAX_DOWNLOADS && !self.files.queued.is_empty() {
            let (conversation, id, to) = self.files.queued.remove(0);
            self.start_download(conversation, id, to);
        }
    }

    fn on_file_report(&mut self, report: Report) {
        match report {
            Report::Progress { id, done } => {
                let Some(running) = self.files.running.get_mut(&id) else {
                    return;
                };
                running.done = done;
                let conversation = running.conversation;
                if let Ok(Some(file)) = self.store.file(&conversation, id) {
                    let view = self.view_file(conversation, id, &file);
                    self.events.send(Event::File { file: view });
                }
            }
            Report::Done { id, path } => {
                self.download_ended(id, Ok(path));
            }
            Report::Failed { id, error } => {
                tracing::warn!(%id, %error, "a file download failed");
                self.download_ended(id, Err(error));
            }
            Report::Uploaded { id, relay, outcome } => self.upload_ended(id, relay, outcome),
            Report::SentExpired(ids) => self.sent_expired(ids),
        }
    }

    /// Stores the file record with the batch and tells subscribers once
    /// it is on disk; returns what they are told.
    fn store_file(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
        file: &FileRecord,
    ) -> FileView {
        self.batch
            .ops
            .push(Op::PutFile(conversation, id, file.clone()));
        let view = self.view_file(conversation, id, file);
        self.batch
            .after
            .push(After::Emit(Box::new(Event::File { file: view.clone() })));
        view
    }

    fn download_ended(&mut self, id: MessageId, outcome: Result<PathBuf, String>) {
        let Some(running) = self.files.running.remove(&id) else {
            return;
        };
        let conversation = running.conversation;
        if let Ok(Some(mut file)) = self.store.file(&conversation, id) {
            match outcome {
                Ok(path) => {
                    file.state = FileState::Complete;
                    file.path = Some(path.display().to_string());
                    file.error = None;
                }
                Err(error) => {
                    file.state = FileState::Failed;
                    file.error = Some(error);
                }
            }
            self.store_file(conversation, id, &file);
        }
        self.start_queued();
    }

    /// The view of a file of ours, named as the user knows its
    /// conversation (a contact or a group) and its sender.
    pub(super) fn view_file(
        &self,
        conversation: ConversationId,
        id: MessageId,
        file: &FileRecord,
    ) -> FileView {
        let group = self
            .engine
            .groups
            .groups()
            .find(|g| g.conversation() == conversation);
        let (name, sender) = match group {
            Some(g) => {
                let sender = self
                    .engine
                    .contacts
                    .of_device(&file.source)
                    .map(|(account, _)| self.member_name(&account))
                    .unwrap_or_default();
                (g.state().name.clone(), sender)
            }
            None => {
                let contact = self
                    .engine
                    .contacts
                    .contacts()
                    .find(|c| {
                        ConversationId::direct(&self.me.account, &c.card.account()) == conversation
                    })
                    .map(|c| c.record.name.clone())
                    .unwrap_or_default();
                (contact.clone(), contact)
            }
        };
        let peer = if file.outgoing {
            self.me.name.clone()
        } else {
            sender
        };
        let done = self.files.progress(&id);
        file_view(id, file, name, peer, done, &self.files.config.blobs)
    }
}

/// The files we sent, still shared, whose sealed copies in `blobs` are at
/// least `keep` old (run on a blocking thread).
fn expired_sent(
    store: &crate::store::Store,
    blobs: &std::path::Path,
    keep: Duration,
) -> Result<Vec<MessageId>, crate::store::StoreError> {
    Ok(store
        .files()?
        .into_iter()
        .filter(|(_, _, f)| f.outgoing && f.state == FileState::Shared)
        .filter(|(_, _, f)| {
            FileManifest::from_bytes(&f.manifest)
                .ok()
                .and_then(|m| hush_host::blobs::sealed_age(blobs, &m.root))
                .is_some_and(|age| age >= keep)
        })
        .map(|(_, id, _)| id)
        .collect())
}

//! `/hush/blob/1` on raw libp2p streams (`libp2p-stream`): file bytes
//! never pass through the event loop. The loop only answers who may fetch
//! what ([`Access`]) and hears how downloads go ([`Report`]).
//!
//! On a stream, the fetcher writes framed [`BlobRequest`]s (`u32`
//! big-endian length ‖ frame) and the source answers each, in order, with a
//! framed [`BlobResponse`]; the fetcher keeps up to
//! [`MAX_IN_FLIGHT_PER_SOURCE`] requests outstanding per source (1 MiB
//! each), so memory stays bounded whatever the file's size.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use hush_protocol::blob::{
    BlobError, BlobGroup, BlobRequest, BlobResponse, BlobRoot, Fetched, Fetcher, FileManifest,
    MAX_BLOB_RESPONSE_FRAME, MAX_IN_FLIGHT_PER_SOURCE, RequestId, accept_group, groups,
};
use hush_protocol::{MessageId, Wire};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use super::{FileError, PartialBlob};

pub use hush_host::blobs::stream::BLOB_PROTOCOL;
use hush_host::blobs::stream::{read_frame, write_frame};
/// A source that leaves a request unanswered this long is dropped.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening a stream (dialing, if need be) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a download reports its progress, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often a download with nothing to do looks again (a source backed
/// off may be asked again).
const IDLE_WAKE: Duration = Duration::from_millis(250);
/// A download whose every source lacks the file asks them again after
/// this long (a relay may be receiving it, a sender may be back).
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(30);

/// The event loop is asked whether `peer` may fetch the blob `root`.
#[derive(Debug)]
pub(crate) struct Access {
    pub peer: PeerId,
    pub root: BlobRoot,
    pub reply: oneshot::Sender<Option<hush_host::blobs::stream::Grant>>,
}

/// What a download tells the event loop.
#[derive(Debug)]
pub(crate) enum Report {
    /// Ciphertext bytes verified and on disk so far.
    Progress { id: MessageId, done: u64 },
    /// Complete: opened at `path`.
    Done { id: MessageId, path: PathBuf },
    /// Given up: why (the sources named when they lied).
    Failed { id: MessageId, error: String },
    /// An upload to one of our relays ended.
    Uploaded {
        id: MessageId,
        relay: PeerId,
        outcome: Result<(), UploadError>,
    },
    /// Files we sent whose sealed copies are older than `--keep-sent-days`
    /// (found off the loop; the loop checks each again).
    SentExpired(Vec<MessageId>),
}

/// A download the loop starts.
#[derive(Debug)]
pub(crate) struct Job {
    pub id: MessageId,
    pub manifest: FileManifest,
    /// Where to fetch from, with the name errors give each (`alice's
    /// device 1a2b3c4d`).
    pub sources: Vec<(PeerId, String)>,
    /// `HOME/blobs`: where the partial ciphertext lives.
    pub blobs: PathBuf,
    /// The folder the opened file goes into.
    pub folder: PathBuf,
}

/// What a source's link tells its download.
enum LinkEvent {
    Response {
        id: RequestId,
        frame: Vec<u8>,
    },
    /// The stream failed or could not be opened: what is in flight to
    /// `peer` failed.
    Failed {
        peer: PeerId,
        error: String,
    },
}

/// One stream to a source: requests go out as the download hands them
/// over; responses come back in order.
fn spawn_link(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    events: mpsc::Sender<LinkEvent>,
) -> mpsc::Sender<(RequestId, BlobRequest)> {
    let (requests, mut requests_rx) =
        mpsc::channel::<(RequestId, BlobRequest)>(MAX_IN_FLIGHT_PER_SOURCE);
    tokio::spawn(async move {
        let stream = match tokio::time::timeout(
            OPEN_TIMEOUT,
            control.open_stream(peer, BLOB_PROTOCOL),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                let error = e.to_string();
                let _ = events.send(LinkEvent::Failed { peer, error }).await;
                return;
            }
            Err(_) => {
                let error = "timed out opening a stream".to_owned();
                let _ = events.send(LinkEvent::Failed { peer, error }).await;
                return;
            }
        };
        let (mut reader, mut writer) = stream.split();
        let outstanding: Arc<Mutex<std::collections::VecDeque<RequestId>>> = Arc::default();
        // One token per request written (at most the requests in flight).
        let (sent_tx, mut sent_rx) = mpsc::channel::<()>(MAX_IN_FLIGHT_PER_SOURCE);
        let write_side = {
            let outstanding = outstanding.clone();
            async move {
                while let Some((id, request)) = requests_rx.recv().await {
                    write_frame(&mut writer, &request.to_bytes()).await?;
                    if let Ok(mut o) = outstanding.lock() {
                        o.push_back(id);
                    }
                    let _ = sent_tx.send(()).await;
                }
                // The download is done with this source.
                writer.close().await
            }
        };
        let read_events = events.clone();
        let read_side = async move {
            while sent_rx.recv().await.is_some() {
                let frame = tokio::time::timeout(
                    RESPONSE_TIMEOUT,
                    read_frame(&mut reader, MAX_BLOB_RESPONSE_FRAME),
                )
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "the source closed the stream")
                })?;
                let Some(id) = outstanding.lock().ok().and_then(|mut o| o.pop_front()) else {
                    break;
                };
                if read_events
                    .send(LinkEvent::Response { id, frame })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Ok::<(), io::Error>(())
        };
        let result = futures::future::try_join(write_side, read_side).await;
        if let Err(e) = result {
            let error = e.to_string();
            let _ = events.send(LinkEvent::Failed { peer, error }).await;
        }
    });
    requests
}

/// Where a download's groups are checked and stored, as each proves
/// itself, one at a time: on a blocking thread of its own, so fetching goes
/// on meanwhile, and so what was verified is on disk a group later (a
/// `kill -9` costs at most the group being stored).
struct Writer {
    tx: mpsc::Sender<(RequestId, BlobRequest, Vec<BlobGroup>)>,
    task: tokio::task::JoinHandle<Result<PartialBlob, FileError>>,
}

/// Responses (each up to 1 MiB) waiting to be checked and stored.
const WRITE_QUEUE: usize = 4;

/// The tracing target of a line per group verified (`verified`: the
/// download's ciphertext bytes verified so far, this run): `hush bench
/// file` reads it to tell what a kill cost.
pub const VERIFIED_TARGET: &str = "hush_node::files::verified";

/// How far the groups of one response went.
struct Checked {
    id: RequestId,
    /// Groups stored, from the request's first.
    stored: usize,
    /// Why the next one was refused (its source lied).
    lie: Option<BlobError>,
}

/// Room for the writer's reports. The download reads them before anything
/// else (`biased`), so it hands over a response only with none unread;
/// while it waits for room in the queue the writer can report at most the
/// [`WRITE_QUEUE`] queued, the one it was storing and the one handed over.
/// The writer therefore never waits on a full report channel while the
/// download waits on a full queue.
const CHECKED_ROOM: usize = WRITE_QUEUE * 2 + 2;

fn spawn_writer(
    mut partial: PartialBlob,
    checked: mpsc::Sender<Checked>,
) -> (Writer, tokio::sync::watch::Receiver<u64>) {
    let (tx, mut rx) = mpsc::channel::<(RequestId, BlobRequest, Vec<BlobGroup>)>(WRITE_QUEUE);
    let (missing_tx, missing) = tokio::sync::watch::channel(partial.missing());
    let root = partial.root();
    let task = tokio::task::spawn_blocking(move || {
        let mut verified: u64 = 0;
        while let Some((id, request, groups)) = rx.blocking_recv() {
            let mut stored = 0;
            let mut lie = None;
            for (position, group) in groups.into_iter().enumerate() {
                match accept_group(&request, position, group) {
                    Ok(group) => {
                        verified += group.bytes.len() as u64;
                        tracing::trace!(target: VERIFIED_TARGET, %root, verified, "group verified");
                        partial.write_group(&group)?;
                        stored += 1;
                    }
                    Err(e) => {
                        lie = Some(e);
                        break;
                    }
                }
            }
            let _ = missing_tx.send(partial.missing());
            if checked.blocking_send(Checked { id, stored, lie }).is_err() {
                break;
            }
        }
        partial.sync()?;
        Ok(partial)
    });
    (Writer { tx, task }, missing)
}

impl Writer {
    /// Waits until everything sent is on disk.
    async fn finish(self) -> Result<PartialBlob, String> {
        drop(self.tx);
        match self.task.await {
            Ok(Ok(partial)) => Ok(partial),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the file writer stopped: {e}")),
        }
    }
}

fn now_ms(start: tokio::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Fetches the blob of `job` from its sources (resuming what is on disk),
/// opens it into its folder, and reports how it goes. Cancelled by
/// aborting its task: what is on disk stays consistent.
pub(crate) async fn download(
    control: libp2p_stream::Control,
    job: Job,
    report: mpsc::Sender<Report>,
) {
    let id = job.id;
    let outcome = fetch(control, job, &report).await;
    let message = match outcome {
        Ok(path) => Report::Done { id, path },
        Err(error) => Report::Failed { id, error },
    };
    let _ = report.send(message).await;
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the file task stopped: {e}")),
    }
}

async fn fetch(
    control: libp2p_stream::Control,
    job: Job,
    report: &mpsc::Sender<Report>,
) -> Result<PathBuf, String> {
    let Job {
        id: job_id,
        manifest,
        sources,
        blobs,
        folder,
    } = job;
    let root = manifest.root;
    let len = manifest.cipher_len();
    let dir = blobs.clone();
    let opening = manifest.clone();
    let partial = blocking(move || PartialBlob::for_manifest(&dir, &opening)).await?;
    let missing = partial.next_missing(usize::MAX);
    let (checked_tx, mut checked) = mpsc::channel(CHECKED_ROOM);
    let (writer, written) = spawn_writer(partial, checked_tx);
    let mut fetcher: Fetcher<PeerId> = Fetcher::new(root, len, missing);
    for (source, _) in &sources {
        fetcher.add_source(*source);
    }
    let name_of = |peer: &PeerId| {
        sources
            .iter()
            .find(|(p, _)| p == peer)
            .map_or_else(|| peer.to_string(), |(_, name)| name.clone())
    };
    let start = tokio::time::Instant::now();
    let (events_tx, mut events) = mpsc::channel(MAX_IN_FLIGHT_PER_SOURCE * 4);
    let mut links: HashMap<PeerId, mpsc::Sender<(RequestId, BlobRequest)>> = HashMap::new();
    let mut in_flight: HashMap<RequestId, PeerId> = HashMap::new();
    let mut last_progress = tokio::time::Instant::now();
    let mut last_good = tokio::time::Instant::now();
    let mut lies: Vec<String> = Vec::new();
    let total = groups(len);
    let mut handover_time = Duration::ZERO;
    while !fetcher.is_done() {
        while let Some((request_id, peer, request)) = fetcher.poll_request(now_ms(start)) {
            let link = links
                .entry(peer)
                .or_insert_with(|| spawn_link(control.clone(), peer, events_tx.clone()));
            if link.try_send((request_id, request)).is_err() {
                links.remove(&peer);
                fetcher.on_failure(now_ms(start), request_id);
                break;
            }
            in_flight.insert(request_id, peer);
        }
        if fetcher.is_stalled() {
            if fetcher.all_lied() {
                let mut error = format!("no source has the file ({} asked)", sources.len());
                if !lies.is_empty() {
                    error = format!("{error}; {}", lies.join("; "));
                }
                return Err(error);
            }
            // Those that do not lie lack it for now: ask again later. A
            // source that cannot be reached is backed off, not given up:
            // the download waits for the sender (`hush file cancel` ends it).
            if last_good.elapsed() >= ASK_AGAIN_AFTER {
                fetcher.ask_again();
                last_good = tokio::time::Instant::now();
            }
        }
        let event = tokio::select! {
            biased;
            Some(done) = checked.recv() => Some(Err(done)),
            event = events.recv() => event.map(Ok),
            () = tokio::time::sleep(IDLE_WAKE) => None,
        };
        let Some(event) = event else {
            continue;
        };
        match event {
            Err(Checked { id, stored, lie }) => {
                if stored > 0 {
                    last_good = tokio::time::Instant::now();
                }
                let liar = fetcher.on_checked(now_ms(start), id, stored, lie.as_ref());
                if let (Some(source), Some(error)) = (liar, lie) {
                    tracing::warn!(%source, %root, error = %error, "a source sent bytes that do not verify; asking others");
                    if lies.len() < 4 {
                        lies.push(format!(
                            "{} sent bytes that do not match the file's hash ({error}): nothing of them was kept",
                            name_of(&source)
                        ));
                    }
                    links.remove(&source);
                }
                if last_progress.elapsed() >= PROGRESS_EVERY {
                    last_progress = tokio::time::Instant::now();
                    let done = total - *written.borrow();
                    let done = (done * hush_protocol::blob::GROUP_LEN).min(len);
                    let _ = report.try_send(Report::Progress { id: job_id, done });
                }
            }
            Ok(LinkEvent::Response {
                id: request_id,
                frame,
            }) => {
                in_flight.remove(&request_id);
                // A frame that does not parse is a group that does not
                // verify: the source is marked bad.
                let response =
                    BlobResponse::from_bytes(&frame).unwrap_or(BlobResponse::Groups(vec![
                        hush_protocol::blob::BlobGroup {
                            index: u64::MAX,
                            proof: Vec::new(),
                            bytes: Vec::new(),
                        },
                    ]));
                if let Fetched::Check { request, groups } =
                    fetcher.on_response(now_ms(start), request_id, response)
                {
                    let handing = tokio::time::Instant::now();
                    // Waits only when the writer is a few responses behind.
                    if writer.tx.send((request_id, request, groups)).await.is_err() {
                        return Err(writer
                            .finish()
                            .await
                            .err()
                            .unwrap_or_else(|| "the file writer stopped".to_owned()));
                    }
                    handover_time += handing.elapsed();
                }
            }
            Ok(LinkEvent::Failed { peer, error }) => {
                tracing::debug!(%peer, %root, %error, "a blob source failed");
                links.remove(&peer);
                let failed: Vec<RequestId> = in_flight
                    .iter()
                    .filter(|(_, p)| **p == peer)
                    .map(|(r, _)| *r)
                    .collect();
                for request_id in failed {
                    in_flight.remove(&request_id);
                    fetcher.on_failure(now_ms(start), request_id);
                }
            }
        }
    }
    drop(links);
    let partial = writer.finish().await?;
    let fetched_in = start.elapsed();
    let opening = tokio::time::Instant::now();
    let path = blocking(move || partial.open_into(&manifest, &folder)).await?;
    tracing::info!(
        %root,
        fetch_ms = fetched_in.as_millis() as u64,
        // Waiting for the writer (checking, decrypting, storing) to catch up.
        writer_wait_ms = handover_time.as_millis() as u64,
        open_ms = opening.elapsed().as_millis() as u64,
        "file fetched"
    );
    Ok(path)
}

/// Why an upload to a relay did not end with the relay holding the file.
#[derive(Debug)]
pub(crate) enum UploadError {
    /// The relay said no (its quota, the file's size, no files held).
    Refused(hush_protocol::blob::UploadRefusal),
    /// The stream or the disk failed: worth trying again later.
    Failed(String),
}

/// Hands the blob `root` (held whole in `blobs`) to `relay`, from where
/// the relay's copy stops (an interrupted upload resumes).
pub(crate) async fn upload(
    mut control: libp2p_stream::Control,
    relay: PeerId,
    root: BlobRoot,
    blobs: PathBuf,
) -> Result<(), UploadError> {
    use hush_host::blobs::BlobSource;
    use hush_host::blobs::stream::BLOB_UPLOAD_PROTOCOL;
    use hush_protocol::blob::{BlobUpload, MAX_GROUPS_PER_REQUEST, UploadAnswer};
    let failed = |e: &dyn std::fmt::Display| UploadError::Failed(e.to_string());
    let source = tokio::task::spawn_blocking(move || BlobSource::open(&blobs, &root))
        .await
        .map_err(|e| failed(&e))?
        .map_err(|e| failed(&e))?
        .ok_or_else(|| UploadError::Failed("the file's blob is gone from this device".into()))?;
    let source = Arc::new(source);
    let len = source.len();
    let mut stream = tokio::time::timeout(
        OPEN_TIMEOUT,
        control.open_stream(relay, BLOB_UPLOAD_PROTOCOL),
    )
    .await
    .map_err(|_| UploadError::Failed("timed out opening a stream to the relay".into()))?
    .map_err(|e| failed(&e))?;
    tracing::debug!(%relay, %root, "an upload's stream is open");
    let answer = |frame: Option<Vec<u8>>| -> Result<UploadAnswer, UploadError> {
        let frame =
            frame.ok_or_else(|| UploadError::Failed("the relay closed the stream".into()))?;
        UploadAnswer::from_bytes(&frame).map_err(|e| failed(&e))
    };
    write_frame(&mut stream, &BlobUpload { root, len }.to_bytes())
        .await
        .map_err(|e| failed(&e))?;
    tracing::debug!(%relay, %root, "an upload's offer is sent");
    let frame = tokio::time::timeout(
        RESPONSE_TIMEOUT,
        read_frame(&mut stream, MAX_BLOB_RESPONSE_FRAME),
    )
    .await
    .map_err(|_| UploadError::Failed("the relay did not answer".into()))?
    .map_err(|e| failed(&e))?;
    tracing::debug!(%relay, %root, "an upload's offer is answered");
    let have = match answer(frame)? {
        UploadAnswer::Stored => return Ok(()),
        UploadAnswer::Refused(reason) => return Err(UploadError::Refused(reason)),
        UploadAnswer::Ready { have } => have,
    };
    let total = groups(len);
    let mut first = have;
    while first < total {
        let count = (total - first).min(u64::from(MAX_GROUPS_PER_REQUEST)) as u16;
        let request = BlobRequest {
            root,
            len,
            first,
            count,
        };
        let s = source.clone();
        let response = tokio::task::spawn_blocking(move || s.serve(&request))
            .await
            .map_err(|e| failed(&e))?;
        if !matches!(response, BlobResponse::Groups(_)) {
            return Err(UploadError::Failed("the file's blob cannot be read".into()));
        }
        write_frame(&mut stream, &response.to_bytes())
            .await
            .map_err(|e| failed(&e))?;
        first += u64::from(count);
    }
    stream.close().await.map_err(|e| failed(&e))?;
    let frame = tokio::time::timeout(
        RESPONSE_TIMEOUT,
        read_frame(&mut stream, MAX_BLOB_RESPONSE_FRAME),
    )
    .await
    .map_err(|_| UploadError::Failed("the relay did not confirm".into()))?
    .map_err(|e| failed(&e))?;
    match answer(frame)? {
        UploadAnswer::Stored => Ok(()),
        UploadAnswer::Refused(reason) => Err(UploadError::Refused(reason)),
        UploadAnswer::Ready { have } => Err(UploadError::Failed(format!(
            "the relay holds {have} of {total} pieces"
        ))),
    }
}

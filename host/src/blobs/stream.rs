//! `/hush/blob/1` served on raw libp2p streams (`libp2p-stream`), by nodes
//! and relays: framed [`BlobRequest`]s in, framed [`BlobResponse`]s out, in
//! order. Who may fetch which blob is the caller's to say ([`Allow`]);
//! file bytes never pass through an event loop.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use hush_protocol::Wire;
use hush_protocol::blob::{
    BlobRefusal, BlobRequest, BlobResponse, BlobRoot, FileKey, MAX_BLOB_REQUEST_FRAME,
};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::Semaphore;

use super::BlobSource;

pub const BLOB_PROTOCOL: StreamProtocol = StreamProtocol::new(hush_protocol::blob::BLOB_PROTOCOL);
pub const BLOB_UPLOAD_PROTOCOL: StreamProtocol =
    StreamProtocol::new(hush_protocol::blob::BLOB_UPLOAD_PROTOCOL);
/// Streams served at once (more are reset).
pub const MAX_SERVING_STREAMS: usize = 32;
/// Blobs one served stream may ask for (each opened once).
pub const MAX_ROOTS_PER_STREAM: usize = 4;

/// Where a blob that may be served is.
#[derive(Debug, Clone)]
pub enum Grant {
    /// Sealed whole in the blobs folder (`ROOT.blob`, `ROOT.tree`).
    Sealed,
    /// A file received here and kept as it came: its plaintext at `path`,
    /// sealed again group by group with `key` as it is served (checked
    /// against the group hashes kept in `ROOT.tree`; a file changed since
    /// serves nothing).
    Received { path: PathBuf, key: FileKey },
}

/// Whether `peer` may fetch the blob `root`, and from where (asked once
/// per stream and blob). Not allowed looks the same to the peer as not
/// held.
pub type Allow = Arc<dyn Fn(PeerId, BlobRoot) -> BoxFuture<'static, Option<Grant>> + Send + Sync>;

/// Reads one frame (`u32` big-endian length ‖ bytes, at most `max`);
/// `None` at a clean end of the stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes, over the limit of {max}"),
        ));
    }
    let mut frame = vec![0u8; len];
    r.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

/// Writes one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(frame).await?;
    w.flush().await
}

/// Serves the blobs held whole in `blobs` to whoever `allow` lets fetch
/// them, until `incoming` ends; `served` counts the ciphertext bytes sent.
pub async fn serve(
    mut incoming: libp2p_stream::IncomingStreams,
    blobs: PathBuf,
    allow: Allow,
    served: Arc<AtomicU64>,
) {
    let slots = Arc::new(Semaphore::new(MAX_SERVING_STREAMS));
    while let Some((peer, stream)) = incoming.next().await {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many blob streams; one reset");
            continue;
        };
        let (blobs, allow, served) = (blobs.clone(), allow.clone(), served.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_stream(peer, stream, blobs, allow, &served).await {
                tracing::debug!(%peer, error = %e, "a blob stream ended");
            }
            drop(slot);
        });
    }
}

async fn serve_stream(
    peer: PeerId,
    mut stream: libp2p::Stream,
    blobs: PathBuf,
    allow: Allow,
    served: &AtomicU64,
) -> io::Result<()> {
    // Allowed and opened blobs of this stream (`None`: refused).
    let mut open: HashMap<BlobRoot, Option<Arc<BlobSource>>> = HashMap::new();
    while let Some(frame) = read_frame(&mut stream, MAX_BLOB_REQUEST_FRAME).await? {
        let response = match BlobRequest::from_bytes(&frame) {
            Err(_) => BlobResponse::Refused(BlobRefusal::BadRange),
            Ok(request) => {
                let source = match open.get(&request.root) {
                    Some(source) => source.clone(),
                    None if open.len() >= MAX_ROOTS_PER_STREAM => None,
                    None => {
                        let source = allowed_source(peer, request.root, &blobs, &allow).await;
                        open.insert(request.root, source.clone());
                        source
                    }
                };
                match source {
                    None => BlobResponse::Refused(BlobRefusal::NotHere),
                    Some(source) => tokio::task::spawn_blocking(move || source.serve(&request))
                        .await
                        .unwrap_or(BlobResponse::Refused(BlobRefusal::Busy)),
                }
            }
        };
        write_frame(&mut stream, &response.to_bytes()).await?;
        if let BlobResponse::Groups(groups) = &response {
            let bytes: usize = groups.iter().map(|g| g.bytes.len()).sum();
            served.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }
    stream.close().await
}

/// The blob `root`, if `peer` may fetch it and it is held whole.
async fn allowed_source(
    peer: PeerId,
    root: BlobRoot,
    blobs: &std::path::Path,
    allow: &Allow,
) -> Option<Arc<BlobSource>> {
    let Some(grant) = allow(peer, root).await else {
        tracing::debug!(%peer, %root, "a blob asked for by a peer that may not fetch it");
        return None;
    };
    let blobs = blobs.to_owned();
    let opened = tokio::task::spawn_blocking(move || match grant {
        Grant::Sealed => BlobSource::open(&blobs, &root),
        Grant::Received { path, key } => BlobSource::received(&blobs, &root, &path, key),
    });
    match opened.await {
        Ok(Ok(source)) => source.map(Arc::new),
        Ok(Err(e)) => {
            tracing::warn!(%root, error = %e, "a blob held here cannot be served");
            None
        }
        Err(_) => None,
    }
}

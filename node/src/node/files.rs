//! Files through the [`Node`] handle: sending one (sealed here, on a
//! blocking thread, before the message goes), the transfers, previews.

use std::time::Duration;

use hush_protocol::MessageId;

use super::{Command, Node};
use crate::error::NodeError;
use crate::event_loop::GroupCommand;
use crate::records::Status;
use crate::view::SendReceipt;

/// Sealing progress is told at most this often.
const SEALING_EVERY: Duration = Duration::from_millis(250);

impl Node {
    /// Seals the file at `path` (compressed if that helps, encrypted under
    /// a fresh key, into `HOME/blobs`; `progress` hears the bytes read) and
    /// sends it to `contact` with `caption`; returns once the message is
    /// durably in the outbox. The contact's devices fetch the file from
    /// this one.
    pub async fn send_file(
        &self,
        contact: &str,
        path: &std::path::Path,
        caption: &str,
    ) -> Result<SendReceipt, NodeError> {
        // Known before the file is read: sealing a large file for nothing
        // would waste minutes.
        self.contact(contact)?;
        let (offer, shown) = self.seal(path, caption).await?;
        self.call(|reply| Command::SendFile {
            contact: contact.to_owned(),
            offer: Box::new(offer),
            path: shown,
            reply,
        })
        .await
    }

    /// Sends `offer`, whose blob is already sealed into this home's
    /// `HOME/blobs` (by [`crate::files::seal_file`]), to `contact`: what
    /// [`Self::send_file`] does once it has sealed the file; `shown` is the
    /// path history shows. Nothing in the offer is checked here: receivers
    /// check everything in a manifest (the tests of hostile senders send
    /// lying ones through this).
    pub async fn send_file_offer(
        &self,
        contact: &str,
        offer: hush_protocol::FileOffer,
        shown: &str,
    ) -> Result<SendReceipt, NodeError> {
        self.call(|reply| Command::SendFile {
            contact: contact.to_owned(),
            offer: Box::new(offer),
            path: shown.to_owned(),
            reply,
        })
        .await
    }

    /// [`Self::send_file`], then waits until the message reaches `wait` or
    /// `timeout` passes.
    pub async fn send_file_and_wait(
        &self,
        contact: &str,
        path: &std::path::Path,
        caption: &str,
        wait: Status,
        timeout: Duration,
    ) -> Result<SendReceipt, NodeError> {
        let events = self.journal.subscribe();
        let receipt = self.send_file(contact, path, caption).await?;
        self.wait_for(contact, receipt, events, wait, timeout).await
    }

    /// The offer for the file at `path`, its blob sealed into `HOME/blobs`,
    /// and the path as history shows it (absolute).
    async fn seal(
        &self,
        path: &std::path::Path,
        caption: &str,
    ) -> Result<(hush_protocol::FileOffer, String), NodeError> {
        if caption.len() > hush_protocol::MAX_TEXT_LEN {
            return Err(NodeError::TextTooLong { len: caption.len() });
        }
        let meta = std::fs::metadata(path).map_err(|e| {
            NodeError::File(format!(
                "cannot read {}: {e} (check the path and its permissions)",
                path.display()
            ))
        })?;
        if !meta.is_file() {
            return Err(NodeError::File(format!(
                "{} is not a file: send a file (a folder can be sent as an archive)",
                path.display()
            )));
        }
        if meta.len() > self.files.max_file {
            return Err(NodeError::File(format!(
                "{} is {}, over this node's limit of {} (--max-file-mib)",
                path.display(),
                crate::files::human_size(meta.len()),
                crate::files::human_size(self.files.max_file)
            )));
        }
        let shown = std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_owned())
            .display()
            .to_string();
        let (path, blobs) = (path.to_owned(), self.files.blobs.clone());
        let events = self.journal.clone();
        let sealing = shown.clone();
        let manifest = tokio::task::spawn_blocking(move || {
            let mut last = std::time::Instant::now();
            let mut progress = |p: crate::files::SealProgress| {
                let end = p.done >= p.total;
                if !end && last.elapsed() < SEALING_EVERY {
                    return;
                }
                last = std::time::Instant::now();
                let step = match p.step {
                    crate::files::SealStep::Compressing => "compressing",
                    crate::files::SealStep::Encrypting => "encrypting",
                };
                events.send(crate::view::Event::Sealing {
                    path: sealing.clone(),
                    step: step.to_owned(),
                    done: p.done,
                    total: p.total,
                });
            };
            hush_host::create_private_dir(&blobs)
                .map_err(|e| NodeError::File(format!("cannot create {}: {e}", blobs.display())))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let thumbnail = crate::files::make_thumbnail(&path, crate::files::mime_of(&name));
            crate::files::seal_file_with(
                &path,
                &blobs,
                thumbnail,
                &mut rand::thread_rng(),
                &mut progress,
            )
            .map_err(|e| NodeError::File(e.to_string()))
        })
        .await
        .map_err(|_| NodeError::Stopped)??;
        let offer = hush_protocol::FileOffer {
            manifest,
            caption: caption.to_owned(),
        };
        Ok((offer, shown))
    }

    /// Every file sent and received, with where its transfer stands.
    pub async fn files(&self) -> Result<Vec<crate::view::FileView>, NodeError> {
        self.call(|reply| Command::Files { reply }).await
    }

    /// Fetches (or resumes) the file of message `id` into `to` (a folder),
    /// or the files folder; returns at once (see [`Self::subscribe`] for
    /// its progress).
    pub async fn file_get(
        &self,
        id: &str,
        to: Option<std::path::PathBuf>,
    ) -> Result<crate::view::FileView, NodeError> {
        let to = match to {
            Some(to) => {
                if to.exists() && !to.is_dir() {
                    return Err(NodeError::File(format!(
                        "{} is not a folder: --to takes the folder to save the file in",
                        to.display()
                    )));
                }
                Some(std::path::absolute(&to).unwrap_or(to))
            }
            None => None,
        };
        self.call(|reply| Command::FileGet {
            id: id.to_owned(),
            to,
            reply,
        })
        .await
    }

    /// The small JPEG preview a photo's message carries (read from the
    /// message, nothing fetched).
    pub fn file_thumbnail(&self, id: &str) -> Result<Vec<u8>, NodeError> {
        let wanted: MessageId = id.parse().map_err(|_| {
            NodeError::File(format!("{id:?} is not a file id (see `hush file list`)"))
        })?;
        let (_, file) = self.store.file_by_id(wanted)?.ok_or_else(|| {
            NodeError::File(format!("no file with id {id} (see `hush file list`)"))
        })?;
        <hush_protocol::blob::FileManifest as hush_protocol::Wire>::from_bytes(&file.manifest)
            .ok()
            .and_then(|m| m.thumbnail)
            .ok_or_else(|| NodeError::File(format!("file {id} came without a thumbnail")))
    }

    /// Stops the download of the file of message `id` and removes what it
    /// fetched.
    pub async fn file_cancel(&self, id: &str) -> Result<crate::view::FileView, NodeError> {
        self.call(|reply| Command::FileCancel {
            id: id.to_owned(),
            reply,
        })
        .await
    }

    /// Seals the file at `path` and sends it to the group with `caption`;
    /// members fetch it from this device (and from this device's relays,
    /// which get a copy when a member is offline).
    pub async fn group_send_file(
        &self,
        group: &str,
        path: &std::path::Path,
        caption: &str,
    ) -> Result<SendReceipt, NodeError> {
        let (offer, shown) = self.seal(path, caption).await?;
        let group = group.to_owned();
        self.call(|reply| {
            Command::Group(GroupCommand::SendFile {
                group,
                offer: Box::new(offer),
                path: shown,
                reply,
            })
        })
        .await
    }

    /// [`Self::group_send_file`], then waits until `count` other members
    /// have the message (or `timeout`).
    pub async fn group_send_file_and_wait(
        &self,
        group: &str,
        path: &std::path::Path,
        caption: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<SendReceipt, NodeError> {
        let events = self.subscribe();
        let receipt = self.group_send_file(group, path, caption).await?;
        Self::group_wait(receipt, events, count, timeout).await
    }
}

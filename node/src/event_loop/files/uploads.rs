//! Handing sent files to our home relays for recipients who are offline:
//! when to upload, retries with back-off, and what is left to do across
//! restarts (the `pending_uploads` meta).

use std::time::Instant;

use hush_protocol::AccountId;
use hush_protocol::blob::{BlobRoot, FileManifest, UploadRefusal};
use hush_protocol::{MessageId, Wire};
use libp2p::PeerId;

use super::{MAX_UPLOAD_ATTEMPTS, UPLOAD_RETRY_FIRST, UPLOAD_RETRY_MAX, UploadRetry};
use crate::event_loop::EventLoop;
use crate::event_loop::commit::After;
use crate::files::transfer::{self, Report};
use crate::store::Op;

impl EventLoop {
    /// A device of `contact` is not connected: it may fetch the file while
    /// we are away, so our home relays get a copy.
    pub(super) fn upload_if_offline(&mut self, contact: &str, id: MessageId, root: BlobRoot) {
        let Some(account) = self
            .engine
            .contacts
            .contact(contact)
            .map(|c| c.card.account())
        else {
            return;
        };
        self.upload_unless_all_here(&[account], id, root);
    }

    /// A device of a member of `group` is not connected: our home relays
    /// get a copy of the file.
    pub(in crate::event_loop) fn upload_for_group(
        &mut self,
        group: &str,
        id: MessageId,
        root: BlobRoot,
    ) {
        let Some(members) = self
            .engine
            .groups
            .groups()
            .find(|g| g.state().name == group || g.id().to_string() == group)
            .map(|g| {
                g.state()
                    .joined()
                    .map(|(a, _)| *a)
                    .filter(|a| *a != self.me.account)
                    .collect::<Vec<_>>()
            })
        else {
            return;
        };
        self.upload_unless_all_here(&members, id, root);
    }

    fn upload_unless_all_here(&mut self, accounts: &[AccountId], id: MessageId, root: BlobRoot) {
        let all_here = accounts.iter().all(|account| {
            self.engine
                .contacts
                .devices_of(account)
                .iter()
                .all(|(_, peer)| self.swarm.is_connected(peer))
        });
        if all_here || self.home.is_empty() {
            return;
        }
        let relays = self.active_relays();
        for relay in &relays {
            tracing::info!(%id, %relay, "a recipient is offline: the file goes to our relay too");
        }
        // The file's record is in this batch, and so is the list of
        // uploads to take up after a restart: a crash once the send landed
        // still hands the file to the relays. The uploads start once the
        // batch landed, so what they end with (a refusal, say) is written
        // on the record.
        let mut added = false;
        for relay in &relays {
            added |= self.files.pending.insert((id, *relay));
        }
        if added {
            self.save_pending_uploads();
        }
        self.batch.after.push(After::Upload(id, root, relays));
    }

    /// An upload to a relay of ours ended: a refusal is the sender's to
    /// know (on the file, and as an event).
    pub(super) fn upload_ended(
        &mut self,
        id: MessageId,
        relay: PeerId,
        outcome: Result<(), transfer::UploadError>,
    ) {
        let key = (id, relay);
        let problem = match outcome {
            Ok(()) => {
                self.files.retries.remove(&key);
                self.upload_done(key);
                tracing::info!(%id, %relay, "our relay holds the file for the offline recipient");
                return;
            }
            Err(transfer::UploadError::Refused(UploadRefusal::Busy)) => {
                self.retry_upload(key);
                return;
            }
            Err(transfer::UploadError::Refused(reason)) => {
                self.files.retries.remove(&key);
                self.upload_done(key);
                format!(
                    "your relay {relay} refused the file ({reason}): the contact gets it from this device when you are both online"
                )
            }
            Err(transfer::UploadError::Failed(error)) => {
                tracing::warn!(%id, %relay, %error, "an upload to our relay failed; it is tried again");
                if self.retry_upload(key) {
                    return;
                }
                format!(
                    "the upload to your relay {relay} failed ({error}): the contact gets it from this device when you are both online"
                )
            }
        };
        let Ok(found) = self.store.file_by_id(id) else {
            return;
        };
        if let Some((conversation, mut file)) = found {
            tracing::warn!(%id, problem = %problem, "a file is not held at a relay");
            file.error = Some(problem);
            self.store_file(conversation, id, &file);
        } else {
            tracing::warn!(%id, problem = %problem, "an upload ended, but its file's record is not in the store");
        }
    }

    /// Schedules the upload `key` again (backing off); false once it has
    /// failed too often.
    fn retry_upload(&mut self, key: (MessageId, PeerId)) -> bool {
        let now = Instant::now();
        let retry = self.files.retries.entry(key).or_insert(UploadRetry {
            attempts: 0,
            at: now,
        });
        retry.attempts += 1;
        if retry.attempts > MAX_UPLOAD_ATTEMPTS {
            self.files.retries.remove(&key);
            self.upload_done(key);
            return false;
        }
        let wait = UPLOAD_RETRY_FIRST.saturating_mul(1 << (retry.attempts - 1).min(6));
        retry.at = now + wait.min(UPLOAD_RETRY_MAX);
        true
    }

    fn upload_done(&mut self, key: (MessageId, PeerId)) {
        if self.files.pending.remove(&key) {
            self.save_pending_uploads();
        }
    }

    /// Uploads whose time to try again has come (and whose relay is
    /// connected, or the dial would fail again).
    pub(in crate::event_loop) fn files_tick(&mut self) {
        let now = Instant::now();
        self.expire_sent(now);
        let due: Vec<(MessageId, PeerId)> = self
            .files
            .retries
            .iter()
            .filter(|(_, r)| r.at <= now)
            .map(|(k, _)| *k)
            .collect();
        for (id, relay) in due {
            if let Some(r) = self.files.retries.get_mut(&(id, relay)) {
                // Not again before this one ends.
                r.at = now + UPLOAD_RETRY_MAX * 4;
            }
            let Ok(found) = self.store.file_by_id(id) else {
                return;
            };
            let Some(root) = found
                .and_then(|(_, f)| FileManifest::from_bytes(&f.manifest).ok())
                .map(|m| m.root)
            else {
                self.files.retries.remove(&(id, relay));
                self.upload_done((id, relay));
                continue;
            };
            self.spawn_upload(id, relay, root);
        }
    }

    /// Stores which uploads are not finished, in the batch: what to try
    /// again after a restart.
    pub(super) fn save_pending_uploads(&mut self) {
        let uploads = self
            .files
            .pending
            .iter()
            .map(|(id, relay)| (id.0, relay.to_bytes()))
            .collect();
        self.batch.ops.push(Op::PutPendingUploads(uploads));
    }

    /// Uploads a restart cut short are tried again, soon after the start.
    pub(in crate::event_loop) fn resume_uploads(&mut self) {
        let stored = match self.store.pending_uploads() {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the unfinished uploads");
                return;
            }
        };
        let at = Instant::now() + UPLOAD_RETRY_FIRST;
        for (id, relay) in stored {
            let Ok(relay) = PeerId::from_bytes(&relay) else {
                continue;
            };
            let key = (MessageId(id), relay);
            self.files.pending.insert(key);
            self.files
                .retries
                .insert(key, UploadRetry { attempts: 0, at });
        }
    }

    pub(in crate::event_loop) fn spawn_upload(
        &mut self,
        id: MessageId,
        relay: PeerId,
        root: BlobRoot,
    ) {
        if self.files.pending.insert((id, relay)) {
            self.save_pending_uploads();
        }
        let (control, blobs, reports) = (
            self.files.control.clone(),
            self.files.config.blobs.clone(),
            self.files.reports_tx.clone(),
        );
        tokio::spawn(async move {
            let outcome = transfer::upload(control, relay, root, blobs).await;
            let _ = reports.send(Report::Uploaded { id, relay, outcome }).await;
        });
    }
}

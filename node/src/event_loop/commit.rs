//! The loop's side of durability: what the engine and the loop gathered
//! goes to disk in one batch, committed off the loop (`spawn_blocking`),
//! and what had to wait for it (acks, replies, dispatches, events) runs
//! once it landed. A failed commit refuses what waited and reloads state
//! from disk.

use std::time::{Duration, Instant};

use hush_protocol::{AckBatch, DirectAck, KeyBundle, OlmDevice, RejectReason, Wire};
use libp2p::request_response::ResponseChannel;
use tokio::task::JoinHandle;

use super::{EventLoop, load_contacts};
use crate::error::NodeError;
use crate::network::DirectResponse;
use crate::node::{Reply, now_ms};
use crate::store::{Durability, Op, OutboxKey, StoreError};
use crate::view::{Event, GroupView, PresenceView, SendReceipt};

/// Runs once the batch it was queued with has committed.
#[derive(Debug)]
pub(super) enum After {
    Ack(ResponseChannel<DirectResponse>, AckBatch),
    KeyBundle(ResponseChannel<Vec<u8>>, KeyBundle),
    Dispatch(OutboxKey),
    Emit(Box<Event>),
    Received([u8; 32]),
    ReplySend(Reply<SendReceipt>, SendReceipt),
    ReplyContact(Reply<crate::view::ContactView>, crate::view::ContactView),
    ReplyRead(Reply<usize>, usize),
    /// A conversation was muted (`true`) or unmuted.
    ReplyMuted(Reply<bool>, bool),
    /// A setting is stored.
    ReplyDone(Reply<()>),
    /// Mail from this home relay is stored: tell the relay to delete it.
    MailAck(usize, Vec<u64>),
    /// One-time keys are on disk: hand them to this home relay.
    UploadKeys(usize, hush_protocol::OwnerRequest),
    ReplyPresence(Reply<Option<PresenceView>>, Option<PresenceView>),
    ReplyGroup(Reply<GroupView>, GroupView),
    /// A group message and the Megolm ratchet that made it are stored:
    /// publish it on the group's topic.
    Publish(hush_protocol::GroupId, String, Vec<u8>),
    /// A group message waiting for its key is on disk now.
    PendingStored(hush_protocol::SessionId, [u8; 32]),
    /// Receipts for these messages of ours are on disk: tell the counts.
    ReceiptCounts(hush_protocol::GroupId, Vec<hush_protocol::MessageId>),
    /// A file message is stored: fetch its file (into a folder, or the
    /// files folder).
    Fetch(
        hush_protocol::ConversationId,
        hush_protocol::MessageId,
        Option<std::path::PathBuf>,
    ),
}

#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) ops: Vec<Op>,
    pub(super) after: Vec<After>,
}

/// How long a lazy commit may stay off the disk (see [`Batch::may_wait`]).
const LAZY_WINDOW: Duration = Duration::from_secs(1);
/// How long a batch that may ride (see [`Batch::may_ride`]) is held for a
/// durable commit to come along, before it is committed lazily on its own
/// (at the latest on the next tick after this).
const RIDE_WINDOW: Duration = Duration::from_millis(20);

impl Batch {
    /// Whether this batch may be committed without waiting for the disk:
    /// group messages received (the message, its digest, the clock) whose
    /// only consequence is an event, and what an ack or receipt settles
    /// (an outbox entry gone, a status raised). Everything that answers a
    /// peer or the user, moves a cursor, or touches a key waits for the
    /// disk.
    ///
    /// Safe because nothing outside learns of a lazy commit before a later
    /// durable one (which lands every commit before it): receipts leave
    /// through the outbox, in a durable commit; the relay history cursor
    /// moves only in a durable commit, so a message a crash took is fetched
    /// again. The user may have seen it in the event stream, and sees it
    /// again. An outbox entry a crash brings back is sent again and acked
    /// as a duplicate (the recipient stored it), which raises the status
    /// again.
    fn may_wait(&self) -> bool {
        self.ops.iter().all(|op| {
            matches!(
                op,
                Op::PutSeen(..)
                    | Op::PutSeenKey(..)
                    | Op::PutMessage(..)
                    | Op::PutClock(_)
                    | Op::DeleteOutbox(_)
                    | Op::RaiseStatus(..)
            )
        }) && self
            .after
            .iter()
            .all(|a| matches!(a, After::Emit(_) | After::Received(_)))
    }

    /// Whether this batch may also wait for the next commit that must be
    /// durable, to ride along with it: it may wait, and nothing (not even
    /// an event) waits for it. An ack's settling then costs no commit of
    /// its own.
    fn may_ride(&self) -> bool {
        self.after.is_empty() && self.may_wait()
    }
}

#[derive(Debug)]
pub(super) struct Commit {
    pub(super) task: JoinHandle<Result<(), StoreError>>,
    after: Vec<After>,
}

impl EventLoop {
    /// Lands the running commit and whatever was gathered after it, and runs
    /// their after-commit actions (acks, replies), so nothing queued is dropped.
    pub(super) async fn finish(&mut self) {
        // From here every commit is durable, and lazy ones are landed.
        self.closing = true;
        self.flush();
        // Each round lands one commit; acks and replies can queue at most a
        // little more, so this settles within a few rounds.
        for _ in 0..8 {
            if self.commit.is_none() {
                break;
            }
            if let Some(commit) = self.commit.as_mut() {
                let result = (&mut commit.task).await;
                self.on_commit(result.unwrap_or_else(|e| {
                    Err(StoreError::Storage(redb::StorageError::Io(
                        std::io::Error::other(e),
                    )))
                }));
            }
            self.flush();
        }
    }

    /// Starts committing the gathered batch, unless a commit is running.
    pub(super) fn flush(&mut self) {
        if self.commit.is_some() {
            return;
        }
        let sync = self
            .lazy_since
            .is_some_and(|since| self.closing || since.elapsed() >= LAZY_WINDOW);
        let rides =
            !sync && !self.closing && self.batch.may_ride() && !self.engine.olm.has_changes();
        if rides && (!self.batch.ops.is_empty() || self.clock.is_changed()) {
            let since = *self.held_since.get_or_insert_with(Instant::now);
            if since.elapsed() < RIDE_WINDOW {
                return;
            }
        }
        self.held_since = None;
        let changes = self.engine.olm.take_changes(&self.me.pickle_key);
        if self.batch.ops.is_empty()
            && self.batch.after.is_empty()
            && changes.is_empty()
            && !self.clock.is_changed()
            && !sync
        {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        if let Some(last) = self.clock.take_changed() {
            batch.ops.push(Op::PutClock(last));
        }
        if let Some(account) = changes.account {
            batch.ops.push(Op::PutOlmAccount(account));
        }
        for (peer, pickles) in changes.sessions {
            batch.ops.push(Op::PutSessions(peer, pickles));
        }
        let store = self.store.clone();
        let durability = if sync || self.closing || !batch.may_wait() {
            self.lazy_since = None;
            Durability::Now
        } else {
            self.lazy_since.get_or_insert_with(Instant::now);
            Durability::Lazy
        };
        let ops = batch.ops;
        self.commit = Some(Commit {
            task: tokio::task::spawn_blocking(move || store.apply(ops, durability)),
            after: batch.after,
        });
    }

    pub(super) fn on_commit(&mut self, result: Result<(), StoreError>) {
        let Some(commit) = self.commit.take() else {
            return;
        };
        let mut afters = commit.after;
        if let Err(e) = &result {
            tracing::error!(error = %e, "a write batch failed; reloading state from disk");
            // What was gathered since was built on the state that failed to
            // commit (e.g. envelopes from Olm keys now rolled back): drop it too.
            afters.extend(std::mem::take(&mut self.batch).after);
            self.reload();
        }
        let mut receipts = Vec::new();
        for after in afters {
            match (after, &result) {
                (After::ReceiptCounts(group, ids), Ok(())) => receipts.push((group, ids)),
                (After::Ack(channel, acks), Ok(())) => self.respond(channel, acks.to_bytes()),
                (After::Ack(channel, acks), Err(_)) => {
                    // Nothing of this batch is stored: ask for all of it again.
                    let unavailable = DirectAck::Rejected(RejectReason::Unavailable);
                    let acks = AckBatch {
                        acks: vec![unavailable; acks.acks.len()],
                    };
                    self.respond(channel, acks.to_bytes());
                }
                (After::KeyBundle(channel, bundle), Ok(())) => {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .keys
                        .send_response(channel, bundle.to_bytes());
                }
                (After::Dispatch(key), Ok(())) => {
                    self.engine.dispatched(ctx!(self), key);
                    self.drive();
                }
                (After::Emit(event), Ok(())) => {
                    self.notify(&event);
                    let _ = self.events.send(*event);
                }
                (After::PendingStored(session, digest), _) => {
                    self.engine.groups.pending_stored(session, digest);
                }
                (After::Received(digest), _) => self.engine.settled(&digest),
                (After::Fetch(conversation, id, to), Ok(())) => {
                    self.start_download(conversation, id, to);
                }
                (After::ReplySend(reply, receipt), Ok(())) => {
                    let _ = reply.send(Ok(receipt));
                }
                (After::ReplyContact(reply, view), Ok(())) => {
                    let _ = reply.send(Ok(view));
                }
                (After::ReplyRead(reply, n), Ok(())) => {
                    let _ = reply.send(Ok(n));
                }
                (After::ReplyMuted(reply, on), Ok(())) => {
                    let _ = reply.send(Ok(on));
                }
                (After::ReplyMuted(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::ReplyDone(reply), Ok(())) => {
                    let _ = reply.send(Ok(()));
                }
                (After::ReplyDone(reply), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::ReplyPresence(reply, view), Ok(())) => {
                    let _ = reply.send(Ok(view));
                }
                (After::ReplyGroup(reply, view), Ok(())) => {
                    let _ = reply.send(Ok(view));
                }
                (After::ReplyGroup(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::Publish(group, topic, bytes), Ok(())) => {
                    self.publish_group(group, topic, bytes)
                }
                (After::ReplyPresence(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::ReplySend(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::ReplyContact(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::ReplyRead(reply, _), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
                }
                (After::MailAck(relay, seqs), Ok(())) => self.ack_mail(relay, seqs),
                (After::UploadKeys(relay, request), Ok(())) => self.upload_keys(relay, request),
                (After::UploadKeys(relay, _), Err(_)) => self.upload_failed(relay),
                (
                    After::KeyBundle(..)
                    | After::ReceiptCounts(..)
                    | After::Dispatch(_)
                    | After::Emit(_)
                    | After::MailAck(..)
                    | After::Publish(..)
                    | After::Fetch(..),
                    Err(_),
                ) => {}
            }
        }
        if !receipts.is_empty() {
            self.emit_receipt_counts(receipts);
        }
    }

    /// After a failed commit, memory is ahead of disk: start again from disk.
    fn reload(&mut self) {
        let restored = (|| -> Result<(), NodeError> {
            self.engine.olm = OlmDevice::restore(
                &self.store.olm_account()?,
                self.store.sessions()?,
                &self.me.pickle_key,
            )?;
            self.engine.contacts = load_contacts(self.store.contacts()?);
            let config = self.engine.groups.config();
            self.engine.groups = super::groups::load_groups(&self.store, &self.me, config);
            self.engine.sync_peers(now_ms());
            self.restore_trust()?;
            self.engine.routes.forget_marks();
            let now = self.host_clock.now().plus_ms(1_000);
            self.engine.outbox.reload(self.store.outbox()?, now);
            Ok(())
        })();
        if let Err(e) = restored {
            tracing::error!(error = %e, "could not reload state from disk");
        }
    }

    pub(super) fn respond(&mut self, channel: ResponseChannel<DirectResponse>, acks: Vec<u8>) {
        // (`ordered` is the reader's to set, from the protocol it spoke.)
        let response = DirectResponse {
            ordered: false,
            acks,
        };
        if self
            .swarm
            .behaviour_mut()
            .direct
            .send_response(channel, response)
            .is_err()
        {
            tracing::debug!("peer went away before the ack");
        }
    }
}

fn store_failed(e: &StoreError) -> NodeError {
    NodeError::Store(StoreError::Storage(redb::StorageError::Io(
        std::io::Error::other(e.to_string()),
    )))
}

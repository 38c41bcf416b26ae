//! The loop's side of durability: what the engine and the loop gathered
//! goes to disk in one batch, committed off the loop (`spawn_blocking`),
//! and what had to wait for it (acks, replies, dispatches, events) runs
//! once it landed. A failed commit refuses what waited and reloads state
//! from disk.
//!
//! One kind of event goes out before its batch lands: a received group
//! message whose batch may wait for the disk (see [`Batch::may_wait`]).
//! Its batch then rides with the next ones for up to [`EARLY_RIDE_WINDOW`],
//! so a member receiving a busy group commits a few times a second, not
//! once per message. Reads stay true to the events: while such a batch is
//! in memory, [`Landing`] says so, and the node's reads first ask the loop
//! to land it (`Command::Land`).
//!
//! Between two landings received group messages share one read of the
//! store (`EventLoop::group_snapshot`): what they look up changes only by
//! a commit, and a landing drops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hush_protocol::{AckBatch, DirectAck, KeyBundle, OlmDevice, RejectReason, Wire};
use libp2p::request_response::ResponseChannel;
use tokio::task::JoinHandle;

use super::{EventLoop, load_contacts};
use crate::error::NodeError;
use crate::network::DirectResponse;
use crate::node::{Reply, now_ms};
use crate::store::{Durability, Op, OutboxKey, Snapshot, StoreError};
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
    /// A group message is stored and was handed to gossip: `sent` if a
    /// peer on the topic took it, `pending` if none did yet.
    ReplyGroupSent(Reply<SendReceipt>, SendReceipt, hush_protocol::MessageId),
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
    /// Everything whose event went out is in the store (`Command::Land`).
    Landed(Reply<()>),
    /// A group message and the Megolm ratchet that made it are stored:
    /// publish it on the group's topic (and watch it for a receipt, if it
    /// is one of ours).
    Publish(
        hush_protocol::GroupId,
        String,
        Vec<u8>,
        Option<hush_protocol::MessageId>,
    ),
    /// A group message waiting for its key is on disk now.
    PendingStored(hush_protocol::SessionId, [u8; 32]),
    /// Receipts for these messages of ours are on disk: tell the counts.
    ReceiptCounts(hush_protocol::GroupId, Vec<hush_protocol::MessageId>),
    /// A file message of ours is stored: hand its file to these relays of
    /// ours (a recipient is offline). Not before, or a refusal that comes
    /// back at once would find no record to be written on.
    Upload(
        hush_protocol::MessageId,
        hush_protocol::blob::BlobRoot,
        Vec<libp2p::PeerId>,
    ),
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
    /// Events of this batch went out before it landed.
    emitted: bool,
}

/// Whether events went out for what is not in the store yet: set by the
/// loop when it emits a batch's events early, cleared when no such batch
/// is left in memory. Shared with the node, whose reads land those batches
/// first while it is set, so a client that saw an event finds its message.
#[derive(Debug, Clone, Default)]
pub(crate) struct Landing(Arc<AtomicBool>);

impl Landing {
    /// Events went out for a batch not landed yet.
    pub(crate) fn pending(&self) -> bool {
        // Acquire: pairs with the release in `set`, which happens before
        // the event is sent.
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, pending: bool) {
        self.0.store(pending, Ordering::Release);
    }
}

/// How long a lazy commit may stay off the disk (see [`Batch::may_wait`]).
const LAZY_WINDOW: Duration = Duration::from_secs(1);
/// How long a batch that may ride (see [`Batch::may_ride`]) is held for a
/// durable commit to come along, before it is committed lazily on its own
/// (at the latest on the next tick after this).
const RIDE_WINDOW: Duration = Duration::from_millis(20);
/// How long a riding batch whose events already went out is held: the
/// messages of a busy group share one commit per this long (a commit's own
/// cost, redb's and the log's, is then paid a few times a second, not per
/// message: at 250 rather than 100 ms, 4 % less CPU per delivery in
/// `hush bench group --members 50`). A crash of the process loses at most
/// this much (and a tick) of what a member saw of a group, which its
/// relays' history brings back (the history cursor only moves in a durable
/// commit), as a crash of the machine loses the last lazy commits.
const EARLY_RIDE_WINDOW: Duration = Duration::from_millis(250);
/// A riding batch this large is committed at once.
const MAX_RIDING_OPS: usize = 1024;
/// A read of the store kept for received group messages is used this long
/// at most (and only until the next commit lands): a busy group's messages
/// then share one, a quiet loop holds none for long.
pub(super) const SNAPSHOT_KEPT: Duration = Duration::from_secs(1);

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
            .all(|a| matches!(a, After::Emit(_) | After::Received(_) | After::Landed(_)))
    }

    /// Whether this batch may also wait for the next commit that must be
    /// durable, to ride along with it: it may wait, and nothing but the
    /// engine's note that a message is settled waits for it (events that
    /// may go early are out already). An ack's settling, and a busy
    /// group's messages, then cost no commit of their own.
    fn may_ride(&self) -> bool {
        self.ops.len() < MAX_RIDING_OPS
            && self.may_wait()
            && self.after.iter().all(|a| matches!(a, After::Received(_)))
    }

    /// Takes out the events that may go before this batch lands: received
    /// group messages, when the whole batch may wait for the disk.
    fn take_early_events(&mut self) -> Vec<Event> {
        if !self.may_wait() {
            return Vec::new();
        }
        // In place: the loop asks on every turn, and a batch rebuilt to its
        // length each time grew again, a copy, with each message after.
        let early: Vec<Event> = self
            .after
            .extract_if(.., |a| {
                matches!(a, After::Emit(event) if matches!(**event, Event::GroupMessage { .. }))
            })
            .filter_map(|a| match a {
                After::Emit(event) => Some(*event),
                _ => None,
            })
            .collect();
        self.emitted |= !early.is_empty();
        early
    }
}

#[derive(Debug)]
pub(super) struct Commit {
    pub(super) task: JoinHandle<Result<(), StoreError>>,
    after: Vec<After>,
    /// Its batch's events went out before it (see [`Landing`]).
    emitted: bool,
    /// Events wait in `after` for it to land (counted once: the loop asks
    /// on every turn, and a busy commit's `after` holds thousands).
    holds_events: bool,
    started: Instant,
    /// It is logged once it has run this long (doubled each time).
    report_after: Duration,
}

/// A commit running this long is logged: what waits for it (acks, replies,
/// the API's reads of what events told) waits meanwhile.
const SLOW_COMMIT: Duration = Duration::from_secs(5);

impl EventLoop {
    /// Lands the running commit and whatever was gathered after it, and runs
    /// their after-commit actions (acks, replies), so nothing queued is dropped.
    pub(super) async fn finish(&mut self) {
        // From here every commit is durable, and lazy ones are landed.
        self.closing = true;
        // What other members may still ask us for outlives the restart.
        let kept = self.engine.groups.kept_messages();
        self.batch.ops.push(Op::PutKeptGroupMessages(kept));
        self.flush();
        // Each round lands one commit; acks and replies can queue at most a
        // little more, so this settles within a few rounds.
        for _ in 0..8 {
            if self.commit.is_none() {
                break;
            }
            // No tick runs now: a commit that stalls is told of here.
            while let Some(commit) = self.commit.as_mut() {
                match tokio::time::timeout(SLOW_COMMIT, &mut commit.task).await {
                    Ok(result) => {
                        self.on_commit(result.unwrap_or_else(|e| {
                            Err(StoreError::Storage(redb::StorageError::Io(
                                std::io::Error::other(e),
                            )))
                        }));
                        break;
                    }
                    Err(_) => self.report_slow_commit(),
                }
            }
            self.flush();
        }
    }

    /// Starts committing the gathered batch, unless a commit is running.
    pub(super) fn flush(&mut self) {
        self.emit_early();
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
            let window = if self.batch.emitted {
                EARLY_RIDE_WINDOW
            } else {
                RIDE_WINDOW
            };
            if since.elapsed() < window {
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
        // The next batch of a busy loop is about as large: room for it at
        // once, not grown one doubling at a time as its ops arrive.
        self.batch.ops = Vec::with_capacity(batch.ops.len().min(MAX_RIDING_OPS));
        self.batch.after = Vec::with_capacity(batch.after.len().min(MAX_RIDING_OPS));
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
        let holds_events = batch.after.iter().any(|a| matches!(a, After::Emit(_)));
        self.commit = Some(Commit {
            task: tokio::task::spawn_blocking(move || store.apply(ops, durability)),
            after: batch.after,
            emitted: batch.emitted,
            holds_events,
            started: Instant::now(),
            report_after: SLOW_COMMIT,
        });
    }

    /// Logs a commit that has run [`SLOW_COMMIT`] and not landed, and again
    /// each time its age doubles (on the tick): a disk that stalls, or a
    /// store that waits on a lock, says so.
    pub(super) fn report_slow_commit(&mut self) {
        let Some(commit) = self.commit.as_mut() else {
            return;
        };
        let running = commit.started.elapsed();
        if running < commit.report_after {
            return;
        }
        // Next at the first doubling past this age (a late look tells once).
        while commit.report_after <= running {
            commit.report_after = commit.report_after.saturating_mul(2);
        }
        tracing::warn!(
            running_s = running.as_secs(),
            waiting = commit.after.len(),
            "a write to the database has run {} s and not finished: what waits for it (acks, replies, reads) waits too",
            running.as_secs()
        );
    }

    /// Sends the events of the gathered batch that may go before it lands
    /// (see [`Batch::take_early_events`]), unless events of the running
    /// commit still wait for it: those go first.
    fn emit_early(&mut self) {
        let waiting = self.commit.as_ref().is_some_and(|c| c.holds_events);
        if waiting {
            return;
        }
        let early = self.batch.take_early_events();
        if early.is_empty() {
            return;
        }
        // Before the events: a client that saw one and reads finds the
        // flag set.
        self.landing.set(true);
        for event in early {
            self.notify(&event);
            self.events.send(event);
        }
    }

    /// `Command::Land`: answers once every batch whose events went out has
    /// landed (at once if none is in memory).
    pub(super) fn land(&mut self, reply: Reply<()>) {
        if self.batch.emitted {
            self.batch.after.push(After::Landed(reply));
        } else if let Some(commit) = self.commit.as_mut().filter(|c| c.emitted) {
            commit.after.push(After::Landed(reply));
        } else {
            let _ = reply.send(Ok(()));
        }
    }

    /// The kept read of the store if it is young enough, else a new one
    /// (`None` if the store cannot be read: each lookup then goes to it and
    /// says what went wrong). Taken out of the loop while in use; the
    /// caller puts it back.
    ///
    /// Sound because everything those lookups read (messages, digests
    /// seen) changes only by a commit, on whose landing the kept read is
    /// dropped (`on_commit`); until then the engine holds what the commit
    /// carries as in progress, as it does for a fresh read.
    pub(super) fn group_snapshot(&mut self) -> Option<(Snapshot, Instant)> {
        if let Some((snapshot, at)) = self.group_snapshot.take()
            && at.elapsed() < SNAPSHOT_KEPT
        {
            return Some((snapshot, at));
        }
        self.store
            .snapshot()
            .map(|snapshot| (snapshot, Instant::now()))
            .map_err(|e| tracing::warn!(error = %e, "could not read the store at once"))
            .ok()
    }

    pub(super) fn on_commit(&mut self, result: Result<(), StoreError>) {
        let Some(commit) = self.commit.take() else {
            return;
        };
        // What it stored, the engine forgets below: later lookups must
        // find it in the store.
        self.group_snapshot = None;
        let mut afters = commit.after;
        if let Err(e) = &result {
            tracing::error!(error = %e, "a write batch failed; reloading state from disk");
            if commit.emitted || self.batch.emitted {
                // Their messages come again from the relays' history (its
                // cursor moved with neither), and are shown again.
                tracing::warn!("group messages already shown were not stored");
            }
            // What was gathered since was built on the state that failed to
            // commit (e.g. envelopes from Olm keys now rolled back): drop it too.
            afters.extend(std::mem::take(&mut self.batch).after);
            self.reload();
        }
        // No commit runs now: what went out early is landed unless the
        // gathered batch holds some.
        if !self.batch.emitted {
            self.landing.set(false);
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
                    self.events.send(*event);
                }
                (After::PendingStored(session, digest), _) => {
                    self.engine.groups.pending_stored(session, digest);
                }
                (After::Received(digest), _) => self.engine.settled(&digest),
                (After::Fetch(conversation, id, to), Ok(())) => {
                    self.start_download(conversation, id, to);
                }
                (After::Upload(id, root, relays), Ok(())) => {
                    for relay in relays {
                        self.spawn_upload(id, relay, root);
                    }
                }
                (After::ReplySend(reply, receipt), Ok(())) => {
                    let _ = reply.send(Ok(receipt));
                }
                (After::ReplyGroupSent(reply, mut receipt, id), Ok(())) => {
                    if self.engine.groups.is_out(&id) {
                        receipt.status = crate::records::Status::Sent;
                    }
                    let _ = reply.send(Ok(receipt));
                }
                (After::ReplyGroupSent(reply, ..), Err(e)) => {
                    let _ = reply.send(Err(store_failed(e)));
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
                (After::Landed(reply), Ok(())) => {
                    let _ = reply.send(Ok(()));
                }
                (After::Landed(reply), Err(e)) => {
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
                (After::Publish(group, topic, bytes, watch), Ok(())) => {
                    if let Some(message) = watch {
                        let now = self.host_clock.now();
                        self.engine.groups.watch_published(
                            now,
                            message,
                            group,
                            topic.clone(),
                            bytes.clone(),
                        );
                    }
                    self.publish_group(group, topic, bytes, false, watch)
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
                    | After::Fetch(..)
                    | After::Upload(..),
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
            // Messages kept for other members are as published, whatever
            // the disk holds: they stay.
            let kept = self.engine.groups.kept_messages();
            self.engine.groups = super::groups::load_groups(&self.store, &self.me, config);
            self.engine.groups.restore_kept(kept);
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

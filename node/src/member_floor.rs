//! A group member's store alone, for the floor `hush bench gossip`
//! measures under `hush bench group`'s CPU per delivery.
//!
//! What the node does with each group message it has read, and before it
//! shows it, is keep it: sealed at rest, indexed for search, counted
//! unread, its digest kept so that a copy sent again is known. The bench's
//! bare swarms do none of that, so a floor without it leaves out a part
//! no member can skip. [`MemberStore`] does exactly the store's part of a
//! received group message, through the node's own [`Store`], and nothing
//! else of the node (no engine, no events, no receipts):
//! - each message is looked up, by its digest and then by its id, in one
//!   read of the store kept until the next commit lands (the loop's
//!   `group_snapshot`);
//! - a new one queues its digest and its record, the writes the engine
//!   asks for;
//! - what is queued is committed off the caller's task (`spawn_blocking`)
//!   once it has waited [`RIDE`], lazily, and durably once the oldest lazy
//!   commit is [`LAZY`] old: the loop's `EARLY_RIDE_WINDOW` and
//!   `LAZY_WINDOW`, so as many commits of each kind as a member of a busy
//!   group makes for the messages it receives. The windows are looked at
//!   as messages arrive (there is no timer): the last batch of a stream
//!   waits for the next message, which a bench's steady stream brings.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use hush_host::sealed_db::DbKey;
use hush_protocol::device::{DeviceLookup, SeenKey};
use hush_protocol::{Body, ConversationId, GroupId, Payload, SessionId};
use tokio::task::JoinHandle;

use crate::records::{MessageKind, MessageRecord, Status};
use crate::store::{Durability, Op, Snapshot, Store, StoreError};

/// How long received messages wait to share a commit (the loop's
/// `EARLY_RIDE_WINDOW`).
pub const RIDE: Duration = Duration::from_millis(250);
/// How long a lazy commit may stay off the disk (the loop's `LAZY_WINDOW`).
pub const LAZY: Duration = Duration::from_secs(1);

/// One member's store of the group messages it receives (see the module).
pub struct MemberStore {
    store: Arc<Store>,
    /// The read every lookup goes to, until the next commit lands.
    snapshot: Option<Snapshot>,
    ops: Vec<Op>,
    held_since: Option<Instant>,
    lazy_since: Option<Instant>,
    running: Option<JoinHandle<Result<(), StoreError>>>,
}

impl MemberStore {
    /// A new store at `path` (a file that does not exist yet), sealed under
    /// a fresh key and indexed, as a home's is.
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        let key = DbKey::random(&mut rand::thread_rng());
        Ok(Self {
            store: Arc::new(Store::open(path, &key)?),
            snapshot: None,
            ops: Vec::new(),
            held_since: None,
            lazy_since: None,
            running: None,
        })
    }

    /// Keeps a group message of `group` that a member has read (`session`
    /// and `digest` from its clear part, `payload` decrypted), as the node
    /// keeps one: false if it was kept before. A failed commit of earlier
    /// messages is returned here.
    pub fn receive(
        &mut self,
        group: &GroupId,
        session: &SessionId,
        digest: [u8; 32],
        payload: Payload,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.land()?;
        let snapshot = match self.snapshot.take() {
            Some(s) => s,
            None => self.store.snapshot()?,
        };
        let seen = SeenKey::of_group(session, digest);
        let conversation = ConversationId::group(group);
        let known = snapshot.seen(&seen)? || snapshot.message(&conversation, payload.id)?.is_some();
        self.snapshot = Some(snapshot);
        if known {
            return Ok(false);
        }
        let (timer_secs, body) = payload.body.untimed();
        let Body::Text(text) = body else {
            return Ok(false);
        };
        let record = MessageRecord {
            id: payload.id,
            from: payload.sender_account,
            outgoing: false,
            text,
            status: Status::Delivered,
            sent_at_ms: payload.id.millis(),
            stored_at_ms: now_ms,
            timer_secs,
            kind: MessageKind::Message,
        };
        self.ops
            .push(Op::PutSeenKey(seen.prefix, seen.digest, now_ms));
        self.ops.push(Op::PutMessage(conversation, record));
        self.held_since.get_or_insert_with(Instant::now);
        self.flush();
        Ok(true)
    }

    /// Takes the running commit's result if it has landed; the read kept
    /// before it no longer holds what it stored.
    fn land(&mut self) -> Result<(), StoreError> {
        if !self.running.as_ref().is_some_and(JoinHandle::is_finished) {
            return Ok(());
        }
        self.snapshot = None;
        match self.running.take().and_then(FutureExt::now_or_never) {
            Some(Ok(result)) => result,
            Some(Err(e)) => Err(StoreError::Storage(redb::StorageError::Io(
                std::io::Error::other(e),
            ))),
            None => Ok(()),
        }
    }

    /// Starts a commit of what is queued once it has waited [`RIDE`] and
    /// no commit is running.
    fn flush(&mut self) {
        if self.running.is_some() || self.held_since.is_none_or(|t| t.elapsed() < RIDE) {
            return;
        }
        self.held_since = None;
        let durability = if self.lazy_since.is_some_and(|t| t.elapsed() >= LAZY) {
            self.lazy_since = None;
            Durability::Now
        } else {
            self.lazy_since.get_or_insert_with(Instant::now);
            Durability::Lazy
        };
        let ops = std::mem::take(&mut self.ops);
        let store = Arc::clone(&self.store);
        self.running = Some(tokio::task::spawn_blocking(move || {
            store.apply(ops, durability)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_protocol::{AccountId, DeviceId, MessageId};

    fn payload(id: u128) -> Payload {
        Payload {
            sender_account: AccountId([1; 32]),
            sender_device: DeviceId([1; 32]),
            id: MessageId(id),
            body: Body::Text(format!("message {id}")),
        }
    }

    /// The floor must do the store's whole part: a message is kept, and a
    /// copy of it is then known by its digest or by its id.
    #[tokio::test]
    async fn a_received_message_is_kept_once_and_its_copies_are_known() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("member.redb");
        let mut member = MemberStore::create(&path).expect("store");
        let (group, session) = (GroupId([2; 32]), SessionId([3; 32]));
        assert!(
            member
                .receive(&group, &session, [4; 32], payload(1), 10)
                .expect("first")
        );
        // Queued until it has waited the ride window; the next message
        // starts the commit of both.
        tokio::time::sleep(RIDE).await;
        assert!(
            member
                .receive(&group, &session, [5; 32], payload(2), 11)
                .expect("second")
        );
        let running = member
            .running
            .take()
            .expect("a commit started after the ride window");
        running.await.expect("joined").expect("committed");
        member.snapshot = None;
        assert!(
            !member
                .receive(&group, &session, [4; 32], payload(1), 12)
                .expect("copy")
        );
        assert!(
            !member
                .receive(&group, &session, [9; 32], payload(2), 12)
                .expect("id again")
        );
        let stored = member.store.snapshot().expect("read");
        let conversation = ConversationId::group(&group);
        let record = stored
            .message(&conversation, MessageId(2))
            .expect("read")
            .expect("stored");
        assert_eq!(record.text, "message 2");
        assert_eq!(record.status, Status::Delivered);
    }
}

//! Group messages published again: those no peer on the topic took, and
//! our own that no member confirmed.
//!
//! A message handed to gossip can still be lost on every path at once:
//! the sender's link goes silent just as it publishes, the message waits
//! in connections that are then found dead and closed (every mesh peer's
//! and every relay's), and when the link comes back nobody, not even a
//! relay's history, holds it. Members that never saw it have nothing to
//! notice it by until the sender's next message, and the relays cannot
//! fill that gap.
//!
//! So the sender keeps each message it published until the first receipt
//! from another member (any member that read it got it from the topic,
//! which the relays on the topic carry too), and publishes it again at
//! [`RESEND_AFTER_MS`] otherwise. Watching starts when the host publishes
//! after the commit ([`super::GroupBook::watch_published`]), never for a
//! message whose batch failed: its ratchet step is not on disk, and sent
//! later it could share its message index with another after a restart.
//! The last try still falls inside gossip's duplicate window (two
//! minutes, `hush_host::gossip`): where the message did arrive, a copy
//! sent again is dropped by gossip itself, before it costs a member or a
//! relay anything more.
//!
//! ```text
//!  publish ─▶ watched ──receipt from a member──▶ forgotten
//!                │
//!                └─ +15 s, +45 s, +90 s with no receipt ─▶ published again ─▶ forgotten after the last
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;

use super::{GroupBook, GroupEffect};
use crate::{GroupId, MessageId};

/// When a message no member confirmed is published again, after its first
/// publication (the last within gossip's duplicate window of 120 s).
pub const RESEND_AFTER_MS: [u64; 3] = [15_000, 45_000, 90_000];
/// Published messages waiting for a peer on the topic, over all groups.
const MAX_UNPUBLISHED: usize = 4096;
/// Messages watched at most, over all groups (the oldest goes first).
const MAX_WATCHED: usize = 1024;
/// Their bytes at most.
const MAX_WATCHED_BYTES: usize = 8 * 1024 * 1024;

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + Hash + fmt::Display,
{
    /// One of our messages is stored and goes out now: it is published
    /// again unless a member confirms it ([`RESEND_AFTER_MS`]).
    pub fn watch_published(
        &mut self,
        now: crate::Now,
        message: MessageId,
        group: GroupId,
        topic: String,
        bytes: Vec<u8>,
    ) {
        self.unconfirmed
            .published(now.mono_ms, message, group, topic, bytes);
    }

    /// A published message no peer took: publish it again on the tick.
    pub fn unpublished(&mut self, id: GroupId, topic: String, bytes: Vec<u8>) {
        if self.unpublished.len() < MAX_UNPUBLISHED {
            self.unpublished.push_back((id, topic, bytes));
        }
    }

    /// On the tick: what waited for a peer, and our messages no member
    /// confirmed in time.
    pub(super) fn publish_again(&mut self, now_ms: u64) {
        let mut again = self.unconfirmed.due(now_ms);
        // One still waiting for a peer goes out once it finds one.
        again.retain(|(_, _, bytes)| !self.unpublished.iter().any(|(_, _, b)| b == bytes));
        for (group, topic, bytes) in std::mem::take(&mut self.unpublished)
            .into_iter()
            .chain(again)
        {
            self.effects.push_back(GroupEffect::Publish {
                group,
                topic,
                bytes,
            });
        }
    }
}

#[derive(Debug)]
struct Watched {
    group: GroupId,
    topic: String,
    bytes: Vec<u8>,
    /// When it was first published (mono ms).
    published_ms: u64,
    /// Times published again so far.
    tries: usize,
}

/// Our published messages no member has confirmed yet.
#[derive(Debug, Default)]
pub(super) struct Unconfirmed {
    watched: HashMap<MessageId, Watched>,
    /// Oldest first, to make room.
    order: VecDeque<MessageId>,
    bytes: usize,
}

impl Unconfirmed {
    /// A message of ours goes out now.
    pub(super) fn published(
        &mut self,
        now_ms: u64,
        id: MessageId,
        group: GroupId,
        topic: String,
        bytes: Vec<u8>,
    ) {
        while self.watched.len() >= MAX_WATCHED
            || (self.bytes + bytes.len() > MAX_WATCHED_BYTES && !self.watched.is_empty())
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.forget(&oldest);
        }
        self.forget(&id);
        self.bytes += bytes.len();
        self.order.push_back(id);
        self.watched.insert(
            id,
            Watched {
                group,
                topic,
                bytes,
                published_ms: now_ms,
                tries: 0,
            },
        );
    }

    /// A member's receipt named these messages of ours.
    pub(super) fn confirmed(&mut self, ids: &[MessageId]) {
        if self.watched.is_empty() {
            return;
        }
        for id in ids {
            self.forget(id);
        }
    }

    /// The group is gone (left, or forgotten): nothing of it goes out again.
    pub(super) fn drop_group(&mut self, group: &GroupId) {
        let gone: Vec<MessageId> = self
            .watched
            .iter()
            .filter(|(_, w)| w.group == *group)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.forget(&id);
        }
    }

    /// The messages due to go out again now: (group, topic, bytes).
    pub(super) fn due(&mut self, now_ms: u64) -> Vec<(GroupId, String, Vec<u8>)> {
        let mut due = Vec::new();
        let mut done = Vec::new();
        for (id, w) in &mut self.watched {
            let Some(after) = RESEND_AFTER_MS.get(w.tries) else {
                continue;
            };
            if now_ms.saturating_sub(w.published_ms) < *after {
                continue;
            }
            w.tries += 1;
            due.push((w.group, w.topic.clone(), w.bytes.clone()));
            if w.tries == RESEND_AFTER_MS.len() {
                done.push(*id);
            }
        }
        for id in done {
            self.forget(&id);
        }
        due
    }

    fn forget(&mut self, id: &MessageId) {
        if let Some(w) = self.watched.remove(id) {
            self.bytes -= w.bytes.len();
            self.order.retain(|o| o != id);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.watched.len()
    }
}

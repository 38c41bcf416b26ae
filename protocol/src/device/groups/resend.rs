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
//! A message is written to the store with the message itself
//! ([`GroupWrite::Unconfirmed`]) and dropped from it when it is forgotten
//! here. A node started again watches what the store still holds
//! ([`GroupBook::restore_unconfirmed`]) and publishes it once a peer is
//! there: a message written while nobody was reachable, or lost on the way
//! just before the node stopped, is not lost with the node's memory. The
//! clock of a message no peer took yet (every publication found no peer
//! on the topic) starts only when one does.
//!
//! ```text
//!  stored ─▶ publish ─▶ watched ──receipt from a member──▶ forgotten (and dropped from the store)
//!               ▲          │
//!   restart ────┘          ├─ no peer took it ─▶ waiting (clock stopped) ─▶ published on a tick
//!                          └─ +15 s, +45 s, +90 s with no receipt ─▶ published again ─▶ forgotten once a peer took the last
//! ```
//!
//! After the last resend the message is forgotten only when a peer took
//! that one: a last try that found nobody waits for a peer like any other,
//! and the store keeps it meanwhile.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;

use super::{GroupAfter, GroupBook, GroupEffect, GroupNotice, GroupWrite};
use crate::device::{Status, UnconfirmedRecord};
use crate::{GroupId, MessageId};

/// When a message no member confirmed is published again, after its first
/// publication (the last within gossip's duplicate window of 120 s).
pub const RESEND_AFTER_MS: [u64; 3] = [15_000, 45_000, 90_000];
/// Published messages waiting for a peer on the topic, over all groups,
/// besides our own watched ones.
pub(super) const MAX_UNPUBLISHED: usize = 4096;
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
        let me = self.account();
        if let Some(g) = self.groups.get(&group) {
            let members = g
                .state
                .joined()
                .map(|(a, _)| *a)
                .filter(|a| *a != me)
                .collect();
            self.tails
                .sent(now.mono_ms, message, group, &bytes, members);
        }
        self.unconfirmed
            .published(now.mono_ms, message, group, topic, bytes);
    }

    /// A published message no peer took: publish it again on the tick.
    /// `watch`: one of ours, whose resend clock stops until a peer takes it.
    pub fn unpublished(
        &mut self,
        id: GroupId,
        topic: String,
        bytes: Vec<u8>,
        watch: Option<MessageId>,
    ) {
        // One of ours still watched always waits: those are bounded by
        // `MAX_WATCHED` and each waits once (its clock stops until it goes
        // out). Any other waits only below `MAX_UNPUBLISHED`, and the queue
        // is emptied on every tick, so it holds about `MAX_UNPUBLISHED +
        // MAX_WATCHED` at most (more only for a tick, if more messages
        // than that were sent within it).
        let watched = watch.is_some_and(|message| self.unconfirmed.waiting(&message));
        if watched || self.unpublished.len() < MAX_UNPUBLISHED {
            self.unpublished.push_back((id, topic, bytes, watch));
        }
    }

    /// Whether our messages to `group` may still go out: not once we left
    /// it or were removed from it.
    pub(super) fn still_in(&self, group: &GroupId) -> bool {
        let me = self.account();
        self.groups
            .get(group)
            .is_some_and(|g| !g.record.left && g.state.members.contains_key(&me))
    }

    /// A peer on the topic took one of our messages (gossip published it):
    /// the first time, it reads `sent` ([`GroupNotice::Sent`]).
    pub fn taken(&mut self, group: GroupId, message: MessageId) {
        if !self.unconfirmed.taken(&message) {
            return;
        }
        let Some(g) = self.groups.get(&group) else {
            return;
        };
        let (conversation, name) = (g.conversation(), g.state.name.clone());
        self.effects.extend([
            GroupEffect::Write(GroupWrite::Status(conversation, message, Status::Sent)),
            GroupEffect::After(GroupAfter::Notice(Box::new(GroupNotice::Sent {
                group,
                name,
                id: message,
            }))),
        ]);
    }

    /// Whether one of our messages went out (a message no longer watched,
    /// confirmed or given up on, did).
    pub fn is_out(&self, message: &MessageId) -> bool {
        self.unconfirmed.is_out(message)
    }

    /// At start: one of our messages the store holds, not confirmed when
    /// the node stopped, with the status its history shows (`sent`: it
    /// went out before). It goes out once a peer is on the topic and is
    /// watched again from then. One of a group we are no longer in, or
    /// gone from our history (its timer ran out), is dropped.
    pub fn restore_unconfirmed(
        &mut self,
        message: MessageId,
        record: UnconfirmedRecord,
        status: Option<Status>,
    ) {
        let ours = self.still_in(&record.group);
        let Some(status) = status.filter(|_| ours) else {
            self.effects
                .push_back(GroupEffect::Write(GroupWrite::DropUnconfirmed(message)));
            return;
        };
        self.unconfirmed.restored(
            message,
            record.group,
            record.topic.clone(),
            record.bytes.clone(),
            status >= Status::Sent,
        );
        self.unpublished(record.group, record.topic, record.bytes, Some(message));
    }

    /// On the tick: what waited for a peer, and our messages no member
    /// confirmed in time.
    pub(super) fn publish_again(&mut self, now_ms: u64) {
        // A message still waiting for a peer has its clock stopped, so it
        // is never due beside itself.
        let again = self.unconfirmed.due(now_ms);
        let mut gone = Vec::new();
        for (group, topic, bytes, watch) in std::mem::take(&mut self.unpublished)
            .into_iter()
            .chain(again)
        {
            // We left the group or were removed from it since: ours stay
            // unsent (they read `pending`), as after a restart, and the
            // store lets them go. What its channel still has to say, our
            // leave among it, goes out.
            if watch.is_some() && !self.still_in(&group) {
                if !gone.contains(&group) {
                    gone.push(group);
                }
                continue;
            }
            if let Some(message) = watch {
                self.unconfirmed.going_out(&message, now_ms);
            }
            self.effects.push_back(GroupEffect::Publish {
                group,
                topic,
                bytes,
                watch,
            });
        }
        for group in gone {
            self.unconfirmed.drop_group(&group);
        }
        self.drop_forgotten();
    }

    /// The store lets go of the messages no longer watched.
    pub(super) fn drop_forgotten(&mut self) {
        for message in self.unconfirmed.forgotten.drain(..) {
            self.effects
                .push_back(GroupEffect::Write(GroupWrite::DropUnconfirmed(message)));
        }
    }
}

#[derive(Debug)]
struct Watched {
    group: GroupId,
    topic: String,
    bytes: Vec<u8>,
    /// When it was first published (mono ms); `None` while no peer took
    /// it (the clock starts when one does).
    published_ms: Option<u64>,
    /// Times published again so far.
    tries: usize,
    /// A peer took it at least once (it reads `sent`).
    out: bool,
}

/// Our published messages no member has confirmed yet.
#[derive(Debug, Default)]
pub(super) struct Unconfirmed {
    watched: HashMap<MessageId, Watched>,
    /// Oldest first, to make room.
    order: VecDeque<MessageId>,
    bytes: usize,
    /// Forgotten since the last tick: to be dropped from the store.
    forgotten: Vec<MessageId>,
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
        self.insert(Some(now_ms), false, id, group, topic, bytes);
    }

    /// A message of ours the store held at start: not published in this
    /// run yet.
    fn restored(
        &mut self,
        id: MessageId,
        group: GroupId,
        topic: String,
        bytes: Vec<u8>,
        out: bool,
    ) {
        self.insert(None, out, id, group, topic, bytes);
    }

    /// A peer took it: whether that is news (not watched: it may have
    /// been evicted, and raising `sent` again is harmless).
    /// After the last resend, the store keeps it until a peer takes that
    /// one too (it may have found none).
    fn taken(&mut self, id: &MessageId) -> bool {
        let Some(w) = self.watched.get_mut(id) else {
            return true;
        };
        let news = !std::mem::replace(&mut w.out, true);
        if w.tries == RESEND_AFTER_MS.len() {
            self.forget(id);
        }
        news
    }

    fn is_out(&self, id: &MessageId) -> bool {
        self.watched.get(id).is_none_or(|w| w.out)
    }

    /// No peer took it: its clock stops. Whether it is watched.
    fn waiting(&mut self, id: &MessageId) -> bool {
        let Some(w) = self.watched.get_mut(id) else {
            return false;
        };
        w.published_ms = None;
        true
    }

    /// It is handed to gossip now: its clock starts if it was stopped.
    fn going_out(&mut self, id: &MessageId, now_ms: u64) {
        if let Some(w) = self.watched.get_mut(id) {
            w.published_ms.get_or_insert(now_ms);
        }
    }

    fn insert(
        &mut self,
        published_ms: Option<u64>,
        out: bool,
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
        // Watched again (the same message): still the store's to keep,
        // and what went out stays out.
        let out = out || self.watched.get(&id).is_some_and(|w| w.out);
        self.remove(&id);
        self.bytes += bytes.len();
        self.order.push_back(id);
        self.watched.insert(
            id,
            Watched {
                group,
                topic,
                bytes,
                published_ms,
                tries: 0,
                out,
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

    /// The messages due to go out again now: (group, topic, bytes, id).
    #[allow(clippy::type_complexity)]
    fn due(&mut self, now_ms: u64) -> Vec<(GroupId, String, Vec<u8>, Option<MessageId>)> {
        let mut due = Vec::new();
        for (id, w) in &mut self.watched {
            let (Some(after), Some(published_ms)) = (RESEND_AFTER_MS.get(w.tries), w.published_ms)
            else {
                continue;
            };
            if now_ms.saturating_sub(published_ms) < *after {
                continue;
            }
            w.tries += 1;
            due.push((w.group, w.topic.clone(), w.bytes.clone(), Some(*id)));
        }
        due
    }

    /// No longer watched, and dropped from the store on the tick.
    fn forget(&mut self, id: &MessageId) {
        if self.remove(id) {
            self.forgotten.push(*id);
        }
    }

    fn remove(&mut self, id: &MessageId) -> bool {
        let Some(w) = self.watched.remove(id) else {
            return false;
        };
        self.bytes -= w.bytes.len();
        self.order.retain(|o| o != id);
        true
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.watched.len()
    }
}

//! When the receipt counts of a group's messages are told (`group_receipt`
//! events).
//!
//! Each member answers a busy group's author once per second or two, naming
//! every message it got since (protocol.md §11.6, "Receipts"), so after
//! each of its commits the author counted, and told, the receipts of some
//! 50 to 100 messages again; with 50 members each message was counted 49
//! times (docs/benchmarks.md, "Receipt counts told at most four times a
//! second"). The messages whose receipts landed now wait for the loop's
//! tick (at most 100 ms after a landing: any event brings the busy tick
//! back), which tells a group's counts at most once per [`COUNTS_EVERY`],
//! each message once however many receipts for it landed meanwhile. What
//! is told is always what the store holds when it is told.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use hush_protocol::{GroupId, MessageId};

use super::EventLoop;
use crate::view::Event;

/// A group's counts are told at most this often.
pub(super) const COUNTS_EVERY: Duration = Duration::from_millis(250);
/// Messages of one group waiting to have their counts told: at this many
/// they are told at once (the set stays bounded however fast receipts come).
const MAX_WAITING: usize = 4096;

/// The messages of each group whose receipts landed but whose counts were
/// not told yet, and when each group's were last told.
#[derive(Debug, Default)]
pub(super) struct CountsDue {
    groups: HashMap<GroupId, Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    ids: BTreeSet<MessageId>,
    told: Option<Instant>,
}

impl CountsDue {
    /// Receipts for `ids` of `group` landed at `now`. They wait for
    /// [`Self::due`], unless the group's waiting set reached its bound: then
    /// the messages whose counts are to be told now.
    pub(super) fn landed(
        &mut self,
        group: GroupId,
        ids: impl IntoIterator<Item = MessageId>,
        now: Instant,
    ) -> Option<Vec<MessageId>> {
        let w = self.groups.entry(group).or_default();
        w.ids.extend(ids);
        (w.ids.len() >= MAX_WAITING).then(|| w.take(now))
    }

    /// The groups whose counts are due at `now` (some wait, and none were
    /// told in the last [`COUNTS_EVERY`]), with the messages to tell. A
    /// group with none waiting is forgotten once its window is over.
    pub(super) fn due(&mut self, now: Instant) -> Vec<(GroupId, Vec<MessageId>)> {
        let mut due = Vec::new();
        self.groups.retain(|group, w| {
            let rested = w
                .told
                .is_none_or(|told| now.duration_since(told) >= COUNTS_EVERY);
            if !rested {
                return true;
            }
            if w.ids.is_empty() {
                return false;
            }
            due.push((*group, w.take(now)));
            true
        });
        due
    }

    /// Everything still waiting (on shutdown).
    pub(super) fn all(&mut self) -> Vec<(GroupId, Vec<MessageId>)> {
        self.groups
            .drain()
            .filter(|(_, w)| !w.ids.is_empty())
            .map(|(group, w)| (group, w.ids.into_iter().collect()))
            .collect()
    }
}

impl Waiting {
    fn take(&mut self, now: Instant) -> Vec<MessageId> {
        self.told = Some(now);
        std::mem::take(&mut self.ids).into_iter().collect()
    }
}

impl EventLoop {
    /// After a commit: the messages whose receipts it stored wait for the
    /// tick to have their counts told (`counts.rs`).
    pub(super) fn emit_receipt_counts(&mut self, committed: Vec<(GroupId, Vec<MessageId>)>) {
        let now = Instant::now();
        for (group, ids) in committed {
            if let Some(ids) = self.counts_due.landed(group, ids, now) {
                self.tell_counts(group, &ids);
            }
        }
    }

    /// The counts whose wait is over (on the tick).
    pub(super) fn tell_due_counts(&mut self) {
        for (group, ids) in self.counts_due.due(Instant::now()) {
            self.tell_counts(group, &ids);
        }
    }

    /// Every count still waiting (on shutdown, after the last commit).
    pub(super) fn tell_waiting_counts(&mut self) {
        for (group, ids) in self.counts_due.all() {
            self.tell_counts(group, &ids);
        }
    }

    /// `GroupReceipt` events for `ids` of `group`, with the counts stored.
    fn tell_counts(&mut self, group: GroupId, ids: &[MessageId]) {
        let Some(g) = self.engine.groups.group(&group) else {
            return;
        };
        let counts = match self.store.receipt_counts(&g.conversation(), ids) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(group = %group, error = %e, "could not count receipts");
                return;
            }
        };
        for (message, delivered, read) in counts {
            self.events.send(Event::GroupReceipt {
                group: g.state().name.clone(),
                id: message.to_string(),
                delivered,
                read,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ns: &[u128]) -> Vec<MessageId> {
        ns.iter().map(|n| MessageId(*n)).collect()
    }

    #[test]
    fn counts_are_told_on_the_tick_at_most_every_250_ms_each_message_once() {
        let mut due = CountsDue::default();
        let g = GroupId([1; 32]);
        let t0 = Instant::now();
        assert!(due.due(t0).is_empty());
        // Landed: waiting for the tick, each message once.
        assert_eq!(due.landed(g, ids(&[2, 1, 2]), t0), None);
        assert_eq!(due.due(t0), vec![(g, ids(&[1, 2]))]);
        assert!(due.due(t0).is_empty());
        // Within the window: waiting, even on a tick.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(due.landed(g, ids(&[2, 3]), t1), None);
        assert_eq!(due.landed(g, ids(&[3, 4]), t1), None);
        assert!(due.due(t1).is_empty());
        // The window over: the tick tells what waited, once.
        let t2 = t0 + COUNTS_EVERY;
        assert_eq!(due.due(t2), vec![(g, ids(&[2, 3, 4]))]);
        assert!(due.due(t2).is_empty());
        // Nothing for a window: forgotten, and told on the next tick.
        let t3 = t2 + COUNTS_EVERY;
        assert!(due.due(t3).is_empty());
        assert!(due.groups.is_empty());
        assert_eq!(due.landed(g, ids(&[7]), t3), None);
        assert_eq!(due.due(t3), vec![(g, ids(&[7]))]);
    }

    #[test]
    fn groups_wait_apart_and_shutdown_tells_everything_left() {
        let mut due = CountsDue::default();
        let (a, b) = (GroupId([1; 32]), GroupId([2; 32]));
        let t0 = Instant::now();
        assert_eq!(due.landed(a, ids(&[1]), t0), None);
        assert_eq!(due.due(t0), vec![(a, ids(&[1]))]);
        assert_eq!(due.landed(a, ids(&[2]), t0), None);
        assert_eq!(due.landed(b, ids(&[8]), t0), None);
        // b rested: told; a waits for its window.
        assert_eq!(due.due(t0), vec![(b, ids(&[8]))]);
        assert_eq!(due.landed(b, ids(&[9]), t0), None);
        let mut left = due.all();
        left.sort();
        assert_eq!(left, vec![(a, ids(&[2])), (b, ids(&[9]))]);
        assert!(due.all().is_empty());
    }

    #[test]
    fn a_flood_of_receipts_is_told_before_the_set_outgrows_its_bound() {
        let mut due = CountsDue::default();
        let g = GroupId([1; 32]);
        let t0 = Instant::now();
        assert_eq!(due.landed(g, ids(&[0]), t0), None);
        let many: Vec<MessageId> = (1..MAX_WAITING as u128).map(MessageId).collect();
        let told = due.landed(g, many, t0).expect("told at the bound");
        assert_eq!(told.len(), MAX_WAITING);
        assert_eq!(due.groups[&g].ids.len(), 0);
    }
}

//! Group messages a member missed on the topic.
//!
//! A sender's Megolm session numbers its messages 0, 1, 2, …, so a member
//! that reads index 7 after 5 knows 6 went past it. Gossipsub offers a
//! message again for one heartbeat only; after that a home relay's history
//! is the only place it is (protocol.md §11.7), and a node otherwise reads
//! that history only on joining, on a new publish key and when a relay
//! connects. So a gap still open [`CATCH_UP_WAIT_MS`] after it showed
//! makes the node read its home relays' history of the group's topics from
//! its cursors, at most once every [`CATCH_UP_EVERY_MS`] per group: a
//! member that skips indices on purpose costs no more than that.

use std::collections::BTreeSet;

use super::*;

/// How long a gap may be a message still on its way (gossip reorders)
/// before the relays are asked.
pub const CATCH_UP_WAIT_MS: u64 = 3_000;
/// Catch-ups of one group are at least this far apart.
pub const CATCH_UP_EVERY_MS: u64 = 30_000;
/// Missing indices remembered per session; beyond, the gap stays open
/// until the catch-up all the same.
const MAX_MISSING: usize = 256;

/// The indices of one inbound session a member has not read.
#[derive(Debug, Default)]
pub(super) struct IndexGaps {
    highest: Option<u32>,
    missing: BTreeSet<u32>,
}

impl IndexGaps {
    /// Notes a message read at `index`; whether it opened a gap.
    pub(super) fn read(&mut self, index: u32) -> bool {
        match self.highest {
            // The first read of this run: what came before is history.
            None => {
                self.highest = Some(index);
                false
            }
            Some(highest) if index > highest => {
                let room = MAX_MISSING.saturating_sub(self.missing.len());
                let skipped = (highest + 1..index).take(room);
                self.missing.extend(skipped);
                self.highest = Some(index);
                index > highest + 1
            }
            Some(_) => {
                self.missing.remove(&index);
                false
            }
        }
    }

    fn is_open(&self) -> bool {
        !self.missing.is_empty()
    }
}

/// When a group's catch-up is due, and when the last one went.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CatchUp {
    due_ms: Option<u64>,
    last_ms: Option<u64>,
}

impl CatchUp {
    /// A gap opened at `now` (monotonic ms).
    pub(super) fn gap(&mut self, now: u64) {
        if self.due_ms.is_none() {
            let after_last = self.last_ms.map_or(0, |last| last + CATCH_UP_EVERY_MS);
            self.due_ms = Some((now + CATCH_UP_WAIT_MS).max(after_last));
        }
    }
}

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + Hash + fmt::Display,
{
    /// On the tick: the groups whose gaps stayed open past their wait ask
    /// the relays' history ([`GroupEffect::CatchUp`]) and two members
    /// ([`recent`](super::recent)); indices neither brings are not asked
    /// for again.
    pub(super) fn catch_up_tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now.mono_ms;
        let due: Vec<GroupId> = self
            .catch_ups
            .iter()
            .filter(|(_, c)| c.due_ms.is_some_and(|due| now >= due))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let mut open = false;
            let mut asks = Vec::new();
            for (session, inbound) in self.inbound.iter_mut().filter(|(_, i)| i.group == id) {
                if inbound.gaps.is_open() {
                    open = true;
                    let missing = std::mem::take(&mut inbound.gaps.missing);
                    asks.push((*session, inbound.account, missing.into_iter().collect()));
                }
            }
            // Members too: the relays may lack it, or there are none.
            for (session, maker, indices) in asks.into_iter().take(recent::MAX_SESSIONS_ASKED) {
                self.ask_members(ctx, id, session, maker, indices);
            }
            if open && let Some(g) = self.groups.get(&id) {
                for topic in g.topics() {
                    self.effects.push_back(GroupEffect::CatchUp {
                        group: id,
                        topic: topic.to_owned(),
                    });
                }
            }
            if let Some(c) = self.catch_ups.get_mut(&id) {
                c.due_ms = None;
                if open {
                    c.last_ms = Some(now);
                }
            }
        }
        let groups = &self.groups;
        self.catch_ups.retain(|id, c| {
            groups.contains_key(id)
                && (c.due_ms.is_some()
                    || c.last_ms.is_some_and(|last| now < last + CATCH_UP_EVERY_MS))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::IndexGaps;

    #[test]
    fn indices_read_in_any_order_close_the_gaps_they_opened() {
        let mut gaps = IndexGaps::default();
        assert!(!gaps.read(4), "the first read of a run opens nothing");
        assert!(!gaps.read(5));
        assert!(gaps.read(8));
        assert!(gaps.is_open());
        assert!(!gaps.read(7));
        assert!(gaps.is_open());
        assert!(!gaps.read(6));
        assert!(!gaps.is_open());
        assert!(!gaps.read(2), "before the first read: history");
        assert!(!gaps.is_open());
    }

    #[test]
    fn a_wide_gap_is_remembered_within_its_bound() {
        let mut gaps = IndexGaps::default();
        gaps.read(0);
        assert!(gaps.read(u32::MAX));
        assert_eq!(gaps.missing.len(), super::MAX_MISSING);
        assert!(!gaps.read(u32::MAX), "read again: no overflow, no new gap");
    }
}

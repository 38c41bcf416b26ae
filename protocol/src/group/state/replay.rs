//! Folding again from the middle: the last whole fold's order and a few
//! states along it, so ops that arrive out of order (joins of a group
//! forming, each concurrent with the others) are folded from the nearest
//! kept state before them instead of from the `Create`.
//!
//! Why it is exact: the fold's order is the smallest topological order by
//! `(at, hash)` (parents first). A new op no op here names has no children
//! in it, so adding it moves no other op: it goes in at the first place
//! after its last parent whose op sorts after it. Every op before that
//! place is applied to the same state as before; the fold runs again from
//! there. Rule 4 (removal wins) can change what came before, so a set
//! holding any `Remove` takes the whole fold.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::{GroupState, OpSet, Placed};
use crate::group::op::{Action, OpHash};
use crate::ids::GroupId;

/// How far apart kept states are for an order of `len` ops: at most about
/// eight states (each holds every member's card), at least 32 ops apart.
pub(super) fn checkpoint_every(len: usize) -> usize {
    (len / 8).max(32)
}

/// Most states a memo keeps; past that (an order grown long by ops added
/// at its end) the next whole fold spaces them out again.
const MAX_STATES: usize = 16;

/// Where an [`OpSet`] keeps its [`FoldMemo`]. A copy of the set starts
/// without one: it is a cache, and copies are probes folded once.
#[derive(Debug, Default)]
pub(super) struct Memo(RefCell<Option<FoldMemo>>);

impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Memo {
    pub(super) fn clear(&mut self) {
        *self.0.get_mut() = None;
    }
}

/// The last whole fold of a set with no void op, as far as a replay needs.
#[derive(Debug, Clone)]
pub(super) struct FoldMemo {
    id: GroupId,
    /// The set's generation it matches.
    generation: u64,
    /// The ops in the causal order, and whether each took effect.
    order: Vec<(OpHash, bool)>,
    /// `states[k]`: the state before `order[k * every]` (without idle
    /// counts, which are added at the end).
    states: Vec<GroupState>,
    every: usize,
}

impl OpSet {
    /// The causal order of group `id`'s ops (see `OpSet::causal_order`) as
    /// the last fold left it, if nothing changed since.
    pub(in crate::group) fn memo_order(&self, id: GroupId) -> Option<Vec<Placed<'_>>> {
        let slot = self.memo.0.borrow();
        let memo = slot.as_ref()?;
        if memo.id != id || memo.generation != self.generation {
            return None;
        }
        memo.order
            .iter()
            .map(|(h, _)| self.ops.get(h).map(|op| (*h, op)))
            .collect()
    }

    /// Keeps what the whole fold just made.
    pub(super) fn remember_fold(
        &self,
        id: GroupId,
        order: &[Placed<'_>],
        took: &HashSet<&OpHash>,
        every: usize,
        states: Vec<GroupState>,
    ) {
        let memo = (!states.is_empty()).then(|| FoldMemo {
            id,
            generation: self.generation,
            order: order.iter().map(|(h, _)| (*h, took.contains(h))).collect(),
            states,
            every,
        });
        *self.memo.0.borrow_mut() = memo;
    }

    /// The `fresh` ops, folded at the end of the order (`placed`: in order,
    /// and whether each took effect), go at the end of the memo.
    pub(super) fn memo_append(&self, fresh: usize, placed: &[(OpHash, bool)]) {
        let mut slot = self.memo.0.borrow_mut();
        let Some(memo) = slot.as_mut() else {
            return;
        };
        if memo.generation + fresh as u64 != self.generation {
            *slot = None;
            return;
        }
        memo.order.extend_from_slice(placed);
        memo.generation = self.generation;
    }

    /// [`OpSet::fold_after`] from the nearest kept state before the new
    /// ops; `None` where it does not apply (and the memo is dropped: the
    /// whole fold makes it again).
    pub(in crate::group) fn replay(
        &self,
        id: GroupId,
        new: &[OpHash],
    ) -> Option<(GroupState, Vec<OpHash>)> {
        let mut slot = self.memo.0.borrow_mut();
        let memo = slot.take()?;
        if memo.id != id || memo.generation + new.len() as u64 != self.generation {
            return None;
        }
        if self
            .ops
            .values()
            .any(|op| op.group != id || matches!(op.action, Action::Remove { .. }))
        {
            return None;
        }
        // An op here that names a new one was waiting for it: it takes
        // part now, in a place the memo does not have.
        let fresh: HashSet<&OpHash> = new.iter().collect();
        let mut named_by_fresh: HashMap<&OpHash, u32> = HashMap::new();
        for h in new {
            for p in self.ops.get(h).map(|op| op.parents.as_slice())? {
                *named_by_fresh.entry(p).or_default() += 1;
            }
        }
        if fresh.iter().any(|h| {
            self.named.get(*h).copied().unwrap_or(0) > named_by_fresh.get(h).copied().unwrap_or(0)
        }) {
            return None;
        }
        let (order, first) = self.insert_into(memo.order, new)?;
        let mut memo = FoldMemo { order, ..memo };
        let (state, idle) = self.fold_from(&mut memo, first)?;
        if memo.states.len() <= MAX_STATES {
            *slot = Some(memo);
        }
        Some((state, idle))
    }

    /// `order` with the new ops placed in it, parents first; and where the
    /// first of them went (the order's length if none takes part).
    fn insert_into(
        &self,
        mut order: Vec<(OpHash, bool)>,
        new: &[OpHash],
    ) -> Option<(Vec<(OpHash, bool)>, usize)> {
        let mut at: HashMap<OpHash, usize> = order
            .iter()
            .enumerate()
            .map(|(i, (h, _))| (*h, i))
            .collect();
        let mut first = order.len();
        let mut left: Vec<&OpHash> = new.iter().collect();
        loop {
            // The next new op whose parents are all in the order.
            let Some(i) = left.iter().position(|h| {
                self.ops
                    .get(*h)
                    .is_some_and(|op| op.parents.iter().all(|p| at.contains_key(p)))
            }) else {
                // The rest lack a parent that takes part: outside the order.
                return Some((order, first));
            };
            let hash = *left.remove(i);
            let op = self.ops.get(&hash)?;
            if !self.placed_here(op, |p| at.contains_key(p)) {
                // A create rule broken or backdated before a parent.
                continue;
            }
            let after_parents = op
                .parents
                .iter()
                .filter_map(|p| at.get(p))
                .max()
                .map_or(0, |q| q + 1);
            let key = (op.at, hash);
            let place = order[after_parents..]
                .iter()
                .position(|(h, _)| self.ops.get(h).is_some_and(|o| (o.at, *h) > key))
                .map_or(order.len(), |k| after_parents + k);
            order.insert(place, (hash, false));
            for (k, (h, _)) in order.iter().enumerate().skip(place) {
                at.insert(*h, k);
            }
            first = first.min(place);
        }
    }

    /// Applies `memo.order` from the kept state at or before `first`,
    /// keeping states along the way; the state and the ops of the group
    /// that took no effect.
    fn fold_from(&self, memo: &mut FoldMemo, first: usize) -> Option<(GroupState, Vec<OpHash>)> {
        let k = (first / memo.every).min(memo.states.len().checked_sub(1)?);
        memo.states.truncate(k + 1);
        let mut state = memo.states.get(k)?.clone();
        let start = k * memo.every;
        for i in start..memo.order.len() {
            if i > start && i % memo.every == 0 {
                memo.states.push(state.clone());
            }
            let hash = memo.order.get(i)?.0;
            let op = self.ops.get(&hash)?;
            let took = self.take(&mut state, &hash, op);
            if let Some(entry) = memo.order.get_mut(i) {
                entry.1 = took;
            }
        }
        memo.generation = self.generation;
        let took: HashSet<&OpHash> = memo
            .order
            .iter()
            .filter(|(_, t)| *t)
            .map(|(h, _)| h)
            .collect();
        let mut idle = Vec::new();
        for (hash, op) in &self.ops {
            if op.group == memo.id && !took.contains(hash) {
                *state.idle.entry(op.author).or_default() += 1;
                idle.push(*hash);
            }
        }
        Some((state, idle))
    }
}

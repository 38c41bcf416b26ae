//! Folding after new ops without folding the whole set
//! ([`OpSet::fold_after`]): onto the last state when the new ops come last
//! in the fold's order ([`OpSet::extend`]), or again from the middle
//! ([`OpSet::replay`]): the last whole fold's order and a few states along
//! it, so ops that arrive out of order (joins of a group forming, each
//! concurrent with the others) are folded from the nearest kept state
//! before them instead of from the `Create`.
//!
//! Why the replay is exact: the fold's order is the smallest topological
//! order by `(at, hash)` (parents first). A new op no op here names has no
//! children in it, so adding it moves no other op: it goes in at the first
//! place after its last parent whose op sorts after it. Every op before
//! that place is applied to the same state as before; the fold runs again
//! from there. Rule 4 (removal wins) can change what came before, so a set
//! holding any `Remove` takes the whole fold.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::{GroupState, OpSet, Placed};
use crate::group::op::{Action, GroupOp, OpHash};
use crate::ids::{AccountId, GroupId, MessageId};

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
    /// The fold of this set given `prev`, the fold of it without the ops
    /// `new` (just inserted), and ops of `id` that took no effect: every
    /// one of `new` that did not (and after a whole fold, all of them).
    ///
    /// When the new ops come after every op before them in the whole
    /// fold's order, they are applied on `prev` in that order, which costs
    /// one pass over the new ops instead of a whole fold. A new op comes
    /// after every op placed before it when its parents are all placed
    /// and either it names every head of those (it descends from all of
    /// them: one member's change at a time), or it is later by `(at, hash)`
    /// than every one of them and the earliest of the new ops left (it is
    /// concurrent with some, as joins of many members at once are, and the
    /// order puts it last). Rule 4 (removal wins) may change what came
    /// before, so a new `Remove`, or a new op whose author a `Remove` here
    /// names, takes the whole fold; so does an op here that was waiting
    /// for a new one. Otherwise the whole set is folded again.
    ///
    /// Otherwise, when no op here is a `Remove`, the new ops are put into
    /// the last fold's order (an op with no children goes in without moving
    /// any other) and the fold runs again from the nearest state kept
    /// before the first of them (`OpSet::replay`): late joins of a group forming
    /// cost a part of a fold, not a whole one.
    pub fn fold_after(
        &self,
        id: GroupId,
        prev: GroupState,
        new: &[OpHash],
    ) -> (GroupState, Vec<OpHash>) {
        self.extend(id, prev, new)
            .or_else(|| self.replay(id, new))
            .unwrap_or_else(|| self.fold_and_idle(id))
    }

    /// [`OpSet::fold_after`]'s fast path; `None` where it does not apply.
    pub(in crate::group) fn extend(
        &self,
        id: GroupId,
        prev: GroupState,
        new: &[OpHash],
    ) -> Option<(GroupState, Vec<OpHash>)> {
        let fresh: HashSet<&OpHash> = new.iter().collect();
        if new.is_empty() || fresh.iter().any(|h| !self.ops.contains_key(*h)) {
            return None;
        }
        // Every op before the new ones is placed (all ops are one group's
        // here: a set holds one group), and which were heads.
        if self.misplaced.iter().any(|h| !fresh.contains(h))
            || self.ops.values().next().is_some_and(|op| op.group != id)
        {
            return None;
        }
        // An op here that names a new one was waiting for it: it takes part
        // now, and the state before did not count it.
        let named_by_fresh = self.named_by(new);
        if self.waited_for(&fresh, &named_by_fresh) {
            return None;
        }
        let mut removed: HashSet<&AccountId> = HashSet::new();
        // The latest op placed so far, by the fold's tie-break.
        let mut latest: Option<(MessageId, OpHash)> = None;
        for (hash, op) in &self.ops {
            if let Action::Remove { account } = &op.action {
                removed.insert(account);
            }
            if !fresh.contains(hash) {
                latest = latest.max(Some((op.at, *hash)));
            }
        }
        let mut frontier: HashSet<OpHash> = self
            .heads
            .iter()
            .filter(|h| !fresh.contains(h))
            .copied()
            .collect();
        for (p, n) in &named_by_fresh {
            if !fresh.contains(*p) && self.named.get(*p) == Some(n) {
                frontier.insert(**p);
            }
        }
        let mut state = prev;
        let mut idle = Vec::new();
        let mut left: Vec<(&OpHash, &GroupOp)> = Vec::with_capacity(new.len());
        for h in new {
            let op = self.ops.get(h)?;
            if op.group != id
                || matches!(op.action, Action::Remove { .. })
                || removed.contains(&op.author)
            {
                return None;
            }
            left.push((h, op));
        }
        let mut done: HashSet<OpHash> = HashSet::new();
        let mut placed = Vec::with_capacity(new.len());
        while !left.is_empty() {
            let ready =
                |op: &GroupOp| self.placed_here(op, |p| !fresh.contains(p) || done.contains(p));
            let after_all = left.iter().position(|(_, op)| {
                let parents: HashSet<&OpHash> = op.parents.iter().collect();
                frontier.iter().all(|f| parents.contains(f)) && ready(op)
            });
            let at = match after_all {
                Some(at) => at,
                None => {
                    // The earliest ready op left, if later than all placed.
                    let (at, (hash, op)) = left
                        .iter()
                        .enumerate()
                        .filter(|(_, (_, op))| ready(op))
                        .min_by_key(|(_, (hash, op))| (op.at, **hash))?;
                    if latest.is_some_and(|l| l >= (op.at, **hash)) {
                        return None;
                    }
                    at
                }
            };
            let (hash, op) = left.remove(at);
            if !self.take(&mut state, hash, op) {
                *state.idle.entry(op.author).or_default() += 1;
                idle.push(*hash);
            }
            done.insert(*hash);
            placed.push((*hash, !idle.contains(hash)));
            latest = latest.max(Some((op.at, *hash)));
            for p in &op.parents {
                frontier.remove(p);
            }
            frontier.insert(*hash);
        }
        self.memo_append(new.len(), &placed);
        Some((state, idle))
    }

    /// How many times the ops `new` name each op.
    fn named_by<'a>(&'a self, new: &[OpHash]) -> HashMap<&'a OpHash, u32> {
        let mut named: HashMap<&OpHash, u32> = HashMap::new();
        for op in new.iter().filter_map(|h| self.ops.get(h)) {
            for p in &op.parents {
                *named.entry(p).or_default() += 1;
            }
        }
        named
    }

    /// Whether an op here, other than the `fresh` ones (which name the ops
    /// `named_by_fresh` counts), names one of them: it waited for it.
    fn waited_for(&self, fresh: &HashSet<&OpHash>, named_by_fresh: &HashMap<&OpHash, u32>) -> bool {
        fresh.iter().any(|h| {
            self.named.get(*h).copied().unwrap_or(0) > named_by_fresh.get(h).copied().unwrap_or(0)
        })
    }
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
        if fresh.iter().any(|h| !self.ops.contains_key(*h))
            || self.waited_for(&fresh, &self.named_by(new))
        {
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

//! The heads of an op set: what a new op names as its parents, what a
//! member announces and asks with, and what a holder of given heads lacks.

use std::collections::HashSet;

use super::{OpSet, Placed};
use crate::group::MAX_OP_PARENTS;
use crate::group::op::{GroupOp, OpHash};
use crate::group::state::GroupState;
use crate::ids::{AccountId, GroupId};

impl OpSet {
    /// The parents a new op by `author` names (at most [`MAX_OP_PARENTS`]):
    /// the heads of the complete ops (those whose every ancestor is here), so
    /// our op never waits on an op we lack. The author's own standing ops
    /// come first (its ops count only if they descend from them), then the
    /// newest.
    pub fn heads(&self, id: GroupId, author: &AccountId) -> Vec<OpHash> {
        self.heads_given(id, author, None)
    }

    /// [`OpSet::heads`], given `state`, the fold of this set (so it is not
    /// folded again): with every op placed, the heads are known without
    /// ordering the set.
    pub fn heads_given(
        &self,
        id: GroupId,
        author: &AccountId,
        state: Option<&GroupState>,
    ) -> Vec<OpHash> {
        let mut heads = self.complete_placed(id);
        let folded;
        let state = match state {
            Some(s) => s,
            None => {
                folded = self.fold(id);
                &folded
            }
        };
        let standing: Vec<OpHash> = state
            .members
            .get(author)
            .map(|m| [Some(m.granted.1), m.admitted])
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        heads.sort_by_key(|(h, op)| (!standing.contains(h), std::cmp::Reverse((op.at, *h))));
        heads
            .into_iter()
            .take(MAX_OP_PARENTS)
            .map(|(h, _)| h)
            .collect()
    }

    /// The ops of group `id` no op here names, the newest first, at most
    /// [`MAX_HEADS`](crate::group::MAX_HEADS).
    pub fn all_heads(&self, id: GroupId) -> Vec<OpHash> {
        newest_heads(self.placed_heads(id))
    }

    /// [`OpSet::all_heads`] of the complete ops only (those whose every
    /// ancestor is here): what a member announces on the group's channel
    /// and asks with, since whoever reads heads takes every ancestor of
    /// them as held.
    pub fn complete_heads(&self, id: GroupId) -> Vec<OpHash> {
        newest_heads(self.complete_placed(id))
    }

    fn placed_heads(&self, id: GroupId) -> Vec<Placed<'_>> {
        self.heads
            .iter()
            .filter_map(|h| self.ops.get(h).map(|op| (*h, op)))
            .filter(|(_, op)| op.group == id)
            .collect()
    }

    /// The complete ops of `id` no complete op names (with every op
    /// placed, the heads; otherwise from the causal order).
    fn complete_placed(&self, id: GroupId) -> Vec<Placed<'_>> {
        if self.misplaced.is_empty() {
            return self.placed_heads(id);
        }
        // The last fold's order, when it is of this set as it is now.
        let order = self.memo_order(id).unwrap_or_else(|| self.causal_order(id));
        let named: HashSet<&OpHash> = order.iter().flat_map(|(_, op)| &op.parents).collect();
        order
            .into_iter()
            .filter(|(h, _)| !named.contains(h))
            .collect()
    }

    /// The ops here that a holder of `heads` lacks, as far as we can tell,
    /// oldest first: the heads of theirs we hold hide what is below them;
    /// those we lack hide their ancestry from us (two sides of concurrent
    /// joins each hold one the other lacks). Holding none of theirs, our
    /// own heads: whatever they lack below those, their next heads say.
    pub fn lacked_by(&self, id: GroupId, heads: &[OpHash]) -> Vec<OpHash> {
        let held: Vec<OpHash> = heads
            .iter()
            .filter(|h| self.ops.contains_key(*h))
            .copied()
            .collect();
        if held.is_empty() {
            let theirs: HashSet<&OpHash> = heads.iter().collect();
            let mut ours: Vec<OpHash> = self.all_heads(id);
            ours.retain(|h| !theirs.contains(h));
            ours.reverse();
            return ours;
        }
        self.not_below(held).into_iter().map(|(h, _)| h).collect()
    }

    /// Ops here that are neither in `tips` nor among their ancestors,
    /// oldest first.
    fn not_below(&self, tips: Vec<OpHash>) -> Vec<Placed<'_>> {
        let mut seen: HashSet<OpHash> = HashSet::new();
        let mut stack = tips;
        while let Some(h) = stack.pop() {
            if seen.insert(h)
                && let Some(o) = self.ops.get(&h)
            {
                stack.extend(o.parents.iter().copied());
            }
        }
        let mut out: Vec<Placed<'_>> = self
            .ops
            .iter()
            .filter(|(h, _)| !seen.contains(*h))
            .map(|(h, o)| (*h, o))
            .collect();
        out.sort_by_key(|(_, o)| o.at);
        out
    }

    /// Ops here that `op`'s author had not seen when it made it: neither
    /// `op` nor among its ancestors.
    pub fn unseen_by(&self, op: &GroupOp) -> Vec<&GroupOp> {
        let hash = op.hash();
        let mut out = self.not_below(op.parents.clone());
        out.retain(|(h, _)| *h != hash);
        out.into_iter().map(|(_, o)| o).collect()
    }
}

/// The newest `heads` by `(at, hash)`, at most [`MAX_HEADS`](crate::group::MAX_HEADS).
fn newest_heads(mut heads: Vec<Placed<'_>>) -> Vec<OpHash> {
    heads.sort_by_key(|(h, op)| std::cmp::Reverse((op.at, *h)));
    heads
        .into_iter()
        .take(crate::group::MAX_HEADS)
        .map(|(h, _)| h)
        .collect()
}

//! What a set of ops folds into, and the set a member holds.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use thiserror::Error;

use super::op::{Action, GroupOp, MemberStatus, OpHash, Role};
use super::{DEFAULT_MEMBER_LIMIT, MAX_MEMBER_LIMIT};
use crate::card::ContactCard;
use crate::ids::{AccountId, GroupId, MessageId};
use crate::keys::SignatureError;

mod heads;
mod incremental;

/// Why an op is not allowed (or not valid at all).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupError {
    #[error("the group op's signature is invalid: {0}")]
    Signature(#[from] SignatureError),
    #[error("the group creation does not match the group id")]
    ForgedCreate,
    #[error("the card in the group op is not the author's")]
    CardMismatch,
    #[error("the card in the group op does not verify")]
    BadCard,
    #[error("member limit {limit} is outside 1..={MAX_MEMBER_LIMIT}")]
    BadLimit { limit: u32 },
    #[error("the group has not been created yet")]
    NotCreated,
    #[error("the group was already created")]
    AlreadyCreated,
    #[error("you are not a member of this group")]
    NotMember,
    #[error("only an admin can do this")]
    NotAdmin,
    #[error("that account is already in the group")]
    AlreadyMember,
    #[error("that account is not in the group")]
    NoSuchMember,
    #[error("you were not invited to this group (or the invitation was withdrawn)")]
    NotInvited,
    #[error("the group is full ({limit} members)")]
    Full { limit: u32 },
    #[error("that member is already an admin")]
    AlreadyAdmin,
    #[error("use leave to remove yourself")]
    RemoveSelf,
    #[error("the group already holds a device list of that account at least as new")]
    StaleCard,
    #[error("the group's creator cannot be removed")]
    RemoveCreator,
    #[error("that admin was made admin before you: only a senior admin can remove it")]
    Senior,
}

/// One account in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub role: Role,
    pub status: MemberStatus,
    /// The card the member was invited (or created the group) with.
    pub card: std::sync::Arc<ContactCard>,
    pub invited_by: AccountId,
    /// When the member was invited (the invite op's clock).
    pub since: MessageId,
    /// The op that gave the member its role (its `Create`, `Invite` or
    /// `Promote`), with that op's clock: the member's ops count only if
    /// they descend from it, and it ranks admins (an earlier grant is
    /// senior; see [`GroupState::check`]).
    pub granted: (MessageId, OpHash),
    /// The op that made the member joined (its `Create` or `Join`).
    pub admitted: Option<OpHash>,
}

/// What a set of ops folds into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub id: GroupId,
    pub name: String,
    pub member_limit: u32,
    /// `None` until the `Create` op is among the ops.
    pub creator: Option<AccountId>,
    pub members: BTreeMap<AccountId, Member>,
    /// Removed by an admin: may not join again unless invited again.
    pub removed: BTreeSet<AccountId>,
    /// How many ops took effect.
    pub version: u64,
    /// A hash over every op applied, in order: two members with the same
    /// value hold the same state.
    pub digest: [u8; 32],
    /// Per author, how many of its ops did not take effect (refused, void,
    /// or waiting for parents): what
    /// [`MAX_IDLE_OPS_PER_AUTHOR`](super::MAX_IDLE_OPS_PER_AUTHOR) caps.
    pub idle: BTreeMap<AccountId, u32>,
    /// The ops that began publish epochs, in fold order: the `Create`, then
    /// each removal or departure that took effect. The last is the current
    /// epoch (see [`GroupState::epoch_maker`]).
    pub epochs: Vec<Epoch>,
    /// How long members' messages last (seconds; `None`: kept), as the
    /// last `Timer` op in fold order set it.
    pub timer: Option<u32>,
    /// Who made that op and its clock (`None`: no `Timer` op yet).
    pub timer_set: Option<(AccountId, MessageId)>,
}

/// The op that began a publish epoch (protocol.md §11.6a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    pub op: OpHash,
    /// The author of a `Create` or `Remove`; `None` for a `Leave` (a
    /// departing member does not make the key the others go on with).
    pub author: Option<AccountId>,
}

impl GroupState {
    fn empty(id: GroupId) -> Self {
        Self {
            id,
            name: String::new(),
            member_limit: DEFAULT_MEMBER_LIMIT,
            creator: None,
            members: BTreeMap::new(),
            removed: BTreeSet::new(),
            version: 0,
            digest: [0; 32],
            idle: BTreeMap::new(),
            epochs: Vec::new(),
            timer: None,
            timer_set: None,
        }
    }

    /// The current publish epoch.
    pub fn epoch(&self) -> Option<&Epoch> {
        self.epochs.last()
    }

    /// Who makes the current epoch's publish key and hands it to every
    /// member: the author of the `Create` or `Remove` that began it while
    /// it is a joined member, else the senior joined admin (the earliest
    /// grant).
    pub fn epoch_maker(&self) -> Option<AccountId> {
        let epoch = self.epoch()?;
        if let Some(author) = epoch.author
            && self.is_joined(&author)
        {
            return Some(author);
        }
        self.members
            .iter()
            .filter(|(a, _)| self.is_admin(a))
            .min_by_key(|(_, m)| m.granted)
            .map(|(a, _)| *a)
    }

    /// Folds a set of verified ops of group `id` (see [`GroupOp::verify`]
    /// and [`OpSet::fold`] for the rules).
    pub fn fold<'a>(id: GroupId, ops: impl IntoIterator<Item = &'a GroupOp>) -> Self {
        let mut set = OpSet::default();
        for op in ops {
            set.insert(op.clone());
        }
        set.fold(id)
    }

    pub fn is_admin(&self, account: &AccountId) -> bool {
        self.members
            .get(account)
            .is_some_and(|m| m.role == Role::Admin && m.status == MemberStatus::Joined)
    }

    pub fn is_joined(&self, account: &AccountId) -> bool {
        self.members
            .get(account)
            .is_some_and(|m| m.status == MemberStatus::Joined)
    }

    /// Joined members, the ones who get keys and messages.
    pub fn joined(&self) -> impl Iterator<Item = (&AccountId, &Member)> {
        self.members
            .iter()
            .filter(|(_, m)| m.status == MemberStatus::Joined)
    }

    /// Whether `author` may do `action` now; the same rules the fold applies.
    pub fn check(&self, author: &AccountId, action: &Action) -> Result<(), GroupError> {
        if let Action::Create { .. } = action {
            return if self.creator.is_some() {
                Err(GroupError::AlreadyCreated)
            } else {
                Ok(())
            };
        }
        if self.creator.is_none() {
            return Err(GroupError::NotCreated);
        }
        match action {
            Action::Create { .. } => Ok(()),
            Action::Invite { card, .. } => {
                self.admin(author)?;
                if self.members.contains_key(&card.account()) {
                    return Err(GroupError::AlreadyMember);
                }
                if self.members.len() >= self.member_limit as usize {
                    return Err(GroupError::Full {
                        limit: self.member_limit,
                    });
                }
                Ok(())
            }
            Action::Join => match self.members.get(author) {
                Some(m) if m.status == MemberStatus::Invited => Ok(()),
                Some(_) => Err(GroupError::AlreadyMember),
                None => Err(GroupError::NotInvited),
            },
            Action::Leave => {
                if self.members.contains_key(author) {
                    Ok(())
                } else {
                    Err(GroupError::NotMember)
                }
            }
            Action::Remove { account } => {
                self.admin(author)?;
                if account == author {
                    return Err(GroupError::RemoveSelf);
                }
                if self.creator.as_ref() == Some(account) {
                    return Err(GroupError::RemoveCreator);
                }
                let Some(target) = self.members.get(account) else {
                    return Err(GroupError::NoSuchMember);
                };
                // An admin removes only admins made after it: two admins
                // can never remove each other, and a removed admin's
                // concurrent ops are void (see `OpSet::fold`).
                let senior = self.members.get(author).map(|m| m.granted);
                if target.role == Role::Admin && senior.is_some_and(|s| target.granted < s) {
                    return Err(GroupError::Senior);
                }
                Ok(())
            }
            Action::Timer { .. } => self.admin(author),
            Action::Promote { account } => {
                self.admin(author)?;
                match self.members.get(account) {
                    Some(m) if m.role == Role::Admin => Err(GroupError::AlreadyAdmin),
                    Some(m) if m.status == MemberStatus::Joined => Ok(()),
                    _ => Err(GroupError::NoSuchMember),
                }
            }
            Action::Card { card } => {
                let Some(m) = self.members.get(author) else {
                    return Err(GroupError::NotMember);
                };
                // A device list only moves forward: an older (or the same)
                // list cannot bring back a revoked device.
                if card.account() != *author {
                    Err(GroupError::CardMismatch)
                } else if card.device_list.issued_at_ms <= m.card.device_list.issued_at_ms {
                    Err(GroupError::StaleCard)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn admin(&self, author: &AccountId) -> Result<(), GroupError> {
        if !self.members.contains_key(author) {
            Err(GroupError::NotMember)
        } else if !self.is_admin(author) {
            Err(GroupError::NotAdmin)
        } else {
            Ok(())
        }
    }

    /// Applies an op `check` allowed; `hash` is its name.
    fn apply(&mut self, op: &GroupOp, hash: OpHash) {
        match &op.action {
            Action::Create {
                name,
                member_limit,
                card,
                ..
            } => {
                self.creator = Some(op.author);
                self.epochs.push(Epoch {
                    op: hash,
                    author: Some(op.author),
                });
                self.name.clone_from(name);
                self.member_limit = *member_limit;
                self.members.insert(
                    op.author,
                    Member {
                        role: Role::Admin,
                        status: MemberStatus::Joined,
                        card: std::sync::Arc::new(card.clone()),
                        invited_by: op.author,
                        since: op.at,
                        granted: (op.at, hash),
                        admitted: Some(hash),
                    },
                );
            }
            Action::Invite { role, card } => {
                self.removed.remove(&card.account());
                self.members.insert(
                    card.account(),
                    Member {
                        role: *role,
                        status: MemberStatus::Invited,
                        card: std::sync::Arc::new(card.clone()),
                        invited_by: op.author,
                        since: op.at,
                        granted: (op.at, hash),
                        admitted: None,
                    },
                );
            }
            Action::Join => {
                if let Some(m) = self.members.get_mut(&op.author) {
                    m.status = MemberStatus::Joined;
                    m.admitted = Some(hash);
                }
            }
            Action::Leave => {
                self.members.remove(&op.author);
                self.epochs.push(Epoch {
                    op: hash,
                    author: None,
                });
            }
            Action::Remove { account } => {
                self.members.remove(account);
                self.removed.insert(*account);
                self.epochs.push(Epoch {
                    op: hash,
                    author: Some(op.author),
                });
            }
            Action::Promote { account } => {
                if let Some(m) = self.members.get_mut(account) {
                    m.role = Role::Admin;
                    m.granted = (op.at, hash);
                }
            }
            Action::Card { card } => {
                if let Some(m) = self.members.get_mut(&op.author) {
                    m.card = std::sync::Arc::new(card.clone());
                }
            }
            Action::Timer { secs } => {
                self.timer = *secs;
                self.timer_set = Some((op.author, op.at));
            }
        }
    }
}

/// The ops of one group a member holds, with what it needs to pass them on.
#[derive(Debug, Clone, Default)]
pub struct OpSet {
    ops: HashMap<OpHash, GroupOp>,
    /// How many ops here name each op as a parent.
    named: HashMap<OpHash, u32>,
    /// Ops no op here names.
    heads: HashSet<OpHash>,
    /// Ops that cannot take part in the causal order as far as their own
    /// links show (see [`OpSet::placed_here`]), and, per missing parent,
    /// the ops waiting for it: kept as ops come and go so that
    /// [`OpSet::fold_after`] need not look at every op.
    misplaced: HashSet<OpHash>,
    waiting_for: HashMap<OpHash, Vec<OpHash>>,
    /// Answers to "does op `.0` descend from op `.1`?". An op's parents never
    /// change, so an answer never goes stale; the map is cleared if it grows
    /// past [`MAX_ANCESTRY_MEMO`].
    ancestry: RefCell<HashMap<(OpHash, OpHash), bool>>,
    /// Each op's hash by its signature: whether an op that comes again is
    /// held is a lookup, not an encoding (with the card an invitation
    /// carries) and a hash of the whole op (see [`OpSet::holds`]).
    by_signature: HashMap<[u8; 64], OpHash>,
    /// Counts the changes to the set: what a [`incremental::FoldMemo`] was made
    /// at.
    generation: u64,
    /// The last fold's order and states along it (see [`OpSet::fold_after`]).
    memo: incremental::Memo,
}

/// Most remembered ancestry answers (a few times the most ops a group holds).
const MAX_ANCESTRY_MEMO: usize = 1 << 18;

/// Most rounds of voiding a fold runs (each round voids at least one op;
/// real histories need one).
const MAX_FOLD_ROUNDS: usize = 16;

/// An op in the fold's order: its hash, and the op.
type Placed<'a> = (OpHash, &'a GroupOp);

/// The state digest after applying the op `hash` to a state with digest
/// `prev` (an empty group's is all zeros).
fn chain_digest(prev: &[u8; 32], hash: &OpHash) -> [u8; 32] {
    *blake3::Hasher::new_derive_key("hush 2026-11 group state")
        .update(prev)
        .update(hash)
        .finalize()
        .as_bytes()
}

impl OpSet {
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn contains(&self, hash: &OpHash) -> bool {
        self.ops.contains_key(hash)
    }

    /// Whether this very op is here: the op held under its signature, if
    /// any, is compared whole. An op that borrows a held op's signature
    /// for other content is not held (and fails verification).
    pub fn holds(&self, op: &GroupOp) -> bool {
        self.by_signature
            .get(&op.signature)
            .and_then(|hash| self.ops.get(hash))
            .is_some_and(|held| held == op)
    }

    pub fn ops(&self) -> impl Iterator<Item = &GroupOp> {
        self.ops.values()
    }

    pub fn get(&self, hash: &OpHash) -> Option<&GroupOp> {
        self.ops.get(hash)
    }

    /// Adds a verified op; false if it was already here.
    pub fn insert(&mut self, op: GroupOp) -> bool {
        let hash = op.hash();
        if self.ops.contains_key(&hash) {
            return false;
        }
        for p in &op.parents {
            let n = self.named.entry(*p).or_default();
            *n += 1;
            if *n == 1 {
                self.heads.remove(p);
            }
            if !self.ops.contains_key(p) {
                self.waiting_for.entry(*p).or_default().push(hash);
            }
        }
        if !self.named.contains_key(&hash) {
            self.heads.insert(hash);
        }
        if !self.placed_here(&op, |_| true) {
            self.misplaced.insert(hash);
        }
        self.by_signature.insert(op.signature, hash);
        self.ops.insert(hash, op);
        self.generation += 1;
        // Ops that waited for this one may take part now.
        for child in self.waiting_for.remove(&hash).unwrap_or_default() {
            let placed = self
                .ops
                .get(&child)
                .is_some_and(|c| self.placed_here(c, |_| true));
            if placed {
                self.misplaced.remove(&child);
            }
        }
        true
    }

    /// Drops ops that did not take effect and that no op here names (see
    /// [`MAX_IDLE_OPS_PER_AUTHOR`](super::MAX_IDLE_OPS_PER_AUTHOR)); the state
    /// they fold into does not change. Returns the ops dropped.
    pub fn drop_idle(&mut self, idle: &[OpHash]) -> Vec<OpHash> {
        let named: HashSet<&OpHash> = self.ops.values().flat_map(|op| &op.parents).collect();
        let gone: Vec<OpHash> = idle
            .iter()
            .filter(|h| !named.contains(h))
            .copied()
            .collect();
        if !gone.is_empty() {
            self.generation += 1;
            self.memo.clear();
        }
        for h in &gone {
            let Some(op) = self.ops.remove(h) else {
                continue;
            };
            if self.by_signature.get(&op.signature) == Some(h) {
                self.by_signature.remove(&op.signature);
            }
            self.heads.remove(h);
            self.misplaced.remove(h);
            for p in &op.parents {
                if let Some(n) = self.named.get_mut(p) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.named.remove(p);
                        if self.ops.contains_key(p) {
                            self.heads.insert(*p);
                        }
                    }
                }
                if let Some(waiting) = self.waiting_for.get_mut(p) {
                    waiting.retain(|c| c != h);
                    if waiting.is_empty() {
                        self.waiting_for.remove(p);
                    }
                }
            }
        }
        gone
    }

    /// Whether every parent of `op` is here (if not, we missed ops).
    pub fn has_parents(&self, op: &GroupOp) -> bool {
        op.parents.iter().all(|p| self.ops.contains_key(p))
    }

    /// The state these ops fold into. The rules (`docs/protocol.md`, "Group
    /// authorization"):
    ///
    /// 1. An op takes part only once its whole ancestry is here; a `Create`
    ///    names no parents, every other op at least one, and no op's `at`
    ///    precedes a parent's.
    /// 2. Ops are applied in causal order (parents first); among ops whose
    ///    parents are all applied, by `(at, hash)`.
    /// 3. An op takes effect if [`GroupState::check`] allows it in the state
    ///    so far and it descends from the ops that made its author what the
    ///    op needs: for a `Join` or `Leave`, its invitation; for an admin's
    ///    op, the op that made it admin and its join. Nobody acts on a role
    ///    it had not seen.
    /// 4. Removal wins: when a `Remove` of an account takes effect, every op
    ///    of that account concurrent with the removal (neither descends from
    ///    the other) is void, and the fold runs again without them.
    pub fn fold(&self, id: GroupId) -> GroupState {
        self.fold_and_idle(id).0
    }

    /// [`OpSet::fold`], and the ops of `id` that did not take effect.
    pub fn fold_and_idle(&self, id: GroupId) -> (GroupState, Vec<OpHash>) {
        let order = self.causal_order(id);
        let mut void: HashSet<OpHash> = HashSet::new();
        let mut round = 0;
        let mut checkpoints = Vec::new();
        let every = incremental::checkpoint_every(order.len());
        loop {
            // The states along the first pass, kept if nothing is void.
            let keep = (round == 0).then_some((every, &mut checkpoints));
            let (mut state, applied) = self.pass(id, &order, &void, keep);
            round += 1;
            let newly = if round < MAX_FOLD_ROUNDS {
                self.voided_by_removals(&applied, &void)
            } else {
                Vec::new()
            };
            if newly.is_empty() {
                let took: HashSet<&OpHash> = applied.iter().map(|(h, _)| h).collect();
                let mut idle = Vec::new();
                for (hash, op) in &self.ops {
                    if op.group == id && !took.contains(hash) {
                        *state.idle.entry(op.author).or_default() += 1;
                        idle.push(*hash);
                    }
                }
                if void.is_empty() {
                    self.remember_fold(id, &order, &took, every, checkpoints);
                }
                return (state, idle);
            }
            void.extend(newly);
        }
    }

    /// The ops of `id` whose whole ancestry is here and consistent (rule 1),
    /// parents before children, otherwise by `(at, hash)`.
    pub(in crate::group) fn causal_order(&self, id: GroupId) -> Vec<Placed<'_>> {
        // Children waiting on each op, and how many parents each still lacks.
        let mut children: HashMap<&OpHash, Vec<&OpHash>> = HashMap::new();
        let mut missing: HashMap<&OpHash, usize> = HashMap::new();
        let mut ready: BinaryHeap<Reverse<(MessageId, OpHash)>> = BinaryHeap::new();
        for (hash, op) in self.ops.iter().filter(|(_, op)| op.group == id) {
            let create = matches!(op.action, Action::Create { .. });
            if create != op.parents.is_empty() {
                continue;
            }
            let parents: HashSet<&OpHash> = op.parents.iter().collect();
            if parents.is_empty() {
                ready.push(Reverse((op.at, *hash)));
            } else {
                missing.insert(hash, parents.len());
                for p in parents {
                    children.entry(p).or_default().push(hash);
                }
            }
        }
        let mut order = Vec::new();
        while let Some(Reverse((at, hash))) = ready.pop() {
            let Some(op) = self.ops.get(&hash) else {
                continue;
            };
            order.push((hash, op));
            for child in children.get(&hash).into_iter().flatten() {
                let Some(left) = missing.get_mut(child) else {
                    continue;
                };
                let Some(c) = self.ops.get(*child) else {
                    continue;
                };
                if c.at < at {
                    // Backdated before a parent: never takes part.
                    missing.remove(child);
                    continue;
                }
                *left -= 1;
                if *left == 0 {
                    ready.push(Reverse((c.at, **child)));
                }
            }
        }
        order
    }

    /// One application of the ops in `order`, skipping `void` (rules 2–3).
    /// With `keep`, the state before every `every`-th op goes into it.
    fn pass<'a>(
        &self,
        id: GroupId,
        order: &[Placed<'a>],
        void: &HashSet<OpHash>,
        mut keep: Option<(usize, &mut Vec<GroupState>)>,
    ) -> (GroupState, Vec<Placed<'a>>) {
        let mut state = GroupState::empty(id);
        let mut applied = Vec::new();
        for (i, &(hash, op)) in order.iter().enumerate() {
            if let Some((every, kept)) = keep.as_mut()
                && i % *every == 0
            {
                kept.push(state.clone());
            }
            if !void.contains(&hash) && self.take(&mut state, &hash, op) {
                applied.push((hash, op));
            }
        }
        (state, applied)
    }

    /// Applies `op` to `state` if its author may make it there and it
    /// descends from its author's standing; whether it did.
    fn take(&self, state: &mut GroupState, hash: &OpHash, op: &GroupOp) -> bool {
        if state.check(&op.author, &op.action).is_err() || !self.saw_its_standing(state, hash, op) {
            return false;
        }
        state.apply(op, *hash);
        state.version += 1;
        state.digest = chain_digest(&state.digest, hash);
        true
    }

    /// Whether `op` takes part in the causal order as far as its own links
    /// show: the create rule holds, every parent is here (and `usable`),
    /// and none is dated after it.
    fn placed_here(&self, op: &GroupOp, usable: impl Fn(&OpHash) -> bool) -> bool {
        let create = matches!(op.action, Action::Create { .. });
        create == op.parents.is_empty()
            && op
                .parents
                .iter()
                .all(|p| usable(p) && self.ops.get(p).is_some_and(|parent| parent.at <= op.at))
    }

    /// Whether `op` descends from what made its author able to make it.
    fn saw_its_standing(&self, state: &GroupState, hash: &OpHash, op: &GroupOp) -> bool {
        let Some(m) = state.members.get(&op.author) else {
            // Only a `Create` passes `check` without being a member.
            return true;
        };
        let needed = match op.action {
            Action::Create { .. } => return true,
            Action::Join | Action::Leave | Action::Card { .. } => [Some(m.granted.1), None],
            Action::Invite { .. }
            | Action::Remove { .. }
            | Action::Promote { .. }
            | Action::Timer { .. } => [Some(m.granted.1), m.admitted],
        };
        needed
            .into_iter()
            .flatten()
            .all(|ancestor| self.descends(hash, &ancestor))
    }

    /// Ops of removed accounts concurrent with their removal (rule 4), not
    /// already in `void`.
    fn voided_by_removals(&self, applied: &[Placed<'_>], void: &HashSet<OpHash>) -> Vec<OpHash> {
        let mut by_author: HashMap<&AccountId, Vec<&OpHash>> = HashMap::new();
        for (hash, op) in applied {
            by_author.entry(&op.author).or_default().push(hash);
        }
        let mut out = Vec::new();
        for (removal, op) in applied {
            let Action::Remove { account } = &op.action else {
                continue;
            };
            for theirs in by_author.get(account).into_iter().flatten() {
                if !void.contains(*theirs)
                    && !self.descends(removal, theirs)
                    && !self.descends(theirs, removal)
                {
                    out.push(**theirs);
                }
            }
        }
        out
    }

    /// Whether op `from` descends from op `ancestor` (both complete). Along
    /// a parent link `at` never grows, so the walk skips ops older than
    /// `ancestor`.
    fn descends(&self, from: &OpHash, ancestor: &OpHash) -> bool {
        if from == ancestor {
            return false;
        }
        if let Some(known) = self.ancestry.borrow().get(&(*from, *ancestor)) {
            return *known;
        }
        let Some(floor) = self.ops.get(ancestor).map(|o| o.at) else {
            return false;
        };
        let mut seen: HashSet<OpHash> = HashSet::new();
        let mut stack = vec![*from];
        let mut found = false;
        'walk: while let Some(h) = stack.pop() {
            let Some(op) = self.ops.get(&h) else {
                continue;
            };
            for p in &op.parents {
                if p == ancestor {
                    found = true;
                    break 'walk;
                }
                let remembered = self.ancestry.borrow().get(&(*p, *ancestor)).copied();
                match remembered {
                    Some(true) => {
                        found = true;
                        break 'walk;
                    }
                    Some(false) => {}
                    None => {
                        if seen.insert(*p) && self.ops.get(p).is_some_and(|o| o.at >= floor) {
                            stack.push(*p);
                        }
                    }
                }
            }
        }
        let mut memo = self.ancestry.borrow_mut();
        if memo.len() >= MAX_ANCESTRY_MEMO {
            memo.clear();
        }
        memo.insert((*from, *ancestor), found);
        found
    }
}

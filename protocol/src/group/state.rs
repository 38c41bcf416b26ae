//! What a set of ops folds into, and the set a member holds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use thiserror::Error;

use super::op::{Action, GroupOp, MemberStatus, OpHash, Role};
use super::{DEFAULT_MEMBER_LIMIT, MAX_MEMBER_LIMIT, MAX_OP_PARENTS};
use crate::card::ContactCard;
use crate::ids::{AccountId, GroupId, MessageId};
use crate::keys::SignatureError;

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
    #[error("the group's creator cannot be removed")]
    RemoveCreator,
}

/// One account in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub role: Role,
    pub status: MemberStatus,
    /// The card the member was invited (or created the group) with.
    pub card: ContactCard,
    pub invited_by: AccountId,
    /// When the member was invited (the invite op's clock).
    pub since: MessageId,
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
        }
    }

    /// Folds a set of verified ops of group `id` (see [`GroupOp::verify`]):
    /// sorted by `(at, hash)`, each applied if the state before it allows it.
    pub fn fold<'a>(id: GroupId, ops: impl IntoIterator<Item = &'a GroupOp>) -> Self {
        let hashed: Vec<(OpHash, &GroupOp)> = ops.into_iter().map(|op| (op.hash(), op)).collect();
        Self::fold_hashed(id, hashed.iter().map(|(h, op)| (h, *op)))
    }

    /// [`GroupState::fold`] of ops whose hashes are already known.
    fn fold_hashed<'a>(
        id: GroupId,
        ops: impl IntoIterator<Item = (&'a OpHash, &'a GroupOp)>,
    ) -> Self {
        let mut sorted: Vec<(MessageId, OpHash, &GroupOp)> = ops
            .into_iter()
            .filter(|(_, op)| op.group == id)
            .map(|(hash, op)| (op.at, *hash, op))
            .collect();
        sorted.sort_by_key(|a| (a.0, a.1));
        let mut state = Self::empty(id);
        let mut digest = blake3::Hasher::new_derive_key("hush 2026-11 group state");
        for (_, hash, op) in sorted {
            if state.apply(op).is_ok() {
                state.version += 1;
                digest.update(&hash);
            }
        }
        state.digest = *digest.finalize().as_bytes();
        state
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
                if !self.members.contains_key(account) {
                    return Err(GroupError::NoSuchMember);
                }
                Ok(())
            }
            Action::Promote { account } => {
                self.admin(author)?;
                match self.members.get(account) {
                    Some(m) if m.role == Role::Admin => Err(GroupError::AlreadyAdmin),
                    Some(m) if m.status == MemberStatus::Joined => Ok(()),
                    _ => Err(GroupError::NoSuchMember),
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

    fn apply(&mut self, op: &GroupOp) -> Result<(), GroupError> {
        self.check(&op.author, &op.action)?;
        match &op.action {
            Action::Create {
                name,
                member_limit,
                card,
                ..
            } => {
                self.creator = Some(op.author);
                self.name.clone_from(name);
                self.member_limit = *member_limit;
                self.members.insert(
                    op.author,
                    Member {
                        role: Role::Admin,
                        status: MemberStatus::Joined,
                        card: card.clone(),
                        invited_by: op.author,
                        since: op.at,
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
                        card: card.clone(),
                        invited_by: op.author,
                        since: op.at,
                    },
                );
            }
            Action::Join => {
                if let Some(m) = self.members.get_mut(&op.author) {
                    m.status = MemberStatus::Joined;
                }
            }
            Action::Leave => {
                self.members.remove(&op.author);
            }
            Action::Remove { account } => {
                self.members.remove(account);
                self.removed.insert(*account);
            }
            Action::Promote { account } => {
                if let Some(m) = self.members.get_mut(account) {
                    m.role = Role::Admin;
                }
            }
        }
        Ok(())
    }
}

/// The ops of one group a member holds, with what it needs to pass them on.
#[derive(Debug, Clone, Default)]
pub struct OpSet {
    ops: HashMap<OpHash, GroupOp>,
    /// Ops no other op names as a parent.
    heads: BTreeSet<OpHash>,
    /// Every hash some op here names as a parent.
    named: HashSet<OpHash>,
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

    pub fn ops(&self) -> impl Iterator<Item = &GroupOp> {
        self.ops.values()
    }

    /// The parents a new op names (at most [`MAX_OP_PARENTS`]).
    pub fn heads(&self) -> Vec<OpHash> {
        self.heads.iter().take(MAX_OP_PARENTS).copied().collect()
    }

    /// Adds a verified op; false if it was already here.
    pub fn insert(&mut self, op: GroupOp) -> bool {
        let hash = op.hash();
        if self.ops.contains_key(&hash) {
            return false;
        }
        for parent in &op.parents {
            self.heads.remove(parent);
            self.named.insert(*parent);
        }
        if !self.named.contains(&hash) {
            self.heads.insert(hash);
        }
        self.ops.insert(hash, op);
        true
    }

    /// Whether every parent of `op` is here (if not, we missed ops).
    pub fn has_parents(&self, op: &GroupOp) -> bool {
        op.parents.iter().all(|p| self.ops.contains_key(p))
    }

    /// Ops here that `op`'s author had not seen when it made it: neither
    /// `op` nor among its ancestors.
    pub fn unseen_by(&self, op: &GroupOp) -> Vec<&GroupOp> {
        let mut seen: HashSet<OpHash> = HashSet::new();
        let mut stack: Vec<OpHash> = op.parents.clone();
        while let Some(h) = stack.pop() {
            if seen.insert(h)
                && let Some(o) = self.ops.get(&h)
            {
                stack.extend(o.parents.iter().copied());
            }
        }
        seen.insert(op.hash());
        let mut out: Vec<&GroupOp> = self
            .ops
            .iter()
            .filter(|(h, _)| !seen.contains(*h))
            .map(|(_, o)| o)
            .collect();
        out.sort_by_key(|o| o.at);
        out
    }

    /// The state these ops fold into (their hashes are the map's keys: no
    /// op is encoded again).
    pub fn fold(&self, id: GroupId) -> GroupState {
        GroupState::fold_hashed(id, self.ops.iter())
    }
}

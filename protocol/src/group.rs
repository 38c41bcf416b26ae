//! Groups: signed membership operations, the state they fold into, the
//! control messages that carry them (and Megolm keys) over Olm, and the
//! Megolm-encrypted message members publish on the group's topic.
//!
//! A group's state is not a document anyone edits: it is a pure function of
//! the *set* of [`GroupOp`]s a member holds. Every op is signed by the
//! account that made it and stamped with that account's hybrid logical clock
//! ([`MessageId`]); [`GroupState::fold`] sorts the set by `(at, hash)` and
//! applies each op that is allowed by the state before it. Two members that
//! hold the same set compute the same state, whatever order the ops arrived
//! in, so concurrent changes by two admins converge once the ops have spread.
//! Each op names the newest ops its author knew (`parents`), which lets a
//! member see what an author had not seen and pass it on.
//!
//! The group id binds the creator: it is derived from the creator's account
//! and a random nonce in the `Create` op, so nobody else can forge a
//! creation for an existing group.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use thiserror::Error;

use crate::card::ContactCard;
use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::ids::{AccountId, GroupId, MessageId};
use crate::keys::{AccountKey, SignatureError, verify_account_signature};
use crate::payload::{ReceiptKind, decode_receipt, encode_receipt};

const OP_CONTEXT: &[u8] = b"hush group op v1";
const OP_VERSION: u8 = 1;
const CONTROL_VERSION: u8 = 1;
const MESSAGE_VERSION: u8 = 1;
/// Longest group name, in bytes of UTF-8.
pub const MAX_GROUP_NAME_LEN: usize = 64;
/// The member limit a group gets unless its creator picks another.
pub const DEFAULT_MEMBER_LIMIT: u32 = 1000;
/// The largest member limit a group may set.
pub const MAX_MEMBER_LIMIT: u32 = 10_000;
/// Most ops one group may accumulate; past this, changes are refused.
pub const MAX_GROUP_OPS: usize = 4 * MAX_MEMBER_LIMIT as usize;
/// Most parents one op names.
pub const MAX_OP_PARENTS: usize = 32;
/// Largest encoded op (a card is at most a few KiB).
pub const MAX_OP_LEN: usize = 16 * 1024;
/// Most ops one control message carries.
pub const MAX_CONTROL_OPS: usize = 512;
/// Largest Megolm session key (vodozemac's is 229 bytes).
pub const MAX_SESSION_KEY_LEN: usize = 512;
/// Largest Megolm ciphertext a group message carries: the largest padded
/// payload plus Megolm's header, MAC and signature.
pub const MAX_GROUP_CIPHERTEXT_LEN: usize = 64 * 1024 + 256;
/// Largest encoded [`GroupMessage`].
pub const MAX_GROUP_MESSAGE_LEN: usize = 1 + 32 + 4 + MAX_GROUP_CIPHERTEXT_LEN;

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Member = 0,
    /// May invite, remove and promote.
    Admin = 1,
}

impl Role {
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
        }
    }
}

/// Where a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    /// Invited by an admin, has not joined yet: gets no keys.
    Invited,
    Joined,
}

/// What an op does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The first op: makes the author the group's first admin. The group id
    /// is [`GroupId::derive`] of the author and `nonce`.
    Create {
        nonce: [u8; 16],
        name: String,
        member_limit: u32,
        /// The creator's card, so every member can reach its devices.
        card: ContactCard,
    },
    /// An admin invites an account (its card tells members how to reach it).
    Invite { role: Role, card: ContactCard },
    /// The invited author accepts.
    Join,
    /// The author leaves (or declines an invitation).
    Leave,
    /// An admin removes a member or withdraws an invitation.
    Remove { account: AccountId },
    /// An admin makes a joined member an admin.
    Promote { account: AccountId },
}

impl Action {
    fn tag(&self) -> u8 {
        match self {
            Self::Create { .. } => 0,
            Self::Invite { .. } => 1,
            Self::Join => 2,
            Self::Leave => 3,
            Self::Remove { .. } => 4,
            Self::Promote { .. } => 5,
        }
    }
}

/// The hash that names an op (its parents list these).
pub type OpHash = [u8; 32];

/// One signed membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOp {
    pub group: GroupId,
    /// The author's clock when it made the op: orders the fold.
    pub at: MessageId,
    pub author: AccountId,
    /// The newest ops the author held (the heads of its set).
    pub parents: Vec<OpHash>,
    pub action: Action,
    pub signature: [u8; 64],
}

impl GroupId {
    /// The id a creator's `Create` op with `nonce` names.
    pub fn derive(creator: &AccountId, nonce: &[u8; 16]) -> Self {
        let mut h = blake3::Hasher::new_derive_key("hush 2026-11 group id");
        h.update(&creator.0);
        h.update(nonce);
        Self(*h.finalize().as_bytes())
    }

    /// The gossipsub topic the group's messages travel on. It is a hash of
    /// the id, so the topic alone does not name the group's conversation.
    pub fn topic(&self) -> String {
        let mut h = blake3::Hasher::new_derive_key("hush 2026-11 group topic");
        h.update(&self.0);
        format!(
            "/hush/group/1/{}",
            hex::encode(&h.finalize().as_bytes()[..16])
        )
    }
}

impl GroupOp {
    /// Makes and signs an op.
    pub fn sign(
        key: &AccountKey,
        group: GroupId,
        at: MessageId,
        parents: Vec<OpHash>,
        action: Action,
    ) -> Self {
        let mut op = Self {
            group,
            at,
            author: key.id(),
            parents,
            action,
            signature: [0; 64],
        };
        op.signature = key.sign(OP_CONTEXT, &op.signed_bytes());
        op
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode_unsigned(&mut w);
        w.into_bytes()
    }

    fn encode_unsigned(&self, w: &mut Writer) {
        w.u8(OP_VERSION);
        w.raw(&self.group.0);
        w.u128(self.at.0);
        w.raw(&self.author.0);
        w.list(&self.parents, |w, p| w.raw(p));
        w.u8(self.action.tag());
        match &self.action {
            Action::Create {
                nonce,
                name,
                member_limit,
                card,
            } => {
                w.raw(nonce);
                w.str(name);
                w.u32(*member_limit);
                w.bytes(&card.to_bytes());
            }
            Action::Invite { role, card } => {
                w.u8(*role as u8);
                w.bytes(&card.to_bytes());
            }
            Action::Join | Action::Leave => {}
            Action::Remove { account } | Action::Promote { account } => w.raw(&account.0),
        }
    }

    /// The op's name: a hash of all its bytes, signature included.
    pub fn hash(&self) -> OpHash {
        *blake3::Hasher::new_derive_key("hush 2026-11 group op")
            .update(&self.to_bytes())
            .finalize()
            .as_bytes()
    }

    /// Checks the author's signature and, for ops that carry a card, the
    /// card's signatures and that a `Create` really names this group.
    pub fn verify(&self) -> Result<(), GroupError> {
        verify_account_signature(
            &self.author,
            OP_CONTEXT,
            &self.signed_bytes(),
            &self.signature,
            "group op",
        )?;
        match &self.action {
            Action::Create {
                nonce,
                card,
                member_limit,
                ..
            } => {
                if GroupId::derive(&self.author, nonce) != self.group {
                    return Err(GroupError::ForgedCreate);
                }
                if card.account() != self.author {
                    return Err(GroupError::CardMismatch);
                }
                if *member_limit == 0 || *member_limit > MAX_MEMBER_LIMIT {
                    return Err(GroupError::BadLimit {
                        limit: *member_limit,
                    });
                }
                card.verify().map_err(|_| GroupError::BadCard)?;
            }
            Action::Invite { card, .. } => card.verify().map_err(|_| GroupError::BadCard)?,
            _ => {}
        }
        Ok(())
    }
}

fn role(tag: u8) -> Result<Role, DecodeError> {
    match tag {
        0 => Ok(Role::Member),
        1 => Ok(Role::Admin),
        tag => Err(DecodeError::UnknownTag { what: "role", tag }),
    }
}

fn card(r: &mut Reader<'_>) -> Result<ContactCard, DecodeError> {
    ContactCard::from_bytes(r.bytes("group card", MAX_OP_LEN)?)
}

impl Wire for GroupOp {
    const NAME: &'static str = "group op";

    fn encode(&self, w: &mut Writer) {
        self.encode_unsigned(w);
        w.raw(&self.signature);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, OP_VERSION)?;
        let group = GroupId(r.array()?);
        let at = MessageId(r.u128()?);
        let author = AccountId(r.array()?);
        let parents = r.list("op parents", MAX_OP_PARENTS, |r| r.array())?;
        let action = match r.u8()? {
            0 => {
                let nonce = r.array()?;
                let name = r.str("group name", MAX_GROUP_NAME_LEN)?.to_owned();
                let member_limit = r.u32()?;
                Action::Create {
                    nonce,
                    name,
                    member_limit,
                    card: card(r)?,
                }
            }
            1 => Action::Invite {
                role: role(r.u8()?)?,
                card: card(r)?,
            },
            2 => Action::Join,
            3 => Action::Leave,
            4 => Action::Remove {
                account: AccountId(r.array()?),
            },
            5 => Action::Promote {
                account: AccountId(r.array()?),
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "group action",
                    tag,
                });
            }
        };
        let signature = r.array()?;
        Ok(Self {
            group,
            at,
            author,
            parents,
            action,
            signature,
        })
    }
}

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

/// What group members send each other over Olm (inside a
/// [`Payload`](crate::Payload) as [`Body::Group`](crate::Body::Group)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupControl {
    pub group: GroupId,
    pub kind: ControlKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlKind {
    /// Membership ops, new to the receiver or all of them (for a new member).
    Ops(Vec<GroupOp>),
    /// "Send me every op you hold": the receiver missed some.
    SyncRequest,
    /// The sender device's current Megolm session key for the group.
    RoomKey(Vec<u8>),
    /// The receiver's messages with these ids reached (or were read by) the
    /// sender's device.
    Receipt {
        kind: ReceiptKind,
        ids: Vec<MessageId>,
    },
}

impl Wire for GroupControl {
    const NAME: &'static str = "group control";

    fn encode(&self, w: &mut Writer) {
        w.u8(CONTROL_VERSION);
        w.raw(&self.group.0);
        match &self.kind {
            ControlKind::Ops(ops) => {
                w.u8(0);
                w.list(ops, |w, op| w.bytes(&op.to_bytes()));
            }
            ControlKind::SyncRequest => w.u8(1),
            ControlKind::RoomKey(key) => {
                w.u8(2);
                w.bytes(key);
            }
            ControlKind::Receipt { kind, ids } => {
                w.u8(3);
                encode_receipt(w, *kind, ids);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, CONTROL_VERSION)?;
        let group = GroupId(r.array()?);
        let kind = match r.u8()? {
            0 => ControlKind::Ops(r.list("group ops", MAX_CONTROL_OPS, |r| {
                GroupOp::from_bytes(r.bytes("group op", MAX_OP_LEN)?)
            })?),
            1 => ControlKind::SyncRequest,
            2 => ControlKind::RoomKey(r.bytes("session key", MAX_SESSION_KEY_LEN)?.to_vec()),
            3 => {
                let (kind, ids) = decode_receipt(r)?;
                ControlKind::Receipt { kind, ids }
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "group control",
                    tag,
                });
            }
        };
        Ok(Self { group, kind })
    }
}

/// What a member publishes on the group's topic: Megolm ciphertext of a
/// padded [`Payload`](crate::Payload), and which session made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    /// [`crate::megolm_session_id`] of the Megolm session.
    pub session: [u8; 32],
    pub ciphertext: Vec<u8>,
}

impl GroupMessage {
    /// The content hash that names the message on gossipsub (and at relays).
    pub fn digest(bytes: &[u8]) -> [u8; 32] {
        *blake3::Hasher::new_derive_key("hush 2026-11 group message")
            .update(bytes)
            .finalize()
            .as_bytes()
    }
}

impl Wire for GroupMessage {
    const NAME: &'static str = "group message";

    fn encode(&self, w: &mut Writer) {
        w.u8(MESSAGE_VERSION);
        w.raw(&self.session);
        w.bytes(&self.ciphertext);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, MESSAGE_VERSION)?;
        let session = r.array()?;
        let ciphertext = r
            .bytes("group ciphertext", MAX_GROUP_CIPHERTEXT_LEN)?
            .to_vec();
        Ok(Self {
            session,
            ciphertext,
        })
    }
}

/// Longest topic name a relay request carries.
pub const MAX_TOPIC_LEN: usize = 96;
/// Most items one history page carries.
pub const MAX_HISTORY_ITEMS: usize = 256;
/// Largest encoded history request or response.
pub const MAX_HISTORY_FRAME: usize = 2 * 1024 * 1024;
const HISTORY_VERSION: u8 = 1;

/// What a member asks a relay on `/hush/group/1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryRequest {
    /// Subscribe to the topic and keep what is published on it.
    Keep { topic: String },
    /// Messages kept on the topic after sequence number `after`, oldest first.
    Fetch {
        topic: String,
        after: u64,
        limit: u16,
    },
}

/// A relay's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryResponse {
    Keeping,
    /// `(sequence number, group message bytes)`; `more` if the page was cut.
    Page {
        items: Vec<(u64, Vec<u8>)>,
        more: bool,
    },
    Refused {
        reason: String,
    },
}

impl Wire for HistoryRequest {
    const NAME: &'static str = "history request";

    fn encode(&self, w: &mut Writer) {
        w.u8(HISTORY_VERSION);
        match self {
            Self::Keep { topic } => {
                w.u8(0);
                w.str(topic);
            }
            Self::Fetch {
                topic,
                after,
                limit,
            } => {
                w.u8(1);
                w.str(topic);
                w.u64(*after);
                w.u16(*limit);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, HISTORY_VERSION)?;
        match r.u8()? {
            0 => Ok(Self::Keep {
                topic: r.str("topic", MAX_TOPIC_LEN)?.to_owned(),
            }),
            1 => Ok(Self::Fetch {
                topic: r.str("topic", MAX_TOPIC_LEN)?.to_owned(),
                after: r.u64()?,
                limit: r.u16()?,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "history request",
                tag,
            }),
        }
    }
}

impl Wire for HistoryResponse {
    const NAME: &'static str = "history response";

    fn encode(&self, w: &mut Writer) {
        w.u8(HISTORY_VERSION);
        match self {
            Self::Keeping => w.u8(0),
            Self::Page { items, more } => {
                w.u8(1);
                w.list(items, |w, (seq, bytes)| {
                    w.u64(*seq);
                    w.bytes(bytes);
                });
                w.u8(u8::from(*more));
            }
            Self::Refused { reason } => {
                w.u8(2);
                w.str(reason);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, HISTORY_VERSION)?;
        match r.u8()? {
            0 => Ok(Self::Keeping),
            1 => {
                let items = r.list("history items", MAX_HISTORY_ITEMS, |r| {
                    Ok((
                        r.u64()?,
                        r.bytes("history item", MAX_GROUP_MESSAGE_LEN)?.to_vec(),
                    ))
                })?;
                let more = r.u8()? != 0;
                Ok(Self::Page { items, more })
            }
            2 => Ok(Self::Refused {
                reason: r.str("refusal", 256)?.to_owned(),
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "history response",
                tag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DeviceId;
    use crate::keys::{DeviceKeys, DeviceList};

    struct User {
        key: AccountKey,
        card: ContactCard,
    }

    fn user(seed: u8) -> User {
        let key = AccountKey::from_seed([seed; 32]);
        let device = DeviceKeys {
            device_id: DeviceId([seed; 32]),
            olm_ed25519: [seed; 32],
            olm_curve25519: [seed; 32],
            mailbox_key: [seed; 32],
        };
        let list = DeviceList::sign(&key, 1, vec![device]);
        let card = ContactCard::sign(&key, format!("u{seed}"), list, vec![], vec![]);
        User { key, card }
    }

    fn op(u: &User, group: GroupId, at: u128, parents: Vec<OpHash>, action: Action) -> GroupOp {
        GroupOp::sign(&u.key, group, MessageId(at), parents, action)
    }

    fn create(u: &User) -> (GroupId, GroupOp) {
        let nonce = [7; 16];
        let id = GroupId::derive(&u.key.id(), &nonce);
        let op = op(
            u,
            id,
            1,
            vec![],
            Action::Create {
                nonce,
                name: "friends".into(),
                member_limit: 3,
                card: u.card.clone(),
            },
        );
        (id, op)
    }

    #[test]
    fn ops_round_trip_and_verify() {
        let alice = user(1);
        let (id, create) = create(&alice);
        assert_eq!(GroupOp::from_bytes(&create.to_bytes()).unwrap(), create);
        create.verify().unwrap();
        let mut forged = create.clone();
        forged.group = GroupId([0; 32]);
        assert!(forged.verify().is_err());
        let control = GroupControl {
            group: id,
            kind: ControlKind::Ops(vec![create]),
        };
        assert_eq!(
            GroupControl::from_bytes(&control.to_bytes()).unwrap(),
            control
        );
    }

    #[test]
    fn fold_applies_rules_and_ignores_what_is_not_allowed() {
        let (alice, bob, carol) = (user(1), user(2), user(3));
        let (id, c) = create(&alice);
        let invite_bob = op(
            &alice,
            id,
            2,
            vec![c.hash()],
            Action::Invite {
                role: Role::Member,
                card: bob.card.clone(),
            },
        );
        let bob_joins = op(&bob, id, 3, vec![invite_bob.hash()], Action::Join);
        // bob is no admin: his invitation of carol is ignored.
        let bob_invites = op(
            &bob,
            id,
            4,
            vec![bob_joins.hash()],
            Action::Invite {
                role: Role::Member,
                card: carol.card.clone(),
            },
        );
        // carol joins without an invitation: ignored.
        let carol_joins = op(&carol, id, 5, vec![], Action::Join);
        let state = GroupState::fold(
            id,
            [&c, &invite_bob, &bob_joins, &bob_invites, &carol_joins],
        );
        assert_eq!(state.version, 3);
        assert!(state.is_joined(&bob.key.id()));
        assert!(!state.members.contains_key(&carol.key.id()));
        // Order of arrival does not matter.
        let again = GroupState::fold(
            id,
            [&carol_joins, &bob_invites, &bob_joins, &c, &invite_bob],
        );
        assert_eq!(state, again);

        let remove = op(
            &alice,
            id,
            6,
            vec![],
            Action::Remove {
                account: bob.key.id(),
            },
        );
        let state = GroupState::fold(id, [&c, &invite_bob, &bob_joins, &remove]);
        assert!(!state.members.contains_key(&bob.key.id()));
        assert!(state.removed.contains(&bob.key.id()));
        assert_eq!(
            state.check(&bob.key.id(), &Action::Join),
            Err(GroupError::NotInvited)
        );
    }

    #[test]
    fn concurrent_invites_converge_and_the_limit_holds() {
        let (alice, bob, carol, dave) = (user(1), user(2), user(3), user(4));
        let (id, c) = create(&alice);
        let invite_bob = op(
            &alice,
            id,
            2,
            vec![c.hash()],
            Action::Invite {
                role: Role::Admin,
                card: bob.card.clone(),
            },
        );
        let bob_joins = op(&bob, id, 3, vec![invite_bob.hash()], Action::Join);
        let base = bob_joins.hash();
        // Both admins invite at once; the limit is 3, so one invitation wins,
        // the same one everywhere.
        let a = op(
            &alice,
            id,
            10,
            vec![base],
            Action::Invite {
                role: Role::Member,
                card: carol.card.clone(),
            },
        );
        let b = op(
            &bob,
            id,
            10,
            vec![base],
            Action::Invite {
                role: Role::Member,
                card: dave.card.clone(),
            },
        );
        let mut one = OpSet::default();
        let mut two = OpSet::default();
        for o in [&c, &invite_bob, &bob_joins, &a, &b] {
            one.insert(o.clone());
        }
        for o in [&b, &bob_joins, &a, &c, &invite_bob] {
            two.insert(o.clone());
        }
        let (s1, s2) = (one.fold(id), two.fold(id));
        assert_eq!(s1, s2);
        assert_eq!(s1.members.len(), 3);
        // What bob had not seen when he invited dave: alice's invite.
        let unseen: Vec<OpHash> = one.unseen_by(&b).iter().map(|o| o.hash()).collect();
        assert_eq!(unseen, vec![a.hash()]);
        assert_eq!(one.heads().len(), 2);
    }

    #[test]
    fn history_messages_round_trip() {
        for r in [
            HistoryRequest::Keep { topic: "t".into() },
            HistoryRequest::Fetch {
                topic: "t".into(),
                after: 9,
                limit: 3,
            },
        ] {
            assert_eq!(HistoryRequest::from_bytes(&r.to_bytes()).unwrap(), r);
        }
        for r in [
            HistoryResponse::Keeping,
            HistoryResponse::Page {
                items: vec![(1, vec![1, 2])],
                more: true,
            },
            HistoryResponse::Refused {
                reason: "full".into(),
            },
        ] {
            assert_eq!(HistoryResponse::from_bytes(&r.to_bytes()).unwrap(), r);
        }
    }

    #[test]
    fn group_message_round_trips() {
        let m = GroupMessage {
            session: [3; 32],
            ciphertext: vec![1, 2, 3],
        };
        assert_eq!(GroupMessage::from_bytes(&m.to_bytes()).unwrap(), m);
        assert!(GroupMessage::from_bytes(&[1, 2]).is_err());
    }
}

//! One signed membership change, and how its group id binds the creator.

use super::state::GroupError;
use super::{MAX_GROUP_NAME_LEN, MAX_MEMBER_LIMIT, MAX_OP_LEN, MAX_OP_PARENTS};
use crate::card::ContactCard;
use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::ids::{AccountId, GroupId, MessageId};
use crate::keys::{AccountKey, verify_account_signature};

const OP_CONTEXT: &[u8] = b"hush group op v1";
const OP_VERSION: u8 = 1;

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
    /// A member replaces its own card with a newer one of its account (a
    /// device linked or revoked): members reach, and take messages from,
    /// the devices it lists from then on.
    Card { card: ContactCard },
    /// An admin sets how long members' messages last before every device
    /// deletes them (`None`: kept), from the next message on.
    Timer { secs: Option<u32> },
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
            Self::Card { .. } => 6,
            Self::Timer { .. } => 7,
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
            Action::Card { card } => w.bytes(&card.to_bytes()),
            Action::Join | Action::Leave => {}
            Action::Timer { secs } => crate::payload::encode_timer(w, *secs),
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
            Action::Card { card } => {
                if card.account() != self.author {
                    return Err(GroupError::CardMismatch);
                }
                card.verify().map_err(|_| GroupError::BadCard)?;
            }
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
            6 => Action::Card { card: card(r)? },
            7 => Action::Timer {
                secs: crate::payload::decode_timer(r)?,
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

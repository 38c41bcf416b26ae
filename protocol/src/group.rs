//! Groups: signed membership operations, the state they fold into, the
//! control messages that carry them (and Megolm keys) over Olm, and the
//! Megolm-encrypted message members publish on the group's topic.
//!
//! A group's state is not a document anyone edits: it is a pure function of
//! the *set* of [`GroupOp`]s a member holds. Every op is signed by the
//! account that made it and names the newest ops its author knew
//! (`parents`). [`OpSet::fold`] applies the ops parents first and judges
//! each by what its author had seen: it counts only if it descends from the
//! op that gave its author the role it needs, a removal voids the removed
//! account's concurrent ops, and an admin removes only admins made after
//! it. Two members that hold the same set compute the same state, whatever
//! order the ops arrived in, so concurrent changes by two admins converge
//! once the ops have spread. The author's clock (`at`, a [`MessageId`])
//! only orders concurrent ops, and never precedes a parent's.
//!
//! The group id binds the creator: it is derived from the creator's account
//! and a random nonce in the `Create` op, so nobody else can forge a
//! creation for an existing group.

mod control;
mod history;
mod op;
mod publish;
mod state;
#[cfg(test)]
mod tests;

pub use control::{ControlKind, GroupControl, GroupMessage, room_key_claim};
pub use history::{
    HistoryRequest, HistoryResponse, MAX_HISTORY_FRAME, MAX_HISTORY_ITEMS, MAX_TOPIC_LEN,
};
pub use op::{Action, GroupOp, MemberStatus, OpHash, Role};
pub use publish::{CHANNEL_SESSION, PublishKey, TOPIC_PREFIX, TopicKey};
pub use state::{Epoch, GroupError, GroupState, Member, OpSet};

/// Longest group name, in bytes of UTF-8.
pub const MAX_GROUP_NAME_LEN: usize = 64;
/// The member limit a group gets unless its creator picks another.
pub const DEFAULT_MEMBER_LIMIT: u32 = 1000;
/// The largest member limit a group may set.
pub const MAX_MEMBER_LIMIT: u32 = 10_000;
/// Most ops one group may accumulate; past this, changes are refused.
pub const MAX_GROUP_OPS: usize = 4 * MAX_MEMBER_LIMIT as usize;
/// Most ops of one author a member keeps that do not take effect (refused,
/// void, or waiting for parents): past this, more of its ops are dropped.
pub const MAX_IDLE_OPS_PER_AUTHOR: u32 = 64;
/// Most parents one op names.
pub const MAX_OP_PARENTS: usize = 32;
/// Largest encoded op (a card is at most a few KiB).
pub const MAX_OP_LEN: usize = 16 * 1024;
/// Most heads a [`ControlKind::Heads`] names.
pub const MAX_HEADS: usize = 256;
/// Most ops a [`ControlKind::Want`] names: a full one fits the 4 KiB
/// padding bucket (a `Heads` of 256 takes 16 KiB).
pub const MAX_WANTS: usize = 120;
/// Most ops one control message carries.
pub const MAX_CONTROL_OPS: usize = 512;
/// Most message indices a [`ControlKind::Missed`] names.
pub const MAX_MISSED: usize = 64;
/// Most group messages a [`ControlKind::Found`] carries.
pub const MAX_FOUND: usize = 64;
/// Largest Megolm session key (vodozemac's is 229 bytes).
pub const MAX_SESSION_KEY_LEN: usize = 512;
/// Largest Megolm ciphertext a group message carries: the largest padded
/// payload plus Megolm's header, MAC and signature.
pub const MAX_GROUP_CIPHERTEXT_LEN: usize = 64 * 1024 + 256;
/// Largest encoded [`GroupMessage`]: version, session, the ciphertext and
/// its length, an end, the signature and the tag.
pub const MAX_GROUP_MESSAGE_LEN: usize = 1 + 32 + 4 + MAX_GROUP_CIPHERTEXT_LEN + 8 + 64 + 32;

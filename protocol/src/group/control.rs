//! What members send each other over Olm, and what they publish on the
//! group's topic.

use super::op::{GroupOp, OpHash};
use super::publish::PublishKey;
use super::{
    MAX_CONTROL_OPS, MAX_FOUND, MAX_GROUP_CIPHERTEXT_LEN, MAX_GROUP_MESSAGE_LEN, MAX_HEADS,
    MAX_MISSED, MAX_OP_LEN, MAX_SESSION_KEY_LEN, MAX_WANTS,
};
use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::ids::{AccountId, DeviceId, GroupId, MessageId};
use crate::megolm::SessionId;
use crate::receipt::{ReceiptKind, decode_receipt, encode_receipt};

const CONTROL_VERSION: u8 = 1;
/// Largest encoded room key claim (a Megolm message of 128 bytes of
/// plaintext is about 250).
const MAX_CLAIM_LEN: usize = 512;
const CLAIM_CONTEXT: &[u8] = b"hush 2026-12 room key claim";

/// What a room key's claim says: that `account`'s `device` made the
/// session, for `group`.
pub fn room_key_claim(group: &GroupId, account: &AccountId, device: &DeviceId) -> Vec<u8> {
    [CLAIM_CONTEXT, &group.0, &account.0, &device.0].concat()
}
/// A group message without a tag (as published before versions 4 and 5;
/// still read).
const MESSAGE_VERSION: u8 = 2;
/// Version 2 with an end (a disappearing message): `expires_at_ms` after
/// the ciphertext.
const EXPIRING_MESSAGE_VERSION: u8 = 3;
/// What members publish now: version 2 with the members' tag after the
/// signature.
const TAGGED_MESSAGE_VERSION: u8 = 4;
/// Version 3 with the members' tag.
const TAGGED_EXPIRING_MESSAGE_VERSION: u8 = 5;

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
    /// The sender device's current Megolm session key for the group, and
    /// its claim to the session: [`room_key_claim`] naming the sender,
    /// encrypted by the session itself at the key's first index (only the
    /// session's maker can, so no other member can present the key as its
    /// own).
    RoomKey { key: Vec<u8>, claim: Vec<u8> },
    /// The receiver's messages with these ids reached (or were read by) the
    /// sender's device.
    Receipt {
        kind: ReceiptKind,
        ids: Vec<MessageId>,
    },
    /// The publish key of the epoch that op `epoch` began (see
    /// [`GroupState::epoch`](super::GroupState::epoch)).
    PublishKey { epoch: OpHash, key: Box<PublishKey> },
    /// "Send me the publish key of the epoch op `epoch` began": to its
    /// maker, by a member that lacks it.
    PublishKeyRequest { epoch: OpHash },
    /// The ops no op the sender holds names (at most [`MAX_HEADS`]), on the
    /// group's channel only: members holding ops outside their ancestry
    /// publish them, members lacking one of them say what they hold.
    Heads(Vec<OpHash>),
    /// Ops the sender lacks (at most [`MAX_WANTS`]), named in heads it
    /// heard, on the group's channel only: members holding them publish
    /// them, members lacking the same wait for that answer.
    Want(Vec<OpHash>),
    /// "I lack these messages of this session" (Megolm indices, at most
    /// [`MAX_MISSED`]), over Olm, to a member that may hold them: the
    /// session's maker, or another member who read them.
    Missed {
        session: SessionId,
        indices: Vec<u32>,
    },
    /// Group messages as they were published (encoded [`GroupMessage`]s,
    /// at most [`MAX_FOUND`]), over Olm: the answer to a `Missed`.
    Found(Vec<Vec<u8>>),
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
            ControlKind::RoomKey { key, claim } => {
                w.u8(2);
                w.bytes(key);
                w.bytes(claim);
            }
            ControlKind::Receipt { kind, ids } => {
                w.u8(3);
                encode_receipt(w, *kind, ids);
            }
            ControlKind::PublishKey { epoch, key } => {
                w.u8(4);
                w.raw(epoch);
                w.raw(&key.secret());
            }
            ControlKind::PublishKeyRequest { epoch } => {
                w.u8(5);
                w.raw(epoch);
            }
            ControlKind::Heads(heads) => {
                w.u8(6);
                w.list(heads, |w, h| w.raw(h));
            }
            ControlKind::Want(ops) => {
                w.u8(7);
                w.list(ops, |w, h| w.raw(h));
            }
            ControlKind::Missed { session, indices } => {
                w.u8(8);
                w.raw(&session.0);
                w.list(indices, |w, i| w.u32(*i));
            }
            ControlKind::Found(messages) => {
                w.u8(9);
                w.list(messages, |w, m| w.bytes(m));
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
            2 => ControlKind::RoomKey {
                key: r.bytes("session key", MAX_SESSION_KEY_LEN)?.to_vec(),
                claim: r.bytes("room key claim", MAX_CLAIM_LEN)?.to_vec(),
            },
            3 => {
                let (kind, ids) = decode_receipt(r)?;
                ControlKind::Receipt { kind, ids }
            }
            4 => ControlKind::PublishKey {
                epoch: r.array()?,
                key: Box::new(PublishKey::from_secret(&r.array()?)),
            },
            5 => ControlKind::PublishKeyRequest { epoch: r.array()? },
            6 => ControlKind::Heads(r.list("op heads", MAX_HEADS, |r| r.array())?),
            7 => ControlKind::Want(r.list("wanted ops", MAX_WANTS, |r| r.array())?),
            8 => ControlKind::Missed {
                session: SessionId(r.array()?),
                indices: r.list("missed indices", MAX_MISSED, |r| r.u32())?,
            },
            9 => ControlKind::Found(r.list("found messages", MAX_FOUND, |r| {
                Ok(r.bytes("group message", MAX_GROUP_MESSAGE_LEN)?.to_vec())
            })?),
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
/// padded [`Payload`](crate::Payload), which session made it, and the
/// signature of the topic's publish key
/// ([`PublishKey::seal`](super::PublishKey::seal)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    /// [`crate::megolm_session_id`] of the Megolm session.
    pub session: SessionId,
    pub ciphertext: Vec<u8>,
    /// When relays drop it from the topic's history (Unix ms): the end of
    /// a disappearing message, the only thing a relay learns of its timer.
    pub expires_at_ms: Option<u64>,
    /// Ed25519, by the epoch's publish key, over the fields above
    /// ([`TopicKey::verify`](super::TopicKey::verify)): what a relay checks.
    pub signature: [u8; 64],
    /// BLAKE3 keyed by a key derived from the publish key's secret, over
    /// the encoding before it (the signature included): what a member
    /// checks, at a fraction of a signature's cost
    /// ([`PublishKey::is_authentic`](super::PublishKey::is_authentic)).
    /// `None` in a message of version 2 or 3, which members check by the
    /// signature.
    pub tag: Option<[u8; 32]>,
}

impl GroupMessage {
    /// The content hash that names the message on gossipsub (and at relays).
    pub fn digest(bytes: &[u8]) -> [u8; 32] {
        *blake3::Hasher::new_derive_key("hush 2026-11 group message")
            .update(bytes)
            .finalize()
            .as_bytes()
    }

    /// The encoding without the signature (what the signature covers;
    /// its version says whether a tag follows).
    pub(super) fn encode_unsigned(&self, w: &mut Writer) {
        w.u8(match (self.expires_at_ms, self.tag) {
            (None, None) => MESSAGE_VERSION,
            (Some(_), None) => EXPIRING_MESSAGE_VERSION,
            (None, Some(_)) => TAGGED_MESSAGE_VERSION,
            (Some(_), Some(_)) => TAGGED_EXPIRING_MESSAGE_VERSION,
        });
        w.raw(&self.session.0);
        w.bytes(&self.ciphertext);
        if let Some(at) = self.expires_at_ms {
            w.u64(at);
        }
    }
}

impl Wire for GroupMessage {
    const NAME: &'static str = "group message";

    fn encode(&self, w: &mut Writer) {
        self.encode_unsigned(w);
        w.raw(&self.signature);
        if let Some(tag) = &self.tag {
            w.raw(tag);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (expiring, tagged) = match r.u8()? {
            MESSAGE_VERSION => (false, false),
            EXPIRING_MESSAGE_VERSION => (true, false),
            TAGGED_MESSAGE_VERSION => (false, true),
            TAGGED_EXPIRING_MESSAGE_VERSION => (true, true),
            _ => {
                return Err(DecodeError::Invalid {
                    what: Self::NAME,
                    reason: "unknown version (2 to 5 are known)",
                });
            }
        };
        let session = SessionId(r.array()?);
        let ciphertext = r
            .bytes("group ciphertext", MAX_GROUP_CIPHERTEXT_LEN)?
            .to_vec();
        let expires_at_ms = if expiring { Some(r.u64()?) } else { None };
        let signature = r.array()?;
        let tag = if tagged { Some(r.array()?) } else { None };
        Ok(Self {
            session,
            ciphertext,
            expires_at_ms,
            signature,
            tag,
        })
    }
}

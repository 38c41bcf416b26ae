//! Batch requests: an owner fetches and acks its own mailbox and its
//! pairwise ones ([`PairwiseKey`](super::PairwiseKey)) in one request.
//!
//! ```text
//!   owner ──Batch{auth, KeySet::Full{keys, proofs}, Fetch{after, limit}}──▶ relay
//!          (verifies each proof once per challenge, remembers the set)
//!   owner ──Batch{auth, KeySet::Known(digest), Fetch{after, limit}}──▶ relay
//!   relay ──Batch{items: (index, seq, sealed)…, more, keys_left}──▶ owner
//!   owner ──Batch{auth, KeySet::Known(digest), Ack{(index, seq)…}}──▶ relay
//! ```
//!
//! Index 0 is the signer's own mailbox (`MailboxId::of(auth.device)`);
//! index `i` is the mailbox of the set's key `i - 1`. Sequence numbers are
//! the relay's, one counter over all mailboxes, so a single cursor reads
//! the whole set in order.

use ed25519_dalek::{Signature, VerifyingKey};

use super::{MAX_MAILBOX_ITEMS, MAX_SEALED_LEN};
use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::DeviceId;

/// Most pairwise mailbox keys one batch names.
pub const MAX_BATCH_KEYS: usize = 1024;

/// The mailboxes a batch covers besides the signer's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySet {
    /// The mailbox keys, each with its signature over
    /// `"hush mailbox key set v1" ‖ KeySet::digest(challenge, owner, keys)`:
    /// proof that whoever asks holds every key, for this challenge only.
    Full {
        keys: Vec<DeviceId>,
        proofs: Vec<[u8; 64]>,
    },
    /// A set the relay took in full under the same challenge: its digest.
    /// A relay that no longer knows it refuses with `StaleChallenge`, and
    /// the owner sends the set in full under a new challenge.
    Known([u8; 32]),
}

const PROOF_CONTEXT: &[u8] = b"hush mailbox key set v1";

impl KeySet {
    /// Names a key set: `blake3-derive("hush 2026-12 mailbox key set",
    /// challenge ‖ owner ‖ keys…)`.
    pub fn digest(challenge: &[u8; 32], owner: &DeviceId, keys: &[DeviceId]) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key("hush 2026-12 mailbox key set");
        hasher.update(challenge);
        hasher.update(&owner.0);
        for key in keys {
            hasher.update(&key.0);
        }
        *hasher.finalize().as_bytes()
    }

    /// The bytes each key of a set signs.
    pub fn proof_bytes(digest: &[u8; 32]) -> Vec<u8> {
        [PROOF_CONTEXT, digest.as_slice()].concat()
    }

    /// Whether every proof of a full set is its key's signature over the
    /// set's digest.
    pub fn proofs_hold(digest: &[u8; 32], keys: &[DeviceId], proofs: &[[u8; 64]]) -> bool {
        let signed = Self::proof_bytes(digest);
        keys.len() == proofs.len()
            && keys.iter().zip(proofs).all(|(key, proof)| {
                VerifyingKey::from_bytes(&key.0).is_ok_and(|k| {
                    k.verify_strict(&signed, &Signature::from_bytes(proof))
                        .is_ok()
                })
            })
    }

    pub(super) fn encode(&self, w: &mut Writer) {
        match self {
            Self::Full { keys, proofs } => {
                w.u8(0);
                w.list(keys, |w, k| w.raw(&k.0));
                w.list(proofs, |w, p| w.raw(p));
            }
            Self::Known(digest) => {
                w.u8(1);
                w.raw(digest);
            }
        }
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => {
                let keys = r.list("mailbox keys", MAX_BATCH_KEYS, |r| Ok(DeviceId(r.array()?)))?;
                let proofs = r.list("mailbox key proofs", MAX_BATCH_KEYS, |r| r.array())?;
                if proofs.len() != keys.len() {
                    return Err(DecodeError::Invalid {
                        what: "mailbox key set",
                        reason: "one proof per key",
                    });
                }
                Self::Full { keys, proofs }
            }
            1 => Self::Known(r.array()?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "mailbox key set",
                    tag,
                });
            }
        })
    }
}

/// What a batch asks of every mailbox of its set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRequest {
    /// Mail after sequence number `after` in any of the mailboxes, oldest
    /// first, at most `limit` items. Never held open: the owner polls, at
    /// times of its own choosing.
    Fetch { after: u64, limit: u16 },
    /// Deletes these items: (mailbox index, sequence number).
    Ack { items: Vec<(u16, u64)> },
}

impl BatchRequest {
    pub(super) fn encode(&self, w: &mut Writer) {
        match self {
            Self::Fetch { after, limit } => {
                w.u8(0);
                w.u64(*after);
                w.u16(*limit);
            }
            Self::Ack { items } => {
                w.u8(1);
                w.list(items, |w, (index, seq)| {
                    w.u16(*index);
                    w.u64(*seq);
                });
            }
        }
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => Self::Fetch {
                after: r.u64()?,
                limit: r.u16()?,
            },
            1 => Self::Ack {
                items: r.list("acked items", MAX_MAILBOX_ITEMS * 4, |r| {
                    Ok((r.u16()?, r.u64()?))
                })?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "batch request",
                    tag,
                });
            }
        })
    }

    /// The bytes a batch's [`Auth`](super::Auth) signs: the key set, then
    /// the request.
    pub fn body_bytes(&self, keys: &KeySet) -> Vec<u8> {
        let mut w = Writer::default();
        keys.encode(&mut w);
        self.encode(&mut w);
        w.into_bytes()
    }
}

/// One item of a batch page: (mailbox index, sequence number, sealed
/// envelope).
pub type BatchItem = (u16, u64, Vec<u8>);

pub(super) fn encode_items(w: &mut Writer, items: &[BatchItem]) {
    w.list(items, |w, (index, seq, sealed)| {
        w.u16(*index);
        w.u64(*seq);
        w.bytes(sealed);
    });
}

pub(super) fn decode_items(r: &mut Reader<'_>) -> Result<Vec<BatchItem>, DecodeError> {
    r.list("mail items", MAX_MAILBOX_ITEMS, |r| {
        Ok((
            r.u16()?,
            r.u64()?,
            r.bytes("sealed envelope", MAX_SEALED_LEN)?.to_vec(),
        ))
    })
}

//! The mailbox protocol (`/hush/mailbox/1`): what a node says to a relay to
//! leave mail for an offline device, to fetch and delete its own mail, and
//! to host and claim one-time keys.
//!
//! A relay never learns who sent what: a deposit is a [`SealedEnvelope`],
//! an HPKE (RFC 9180) box sealed to the recipient device's mailbox key, with
//! the Olm envelope (and so the sender's keys) inside. The box is addressed
//! to a [`MailboxId`], a hash of the device id. Only the device itself can
//! fetch or delete: it signs each such request over a challenge the relay
//! made ([`Auth`]).
//!
//! ```text
//!   sender ──Deposit{mailbox, sealed}──▶ relay ──(durable)──▶ Deposited
//!   owner  ──Info──▶ relay ──▶ Info{challenge, retention, limits}
//!   owner  ──Fetch{auth, after, wait}──▶ relay ──▶ Items{(seq, sealed)…}
//!   owner  ──Ack{auth, seqs}──▶ relay ──(durable delete)──▶ Acked
//! ```

mod batch;
mod pairwise;
mod push;
mod right;
mod seal;

pub use batch::{BatchItem, BatchRequest, KeySet, MAX_BATCH_KEYS};
pub use pairwise::{DepositKey, GENERATION_MS, MailboxGrant, PairwiseKey, generation_at};
pub use push::{MAX_PUSH_ENDPOINT_LEN, PushTarget, PushUrl};
pub use right::DepositRight;
pub use seal::{MailboxSecret, SealError, SealedEnvelope};

use ed25519_dalek::{Signature, VerifyingKey};
use thiserror::Error;

use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::envelope::{KeyBundle, MAX_ENVELOPE_LEN};
use crate::ids::DeviceId;
use crate::keys::{DeviceList, Proof, SignatureError};

const REQUEST_VERSION: u8 = 1;
const RESPONSE_VERSION: u8 = 1;
const AUTH_CONTEXT: &[u8] = b"hush mailbox auth v1";
/// Largest [`SealedEnvelope`] in bytes.
pub const MAX_SEALED_LEN: usize = 1 + 32 + 4 + MAX_ENVELOPE_LEN + 16;
/// Most items one deposit, fetch answer or ack carries.
pub const MAX_MAILBOX_ITEMS: usize = 256;
/// Largest encoded request or response of `/hush/mailbox/1`.
pub const MAX_MAILBOX_FRAME: usize = 2 * 1024 * 1024;
/// Most one-time keys one upload carries.
pub const MAX_UPLOAD_KEYS: usize = 100;
/// Holders whose deposit rights one mailbox may revoke at a relay.
pub const MAX_REVOKED_HOLDERS: usize = 64;
/// Longest a fetch may wait for new mail before the relay answers empty.
pub const MAX_FETCH_WAIT_MS: u32 = 30_000;
/// Longest error message a relay sends.
pub const MAX_ERROR_MESSAGE_LEN: usize = 256;

/// Where a device's mail is kept: `blake3-derive("hush 2026 mailbox id",
/// device id)`. A depositor needs only this; the owner proves it holds the
/// device key behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailboxId(pub [u8; 32]);

impl MailboxId {
    pub fn of(device: &DeviceId) -> Self {
        Self(blake3::derive_key("hush 2026 mailbox id", &device.0))
    }
}

impl std::fmt::Display for MailboxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(&self.0[..8]))
    }
}

/// The owner's proof: the device key's Ed25519 signature over
/// `"hush mailbox auth v1" ‖ challenge ‖ request bytes without the auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth {
    pub device: DeviceId,
    /// A challenge the relay handed out in [`MailboxResponse::Info`].
    pub challenge: [u8; 32],
    pub signature: [u8; 64],
}

impl Auth {
    /// The bytes the device signs.
    pub fn signed_bytes(challenge: &[u8; 32], body: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(AUTH_CONTEXT.len() + 32 + body.len());
        buf.extend_from_slice(AUTH_CONTEXT);
        buf.extend_from_slice(challenge);
        buf.extend_from_slice(body);
        buf
    }

    /// Checks the signature against the device key (the device id is an
    /// Ed25519 public key).
    pub fn verify(&self, body: &[u8]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.device.0) else {
            return false;
        };
        key.verify_strict(
            &Self::signed_bytes(&self.challenge, body),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }

    fn encode(&self, w: &mut Writer) {
        w.raw(&self.device.0);
        w.raw(&self.challenge);
        w.raw(&self.signature);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            device: DeviceId(r.array()?),
            challenge: r.array()?,
            signature: r.array()?,
        })
    }
}

/// A request that only the mailbox owner may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerRequest {
    /// Mail after sequence number `after`, oldest first, at most `limit`
    /// items; if there is none, the relay may hold the answer up to
    /// `wait_ms` until some arrives.
    Fetch {
        after: u64,
        limit: u16,
        wait_ms: u32,
    },
    /// Deletes the items with these sequence numbers.
    Ack { seqs: Vec<u64> },
    /// Replaces the one-time keys and fallback key the relay hands out for
    /// this device.
    PutKeys {
        one_time: Vec<KeyBundle>,
        fallback: KeyBundle,
    },
    /// Replaces the holder tags (see [`DepositRight`]) whose rights to this
    /// mailbox the relay no longer honours: their mail counts as a
    /// stranger's (the owner blocked them). At most
    /// [`MAX_REVOKED_HOLDERS`]; empty clears the list.
    Revoke { holders: Vec<[u8; 16]> },
    /// Registers (or, with `None`, removes) where the relay wakes this
    /// device while it is not connected and mail arrives for it.
    SetPush { target: Option<PushTarget> },
}

impl OwnerRequest {
    /// The bytes an [`Auth`] signs.
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode(&mut w);
        w.into_bytes()
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Fetch {
                after,
                limit,
                wait_ms,
            } => {
                w.u8(0);
                w.u64(*after);
                w.u16(*limit);
                w.u32(*wait_ms);
            }
            Self::Ack { seqs } => {
                w.u8(1);
                w.list(seqs, |w, s| w.u64(*s));
            }
            Self::PutKeys { one_time, fallback } => {
                w.u8(2);
                w.list(one_time, |w, k| k.encode(w));
                fallback.encode(w);
            }
            Self::Revoke { holders } => {
                w.u8(3);
                w.list(holders, |w, h| w.raw(h));
            }
            Self::SetPush { target } => {
                w.u8(4);
                PushTarget::encode_option(target.as_ref(), w);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => Self::Fetch {
                after: r.u64()?,
                limit: r.u16()?,
                wait_ms: r.u32()?,
            },
            1 => Self::Ack {
                seqs: r.list("acked seqs", MAX_MAILBOX_ITEMS * 4, |r| r.u64())?,
            },
            2 => Self::PutKeys {
                one_time: r.list("one-time keys", MAX_UPLOAD_KEYS, KeyBundle::decode)?,
                fallback: KeyBundle::decode(r)?,
            },
            3 => Self::Revoke {
                holders: r.list("revoked holders", MAX_REVOKED_HOLDERS, |r| r.array())?,
            },
            4 => Self::SetPush {
                target: PushTarget::decode_option(r)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "owner request",
                    tag,
                });
            }
        })
    }
}

/// One sealed envelope of a deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositItem {
    pub mailbox: MailboxId,
    pub sealed: Vec<u8>,
    /// When the relay drops it, Unix ms, if before its retention ends: the
    /// end of a disappearing message (what the relay learns of it).
    pub expires_at_ms: Option<u64>,
}

impl DepositItem {
    pub fn new(mailbox: MailboxId, sealed: Vec<u8>) -> Self {
        Self {
            mailbox,
            sealed,
            expires_at_ms: None,
        }
    }
}

/// A request on `/hush/mailbox/1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxRequest {
    /// The relay's limits and a fresh challenge.
    Info,
    /// Leaves sealed envelopes in mailboxes, in this order. With a right,
    /// the items for the right's mailbox count as a contact's.
    Deposit {
        right: Option<DepositRight>,
        items: Vec<DepositItem>,
    },
    /// Hands out one of the device's one-time keys (each once), or its
    /// fallback key when none is left.
    ClaimKey { device: DeviceId },
    /// A request signed by the mailbox owner.
    Owner {
        auth: Box<Auth>,
        request: OwnerRequest,
    },
    /// An account revoked devices: `old` lists them (each with its own
    /// proof), `new` (newer, same account) does not. The relay drops their
    /// mailboxes and hosted keys, and refuses them from then on (see
    /// [`revoked_devices`]).
    DropRevoked {
        old: Box<DeviceList>,
        new: Box<DeviceList>,
    },
    /// A request over the signer's own mailbox and a set of pairwise ones
    /// (see [`KeySet`]); `auth` signs [`BatchRequest::body_bytes`].
    Batch {
        auth: Box<Auth>,
        keys: KeySet,
        request: BatchRequest,
    },
}

/// Why a [`MailboxRequest::DropRevoked`] names nothing to drop.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DropError {
    #[error("a device list does not verify: {0}")]
    Signature(#[from] SignatureError),
    #[error("the two device lists are of different accounts")]
    OtherAccount,
    #[error("the new device list is not newer than the old one")]
    NotNewer,
    #[error("no device of the old list, proven by its own signature, is missing from the new one")]
    NothingRevoked,
}

/// The devices an account revoked between two of its lists: those on
/// `old` with their own proof ([`Proof::Proven`]: the device itself signed
/// the entry for this account, so no account can have another's device
/// dropped) and not on `new`, which must be the same account's and newer.
pub fn revoked_devices(old: &DeviceList, new: &DeviceList) -> Result<Vec<DeviceId>, DropError> {
    old.verify()?;
    new.verify()?;
    if old.account != new.account {
        return Err(DropError::OtherAccount);
    }
    if new.issued_at_ms <= old.issued_at_ms {
        return Err(DropError::NotNewer);
    }
    let gone: Vec<DeviceId> = old
        .devices
        .iter()
        .filter(|d| new.device(&d.device_id).is_none())
        .filter(|d| old.proof(d) == Proof::Proven)
        .map(|d| d.device_id)
        .collect();
    if gone.is_empty() {
        return Err(DropError::NothingRevoked);
    }
    Ok(gone)
}

impl Wire for MailboxRequest {
    const NAME: &'static str = "mailbox request";

    fn encode(&self, w: &mut Writer) {
        w.u8(REQUEST_VERSION);
        match self {
            Self::Info => w.u8(0),
            Self::Deposit { right, items } => {
                // Tags 6 and 7 carry an expiry per item; 1 and 4 (none)
                // stay for deposits without one.
                let expiring = items.iter().any(|i| i.expires_at_ms.is_some());
                match (right, expiring) {
                    (None, false) => w.u8(1),
                    (None, true) => w.u8(6),
                    (Some(right), expiring) => {
                        w.u8(if expiring { 7 } else { 4 });
                        right.encode(w);
                    }
                }
                w.list(items, |w, item| {
                    w.raw(&item.mailbox.0);
                    w.bytes(&item.sealed);
                    if expiring {
                        w.u64(item.expires_at_ms.unwrap_or(0));
                    }
                });
            }
            Self::ClaimKey { device } => {
                w.u8(2);
                w.raw(&device.0);
            }
            Self::Owner { auth, request } => {
                w.u8(3);
                auth.encode(w);
                request.encode(w);
            }
            Self::DropRevoked { old, new } => {
                w.u8(5);
                old.encode(w);
                new.encode(w);
            }
            Self::Batch {
                auth,
                keys,
                request,
            } => {
                w.u8(8);
                auth.encode(w);
                keys.encode(w);
                request.encode(w);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.remaining() > MAX_MAILBOX_FRAME {
            return Err(DecodeError::TooLong {
                what: Self::NAME,
                len: r.remaining(),
                max: MAX_MAILBOX_FRAME,
            });
        }
        r.version(Self::NAME, REQUEST_VERSION)?;
        Ok(match r.u8()? {
            0 => Self::Info,
            tag @ (1 | 4 | 6 | 7) => {
                let right = if matches!(tag, 4 | 7) {
                    Some(DepositRight::decode(r)?)
                } else {
                    None
                };
                let expiring = matches!(tag, 6 | 7);
                let items = r.list("deposit items", MAX_MAILBOX_ITEMS, |r| {
                    let mailbox = MailboxId(r.array()?);
                    let sealed = r.bytes("sealed envelope", MAX_SEALED_LEN)?.to_vec();
                    let expires_at_ms = match expiring {
                        true => Some(r.u64()?).filter(|at| *at != 0),
                        false => None,
                    };
                    Ok(DepositItem {
                        mailbox,
                        sealed,
                        expires_at_ms,
                    })
                })?;
                if items.is_empty() {
                    return Err(DecodeError::Invalid {
                        what: Self::NAME,
                        reason: "a deposit carries at least one item",
                    });
                }
                Self::Deposit { right, items }
            }
            2 => Self::ClaimKey {
                device: DeviceId(r.array()?),
            },
            3 => Self::Owner {
                auth: Box::new(Auth::decode(r)?),
                request: OwnerRequest::decode(r)?,
            },
            5 => Self::DropRevoked {
                old: Box::new(DeviceList::decode(r)?),
                new: Box::new(DeviceList::decode(r)?),
            },
            8 => Self::Batch {
                auth: Box::new(Auth::decode(r)?),
                keys: KeySet::decode(r)?,
                request: BatchRequest::decode(r)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "mailbox request",
                    tag,
                });
            }
        })
    }
}

/// Why a relay refused a deposit or a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request could not be decoded.
    Malformed = 0,
    /// The auth signature is not the mailbox owner's.
    NotOwner = 1,
    /// The challenge is unknown or too old: ask for a new one with `Info`.
    StaleChallenge = 2,
    /// The recipient's mailbox is at its quota.
    MailboxFull = 3,
    /// This sender has left as much in this mailbox as one sender may.
    SenderQuota = 4,
    /// The relay's disk budget is used up.
    RelayFull = 5,
    /// The item is larger than the relay accepts.
    TooLarge = 6,
    /// The relay is busy or could not store it now: try again later.
    Unavailable = 7,
    /// No key is left for that device (it never uploaded any).
    NoKeys = 8,
    /// The mailbox holds as much mail from senders without a deposit right
    /// (strangers) as it allows.
    StrangerQuota = 9,
    /// The device was revoked by its account: its mailbox is gone.
    Dropped = 10,
    /// The relay sends no push to that endpoint (push is off, or the
    /// endpoint is malformed or not allowed by the operator).
    PushRefused = 11,
}

impl Refusal {
    fn from_tag(tag: u8) -> Result<Self, DecodeError> {
        Ok(match tag {
            0 => Self::Malformed,
            1 => Self::NotOwner,
            2 => Self::StaleChallenge,
            3 => Self::MailboxFull,
            4 => Self::SenderQuota,
            5 => Self::RelayFull,
            6 => Self::TooLarge,
            7 => Self::Unavailable,
            8 => Self::NoKeys,
            9 => Self::StrangerQuota,
            10 => Self::Dropped,
            11 => Self::PushRefused,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "refusal",
                    tag,
                });
            }
        })
    }

    /// How many refusal codes there are (they run from 0).
    pub const COUNT: usize = 12;

    /// Whether trying again later may succeed without anything changing on
    /// the sender's side.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable | Self::StaleChallenge)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Malformed => "the relay could not decode the request",
            Self::NotOwner => "the request is not signed by the mailbox owner",
            Self::StaleChallenge => "the relay's challenge expired",
            Self::MailboxFull => "the recipient's mailbox at the relay is full",
            Self::SenderQuota => {
                "the relay holds as much mail from us for the recipient as it allows"
            }
            Self::RelayFull => "the relay's storage is full",
            Self::TooLarge => "the message is larger than the relay accepts",
            Self::Unavailable => "the relay could not store it right now",
            Self::NoKeys => "the relay holds no keys for that device",
            Self::StrangerQuota => {
                "the recipient has not given us a deposit right (have they added us?), and its mailbox holds as much mail from strangers as it allows"
            }
            Self::Dropped => {
                "that device was revoked by its account: the relay dropped its mailbox"
            }
            Self::PushRefused => "the relay sends no push notifications to that endpoint",
        }
    }
}

/// The answer to one deposited item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepositResult {
    /// Durably stored.
    Stored,
    /// The same sealed bytes were stored before: also durable.
    Duplicate,
    Refused(Refusal),
}

/// A response on `/hush/mailbox/1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxResponse {
    Info {
        /// Sign owner requests over this; valid for a few minutes.
        challenge: [u8; 32],
        /// How long unfetched mail is kept, in seconds.
        retention_secs: u64,
        /// Largest sealed envelope accepted.
        max_item_len: u32,
    },
    Deposited {
        results: Vec<DepositResult>,
    },
    Key(KeyBundle),
    /// Mail in sequence order; `more` says a further page is waiting.
    Items {
        items: Vec<(u64, Vec<u8>)>,
        more: bool,
        /// One-time keys the relay still holds for this device.
        keys_left: u32,
    },
    Acked {
        removed: u32,
    },
    KeysStored {
        one_time: u32,
    },
    /// The mailbox's revoked holders are now these many.
    Revoked {
        holders: u16,
    },
    /// The mailboxes of this many revoked devices are dropped (now or
    /// before).
    Dropped {
        devices: u16,
    },
    Refused {
        reason: Refusal,
        message: String,
    },
    /// A page of a batch: mail of the set's mailboxes in sequence order.
    Batch {
        items: Vec<BatchItem>,
        more: bool,
        /// One-time keys the relay still holds for the signing device.
        keys_left: u32,
    },
    /// The device's push registration is stored (`active`) or removed.
    PushSet {
        active: bool,
    },
}

impl MailboxResponse {
    pub fn refused(reason: Refusal) -> Self {
        Self::Refused {
            reason,
            message: reason.describe().to_owned(),
        }
    }
}

impl Wire for MailboxResponse {
    const NAME: &'static str = "mailbox response";

    fn encode(&self, w: &mut Writer) {
        w.u8(RESPONSE_VERSION);
        match self {
            Self::Info {
                challenge,
                retention_secs,
                max_item_len,
            } => {
                w.u8(0);
                w.raw(challenge);
                w.u64(*retention_secs);
                w.u32(*max_item_len);
            }
            Self::Deposited { results } => {
                w.u8(1);
                w.list(results, |w, r| match r {
                    DepositResult::Stored => w.u8(0),
                    DepositResult::Duplicate => w.u8(1),
                    DepositResult::Refused(reason) => {
                        w.u8(2);
                        w.u8(*reason as u8);
                    }
                });
            }
            Self::Key(bundle) => {
                w.u8(2);
                bundle.encode(w);
            }
            Self::Items {
                items,
                more,
                keys_left,
            } => {
                w.u8(3);
                w.list(items, |w, (seq, sealed)| {
                    w.u64(*seq);
                    w.bytes(sealed);
                });
                w.u8(u8::from(*more));
                w.u32(*keys_left);
            }
            Self::Acked { removed } => {
                w.u8(4);
                w.u32(*removed);
            }
            Self::KeysStored { one_time } => {
                w.u8(5);
                w.u32(*one_time);
            }
            Self::Refused { reason, message } => {
                w.u8(6);
                w.u8(*reason as u8);
                let end = message
                    .char_indices()
                    .map(|(i, c)| i + c.len_utf8())
                    .take_while(|end| *end <= MAX_ERROR_MESSAGE_LEN)
                    .last()
                    .unwrap_or(0);
                w.str(&message[..end]);
            }
            Self::Revoked { holders } => {
                w.u8(7);
                w.u16(*holders);
            }
            Self::Dropped { devices } => {
                w.u8(8);
                w.u16(*devices);
            }
            Self::Batch {
                items,
                more,
                keys_left,
            } => {
                w.u8(9);
                batch::encode_items(w, items);
                w.u8(u8::from(*more));
                w.u32(*keys_left);
            }
            Self::PushSet { active } => {
                w.u8(10);
                w.u8(u8::from(*active));
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.remaining() > MAX_MAILBOX_FRAME {
            return Err(DecodeError::TooLong {
                what: Self::NAME,
                len: r.remaining(),
                max: MAX_MAILBOX_FRAME,
            });
        }
        r.version(Self::NAME, RESPONSE_VERSION)?;
        Ok(match r.u8()? {
            0 => Self::Info {
                challenge: r.array()?,
                retention_secs: r.u64()?,
                max_item_len: r.u32()?,
            },
            1 => Self::Deposited {
                results: r.list("deposit results", MAX_MAILBOX_ITEMS, |r| {
                    Ok(match r.u8()? {
                        0 => DepositResult::Stored,
                        1 => DepositResult::Duplicate,
                        2 => DepositResult::Refused(Refusal::from_tag(r.u8()?)?),
                        tag => {
                            return Err(DecodeError::UnknownTag {
                                what: "deposit result",
                                tag,
                            });
                        }
                    })
                })?,
            },
            2 => Self::Key(KeyBundle::decode(r)?),
            3 => Self::Items {
                items: r.list("mail items", MAX_MAILBOX_ITEMS, |r| {
                    Ok((
                        r.u64()?,
                        r.bytes("sealed envelope", MAX_SEALED_LEN)?.to_vec(),
                    ))
                })?,
                more: decode_more(r)?,
                keys_left: r.u32()?,
            },
            4 => Self::Acked { removed: r.u32()? },
            5 => Self::KeysStored { one_time: r.u32()? },
            6 => Self::Refused {
                reason: Refusal::from_tag(r.u8()?)?,
                message: r.str("refusal message", MAX_ERROR_MESSAGE_LEN)?.to_owned(),
            },
            7 => Self::Revoked { holders: r.u16()? },
            8 => Self::Dropped { devices: r.u16()? },
            9 => Self::Batch {
                items: batch::decode_items(r)?,
                more: decode_more(r)?,
                keys_left: r.u32()?,
            },
            10 => Self::PushSet {
                active: decode_more(r)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "mailbox response",
                    tag,
                });
            }
        })
    }
}

fn decode_more(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        tag => Err(DecodeError::UnknownTag { what: "more", tag }),
    }
}

#[cfg(test)]
mod tests;

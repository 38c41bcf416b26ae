//! Linking a new device to an account: the one-time link code, the Noise
//! `XXpsk3` handshake keyed by it (from `snow`), and the messages the old
//! device hands over in it.
//!
//! ```text
//!   new device (initiator)                 old device (responder)
//!   ── LinkFrame(msg 1: e) ──────────────▶
//!   ◀────────────── LinkFrame(msg 2: e, ee, s, es; LinkOffer)
//!   ── LinkFrame(msg 3: s, se, psk; LinkRequest) ─▶   psk wrong → fails here
//!   ◀────────────── transport(LinkReply::Grant)
//!   ── transport(LinkStep::Contacts) ────▶ ◀── transport(LinkReply::Contacts)
//!   ── transport(LinkStep::Messages) ────▶ ◀── transport(LinkReply::Messages)  … paged
//!   ── transport(LinkStep::Done) ────────▶ ◀── transport(LinkReply::Finished)
//! ```
//!
//! Each arrow is one request or one response of `/hush/link/1`. The
//! pre-shared key is derived from the code's secret, and the prologue binds
//! the old device's id, so only someone who read the code, talking to the
//! device that printed it, completes the handshake. See docs/protocol.md §12.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::device::PresenceRecord;
use crate::ids::{AccountId, DeviceId, GroupId};
use crate::keys::{DeviceKeys, DeviceList};
use crate::payload::MAX_TEXT_LEN;
use crate::presence::PresenceKey;

mod session;
pub use session::{LinkInitiator, LinkNoise, LinkReceived, LinkResponder, MAX_LINK_FAILURES};

/// A link code's text starts with this.
pub const LINK_PREFIX: &str = "hush-link1";
/// How long a link code is valid after it was made.
pub const LINK_VALID_MS: u64 = 10 * 60 * 1000;
/// The largest frame of the link protocol: one Noise message.
pub const MAX_LINK_FRAME: usize = 65_535;
/// What a page of contacts or messages holds at most, in plaintext bytes
/// (one Noise message, less its tag and the reply's own fields).
pub const MAX_LINK_PAGE_BYTES: usize = 60 * 1024;
/// Addresses a link code carries at most.
pub const MAX_LINK_ADDRESSES: usize = 4;
/// Longest address in a link code.
const MAX_LINK_ADDRESS_LEN: usize = 256;
/// Longest device name.
pub const MAX_DEVICE_NAME_LEN: usize = 64;
/// Longest card text handed over.
const MAX_CARD_LEN: usize = crate::card::MAX_CARD_TEXT_LEN;
/// Items in one page.
const MAX_PAGE_ITEMS: usize = 4_096;

const NOISE_PARAMS: &str = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s";
const PSK_CONTEXT: &str = "hush link psk v1";
const PROLOGUE: &[u8] = b"hush link v1";
const CHECKSUM_LEN: usize = 4;
const CODE_VERSION: u8 = 1;
const LINK_VERSION: u8 = 1;
/// Noise's AEAD tag.
const TAG_LEN: usize = 16;

/// Why a link failed.
#[derive(Debug, Error)]
pub enum LinkError {
    #[error(
        "the link code is wrong (or someone tampered with the link): run `hush device link` again on the old device and copy the whole code"
    )]
    WrongCode,
    #[error("the link code expired; run `hush device link` again on the old device")]
    Expired,
    #[error("the link failed: {0}")]
    Protocol(&'static str),
    #[error("the link's data is malformed: {0}")]
    Decode(#[from] DecodeError),
}

/// Why a link code's text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkCodeError {
    #[error(
        "a link code starts with \"{LINK_PREFIX}\"; copy the whole line `hush device link` printed"
    )]
    MissingPrefix,
    #[error("the link code is damaged (not base58, or its checksum does not match); copy it again")]
    Damaged,
    #[error("the link code is malformed: {0}")]
    Decode(#[from] DecodeError),
}

/// What the old device prints and the new device is given: who to reach,
/// where, and the secret that proves the new device was given the code.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkCode {
    /// The old device (its libp2p key).
    pub device: DeviceId,
    /// The one-time secret; the Noise pre-shared key derives from it.
    pub secret: [u8; 32],
    /// Until when the old device accepts it (ms since the epoch).
    pub expires_at_ms: u64,
    /// Where the old device listens (multiaddr text).
    pub addresses: Vec<String>,
}

impl fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkCode")
            .field("device", &self.device)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

impl Wire for LinkCode {
    const NAME: &'static str = "link code";

    fn encode(&self, w: &mut Writer) {
        w.u8(CODE_VERSION);
        w.raw(&self.device.0);
        w.raw(&self.secret);
        w.u64(self.expires_at_ms);
        w.list(&self.addresses, |w, a| w.str(a));
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, CODE_VERSION)?;
        Ok(Self {
            device: DeviceId(r.array()?),
            secret: r.array()?,
            expires_at_ms: r.u64()?,
            addresses: r.list("link code addresses", MAX_LINK_ADDRESSES, |r| {
                Ok(r.str("link code address", MAX_LINK_ADDRESS_LEN)?.to_owned())
            })?,
        })
    }
}

impl fmt::Display for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = self.to_bytes();
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(&checksum.as_bytes()[..CHECKSUM_LEN]);
        write!(f, "{LINK_PREFIX}{}", bs58::encode(bytes).into_string())
    }
}

impl FromStr for LinkCode {
    type Err = LinkCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .trim()
            .strip_prefix(LINK_PREFIX)
            .ok_or(LinkCodeError::MissingPrefix)?;
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| LinkCodeError::Damaged)?;
        if bytes.len() < CHECKSUM_LEN {
            return Err(LinkCodeError::Damaged);
        }
        let (code, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if blake3::hash(code).as_bytes()[..CHECKSUM_LEN] != *checksum {
            return Err(LinkCodeError::Damaged);
        }
        Ok(Self::from_bytes(code)?)
    }
}

/// In the old device's second handshake message: whose account this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOffer {
    pub account: AccountId,
    /// The account's display name.
    pub name: String,
}

impl Wire for LinkOffer {
    const NAME: &'static str = "link offer";

    fn encode(&self, w: &mut Writer) {
        w.u8(LINK_VERSION);
        w.raw(&self.account.0);
        w.str(&self.name);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, LINK_VERSION)?;
        Ok(Self {
            account: AccountId(r.array()?),
            name: r.str("account name", crate::MAX_NAME_LEN)?.to_owned(),
        })
    }
}

/// In the new device's third handshake message: the device to put on the
/// list, its proof for the account, its name and what history it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    pub device: DeviceKeys,
    /// [`DeviceKeys::prove`] for the offered account.
    pub proof: [u8; 64],
    pub name: String,
    /// Messages sent from this time on (ms since the epoch); 0 = all,
    /// `u64::MAX` = none.
    pub history_since_ms: u64,
}

impl Wire for LinkRequest {
    const NAME: &'static str = "link request";

    fn encode(&self, w: &mut Writer) {
        w.u8(LINK_VERSION);
        self.device.encode(w);
        w.raw(&self.proof);
        w.str(&self.name);
        w.u64(self.history_since_ms);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, LINK_VERSION)?;
        Ok(Self {
            device: DeviceKeys::decode(r)?,
            proof: r.array()?,
            name: r.str("device name", MAX_DEVICE_NAME_LEN)?.to_owned(),
            history_since_ms: r.u64()?,
        })
    }
}

/// A contact as handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkContact {
    pub name: String,
    /// The card's text form (verified again by the new device).
    pub card: String,
    pub send_receipts: bool,
    pub added_at_ms: u64,
    pub blocked: bool,
    /// The verified keys' fingerprint, if the user verified the contact.
    pub verified: Option<[u8; 32]>,
    /// Presence with this contact, as the old device holds it (the new
    /// device stores it as is).
    pub presence: PresenceRecord,
    /// The conversation's disappearing timer (seconds; `None`: off) and the
    /// id of the change that set it, if it was ever set.
    pub timer: Option<(Option<u32>, u128)>,
}

impl LinkContact {
    fn encode(&self, w: &mut Writer) {
        w.str(&self.name);
        w.str(&self.card);
        w.u8(u8::from(self.send_receipts) | u8::from(self.blocked) << 1);
        w.u64(self.added_at_ms);
        match &self.verified {
            Some(v) => {
                w.u8(1);
                w.raw(v);
            }
            None => w.u8(0),
        }
        let p = &self.presence;
        w.u8(u8::from(p.share));
        w.u32(p.shared_epoch);
        match &p.their_key {
            Some((epoch, key)) => {
                w.u8(1);
                w.u32(*epoch);
                w.raw(key);
            }
            None => w.u8(0),
        }
        w.u64(p.last_seen_ms);
        match &self.timer {
            Some((secs, set_by)) => {
                w.u8(1);
                crate::payload::encode_timer(w, *secs);
                w.u128(*set_by);
            }
            None => w.u8(0),
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let name = r.str("contact name", crate::MAX_NAME_LEN)?.to_owned();
        let card = r.str("contact card", MAX_CARD_LEN)?.to_owned();
        let flags = r.u8()?;
        let added_at_ms = r.u64()?;
        let verified = match r.u8()? {
            0 => None,
            1 => Some(r.array()?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "verified",
                    tag,
                });
            }
        };
        let share = r.u8()? != 0;
        let shared_epoch = r.u32()?;
        let their_key = match r.u8()? {
            0 => None,
            1 => Some((r.u32()?, r.array()?)),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "their presence key",
                    tag,
                });
            }
        };
        let presence = PresenceRecord {
            share,
            shared_epoch,
            their_key,
            last_seen_ms: r.u64()?,
        };
        let timer = match r.u8()? {
            0 => None,
            1 => Some((crate::payload::decode_timer(r)?, r.u128()?)),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "conversation timer",
                    tag,
                });
            }
        };
        Ok(Self {
            name,
            card,
            send_receipts: flags & 1 != 0,
            blocked: flags & 2 != 0,
            added_at_ms,
            verified,
            presence,
            timer,
        })
    }

    fn size(&self) -> usize {
        self.name.len() + self.card.len() + 120
    }
}

/// A message of a 1:1 conversation as handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMessage {
    /// The conversation: the contact's account id (in `Messages`), or the
    /// group id (in `GroupMessages`).
    pub conversation: [u8; 32],
    pub id: u128,
    /// The author's account.
    pub from: AccountId,
    pub outgoing: bool,
    pub text: String,
    /// 0 pending, 1 sent, 2 delivered, 3 read.
    pub status: u8,
    pub sent_at_ms: u64,
    pub stored_at_ms: u64,
    /// Seconds after `sent_at_ms` it disappears (`None`: kept).
    pub timer_secs: Option<u32>,
    /// `Some`: not a message but a change of the conversation's timer to
    /// this (`None` inside: off).
    pub timer_change: Option<Option<u32>>,
}

impl LinkMessage {
    fn encode(&self, w: &mut Writer) {
        w.raw(&self.conversation);
        w.u128(self.id);
        w.raw(&self.from.0);
        w.u8(u8::from(self.outgoing));
        w.str(&self.text);
        w.u8(self.status);
        w.u64(self.sent_at_ms);
        w.u64(self.stored_at_ms);
        crate::payload::encode_timer(w, self.timer_secs);
        match self.timer_change {
            Some(secs) => {
                w.u8(1);
                crate::payload::encode_timer(w, secs);
            }
            None => w.u8(0),
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            conversation: r.array()?,
            id: r.u128()?,
            from: AccountId(r.array()?),
            outgoing: r.u8()? != 0,
            text: r.str("message text", MAX_TEXT_LEN)?.to_owned(),
            status: match r.u8()? {
                s @ 0..=3 => s,
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "status",
                        tag,
                    });
                }
            },
            sent_at_ms: r.u64()?,
            stored_at_ms: r.u64()?,
            timer_secs: crate::payload::decode_timer(r)?,
            timer_change: match r.u8()? {
                0 => None,
                1 => Some(crate::payload::decode_timer(r)?),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "message kind",
                        tag,
                    });
                }
            },
        })
    }

    fn size(&self) -> usize {
        self.text.len() + 120
    }
}

/// What the new device asks for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkStep {
    /// The next page of contacts, after this account (`None`: the first).
    Contacts { after: Option<AccountId> },
    /// The next page of messages, after this (conversation, id).
    Messages { after: Option<(AccountId, u128)> },
    /// Everything is stored on the new device: put it on the list.
    Done { contacts: u32, messages: u32 },
    /// The next items of the account's groups, after this (group, item
    /// index) (`None`: from the first group).
    Groups { after: Option<(GroupId, u32)> },
    /// The next page of group messages, after this (group, id).
    GroupMessages { after: Option<(GroupId, u128)> },
}

impl Wire for LinkStep {
    const NAME: &'static str = "link step";

    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Contacts { after } => {
                w.u8(0);
                match after {
                    Some(a) => {
                        w.u8(1);
                        w.raw(&a.0);
                    }
                    None => w.u8(0),
                }
            }
            Self::Messages { after } => {
                w.u8(1);
                match after {
                    Some((c, id)) => {
                        w.u8(1);
                        w.raw(&c.0);
                        w.u128(*id);
                    }
                    None => w.u8(0),
                }
            }
            Self::Done { contacts, messages } => {
                w.u8(2);
                w.u32(*contacts);
                w.u32(*messages);
            }
            Self::Groups { after } => {
                w.u8(3);
                match after {
                    Some((g, i)) => {
                        w.u8(1);
                        w.raw(&g.0);
                        w.u32(*i);
                    }
                    None => w.u8(0),
                }
            }
            Self::GroupMessages { after } => {
                w.u8(4);
                match after {
                    Some((g, id)) => {
                        w.u8(1);
                        w.raw(&g.0);
                        w.u128(*id);
                    }
                    None => w.u8(0),
                }
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let present = |r: &mut Reader<'_>| match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::UnknownTag {
                what: "option",
                tag,
            }),
        };
        match r.u8()? {
            0 => Ok(Self::Contacts {
                after: if present(r)? {
                    Some(AccountId(r.array()?))
                } else {
                    None
                },
            }),
            1 => Ok(Self::Messages {
                after: if present(r)? {
                    Some((AccountId(r.array()?), r.u128()?))
                } else {
                    None
                },
            }),
            2 => Ok(Self::Done {
                contacts: r.u32()?,
                messages: r.u32()?,
            }),
            3 => Ok(Self::Groups {
                after: if present(r)? {
                    Some((GroupId(r.array()?), r.u32()?))
                } else {
                    None
                },
            }),
            4 => Ok(Self::GroupMessages {
                after: if present(r)? {
                    Some((GroupId(r.array()?), r.u128()?))
                } else {
                    None
                },
            }),
            tag => Err(DecodeError::UnknownTag {
                what: Self::NAME,
                tag,
            }),
        }
    }
}

/// The account's presence seed (its devices derive each epoch's presence
/// key from it). Never printed; wiped when dropped.
#[derive(Clone, PartialEq, Eq, zeroize::ZeroizeOnDrop)]
pub struct PresenceSeed(pub [u8; 32]);

impl fmt::Debug for PresenceSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresenceSeed(<redacted>)")
    }
}

/// One of the account's devices, as the account's devices name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceName {
    pub device: DeviceId,
    pub name: String,
    pub linked_at_ms: u64,
}

/// The account key's seed, copied to a new device only when its user asks
/// (`--with-account-key`). Never printed; wiped when dropped.
#[derive(Clone, PartialEq, Eq, zeroize::ZeroizeOnDrop)]
pub struct AccountSeed(pub [u8; 32]);

impl fmt::Debug for AccountSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountSeed(<redacted>)")
    }
}

/// What the old device answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkReply {
    /// The request is accepted: the new list (with the new device), the
    /// account's card made with it, the account key if the old device's
    /// user chose to copy it, and the home relays.
    Grant {
        device_list: Box<DeviceList>,
        card: String,
        account_seed: Option<AccountSeed>,
        relays: Vec<String>,
        /// The account's devices' names (names never leave the account).
        names: Vec<DeviceName>,
        /// The account's presence key and sharing switch: every device of
        /// the account seals its presence with the same key, so contacts
        /// (who keep one key per account) read all of them.
        presence: Option<(bool, PresenceKey, PresenceSeed)>,
    },
    Contacts {
        items: Vec<LinkContact>,
        more: bool,
    },
    Messages {
        items: Vec<LinkMessage>,
        more: bool,
    },
    /// The old device took the new list as its own.
    Finished,
    /// Items of the account's groups, in (group, index) order.
    Groups {
        items: Vec<LinkGroupItem>,
        more: bool,
    },
    /// Group messages (`conversation` is the group id).
    GroupMessages {
        items: Vec<LinkMessage>,
        more: bool,
    },
}

/// One item of a group as handed over; the group's items are numbered
/// from 0 in this order: its record, its ops, its publish keys, its
/// Megolm sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkGroupItem {
    pub group: GroupId,
    /// The item's number within its group (the cursor).
    pub index: u32,
    pub kind: LinkGroupKind,
}

#[derive(Clone, PartialEq, Eq)]
pub enum LinkGroupKind {
    /// We left the group (history kept, no subscription).
    Record { left: bool },
    /// A membership op, wire form (§11.2).
    Op(Vec<u8>),
    /// An epoch's publish key: (epoch op hash, secret).
    PublishKey { epoch: [u8; 32], secret: [u8; 32] },
    /// A member device's Megolm session, exported from the first index the
    /// old device can read.
    Session {
        account: AccountId,
        device: DeviceId,
        exported: Vec<u8>,
    },
}

impl fmt::Debug for LinkGroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Record { left } => f.debug_struct("Record").field("left", left).finish(),
            Self::Op(b) => f.debug_tuple("Op").field(&b.len()).finish(),
            Self::PublishKey { .. } => f.write_str("PublishKey(<redacted>)"),
            Self::Session {
                account, device, ..
            } => f
                .debug_struct("Session")
                .field("account", account)
                .field("device", device)
                .finish_non_exhaustive(),
        }
    }
}

/// Longest exported Megolm session.
const MAX_EXPORTED_SESSION_LEN: usize = 1024;

impl LinkGroupItem {
    fn encode(&self, w: &mut Writer) {
        w.raw(&self.group.0);
        w.u32(self.index);
        match &self.kind {
            LinkGroupKind::Record { left } => {
                w.u8(0);
                w.u8(u8::from(*left));
            }
            LinkGroupKind::Op(bytes) => {
                w.u8(1);
                w.bytes(bytes);
            }
            LinkGroupKind::PublishKey { epoch, secret } => {
                w.u8(2);
                w.raw(epoch);
                w.raw(secret);
            }
            LinkGroupKind::Session {
                account,
                device,
                exported,
            } => {
                w.u8(3);
                w.raw(&account.0);
                w.raw(&device.0);
                w.bytes(exported);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let group = GroupId(r.array()?);
        let index = r.u32()?;
        let kind = match r.u8()? {
            0 => LinkGroupKind::Record { left: r.u8()? != 0 },
            1 => LinkGroupKind::Op(r.bytes("group op", crate::MAX_OP_LEN)?.to_vec()),
            2 => LinkGroupKind::PublishKey {
                epoch: r.array()?,
                secret: r.array()?,
            },
            3 => LinkGroupKind::Session {
                account: AccountId(r.array()?),
                device: DeviceId(r.array()?),
                exported: r
                    .bytes("exported session", MAX_EXPORTED_SESSION_LEN)?
                    .to_vec(),
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "group item",
                    tag,
                });
            }
        };
        Ok(Self { group, index, kind })
    }

    /// Its size in a page.
    pub fn size(&self) -> usize {
        48 + match &self.kind {
            LinkGroupKind::Record { .. } => 1,
            LinkGroupKind::Op(b) => b.len(),
            LinkGroupKind::PublishKey { .. } => 64,
            LinkGroupKind::Session { exported, .. } => 64 + exported.len(),
        }
    }
}

impl Wire for LinkReply {
    const NAME: &'static str = "link reply";

    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Grant {
                device_list,
                card,
                account_seed,
                relays,
                names,
                presence,
            } => {
                w.u8(0);
                device_list.encode(w);
                w.str(card);
                match account_seed {
                    Some(seed) => {
                        w.u8(1);
                        w.raw(&seed.0);
                    }
                    None => w.u8(0),
                }
                w.list(relays, |w, r| w.str(r));
                w.list(names, |w, n| {
                    w.raw(&n.device.0);
                    w.str(&n.name);
                    w.u64(n.linked_at_ms);
                });
                match presence {
                    Some((share, key, seed)) => {
                        w.u8(1);
                        w.u8(u8::from(*share));
                        w.u32(key.epoch());
                        w.raw(key.secret());
                        w.raw(&seed.0);
                    }
                    None => w.u8(0),
                }
            }
            Self::Contacts { items, more } => {
                w.u8(1);
                w.list(items, |w, c| c.encode(w));
                w.u8(u8::from(*more));
            }
            Self::Messages { items, more } => {
                w.u8(2);
                w.list(items, |w, m| m.encode(w));
                w.u8(u8::from(*more));
            }
            Self::Finished => w.u8(3),
            Self::Groups { items, more } => {
                w.u8(4);
                w.list(items, |w, i| i.encode(w));
                w.u8(u8::from(*more));
            }
            Self::GroupMessages { items, more } => {
                w.u8(5);
                w.list(items, |w, m| m.encode(w));
                w.u8(u8::from(*more));
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Self::Grant {
                device_list: Box::new(DeviceList::decode(r)?),
                card: r.str("card", MAX_CARD_LEN)?.to_owned(),
                account_seed: match r.u8()? {
                    0 => None,
                    1 => Some(AccountSeed(r.array()?)),
                    tag => return Err(DecodeError::UnknownTag { what: "seed", tag }),
                },
                relays: r.list("relays", crate::MAX_CARD_ADDRESSES, |r| {
                    Ok(r.str("relay", crate::MAX_ADDRESS_LEN)?.to_owned())
                })?,
                names: r.list("device names", crate::MAX_DEVICES, |r| {
                    Ok(DeviceName {
                        device: DeviceId(r.array()?),
                        name: r.str("device name", MAX_DEVICE_NAME_LEN)?.to_owned(),
                        linked_at_ms: r.u64()?,
                    })
                })?,
                presence: match r.u8()? {
                    0 => None,
                    1 => {
                        let share = r.u8()? != 0;
                        let key = PresenceKey::from_parts(r.u32()?, r.array()?);
                        Some((share, key, PresenceSeed(r.array()?)))
                    }
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "presence",
                            tag,
                        });
                    }
                },
            }),
            1 => Ok(Self::Contacts {
                items: r.list("contacts", MAX_PAGE_ITEMS, LinkContact::decode)?,
                more: r.u8()? != 0,
            }),
            2 => Ok(Self::Messages {
                items: r.list("messages", MAX_PAGE_ITEMS, LinkMessage::decode)?,
                more: r.u8()? != 0,
            }),
            3 => Ok(Self::Finished),
            4 => Ok(Self::Groups {
                items: r.list("group items", MAX_PAGE_ITEMS, LinkGroupItem::decode)?,
                more: r.u8()? != 0,
            }),
            5 => Ok(Self::GroupMessages {
                items: r.list("group messages", MAX_PAGE_ITEMS, LinkMessage::decode)?,
                more: r.u8()? != 0,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: Self::NAME,
                tag,
            }),
        }
    }
}

/// Fills a page from `items` up to [`MAX_LINK_PAGE_BYTES`]: how many of
/// them fit (at least one, so a page always moves forward).
pub fn page_len<T>(items: &[T], size: impl Fn(&T) -> usize) -> usize {
    let mut bytes = 0;
    let mut n = 0;
    for item in items.iter().take(MAX_PAGE_ITEMS) {
        bytes += size(item);
        if bytes > MAX_LINK_PAGE_BYTES && n > 0 {
            break;
        }
        n += 1;
    }
    n
}

/// [`page_len`] for contacts.
pub fn contacts_page_len(items: &[LinkContact]) -> usize {
    page_len(items, LinkContact::size)
}

/// [`page_len`] for group items.
pub fn group_items_page_len(items: &[LinkGroupItem]) -> usize {
    page_len(items, LinkGroupItem::size)
}

/// [`page_len`] for messages.
pub fn messages_page_len(items: &[LinkMessage]) -> usize {
    page_len(items, LinkMessage::size)
}

#[cfg(test)]
mod tests;

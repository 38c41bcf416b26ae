//! What an [`Envelope`](crate::Envelope) carries once decrypted.
//!
//! The plaintext handed to Olm is `u32 payload length ‖ payload ‖ zero
//! padding`, padded to a size bucket so ciphertext lengths say little about
//! the text inside.

use crate::blob::FileManifest;
use crate::card::ContactCard;
use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::group::GroupControl;
use crate::ids::{AccountId, DeviceId, MessageId};
use crate::mailbox::{DepositRight, MailboxGrant};
use crate::presence::{HomeRelays, PresenceKey};
pub use crate::receipt::{MAX_RECEIPT_IDS, ReceiptKind};
use crate::receipt::{decode_receipt, encode_receipt};

/// Longest message text, in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 16 * 1024;
/// Smallest padded plaintext; buckets double from here.
pub const MIN_PADDED_LEN: usize = 256;
/// Largest padded plaintext.
pub const MAX_PADDED_LEN: usize = 64 * 1024;
const PAYLOAD_VERSION: u8 = 1;
/// Longest disappearing-message timer, in seconds: a year.
pub const MAX_TIMER_SECS: u32 = 365 * 24 * 3600;

/// Writes a disappearing timer: `u32` seconds, 0 for none.
pub(crate) fn encode_timer(w: &mut Writer, secs: Option<u32>) {
    w.u32(secs.unwrap_or(0));
}

/// Reads a timer written by [`encode_timer`]: 0 is none; above
/// [`MAX_TIMER_SECS`] is refused.
pub(crate) fn decode_timer(r: &mut Reader<'_>) -> Result<Option<u32>, DecodeError> {
    match r.u32()? {
        0 => Ok(None),
        secs if secs <= MAX_TIMER_SECS => Ok(Some(secs)),
        _ => Err(DecodeError::Invalid {
            what: "disappearing timer",
            reason: "longer than a year",
        }),
    }
}

/// A timer that must be set (a [`Body::Timed`] or [`SyncItem::Timed`]).
fn decode_set_timer(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    decode_timer(r)?.ok_or(DecodeError::Invalid {
        what: "disappearing timer",
        reason: "a timed message has a timer",
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Text(String),
    Receipt {
        kind: ReceiptKind,
        ids: Vec<MessageId>,
    },
    /// The sender's current presence key: the receiver may now read the
    /// sender's presence records of this epoch (and must drop older keys).
    PresenceKey(PresenceKey),
    /// A group's membership ops, a Megolm key, or receipts for group
    /// messages (only ever over Olm, never on a topic).
    Group(GroupControl),
    /// The sender device's deposit right for the receiver (see
    /// [`DepositRight`]): mail the receiver leaves in that device's mailbox
    /// with it counts as a contact's, not a stranger's.
    DepositRight(DepositRight),
    /// The sender device's mailboxes for the receiver: its own mailbox's
    /// deposit right (as [`Body::DepositRight`]), and a pairwise mailbox
    /// of this generation only the receiver knows (see [`MailboxGrant`]).
    /// Mail the receiver leaves for that device goes to the pairwise one
    /// while the grant is usable.
    Mailbox {
        right: Box<DepositRight>,
        grant: Box<MailboxGrant>,
    },
    /// The sender account's current card: a device was linked or revoked.
    /// Taken when it verifies, is the sender's own account's and its
    /// device list is newer than the one held.
    Card(Box<ContactCard>),
    /// From another device of our own account: what it sent or read, so
    /// every device shows the whole conversation.
    Sync(SyncItem),
    /// A file: what to fetch and how to open it, and a caption.
    File(Box<FileOffer>),
    /// A text or a file (only those) that disappears `secs` seconds after
    /// it was sent (the time in its id): every device deletes it then.
    Timed {
        secs: u32,
        body: Box<Body>,
    },
    /// The sender set the 1:1 conversation's disappearing timer (`None`:
    /// off); from then on both sides' messages carry it.
    Timer(Option<u32>),
    /// The sending device's home relays changed (it replaced one that
    /// stopped answering, or picked its own): its mail goes there from now
    /// on, over what its account's card says, unless the receiver holds a
    /// newer statement (see [`HomeRelays`]).
    Relays(HomeRelays),
}

impl Body {
    /// The body with a disappearing timer, if there is one.
    pub fn timed(self, secs: Option<u32>) -> Self {
        match secs {
            Some(secs) => Self::Timed {
                secs,
                body: Box::new(self),
            },
            None => self,
        }
    }

    /// The timer and the body inside it.
    pub fn untimed(self) -> (Option<u32>, Self) {
        match self {
            Self::Timed { secs, body } => (Some(secs), *body),
            other => (None, other),
        }
    }
}

/// A file as a message offers it: its manifest (root, key, size, name,
/// type, thumbnail) and a caption (may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOffer {
    pub manifest: FileManifest,
    pub caption: String,
}

impl FileOffer {
    fn encode(&self, w: &mut Writer) {
        self.manifest.encode(w);
        w.str(&self.caption);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            manifest: FileManifest::decode(r)?,
            caption: r.str("file caption", MAX_TEXT_LEN)?.to_owned(),
        })
    }
}

/// What one device of an account tells the account's other devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncItem {
    /// A text the sending device sent to the contact `with`, under its id.
    Sent {
        with: AccountId,
        id: MessageId,
        text: String,
    },
    /// The sending device marked these messages of the conversation with
    /// `with` read (at most [`MAX_RECEIPT_IDS`]).
    Read {
        with: AccountId,
        ids: Vec<MessageId>,
    },
    /// A contact as it is now on the sending device (added, its card
    /// updated, its settings changed).
    Contact {
        name: String,
        /// The card's text form.
        card: String,
        send_receipts: bool,
        blocked: bool,
        verified: bool,
    },
    /// The sending device removed the contact.
    ContactRemoved {
        account: AccountId,
        delete_history: bool,
    },
    /// The sending device switched presence sharing on or off, for one
    /// contact (`with`) or for everyone (`None`).
    Presence {
        with: Option<AccountId>,
        share: bool,
    },
    /// A file the sending device sent to the contact `with`, under its id
    /// (our devices fetch it from the sending device).
    SentFile {
        with: AccountId,
        id: MessageId,
        offer: Box<FileOffer>,
    },
    /// A [`Sent`](Self::Sent) or [`SentFile`](Self::SentFile) (only those)
    /// that disappears `secs` seconds after it was sent.
    Timed { secs: u32, item: Box<SyncItem> },
    /// The sending device set the disappearing timer of the conversation
    /// with `with` (`None`: off) under the id `id` (the later id wins).
    Timer {
        with: AccountId,
        id: MessageId,
        secs: Option<u32>,
    },
}

impl SyncItem {
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Sent { with, id, text } => {
                w.u8(0);
                w.raw(&with.0);
                w.u128(id.0);
                w.str(text);
            }
            Self::Read { with, ids } => {
                w.u8(1);
                w.raw(&with.0);
                w.list(ids, |w, id| w.u128(id.0));
            }
            Self::Contact {
                name,
                card,
                send_receipts,
                blocked,
                verified,
            } => {
                w.u8(2);
                w.str(name);
                w.str(card);
                w.u8(u8::from(*send_receipts) | u8::from(*blocked) << 1 | u8::from(*verified) << 2);
            }
            Self::ContactRemoved {
                account,
                delete_history,
            } => {
                w.u8(3);
                w.raw(&account.0);
                w.u8(u8::from(*delete_history));
            }
            Self::Presence { with, share } => {
                w.u8(4);
                match with {
                    Some(account) => {
                        w.u8(1);
                        w.raw(&account.0);
                    }
                    None => w.u8(0),
                }
                w.u8(u8::from(*share));
            }
            Self::SentFile { with, id, offer } => {
                w.u8(5);
                w.raw(&with.0);
                w.u128(id.0);
                offer.encode(w);
            }
            Self::Timed { secs, item } => {
                w.u8(6);
                encode_timer(w, Some(*secs));
                item.encode(w);
            }
            Self::Timer { with, id, secs } => {
                w.u8(7);
                w.raw(&with.0);
                w.u128(id.0);
                encode_timer(w, *secs);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Self::Sent {
                with: AccountId(r.array()?),
                id: MessageId(r.u128()?),
                text: r.str("synced text", MAX_TEXT_LEN)?.to_owned(),
            }),
            1 => Ok(Self::Read {
                with: AccountId(r.array()?),
                ids: r.list("read ids", MAX_RECEIPT_IDS, |r| Ok(MessageId(r.u128()?)))?,
            }),
            2 => {
                let name = r.str("contact name", crate::MAX_NAME_LEN)?.to_owned();
                let card = r.str("contact card", crate::MAX_CARD_TEXT_LEN)?.to_owned();
                let flags = r.u8()?;
                Ok(Self::Contact {
                    name,
                    card,
                    send_receipts: flags & 1 != 0,
                    blocked: flags & 2 != 0,
                    verified: flags & 4 != 0,
                })
            }
            3 => Ok(Self::ContactRemoved {
                account: AccountId(r.array()?),
                delete_history: r.u8()? != 0,
            }),
            4 => {
                let with = match r.u8()? {
                    0 => None,
                    1 => Some(AccountId(r.array()?)),
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "presence sync target",
                            tag,
                        });
                    }
                };
                Ok(Self::Presence {
                    with,
                    share: r.u8()? != 0,
                })
            }
            5 => Ok(Self::SentFile {
                with: AccountId(r.array()?),
                id: MessageId(r.u128()?),
                offer: Box::new(FileOffer::decode(r)?),
            }),
            6 => {
                let secs = decode_set_timer(r)?;
                // Never by recursing into a tag 6: a timed item never nests.
                if !matches!(r.peek_u8()?, 0 | 5) {
                    return Err(DecodeError::Invalid {
                        what: "timed sync item",
                        reason: "only a sent text or file is timed",
                    });
                }
                Ok(Self::Timed {
                    secs,
                    item: Box::new(Self::decode(r)?),
                })
            }
            7 => Ok(Self::Timer {
                with: AccountId(r.array()?),
                id: MessageId(r.u128()?),
                secs: decode_timer(r)?,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "sync item",
                tag,
            }),
        }
    }
}

/// The decrypted content of one envelope. The sender's identity lives here,
/// inside the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub sender_account: AccountId,
    pub sender_device: DeviceId,
    pub id: MessageId,
    pub body: Body,
}

impl Payload {
    /// The padded plaintext to encrypt.
    pub fn to_padded(&self) -> Vec<u8> {
        // The length goes in front once the payload is encoded behind it.
        let mut w = Writer::with_capacity(2 * MIN_PADDED_LEN);
        w.u32(0);
        self.encode(&mut w);
        let mut out = w.into_bytes();
        let inner = out.len() - 4;
        out[..4].copy_from_slice(&u32::try_from(inner).unwrap_or(u32::MAX).to_be_bytes());
        let mut bucket = MIN_PADDED_LEN;
        while bucket < inner + 4 && bucket < MAX_PADDED_LEN {
            bucket *= 2;
        }
        out.resize(bucket.max(out.len()), 0);
        out
    }

    /// The disappearing timer of a padded payload's text or file, read
    /// from its fixed header without decoding the rest (`None`: none, or
    /// not a timed payload).
    pub fn timer_of_padded(bytes: &[u8]) -> Option<u32> {
        // u32 length ‖ version ‖ account ‖ device ‖ id ‖ body tag ‖ u32 timer
        const TAG_AT: usize = 4 + 1 + 32 + 32 + 16;
        if bytes.get(4) != Some(&PAYLOAD_VERSION) || bytes.get(TAG_AT) != Some(&8) {
            return None;
        }
        let secs = u32::from_be_bytes(bytes.get(TAG_AT + 1..TAG_AT + 5)?.try_into().ok()?);
        (secs > 0 && secs <= MAX_TIMER_SECS).then_some(secs)
    }

    /// Parses a padded plaintext; the padding must be all zeros.
    pub fn from_padded(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_PADDED_LEN {
            return Err(DecodeError::TooLong {
                what: "padded payload",
                len: bytes.len(),
                max: MAX_PADDED_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        let inner = r.bytes("payload", MAX_PADDED_LEN)?;
        let padding = Reader::new(bytes).remaining() - 4 - inner.len();
        if bytes[bytes.len() - padding..].iter().any(|b| *b != 0) {
            return Err(DecodeError::Invalid {
                what: "payload padding",
                reason: "padding must be zero bytes",
            });
        }
        Self::from_bytes(inner)
    }
}

impl Body {
    fn encode(&self, w: &mut Writer) {
        match self {
            Body::Text(text) => {
                w.u8(0);
                w.str(text);
            }
            Body::Receipt { kind, ids } => {
                w.u8(1);
                encode_receipt(w, *kind, ids);
            }
            Body::PresenceKey(key) => {
                w.u8(2);
                w.u32(key.epoch());
                w.raw(key.secret());
            }
            Body::Group(control) => {
                w.u8(3);
                control.encode(w);
            }
            Body::DepositRight(right) => {
                w.u8(4);
                right.encode(w);
            }
            Body::Card(card) => {
                w.u8(5);
                card.encode(w);
            }
            Body::Sync(item) => {
                w.u8(6);
                item.encode(w);
            }
            Body::File(offer) => {
                w.u8(7);
                offer.encode(w);
            }
            Body::Timed { secs, body } => {
                w.u8(8);
                encode_timer(w, Some(*secs));
                body.encode(w);
            }
            Body::Mailbox { right, grant } => {
                w.u8(12);
                right.encode(w);
                grant.encode(w);
            }
            Body::Timer(secs) => {
                w.u8(9);
                encode_timer(w, *secs);
            }
            Body::Relays(relays) => {
                w.u8(11);
                relays.encode(w);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => Body::Text(r.str("message text", MAX_TEXT_LEN)?.to_owned()),
            1 => {
                let (kind, ids) = decode_receipt(r)?;
                Body::Receipt { kind, ids }
            }
            2 => Body::PresenceKey(PresenceKey::from_parts(r.u32()?, r.array()?)),
            3 => Body::Group(GroupControl::decode(r)?),
            4 => Body::DepositRight(DepositRight::decode(r)?),
            5 => Body::Card(Box::new(ContactCard::decode(r)?)),
            6 => Body::Sync(SyncItem::decode(r)?),
            7 => Body::File(Box::new(FileOffer::decode(r)?)),
            8 => {
                let secs = decode_set_timer(r)?;
                // Read here, not by recursing: a timed body never nests.
                let body = match r.u8()? {
                    0 => Body::Text(r.str("message text", MAX_TEXT_LEN)?.to_owned()),
                    7 => Body::File(Box::new(FileOffer::decode(r)?)),
                    _ => {
                        return Err(DecodeError::Invalid {
                            what: "timed body",
                            reason: "only a text or a file is timed",
                        });
                    }
                };
                Body::Timed {
                    secs,
                    body: Box::new(body),
                }
            }
            9 => Body::Timer(decode_timer(r)?),
            // The first format: a grant without a version or deposit key.
            10 => Body::Mailbox {
                right: Box::new(DepositRight::decode(r)?),
                grant: Box::new(MailboxGrant::decode_unversioned(r)?),
            },
            11 => Body::Relays(HomeRelays::decode(r)?),
            12 => Body::Mailbox {
                right: Box::new(DepositRight::decode(r)?),
                grant: Box::new(MailboxGrant::decode(r)?),
            },
            tag => return Err(DecodeError::UnknownTag { what: "body", tag }),
        })
    }
}

impl Wire for Payload {
    const NAME: &'static str = "payload";

    fn encode(&self, w: &mut Writer) {
        w.u8(PAYLOAD_VERSION);
        w.raw(&self.sender_account.0);
        w.raw(&self.sender_device.0);
        w.u128(self.id.0);
        self.body.encode(w);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, PAYLOAD_VERSION)?;
        let sender_account = AccountId(r.array()?);
        let sender_device = DeviceId(r.array()?);
        let id = MessageId(r.u128()?);
        let body = Body::decode(r)?;
        Ok(Self {
            sender_account,
            sender_device,
            id,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            ".{0,300}".prop_map(Body::Text),
            (
                any::<[u8; 32]>(),
                0u64..1 << 40,
                "[a-z]{1,20}\\.[a-z]{1,4}",
                ".{0,50}"
            )
                .prop_map(|(root, size, name, caption)| {
                    let manifest = crate::blob::FileManifest {
                        root: crate::blob::BlobRoot(root),
                        key: crate::blob::FileKey(root),
                        size,
                        sealed_len: size,
                        compression: crate::blob::Compression::None,
                        name,
                        mime: "image/png".into(),
                        thumbnail: None,
                    };
                    let offer = FileOffer { manifest, caption };
                    if size % 2 == 0 {
                        Body::File(Box::new(offer))
                    } else {
                        Body::Sync(SyncItem::SentFile {
                            with: AccountId(root),
                            id: MessageId(u128::from(size)),
                            offer: Box::new(offer),
                        })
                    }
                }),
            (
                any::<bool>(),
                proptest::collection::vec(any::<u128>(), 0..50)
            )
                .prop_map(|(read, ids)| Body::Receipt {
                    kind: if read {
                        ReceiptKind::Read
                    } else {
                        ReceiptKind::Delivered
                    },
                    ids: ids.into_iter().map(MessageId).collect(),
                }),
            (any::<u32>(), any::<[u8; 32]>())
                .prop_map(|(epoch, key)| Body::PresenceKey(PresenceKey::from_parts(epoch, key))),
            ("[a-z ]{1,30}", ".{0,200}", any::<[bool; 3]>()).prop_map(|(name, card, f)| {
                Body::Sync(SyncItem::Contact {
                    name,
                    card,
                    send_receipts: f[0],
                    blocked: f[1],
                    verified: f[2],
                })
            }),
            (any::<[u8; 32]>(), any::<bool>()).prop_map(|(a, delete_history)| {
                Body::Sync(SyncItem::ContactRemoved {
                    account: AccountId(a),
                    delete_history,
                })
            }),
            (proptest::option::of(any::<[u8; 32]>()), any::<bool>()).prop_map(|(with, share)| {
                Body::Sync(SyncItem::Presence {
                    with: with.map(AccountId),
                    share,
                })
            }),
            (
                any::<[u8; 32]>(),
                any::<u128>(),
                ".{0,100}",
                0..=MAX_TIMER_SECS
            )
                .prop_map(|(with, id, text, secs)| {
                    let item = SyncItem::Sent {
                        with: AccountId(with),
                        id: MessageId(id),
                        text,
                    };
                    Body::Sync(match secs {
                        0 => item,
                        secs => SyncItem::Timed {
                            secs,
                            item: Box::new(item),
                        },
                    })
                }),
            (any::<[u8; 32]>(), any::<u128>(), 0..=MAX_TIMER_SECS).prop_map(|(with, id, secs)| {
                Body::Sync(SyncItem::Timer {
                    with: AccountId(with),
                    id: MessageId(id),
                    secs: (secs > 0).then_some(secs),
                })
            }),
            (".{0,100}", 0..=MAX_TIMER_SECS)
                .prop_map(|(text, secs)| { Body::Text(text).timed((secs > 0).then_some(secs)) }),
            (0..=MAX_TIMER_SECS).prop_map(|secs| Body::Timer((secs > 0).then_some(secs))),
            (
                any::<[u8; 32]>(),
                proptest::collection::vec(any::<u128>(), 0..20)
            )
                .prop_map(|(with, ids)| Body::Sync(SyncItem::Read {
                    with: AccountId(with),
                    ids: ids.into_iter().map(MessageId).collect(),
                })),
            (any::<[u8; 32]>(), any::<[u8; 16]>(), any::<[u8; 32]>()).prop_map(
                |(device, holder, half)| {
                    let mut signature = [0; 64];
                    signature[..32].copy_from_slice(&half);
                    Body::DepositRight(DepositRight {
                        device: DeviceId(device),
                        holder,
                        signature,
                    })
                }
            ),
            (
                any::<[u8; 32]>(),
                any::<[u8; 32]>(),
                any::<u32>(),
                any::<[u8; 16]>(),
                any::<Option<[u8; 32]>>()
            )
                .prop_map(|(device, key, generation, holder, deposit_key)| {
                    let right = DepositRight {
                        device: DeviceId(device),
                        holder,
                        signature: [7; 64],
                    };
                    let grant = MailboxGrant {
                        right: DepositRight {
                            device: DeviceId(key),
                            ..right
                        },
                        seal_key: key,
                        generation,
                        deposit_key: deposit_key.map(crate::DepositKey),
                    };
                    Body::Mailbox {
                        right: Box::new(right),
                        grant: Box::new(grant),
                    }
                }),
            (
                any::<u64>(),
                proptest::collection::vec("[a-z0-9/]{1,60}", 1..=crate::MAX_STATED_RELAYS)
            )
                .prop_map(|(issued_at_ms, relays)| Body::Relays(HomeRelays {
                    issued_at_ms,
                    relays
                })),
        ]
    }

    proptest! {
        #[test]
        fn payload_round_trips_through_padding(a: [u8; 32], d: [u8; 32], id: u128, body in body()) {
            let p = Payload { sender_account: AccountId(a), sender_device: DeviceId(d), id: MessageId(id), body };
            let padded = p.to_padded();
            prop_assert!(padded.len().is_power_of_two() && padded.len() >= MIN_PADDED_LEN);
            let timer = match &p.body {
                Body::Timed { secs, .. } => Some(*secs),
                _ => None,
            };
            prop_assert_eq!(Payload::timer_of_padded(&padded), timer);
            prop_assert_eq!(Payload::from_padded(&padded).unwrap(), p);
        }

        #[test]
        fn padded_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Payload::from_padded(&bytes);
        }
    }

    #[test]
    fn largest_text_fits_the_largest_bucket() {
        let p = Payload {
            sender_account: AccountId([0; 32]),
            sender_device: DeviceId([0; 32]),
            id: MessageId(0),
            body: Body::Text("x".repeat(MAX_TEXT_LEN)),
        };
        assert!(p.to_padded().len() <= MAX_PADDED_LEN);
    }

    #[test]
    fn only_texts_and_files_are_timed() {
        let timed = |body: Body| Payload {
            sender_account: AccountId([0; 32]),
            sender_device: DeviceId([0; 32]),
            id: MessageId(0),
            body: Body::Timed {
                secs: 60,
                body: Box::new(body),
            },
        };
        assert!(Payload::from_bytes(&timed(Body::Text("hi".into())).to_bytes()).is_ok());
        for body in [
            Body::Timer(Some(5)),
            Body::Text("hi".into()).timed(Some(5)),
            Body::Receipt {
                kind: ReceiptKind::Read,
                ids: vec![],
            },
        ] {
            assert!(Payload::from_bytes(&timed(body).to_bytes()).is_err());
        }
        let too_long = Body::Timer(Some(MAX_TIMER_SECS + 1));
        let p = Payload {
            body: too_long,
            ..timed(Body::Text(String::new()))
        };
        assert!(Payload::from_bytes(&p.to_bytes()).is_err());
    }

    #[test]
    fn nonzero_padding_is_rejected() {
        let p = Payload {
            sender_account: AccountId([0; 32]),
            sender_device: DeviceId([0; 32]),
            id: MessageId(0),
            body: Body::Text("hi".into()),
        };
        let mut padded = p.to_padded();
        *padded.last_mut().unwrap() = 1;
        assert!(Payload::from_padded(&padded).is_err());
    }
}

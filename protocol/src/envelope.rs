//! What travels between devices: the Olm-encrypted [`Envelope`], the
//! recipient's [`DirectAck`], and the one-time-key exchange.

use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::ids::DeviceId;

/// Largest Olm ciphertext an envelope carries.
pub const MAX_CIPHERTEXT_LEN: usize = 96 * 1024;
/// Largest encoded envelope: the header plus the largest ciphertext.
pub const MAX_ENVELOPE_LEN: usize = 1 + 32 + 32 + 1 + 4 + MAX_CIPHERTEXT_LEN;
const ENVELOPE_VERSION: u8 = 1;
const ACK_VERSION: u8 = 1;
const KEY_REQUEST_VERSION: u8 = 1;
const KEY_BUNDLE_VERSION: u8 = 1;
/// Largest encoded [`DirectAck`], [`KeyRequest`] or [`KeyBundle`].
pub const MAX_CONTROL_LEN: usize = 256;
/// Most envelopes one [`EnvelopeBatch`] carries.
pub const MAX_BATCH_ENVELOPES: usize = 128;
/// Largest encoded [`EnvelopeBatch`].
pub const MAX_BATCH_LEN: usize = 1024 * 1024;
/// Largest encoded [`AckBatch`].
pub const MAX_ACK_BATCH_LEN: usize = 1 + 2 + 2 * MAX_BATCH_ENVELOPES;
const BATCH_VERSION: u8 = 1;
const ACK_BATCH_VERSION: u8 = 1;

/// Which kind of Olm message the ciphertext is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OlmKind {
    /// The first messages of a session: carries the keys that create it.
    PreKey = 0,
    Normal = 1,
}

/// An Olm-encrypted payload addressed to one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub recipient: DeviceId,
    /// The sender device's Olm Curve25519 identity key: picks the session.
    pub sender_key: [u8; 32],
    pub kind: OlmKind,
    pub ciphertext: Vec<u8>,
}

impl Envelope {
    /// A content hash: the same envelope bytes always give the same hash, so
    /// a resent envelope is recognised without decrypting it.
    pub fn digest(bytes: &[u8]) -> [u8; 32] {
        *blake3::Hasher::new_derive_key("hush 2026 envelope digest")
            .update(bytes)
            .finalize()
            .as_bytes()
    }
}

impl Wire for Envelope {
    const NAME: &'static str = "envelope";

    fn encoded_len_hint(&self) -> usize {
        1 + 32 + 32 + 1 + 4 + self.ciphertext.len()
    }

    fn encode(&self, w: &mut Writer) {
        w.u8(ENVELOPE_VERSION);
        w.raw(&self.recipient.0);
        w.raw(&self.sender_key);
        w.u8(self.kind as u8);
        w.bytes(&self.ciphertext);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, ENVELOPE_VERSION)?;
        let recipient = DeviceId(r.array()?);
        let sender_key = r.array()?;
        let kind = match r.u8()? {
            0 => OlmKind::PreKey,
            1 => OlmKind::Normal,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "olm kind",
                    tag,
                });
            }
        };
        let ciphertext = r.bytes("ciphertext", MAX_CIPHERTEXT_LEN)?.to_vec();
        Ok(Self {
            recipient,
            sender_key,
            kind,
            ciphertext,
        })
    }
}

/// Why a recipient refused an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Addressed to another device.
    WrongRecipient = 0,
    /// The sending device is not on the device list of one of our contacts.
    UnknownSender = 1,
    /// No session decrypts it: the sender should start a new session.
    Undecryptable = 2,
    /// The decrypted payload is malformed.
    Malformed = 3,
    /// The recipient could not store it right now: try again later.
    Unavailable = 4,
    /// The sending device was removed from its account's device list: the
    /// account's own devices answer so, and the device stops.
    Revoked = 5,
}

/// The recipient's answer to an envelope on the direct protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectAck {
    /// Decrypted and durably stored.
    Stored,
    /// Already stored earlier (a resend): also durable.
    Duplicate,
    Rejected(RejectReason),
}

impl DirectAck {
    fn encode_body(&self, w: &mut Writer) {
        match self {
            Self::Stored => w.u8(0),
            Self::Duplicate => w.u8(1),
            Self::Rejected(reason) => {
                w.u8(2);
                w.u8(*reason as u8);
            }
        }
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => Self::Stored,
            1 => Self::Duplicate,
            2 => Self::Rejected(match r.u8()? {
                0 => RejectReason::WrongRecipient,
                1 => RejectReason::UnknownSender,
                2 => RejectReason::Undecryptable,
                3 => RejectReason::Malformed,
                4 => RejectReason::Unavailable,
                5 => RejectReason::Revoked,
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "reject reason",
                        tag,
                    });
                }
            }),
            tag => return Err(DecodeError::UnknownTag { what: "ack", tag }),
        })
    }
}

impl Wire for DirectAck {
    const NAME: &'static str = "direct ack";

    fn encode(&self, w: &mut Writer) {
        w.u8(ACK_VERSION);
        self.encode_body(w);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, ACK_VERSION)?;
        Self::decode_body(r)
    }
}

/// Envelopes for one device, in the order they were encrypted: the request
/// of `/hush/direct/1`. Each envelope stays an opaque byte string here, so
/// its digest is over exactly the bytes the sender stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeBatch {
    pub envelopes: Vec<Vec<u8>>,
}

impl Wire for EnvelopeBatch {
    const NAME: &'static str = "envelope batch";

    fn encoded_len_hint(&self) -> usize {
        1 + 2 + self.envelopes.iter().map(|e| 4 + e.len()).sum::<usize>()
    }

    fn encode(&self, w: &mut Writer) {
        w.u8(BATCH_VERSION);
        w.list(&self.envelopes, |w, e| w.bytes(e));
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.remaining() > MAX_BATCH_LEN {
            return Err(DecodeError::TooLong {
                what: Self::NAME,
                len: r.remaining(),
                max: MAX_BATCH_LEN,
            });
        }
        r.version(Self::NAME, BATCH_VERSION)?;
        let envelopes = r.list("envelopes", MAX_BATCH_ENVELOPES, |r| {
            Ok(r.bytes("envelope", MAX_ENVELOPE_LEN)?.to_vec())
        })?;
        if envelopes.is_empty() {
            return Err(DecodeError::Invalid {
                what: Self::NAME,
                reason: "a batch carries at least one envelope",
            });
        }
        Ok(Self { envelopes })
    }
}

/// Where a batch stands among its sender's batches to us: the header of a
/// `/hush/direct/2` request, before the [`EnvelopeBatch`]. `seq` names this
/// batch (unique among the sender's batches to us: a random start per run,
/// counting up); `after` names the batch that must be handled before it,
/// the one still unanswered when this one was sent, or 0 for none.
///
/// With it a device keeps two batches in flight to one recipient and the
/// recipient still decrypts them in the order they were encrypted (see
/// [`crate::device::InOrder`]): Olm keeps only 40 skipped message keys per
/// chain, so a whole batch overtaking another would lose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOrder {
    pub seq: u64,
    pub after: u64,
}

impl BatchOrder {
    /// The encoded length: two big-endian u64s, no version byte (the
    /// protocol's version is its name).
    pub const LEN: usize = 16;

    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..].copy_from_slice(&self.after.to_be_bytes());
        out
    }

    /// The header and the batch after it; `None` if shorter than the header.
    pub fn split(frame: &[u8]) -> Option<(Self, &[u8])> {
        let (head, rest) = frame.split_at_checked(Self::LEN)?;
        let (seq, after) = head.split_at(8);
        let seq = u64::from_be_bytes(seq.try_into().ok()?);
        let after = u64::from_be_bytes(after.try_into().ok()?);
        Some((Self { seq, after }, rest))
    }
}

/// One ack per envelope of an [`EnvelopeBatch`], in the same order: the
/// response of `/hush/direct/1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckBatch {
    pub acks: Vec<DirectAck>,
}

impl Wire for AckBatch {
    const NAME: &'static str = "ack batch";

    fn encode(&self, w: &mut Writer) {
        w.u8(ACK_BATCH_VERSION);
        w.list(&self.acks, |w, a| a.encode_body(w));
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, ACK_BATCH_VERSION)?;
        let acks = r.list("acks", MAX_BATCH_ENVELOPES, DirectAck::decode_body)?;
        Ok(Self { acks })
    }
}

/// Asks a device for a fresh signed one-time key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRequest;

impl Wire for KeyRequest {
    const NAME: &'static str = "key request";
    fn encode(&self, w: &mut Writer) {
        w.u8(KEY_REQUEST_VERSION);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, KEY_REQUEST_VERSION)?;
        Ok(Self)
    }
}

/// A device's signed one-time key, from which a peer starts an Olm session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBundle {
    pub device_id: DeviceId,
    pub identity_key: [u8; 32],
    pub one_time_key: [u8; 32],
    /// The device's Olm Ed25519 signature over [`KeyBundle::signed_bytes`].
    pub signature: [u8; 64],
}

impl KeyBundle {
    pub fn signed_bytes(device_id: &DeviceId, identity_key: &[u8; 32], otk: &[u8; 32]) -> Vec<u8> {
        let mut buf = b"hush one-time key v1".to_vec();
        buf.extend_from_slice(&device_id.0);
        buf.extend_from_slice(identity_key);
        buf.extend_from_slice(otk);
        buf
    }
}

impl Wire for KeyBundle {
    const NAME: &'static str = "key bundle";
    fn encode(&self, w: &mut Writer) {
        w.u8(KEY_BUNDLE_VERSION);
        w.raw(&self.device_id.0);
        w.raw(&self.identity_key);
        w.raw(&self.one_time_key);
        w.raw(&self.signature);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, KEY_BUNDLE_VERSION)?;
        Ok(Self {
            device_id: DeviceId(r.array()?),
            identity_key: r.array()?,
            one_time_key: r.array()?,
            signature: r.array()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = OlmKind> {
        prop_oneof![Just(OlmKind::PreKey), Just(OlmKind::Normal)]
    }

    proptest! {
        #[test]
        fn envelope_round_trips(r: [u8; 32], s: [u8; 32], k in kind(), c in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let e = Envelope { recipient: DeviceId(r), sender_key: s, kind: k, ciphertext: c };
            let bytes = e.to_bytes();
            prop_assert!(bytes.len() <= MAX_ENVELOPE_LEN);
            prop_assert_eq!(Envelope::from_bytes(&bytes).unwrap(), e);
        }

        #[test]
        fn envelope_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Envelope::from_bytes(&bytes);
        }

        #[test]
        fn ack_round_trips(tag in 0u8..7) {
            let ack = match tag {
                0 => DirectAck::Stored,
                1 => DirectAck::Duplicate,
                2 => DirectAck::Rejected(RejectReason::WrongRecipient),
                3 => DirectAck::Rejected(RejectReason::UnknownSender),
                4 => DirectAck::Rejected(RejectReason::Undecryptable),
                5 => DirectAck::Rejected(RejectReason::Malformed),
                _ => DirectAck::Rejected(RejectReason::Unavailable),
            };
            prop_assert_eq!(DirectAck::from_bytes(&ack.to_bytes()).unwrap(), ack);
        }

        #[test]
        fn key_bundle_round_trips(d: [u8; 32], i: [u8; 32], o: [u8; 32], s1: [u8; 32], s2: [u8; 32]) {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&s1);
            signature[32..].copy_from_slice(&s2);
            let b = KeyBundle { device_id: DeviceId(d), identity_key: i, one_time_key: o, signature };
            prop_assert_eq!(KeyBundle::from_bytes(&b.to_bytes()).unwrap(), b);
        }
    }

    proptest! {
        #[test]
        fn batches_round_trip(envs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..MAX_BATCH_ENVELOPES), tags in proptest::collection::vec(0u8..3, 0..MAX_BATCH_ENVELOPES)) {
            let batch = EnvelopeBatch { envelopes: envs };
            prop_assert_eq!(EnvelopeBatch::from_bytes(&batch.to_bytes()).unwrap(), batch);
            let acks = AckBatch { acks: tags.into_iter().map(|t| match t {
                0 => DirectAck::Stored,
                1 => DirectAck::Duplicate,
                _ => DirectAck::Rejected(RejectReason::Undecryptable),
            }).collect() };
            let bytes = acks.to_bytes();
            prop_assert!(bytes.len() <= MAX_ACK_BATCH_LEN);
            prop_assert_eq!(AckBatch::from_bytes(&bytes).unwrap(), acks);
        }

        #[test]
        fn batch_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = EnvelopeBatch::from_bytes(&bytes);
            let _ = AckBatch::from_bytes(&bytes);
        }
    }

    #[test]
    fn empty_and_oversized_batches_are_rejected() {
        let empty = EnvelopeBatch { envelopes: vec![] };
        assert!(EnvelopeBatch::from_bytes(&empty.to_bytes()).is_err());
        let mut w = Writer::default();
        w.u8(BATCH_VERSION);
        w.u16(u16::try_from(MAX_BATCH_ENVELOPES + 1).unwrap());
        assert!(matches!(
            EnvelopeBatch::from_bytes(&w.into_bytes()),
            Err(DecodeError::TooLong { .. })
        ));
    }

    #[test]
    fn envelope_rejects_unknown_version_and_trailing_bytes() {
        let e = Envelope {
            recipient: DeviceId([1; 32]),
            sender_key: [2; 32],
            kind: OlmKind::Normal,
            ciphertext: vec![3; 10],
        };
        let mut bytes = e.to_bytes();
        bytes.push(0);
        assert!(matches!(
            Envelope::from_bytes(&bytes),
            Err(DecodeError::TrailingBytes { count: 1, .. })
        ));
        bytes[0] = 9;
        assert!(matches!(
            Envelope::from_bytes(&bytes),
            Err(DecodeError::UnknownVersion { version: 9, .. })
        ));
    }
}

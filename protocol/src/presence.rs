//! Presence: a device's signed record of "online at these addresses until
//! then" or "offline, last seen then", readable only by contacts.
//!
//! ```text
//!  Presence ──sign (device key)──▶ Presence ‖ signature
//!           ──XChaCha20-Poly1305 (presence key, random nonce)──▶ SealedPresence
//! ```
//!
//! An account shares one symmetric [`PresenceKey`] with the contacts it
//! shares presence with (over Olm), and rotates it (a new epoch) when one of
//! them must stop seeing it. The record is stored in the DHT under a
//! [`PresenceKey::locator`] derived from that key and the device, so only key
//! holders can even find it, and relays store bytes that name nobody. The
//! same sealed record is pushed straight to online contacts.
//!
//! Opening checks the epoch, the AEAD tag, the device's signature (so a
//! contact holding the shared key still cannot forge another's record), the
//! expiry and the clock skew. The caller checks that the device belongs to
//! the contact and that the record is newer than the last one it accepted
//! (replays).

use std::fmt;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::ids::{AccountId, DeviceId};

/// Addresses one record carries at most.
pub const MAX_PRESENCE_ADDRESSES: usize = 8;
/// Longest address string in a record.
pub const MAX_PRESENCE_ADDRESS_LEN: usize = 256;
/// Home relays one record (or [`HomeRelays`] statement) names at most.
pub const MAX_STATED_RELAYS: usize = 8;
/// Longest sealed record, in bytes (DHT value and push frame).
pub const MAX_PRESENCE_RECORD_LEN: usize = 6144;
/// A record may claim to be valid for this long at most.
pub const MAX_PRESENCE_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// A record issued further than this in the future is refused.
pub const MAX_PRESENCE_SKEW_MS: u64 = 10 * 60 * 1000;

const VERSION: u8 = 1;
/// The signed record's own version: 2 added the home relays.
const RECORD_VERSION: u8 = 2;
const SIGN_CONTEXT: &[u8] = b"hush presence v1";
const LOCATOR_CONTEXT: &str = "hush 2026-11 presence locator v1";
/// Derives an account's presence keys from its presence seed.
const PRESENCE_SEED_CONTEXT: &str = "hush 2026-12 presence key from seed";
const INNER_MAX: usize = MAX_PRESENCE_RECORD_LEN - 64;

/// The symmetric key an account shares with the contacts that may see its
/// presence. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PresenceKey {
    epoch: u32,
    key: Zeroizing<[u8; 32]>,
}

impl PresenceKey {
    /// A fresh random key for `epoch`.
    pub fn generate(epoch: u32) -> Self {
        Self::from_parts(epoch, rand::random())
    }

    pub fn from_parts(epoch: u32, key: [u8; 32]) -> Self {
        Self {
            epoch,
            key: Zeroizing::new(key),
        }
    }

    /// Starts at 1 and grows by one with each rotation.
    pub const fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn secret(&self) -> &[u8; 32] {
        &self.key
    }

    /// The next key, to use after a contact lost access.
    pub fn rotate(&self) -> Self {
        Self::generate(self.epoch.saturating_add(1))
    }

    /// The key of `epoch` derived from an account's presence seed: every
    /// device of the account that holds the seed makes the same key for the
    /// same epoch, so their rotations agree; the seed itself is never sent
    /// to contacts, so one who held an older key cannot derive the next.
    pub fn derive(seed: &[u8; 32], epoch: u32) -> Self {
        let mut h = blake3::Hasher::new_derive_key(PRESENCE_SEED_CONTEXT);
        h.update(seed);
        h.update(&epoch.to_be_bytes());
        Self::from_parts(epoch, *h.finalize().as_bytes())
    }

    /// Where `device`'s record lives in the DHT under this key: only holders
    /// of the key can compute it, and it names neither account nor device.
    pub fn locator(&self, device: &DeviceId) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(LOCATOR_CONTEXT);
        h.update(&self.key[..]);
        h.update(&self.epoch.to_be_bytes());
        h.update(&device.0);
        *h.finalize().as_bytes()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.key).into())
    }
}

impl fmt::Debug for PresenceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceKey")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Whether a device is reachable now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceState {
    /// Running and reachable at the record's addresses until it expires.
    Online = 0,
    /// Went away gracefully at `last_seen_ms`.
    Offline = 1,
}

/// What a contact learns from a record, once opened and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub account: AccountId,
    pub device: DeviceId,
    pub state: PresenceState,
    /// When the device made this record; a record not newer than the last
    /// one accepted for the device is a replay.
    pub issued_at_ms: u64,
    /// The record says nothing after this.
    pub expires_at_ms: u64,
    /// When the device was last online; 0 means "never" (a record that
    /// only retires an old key).
    pub last_seen_ms: u64,
    /// Where the device can be dialled: its listen and relay circuit
    /// addresses, as multiaddr strings.
    pub addresses: Vec<String>,
    /// The device's home relays now (full multiaddrs with `/p2p/`), as of
    /// `issued_at_ms`: where contacts leave its mail, over what its card
    /// says (see [`HomeRelays`]). Empty: the record says nothing of them.
    pub relays: Vec<String>,
}

impl Presence {
    /// What the record says of the device's home relays, if anything.
    pub fn home_relays(&self) -> Option<HomeRelays> {
        (!self.relays.is_empty()).then(|| HomeRelays {
            issued_at_ms: self.issued_at_ms,
            relays: self.relays.clone(),
        })
    }
}

/// A device's statement of its home relays at a time: carried by its
/// presence records and pushed to contacts over Olm
/// ([`Body::Relays`](crate::Body::Relays)) when they change. The newest
/// statement a device made wins over its account's card for that device,
/// so a device that replaced a relay (or picked its own through the DHT)
/// needs no new card. Its authenticity is the channel's: the device's
/// signature on a presence record, the Olm session for a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeRelays {
    /// When the device said so (Unix ms): an older statement never
    /// replaces a newer one.
    pub issued_at_ms: u64,
    /// Full multiaddrs with `/p2p/`, at most [`MAX_STATED_RELAYS`]; never
    /// empty.
    pub relays: Vec<String>,
}

impl Wire for HomeRelays {
    const NAME: &'static str = "home relays";

    fn encode(&self, w: &mut Writer) {
        w.u64(self.issued_at_ms);
        w.list(&self.relays, |w, a| w.str(a));
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let issued_at_ms = r.u64()?;
        let relays = stated_relays(r)?;
        if relays.is_empty() {
            return Err(DecodeError::Invalid {
                what: "home relays",
                reason: "a statement names at least one relay",
            });
        }
        Ok(Self {
            issued_at_ms,
            relays,
        })
    }
}

fn stated_relays(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    r.list("home relays", MAX_STATED_RELAYS, |r| {
        Ok(r.str("home relay", MAX_PRESENCE_ADDRESS_LEN)?.to_owned())
    })
}

impl Wire for Presence {
    const NAME: &'static str = "presence";

    fn encode(&self, w: &mut Writer) {
        w.u8(RECORD_VERSION);
        w.raw(&self.account.0);
        w.raw(&self.device.0);
        w.u8(self.state as u8);
        w.u64(self.issued_at_ms);
        w.u64(self.expires_at_ms);
        w.u64(self.last_seen_ms);
        w.list(&self.addresses, |w, a| w.str(a));
        w.list(&self.relays, |w, a| w.str(a));
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, RECORD_VERSION)?;
        let account = AccountId(r.array()?);
        let device = DeviceId(r.array()?);
        let state = match r.u8()? {
            0 => PresenceState::Online,
            1 => PresenceState::Offline,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "presence state",
                    tag,
                });
            }
        };
        let issued_at_ms = r.u64()?;
        let expires_at_ms = r.u64()?;
        let last_seen_ms = r.u64()?;
        let addresses = r.list("presence addresses", MAX_PRESENCE_ADDRESSES, |r| {
            Ok(r.str("presence address", MAX_PRESENCE_ADDRESS_LEN)?
                .to_owned())
        })?;
        let relays = stated_relays(r)?;
        if expires_at_ms < issued_at_ms || expires_at_ms - issued_at_ms > MAX_PRESENCE_TTL_MS {
            return Err(DecodeError::Invalid {
                what: "presence expiry",
                reason: "must be after issue and within the longest lifetime",
            });
        }
        Ok(Self {
            account,
            device,
            state,
            issued_at_ms,
            expires_at_ms,
            last_seen_ms,
            addresses,
            relays,
        })
    }
}

/// Why a sealed record was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PresenceError {
    #[error("presence record is for key epoch {got}, the shared key is epoch {want}")]
    WrongEpoch { got: u32, want: u32 },
    #[error("presence record does not decrypt with the shared key")]
    Undecryptable,
    #[error("presence record is malformed: {0}")]
    Malformed(#[from] DecodeError),
    #[error("presence record signature does not verify")]
    BadSignature,
    #[error("presence record expired")]
    Expired,
    #[error("presence record was issued in the future")]
    FromTheFuture,
}

/// A [`Presence`] signed by its device and encrypted to a [`PresenceKey`]:
/// `version ‖ epoch u32 ‖ nonce [24] ‖ bytes(ciphertext)`, where the
/// plaintext is `bytes(presence) ‖ signature [64]` and the AEAD's associated
/// data is `version ‖ epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedPresence {
    pub epoch: u32,
    pub nonce: [u8; 24],
    pub ciphertext: Vec<u8>,
}

impl Presence {
    fn signed_bytes(inner: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(SIGN_CONTEXT.len() + inner.len());
        buf.extend_from_slice(SIGN_CONTEXT);
        buf.extend_from_slice(inner);
        buf
    }

    /// Signs with the device's key (from its libp2p Ed25519 seed) and
    /// encrypts to `key`.
    pub fn seal(&self, signer: &SigningKey, key: &PresenceKey) -> SealedPresence {
        let inner = self.to_bytes();
        let signature = signer.sign(&Self::signed_bytes(&inner));
        let mut w = Writer::default();
        w.bytes(&inner);
        w.raw(&signature.to_bytes());
        let plaintext = Zeroizing::new(w.into_bytes());
        let nonce: [u8; 24] = rand::random();
        let aad = aad(key.epoch);
        let ciphertext = key
            .cipher()
            .encrypt(
                (&nonce).into(),
                AeadPayload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            // Encryption fails only for inputs over 256 GiB.
            .unwrap_or_default();
        SealedPresence {
            epoch: key.epoch,
            nonce,
            ciphertext,
        }
    }
}

fn aad(epoch: u32) -> [u8; 5] {
    let e = epoch.to_be_bytes();
    [VERSION, e[0], e[1], e[2], e[3]]
}

impl SealedPresence {
    /// Decrypts and verifies the record at wall-clock time `now_ms`.
    pub fn open(&self, key: &PresenceKey, now_ms: u64) -> Result<Presence, PresenceError> {
        if self.epoch != key.epoch {
            return Err(PresenceError::WrongEpoch {
                got: self.epoch,
                want: key.epoch,
            });
        }
        let aad = aad(self.epoch);
        let plaintext = Zeroizing::new(
            key.cipher()
                .decrypt(
                    (&self.nonce).into(),
                    AeadPayload {
                        msg: &self.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| PresenceError::Undecryptable)?,
        );
        let mut r = Reader::new(&plaintext);
        let inner = r.bytes("presence", INNER_MAX)?;
        let signature: [u8; 64] = r.array()?;
        r.finish("signed presence")?;
        let presence = Presence::from_bytes(inner)?;
        let device = VerifyingKey::from_bytes(&presence.device.0)
            .map_err(|_| PresenceError::BadSignature)?;
        device
            .verify_strict(
                &Presence::signed_bytes(inner),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| PresenceError::BadSignature)?;
        if presence.issued_at_ms > now_ms.saturating_add(MAX_PRESENCE_SKEW_MS) {
            return Err(PresenceError::FromTheFuture);
        }
        if presence.expires_at_ms <= now_ms {
            return Err(PresenceError::Expired);
        }
        Ok(presence)
    }
}

impl Wire for SealedPresence {
    const NAME: &'static str = "sealed presence";

    fn encode(&self, w: &mut Writer) {
        w.u8(VERSION);
        w.u32(self.epoch);
        w.raw(&self.nonce);
        w.bytes(&self.ciphertext);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, VERSION)?;
        Ok(Self {
            epoch: r.u32()?,
            nonce: r.array()?,
            ciphertext: r
                .bytes("presence ciphertext", MAX_PRESENCE_RECORD_LEN - 33)?
                .to_vec(),
        })
    }
}

/// Both the request and the answer on `/hush/presence/1`: the sender's own
/// record for the receiver, if it shares presence with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresencePush {
    pub record: Option<SealedPresence>,
}

impl Wire for PresencePush {
    const NAME: &'static str = "presence push";

    fn encode(&self, w: &mut Writer) {
        w.u8(VERSION);
        match &self.record {
            None => w.u8(0),
            Some(record) => {
                w.u8(1);
                record.encode(w);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, VERSION)?;
        let record = match r.u8()? {
            0 => None,
            1 => Some(SealedPresence::decode(r)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "presence push",
                    tag,
                });
            }
        };
        Ok(Self { record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_795_430_096_789;

    fn device() -> ([u8; 32], DeviceId) {
        let secret = [7u8; 32];
        let id = DeviceId(SigningKey::from_bytes(&secret).verifying_key().to_bytes());
        (secret, id)
    }

    fn online(device: DeviceId) -> Presence {
        Presence {
            account: AccountId([1; 32]),
            device,
            state: PresenceState::Online,
            issued_at_ms: NOW,
            expires_at_ms: NOW + 300_000,
            last_seen_ms: NOW,
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            relays: vec!["/ip4/127.0.0.1/tcp/7001/p2p/12D3KooW".into()],
        }
    }

    #[test]
    fn sealed_record_round_trips() {
        let (secret, id) = device();
        let key = PresenceKey::generate(1);
        let sealed = online(id).seal(&SigningKey::from_bytes(&secret), &key);
        let bytes = sealed.to_bytes();
        assert!(bytes.len() <= MAX_PRESENCE_RECORD_LEN);
        let back = SealedPresence::from_bytes(&bytes).unwrap();
        assert_eq!(back.open(&key, NOW + 1).unwrap(), online(id));
    }

    #[test]
    fn other_keys_epochs_and_times_are_refused() {
        let (secret, id) = device();
        let key = PresenceKey::generate(1);
        let sealed = online(id).seal(&SigningKey::from_bytes(&secret), &key);
        let other = PresenceKey::from_parts(1, [9; 32]);
        assert_eq!(sealed.open(&other, NOW), Err(PresenceError::Undecryptable));
        assert!(matches!(
            sealed.open(&key.rotate(), NOW),
            Err(PresenceError::WrongEpoch { got: 1, want: 2 })
        ));
        assert_eq!(
            sealed.open(&key, NOW + 300_000),
            Err(PresenceError::Expired)
        );
        assert_eq!(
            sealed.open(&key, NOW - MAX_PRESENCE_SKEW_MS - 1),
            Err(PresenceError::FromTheFuture)
        );
    }

    #[test]
    fn a_key_holder_cannot_forge_another_devices_record() {
        let (_, id) = device();
        let key = PresenceKey::generate(1);
        // Sealed with the shared key but signed by some other device.
        let forged = online(id).seal(&SigningKey::from_bytes(&[8u8; 32]), &key);
        assert_eq!(forged.open(&key, NOW), Err(PresenceError::BadSignature));
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let (secret, id) = device();
        let key = PresenceKey::generate(3);
        let mut sealed = online(id).seal(&SigningKey::from_bytes(&secret), &key);
        sealed.ciphertext[0] ^= 1;
        assert_eq!(sealed.open(&key, NOW), Err(PresenceError::Undecryptable));
    }

    #[test]
    fn keys_derived_from_one_seed_agree_and_differ_by_epoch() {
        let seed = [7; 32];
        assert_eq!(PresenceKey::derive(&seed, 3), PresenceKey::derive(&seed, 3));
        assert_ne!(
            PresenceKey::derive(&seed, 3).secret(),
            PresenceKey::derive(&seed, 4).secret()
        );
        assert_ne!(
            PresenceKey::derive(&seed, 3).secret(),
            PresenceKey::derive(&[8; 32], 3).secret()
        );
    }

    #[test]
    fn locators_differ_by_device_and_epoch() {
        let key = PresenceKey::generate(1);
        let a = key.locator(&DeviceId([1; 32]));
        assert_ne!(a, key.locator(&DeviceId([2; 32])));
        assert_ne!(a, key.rotate().locator(&DeviceId([1; 32])));
        assert_eq!(format!("{key:?}"), "PresenceKey { epoch: 1, .. }");
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = SealedPresence::from_bytes(&bytes);
            let _ = PresencePush::from_bytes(&bytes);
            let _ = Presence::from_bytes(&bytes);
        }

        #[test]
        fn presence_round_trips(a: [u8; 32], d: [u8; 32], online: bool, issued in 0u64..1 << 50, ttl in 0u64..MAX_PRESENCE_TTL_MS, seen: u64, addrs in proptest::collection::vec("[a-z0-9/.]{0,40}", 0..MAX_PRESENCE_ADDRESSES), relays in proptest::collection::vec("[a-z0-9/.]{1,40}", 0..MAX_STATED_RELAYS)) {
            let p = Presence {
                account: AccountId(a),
                device: DeviceId(d),
                state: if online { PresenceState::Online } else { PresenceState::Offline },
                issued_at_ms: issued,
                expires_at_ms: issued + ttl,
                last_seen_ms: seen,
                addresses: addrs,
                relays,
            };
            prop_assert_eq!(Presence::from_bytes(&p.to_bytes()).unwrap(), p);
        }
    }
}

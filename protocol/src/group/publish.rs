//! The publish credential: who may publish on a group's topic.
//!
//! A group's messages travel on a topic named by a *publish key*, an
//! Ed25519 key pair made for one epoch of the group's membership (its
//! creation, and each removal or departure). Every member holds the
//! epoch's secret (handed over inside Olm); each [`GroupMessage`] carries a
//! signature by it. The topic name *is* the public key, so a relay checks a
//! publication against the topic it arrived on without learning anything
//! about the group, and a member checks a history page the same way.
//! Whoever never held the epoch's secret (a stranger, a member removed
//! before it) cannot publish on its topic.
//!
//! A member checks a message more cheaply than a relay can: each message
//! also carries a *tag*, BLAKE3 keyed by a key derived from the secret,
//! over everything before it (the signature included). Relays, which hold
//! only the public key, check the signature; members check the tag (about
//! a microsecond, where a signature costs 20 to 40 to check). Only a
//! holder of the secret can make either, so the two checks keep out the
//! same strangers; a member who makes a good tag over a bad signature
//! reaches the members online and no relay's history (see
//! [`PublishKey::is_authentic`]).

use std::fmt;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::control::GroupMessage;
use crate::codec::Writer;
use crate::ids::GroupId;
use crate::megolm::SessionId;

/// What names a publish key's topic: this prefix, then the key in hex.
pub const TOPIC_PREFIX: &str = "/hush/group/2/";
const PUBLICATION_CONTEXT: &[u8] = b"hush 2026-12 group publication";
const TAG_KEY_CONTEXT: &str = "hush 2026-12 group publication tag";
const CHANNEL_KEY_CONTEXT: &str = "hush 2026-12 group channel key";
const CHANNEL_AAD: &[u8] = b"hush 2026-12 group channel";
const CHANNEL_NONCE_LEN: usize = 24;

/// The session id a [`GroupMessage`] on the group's *channel* carries: not
/// a Megolm session (those ids are Ed25519 public keys of random secrets,
/// and no secret has this one), but a control message every member of the
/// epoch reads (see [`PublishKey::seal_channel`]).
pub const CHANNEL_SESSION: SessionId = SessionId([0; 32]);

/// An epoch's publish key (the secret half).
#[derive(Clone)]
pub struct PublishKey(SigningKey);

impl PublishKey {
    /// A new key from 32 random bytes.
    pub fn generate(rng: &mut dyn rand::RngCore) -> Self {
        let mut secret = [0; 32];
        rng.fill_bytes(&mut secret);
        Self(SigningKey::from_bytes(&secret))
    }

    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(secret))
    }

    /// The secret, to store or to hand to a member over Olm; never log it.
    pub fn secret(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> TopicKey {
        TopicKey(self.0.verifying_key())
    }

    /// The topic this key publishes on.
    pub fn topic(&self) -> String {
        self.public().topic()
    }

    /// A group message signed for this key's topic.
    pub fn seal(&self, session: crate::SessionId, ciphertext: Vec<u8>) -> GroupMessage {
        self.seal_until(session, ciphertext, None)
    }

    /// [`PublishKey::seal`] for a message relays drop at `expires_at_ms`.
    pub fn seal_until(
        &self,
        session: crate::SessionId,
        ciphertext: Vec<u8>,
        expires_at_ms: Option<u64>,
    ) -> GroupMessage {
        let mut message = GroupMessage {
            session,
            ciphertext,
            expires_at_ms,
            signature: [0; 64],
            // The version the signature covers says a tag follows.
            tag: Some([0; 32]),
        };
        message.signature = self.0.sign(&signed_bytes(&message)).to_bytes();
        message.tag = Some(self.tag(&message));
        message
    }

    /// Whether a holder of this key made `message`: for a tagged message
    /// (version 4 or 5), its tag, compared in constant time; the signature
    /// is left to relays. Only a holder of the secret can make a tag, as
    /// only one can sign, and the tag covers the signature: a stranger who
    /// alters any byte, swaps the signature or strips the tag (the version
    /// byte, which says a tag follows, is signed) is refused here as at a
    /// relay. What differs is a member's own forgery, a good tag over a
    /// bad signature: members accept it and relays refuse it, so it
    /// reaches those online and not the history (a member can publish
    /// junk the members read anyway).
    ///
    /// A message of version 2 or 3 has no tag: it is checked by signing it
    /// again ([`PublishKey::signed`]).
    pub fn is_authentic(&self, message: &GroupMessage) -> bool {
        match &message.tag {
            Some(tag) => bool::from(self.tag(message).ct_eq(tag)),
            None => self.signed(message),
        }
    }

    /// The tag of `message` under this key (whatever tag it carries).
    pub(super) fn tag(&self, message: &GroupMessage) -> [u8; 32] {
        let secret = Zeroizing::new(self.0.to_bytes());
        let key = Zeroizing::new(blake3::derive_key(TAG_KEY_CONTEXT, &*secret));
        let mut w = Writer::default();
        message.encode_unsigned(&mut w);
        w.raw(&message.signature);
        *blake3::keyed_hash(&key, &w.into_bytes()).as_bytes()
    }

    /// Whether `message` was signed by this key: the same answer as
    /// [`TopicKey::verify`], for the cost of a signature. Ed25519 signing is
    /// deterministic (RFC 8032 §5.1.6), so whoever holds the secret signs
    /// the same bytes again and compares, in constant time: a match is the
    /// very signature `verify_strict` accepts (`s` reduced, `R` and the key
    /// of large order). A signature that differs may still be valid (the
    /// scheme lets a signer pick its nonce another way), so it is checked
    /// as a relay checks it.
    pub fn signed(&self, message: &GroupMessage) -> bool {
        let bytes = signed_bytes(message);
        let ours = self.0.sign(&bytes).to_bytes();
        if bool::from(ours.ct_eq(&message.signature)) {
            return true;
        }
        self.public().verify_bytes(&bytes, &message.signature)
    }

    /// A control message for every holder of this key (the members of its
    /// epoch, no relay): `plaintext` (a padded payload) under
    /// XChaCha20-Poly1305 with a key derived from the publish secret and a
    /// random nonce, bound to `group`, signed for the topic like any
    /// message, under [`CHANNEL_SESSION`].
    pub fn seal_channel(
        &self,
        rng: &mut dyn rand::RngCore,
        group: &GroupId,
        plaintext: &[u8],
    ) -> GroupMessage {
        let mut nonce = [0; CHANNEL_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let aad = [CHANNEL_AAD, &group.0].concat();
        let sealed = self.channel_cipher().encrypt(
            (&nonce).into(),
            AeadPayload {
                msg: plaintext,
                aad: &aad,
            },
        );
        // Encryption fails only past the cipher's 256 GiB message limit.
        let sealed = sealed.unwrap_or_default();
        self.seal(CHANNEL_SESSION, [&nonce[..], &sealed].concat())
    }

    /// The plaintext of a channel message of `group` sealed by this key;
    /// `None` if it is not one, or was altered.
    pub fn open_channel(
        &self,
        group: &GroupId,
        message: &GroupMessage,
    ) -> Option<Zeroizing<Vec<u8>>> {
        if message.session != CHANNEL_SESSION {
            return None;
        }
        let (nonce, sealed) = message
            .ciphertext
            .split_first_chunk::<CHANNEL_NONCE_LEN>()?;
        let aad = [CHANNEL_AAD, &group.0].concat();
        self.channel_cipher()
            .decrypt(
                nonce.into(),
                AeadPayload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// The channel's AEAD key: derived from the secret, never the secret
    /// itself (which signs).
    fn channel_cipher(&self) -> XChaCha20Poly1305 {
        let key = Zeroizing::new(blake3::derive_key(CHANNEL_KEY_CONTEXT, &self.0.to_bytes()));
        XChaCha20Poly1305::new((&*key).into())
    }
}

impl fmt::Debug for PublishKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublishKey").field(&self.public()).finish()
    }
}

impl PartialEq for PublishKey {
    fn eq(&self, other: &Self) -> bool {
        self.secret() == other.secret()
    }
}

impl Eq for PublishKey {}

/// The public half of a publish key, as a topic names it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TopicKey(VerifyingKey);

impl TopicKey {
    /// The key a topic name carries; `None` for anything that is not a
    /// well-formed group topic.
    pub fn parse(topic: &str) -> Option<Self> {
        let hex_key = topic.strip_prefix(TOPIC_PREFIX)?;
        // One spelling per key: 64 lowercase hex digits.
        let canonical = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if hex_key.len() != 64 || !hex_key.bytes().all(canonical) {
            return None;
        }
        let mut bytes = [0; 32];
        hex::decode_to_slice(hex_key, &mut bytes).ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(Self)
    }

    pub fn topic(&self) -> String {
        format!("{TOPIC_PREFIX}{}", hex::encode(self.0.as_bytes()))
    }

    /// Whether `message` was signed by this key's secret.
    pub fn verify(&self, message: &GroupMessage) -> bool {
        self.verify_bytes(&signed_bytes(message), &message.signature)
    }

    fn verify_bytes(&self, signed: &[u8], signature: &[u8; 64]) -> bool {
        let signature = Signature::from_bytes(signature);
        self.0.verify_strict(signed, &signature).is_ok()
    }
}

impl fmt::Debug for TopicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicKey({})", hex::encode(&self.0.as_bytes()[..8]))
    }
}

/// What the signature covers: a context, then the message as encoded
/// before its signature.
pub(super) fn signed_bytes(message: &GroupMessage) -> Vec<u8> {
    let mut w = Writer::default();
    w.raw(PUBLICATION_CONTEXT);
    message.encode_unsigned(&mut w);
    w.into_bytes()
}

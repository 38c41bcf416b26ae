//! Sealed envelopes: what a relay stores, an envelope sealed to the
//! recipient device's mailbox key (HPKE, RFC 9180) or under a pairwise
//! mailbox's deposit key ([`DepositKey`](super::DepositKey)).

use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use thiserror::Error;
use zeroize::Zeroizing;

use super::MailboxId;
use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::envelope::MAX_ENVELOPE_LEN;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

const SEALED_VERSION: u8 = 1;
const SEAL_INFO: &[u8] = b"hush 2026 sealed envelope";
/// HPKE overhead: the encapsulated key and the AEAD tag.
const SEAL_OVERHEAD: usize = 32 + 16;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the recipient's mailbox key is not a valid X25519 key")]
    BadKey,
    #[error("the sealed envelope does not open with this mailbox key")]
    Open,
    #[error("the envelope is too long to seal")]
    TooLong,
    #[error("the sealed envelope is malformed: {0}")]
    Decode(#[from] DecodeError),
}

/// A device's mailbox key pair, derived from its device secret.
pub struct MailboxSecret {
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: [u8; 32],
}

impl std::fmt::Debug for MailboxSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MailboxSecret(public: {}, secret: <redacted>)",
            hex::encode(self.public)
        )
    }
}

impl MailboxSecret {
    /// Derives the key pair from the device's secret (HPKE `DeriveKeyPair`
    /// over a blake3-derived seed), so nothing new has to be stored.
    pub fn derive(device_secret: &[u8; 32]) -> Self {
        let seed = Zeroizing::new(blake3::derive_key(
            "hush 2026 mailbox key seed",
            device_secret,
        ));
        let (secret, public) = Kem::derive_keypair(seed.as_slice());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        Self {
            secret,
            public: bytes,
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Opens a sealed envelope addressed to `mailbox`, giving the envelope bytes.
    pub fn open(&self, mailbox: &MailboxId, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        self.open_envelope(mailbox, &SealedEnvelope::from_bytes(sealed)?)
    }

    pub(crate) fn open_envelope(
        &self,
        mailbox: &MailboxId,
        sealed: &SealedEnvelope,
    ) -> Result<Vec<u8>, SealError> {
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed.encapped)
            .map_err(|_| SealError::Open)?;
        hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &self.secret,
            &encapped,
            SEAL_INFO,
            &sealed.ciphertext,
            &mailbox.0,
        )
        .map_err(|_| SealError::Open)
    }
}

/// What a relay stores: an envelope sealed to the recipient's mailbox key
/// (HPKE), or under a pairwise mailbox's deposit key
/// ([`DepositKey`]). The two look alike: 32 bytes that pass for an X25519
/// key, then the ciphertext. The relay sees the size (the payload inside
/// is padded to a power-of-two bucket) and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEnvelope {
    /// HPKE's encapsulated key, or a deposit-key seal's random head (its
    /// first 24 bytes are the XChaCha20 nonce).
    pub encapped: [u8; 32],
    pub ciphertext: Vec<u8>,
}

impl SealedEnvelope {
    /// Seals envelope bytes to a device's mailbox key; the mailbox id is
    /// bound in as associated data.
    pub fn seal(
        mailbox_key: &[u8; 32],
        mailbox: &MailboxId,
        envelope: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let key = <Kem as hpke::Kem>::PublicKey::from_bytes(mailbox_key)
            .map_err(|_| SealError::BadKey)?;
        let (encapped, ciphertext) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
            &OpModeS::Base,
            &key,
            SEAL_INFO,
            envelope,
            &mailbox.0,
        )
        .map_err(|_| SealError::BadKey)?;
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&encapped.to_bytes());
        Ok(Self {
            encapped: bytes,
            ciphertext,
        }
        .to_bytes())
    }

    /// The sealed size of an envelope of `len` bytes.
    pub const fn sealed_len(len: usize) -> usize {
        1 + 4 + len + SEAL_OVERHEAD
    }
}

impl Wire for SealedEnvelope {
    const NAME: &'static str = "sealed envelope";

    fn encode(&self, w: &mut Writer) {
        w.u8(SEALED_VERSION);
        w.raw(&self.encapped);
        w.bytes(&self.ciphertext);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, SEALED_VERSION)?;
        let encapped = r.array()?;
        let ciphertext = r
            .bytes("sealed ciphertext", MAX_ENVELOPE_LEN + 16)?
            .to_vec();
        Ok(Self {
            encapped,
            ciphertext,
        })
    }
}

//! Pairwise mailboxes: each contact deposits into a mailbox of its own.
//!
//! A device derives one mailbox per contact account and per generation
//! (a four-week period) from its device secret. The mailbox is named by a
//! fresh Ed25519 key (the *mailbox key*: `MailboxId::of` its public half,
//! like a device's own mailbox); mail into it is sealed under a symmetric
//! [`DepositKey`] that only the owner and that contact hold. Both are
//! handed to the contact inside Olm as a [`MailboxGrant`]. Nothing in the
//! ids, the keys or the grant's signature ties one pairwise mailbox to
//! another or to the device: to a relay they are unrelated mailboxes until
//! the owner fetches them together ([`KeySet`](super::KeySet)).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use super::{DepositRight, MailboxId, MailboxSecret, SealError, SealedEnvelope};
use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::ids::{AccountId, DeviceId};

/// How long one generation of pairwise mailboxes lasts: a contact is handed
/// the next one when it starts, and uses a grant only until the generation
/// after it ends ([`MailboxGrant::usable_at`]).
pub const GENERATION_MS: u64 = 28 * 24 * 3600 * 1000;

/// The generation of pairwise mailboxes at `unix_ms`.
pub fn generation_at(unix_ms: u64) -> u32 {
    u32::try_from(unix_ms / GENERATION_MS).unwrap_or(u32::MAX)
}

/// One pairwise mailbox's keys, on the owner's side.
pub struct PairwiseKey {
    account: AccountId,
    generation: u32,
    signing: SigningKey,
    deposit: DepositKey,
    seal: MailboxSecret,
    id: DeviceId,
    mailbox: MailboxId,
}

impl std::fmt::Debug for PairwiseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairwiseKey")
            .field("mailbox", &self.mailbox)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl PairwiseKey {
    /// The mailbox of `generation` for the contact `account`, derived from
    /// our device secret (nothing new is stored): blake3 derives a seed
    /// from the secret, the account and the generation; the Ed25519 key,
    /// the deposit key and the HPKE key pair are derived from the seed
    /// apart.
    pub fn derive(device_secret: &[u8; 32], account: &AccountId, generation: u32) -> Self {
        let seed = Zeroizing::new(
            blake3::Hasher::new_derive_key("hush 2026-12 pairwise mailbox")
                .update(device_secret)
                .update(&account.0)
                .update(&generation.to_le_bytes())
                .finalize()
                .as_bytes()
                .to_owned(),
        );
        let signing_seed = Zeroizing::new(blake3::derive_key(
            "hush 2026-12 pairwise mailbox key",
            seed.as_slice(),
        ));
        let signing = SigningKey::from_bytes(&signing_seed);
        let id = DeviceId(signing.verifying_key().to_bytes());
        let deposit = DepositKey(blake3::derive_key(
            "hush 2026-12 pairwise mailbox deposit key",
            seed.as_slice(),
        ));
        Self {
            account: *account,
            generation,
            deposit,
            seal: MailboxSecret::derive(&seed),
            mailbox: MailboxId::of(&id),
            signing,
            id,
        }
    }

    /// The mailbox key's public half: what owner requests name.
    pub fn key(&self) -> DeviceId {
        self.id
    }

    pub fn mailbox(&self) -> MailboxId {
        self.mailbox
    }

    pub fn account(&self) -> AccountId {
        self.account
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Signs with the mailbox key (owner requests and key-set proofs).
    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.signing.sign(bytes).to_bytes()
    }

    /// What the contact is handed: the mailbox, its deposit key (and the
    /// HPKE key older senders sealed to), and a deposit right for it under
    /// `holder`.
    pub fn grant(&self, holder: [u8; 16]) -> MailboxGrant {
        MailboxGrant {
            right: DepositRight::grant(&self.signing, holder),
            seal_key: self.seal.public_key(),
            generation: self.generation,
            deposit_key: Some(self.deposit),
        }
    }

    /// Opens an envelope sealed into this mailbox: under the deposit key,
    /// or (from a sender holding a grant without one) to the HPKE key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let sealed = SealedEnvelope::from_bytes(sealed)?;
        self.deposit
            .open_envelope(&self.mailbox, &sealed)
            .or_else(|_| self.seal.open_envelope(&self.mailbox, &sealed))
    }
}

/// A pairwise mailbox's deposit key: XChaCha20-Poly1305 under a key that
/// only the mailbox's owner and the one contact it was granted to hold.
/// A sealed envelope costs a symmetric cipher instead of an X25519
/// agreement on each side (HPKE), which is most of what draining a full
/// mailbox costs. It hides exactly what HPKE does from the relay: the
/// envelope, and so its sender; who may deposit into the mailbox, the
/// relay knows from the right either way.
///
/// Sealed, it is a [`SealedEnvelope`] like any other: a random 32-byte
/// head (its top bit clear, like an X25519 key's encoding), the first 24
/// bytes of which are the nonce, and the ciphertext, with the mailbox id
/// and the head as associated data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DepositKey(pub [u8; 32]);

impl std::fmt::Debug for DepositKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DepositKey(<redacted>)")
    }
}

impl DepositKey {
    /// Seals envelope bytes into `mailbox`.
    pub fn seal(&self, mailbox: &MailboxId, envelope: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut head: [u8; 32] = rand::random();
        head[31] &= 0x7f;
        let ciphertext = self
            .cipher()
            .encrypt(
                &Self::nonce(&head),
                Payload {
                    msg: envelope,
                    aad: &Self::aad(mailbox, &head),
                },
            )
            .map_err(|_| SealError::TooLong)?;
        Ok(SealedEnvelope {
            encapped: head,
            ciphertext,
        }
        .to_bytes())
    }

    /// Opens an envelope sealed into `mailbox` under this key.
    pub fn open(&self, mailbox: &MailboxId, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        self.open_envelope(mailbox, &SealedEnvelope::from_bytes(sealed)?)
    }

    fn open_envelope(
        &self,
        mailbox: &MailboxId,
        sealed: &SealedEnvelope,
    ) -> Result<Vec<u8>, SealError> {
        self.cipher()
            .decrypt(
                &Self::nonce(&sealed.encapped),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &Self::aad(mailbox, &sealed.encapped),
                },
            )
            .map_err(|_| SealError::Open)
    }

    fn aad(mailbox: &MailboxId, head: &[u8; 32]) -> [u8; 64] {
        let mut aad = [0; 64];
        aad[..32].copy_from_slice(&mailbox.0);
        aad[32..].copy_from_slice(head);
        aad
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// The nonce: the head's first 24 bytes.
    fn nonce(head: &[u8; 32]) -> XNonce {
        let mut nonce = XNonce::default();
        nonce.copy_from_slice(&head[..24]);
        nonce
    }
}

/// A pairwise mailbox as its owner hands it to one contact: deposit into
/// `right.mailbox()`, sealed under `deposit_key` (or, in a grant from an
/// owner that predates deposit keys, to `seal_key`), with `right` (signed
/// by the mailbox key, so the relay counts the mail as a contact's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxGrant {
    pub right: DepositRight,
    pub seal_key: [u8; 32],
    pub generation: u32,
    pub deposit_key: Option<DepositKey>,
}

impl MailboxGrant {
    pub fn mailbox(&self) -> MailboxId {
        self.right.mailbox()
    }

    /// Whether the right is really signed by the mailbox's key.
    pub fn verify(&self) -> bool {
        self.right.verify()
    }

    /// Whether a sender may deposit into it at `unix_ms`: during its own
    /// generation and the next one. The owner fetches at least the last
    /// three generations (and back to before its last full drain), so a
    /// clock off by up to a generation loses nothing; after that the
    /// sender falls back to the device's own mailbox.
    pub fn usable_at(&self, unix_ms: u64) -> bool {
        self.generation.saturating_add(1) >= generation_at(unix_ms)
    }

    /// Seals envelope bytes for this mailbox: under the deposit key, or to
    /// the HPKE key when the grant has none.
    pub fn seal(&self, envelope: &[u8]) -> Result<Vec<u8>, SealError> {
        match &self.deposit_key {
            Some(key) => key.seal(&self.mailbox(), envelope),
            None => SealedEnvelope::seal(&self.seal_key, &self.mailbox(), envelope),
        }
    }

    /// The first grant format (`Body` tag 10): no version byte, no deposit
    /// key. Still read, never written.
    pub(crate) fn decode_unversioned(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            right: DepositRight::decode(r)?,
            seal_key: r.array()?,
            generation: r.u32()?,
            deposit_key: None,
        })
    }
}

/// Version 1: without a deposit key (from a grant read in the unversioned
/// format); version 2: with one, after the generation.
impl Wire for MailboxGrant {
    const NAME: &'static str = "mailbox grant";

    fn encode(&self, w: &mut Writer) {
        w.u8(if self.deposit_key.is_some() { 2 } else { 1 });
        self.right.encode(w);
        w.raw(&self.seal_key);
        w.u32(self.generation);
        if let Some(key) = &self.deposit_key {
            w.raw(&key.0);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8()?;
        if !matches!(version, 1 | 2) {
            return Err(DecodeError::UnknownVersion {
                what: Self::NAME,
                version,
            });
        }
        let mut grant = Self::decode_unversioned(r)?;
        if version == 2 {
            grant.deposit_key = Some(DepositKey(r.array()?));
        }
        Ok(grant)
    }
}

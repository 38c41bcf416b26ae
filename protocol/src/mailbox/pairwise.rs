//! Pairwise mailboxes: each contact deposits into a mailbox of its own.
//!
//! A device derives one mailbox per contact account and per generation
//! (a four-week period) from its device secret. The mailbox is named by a
//! fresh Ed25519 key (the *mailbox key*: `MailboxId::of` its public half,
//! like a device's own mailbox) and sealed to a fresh X25519 key; both are
//! handed to the contact inside Olm as a [`MailboxGrant`]. Nothing in the
//! ids, the keys or the grant's signature ties one pairwise mailbox to
//! another or to the device: to a relay they are unrelated mailboxes until
//! the owner fetches them together ([`KeySet`](super::KeySet)).

use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use super::{DepositRight, MailboxId, MailboxSecret, SealError};
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
    /// from the secret, the account and the generation; the Ed25519 key
    /// and the HPKE key pair are derived from the seed apart.
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
        Self {
            account: *account,
            generation,
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

    /// What the contact is handed: the mailbox, its sealing key, and a
    /// deposit right for it under `holder`.
    pub fn grant(&self, holder: [u8; 16]) -> MailboxGrant {
        MailboxGrant {
            right: DepositRight::grant(&self.signing, holder),
            seal_key: self.seal.public_key(),
            generation: self.generation,
        }
    }

    /// Opens an envelope sealed into this mailbox.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        self.seal.open(&self.mailbox, sealed)
    }
}

/// A pairwise mailbox as its owner hands it to one contact: deposit into
/// `right.mailbox()`, sealed to `seal_key`, with `right` (signed by the
/// mailbox key, so the relay counts the mail as a contact's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxGrant {
    pub right: DepositRight,
    pub seal_key: [u8; 32],
    pub generation: u32,
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
}

impl Wire for MailboxGrant {
    const NAME: &'static str = "mailbox grant";

    fn encode(&self, w: &mut Writer) {
        self.right.encode(w);
        w.raw(&self.seal_key);
        w.u32(self.generation);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            right: DepositRight::decode(r)?,
            seal_key: r.array()?,
            generation: r.u32()?,
        })
    }
}

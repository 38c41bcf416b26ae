//! What the relay engine asks of the host's store: a few reads it needs in
//! the middle of a decision ([`MailLookup`]), and the writes it hands back
//! in batches ([`RelayWrite`]) for the host to commit in one transaction.

use crate::{DeviceId, MailboxId, PushTarget};

/// The dedupe key of a deposit: a keyed hash of its sealed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DepositDigest(pub [u8; 32]);

impl DepositDigest {
    pub fn of(sealed: &[u8]) -> Self {
        Self(
            *blake3::Hasher::new_derive_key("hush 2026 relay deposit digest")
                .update(sealed)
                .finalize()
                .as_bytes(),
        )
    }
}

/// The public part of a hosted one-time key (Curve25519).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OneTimeKey(pub [u8; 32]);

/// A hosted key as the store hands it out: the one-time key it is
/// (`None` for the device's fallback key) and the signed bundle's bytes.
pub type HostedKey = (Option<OneTimeKey>, Vec<u8>);

/// One item of mail as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMail {
    pub mailbox: MailboxId,
    /// Relay-wide, only growing: the mailbox's order and the expiry order.
    pub seq: u64,
    pub stored_at_ms: u64,
    /// An unlinkable per-process tag of the sender, for per-sender quotas.
    pub sender_tag: u64,
    pub sealed: Vec<u8>,
    /// Dropped then (Unix ms) if before the retention ends: the sender's
    /// disappearing timer.
    pub expires_at_ms: Option<u64>,
}

/// Why an item is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Its owner stored it and acked.
    Acked,
    /// Older than the retention period, or past the expiry its sender
    /// gave.
    Expired,
}

/// A write the engine asks for. The host applies a batch of them in one
/// durable transaction, in order, and reports what it did ([`Applied`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayWrite {
    /// New mail, with its dedupe digest.
    Deposit(StoredMail),
    /// Deletes an item of this mailbox (acked or expired). An item of
    /// another mailbox under that seq is left alone: an ack names only the
    /// signer's own mail.
    Delete(MailboxId, u64, Removal),
    /// Replaces a device's hosted keys.
    PutKeys {
        device: DeviceId,
        one_time: Vec<(OneTimeKey, Vec<u8>)>,
        fallback: Vec<u8>,
    },
    /// A one-time key was handed out: it is gone.
    TakeKey { device: DeviceId, key: OneTimeKey },
    /// The next sequence number, so a restart never reuses one.
    NextSeq(u64),
    /// The device was revoked by its account: its hosted keys go, and it is
    /// remembered as dropped ([`MailLookup::dropped`]).
    Drop { device: DeviceId },
    /// Replaces the holder tags whose deposit rights to `mailbox` its
    /// owner revoked (empty: none).
    PutRevoked {
        mailbox: MailboxId,
        holders: Vec<[u8; 16]>,
    },
    /// Replaces (or, with `None`, removes) the device's push registration.
    PutPush {
        device: DeviceId,
        target: Option<PushTarget>,
    },
}

/// A mailbox and the deposit-right holder tags its owner revoked.
pub type Revoked = (MailboxId, Vec<[u8; 16]>);

/// What a committed batch did: the deletions that found their item, and
/// how many deposits were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Each deleted item's mailbox, size, sender tag and why.
    pub deleted: Vec<(MailboxId, u64, u64, Removal)>,
    pub deposited: u64,
}

/// A read or write of the host's store failed; the text is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the relay store failed: {0}")]
pub struct StoreFault(pub String);

/// One page of a mailbox, oldest first, and whether more is waiting.
pub type MailPage = (Vec<(u64, Vec<u8>)>, bool);

/// The reads the relay engine makes of the host's store while it decides.
/// They see every batch the host has committed, and none it has not.
pub trait MailLookup {
    /// Which of these deposits are stored already.
    fn stored(&self, digests: &[DepositDigest]) -> Result<Vec<bool>, StoreFault>;
    /// Items of `mailbox` after `after`: at most `limit` items and about
    /// `max_bytes` (at least one item if any is waiting).
    fn page(
        &self,
        mailbox: &MailboxId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MailPage, StoreFault>;
    /// One of the device's one-time keys for which `skip` is false, or
    /// else its fallback key.
    fn hosted_key(
        &self,
        device: &DeviceId,
        skip: &dyn Fn(&OneTimeKey) -> bool,
    ) -> Result<Option<HostedKey>, StoreFault>;
    /// How many one-time keys the device has left.
    fn keys_left(&self, device: &DeviceId) -> Result<u32, StoreFault>;
    /// At most `limit` items to drop: the oldest stored before `cutoff_ms`,
    /// then those whose own expiry is at or before `now_ms`.
    fn expired(
        &self,
        cutoff_ms: u64,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(MailboxId, u64)>, StoreFault>;
    /// Every stored item's mailbox, size and sender tag (to rebuild usage).
    fn usage(&self) -> Result<Vec<(MailboxId, u64, u64)>, StoreFault>;
    /// The next sequence number to hand out.
    fn next_seq(&self) -> Result<u64, StoreFault>;
    /// Every mailbox's revoked holder tags (at start).
    fn revoked(&self) -> Result<Vec<Revoked>, StoreFault>;
    /// Every device whose mailbox was dropped (at start).
    fn dropped(&self) -> Result<Vec<DeviceId>, StoreFault>;
    /// Every push registration (at start).
    fn push_targets(&self) -> Result<Vec<(DeviceId, PushTarget)>, StoreFault>;
}

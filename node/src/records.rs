//! Records the node stores, postcard-encoded, as values in redb tables.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The device's own secrets. Stored in the home folder's database, which is
/// readable only by the user (mode 0600); see docs/architecture.md.
#[derive(Clone, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub name: String,
    pub account_seed: [u8; 32],
    pub device_secret: [u8; 32],
    /// Encrypts the Olm pickles at rest.
    pub pickle_key: [u8; 32],
    pub device_list_issued_at_ms: u64,
    pub created_at_ms: u64,
}

impl fmt::Debug for IdentityRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityRecord")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Contacts are the device engine's (`hush_protocol::device`).
pub use hush_protocol::device::ContactRecord;

/// Our side of presence: the key contacts read our records with, and the
/// global switch.
#[derive(Clone, Serialize, Deserialize)]
pub struct OwnPresenceRecord {
    /// Off: nobody sees our presence or last seen.
    pub share: bool,
    pub epoch: u32,
    pub key: [u8; 32],
}

impl fmt::Debug for OwnPresenceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnPresenceRecord")
            .field("share", &self.share)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Presence as it concerns one contact.
#[derive(Clone, Serialize, Deserialize)]
pub struct PresenceRecord {
    /// We share our presence and last seen with them.
    pub share: bool,
    /// The epoch of our key they were last sent (0: none).
    pub shared_epoch: u32,
    /// Their presence key, once they shared it: (epoch, key).
    pub their_key: Option<(u32, [u8; 32])>,
    /// When we last knew them online (ms since the epoch; 0: never).
    pub last_seen_ms: u64,
}

impl Default for PresenceRecord {
    fn default() -> Self {
        Self {
            share: true,
            shared_epoch: 0,
            their_key: None,
            last_seen_ms: 0,
        }
    }
}

impl fmt::Debug for PresenceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceRecord")
            .field("share", &self.share)
            .field("shared_epoch", &self.shared_epoch)
            .field("their_epoch", &self.their_key.map(|(e, _)| e))
            .field("last_seen_ms", &self.last_seen_ms)
            .finish()
    }
}

/// Messages and group records are the device engine's
/// (`hush_protocol::device`).
pub use hush_protocol::device::{GroupRecord, InboundRecord, MessageRecord, PendingRecord, Status};

/// The outbox's records are the device engine's (`hush_protocol::device`).
pub use hush_protocol::device::{OutboxKind, OutboxRecord};

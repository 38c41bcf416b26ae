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
pub use hush_protocol::device::{ContactRecord, ContactTrust};

/// Presence records are the device engine's (`hush_protocol::device`).
pub use hush_protocol::device::{OwnPresenceRecord, PresenceRecord};

/// Messages and group records are the device engine's
/// (`hush_protocol::device`).
pub use hush_protocol::device::{
    GroupRecord, InboundRecord, MessageRecord, PendingRecord, PublishKeyRecord, Status,
};

/// The outbox's records are the device engine's (`hush_protocol::device`).
pub use hush_protocol::device::{OutboxKind, OutboxRecord};

//! Records the node stores, postcard-encoded, as values in redb tables.

use std::fmt;

use hush_protocol::{AccountId, DeviceId};
use serde::{Deserialize, Serialize};

/// The identity as homes made before several devices per account stored
/// it (read and converted; never written).
#[derive(Clone, Serialize, Deserialize)]
pub struct IdentityRecordV1 {
    pub name: String,
    pub account_seed: [u8; 32],
    pub device_secret: [u8; 32],
    pub pickle_key: [u8; 32],
    pub device_list_issued_at_ms: u64,
    pub created_at_ms: u64,
}

/// The device's own secrets. Stored in the home folder's database, which is
/// readable only by the user (mode 0600); see docs/architecture.md.
#[derive(Clone, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub name: String,
    pub account: AccountId,
    /// The account key's seed: on the device that made the account, and on
    /// devices linked with `--with-account-key`. It signs device lists,
    /// cards and group changes.
    pub account_seed: Option<[u8; 32]>,
    pub device_secret: [u8; 32],
    /// Encrypts the Olm pickles at rest.
    pub pickle_key: [u8; 32],
    pub device_list_issued_at_ms: u64,
    pub created_at_ms: u64,
    /// The account's signed device list (wire form) once it has more than
    /// this device; empty: this device alone, signed at every start.
    pub device_list: Vec<u8>,
    /// The account's card as last signed by a device holding the account
    /// key (text form): what a device without the key shows as its card.
    pub card: String,
    /// The account's devices as this device knows them: names and when
    /// they were linked (names never leave the account's devices).
    pub devices: Vec<OwnDevice>,
    /// The `issued_at_ms` of the device list last pushed to contacts.
    pub pushed_list_at_ms: u64,
}

/// One of the account's devices, as its devices name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnDevice {
    pub device: DeviceId,
    pub name: String,
    pub linked_at_ms: u64,
}

impl From<IdentityRecordV1> for IdentityRecord {
    fn from(v1: IdentityRecordV1) -> Self {
        Self {
            name: v1.name,
            account: hush_protocol::AccountKey::from_seed(v1.account_seed).id(),
            account_seed: Some(v1.account_seed),
            device_secret: v1.device_secret,
            pickle_key: v1.pickle_key,
            device_list_issued_at_ms: v1.device_list_issued_at_ms,
            created_at_ms: v1.created_at_ms,
            device_list: Vec::new(),
            card: String::new(),
            devices: Vec::new(),
            pushed_list_at_ms: v1.device_list_issued_at_ms,
        }
    }
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
    FileRecord, FileState, GroupRecord, InboundRecord, KeptRecord, MessageKind, MessageRecord,
    PendingRecord, PublishKeyRecord, Status, UnconfirmedRecord,
};

/// The outbox's records are the device engine's (`hush_protocol::device`).
pub use hush_protocol::device::{OutboxKind, OutboxRecord};

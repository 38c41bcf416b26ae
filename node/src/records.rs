//! Records the node stores, postcard-encoded, as values in redb tables.

use std::fmt;
use std::str::FromStr;

use hush_protocol::{AccountId, DeviceId, GroupId, MessageId};
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

/// A message's delivery status, in the order it advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In the local outbox, not yet on another machine.
    Pending,
    /// A peer device or relay has it durably.
    Sent,
    /// A recipient device decrypted and stored it.
    Delivered,
    /// The recipient has read it.
    Read,
}

impl Status {
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "sent" => Ok(Self::Sent),
            "delivered" => Ok(Self::Delivered),
            "read" => Ok(Self::Read),
            other => Err(format!(
                "unknown status {other:?}: expected pending, sent, delivered or read"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: MessageId,
    /// The author's account.
    pub from: AccountId,
    pub outgoing: bool,
    pub text: String,
    pub status: Status,
    /// When the author sent it (from the id's clock), ms since the epoch.
    pub sent_at_ms: u64,
    /// When this device stored it, ms since the epoch.
    pub stored_at_ms: u64,
}

/// The outbox's records are the device engine's (`hush_protocol::device`).
pub use hush_protocol::device::{OutboxKind, OutboxRecord};

/// What a node keeps per group beside its ops (which have their own table).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Our Megolm sending session, pickled (encrypted with the pickle key).
    pub outbound: Option<String>,
    pub outbound_created_ms: u64,
    /// The joined members the session's key went to.
    pub outbound_members: Vec<AccountId>,
    /// Per home relay (PeerId text): the last history sequence number read.
    pub cursors: Vec<(String, u64)>,
    /// We left: keep the history, drop the subscription.
    pub left: bool,
}

impl fmt::Debug for GroupRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupRecord")
            .field("has_outbound", &self.outbound.is_some())
            .field("outbound_members", &self.outbound_members.len())
            .field("cursors", &self.cursors)
            .field("left", &self.left)
            .finish()
    }
}

/// A member device's Megolm session as we received it.
#[derive(Clone, Serialize, Deserialize)]
pub struct InboundRecord {
    pub group: GroupId,
    pub account: AccountId,
    pub device: DeviceId,
    pub pickle: String,
}

impl fmt::Debug for InboundRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundRecord")
            .field("group", &self.group)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// A group message kept until its session's key arrives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingRecord {
    pub group: GroupId,
    pub message: Vec<u8>,
    pub received_at_ms: u64,
}

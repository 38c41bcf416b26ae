//! Records the device engine hands the host to store (and reads back
//! through its lookups): messages and their statuses, and what a device
//! keeps per group. The host encodes them (postcard) as redb values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{AccountId, DeviceId, GroupId, MessageId};

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
    /// It disappears this many seconds after `sent_at_ms` (every device
    /// deletes it then); `None`: kept.
    pub timer_secs: Option<u32>,
    pub kind: MessageKind,
}

impl MessageRecord {
    /// When every device deletes it, ms since the epoch (`None`: never).
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.timer_secs
            .map(|secs| self.sent_at_ms.saturating_add(u64::from(secs) * 1000))
    }
}

/// What a conversation entry is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageKind {
    /// A text or a file someone sent.
    #[default]
    Message,
    /// The author set the conversation's disappearing timer (seconds;
    /// `None`: off). Its text is empty.
    Timer(Option<u32>),
}

/// What a node keeps per group beside its ops (which have their own table).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Our Megolm sending session, pickled (encrypted with the pickle key).
    pub outbound: Option<String>,
    pub outbound_created_ms: u64,
    /// The joined members the session's key went to.
    pub outbound_members: Vec<AccountId>,
    /// Per home relay (PeerId text): the last sequence number read of the
    /// version 1 topic, which groups no longer use (kept so records stored
    /// before publish keys still read; cursors now live with each
    /// [`PublishKeyRecord`]).
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

/// A publish key of one of a group's epochs (stored per group and epoch
/// op), and how far we read its topic's history at each home relay.
#[derive(Clone, Serialize, Deserialize)]
pub struct PublishKeyRecord {
    pub secret: [u8; 32],
    /// Per home relay (PeerId text): the last history sequence number read.
    pub cursors: Vec<(String, u64)>,
    /// When we got (or made) it, Unix ms.
    pub received_ms: u64,
}

impl fmt::Debug for PublishKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishKeyRecord")
            .field("cursors", &self.cursors)
            .field("received_ms", &self.received_ms)
            .finish_non_exhaustive()
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
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
    pub received_at_ms: u64,
}

/// One of our group messages as published, kept until a member confirms
/// it (or its last resend, `RESEND_AFTER_MS`, went out): after a restart
/// it goes out again, so a message written while nobody was reachable is
/// not lost when the node stops before it could send it.
#[derive(Clone, Serialize, Deserialize)]
pub struct UnconfirmedRecord {
    pub group: GroupId,
    pub topic: String,
    /// The `GroupMessage` encoding, as published.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl fmt::Debug for UnconfirmedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnconfirmedRecord")
            .field("group", &self.group)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// A group message kept for members that miss it (`groups::recent`), as
/// published: stored when the node stops, so that a restart does not
/// forget what other members may still ask for.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeptRecord {
    pub group: GroupId,
    /// Its Megolm session's id.
    pub session: [u8; 32],
    /// Its index in that session.
    pub index: u32,
    /// The `GroupMessage` encoding, as published.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl fmt::Debug for KeptRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeptRecord")
            .field("group", &self.group)
            .field("index", &self.index)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Where a file of a message stands on this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// Offered by a message; not fetched (too large to fetch by itself,
    /// or the user has not asked yet).
    Offered,
    /// Being fetched (or to be, when the node starts).
    Fetching,
    /// Fetched, verified and saved at `path`.
    Complete,
    /// The fetch gave up (`error` says why); `hush file get` tries again.
    Failed,
    /// The user cancelled it (partial data removed).
    Cancelled,
    /// We sent it: served to those who may fetch it.
    Shared,
}

impl FileState {
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Offered => "offered",
            Self::Fetching => "fetching",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Shared => "shared",
        }
    }
}

impl fmt::Display for FileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file a message carries, beside its [`MessageRecord`] (same
/// conversation and id); the message's text is the caption.
#[derive(Clone, Serialize, Deserialize)]
pub struct FileRecord {
    /// The manifest's wire form (it holds the file key).
    #[serde(with = "serde_bytes")]
    pub manifest: Vec<u8>,
    pub outgoing: bool,
    /// The device that sent it: the first place to fetch it from.
    pub source: DeviceId,
    pub state: FileState,
    /// Sent: the file it was read from; received: where it was saved (or
    /// is to be, with `hush file get --to`).
    pub path: Option<String>,
    /// Why the last fetch failed.
    pub error: Option<String>,
}

impl fmt::Debug for FileRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileRecord")
            .field("outgoing", &self.outgoing)
            .field("state", &self.state)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

//! The local JSON-RPC 2.0 API: one JSON object per line over a Unix socket
//! (mode 0600) in the home folder.
//!
//! Methods (params → result):
//! - `status` → [`NodeStatus`](crate::NodeStatus)
//! - `card` → `{ "card": TEXT }`
//! - `contact.add` `{ name, card }` → [`ContactView`](crate::ContactView)
//! - `contact.list` → `[ContactView]`
//! - `send` `{ contact, text, wait?, timeout_ms? }` → [`SendReceipt`](crate::SendReceipt)
//! - `history` `{ contact, limit?, before? }` → `[MessageView]`
//! - `read` `{ contact }` → `{ "marked": N }`
//! - `contact.receipts` `{ contact, on }` → [`ContactView`](crate::ContactView)
//! - `contact.remove` `{ contact, delete_history? }`, `contact.block`
//!   `{ contact, on }`, `contact.verify` `{ contact, on }` →
//!   [`ContactView`](crate::ContactView) (for `remove`: as it was)
//! - `group.create` `{ name }`, `group.invite` `{ group, contact, admin? }`,
//!   `group.join` / `group.leave` `{ group }`, `group.remove` /
//!   `group.promote` `{ group, member }` → [`GroupView`](crate::GroupView)
//! - `group.send` `{ group, text, wait?: "delivered", timeout_ms? }` →
//!   [`SendReceipt`](crate::SendReceipt) (`delivered`: every other joined
//!   member has it)
//! - `group.list` → `[GroupView]`; `group.members` `{ group }` →
//!   [`GroupMembersView`](crate::GroupMembersView)
//! - `group.history` `{ group, limit?, before? }` →
//!   `[GroupMessageView]`; `group.read` `{ group }` → `{ "marked": N }`
//! - `search` [`SearchParams`] → `[SearchHitView]`, best first
//! - `events.subscribe` → `{ "subscribed": true }`, then one
//!   `{"jsonrpc":"2.0","method":"event","params":EVENT}` line per event.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest request line the server reads.
pub const MAX_REQUEST_LEN: usize = 256 * 1024;
/// Error codes from the JSON-RPC 2.0 specification.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub jsonrpc: String,
    pub id: Value,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

impl Request {
    pub fn new(id: u64, method: &str, params: Value) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id: Value::from(id),
            method: method.into(),
            params,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub jsonrpc: String,
    pub id: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Response {
    pub fn ok(id: Value, result: Value) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id,
            result: Some(result),
            error: None,
        }
    }
    pub fn err(id: Value, code: i64, message: String) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id,
            result: None,
            error: Some(RpcError { code, message }),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ContactAddParams {
    pub name: String,
    pub card: String,
}

#[derive(Debug, Deserialize)]
pub struct SendParams {
    pub contact: String,
    /// The text, or a file's caption (may then be empty).
    #[serde(default)]
    pub text: String,
    /// An absolute path: send this file (its caption is `text`).
    #[serde(default)]
    pub file: Option<std::path::PathBuf>,
    pub wait: Option<crate::Status>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct FileParams {
    /// The file's id (its message's id).
    pub id: String,
    /// `file.get`: the folder to save it in (absolute).
    #[serde(default)]
    pub to: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize)]
pub struct HistoryParams {
    pub contact: String,
    pub limit: Option<usize>,
    pub before: Option<String>,
    /// The messages after this id instead (to catch up from it).
    pub after: Option<String>,
}

/// `search`: words, `"a phrase"`, `prefix*` (all required), narrowed to
/// one conversation (`contact` or `group`), an author (`from`: a contact's
/// name, or yours) and a time span (Unix ms, `until` excluded); `offset`
/// skips that many hits (pages), `limit` is at most 200 (20 unless told).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchParams {
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
/// A contact and an on/off switch (receipts, block, verify).
pub struct SwitchParams {
    pub contact: String,
    pub on: bool,
}

/// `push.set`: the endpoint the home relays wake this device at.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushParams {
    pub url: String,
}

/// `contact.disappear`: the conversation's timer in seconds (`null` or
/// absent: off).
#[derive(Debug, Deserialize)]
pub struct TimerParams {
    pub contact: String,
    #[serde(default)]
    pub secs: Option<u32>,
}

/// `group.disappear`: the group's timer in seconds (`null` or absent: off).
#[derive(Debug, Deserialize)]
pub struct GroupTimerParams {
    pub group: String,
    #[serde(default)]
    pub secs: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct RemoveParams {
    pub contact: String,
    #[serde(default)]
    pub delete_history: bool,
}

#[derive(Debug, Deserialize)]
pub struct PresenceParams {
    pub contact: String,
    #[serde(default)]
    pub refresh: bool,
}

/// `presence.share`: one contact, or everyone when `contact` is absent.
#[derive(Debug, Deserialize)]
pub struct SharePresenceParams {
    pub contact: Option<String>,
    pub on: bool,
}

#[derive(Debug, Deserialize)]
pub struct ContactParams {
    pub contact: String,
}

#[derive(Debug, Deserialize)]
pub struct GroupParams {
    pub group: String,
}

/// `group.mute`: a group (name or id) and the switch.
#[derive(Debug, Deserialize)]
pub struct GroupSwitchParams {
    pub group: String,
    pub on: bool,
}

#[derive(Debug, Deserialize)]
pub struct GroupCreateParams {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct GroupInviteParams {
    pub group: String,
    pub contact: String,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Deserialize)]
pub struct GroupMemberParams {
    pub group: String,
    pub member: String,
}

#[derive(Debug, Deserialize)]
pub struct GroupSendParams {
    pub group: String,
    /// The text, or a file's caption (may then be empty).
    #[serde(default)]
    pub text: String,
    /// An absolute path: send this file (its caption is `text`).
    #[serde(default)]
    pub file: Option<std::path::PathBuf>,
    pub wait: Option<crate::Status>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct GroupHistoryParams {
    pub group: String,
    pub limit: Option<usize>,
    pub before: Option<String>,
    /// The messages after this id instead (to catch up from it).
    pub after: Option<String>,
}

//! Errors a node operation can end in. Each message says what happened and
//! what to do; each has a stable code for API clients.

use std::path::PathBuf;

use hush_protocol::device::GroupCommandError;
use hush_protocol::{CardError, E2eeError, MAX_TEXT_LEN};
use thiserror::Error;

use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum NodeError {
    #[error(
        "no contact named {name:?}: see `hush contact list`, or add one with `hush contact add NAME CARD`"
    )]
    UnknownContact { name: String },
    #[error("{0}")]
    InvalidTimer(String),
    #[error("a contact named {name:?} already exists: pick another name")]
    DuplicateContact { name: String },
    #[error("this account is already a contact, named {existing:?}")]
    DuplicateAccount { existing: String },
    #[error("that card is your own: add the card of the person you want to talk to")]
    OwnCard,
    #[error(
        "that card belongs to another account than your contact {name:?}: to add someone new, use `hush contact add`"
    )]
    CardOfAnotherAccount { name: String },
    #[error(
        "that card's device list is older than the one you have for {name:?}: ask them for their current card (`hush id`)"
    )]
    OlderCard { name: String },
    #[error(
        "you blocked {name:?}: nothing goes to them or comes from them until you run `hush contact unblock {name}`"
    )]
    Blocked { name: String },
    /// A file could not be sent, fetched or found (the text says which
    /// and what to do).
    #[error("{0}")]
    File(String),
    #[error("invalid contact card: {0}")]
    InvalidCard(#[from] CardError),
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error(
        "the message is {len} bytes, over the limit of {MAX_TEXT_LEN}: split it into several messages"
    )]
    TextTooLong { len: usize },
    #[error("the message is empty: nothing to send")]
    EmptyText,
    #[error(
        "the outbox holds {len} undelivered messages, its limit: wait until some are delivered"
    )]
    OutboxFull { len: usize },
    #[error("{path} already holds a hush identity: use another --home, or keep using this one")]
    AlreadyInitialized { path: PathBuf },
    #[error("could not create the home folder {path}: {source}")]
    Home {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the device identity is invalid: {0}")]
    Identity(#[source] std::io::Error),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("stored encryption state: {0}")]
    Crypto(#[from] E2eeError),
    #[error("invalid listen address {addr:?}: {reason}")]
    InvalidListenAddress { addr: String, reason: String },
    #[error(
        "invalid relay address {addr:?}: {reason}; use the full address `hush relay run` prints, ending in /p2p/<relay id>"
    )]
    InvalidRelayAddress { addr: String, reason: String },
    #[error("the node stopped while handling the request; check its log and start it again")]
    Stopped,
    #[error(
        "--hidden needs a home relay (nothing could reach the node otherwise): add --relay ADDR, the address `hush relay run` prints"
    )]
    HiddenWithoutRelay,
    #[error("no group {name:?}: see `hush group list` (a group is named by its name or its id)")]
    UnknownGroup { name: String },
    #[error(
        "{count} groups are named {name:?}: name the one you mean by its id (`hush group list`)"
    )]
    AmbiguousGroup { name: String, count: usize },
    #[error("you are not in the group {group:?}: {hint}")]
    NotInGroup { group: String, hint: &'static str },
    #[error(
        "you were removed from the group {group:?}: an admin must invite you again before you can join"
    )]
    RemovedFromGroup { group: String },
    #[error(
        "{name:?} is not one of your contacts: only contacts can be invited; add their card first with `hush contact add`"
    )]
    InviteUnknownContact { name: String },
    #[error("no member {member:?} in the group {group:?}: see `hush group members {group}`")]
    UnknownMember { group: String, member: String },
    #[error("{action} in the group {group:?} was refused: {reason}")]
    GroupRefused {
        group: String,
        action: &'static str,
        reason: hush_protocol::GroupError,
    },
    #[error("you are in {count} groups, the limit: leave one first")]
    TooManyGroups { count: usize },
    /// A message the engine could not queue, for a reason the variants
    /// above do not name.
    #[error("{0}")]
    Send(#[source] hush_protocol::device::SendError),
    /// A contact the engine refused for a reason the variants above do not
    /// name.
    #[error("{0}")]
    Contact(#[source] hush_protocol::device::ContactError),
    /// A group command the engine refused in a way the variants above do
    /// not name.
    #[error("{0}")]
    Group(#[source] GroupCommandError),
    #[error(
        "the home folder {path} can be written by other users (mode {mode:o}): run `chmod 700 {path}` and start again"
    )]
    UnsafeHome { path: PathBuf, mode: u32 },
    #[error(transparent)]
    Link(#[from] hush_protocol::link::LinkError),
    #[error(transparent)]
    Key(hush_host::sealed_db::key_file::KeyFileError),
    #[error(transparent)]
    LinkCode(#[from] hush_protocol::link::LinkCodeError),
    #[error("linking failed: {0}")]
    LinkFailed(String),
    #[error(
        "this device does not hold the account key, which signs the device list: run this on the device that holds it (the first device, or one linked with --with-account-key)"
    )]
    NoAccountKey,
    #[error("the account already has {count} devices, the most it may have: revoke one first")]
    TooManyDevices { count: usize },
    #[error(
        "no device {device:?} on this account: see `hush device list` (a name, or the first 8+ characters of an id)"
    )]
    UnknownDevice { device: String },
    #[error("several devices match {device:?}: give more of the id (see `hush device list`)")]
    AmbiguousDevice { device: String },
    #[error("this is the device you are using: revoke it from another device of the account")]
    RevokeSelf,
    #[error(
        "this device was removed from its account (revoked on another of its devices): it can no longer send; link it again with `hush device join` on a new home if that was a mistake"
    )]
    Revoked,
    #[error("invalid push endpoint: {0}")]
    InvalidPushEndpoint(String),
    #[error("invalid search: {0}; words, \"a phrase\" and prefix* are understood")]
    Query(#[from] crate::search::QueryError),
    #[error("could not serve the local API at {path}: {source}")]
    Api {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl NodeError {
    /// A stable code for API clients (JSON-RPC `error.code`).
    pub const fn code(&self) -> i64 {
        match self {
            Self::UnknownContact { .. } => 1001,
            Self::DuplicateContact { .. } | Self::DuplicateAccount { .. } => 1002,
            Self::OwnCard => 1003,
            Self::InvalidCard(_) => 1004,
            Self::InvalidName { .. } => 1005,
            Self::TextTooLong { .. } | Self::EmptyText | Self::Send(_) => 1006,
            Self::OutboxFull { .. } => 1007,
            Self::InvalidTimer(_) => 1014,
            Self::AlreadyInitialized { .. } => 1008,
            Self::InvalidListenAddress { .. } => 1009,
            Self::Stopped => 1010,
            Self::InvalidRelayAddress { .. } | Self::HiddenWithoutRelay => 1011,
            Self::CardOfAnotherAccount { .. } | Self::OlderCard { .. } | Self::Contact(_) => 1012,
            Self::Blocked { .. } => 1013,
            Self::UnknownGroup { .. } | Self::AmbiguousGroup { .. } => 1020,
            Self::NotInGroup { .. } | Self::RemovedFromGroup { .. } => 1021,
            Self::InviteUnknownContact { .. } => 1022,
            Self::UnknownMember { .. } => 1023,
            Self::GroupRefused { .. } | Self::TooManyGroups { .. } | Self::Group(_) => 1024,
            Self::Link(_) | Self::LinkCode(_) | Self::LinkFailed(_) => 1030,
            Self::NoAccountKey => 1031,
            Self::TooManyDevices { .. } => 1032,
            Self::UnknownDevice { .. } | Self::AmbiguousDevice { .. } | Self::RevokeSelf => 1033,
            Self::Revoked => 1034,
            Self::File(_) => 1040,
            Self::Key(_) => 1050,
            Self::Query(_) => 1060,
            Self::InvalidPushEndpoint(_) => 1070,
            Self::Home { .. }
            | Self::Identity(_)
            | Self::Store(_)
            | Self::Crypto(_)
            | Self::Api { .. }
            | Self::UnsafeHome { .. } => 1100,
        }
    }
}

impl From<GroupCommandError> for NodeError {
    fn from(e: GroupCommandError) -> Self {
        match e {
            GroupCommandError::UnknownGroup { name } => Self::UnknownGroup { name },
            GroupCommandError::AmbiguousGroup { name, count } => {
                Self::AmbiguousGroup { name, count }
            }
            GroupCommandError::UnknownMember { group, member } => {
                Self::UnknownMember { group, member }
            }
            GroupCommandError::TooManyGroups { count } => Self::TooManyGroups { count },
            GroupCommandError::Removed { group } => Self::RemovedFromGroup { group },
            GroupCommandError::NotIn { group, hint } => Self::NotInGroup { group, hint },
            GroupCommandError::Refused {
                group,
                action,
                reason,
            } => Self::GroupRefused {
                group,
                action,
                reason,
            },
            GroupCommandError::TextTooLong { len } => Self::TextTooLong { len },
            GroupCommandError::EmptyText => Self::EmptyText,
            other => Self::Group(other),
        }
    }
}

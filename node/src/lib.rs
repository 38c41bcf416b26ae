//! # hush-node
//!
//! A hush node: one device's libp2p swarm, its redb store, its Olm sessions
//! and outbox, and the local JSON-RPC API the CLI, the TUI and bots use.
//!
//! ```text
//!            ┌──────────── hush-node ─────────────┐
//!  CLI/bots ─┤ api (Unix socket) ─▶ Node handle    │
//!            │                        │ Command    │
//!            │                        ▼            │
//!  peers ◀───┤ Swarm ◀──────────▶ EventLoop ──Op──▶ Store (redb)
//!            │ /hush/direct/1      │   ▲            │
//!            │ /hush/keys/1        │   └ commit done│
//!            │                     └─Event─▶ subscribers
//!            └─────────────────────────────────────┘
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod addresses;
mod api;
mod client;
mod courier;
pub mod discovery;
mod error;
mod event_loop;
pub mod files;
mod gate;
mod group_gossip;
mod home;
mod identity;
pub mod journal;
mod link;
pub mod member_floor;
mod network;
mod node;
pub mod notify;
mod outbox;
mod records;
pub mod rpc;
pub mod search;
pub mod search_bench;
mod store;
mod view;

pub use api::{ApiServer, serve};
pub use client::{Client, ClientError};
pub use error::NodeError;
pub use home::Home;
pub use identity::{account_key, create_private_file, init, offline_card, validate_name};
pub use link::{JoinOptions, Joined, join};
pub use network::{
    DIRECT_PROTOCOL, DIRECT_PROTOCOL_ORDERED, FrameCodec, HISTORY_PROTOCOL, KAD_PROTOCOL,
    KEYS_PROTOCOL, MAILBOX_PROTOCOL, PRESENCE_PROTOCOL, gossipsub_behaviour, peer_in,
};
pub use node::{
    DEFAULT_AUTO_FETCH_MIB, DEFAULT_GROUP_ROTATE_AFTER, DEFAULT_GROUP_ROTATE_MESSAGES,
    DEFAULT_KEEP_SENT_DAYS, DEFAULT_MAX_FILE_MIB, DEFAULT_PRESENCE_GRACE, DEFAULT_PRESENCE_TTL,
    DEFAULT_RELAY_FAILOVER, MAX_HISTORY_LIMIT, MAX_HOME_RELAYS, MuteTarget, Node, NodeConfig,
    now_ms,
};
pub use records::{FileState, Status};
pub use store::{Page, StoreError};
pub use view::{
    ContactView, ConversationView, DeviceView, Event, FileView, GroupMembersView, GroupMessageView,
    GroupView, LinkCodeView, LinkedView, MemberView, MessageView, NodeStatus, PresenceView,
    Reachability, RelayView, SearchHitView, SendReceipt, rfc3339, timer_text,
};

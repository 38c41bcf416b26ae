//! # hush-host
//!
//! What the two hosts, the node (`hush-node`) and the relay (`hush-relay`),
//! share, and nothing that decides: the length-limited libp2p frame codec,
//! hush's protocol names as libp2p [`StreamProtocol`]s, the gossipsub
//! configuration both run, peer id helpers, the clock an engine is fed
//! from, files created private, the write-ahead log the stores put in
//! front of redb, the liveness probe every connection runs, [`Woken`]
//! (a behaviour and its connection handlers polled only when woken) and
//! [`Listed`] (their inbound protocols listed only when they may have
//! changed).
//!
//! ```text
//!  hush-protocol (decides, no IO) ◀── hush-host (glue) ◀── hush-node  (device host)
//!                                                     ◀── hush-relay (relay host)
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod blobs;
mod clock;
mod codec;
mod files;
mod gossip;
pub mod listed;
pub mod liveness;
mod peers;
pub mod sealed_db;
mod swarm;
pub mod wal;
pub mod woken;
mod wrapped;

pub use clock::{HostClock, now_ms};
pub use codec::{DirectCodec, DirectRequest, DirectResponse, FrameCodec};
pub use files::{create_private_dir, create_private_file};
pub use gossip::gossipsub_behaviour;
pub use listed::Listed;
pub use peers::{device_id, device_keypair, device_of_peer, peer_id, peer_in};
pub use swarm::{tcp_swarm, tcp_transport};
pub use woken::Woken;

/// A dial (TCP or QUIC connect, then the Noise and Yamux handshakes) gives
/// up after this long. Short on purpose: a connect sent while the network
/// was cut waits in the kernel's SYN backoff (1, 3, 7, 15 s …), so after the
/// network heals a fresh dial gets through sooner than an old one would.
pub const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

use libp2p::StreamProtocol;

pub const DIRECT_PROTOCOL: StreamProtocol = StreamProtocol::new(hush_protocol::DIRECT_PROTOCOL);
pub const DIRECT_PROTOCOL_ORDERED: StreamProtocol =
    StreamProtocol::new(hush_protocol::DIRECT_PROTOCOL_ORDERED);
pub const KEYS_PROTOCOL: StreamProtocol = StreamProtocol::new(hush_protocol::KEYS_PROTOCOL);
pub const MAILBOX_PROTOCOL: StreamProtocol = StreamProtocol::new(hush_protocol::MAILBOX_PROTOCOL);
pub const PRESENCE_PROTOCOL: StreamProtocol = StreamProtocol::new(hush_protocol::PRESENCE_PROTOCOL);
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new(hush_protocol::KAD_PROTOCOL);
pub const HISTORY_PROTOCOL: StreamProtocol = StreamProtocol::new(hush_protocol::HISTORY_PROTOCOL);
pub const LINK_PROTOCOL: StreamProtocol = StreamProtocol::new(hush_protocol::LINK_PROTOCOL);
pub use hush_protocol::IDENTIFY_PROTOCOL;

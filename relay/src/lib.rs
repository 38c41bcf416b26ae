//! # hush-relay
//!
//! The relay (`hush relay run`): mailboxes that keep sealed mail for
//! offline devices, one-time-key hosting for first contact, a Kademlia DHT
//! server, a circuit relay v2 server, and Prometheus metrics.
//!
//! ```text
//!  nodes ──/hush/mailbox/1──▶ Relay (one task: swarm, usage, batch)
//!                                 │  Op batch           ▲ commit done
//!                                 ▼                     │
//!                              Store (redb, one durable txn per batch)
//! ```
//!
//! A relay stores only what it cannot read: envelopes sealed to the
//! recipient device's mailbox key, addressed to a hash of the device id,
//! and encrypted files (blobs) for offline recipients, named by their hash
//! (`blobs`, on raw streams beside the loop). It wakes a registered device
//! that is offline when mail arrives for it with a content-free POST to
//! the device's push endpoint (`push`).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod blobs;
pub mod config;
mod history;
mod metrics;
mod push;
mod service;
mod store;

pub use blobs::FileLimits;
pub use config::{Config, ConfigError, DEFAULT_RETENTION_SECS, Limits, PushRules, Quotas};
pub use metrics::Metrics;
pub use service::{KAD_PROTOCOL, Relay, RelayError, Started};

//! # hush-relay
//!
//! The relay (`hush relay run`): mailbox store-and-forward for offline
//! devices, one-time-key hosting, DHT server and circuit relay. It is built
//! in the relays issue; this crate holds its place in the workspace so the
//! layout of `../shared/DESIGN.md` is already in effect. It has no code yet
//! on purpose: nothing here is wired into the node or the CLI.

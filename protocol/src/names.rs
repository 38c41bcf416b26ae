//! The names of hush's libp2p protocols. Every one starts with `/hush/`;
//! the number is the protocol's version (see `docs/protocol.md`).

/// 1:1 envelopes between devices: `EnvelopeBatch` → `AckBatch`.
pub const DIRECT_PROTOCOL: &str = "/hush/direct/1";
/// The same with a `BatchOrder` before each batch: two batches in flight,
/// handled in order. Offered first; `/1` is the fallback.
pub const DIRECT_PROTOCOL_ORDERED: &str = "/hush/direct/2";
/// A fresh one-time key from a device: `KeyRequest` → `KeyBundle`.
pub const KEYS_PROTOCOL: &str = "/hush/keys/1";
/// Mailboxes at relays: `MailboxRequest` → `MailboxResponse`.
pub const MAILBOX_PROTOCOL: &str = "/hush/mailbox/1";
/// Presence pushed to contacts: `PresencePush` → `PresencePush`.
pub const PRESENCE_PROTOCOL: &str = "/hush/presence/1";
/// Kademlia, among relays (servers) and nodes (clients).
pub const KAD_PROTOCOL: &str = "/hush/kad/1";
/// Group history at relays: `HistoryRequest` → `HistoryResponse`.
pub const HISTORY_PROTOCOL: &str = "/hush/group/1";
/// Linking a new device to an account: Noise `XXpsk3` frames (see
/// `link`), each request answered by the next frame.
pub const LINK_PROTOCOL: &str = "/hush/link/1";
/// Gossipsub's protocol id prefix (group messages).
pub const GOSSIP_PROTOCOL_PREFIX: &str = "/hush/gossip";
/// Identify.
pub const IDENTIFY_PROTOCOL: &str = "/hush/id/1";

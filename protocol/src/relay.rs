//! The relay, sans IO: mailboxes, owner challenges, quotas and retention,
//! hosted keys ([`RelayEngine`]); the topic history rules ([`TopicBook`]);
//! which DHT values are kept ([`dht_record_lifetime`]); relays' signed
//! announcements and how nodes pick home relays among them ([`RelayRecord`],
//! [`choose_home_relays`]).
//!
//! ```text
//!  host: request bytes ─handle_request──▶ RelayEngine ──poll_commit──▶ host: one txn
//!        commit done ───handle_committed─▶     │  ▲
//!        tick ──────────handle_timeout───▶     │  └── MailLookup (reads)
//!                                             └─poll_reply / poll_event──▶ host
//! ```

mod announce;
mod dht;
mod engine;
mod memory;
mod quota;
mod secrets;
mod storage;
mod topics;

#[cfg(test)]
mod tests;

pub use announce::{
    Announcement, Candidate, MAX_RELAY_ADDRS, RELAY_RECORD_REFRESH_MS, RELAY_RECORD_TTL_MS,
    RelayRecord, choose_home_relays, operator_group, rank,
};
pub use dht::{
    DHT_PUTS_PER_IP_MINUTE, DHT_PUTS_PER_PEER_MINUTE, MAX_DHT_RECORDS, RateLimit,
    dht_record_lifetime,
};
pub use engine::{
    EXPIRE_BATCH, FETCH_BYTES, KEY_CLAIMS_PER_MINUTE, MAX_PENDING_BYTES, MAX_PUSH_MAILBOXES,
    MAX_PUSH_QUEUE, MAX_REMEMBERED_SET_KEYS, MAX_WAITERS, PUSH_SETS_PER_IP_MINUTE, PushRules,
    RelayEngine, RelayEvent, RelayRules, RelayStats, SET_KEYS_PER_IP_MINUTE, is_public,
};
pub use memory::MemoryMailStore;
pub use quota::Quotas;
pub use secrets::CHALLENGE_LIFETIME_SECS;
pub use storage::{
    Applied, DepositDigest, HostedKey, MailLookup, MailPage, OneTimeKey, RelayWrite, Removal,
    Revoked, StoreFault, StoredMail,
};
pub use topics::{
    DEFAULT_TOPICS_PER_ADDRESS, HISTORY_PAGE_BYTES, HistoryAction, MAX_TOPIC_BYTES,
    MAX_TOPIC_MESSAGES, MAX_TOPICS, Publication, TopicBook,
};

//! The device engine's parts that have moved out of the node so far: each
//! owns its state, takes the time ([`Now`](crate::Now)) and what happened,
//! and says what follows. The node's event loop composes them and does the
//! IO; the rest of its decisions move here next (see docs/architecture.md,
//! "Engines and hosts").

mod clock;
mod contacts;
mod engine;
mod groups;
mod inbox;
mod keys;
mod lookup;
mod mailbox;
mod order;
mod outbox;
mod presence;
mod records;
mod routes;
mod seen;
mod sharing;
#[cfg(test)]
mod testkit;

pub use clock::{Ctx, MAX_CLOCK_SKEW_MS, MessageClock};
pub use contacts::{
    CardReach, Contact, ContactBook, ContactRecord, ContactTrust, keys_fingerprint,
};
pub use engine::{
    BatchAnswer, ContactError, ConversationTimer, DeviceAfter, DeviceEffect, DeviceEngine,
    DeviceNotice, DeviceSelf, DeviceWrite, FULL_RELAY_RETRY_MS, MailPage, Received, Removed,
    RightIssuer, SendError, StatedRelays,
};
pub use groups::{
    Acceptance, Group, GroupAfter, GroupBook, GroupCommandError, GroupConfig, GroupEffect,
    GroupNotice, GroupSelf, GroupWrite, MAX_EPOCH_KEYS, MAX_GROUPS, RESEND_AFTER_MS, Severity,
    Standing,
};
pub use inbox::{Arrival, Inbox, Opened, Source};
pub use keys::{KEY_REQUEST_INTERVAL_MS, KeyDecision, KeyService};
pub use lookup::DeviceLookup;
pub use mailbox::{
    CHALLENGE_REUSE_MS, DrainStep, FALLBACK_ROTATE_MS, HomeMailbox, KEYS_LOW, PageHandled,
    PageStart, RELAY_RETRY_MAX_MS, STRANGER_GRACE_MS, fallback_due, relay_backoff_ms,
};
pub use order::{HOLD_MS, InOrder, MAX_HELD, MAX_HELD_PER_PEER};
pub use outbox::{
    Entry, EntryState, FIRST_RETRY_MS, MAX_OUTBOX_ENTRIES, MAX_RETRY_MS, ORDERED_WINDOW, Outbox,
    OutboxKey, OutboxKind, OutboxRecord, backoff_ms,
};
pub use presence::{PresenceTiming, PresenceWatch, Sighting};
pub use records::{
    FileRecord, FileState, GroupRecord, InboundRecord, KeptRecord, MessageKind, MessageRecord,
    PendingRecord, PublishKeyRecord, Status, UnconfirmedRecord,
};
pub use routes::{Routes, UNREACHABLE_FOR_MS};
pub use seen::SeenKey;
pub use sharing::{
    Accepted, MAX_HEARTBEAT_MS, OwnPresenceRecord, PUSH_INTERVAL_MS, PresenceBook, PresenceEffect,
    PresenceRecord, PresenceSelf, PresenceSummary, PresenceWrite, Refusal, World,
};

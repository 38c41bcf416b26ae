//! # hush-protocol
//!
//! The pure, sans-IO core of hush: identifiers, keys, wire types and their
//! codec, and the Olm wrapper. Nothing here touches a socket, a file or the
//! clock: callers pass time and randomness in, and get bytes and state back.
//!
//! ```text
//!   ContactCard ──(verified)──▶ DeviceList ──▶ DeviceKeys ──┐
//!                                                           ▼
//!   Payload ──to_padded──▶ OlmDevice::encrypt ──▶ Envelope ──▶ bytes (Wire)
//!   bytes ──Wire──▶ Envelope ──▶ OlmDevice::decrypt ──from_padded──▶ Payload
//! ```
//!
//! ```
//! use hush_protocol::{Hlc, MessageId};
//! let mut clock = Hlc::default();
//! let a = clock.next(1_700_000_000_000, 7);
//! let b = clock.next(1_699_999_999_000, 3); // the wall clock stepped back
//! assert!(b > a);
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod blob;
mod card;
mod codec;
pub mod device;
mod e2ee;
mod envelope;
mod group;
mod hlc;
mod ids;
mod keys;
pub mod link;
mod mailbox;
mod megolm;
mod names;
mod payload;
mod presence;
mod receipt;
pub mod relay;
pub mod text;
mod time;

pub use card::{
    CARD_PREFIX, CardError, ContactCard, MAX_ADDRESS_LEN, MAX_CARD_ADDRESSES, MAX_CARD_TEXT_LEN,
    MAX_NAME_LEN,
};
pub use codec::{DecodeError, Reader, Wire, Writer};
pub use e2ee::{E2eeError, MAX_SESSIONS_PER_DEVICE, OlmChanges, OlmDevice};
pub use envelope::{
    AckBatch, BatchOrder, DirectAck, Envelope, EnvelopeBatch, KeyBundle, KeyRequest,
    MAX_ACK_BATCH_LEN, MAX_BATCH_ENVELOPES, MAX_BATCH_LEN, MAX_CIPHERTEXT_LEN, MAX_CONTROL_LEN,
    MAX_ENVELOPE_LEN, OlmKind, RejectReason,
};
pub use group::{
    Action, CHANNEL_SESSION, ControlKind, DEFAULT_MEMBER_LIMIT, Epoch, GroupControl, GroupError,
    GroupMessage, GroupOp, GroupState, HistoryRequest, HistoryResponse, MAX_CONTROL_OPS,
    MAX_GROUP_MESSAGE_LEN, MAX_GROUP_NAME_LEN, MAX_GROUP_OPS, MAX_HEADS, MAX_HISTORY_FRAME,
    MAX_HISTORY_ITEMS, MAX_IDLE_OPS_PER_AUTHOR, MAX_MEMBER_LIMIT, MAX_OP_LEN, MAX_TOPIC_LEN,
    MAX_WANTS, Member, MemberStatus, OpHash, OpSet, PublishKey, Role, TOPIC_PREFIX, TopicKey,
    room_key_claim,
};
pub use hlc::Hlc;
pub use ids::{AccountId, ConversationId, DeviceId, GroupId, MessageId, ParseIdError};
pub use keys::{
    AccountKey, DeviceKeys, DeviceList, MAX_DEVICES, Proof, SignatureError, safety_number,
    verify_account_signature,
};
pub use mailbox::{
    Auth, BatchItem, BatchRequest, DepositItem, DepositKey, DepositResult, DepositRight, DropError,
    GENERATION_MS, KeySet, MAX_BATCH_KEYS, MAX_FETCH_WAIT_MS, MAX_MAILBOX_FRAME, MAX_MAILBOX_ITEMS,
    MAX_PUSH_ENDPOINT_LEN, MAX_REVOKED_HOLDERS, MAX_SEALED_LEN, MAX_UPLOAD_KEYS, MailboxGrant,
    MailboxId, MailboxRequest, MailboxResponse, MailboxSecret, OwnerRequest, PairwiseKey,
    PushTarget, PushUrl, Refusal, SealError, SealedEnvelope, generation_at, revoked_devices,
};
pub use megolm::{MegolmError, MegolmInbound, MegolmOutbound, SessionId, megolm_session_id};
pub use names::{
    DIRECT_PROTOCOL, DIRECT_PROTOCOL_ORDERED, GOSSIP_PROTOCOL_PREFIX, HISTORY_PROTOCOL,
    IDENTIFY_PROTOCOL, KAD_PROTOCOL, KEYS_PROTOCOL, LINK_PROTOCOL, MAILBOX_PROTOCOL,
    PRESENCE_PROTOCOL,
};
pub use payload::{
    Body, FileOffer, MAX_RECEIPT_IDS, MAX_TEXT_LEN, MAX_TIMER_SECS, Payload, ReceiptKind, SyncItem,
};
pub use presence::{
    HomeRelays, MAX_PRESENCE_ADDRESS_LEN, MAX_PRESENCE_ADDRESSES, MAX_PRESENCE_RECORD_LEN,
    MAX_PRESENCE_SKEW_MS, MAX_PRESENCE_TTL_MS, MAX_STATED_RELAYS, Presence, PresenceError,
    PresenceKey, PresencePush, PresenceState, SealedPresence,
};
pub use time::Now;

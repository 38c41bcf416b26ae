//! What the group engine asks of its host: writes for the current batch,
//! what follows the batch's commit, and what to do on the network.

use super::Standing;
use super::receive::Acceptance;
use crate::device::{
    GroupRecord, InboundRecord, MessageRecord, PendingRecord, PublishKeyRecord, SeenKey,
    UnconfirmedRecord,
};
use crate::{
    AccountId, ConversationId, DeviceId, GroupId, MessageId, OpHash, Payload, ReceiptKind,
    SessionId,
};

/// What the engine hands the host to store with the current batch.
#[derive(Debug, Clone)]
pub enum GroupWrite {
    /// A verified membership op (its hash, its encoding).
    Op(GroupId, [u8; 32], Vec<u8>),
    /// The group's record, with our outbound session pickled.
    Record(GroupId, GroupRecord),
    Inbound(SessionId, InboundRecord),
    DropInbound(SessionId),
    /// A message kept until its session's key arrives: (session, digest).
    Pending(SessionId, [u8; 32], PendingRecord),
    DropPending(SessionId, [u8; 32]),
    /// One of our messages, kept until a member confirms it
    /// ([`UnconfirmedRecord`]): written with the message itself.
    Unconfirmed(MessageId, UnconfirmedRecord),
    /// It was confirmed, sent again for the last time, or its group left.
    DropUnconfirmed(MessageId),
    /// One of our messages went out: its status is raised to this.
    Status(ConversationId, MessageId, crate::device::Status),
    /// A message's digest, stored (under its [`SeenKey`]): the same bytes
    /// are not read twice.
    Seen(SeenKey, u64),
    /// Inserted unless one with the same id is stored.
    Message(ConversationId, MessageRecord),
    /// The file a message carries (stored beside it).
    File(ConversationId, MessageId, crate::device::FileRecord),
    /// A member's receipt for one of our messages; only ever raised.
    Receipt(ConversationId, MessageId, AccountId, ReceiptKind),
    MarkRead(ConversationId, Vec<MessageId>),
    /// A publish key of one of the group's epochs (and our history cursors
    /// on its topic).
    PublishKey(GroupId, OpHash, PublishKeyRecord),
    DropPublishKey(GroupId, OpHash),
}

/// What the host tells the user or does once the batch holding the
/// effects before it has committed.
#[derive(Debug, Clone)]
pub enum GroupAfter {
    /// A message and the Megolm ratchet that made it are stored: publish it
    /// on the topic, and (`watch`: one of our messages, not the channel's)
    /// hand it to [`GroupBook::watch_published`]. Only once it is stored:
    /// a message whose ratchet step was lost must never go out, or its
    /// index would be used twice.
    Publish {
        group: GroupId,
        topic: String,
        bytes: Vec<u8>,
        watch: Option<MessageId>,
    },
    /// A message waiting for its key is on disk now (give it to
    /// [`GroupBook::pending_stored`], committed or not).
    PendingStored(SessionId, [u8; 32]),
    /// A message read is stored (give it to [`GroupBook::settled`],
    /// committed or not).
    Settled([u8; 32]),
    /// Receipts for these messages of ours are stored.
    ReceiptCounts(GroupId, Vec<MessageId>),
    Notice(Box<GroupNotice>),
}

/// What the user hears of.
#[derive(Debug, Clone)]
pub enum GroupNotice {
    Invited {
        group: GroupId,
        name: String,
        by: AccountId,
    },
    Changed {
        group: GroupId,
        name: String,
        version: u64,
        standing: Standing,
    },
    Message {
        group: GroupId,
        name: String,
        message: MessageRecord,
        /// The file it carries, if it is a file message.
        file: Option<crate::device::FileRecord>,
    },
    /// One of our messages went out: a peer on the topic took it.
    Sent {
        group: GroupId,
        name: String,
        id: MessageId,
    },
}

/// What follows from a call, in order.
#[derive(Debug)]
pub enum GroupEffect<P, M> {
    Write(GroupWrite),
    /// A control message for every device of `to`, over Olm (through the
    /// outbox, in this batch).
    Send {
        to: AccountId,
        payload: Payload,
    },
    /// The group members changed: the devices of [`GroupBook::peers`] are
    /// the ones group control is accepted from and sent to.
    PeersChanged,
    /// Subscribe to one of the group's topics and ask the home relays to
    /// keep its history ([`GroupBook::history_cursor`]).
    Subscribe {
        group: GroupId,
        topic: String,
    },
    Unsubscribe {
        topic: String,
    },
    /// Dial these member devices unless connected.
    Dial(Vec<DeviceId>),
    /// The relay has more history of the topic after `after`: fetch it.
    Fetch {
        relay: P,
        group: GroupId,
        topic: String,
        after: u64,
    },
    /// Messages of the group were missed on the topic
    /// ([`gaps`](self::gaps)): read the home relays' history of `topic`
    /// from our cursors.
    CatchUp {
        group: GroupId,
        topic: String,
    },
    /// Publish what no peer took earlier, what waited for a key, or a
    /// message of ours no member confirmed (the host publishes it even if
    /// gossip remembers publishing it: [`RESEND_AFTER_MS`]). `watch`: one
    /// of our messages; if no peer takes it, hand it back with it
    /// ([`GroupBook::unpublished`]).
    Publish {
        group: GroupId,
        topic: String,
        bytes: Vec<u8>,
        watch: Option<MessageId>,
    },
    /// One of our messages that `to`, a joined member, has not confirmed
    /// while others did ([`tails`](super::tails)): if one of `devices` is
    /// connected now, hand it over ([`GroupBook::hand`]); otherwise drop
    /// this (its relays' history has it).
    Hand {
        to: AccountId,
        devices: Vec<DeviceId>,
        group: GroupId,
        bytes: Vec<u8>,
    },
    /// The validation result of a topic message held until now.
    Validate {
        message: M,
        peer: P,
        acceptance: Acceptance,
    },
    After(GroupAfter),
    /// Something worth a line in the log (never a secret).
    Note(GroupId, Severity, &'static str),
}

/// How much a [`GroupEffect::Note`] matters to whoever reads the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Expected now and then.
    Debug,
    /// Worth knowing.
    Info,
    /// Something a peer did wrong, or a limit reached.
    Warn,
}

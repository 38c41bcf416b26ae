//! What the node shows its clients (API results and events), in JSON.

use hush_protocol::device::keys_fingerprint;
use hush_protocol::{AccountId, ContactCard, MessageId, safety_number};
use serde::{Deserialize, Serialize};

use crate::records::{ContactRecord, ContactTrust, FileState, MessageKind, MessageRecord, Status};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactView {
    pub name: String,
    pub account: String,
    pub devices: usize,
    /// The contact's devices (their ids, hex), as its card lists them: what
    /// changed when `keys_changed` says so.
    #[serde(default)]
    pub device_ids: Vec<String>,
    /// Compare with the contact (both sides see the same digits).
    pub safety_number: String,
    pub send_receipts: bool,
    /// Nothing from the contact is accepted and nothing goes to it.
    #[serde(default)]
    pub blocked: bool,
    /// The user compared the safety number and marked the keys verified.
    #[serde(default)]
    pub verified: bool,
    /// Verified, but the contact's keys changed since: compare again.
    #[serde(default)]
    pub keys_changed: bool,
    /// Messages of the conversation disappear this many seconds after they
    /// were sent (`hush contact set NAME --disappear`); absent: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disappear_secs: Option<u32>,
}

impl ContactView {
    /// A contact as the API shows it: its record, what the user decided
    /// about it, and its conversation's disappearing timer.
    pub(crate) fn new(
        me: &AccountId,
        c: &ContactRecord,
        trust: ContactTrust,
        disappear_secs: Option<u32>,
    ) -> Self {
        let card = c.card.parse::<ContactCard>().ok();
        let keys_changed = match (&card, trust.verified) {
            (Some(card), Some(verified)) => keys_fingerprint(card) != verified,
            _ => false,
        };
        Self {
            name: c.name.clone(),
            account: c.account.to_string(),
            devices: card
                .as_ref()
                .map_or(0, |card| card.device_list.devices.len()),
            device_ids: card
                .iter()
                .flat_map(|card| card.device_list.devices.iter())
                .map(|d| d.device_id.to_string())
                .collect(),
            safety_number: safety_number(me, &c.account),
            send_receipts: c.send_receipts,
            blocked: trust.blocked,
            verified: trust.verified.is_some(),
            keys_changed,
            disappear_secs,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    /// The author's name: the contact's, or your own.
    pub from: String,
    pub outgoing: bool,
    pub text: String,
    pub status: Status,
    /// When the author sent it, UTC (RFC 3339).
    pub sent_at: String,
    pub sent_at_ms: u64,
    /// The file it carries (`text` is then its caption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileView>,
    /// `message`, or `timer`: the author set the conversation's
    /// disappearing timer to `timer_secs` (absent: off); `text` is empty.
    #[serde(default = "message_kind")]
    pub kind: String,
    /// A message: it disappears this many seconds after it was sent. A
    /// `timer` entry: the timer it set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_secs: Option<u32>,
    /// When every device deletes it, UTC (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disappears_at: Option<String>,
}

fn message_kind() -> String {
    "message".to_owned()
}

impl MessageView {
    pub fn new(record: &MessageRecord, from: String) -> Self {
        let (kind, timer_secs) = match record.kind {
            MessageKind::Message => ("message", record.timer_secs),
            MessageKind::Timer(secs) => ("timer", secs),
        };
        Self {
            id: record.id.to_string(),
            from,
            outgoing: record.outgoing,
            text: record.text.clone(),
            status: record.status,
            sent_at: rfc3339(record.sent_at_ms),
            sent_at_ms: record.sent_at_ms,
            file: None,
            kind: kind.to_owned(),
            timer_secs,
            disappears_at: record.expires_at_ms().map(rfc3339),
        }
    }

    pub fn with_file(mut self, file: Option<FileView>) -> Self {
        self.file = file;
        self
    }
}

/// A file a message carries, and where its transfer stands here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileView {
    /// The message's id (what `hush file get` and `cancel` take).
    pub id: String,
    pub name: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Its media type, empty if unknown.
    pub mime: String,
    pub state: FileState,
    /// Bytes of the file fetched so far (its size once complete).
    pub done: u64,
    /// Where it is: saved (received, complete) or sent from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why the last fetch failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub outgoing: bool,
    /// The contact (or group) of the conversation.
    pub conversation: String,
    /// Who sent it: the contact's name, or yours.
    pub peer: String,
    /// It came with a small preview image.
    #[serde(default)]
    pub thumbnail: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendReceipt {
    pub id: String,
    pub status: Status,
    /// True when `--wait` gave up before reaching the wanted status.
    #[serde(default)]
    pub timed_out: bool,
    /// Why the message could not be left at the recipient's relays, if a
    /// relay refused it (e.g. "bob's relay is full").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The contact is verified but its keys changed since you verified
    /// them: compare the safety number again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keys_changed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub account: String,
    pub device: String,
    pub peer_id: String,
    pub listen_addresses: Vec<String>,
    pub connected_peers: usize,
    pub contacts: usize,
    pub outbox: usize,
    /// This device's home relays.
    pub relays: Vec<RelayView>,
    /// Why there are none although `--bootstrap` was given: what the
    /// search through the DHT at start found wanting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_search: Option<String>,
    /// The host of the push endpoint the home relays wake this device at
    /// while it is offline (`hush push set`), if one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<String>,
    /// How others can reach this device.
    pub reachability: Reachability,
    /// Devices on the account's list (this one included, unless revoked).
    #[serde(default)]
    pub devices: usize,
    /// Whether this device holds the account key.
    #[serde(default)]
    pub account_key: bool,
    /// This device was taken off its account's list: it sends nothing.
    #[serde(default)]
    pub revoked: bool,
    /// Copies of what this device sent or read that the account's other
    /// devices have not stored yet (0: fully synced).
    #[serde(default)]
    pub sync_waiting: usize,
    /// File bytes (ciphertext) this node served to others since it started.
    #[serde(default)]
    pub files_served_bytes: u64,
    /// How the database is protected at rest: `passphrase` (sealed, its key
    /// wrapped by a passphrase) or `key file` (sealed under `hush.key` in
    /// the home: not protected by a passphrase).
    #[serde(default)]
    pub at_rest: String,
}

/// How this device can be reached, as far as it knows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reachability {
    /// `public` (AutoNAT saw a dial-back succeed), `private` (behind NAT or
    /// a firewall) or `unknown` (not probed yet).
    pub nat: String,
    /// The address AutoNAT confirmed, when public.
    pub public_address: Option<String>,
    /// Relay circuit addresses this device holds a reservation on: how
    /// contacts reach it from outside when it is behind NAT.
    pub relayed_via: Vec<String>,
    /// Contacts connected directly (including after a hole punch).
    pub direct: Vec<String>,
    /// Contacts connected only through a relay circuit.
    pub relayed: Vec<String>,
    /// Contacts found on the local network by mDNS.
    pub lan: Vec<String>,
    /// Contacts a hole punch (DCUtR) succeeded with since start.
    pub hole_punched: Vec<String>,
    /// Whether presence is shared at all (the global switch).
    pub sharing_presence: bool,
}

/// A contact's presence as this device sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceView {
    pub contact: String,
    /// `online` or `offline`.
    pub state: String,
    /// When the contact was last known online (now, while online), UTC
    /// RFC 3339; null if never seen or not shared with you.
    pub last_seen: Option<String>,
    pub last_seen_ms: Option<u64>,
    /// Devices of the contact online now.
    pub devices_online: usize,
    /// Whether you share your presence with this contact.
    pub you_share: bool,
}

/// One home relay as the node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayView {
    pub address: String,
    /// How it became a home relay: `pinned` (given with `--relay`) or
    /// `dht` (found through the DHT, closest to our mailbox); `retired`:
    /// replaced after it stopped answering, still read in case it comes
    /// back with mail.
    pub chosen: String,
    pub connected: bool,
    /// For how long it has answered nothing, in seconds (`None`: it
    /// answers, or was not asked yet).
    #[serde(default)]
    pub unanswered_secs: Option<u64>,
    /// One-time keys the relay still holds for this device, when known.
    pub keys_left: Option<u32>,
    /// The last thing that went wrong talking to it, if anything did.
    pub last_error: Option<String>,
    /// Our push registration there, while a push endpoint is set:
    /// `registering`, `registered`, `refused: …` or `not registered yet: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<String>,
}

/// A group as this device sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupView {
    pub id: String,
    pub name: String,
    /// Where you stand: `admin`, `member`, `invited`, `removed` or `left`.
    pub you: String,
    /// Joined members, you included.
    pub members: usize,
    /// Invitations not yet answered.
    pub invited: usize,
    pub member_limit: u32,
    /// How many membership changes took effect (equal on every member once
    /// all changes have spread).
    pub version: u64,
    /// Members' messages disappear this many seconds after they were sent
    /// (an admin's `hush group set GROUP --disappear`); absent: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disappear_secs: Option<u32>,
}

/// One member of a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberView {
    /// Your contact name for them, or the name their card suggests.
    pub name: String,
    pub account: String,
    /// `admin` or `member`.
    pub role: String,
    /// `joined` or `invited`.
    pub status: String,
    /// Their device ids.
    pub devices: Vec<String>,
    pub contact: bool,
    pub you: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupMembersView {
    pub group: GroupView,
    pub members: Vec<MemberView>,
}

/// One group message, with its receipts (for your own messages).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupMessageView {
    #[serde(flatten)]
    pub message: MessageView,
    /// Members (other than you) who have it, and who read it: counts, then
    /// names. Empty for messages of others.
    pub delivered: usize,
    pub read: usize,
    pub delivered_to: Vec<String>,
    pub read_by: Vec<String>,
}

/// A message that matched a search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchHitView {
    pub id: String,
    /// `contact` or `group` (`gone`: a conversation no longer listed).
    pub kind: String,
    /// The contact's or the group's name.
    pub conversation: String,
    /// The author's name.
    pub from: String,
    pub outgoing: bool,
    pub text: String,
    pub sent_at: String,
    pub sent_at_ms: u64,
    /// BM25: higher is better; comparable within one search only.
    pub score: f32,
    /// Part of the text (and the file's name) around the first match.
    pub snippet: String,
    /// Byte ranges of `snippet` that matched.
    pub marks: Vec<(usize, usize)>,
}

/// One conversation, as `conversations` lists them (the newest first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationView {
    /// `contact` or `group`.
    pub kind: String,
    /// The contact's name, or the group's.
    pub name: String,
    /// The group's id (none for a contact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Messages not read yet.
    pub unread: usize,
    /// No notification for its messages on this device.
    pub muted: bool,
    /// Its newest message, if it has any.
    pub last: Option<MessageView>,
}

/// Something that happened, pushed to `events` subscribers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new message arrived (stored durably).
    Message {
        contact: String,
        message: MessageView,
        /// The contact is verified but its keys changed since: compare
        /// the safety number again (`hush contact verify`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        keys_changed: bool,
    },
    /// A message's status advanced.
    Status {
        contact: String,
        id: String,
        status: Status,
    },
    ContactAdded {
        contact: String,
    },
    /// The contact was removed (`hush contact remove`).
    ContactRemoved {
        contact: String,
    },
    /// The contact was blocked or unblocked.
    ContactBlocked {
        contact: String,
        blocked: bool,
    },
    /// The contact was verified (or the mark taken away).
    ContactVerified {
        contact: String,
        verified: bool,
    },
    /// A verified contact's card now lists keys the user has not verified:
    /// compare the safety number again before trusting it.
    KeysChanged {
        contact: String,
    },
    /// A contact came online or went offline.
    Presence {
        contact: String,
        state: String,
        last_seen: Option<String>,
    },
    /// Someone invited you into a group: `hush group join GROUP` (or leave).
    GroupInvite {
        group: String,
        group_id: String,
        from: String,
    },
    /// A group message arrived. It may be sent a moment before the
    /// message is committed; every read of this node (history, search,
    /// the conversation list) made after it finds the message.
    GroupMessage {
        group: String,
        group_id: String,
        message: MessageView,
    },
    /// The group's membership changed (`version` is the new state's).
    GroupChanged {
        group: String,
        group_id: String,
        version: u64,
        /// Where you stand now (see [`GroupView::you`]).
        you: String,
    },
    /// One of your group messages went out: a peer on the group's topic (a
    /// member or a relay) took it (`sent`; it was `pending` until then).
    GroupStatus {
        group: String,
        id: String,
        status: Status,
    },
    /// A member's receipt raised the counts of one of your group messages.
    GroupReceipt {
        group: String,
        id: String,
        delivered: usize,
        read: usize,
    },
    /// A new device joined the account (`hush device link`).
    DeviceLinked {
        device: String,
        name: String,
    },
    /// A device was taken off the account's list: by this device
    /// (`hush device revoke`), or this device itself (`name` is "this
    /// device"), learnt from another device of the account.
    DeviceRevoked {
        device: String,
        name: String,
    },
    /// A file transfer moved on: bytes fetched (at most a few times a
    /// second per file), or its state changed (complete, failed…).
    File {
        file: FileView,
    },
    /// A file being sent is being sealed (before its message goes): `step`
    /// is `compressing` or `encrypting`, `done` of `total` bytes (at most
    /// four times a second, and at the end of each step).
    Sealing {
        path: String,
        step: String,
        done: u64,
        total: u64,
    },
    /// Messages of a conversation (a contact's name or a group's)
    /// disappeared: their timer ran out and this device deleted them.
    Disappeared {
        conversation: String,
        ids: Vec<String>,
    },
    /// A relay of the recipient refused a message; it stays queued and is
    /// tried again, but the user should know.
    Undeliverable {
        contact: String,
        id: String,
        relay: String,
        reason: String,
    },
    /// Events before this one may have been missed (the node restarted, or
    /// the cursor is older than what it keeps): catch up with
    /// `conversations` and `history --after`.
    Gap {
        reason: String,
    },
}

impl Event {
    pub fn status_of(&self, id: &MessageId) -> Option<Status> {
        match self {
            Self::Status {
                id: event_id,
                status,
                ..
            } if *event_id == id.to_string() => Some(*status),
            _ => None,
        }
    }
}

/// A link code `hush device link` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkCodeView {
    pub code: String,
    pub expires_at: String,
    /// The new device receives the account key too.
    pub with_account_key: bool,
}

/// A device linked to this account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkedView {
    pub device: String,
    pub name: String,
    pub contacts: u32,
    pub messages: u32,
}

/// One of the account's devices (`hush device list`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceView {
    pub name: String,
    pub device: String,
    pub this_device: bool,
    pub linked_at: Option<String>,
    /// `online` while this device is connected to it, else when it last
    /// was since this node started (RFC 3339), else `null`.
    #[serde(default)]
    pub last_seen: Option<String>,
    /// Whether this device holds the account key (known for this device only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_key: Option<bool>,
}

/// A disappearing timer as people say it: `30 seconds`, `1 hour`,
/// `1 day 12 hours` (the two largest units), `off` for none.
pub fn timer_text(secs: Option<u32>) -> String {
    let Some(secs) = secs else {
        return "off".to_owned();
    };
    const UNITS: [(u32, &str); 5] = [
        (7 * 86_400, "week"),
        (86_400, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut left = secs;
    let mut parts = Vec::new();
    for (size, name) in UNITS {
        let n = left / size;
        if n > 0 && parts.len() < 2 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
            left -= n * size;
        }
    }
    parts.join(" ")
}

/// Milliseconds since the epoch as an RFC 3339 UTC timestamp.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timers_read_as_people_say_them() {
        use super::timer_text;
        assert_eq!(timer_text(None), "off");
        assert_eq!(timer_text(Some(30)), "30 seconds");
        assert_eq!(timer_text(Some(3600)), "1 hour");
        assert_eq!(timer_text(Some(36 * 3600)), "1 day 12 hours");
        assert_eq!(timer_text(Some(14 * 86_400 + 61)), "2 weeks 1 minute");
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(1_795_430_096_789),
            "2026-11-23T10:34:56.789Z"
        );
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}

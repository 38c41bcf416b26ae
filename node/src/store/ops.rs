//! The ops a write batch is made of, and how one batch is applied to
//! redb in one transaction.

use hush_host::wal::Position;
use hush_protocol::{AccountId, ConversationId, DepositRight, DeviceId, GroupId, MessageId, Wire};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::files::file_root;
use super::search::Indexer;
use super::{
    CLOCK_KEY, CONTACT_TRUST, CONTACTS, DEPOSIT_RIGHTS, DEVICE_RELAYS, DRAINED_KEY, EXPIRING,
    FALLBACK_KEY, FALLBACK_MADE_KEY, FILE_IDS, FILE_ROOTS, FILES, GROUP_KEYS, GROUP_OPS,
    GROUP_PENDING, GROUP_RECEIPTS, GROUP_UNCONFIRMED, GROUPS, KEPT_GROUP_MESSAGES_KEY, LISTEN_KEY,
    MAILBOX_GRANTS, MAX_PENDING_UPLOADS, MEGOLM_IN, MESSAGES, META, MUTED, OLM_ACCOUNT_KEY, OUTBOX,
    OWN_PRESENCE_KEY, OutboxKey, PENDING_UPLOADS_KEY, PRESENCE, PUSH_ENDPOINT_KEY,
    RELAYS_FOUND_KEY, RELAYS_KEY, RETIRED_RELAYS_KEY, SEEN, SEEN_BY_CHAIN, SESSIONS, StoreError,
    TIMERS, UNREAD, WAL_KEY, decode, encode,
};
use crate::records::{
    ContactRecord, ContactTrust, FileRecord, GroupRecord, InboundRecord, KeptRecord, MessageKind,
    MessageRecord, OutboxRecord, OwnPresenceRecord, PendingRecord, PresenceRecord,
    PublishKeyRecord, Status, UnconfirmedRecord,
};

/// One change to apply in a write batch. Batches are also the
/// write-ahead log's records (postcard), so an op must give the same result
/// applied again over a state that already holds it.
#[derive(Debug, Serialize, Deserialize)]
pub enum Op {
    PutOlmAccount(String),
    PutSessions([u8; 32], Vec<String>),
    PutContact(ContactRecord),
    /// A message as format 3 logged it: only replayed from a log an older
    /// hush left (applied as [`Op::PutMessage`]).
    PutMessageV3(ConversationId, MessageRecordV3),
    /// Raises a message's status; never lowers it.
    RaiseStatus(ConversationId, MessageId, Status),
    /// Marks every unread message of a conversation read.
    MarkRead(ConversationId, Vec<MessageId>),
    PutOutbox(OutboxKey, OutboxRecord),
    DeleteOutbox(OutboxKey),
    /// A digest under the digest alone: only from a write-ahead log
    /// written before [`Op::PutSeenKey`].
    PutSeen([u8; 32], u64),
    /// A contact device's deposit right for us.
    PutRight(DeviceId, #[serde(with = "right_bytes")] DepositRight),
    PutClock(MessageId),
    PutListenAddresses(Vec<String>),
    PutRelays(Vec<String>),
    /// The signed fallback key bundle handed to the home relays, and when
    /// it was made (Unix ms).
    PutFallback(#[serde(with = "serde_bytes")] Vec<u8>, u64),
    /// Our presence key and sharing switch.
    PutOwnPresence(OwnPresenceRecord),
    PutPresence(AccountId, PresenceRecord),
    PutGroup(GroupId, GroupRecord),
    PutMembershipChange(GroupId, [u8; 32], #[serde(with = "serde_bytes")] Vec<u8>),
    PutInbound([u8; 32], InboundRecord),
    DeleteInbound([u8; 32]),
    /// A member's receipt for one of our group messages; only ever raised.
    PutGroupReceipt(ConversationId, MessageId, AccountId, u8),
    PutPending([u8; 32], [u8; 32], PendingRecord),
    DeletePending([u8; 32], [u8; 32]),
    /// A group epoch's publish key: (group, epoch op).
    PutPublishKey(GroupId, [u8; 32], PublishKeyRecord),
    DeletePublishKey(GroupId, [u8; 32]),
    /// The contact named so is gone (its trust, rights and presence are
    /// separate ops).
    DeleteContact(String),
    /// Every message of a conversation (and its unread marks).
    DeleteConversation(ConversationId),
    DeleteRight(DeviceId),
    /// What the user decided about a contact; the default deletes the row.
    PutTrust(AccountId, ContactTrust),
    DeletePresence(AccountId),
    /// The file a message carries (replaces the one stored).
    PutFile(ConversationId, MessageId, FileRecord),
    /// Inserts a message unless one with the same id is already stored
    /// (with its place in the expiry order if it disappears).
    PutMessage(ConversationId, MessageRecord),
    /// The disappearing timer of the 1:1 conversation with an account.
    PutTimer(AccountId, Option<u32>, MessageId),
    /// Messages of a conversation, with all that hangs on them: unread
    /// marks, files, receipts, expiry rows, outbox entries, search entries.
    DeleteMessages(ConversationId, Vec<MessageId>),
    /// A contact device's pairwise mailbox for us (its `MailboxGrant` wire
    /// form; removed with `DeleteRight`).
    PutGrant(DeviceId, #[serde(with = "serde_bytes")] Vec<u8>),
    /// When every home relay was last read to the end (Unix ms).
    PutDrained(u64),
    /// Whether the home relays were found through the DHT (else given).
    PutRelaysFound(bool),
    /// A contact device's newest statement of its home relays (its
    /// `HomeRelays` wire form; removed with `DeleteRight`).
    PutDeviceRelays(DeviceId, #[serde(with = "serde_bytes")] Vec<u8>),
    /// Home relays replaced because they stopped answering, still read.
    PutRetiredRelays(Vec<String>),
    /// The user muted (or unmuted) a conversation.
    PutMuted(ConversationId, bool),
    /// Where the home relays wake this device while it is offline
    /// (`None`: nowhere).
    PutPushEndpoint(Option<String>),
    /// A received message's digest under its `SeenKey` (prefix, digest).
    PutSeenKey([u8; 16], [u8; 32], u64),
    /// Uploads of files to our relays not finished yet: (message id, relay
    /// peer id as bytes), all of them (the newest
    /// [`MAX_PENDING_UPLOADS`] kept); none removes the entry.
    PutPendingUploads(Vec<(u128, Vec<u8>)>),
    /// One of our group messages, kept until a member confirms it.
    PutUnconfirmed(MessageId, UnconfirmedRecord),
    DeleteUnconfirmed(MessageId),
    /// The group messages kept for members that miss them, all of them
    /// (oldest first), written when the node stops; none removes the
    /// entry.
    PutKeptGroupMessages(Vec<KeptRecord>),
}

/// A message record as formats 1 to 3 stored it (no timer, no kind).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRecordV3 {
    pub id: MessageId,
    pub from: AccountId,
    pub outgoing: bool,
    pub text: String,
    pub status: Status,
    pub sent_at_ms: u64,
    pub stored_at_ms: u64,
}

impl From<MessageRecordV3> for MessageRecord {
    fn from(m: MessageRecordV3) -> Self {
        Self {
            id: m.id,
            from: m.from,
            outgoing: m.outgoing,
            text: m.text,
            status: m.status,
            sent_at_ms: m.sent_at_ms,
            stored_at_ms: m.stored_at_ms,
            timer_secs: None,
            kind: MessageKind::Message,
        }
    }
}

/// redb tables a write opens as its ops need them: each open table costs
/// a lookup and, at commit, a root update.
type Slot<'t, K, V> = Option<redb::Table<'t, K, V>>;
type Bytes = &'static [u8];
type Id = &'static [u8; 32];

#[derive(Default)]
struct Tables<'t> {
    meta: Slot<'t, &'static str, Bytes>,
    contacts: Slot<'t, &'static str, Bytes>,
    sessions: Slot<'t, Id, Bytes>,
    messages: Slot<'t, (Id, u128), Bytes>,
    unread: Slot<'t, (Id, u128), ()>,
    outbox: Slot<'t, (u128, Id), Bytes>,
    seen: Slot<'t, Id, u64>,
    seen_by_chain: Slot<'t, (&'static [u8; 16], Id), u64>,
    presence: Slot<'t, Id, Bytes>,
    groups: Slot<'t, Id, Bytes>,
    group_ops: Slot<'t, (Id, Id), Bytes>,
    inbound: Slot<'t, Id, Bytes>,
    receipts: Slot<'t, (Id, u128, Id), u8>,
    pending: Slot<'t, (Id, Id), Bytes>,
    unconfirmed: Slot<'t, u128, Bytes>,
    publish_keys: Slot<'t, (Id, Id), Bytes>,
    rights: Slot<'t, Id, Bytes>,
    grants: Slot<'t, Id, Bytes>,
    device_relays: Slot<'t, Id, Bytes>,
    muted: Slot<'t, Id, ()>,
    trust: Slot<'t, Id, Bytes>,
    files: Slot<'t, (Id, u128), Bytes>,
    file_index: FileIndex<'t>,
    timers: Slot<'t, Id, Bytes>,
    expiring: Slot<'t, (u64, Id, u128), ()>,
}

/// The two indexes of `files`: by message id, and by blob root.
#[derive(Default)]
struct FileIndex<'t> {
    ids: Slot<'t, u128, Id>,
    roots: Slot<'t, (Id, u128), Id>,
}

impl<'t> FileIndex<'t> {
    /// The file of message `id` is kept under `conv`.
    fn add(
        &mut self,
        txn: &'t redb::WriteTransaction,
        conv: &[u8; 32],
        id: u128,
        file: &FileRecord,
    ) -> Result<(), StoreError> {
        table(txn, &mut self.ids, FILE_IDS)?.insert(id, conv)?;
        if let Some(root) = file_root(file) {
            table(txn, &mut self.roots, FILE_ROOTS)?.insert((&root, id), conv)?;
        }
        Ok(())
    }

    /// The file of message `id` under `conv` is gone (entries naming
    /// another conversation stay).
    fn forget(
        &mut self,
        txn: &'t redb::WriteTransaction,
        conv: &[u8; 32],
        id: u128,
        file: &FileRecord,
    ) -> Result<(), StoreError> {
        let ids = table(txn, &mut self.ids, FILE_IDS)?;
        if ids.get(id)?.is_some_and(|c| c.value() == conv) {
            ids.remove(id)?;
        }
        if let Some(root) = file_root(file) {
            let roots = table(txn, &mut self.roots, FILE_ROOTS)?;
            if roots.get((&root, id))?.is_some_and(|c| c.value() == conv) {
                roots.remove((&root, id))?;
            }
        }
        Ok(())
    }
}

/// A 1:1 conversation's disappearing timer as stored.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TimerRecord {
    pub secs: Option<u32>,
    pub set_by: MessageId,
}

fn put_message<'t>(
    txn: &'t redb::WriteTransaction,
    t: &mut Tables<'t>,
    index: &mut Indexer,
    index_messages: bool,
    conv: ConversationId,
    message: MessageRecord,
) -> Result<(), StoreError> {
    let key = (&conv.0, message.id.0);
    let messages = table(txn, &mut t.messages, MESSAGES)?;
    if messages.get(key)?.is_some() {
        return Ok(());
    }
    messages.insert(key, encode(&message).as_slice())?;
    if index_messages && message.kind == MessageKind::Message {
        index.add(conv, &message);
    }
    if !message.outgoing && message.status < Status::Read {
        table(txn, &mut t.unread, UNREAD)?.insert(key, ())?;
    }
    if let Some(at) = message.expires_at_ms() {
        table(txn, &mut t.expiring, EXPIRING)?.insert((at, &conv.0, message.id.0), ())?;
    }
    Ok(())
}

/// Deletes messages of one conversation and everything kept for them.
fn delete_messages<'t>(
    txn: &'t redb::WriteTransaction,
    t: &mut Tables<'t>,
    index: &mut Indexer,
    conv: ConversationId,
    ids: &[MessageId],
) -> Result<(), StoreError> {
    let c = &conv.0;
    let mut gone = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(message) = table(txn, &mut t.messages, MESSAGES)?.remove((c, id.0))? else {
            continue;
        };
        let message: MessageRecord = decode("message", message.value())?;
        let file = match table(txn, &mut t.files, FILES)?.remove((c, id.0))? {
            Some(f) => Some(decode::<FileRecord>("file", f.value())?),
            None => None,
        };
        if let Some(file) = &file {
            t.file_index.forget(txn, c, id.0, file)?;
        }
        table(txn, &mut t.unread, UNREAD)?.remove((c, id.0))?;
        if let Some(at) = message.expires_at_ms() {
            table(txn, &mut t.expiring, EXPIRING)?.remove((at, c, id.0))?;
        }
        let receipts = table(txn, &mut t.receipts, GROUP_RECEIPTS)?;
        let members: Vec<[u8; 32]> = receipts
            .range((c, id.0, &[0; 32])..=(c, id.0, &[0xff; 32]))?
            .map(|row| row.map(|(k, _)| *k.value().2))
            .collect::<Result<_, _>>()?;
        for member in &members {
            receipts.remove((c, id.0, member))?;
        }
        let outbox = table(txn, &mut t.outbox, OUTBOX)?;
        let devices: Vec<[u8; 32]> = outbox
            .range((id.0, &[0; 32])..=(id.0, &[0xff; 32]))?
            .map(|row| row.map(|(k, _)| *k.value().1))
            .collect::<Result<_, _>>()?;
        for device in &devices {
            outbox.remove((id.0, device))?;
        }
        gone.push((message, file));
    }
    if !gone.is_empty() {
        // The index opens the tables it needs itself.
        t.meta = None;
        index.remove_messages(txn, &conv, &gone)?;
    }
    Ok(())
}

fn table<'a, 't, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &'t redb::WriteTransaction,
    slot: &'a mut Option<redb::Table<'t, K, V>>,
    definition: TableDefinition<K, V>,
) -> Result<&'a mut redb::Table<'t, K, V>, StoreError> {
    if slot.is_none() {
        *slot = Some(txn.open_table(definition)?);
    }
    slot.as_mut().ok_or_else(|| {
        StoreError::Table(redb::TableError::TableDoesNotExist(definition.to_string()))
    })
}

/// Applies `ops` in one transaction, recording `position` (the log record
/// that carries them) beside them.
pub(super) fn write(
    db: &Database,
    ops: Vec<Op>,
    position: Option<Position>,
    durability: redb::Durability,
    index_messages: bool,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    // Refused only while persistent savepoints change (we make none); the
    // commit is then simply durable.
    let _ = txn.set_durability(durability);
    let mut index = Indexer::default();
    {
        let mut t = Tables::default();
        if let Some(position) = position {
            table(&txn, &mut t.meta, META)?.insert(WAL_KEY, position.to_bytes().as_slice())?;
        }
        for op in ops {
            match op {
                Op::PutOlmAccount(pickle) => {
                    table(&txn, &mut t.meta, META)?.insert(OLM_ACCOUNT_KEY, pickle.as_bytes())?;
                }
                Op::PutSessions(peer, pickles) => {
                    let sessions = table(&txn, &mut t.sessions, SESSIONS)?;
                    if pickles.is_empty() {
                        sessions.remove(&peer)?;
                    } else {
                        sessions.insert(&peer, encode(&pickles).as_slice())?;
                    }
                }
                Op::PutContact(contact) => {
                    table(&txn, &mut t.contacts, CONTACTS)?
                        .insert(contact.name.as_str(), encode(&contact).as_slice())?;
                }
                Op::PutMessageV3(conv, message) => {
                    put_message(
                        &txn,
                        &mut t,
                        &mut index,
                        index_messages,
                        conv,
                        message.into(),
                    )?;
                }
                Op::PutMessage(conv, message) => {
                    put_message(&txn, &mut t, &mut index, index_messages, conv, message)?;
                }
                Op::PutTimer(account, secs, set_by) => {
                    let timer = TimerRecord { secs, set_by };
                    table(&txn, &mut t.timers, TIMERS)?
                        .insert(&account.0, encode(&timer).as_slice())?;
                }
                Op::DeleteMessages(conv, ids) => {
                    delete_messages(&txn, &mut t, &mut index, conv, &ids)?;
                }
                Op::RaiseStatus(conv, id, status) => {
                    raise_status(table(&txn, &mut t.messages, MESSAGES)?, conv, id, status)?;
                }
                Op::MarkRead(conv, ids) => {
                    for id in ids {
                        table(&txn, &mut t.unread, UNREAD)?.remove((&conv.0, id.0))?;
                        let messages = table(&txn, &mut t.messages, MESSAGES)?;
                        raise_status(messages, conv, id, Status::Read)?;
                    }
                }
                Op::PutOutbox((id, device), record) => {
                    table(&txn, &mut t.outbox, OUTBOX)?
                        .insert((id.0, &device.0), encode(&record).as_slice())?;
                }
                Op::DeleteOutbox((id, device)) => {
                    table(&txn, &mut t.outbox, OUTBOX)?.remove((id.0, &device.0))?;
                }
                Op::PutSeen(digest, at) => {
                    table(&txn, &mut t.seen, SEEN)?.insert(&digest, at)?;
                }
                Op::PutSeenKey(prefix, digest, at) => {
                    table(&txn, &mut t.seen_by_chain, SEEN_BY_CHAIN)?
                        .insert((&prefix, &digest), at)?;
                }
                Op::PutRight(device, right) => {
                    table(&txn, &mut t.rights, DEPOSIT_RIGHTS)?
                        .insert(&device.0, right.to_bytes().as_slice())?;
                }
                Op::PutClock(id) => {
                    table(&txn, &mut t.meta, META)?
                        .insert(CLOCK_KEY, id.0.to_be_bytes().as_slice())?;
                }
                Op::PutRelays(addrs) => {
                    table(&txn, &mut t.meta, META)?
                        .insert(RELAYS_KEY, encode(&addrs).as_slice())?;
                }
                Op::PutFallback(bundle, made_ms) => {
                    let meta = table(&txn, &mut t.meta, META)?;
                    meta.insert(FALLBACK_KEY, bundle.as_slice())?;
                    meta.insert(FALLBACK_MADE_KEY, made_ms.to_be_bytes().as_slice())?;
                }
                Op::PutListenAddresses(addrs) => {
                    table(&txn, &mut t.meta, META)?
                        .insert(LISTEN_KEY, encode(&addrs).as_slice())?;
                }
                Op::PutOwnPresence(record) => {
                    table(&txn, &mut t.meta, META)?
                        .insert(OWN_PRESENCE_KEY, encode(&record).as_slice())?;
                }
                Op::PutPresence(account, record) => {
                    table(&txn, &mut t.presence, PRESENCE)?
                        .insert(&account.0, encode(&record).as_slice())?;
                }
                Op::PutGroup(id, record) => {
                    table(&txn, &mut t.groups, GROUPS)?
                        .insert(&id.0, encode(&record).as_slice())?;
                }
                Op::PutMembershipChange(id, hash, bytes) => {
                    table(&txn, &mut t.group_ops, GROUP_OPS)?
                        .insert((&id.0, &hash), bytes.as_slice())?;
                }
                Op::PutInbound(session, record) => {
                    table(&txn, &mut t.inbound, MEGOLM_IN)?
                        .insert(&session, encode(&record).as_slice())?;
                }
                Op::DeleteInbound(session) => {
                    table(&txn, &mut t.inbound, MEGOLM_IN)?.remove(&session)?;
                }
                Op::PutGroupReceipt(conv, id, account, kind) => {
                    let receipts = table(&txn, &mut t.receipts, GROUP_RECEIPTS)?;
                    let key = (&conv.0, id.0, &account.0);
                    let current = receipts.get(key)?.map(|v| v.value());
                    if current.is_none_or(|c| c < kind) {
                        receipts.insert(key, kind)?;
                    }
                }
                Op::PutPending(session, digest, record) => {
                    table(&txn, &mut t.pending, GROUP_PENDING)?
                        .insert((&session, &digest), encode(&record).as_slice())?;
                }
                Op::DeletePending(session, digest) => {
                    table(&txn, &mut t.pending, GROUP_PENDING)?.remove((&session, &digest))?;
                }
                Op::PutUnconfirmed(id, record) => {
                    table(&txn, &mut t.unconfirmed, GROUP_UNCONFIRMED)?
                        .insert(id.0, encode(&record).as_slice())?;
                }
                Op::DeleteUnconfirmed(id) => {
                    table(&txn, &mut t.unconfirmed, GROUP_UNCONFIRMED)?.remove(id.0)?;
                }
                Op::PutPublishKey(group, epoch, record) => {
                    table(&txn, &mut t.publish_keys, GROUP_KEYS)?
                        .insert((&group.0, &epoch), encode(&record).as_slice())?;
                }
                Op::DeletePublishKey(group, epoch) => {
                    table(&txn, &mut t.publish_keys, GROUP_KEYS)?.remove((&group.0, &epoch))?;
                }
                Op::DeleteContact(name) => {
                    table(&txn, &mut t.contacts, CONTACTS)?.remove(name.as_str())?;
                }
                Op::DeleteConversation(conv) => {
                    let c = &conv.0;
                    let messages = table(&txn, &mut t.messages, MESSAGES)?;
                    let gone = messages
                        .range((c, 0)..=(c, u128::MAX))?
                        .map(|row| decode::<MessageRecord>("message", row?.1.value()))
                        .collect::<Result<Vec<MessageRecord>, StoreError>>()?;
                    let ids: Vec<u128> = gone.iter().map(|m| m.id.0).collect();
                    for id in &ids {
                        messages.remove((c, *id))?;
                    }
                    // The index opens the tables it needs itself.
                    t.meta = None;
                    let files = table(&txn, &mut t.files, FILES)?;
                    let gone = gone
                        .into_iter()
                        .map(|m| match files.get((c, m.id.0))? {
                            Some(f) => Ok((m, Some(decode::<FileRecord>("file", f.value())?))),
                            None => Ok((m, None)),
                        })
                        .collect::<Result<Vec<(MessageRecord, Option<FileRecord>)>, StoreError>>(
                        )?;
                    index.remove_messages(&txn, &conv, &gone)?;
                    let expiring = table(&txn, &mut t.expiring, EXPIRING)?;
                    for (message, _) in &gone {
                        if let Some(at) = message.expires_at_ms() {
                            expiring.remove((at, c, message.id.0))?;
                        }
                    }
                    let unread = table(&txn, &mut t.unread, UNREAD)?;
                    for id in &ids {
                        unread.remove((c, *id))?;
                    }
                    for (message, file) in &gone {
                        if let Some(file) = file {
                            table(&txn, &mut t.files, FILES)?.remove((c, message.id.0))?;
                            t.file_index.forget(&txn, c, message.id.0, file)?;
                        }
                    }
                }
                Op::PutFile(conv, id, file) => {
                    index.file(conv, id, &file);
                    table(&txn, &mut t.files, FILES)?
                        .insert((&conv.0, id.0), encode(&file).as_slice())?;
                    t.file_index.add(&txn, &conv.0, id.0, &file)?;
                }
                Op::DeleteRight(device) => {
                    table(&txn, &mut t.rights, DEPOSIT_RIGHTS)?.remove(&device.0)?;
                    table(&txn, &mut t.grants, MAILBOX_GRANTS)?.remove(&device.0)?;
                    table(&txn, &mut t.device_relays, DEVICE_RELAYS)?.remove(&device.0)?;
                }
                Op::PutDeviceRelays(device, stated) => {
                    table(&txn, &mut t.device_relays, DEVICE_RELAYS)?
                        .insert(&device.0, stated.as_slice())?;
                }
                Op::PutMuted(conversation, on) => {
                    let table = table(&txn, &mut t.muted, MUTED)?;
                    if on {
                        table.insert(&conversation.0, ())?;
                    } else {
                        table.remove(&conversation.0)?;
                    }
                }
                Op::PutPendingUploads(mut uploads) => {
                    let meta = table(&txn, &mut t.meta, META)?;
                    let extra = uploads.len().saturating_sub(MAX_PENDING_UPLOADS);
                    uploads.drain(..extra);
                    if uploads.is_empty() {
                        meta.remove(PENDING_UPLOADS_KEY)?;
                    } else {
                        meta.insert(PENDING_UPLOADS_KEY, encode(&uploads).as_slice())?;
                    }
                }
                Op::PutKeptGroupMessages(kept) => {
                    let meta = table(&txn, &mut t.meta, META)?;
                    if kept.is_empty() {
                        meta.remove(KEPT_GROUP_MESSAGES_KEY)?;
                    } else {
                        meta.insert(KEPT_GROUP_MESSAGES_KEY, encode(&kept).as_slice())?;
                    }
                }
                Op::PutPushEndpoint(endpoint) => {
                    let meta = table(&txn, &mut t.meta, META)?;
                    match endpoint {
                        Some(url) => meta.insert(PUSH_ENDPOINT_KEY, encode(&url).as_slice())?,
                        None => meta.remove(PUSH_ENDPOINT_KEY)?,
                    };
                }
                Op::PutRetiredRelays(addrs) => {
                    let meta = table(&txn, &mut t.meta, META)?;
                    if addrs.is_empty() {
                        meta.remove(RETIRED_RELAYS_KEY)?;
                    } else {
                        meta.insert(RETIRED_RELAYS_KEY, encode(&addrs).as_slice())?;
                    }
                }
                Op::PutGrant(device, grant) => {
                    table(&txn, &mut t.grants, MAILBOX_GRANTS)?
                        .insert(&device.0, grant.as_slice())?;
                }
                Op::PutRelaysFound(found) => {
                    let meta = table(&txn, &mut t.meta, META)?;
                    if found {
                        meta.insert(RELAYS_FOUND_KEY, b"dht".as_slice())?;
                    } else {
                        meta.remove(RELAYS_FOUND_KEY)?;
                    }
                }
                Op::PutDrained(at_ms) => {
                    table(&txn, &mut t.meta, META)?
                        .insert(DRAINED_KEY, at_ms.to_be_bytes().as_slice())?;
                }
                Op::PutTrust(account, trust) => {
                    let rows = table(&txn, &mut t.trust, CONTACT_TRUST)?;
                    if trust.is_default() {
                        rows.remove(&account.0)?;
                    } else {
                        rows.insert(&account.0, encode(&trust).as_slice())?;
                    }
                }
                Op::DeletePresence(account) => {
                    table(&txn, &mut t.presence, PRESENCE)?.remove(&account.0)?;
                }
            }
        }
    }
    index.flush(&txn)?;
    txn.commit()?;
    Ok(())
}

/// Deposit rights travel in the log in their wire form.
mod right_bytes {
    use hush_protocol::{DepositRight, Wire};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(right: &DepositRight, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&right.to_bytes())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DepositRight, D::Error> {
        let bytes: Vec<u8> = serde::Deserialize::deserialize(d)?;
        DepositRight::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

fn raise_status(
    messages: &mut redb::Table<'_, (Id, u128), &[u8]>,
    conv: ConversationId,
    id: MessageId,
    status: Status,
) -> Result<(), StoreError> {
    let key = (&conv.0, id.0);
    let current = match messages.get(key)? {
        Some(v) => decode::<MessageRecord>("message", v.value())?,
        None => return Ok(()),
    };
    if current.status < status {
        let updated = MessageRecord { status, ..current };
        messages.insert(key, encode(&updated).as_slice())?;
    }
    Ok(())
}

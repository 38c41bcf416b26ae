//! The node's redb database: identity, contacts, Olm state, conversations,
//! the outbox and dedupe records.
//!
//! Values are postcard-encoded records (see `records.rs`). Reads open their
//! own read transaction. Writes are [`Op`]s gathered into
//! one batch by the event loop and applied by [`Store::apply`] in a single
//! transaction, so the state for one message (its record, the Olm
//! session that encrypted it, its outbox entry) commits together or not at all.
//!
//! Durability comes from a write-ahead log beside the database
//! (`hush.wal`, see [`hush_host::wal`]): each batch is committed to redb
//! without `fsync` and appended to the log, whose one sequential sync is
//! four or five times cheaper than a durable redb commit. When the log
//! fills (and when the store closes) redb is made durable and the log starts
//! over; on open, the records beyond redb's durable state are applied again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hush_host::wal::{Position, Wal};
use hush_protocol::{AccountId, ConversationId, DeviceId, GroupId, MessageId, ReceiptKind};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::records::{
    ContactRecord, ContactTrust, GroupRecord, IdentityRecord, IdentityRecordV1, InboundRecord,
    KeptRecord, MessageRecord, OutboxRecord, OwnPresenceRecord, PendingRecord, PresenceRecord,
    PublishKeyRecord, UnconfirmedRecord,
};

use self::beside::Beside;
use self::files::{FILE_IDS, FILE_ROOTS, FILES};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CONTACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contacts");
const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("olm_sessions");
const MESSAGES: TableDefinition<(&[u8; 32], u128), &[u8]> = TableDefinition::new("messages");
const UNREAD: TableDefinition<(&[u8; 32], u128), ()> = TableDefinition::new("unread");
const OUTBOX: TableDefinition<(u128, &[u8; 32]), &[u8]> = TableDefinition::new("outbox");
/// Digests of messages received before `SEEN_BY_CHAIN` (read, pruned, no
/// longer written but by a write-ahead log from before it).
const SEEN: TableDefinition<&[u8; 32], u64> = TableDefinition::new("seen_envelopes");
/// (chain and place, digest) → when: received messages' digests, a
/// chain's side by side (see `SeenKey`).
const SEEN_BY_CHAIN: TableDefinition<(&[u8; 16], &[u8; 32]), u64> =
    TableDefinition::new("seen_by_chain");
/// Per contact account: what we share with them and what they share with us.
const PRESENCE: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("presence");
/// Per group: our Megolm sending session and relay cursors.
const GROUPS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("groups");
/// (group, op hash) → the signed membership op, as on the wire.
const GROUP_OPS: TableDefinition<(&[u8; 32], &[u8; 32]), &[u8]> = TableDefinition::new("group_ops");
/// Megolm session id → the inbound session and whose it is.
const MEGOLM_IN: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("megolm_inbound");
/// (conversation, message id, member account) → the receipt kind we got.
const GROUP_RECEIPTS: TableDefinition<(&[u8; 32], u128, &[u8; 32]), u8> =
    TableDefinition::new("group_receipts");
/// (Megolm session id, message digest) → a group message we cannot decrypt
/// yet (its key has not arrived, or never will).
/// Contact devices' deposit rights for us: device id → encoded right.
const DEPOSIT_RIGHTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("deposit_rights");
/// Contact devices' pairwise mailboxes for us: device id → `MailboxGrant`
/// wire form.
const MAILBOX_GRANTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("mailbox_grants");
/// Contact devices' newest statements of their home relays: device id →
/// `HomeRelays` wire form.
const DEVICE_RELAYS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("device_relays");
const GROUP_PENDING: TableDefinition<(&[u8; 32], &[u8; 32]), &[u8]> =
    TableDefinition::new("group_pending");
/// Our group messages no member confirmed yet: message id →
/// [`UnconfirmedRecord`] (published again after a restart).
const GROUP_UNCONFIRMED: TableDefinition<u128, &[u8]> = TableDefinition::new("group_unconfirmed");
/// (group, op that began the epoch) → the epoch's publish key and our
/// history cursors on its topic.
const GROUP_KEYS: TableDefinition<(&[u8; 32], &[u8; 32]), &[u8]> =
    TableDefinition::new("group_publish_keys");
/// What the user decided about a contact (blocked, verified keys), by
/// account; only rows that differ from the default.
const CONTACT_TRUST: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("contact_trust");
/// Per contact account: the 1:1 conversation's disappearing timer
/// ([`TimerRecord`]).
const TIMERS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("conversation_timers");
/// Conversations the user muted: no notification for their messages.
const MUTED: TableDefinition<&[u8; 32], ()> = TableDefinition::new("muted_conversations");
/// (when it expires in Unix ms, conversation, message id) for every message
/// that disappears: the expiry order.
const EXPIRING: TableDefinition<(u64, &[u8; 32], u128), ()> = TableDefinition::new("expiring");

/// The identity as homes made before several devices per account stored it.
const IDENTITY_KEY: &str = "identity";
const IDENTITY_V2_KEY: &str = "identity.2";
const OLM_ACCOUNT_KEY: &str = "olm_account";
/// Our account's devices taken off its list: DeviceKeys wire forms, 128
/// bytes each, concatenated.
const REVOKED_DEVICES_KEY: &str = "revoked_devices";
/// The account's revocations as (list before, list after) pairs, for the
/// home relays to drop the revoked devices' mailboxes (postcard).
const REVOCATION_LISTS_KEY: &str = "revocation_lists";
/// Most revocations kept for the relays (the newest).
const MAX_REVOCATION_LISTS: usize = 16;

/// One revocation: the account's device list before and after, encoded.
pub type RevocationLists = (Vec<u8>, Vec<u8>);
/// Uploads of files to our relays not finished yet: (message id, relay
/// peer id bytes), taken up again at start.
const PENDING_UPLOADS_KEY: &str = "pending_uploads";
/// The group messages kept for members that miss them, as the node had
/// them when it last stopped (`Op::PutKeptGroupMessages`).
const KEPT_GROUP_MESSAGES_KEY: &str = "kept_group_messages";
/// Most uploads remembered (the newest).
const MAX_PENDING_UPLOADS: usize = 1024;
/// Present once this device learnt it was revoked.
const REVOKED_KEY: &str = "revoked";
/// The account's presence seed (32 bytes; see `PresenceKey::derive`).
const PRESENCE_SEED_KEY: &str = "presence_seed";
const CLOCK_KEY: &str = "clock";
const LISTEN_KEY: &str = "listen_addresses";
const RELAYS_KEY: &str = "home_relays";
/// Present when the home relays were found through the DHT (not given
/// with `--relay`): such relays may be replaced, given ones never.
const RELAYS_FOUND_KEY: &str = "home_relays_found";
/// Home relays replaced (they stopped answering): still read, in case they
/// come back with mail (postcard `Vec<String>`).
const RETIRED_RELAYS_KEY: &str = "retired_relays";
/// The push endpoint the home relays wake this device at (`hush push set`).
const PUSH_ENDPOINT_KEY: &str = "push_endpoint";
const FALLBACK_KEY: &str = "fallback_key_bundle";
/// When the fallback key was made (Unix ms, `u64` big-endian).
const FALLBACK_MADE_KEY: &str = "fallback_key_made_at";
/// When every home relay was last read to the end (Unix ms, big-endian):
/// how far back our pairwise mailboxes are fetched.
const DRAINED_KEY: &str = "mail_drained_at";
const OWN_PRESENCE_KEY: &str = "own_presence";
/// The last write-ahead log record applied (see [`Position::to_bytes`]).
const WAL_KEY: &str = "wal_position";
/// The write-ahead log's size: about 2,000 one-to-one messages between
/// checkpoints. Written full once, when the home is made.
const WAL_CAPACITY: u64 = 4 * 1024 * 1024;
/// Memory redb keeps of the database: pages read (opened) and pages
/// written since the last checkpoint (at most half). redb's default is
/// 1 GiB, which a node with a long history would reach; what falls out is
/// read and opened again from the file (the kernel's page cache holds
/// it, not the node).
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// When a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before `apply` returns.
    Now,
    /// With the next `Now` commit (which the caller makes soon): readers
    /// see it at once, but a crash before then loses it.
    Lazy,
}

use hush_host::sealed_db::{DbKey, SealedFile};

mod at_rest;
mod codec;
use codec::{decode, encode, sized_postcard};
mod error;
use at_rest::seal_if_plain;
pub use error::StoreError;
pub use history::Page;
pub use hush_protocol::device::OutboxKey;

/// A stored group: its id, its record and its ops (wire bytes).
pub type StoredGroup = (GroupId, GroupRecord, Vec<Vec<u8>>);
/// A group message waiting for its key: session, digest, group, received
/// at (Unix ms).
pub type PendingRow = ([u8; 32], [u8; 32], GroupId, u64);
/// A peer's Curve25519 key and its pickled Olm sessions, newest first.
pub type PeerSessions = ([u8; 32], Vec<String>);

#[derive(Debug)]
pub struct Store {
    db: Arc<Database>,
    /// Where durable batches are written to redb while the log syncs.
    beside: Beside,
    wal: Mutex<Wal>,
    /// What the database and its log are sealed under (none: a plaintext
    /// database, only for `hush bench search`'s floor).
    key: Option<DbKey>,
    /// Whether messages are indexed for search as they are stored (off
    /// only for `hush bench search`'s floor).
    index: bool,
    /// Whether the digests-alone table (`seen_envelopes`, written before
    /// digests had a prefix) still holds any: read only then. Nothing
    /// writes it now but the replay of an old log at open, so it only
    /// empties (by pruning).
    legacy_seen: AtomicBool,
}

/// The associated data of a sealed write-ahead log record.
const WAL_AD: &[u8] = b"hush wal record";

impl Store {
    /// Opens (or creates) the database at `path`, sealed at rest under
    /// `key` (see [`hush_host::sealed_db`]); a plaintext database made by an
    /// older hush is sealed first, in place.
    pub fn open(path: &Path, key: &DbKey) -> Result<Self, StoreError> {
        seal_if_plain(path, key)?;
        let backend = SealedFile::open_path(path, key.clone())?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(backend)?;
        Self::from_db(db, path, Some(key.clone()), true)
    }

    /// A store for measuring: sealed under `key` or plaintext, indexing or
    /// not. Homes are always opened with [`Store::open`].
    pub(crate) fn open_measured(
        path: &Path,
        key: Option<&DbKey>,
        index: bool,
    ) -> Result<Self, StoreError> {
        let mut builder = redb::Builder::new();
        builder.set_cache_size(CACHE_BYTES);
        let db = match key {
            Some(key) => builder.create_with_backend(SealedFile::open_path(path, key.clone())?)?,
            None => builder.create(path)?,
        };
        Self::from_db(db, path, key.cloned(), index)
    }

    fn from_db(
        db: Database,
        path: &Path,
        key: Option<DbKey>,
        index: bool,
    ) -> Result<Self, StoreError> {
        let txn = db.begin_write()?;
        {
            // Create every table so reads never meet a missing one.
            txn.open_table(META)?;
            txn.open_table(CONTACTS)?;
            txn.open_table(SESSIONS)?;
            txn.open_table(MESSAGES)?;
            txn.open_table(UNREAD)?;
            txn.open_table(OUTBOX)?;
            txn.open_table(SEEN)?;
            txn.open_table(SEEN_BY_CHAIN)?;
            txn.open_table(PRESENCE)?;
            txn.open_table(GROUPS)?;
            txn.open_table(GROUP_OPS)?;
            txn.open_table(MEGOLM_IN)?;
            txn.open_table(GROUP_RECEIPTS)?;
            txn.open_table(GROUP_PENDING)?;
            txn.open_table(GROUP_UNCONFIRMED)?;
            txn.open_table(GROUP_KEYS)?;
            txn.open_table(DEPOSIT_RIGHTS)?;
            txn.open_table(MAILBOX_GRANTS)?;
            txn.open_table(DEVICE_RELAYS)?;
            txn.open_table(MUTED)?;
            txn.open_table(CONTACT_TRUST)?;
            txn.open_table(FILES)?;
            txn.open_table(FILE_IDS)?;
            txn.open_table(FILE_ROOTS)?;
            txn.open_table(TIMERS)?;
            txn.open_table(EXPIRING)?;
            txn.open_table(search::POSTINGS)?;
            txn.open_table(search::SEGMENTS)?;
            txn.open_table(search::DOCS)?;
        }
        txn.commit()?;
        if index {
            upgrade(&db)?;
        }
        // Opened only now, under redb's lock on the database file: no other
        // process has the log.
        let durable = {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            let stored = meta.get(WAL_KEY)?.map(|v| v.value().to_vec());
            stored
                .and_then(|b| Position::from_bytes(&b))
                .unwrap_or_default()
        };
        let (mut wal, records) =
            Wal::open_after(&path.with_extension("wal"), WAL_CAPACITY, Some(durable))
                .map_err(StoreError::Log)?;
        let mut last = durable;
        let mut replayed = 0usize;
        for record in records {
            let payload = match &key {
                Some(key) => key
                    .open(WAL_AD, &record.payload)
                    .ok_or(StoreError::LogDamaged)?,
                None => record.payload,
            };
            let ops: Vec<Op> = decode("write-ahead log record", &payload)?;
            write(
                &db,
                ops,
                Some(record.position),
                redb::Durability::None,
                index,
            )?;
            last = record.position;
            replayed += 1;
        }
        db.begin_write()?.commit()?;
        wal.restart(last.generation + 1);
        let legacy_seen = !db.begin_read()?.open_table(SEEN)?.is_empty()?;
        if replayed > 0 {
            tracing::info!(
                replayed,
                "applied write-ahead log records a crash kept from the database"
            );
        }
        Ok(Self {
            db: Arc::new(db),
            beside: Beside::start(),
            wal: Mutex::new(wal),
            key,
            index,
            legacy_seen: AtomicBool::new(legacy_seen),
        })
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// The identity (converted from the record homes made before several
    /// devices per account stored, if that is what is there).
    pub fn identity(&self) -> Result<IdentityRecord, StoreError> {
        if let Some(bytes) = self.meta(IDENTITY_V2_KEY)? {
            return decode("identity", &bytes);
        }
        let bytes = self.meta(IDENTITY_KEY)?.ok_or(StoreError::NoIdentity)?;
        Ok(decode::<IdentityRecordV1>("identity", &bytes)?.into())
    }

    pub fn has_identity(&self) -> Result<bool, StoreError> {
        Ok(self.meta(IDENTITY_V2_KEY)?.is_some() || self.meta(IDENTITY_KEY)?.is_some())
    }

    /// Replaces the identity (a device was linked; a list was pushed).
    pub fn put_identity(&self, identity: &IdentityRecord) -> Result<(), StoreError> {
        self.put_meta(IDENTITY_V2_KEY, &encode(identity))
    }

    /// Writes a new identity and its Olm account in one transaction.
    pub fn create_identity(
        &self,
        identity: &IdentityRecord,
        olm_account: &str,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(IDENTITY_V2_KEY, encode(identity).as_slice())?;
            meta.insert(OLM_ACCOUNT_KEY, olm_account.as_bytes())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Our account's revoked devices (their entries as the list had them).
    pub fn revoked_devices(&self) -> Result<Vec<[u8; 128]>, StoreError> {
        let bytes = self.meta(REVOKED_DEVICES_KEY)?.unwrap_or_default();
        Ok(bytes
            .chunks_exact(128)
            .filter_map(|c| <[u8; 128]>::try_from(c).ok())
            .collect())
    }

    /// Adds devices to [`Store::revoked_devices`].
    pub fn add_revoked_devices(&self, devices: &[[u8; 128]]) -> Result<(), StoreError> {
        let mut bytes = self.meta(REVOKED_DEVICES_KEY)?.unwrap_or_default();
        for d in devices {
            if !bytes.chunks_exact(128).any(|c| c == d) {
                bytes.extend_from_slice(d);
            }
        }
        self.put_meta(REVOKED_DEVICES_KEY, &bytes)
    }

    /// Our account's revocations, (list before, list after) as encoded
    /// device lists: sent to every home relay at start, so a mailbox
    /// drop a relay missed is made later.
    pub fn revocation_lists(&self) -> Result<Vec<RevocationLists>, StoreError> {
        match self.meta(REVOCATION_LISTS_KEY)? {
            Some(bytes) => Ok(postcard::from_bytes(&bytes).unwrap_or_default()),
            None => Ok(Vec::new()),
        }
    }

    /// Adds a revocation to [`Store::revocation_lists`] (the newest 16 kept).
    pub fn add_revocation_lists(&self, old: Vec<u8>, new: Vec<u8>) -> Result<(), StoreError> {
        let mut pairs = self.revocation_lists()?;
        pairs.push((old, new));
        let extra = pairs.len().saturating_sub(MAX_REVOCATION_LISTS);
        pairs.drain(..extra);
        let bytes = postcard::to_allocvec(&pairs).unwrap_or_default();
        self.put_meta(REVOCATION_LISTS_KEY, &bytes)
    }

    /// Uploads of files to our relays that have not finished: (message id,
    /// relay peer id as bytes).
    pub fn pending_uploads(&self) -> Result<Vec<(u128, Vec<u8>)>, StoreError> {
        match self.meta(PENDING_UPLOADS_KEY)? {
            Some(bytes) => Ok(postcard::from_bytes(&bytes).unwrap_or_default()),
            None => Ok(Vec::new()),
        }
    }

    /// The group messages kept for members that miss them, as the node had
    /// them when it last stopped (oldest first).
    pub fn kept_group_messages(&self) -> Result<Vec<KeptRecord>, StoreError> {
        self.meta(KEPT_GROUP_MESSAGES_KEY)?
            .map(|bytes| decode("kept group messages", &bytes))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The account's presence seed, made (and stored) the first time it is
    /// asked for.
    pub fn presence_seed(&self) -> Result<[u8; 32], StoreError> {
        if let Some(seed) = self
            .meta(PRESENCE_SEED_KEY)?
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        {
            return Ok(seed);
        }
        let seed: [u8; 32] = rand::random();
        self.put_presence_seed(&seed)?;
        Ok(seed)
    }

    pub fn put_presence_seed(&self, seed: &[u8; 32]) -> Result<(), StoreError> {
        self.put_meta(PRESENCE_SEED_KEY, seed)
    }

    /// Whether this device learnt it was revoked.
    pub fn is_revoked(&self) -> Result<bool, StoreError> {
        Ok(self.meta(REVOKED_KEY)?.is_some())
    }

    pub fn set_revoked(&self) -> Result<(), StoreError> {
        self.put_meta(REVOKED_KEY, b"1")
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(key, value)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn olm_account(&self) -> Result<String, StoreError> {
        let bytes = self.meta(OLM_ACCOUNT_KEY)?.ok_or(StoreError::NoIdentity)?;
        String::from_utf8(bytes).map_err(|_| StoreError::Corrupt {
            what: "olm account",
            source: postcard::Error::DeserializeBadUtf8,
        })
    }

    pub fn clock(&self) -> Result<Option<MessageId>, StoreError> {
        Ok(self
            .meta(CLOCK_KEY)?
            .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
            .map(|b| MessageId(u128::from_be_bytes(b))))
    }

    pub fn listen_addresses(&self) -> Result<Vec<String>, StoreError> {
        match self.meta(LISTEN_KEY)? {
            Some(bytes) => decode("listen addresses", &bytes),
            None => Ok(Vec::new()),
        }
    }

    /// The home relays saved by the last `node run --relay`.
    pub fn relays(&self) -> Result<Vec<String>, StoreError> {
        match self.meta(RELAYS_KEY)? {
            Some(bytes) => decode("home relays", &bytes),
            None => Ok(Vec::new()),
        }
    }

    /// Home relays replaced because they stopped answering (see
    /// `Op::PutRetiredRelays`).
    pub fn retired_relays(&self) -> Result<Vec<String>, StoreError> {
        match self.meta(RETIRED_RELAYS_KEY)? {
            Some(bytes) => decode("retired relays", &bytes),
            None => Ok(Vec::new()),
        }
    }

    /// The push endpoint the user set (see `Op::PutPushEndpoint`).
    pub fn push_endpoint(&self) -> Result<Option<String>, StoreError> {
        self.meta(PUSH_ENDPOINT_KEY)?
            .map(|bytes| decode("push endpoint", &bytes))
            .transpose()
    }

    pub fn own_presence(&self) -> Result<Option<OwnPresenceRecord>, StoreError> {
        self.meta(OWN_PRESENCE_KEY)?
            .map(|bytes| decode("own presence", &bytes))
            .transpose()
    }

    /// The presence settings and knowledge of every contact that has any.
    pub fn presence(&self) -> Result<Vec<(AccountId, PresenceRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PRESENCE)?;
        table
            .iter()?
            .map(|row| {
                let (k, v) = row?;
                Ok((AccountId(*k.value()), decode("presence", v.value())?))
            })
            .collect()
    }

    /// Every group we hold, with its ops (wire bytes).
    pub fn groups(&self) -> Result<Vec<StoredGroup>, StoreError> {
        let txn = self.db.begin_read()?;
        let groups = txn.open_table(GROUPS)?;
        let ops = txn.open_table(GROUP_OPS)?;
        let mut out = Vec::new();
        for row in groups.iter()? {
            let (k, v) = row?;
            let id = *k.value();
            let record = decode("group", v.value())?;
            let list = ops
                .range((&id, &[0; 32])..=(&id, &[0xff; 32]))?
                .map(|row| Ok(row?.1.value().to_vec()))
                .collect::<Result<Vec<_>, StoreError>>()?;
            out.push((GroupId(id), record, list));
        }
        Ok(out)
    }

    /// Every group epoch's publish key we hold: (group, epoch op, record).
    pub fn publish_keys(&self) -> Result<Vec<(GroupId, [u8; 32], PublishKeyRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(GROUP_KEYS)?;
        table
            .iter()?
            .map(|row| {
                let (k, v) = row?;
                let (group, epoch) = k.value();
                Ok((GroupId(*group), *epoch, decode("publish key", v.value())?))
            })
            .collect()
    }

    pub fn inbound_sessions(&self) -> Result<Vec<([u8; 32], InboundRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MEGOLM_IN)?;
        table
            .iter()?
            .map(|row| {
                let (k, v) = row?;
                Ok((*k.value(), decode("megolm session", v.value())?))
            })
            .collect()
    }

    /// Group messages waiting for the key of `session`.
    pub fn pending(
        &self,
        session: &[u8; 32],
    ) -> Result<Vec<([u8; 32], PendingRecord)>, StoreError> {
        pending_in(&self.db, session)
    }

    /// Every group message waiting for its key: (session, digest, group,
    /// received at in Unix ms). Rows that do not decode are left out.
    pub fn pending_index(&self) -> Result<Vec<PendingRow>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(GROUP_PENDING)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (key, value) = row?;
            let (session, digest) = key.value();
            if let Ok(record) = decode::<PendingRecord>("pending group message", value.value()) {
                out.push((*session, *digest, record.group, record.received_at_ms));
            }
        }
        Ok(out)
    }

    /// Our group messages no member confirmed when the node stopped, oldest
    /// first (a record that does not decode is skipped and logged).
    pub fn unconfirmed(&self) -> Result<Vec<(MessageId, UnconfirmedRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(GROUP_UNCONFIRMED)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (key, value) = row?;
            match decode::<UnconfirmedRecord>("unconfirmed group message", value.value()) {
                Ok(record) => out.push((MessageId(key.value()), record)),
                Err(e) => tracing::warn!(error = %e, "skipped an unconfirmed group message"),
            }
        }
        Ok(out)
    }

    /// Who sent a receipt for one of our group messages, and which.
    pub fn group_receipts(
        &self,
        conversation: &ConversationId,
        id: MessageId,
    ) -> Result<Vec<(AccountId, u8)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(GROUP_RECEIPTS)?;
        let c = &conversation.0;
        table
            .range((c, id.0, &[0; 32])..=(c, id.0, &[0xff; 32]))?
            .map(|row| {
                let (k, v) = row?;
                Ok((AccountId(*k.value().2), v.value()))
            })
            .collect()
    }

    /// Of `ids`, those that are our own messages in `conversation`.
    pub fn outgoing(
        &self,
        conversation: &ConversationId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageId>, StoreError> {
        let txn = self.db.begin_read()?;
        snapshot::outgoing_in(&txn.open_table(MESSAGES)?, conversation, ids)
    }

    /// For each of `ids`: how many members have it (any receipt) and how
    /// many read it.
    pub fn receipt_counts(
        &self,
        conversation: &ConversationId,
        ids: &[MessageId],
    ) -> Result<Vec<(MessageId, usize, usize)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(GROUP_RECEIPTS)?;
        let c = &conversation.0;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let (mut delivered, mut read) = (0, 0);
            for row in table.range((c, id.0, &[0; 32])..=(c, id.0, &[0xff; 32]))? {
                delivered += 1;
                if row?.1.value() == ReceiptKind::Read as u8 {
                    read += 1;
                }
            }
            out.push((*id, delivered, read));
        }
        Ok(out)
    }

    pub fn sessions(&self) -> Result<Vec<PeerSessions>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SESSIONS)?;
        table
            .iter()?
            .map(|row| {
                let (k, v) = row?;
                Ok((*k.value(), decode("olm sessions", v.value())?))
            })
            .collect()
    }

    /// Blocks and verifications, by account.
    pub fn trust(&self) -> Result<Vec<(AccountId, ContactTrust)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONTACT_TRUST)?;
        table
            .iter()?
            .map(|row| {
                let (account, bytes) = row?;
                Ok((
                    AccountId(*account.value()),
                    decode("contact trust", bytes.value())?,
                ))
            })
            .collect()
    }

    pub fn contacts(&self) -> Result<Vec<ContactRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONTACTS)?;
        table
            .iter()?
            .map(|row| decode("contact", row?.1.value()))
            .collect()
    }

    pub fn message(
        &self,
        conversation: &ConversationId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        snapshot::message_in(&txn.open_table(MESSAGES)?, conversation, id)
    }

    /// The statuses of these messages (`None`: not stored), in order, in
    /// one read transaction.
    pub fn statuses(
        &self,
        wanted: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Option<crate::records::Status>>, StoreError> {
        hush_protocol::device::DeviceLookup::statuses(&self.snapshot()?, wanted)
    }

    pub fn outbox(&self) -> Result<Vec<(OutboxKey, OutboxRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        table
            .iter()?
            .map(|row| {
                let (k, v) = row?;
                let (id, device) = k.value();
                Ok((
                    (MessageId(id), DeviceId(*device)),
                    decode("outbox entry", v.value())?,
                ))
            })
            .collect()
    }

    /// Applies a batch in one transaction; with [`Durability::Now`] it is
    /// on the disk when this returns.
    ///
    /// The batch is committed to redb without durability and appended to
    /// the write-ahead log (synced for `Now`); redb is made durable at a
    /// checkpoint when the log is full (see [`hush_host::wal`]). For `Now`,
    /// the redb commit runs on a thread beside this one while the log
    /// syncs here; a batch redb refuses is taken back out of the log. A
    /// batch too large for the log is committed durably on its own.
    pub fn apply(&self, ops: Vec<Op>, durability: Durability) -> Result<(), StoreError> {
        if ops.iter().any(|op| matches!(op, Op::PutSeen(..))) {
            self.legacy_seen.store(true, Ordering::Relaxed);
        }
        let mut wal = self.wal.lock().unwrap_or_else(|p| p.into_inner());
        let payload =
            sized_postcard(&ops).map_err(|e| StoreError::Log(std::io::Error::other(e)))?;
        let payload = match &self.key {
            Some(key) => key.seal(WAL_AD, &payload),
            None => payload,
        };
        if !wal.could_fit(payload.len()) {
            write(&self.db, ops, None, redb::Durability::Immediate, self.index)?;
            wal.restart(0);
            return Ok(());
        }
        if !wal.fits(payload.len()) {
            self.checkpoint_locked(&mut wal)?;
        }
        let position = wal.next_position();
        if durability == Durability::Lazy {
            write(
                &self.db,
                ops,
                Some(position),
                redb::Durability::None,
                self.index,
            )?;
            if let Err(e) = wal.append(&payload, false) {
                self.log_failed(&mut wal, &e)?;
            }
            return Ok(());
        }
        // Durable: redb on the thread beside while the log syncs here.
        let (db, index) = (Arc::clone(&self.db), self.index);
        let written = self
            .beside
            .run(move || write(&db, ops, Some(position), redb::Durability::None, index));
        let appended = wal.append(&payload, true);
        let written = written.recv().unwrap_or_else(|_| {
            Err(StoreError::Storage(redb::StorageError::Io(
                std::io::Error::other("the store's writer thread failed"),
            )))
        });
        match (written, appended) {
            (Ok(()), Ok(_)) => Ok(()),
            (Ok(()), Err(e)) => self.log_failed(&mut wal, &e),
            (Err(e), Ok(_)) => {
                // The log holds a batch redb refused: take it back, or the
                // next start would apply what the caller was told failed.
                if let Err(r) = wal.retract(position, payload.len()) {
                    tracing::warn!(error = %r, "could not take a refused batch back out of the write-ahead log; starting it over");
                    self.leave_refused_behind(&mut wal);
                }
                Err(e)
            }
            // The log's sync failed too, but the record's bytes may be in
            // the page cache at its end, to be read back after a crash.
            (Err(e), Err(_)) => {
                self.leave_refused_behind(&mut wal);
                Err(e)
            }
        }
    }

    /// Starts the log over, so a refused batch's record there is never
    /// replayed (every batch before it is in redb).
    fn leave_refused_behind(&self, wal: &mut Wal) {
        if let Err(e) = self.checkpoint_locked(wal) {
            tracing::error!(error = %e, "a refused batch may stay in the write-ahead log and be applied at the next start");
        }
    }

    /// Makes everything committed so far durable in redb itself and empties
    /// the write-ahead log.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let mut wal = self.wal.lock().unwrap_or_else(|p| p.into_inner());
        self.checkpoint_locked(&mut wal)
    }

    /// The log did not take a batch redb holds: make redb durable instead.
    fn log_failed(&self, wal: &mut Wal, e: &std::io::Error) -> Result<(), StoreError> {
        tracing::warn!(error = %e, "the write-ahead log could not be written; committing to the database directly");
        self.checkpoint_locked(wal)
    }

    fn checkpoint_locked(&self, wal: &mut Wal) -> Result<(), StoreError> {
        // A durable commit persists every non-durable one before it.
        self.db.begin_write()?.commit()?;
        wal.restart(0);
        Ok(())
    }
}

impl Drop for Store {
    /// Leaves redb complete on its own (for backups of `hush.redb` alone,
    /// and a start without replay).
    fn drop(&mut self) {
        let used = self.wal.get_mut().map(|w| w.used()).unwrap_or(0);
        if used > 0
            && let Err(e) = self.checkpoint()
        {
            tracing::warn!(error = %e, "could not checkpoint the database on close; the write-ahead log will be replayed on the next start");
        }
    }
}

/// Group messages waiting for the key of `session` (see [`Store::pending`]).
fn pending_in(
    db: &Database,
    session: &[u8; 32],
) -> Result<Vec<([u8; 32], PendingRecord)>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(GROUP_PENDING)?;
    table
        .range((session, &[0; 32])..=(session, &[0xff; 32]))?
        .map(|row| {
            let (k, v) = row?;
            Ok((*k.value().1, decode("pending group message", v.value())?))
        })
        .collect()
}

mod beside;
mod expiry;
mod files;
mod history;
mod mail;
mod ops;
mod search;
mod seen;
mod snapshot;
#[cfg(test)]
mod tests;
mod upgrade;

pub use search::{SearchFilter, SearchHit};
pub use snapshot::Snapshot;
use upgrade::upgrade;

use ops::write;
pub use ops::{Op, TimerRecord};

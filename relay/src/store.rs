//! The relay's redb database: sealed mail per mailbox, dedupe digests,
//! hosted one-time keys, and the relay's own identity.
//!
//! | table      | key                     | value                                  |
//! |------------|-------------------------|----------------------------------------|
//! | `meta`     | name                    | bytes (identity secret, next seq)      |
//! | `log`      | seq                     | stored_at_ms u64 ‖ sender tag u64 ‖ mailbox ‖ sealed |
//! | `mailbox`  | (mailbox, seq)          | (): each mailbox's items, in order     |
//! | `digests`  | blake3(sealed)          | seq: dedupe of resent deposits         |
//! | `otks`     | (device, one-time key)  | key bundle                             |
//! | `fallback` | device                  | key bundle                             |
//!
//! Mail is a log: sequence numbers only grow, so a batch of deposits
//! appends to the end of `log` (a few pages per commit, however many
//! mailboxes it touches) and the per-mailbox index holds only small keys.
//! The log is also the expiry order.
//!
//! Writes are [`Op`]s applied by [`Store::apply`] in one durable
//! transaction; the service acks nothing before that returns.

use std::path::Path;

use hush_protocol::MailboxId;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use thiserror::Error;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const INDEX: TableDefinition<([u8; 32], u64), ()> = TableDefinition::new("mailbox");
const DIGESTS: TableDefinition<[u8; 32], u64> = TableDefinition::new("digests");
const OTKS: TableDefinition<([u8; 32], [u8; 32]), &[u8]> = TableDefinition::new("otks");
const FALLBACK: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("fallback");

const IDENTITY_KEY: &str = "identity";
const NEXT_SEQ_KEY: &str = "next_seq";
/// Bytes before the sealed envelope in a `log` value.
const MAIL_HEADER: usize = 48;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("another relay is already using this data folder; stop it first")]
    AlreadyOpen,
    #[error("the relay database could not be opened: {0}")]
    Open(#[source] redb::DatabaseError),
    #[error("a database transaction failed: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("a database table could not be opened: {0}")]
    Table(#[from] redb::TableError),
    #[error("a database read or write failed: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("a database commit failed: {0}")]
    Commit(#[from] redb::CommitError),
    #[error("the relay database is corrupt: {0}")]
    Corrupt(&'static str),
}

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Self::AlreadyOpen,
            other => Self::Open(other),
        }
    }
}

/// The dedupe key of a deposit: a hash of its sealed bytes.
pub fn digest(sealed: &[u8]) -> [u8; 32] {
    *blake3::Hasher::new_derive_key("hush 2026 relay deposit digest")
        .update(sealed)
        .finalize()
        .as_bytes()
}

/// A hosted key as handed out: the one-time key's public part (`None` for
/// the fallback key) and the signed bundle.
pub type HostedKey = (Option<[u8; 32]>, Vec<u8>);

/// One stored item as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub mailbox: MailboxId,
    pub seq: u64,
    pub stored_at_ms: u64,
    /// An unlinkable per-process tag of the sender (see `service.rs`).
    pub sender_tag: u64,
    pub sealed: Vec<u8>,
}

#[derive(Debug)]
pub enum Op {
    Deposit(Item),
    /// Deletes an item (acked by its owner, or expired).
    Delete(MailboxId, u64, Removal),
    /// Replaces a device's hosted keys.
    PutKeys {
        device: [u8; 32],
        one_time: Vec<([u8; 32], Vec<u8>)>,
        fallback: Vec<u8>,
    },
    /// A one-time key was handed out: it is gone.
    TakeKey {
        device: [u8; 32],
        key: [u8; 32],
    },
    NextSeq(u64),
}

/// Why an item is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Acked,
    Expired,
}

/// What a batch did, for the in-memory usage counters and the metrics.
#[derive(Debug, Default)]
pub struct Applied {
    pub deleted: Vec<(Item, Removal)>,
    pub deposited: u64,
}

#[derive(Debug)]
pub struct Store {
    db: Database,
}

fn parse_item(seq: u64, value: &[u8]) -> Result<Item, StoreError> {
    if value.len() < MAIL_HEADER {
        return Err(StoreError::Corrupt(
            "a mail record is shorter than its header",
        ));
    }
    let word = |b: &[u8]| {
        <[u8; 8]>::try_from(b)
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("a mail record header"))
    };
    let mailbox = <[u8; 32]>::try_from(&value[16..48])
        .map_err(|_| StoreError::Corrupt("a mail record header"))?;
    Ok(Item {
        mailbox: MailboxId(mailbox),
        seq,
        stored_at_ms: word(&value[..8])?,
        sender_tag: word(&value[8..16])?,
        sealed: value[MAIL_HEADER..].to_vec(),
    })
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(META)?;
            txn.open_table(LOG)?;
            txn.open_table(INDEX)?;
            txn.open_table(DIGESTS)?;
            txn.open_table(OTKS)?;
            txn.open_table(FALLBACK)?;
        }
        txn.commit()?;
        Ok(Self { db })
    }

    /// The relay's libp2p secret, created on first start.
    pub fn identity(&self) -> Result<[u8; 32], StoreError> {
        let txn = self.db.begin_write()?;
        let secret = {
            let mut meta = txn.open_table(META)?;
            let existing = meta.get(IDENTITY_KEY)?.map(|v| v.value().to_vec());
            match existing {
                Some(bytes) => <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| StoreError::Corrupt("the relay identity"))?,
                None => {
                    let secret: [u8; 32] = rand::random();
                    meta.insert(IDENTITY_KEY, secret.as_slice())?;
                    secret
                }
            }
        };
        txn.commit()?;
        Ok(secret)
    }

    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let Some(v) = meta.get(NEXT_SEQ_KEY)? else {
            return Ok(1);
        };
        <[u8; 8]>::try_from(v.value())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("the next sequence number"))
    }

    /// Every stored item's size and sender tag, to rebuild the usage counters.
    pub fn usage(&self) -> Result<Vec<(MailboxId, u64, u64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        let mut out = Vec::new();
        for row in log.iter()? {
            let (k, v) = row?;
            let item = parse_item(k.value(), v.value())?;
            out.push((item.mailbox, item.sealed.len() as u64, item.sender_tag));
        }
        Ok(out)
    }

    /// Which of these sealed-envelope digests are stored already (one read
    /// transaction for a whole deposit).
    pub fn has_digests(&self, digests: &[[u8; 32]]) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DIGESTS)?;
        digests
            .iter()
            .map(|d| Ok(table.get(d)?.is_some()))
            .collect()
    }

    /// Items of `mailbox` after `after`, oldest first: at most `limit`
    /// items and about `max_bytes`; and whether more are waiting.
    pub fn fetch(
        &self,
        mailbox: &MailboxId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(INDEX)?;
        let log = txn.open_table(LOG)?;
        let mut items = Vec::new();
        let mut bytes = 0;
        let start = after.saturating_add(1);
        for row in index.range((mailbox.0, start)..=(mailbox.0, u64::MAX))? {
            let (_, seq) = row?.0.value();
            let Some(value) = log.get(seq)? else {
                continue;
            };
            let len = value.value().len();
            if items.len() >= limit || bytes + len > max_bytes && !items.is_empty() {
                return Ok((items, true));
            }
            bytes += len;
            items.push(parse_item(seq, value.value())?);
        }
        Ok((items, false))
    }

    /// The oldest items stored before `cutoff_ms`, up to `limit`.
    pub fn expired(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<(MailboxId, u64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        let mut out = Vec::new();
        for row in log.iter()? {
            let (k, v) = row?;
            let item = parse_item(k.value(), v.value())?;
            if item.stored_at_ms >= cutoff_ms || out.len() >= limit {
                break;
            }
            out.push((item.mailbox, item.seq));
        }
        Ok(out)
    }

    /// One of the device's one-time keys not in `taken`, or its fallback key.
    pub fn key_for(
        &self,
        device: &[u8; 32],
        taken: &dyn Fn(&[u8; 32]) -> bool,
    ) -> Result<Option<HostedKey>, StoreError> {
        let txn = self.db.begin_read()?;
        let otks = txn.open_table(OTKS)?;
        for row in otks.range((*device, [0u8; 32])..=(*device, [0xff; 32]))? {
            let (k, v) = row?;
            let key = k.value().1;
            if !taken(&key) {
                return Ok(Some((Some(key), v.value().to_vec())));
            }
        }
        let fallback = txn.open_table(FALLBACK)?;
        Ok(fallback.get(device)?.map(|v| (None, v.value().to_vec())))
    }

    pub fn keys_left(&self, device: &[u8; 32]) -> Result<u32, StoreError> {
        let txn = self.db.begin_read()?;
        let otks = txn.open_table(OTKS)?;
        let n = otks
            .range((*device, [0u8; 32])..=(*device, [0xff; 32]))?
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Applies a batch in one durable transaction.
    pub fn apply(&self, ops: Vec<Op>) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let mut log = txn.open_table(LOG)?;
            let mut index = txn.open_table(INDEX)?;
            let mut digests = txn.open_table(DIGESTS)?;
            let mut otks = txn.open_table(OTKS)?;
            let mut fallback = txn.open_table(FALLBACK)?;
            for op in ops {
                match op {
                    Op::Deposit(item) => {
                        let mut value = Vec::with_capacity(MAIL_HEADER + item.sealed.len());
                        value.extend_from_slice(&item.stored_at_ms.to_be_bytes());
                        value.extend_from_slice(&item.sender_tag.to_be_bytes());
                        value.extend_from_slice(&item.mailbox.0);
                        value.extend_from_slice(&item.sealed);
                        log.insert(item.seq, value.as_slice())?;
                        index.insert((item.mailbox.0, item.seq), ())?;
                        digests.insert(digest(&item.sealed), item.seq)?;
                        applied.deposited += 1;
                    }
                    Op::Delete(mailbox, seq, why) => {
                        // Only the mailbox's own item: an ack names seqs of
                        // the signer's mailbox and nothing else.
                        if index.remove((mailbox.0, seq))?.is_none() {
                            continue;
                        }
                        let removed = log.remove(seq)?.map(|v| v.value().to_vec());
                        if let Some(value) = removed {
                            let item = parse_item(seq, &value)?;
                            digests.remove(digest(&item.sealed))?;
                            applied.deleted.push((item, why));
                        }
                    }
                    Op::PutKeys {
                        device,
                        one_time,
                        fallback: fb,
                    } => {
                        otks.retain_in((device, [0u8; 32])..=(device, [0xff; 32]), |_, _| false)?;
                        for (key, bundle) in one_time {
                            otks.insert((device, key), bundle.as_slice())?;
                        }
                        fallback.insert(device, fb.as_slice())?;
                    }
                    Op::TakeKey { device, key } => {
                        otks.remove((device, key))?;
                    }
                    Op::NextSeq(seq) => {
                        meta.insert(NEXT_SEQ_KEY, seq.to_be_bytes().as_slice())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(mailbox: u8, seq: u64, at: u64) -> Item {
        Item {
            mailbox: MailboxId([mailbox; 32]),
            seq,
            stored_at_ms: at,
            sender_tag: 9,
            sealed: vec![seq as u8; 40],
        }
    }

    #[test]
    fn deposits_fetch_in_order_and_delete_with_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("relay.redb")).unwrap();
        let ops = (1..=5).map(|s| Op::Deposit(item(1, s, s * 10))).collect();
        store.apply(ops).unwrap();
        store.apply(vec![Op::Deposit(item(2, 6, 60))]).unwrap();
        let (page, more) = store.fetch(&MailboxId([1; 32]), 0, 3, 1 << 20).unwrap();
        assert_eq!(page.iter().map(|i| i.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(more);
        let (rest, more) = store.fetch(&MailboxId([1; 32]), 3, 10, 1 << 20).unwrap();
        assert_eq!(rest.iter().map(|i| i.seq).collect::<Vec<_>>(), [4, 5]);
        assert!(!more);
        let d = digest(&item(1, 2, 0).sealed);
        assert_eq!(store.has_digests(&[d, [0; 32]]).unwrap(), [true, false]);
        // Another mailbox cannot delete it.
        let applied = store
            .apply(vec![Op::Delete(MailboxId([2; 32]), 2, Removal::Acked)])
            .unwrap();
        assert!(applied.deleted.is_empty());
        let applied = store
            .apply(vec![Op::Delete(MailboxId([1; 32]), 2, Removal::Acked)])
            .unwrap();
        assert_eq!(applied.deleted, vec![(item(1, 2, 20), Removal::Acked)]);
        assert_eq!(store.has_digests(&[d]).unwrap(), [false]);
        assert_eq!(
            store.expired(35, 10).unwrap(),
            vec![(MailboxId([1; 32]), 1), (MailboxId([1; 32]), 3)]
        );
        assert_eq!(store.usage().unwrap().len(), 5);
    }

    #[test]
    fn keys_are_handed_out_once_then_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("relay.redb")).unwrap();
        let device = [3; 32];
        store
            .apply(vec![Op::PutKeys {
                device,
                one_time: vec![([1; 32], vec![1]), ([2; 32], vec![2])],
                fallback: vec![9],
            }])
            .unwrap();
        assert_eq!(store.keys_left(&device).unwrap(), 2);
        let (key, bundle) = store.key_for(&device, &|_| false).unwrap().unwrap();
        assert_eq!((key, bundle), (Some([1; 32]), vec![1]));
        let (key, _) = store.key_for(&device, &|k| *k == [1; 32]).unwrap().unwrap();
        assert_eq!(key, Some([2; 32]));
        store
            .apply(vec![
                Op::TakeKey {
                    device,
                    key: [1; 32],
                },
                Op::TakeKey {
                    device,
                    key: [2; 32],
                },
            ])
            .unwrap();
        assert_eq!(
            store.key_for(&device, &|_| false).unwrap(),
            Some((None, vec![9]))
        );
        assert_eq!(store.key_for(&[4; 32], &|_| false).unwrap(), None);
        // The identity is made once and then kept.
        assert_eq!(store.identity().unwrap(), store.identity().unwrap());
    }
}

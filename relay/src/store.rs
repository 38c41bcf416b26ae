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
//! Writes are the engine's [`RelayWrite`]s, applied by [`Store::apply`] in
//! one durable transaction; the engine acks nothing before that returns.
//! Its reads go through [`MailLookup`].

use std::path::Path;

use hush_protocol::relay::{
    Applied, DepositDigest, HostedKey, MailLookup, MailPage, OneTimeKey, RelayWrite, StoreFault,
    StoredMail,
};
use hush_protocol::{DeviceId, MailboxId};
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

#[derive(Debug)]
pub struct Store {
    db: Database,
}

fn parse_item(seq: u64, value: &[u8]) -> Result<StoredMail, StoreError> {
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
    Ok(StoredMail {
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

    /// Applies a batch in one durable transaction.
    pub fn apply(&self, writes: Vec<RelayWrite>) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let mut log = txn.open_table(LOG)?;
            let mut index = txn.open_table(INDEX)?;
            let mut digests = txn.open_table(DIGESTS)?;
            let mut otks = txn.open_table(OTKS)?;
            let mut fallback = txn.open_table(FALLBACK)?;
            for write in writes {
                match write {
                    RelayWrite::Deposit(item) => {
                        let mut value = Vec::with_capacity(MAIL_HEADER + item.sealed.len());
                        value.extend_from_slice(&item.stored_at_ms.to_be_bytes());
                        value.extend_from_slice(&item.sender_tag.to_be_bytes());
                        value.extend_from_slice(&item.mailbox.0);
                        value.extend_from_slice(&item.sealed);
                        log.insert(item.seq, value.as_slice())?;
                        index.insert((item.mailbox.0, item.seq), ())?;
                        digests.insert(DepositDigest::of(&item.sealed).0, item.seq)?;
                        applied.deposited += 1;
                    }
                    RelayWrite::Delete(mailbox, seq, why) => {
                        // Only the mailbox's own item: an ack names seqs of
                        // the signer's mailbox and nothing else.
                        if index.remove((mailbox.0, seq))?.is_none() {
                            continue;
                        }
                        let removed = log.remove(seq)?.map(|v| v.value().to_vec());
                        if let Some(value) = removed {
                            let item = parse_item(seq, &value)?;
                            digests.remove(DepositDigest::of(&item.sealed).0)?;
                            let len = item.sealed.len() as u64;
                            applied.deleted.push((mailbox, len, item.sender_tag, why));
                        }
                    }
                    RelayWrite::PutKeys {
                        device,
                        one_time,
                        fallback: fb,
                    } => {
                        let d = device.0;
                        otks.retain_in((d, [0u8; 32])..=(d, [0xff; 32]), |_, _| false)?;
                        for (key, bundle) in one_time {
                            otks.insert((d, key.0), bundle.as_slice())?;
                        }
                        fallback.insert(d, fb.as_slice())?;
                    }
                    RelayWrite::TakeKey { device, key } => {
                        otks.remove((device.0, key.0))?;
                    }
                    RelayWrite::NextSeq(seq) => {
                        meta.insert(NEXT_SEQ_KEY, seq.to_be_bytes().as_slice())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(applied)
    }
}

fn fault(e: impl Into<StoreError>) -> StoreFault {
    StoreFault(e.into().to_string())
}

impl MailLookup for Store {
    fn stored(&self, digests: &[DepositDigest]) -> Result<Vec<bool>, StoreFault> {
        let txn = self.db.begin_read().map_err(fault)?;
        let table = txn.open_table(DIGESTS).map_err(fault)?;
        digests
            .iter()
            .map(|d| Ok(table.get(d.0).map_err(fault)?.is_some()))
            .collect()
    }

    fn page(
        &self,
        mailbox: &MailboxId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MailPage, StoreFault> {
        let read = || -> Result<MailPage, StoreError> {
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
                items.push((seq, parse_item(seq, value.value())?.sealed));
            }
            Ok((items, false))
        };
        read().map_err(fault)
    }

    fn hosted_key(
        &self,
        device: &DeviceId,
        skip: &dyn Fn(&OneTimeKey) -> bool,
    ) -> Result<Option<HostedKey>, StoreFault> {
        let read = || -> Result<Option<HostedKey>, StoreError> {
            let d = device.0;
            let txn = self.db.begin_read()?;
            let otks = txn.open_table(OTKS)?;
            for row in otks.range((d, [0u8; 32])..=(d, [0xff; 32]))? {
                let (k, v) = row?;
                let key = OneTimeKey(k.value().1);
                if !skip(&key) {
                    return Ok(Some((Some(key), v.value().to_vec())));
                }
            }
            let fallback = txn.open_table(FALLBACK)?;
            Ok(fallback.get(d)?.map(|v| (None, v.value().to_vec())))
        };
        read().map_err(fault)
    }

    fn keys_left(&self, device: &DeviceId) -> Result<u32, StoreFault> {
        let read = || -> Result<u32, StoreError> {
            let d = device.0;
            let txn = self.db.begin_read()?;
            let otks = txn.open_table(OTKS)?;
            let n = otks.range((d, [0u8; 32])..=(d, [0xff; 32]))?.count();
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        };
        read().map_err(fault)
    }

    fn expired(&self, cutoff_ms: u64, limit: usize) -> Result<Vec<(MailboxId, u64)>, StoreFault> {
        let read = || -> Result<Vec<(MailboxId, u64)>, StoreError> {
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
        };
        read().map_err(fault)
    }

    fn usage(&self) -> Result<Vec<(MailboxId, u64, u64)>, StoreFault> {
        let read = || -> Result<Vec<(MailboxId, u64, u64)>, StoreError> {
            let txn = self.db.begin_read()?;
            let log = txn.open_table(LOG)?;
            let mut out = Vec::new();
            for row in log.iter()? {
                let (k, v) = row?;
                let item = parse_item(k.value(), v.value())?;
                out.push((item.mailbox, item.sealed.len() as u64, item.sender_tag));
            }
            Ok(out)
        };
        read().map_err(fault)
    }

    fn next_seq(&self) -> Result<u64, StoreFault> {
        let read = || -> Result<u64, StoreError> {
            let txn = self.db.begin_read()?;
            let meta = txn.open_table(META)?;
            let Some(v) = meta.get(NEXT_SEQ_KEY)? else {
                return Ok(1);
            };
            <[u8; 8]>::try_from(v.value())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("the next sequence number"))
        };
        read().map_err(fault)
    }
}

#[cfg(test)]
mod tests {
    use hush_protocol::relay::Removal;

    use super::*;

    fn item(mailbox: u8, seq: u64, at: u64) -> StoredMail {
        StoredMail {
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
        let writes = (1..=5)
            .map(|s| RelayWrite::Deposit(item(1, s, s * 10)))
            .collect();
        store.apply(writes).unwrap();
        store
            .apply(vec![RelayWrite::Deposit(item(2, 6, 60))])
            .unwrap();
        let (page, more) = store.page(&MailboxId([1; 32]), 0, 3, 1 << 20).unwrap();
        assert_eq!(page.iter().map(|i| i.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(more);
        let (rest, more) = store.page(&MailboxId([1; 32]), 3, 10, 1 << 20).unwrap();
        assert_eq!(rest.iter().map(|i| i.0).collect::<Vec<_>>(), [4, 5]);
        assert!(!more);
        let d = DepositDigest::of(&item(1, 2, 0).sealed);
        assert_eq!(
            store.stored(&[d, DepositDigest([0; 32])]).unwrap(),
            [true, false]
        );
        // Another mailbox cannot delete it.
        let applied = store
            .apply(vec![RelayWrite::Delete(
                MailboxId([2; 32]),
                2,
                Removal::Acked,
            )])
            .unwrap();
        assert!(applied.deleted.is_empty());
        let applied = store
            .apply(vec![RelayWrite::Delete(
                MailboxId([1; 32]),
                2,
                Removal::Acked,
            )])
            .unwrap();
        assert_eq!(
            applied.deleted,
            vec![(MailboxId([1; 32]), 40, 9, Removal::Acked)]
        );
        assert_eq!(store.stored(&[d]).unwrap(), [false]);
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
        let device = DeviceId([3; 32]);
        let (one, two) = (OneTimeKey([1; 32]), OneTimeKey([2; 32]));
        store
            .apply(vec![RelayWrite::PutKeys {
                device,
                one_time: vec![(one, vec![1]), (two, vec![2])],
                fallback: vec![9],
            }])
            .unwrap();
        assert_eq!(store.keys_left(&device).unwrap(), 2);
        let (key, bundle) = store.hosted_key(&device, &|_| false).unwrap().unwrap();
        assert_eq!((key, bundle), (Some(one), vec![1]));
        let (key, _) = store.hosted_key(&device, &|k| *k == one).unwrap().unwrap();
        assert_eq!(key, Some(two));
        store
            .apply(vec![
                RelayWrite::TakeKey { device, key: one },
                RelayWrite::TakeKey { device, key: two },
            ])
            .unwrap();
        assert_eq!(
            store.hosted_key(&device, &|_| false).unwrap(),
            Some((None, vec![9]))
        );
        assert_eq!(
            store.hosted_key(&DeviceId([4; 32]), &|_| false).unwrap(),
            None
        );
        // The identity is made once and then kept.
        assert_eq!(store.identity().unwrap(), store.identity().unwrap());
    }
}

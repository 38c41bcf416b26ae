//! The redb side of the relay's store: table layouts and the writes and
//! reads over them, inside a transaction the caller owns.

use hush_protocol::MailboxId;
use hush_protocol::relay::{DepositDigest, RelayWrite, StoredMail};
use redb::{TableDefinition, WriteTransaction};

use super::StoreError;
use super::overlay::MailWrite;

pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(super) const INDEX: TableDefinition<(&[u8; 32], u64), ()> = TableDefinition::new("mailbox");
pub(super) const DIGESTS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("digests");
pub(super) const OTKS: TableDefinition<(&[u8; 32], &[u8; 32]), &[u8]> =
    TableDefinition::new("otks");
pub(super) const FALLBACK: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("fallback");
/// A mailbox's revoked deposit-right holders: 16-byte tags, concatenated.
pub(super) const REVOKED: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("revoked");
/// Devices their account revoked (their mailboxes are refused for good).
pub(super) const DROPPED: TableDefinition<&[u8; 32], ()> = TableDefinition::new("dropped");
/// A device's push registration: its token (16 bytes) ‖ the endpoint URL.
pub(super) const PUSH: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("push");
/// (expiry in Unix ms, seq) → mailbox, for mail its sender gave an expiry
/// (a disappearing message): the order they are dropped in.
pub(super) const EXPIRES: TableDefinition<(u64, u64), &[u8; 32]> = TableDefinition::new("expires");
/// seq → its expiry, to find the `expires` row when the item goes first.
pub(super) const EXPIRES_BY_SEQ: TableDefinition<u64, u64> = TableDefinition::new("expires_by_seq");

pub(super) const IDENTITY_KEY: &str = "identity";
pub(super) const NEXT_SEQ_KEY: &str = "next_seq";
/// How far into the mail logs redb's durable state reaches.
pub(super) const LOGGED_KEY: &str = "mail_log_position";
/// Bytes before the sealed envelope in a `log` value.
pub(super) const MAIL_HEADER: usize = 48;

pub(super) fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(LOG)?;
    txn.open_table(INDEX)?;
    txn.open_table(DIGESTS)?;
    txn.open_table(OTKS)?;
    txn.open_table(FALLBACK)?;
    txn.open_table(REVOKED)?;
    txn.open_table(DROPPED)?;
    txn.open_table(PUSH)?;
    txn.open_table(EXPIRES)?;
    txn.open_table(EXPIRES_BY_SEQ)?;
    Ok(())
}

/// A `log` value: stored_at_ms ‖ sender tag ‖ mailbox ‖ sealed.
fn encode_item(item: &StoredMail) -> Vec<u8> {
    let mut value = Vec::with_capacity(MAIL_HEADER + item.sealed.len());
    value.extend_from_slice(&item.stored_at_ms.to_be_bytes());
    value.extend_from_slice(&item.sender_tag.to_be_bytes());
    value.extend_from_slice(&item.mailbox.0);
    value.extend_from_slice(&item.sealed);
    value
}

/// The fields of a `log` value, the sealed bytes borrowed.
pub(super) struct ItemRef<'a> {
    pub mailbox: MailboxId,
    pub stored_at_ms: u64,
    pub sender_tag: u64,
    pub sealed: &'a [u8],
}

pub(super) fn parse_item(value: &[u8]) -> Result<ItemRef<'_>, StoreError> {
    let corrupt = || StoreError::Corrupt("a mail record header");
    if value.len() < MAIL_HEADER {
        return Err(StoreError::Corrupt(
            "a mail record is shorter than its header",
        ));
    }
    let word = |b: &[u8]| <[u8; 8]>::try_from(b).map(u64::from_be_bytes);
    Ok(ItemRef {
        stored_at_ms: word(&value[..8]).map_err(|_| corrupt())?,
        sender_tag: word(&value[8..16]).map_err(|_| corrupt())?,
        mailbox: MailboxId(<[u8; 32]>::try_from(&value[16..48]).map_err(|_| corrupt())?),
        sealed: &value[MAIL_HEADER..],
    })
}

/// Applies mail writes (deposits, deletions, the next sequence number) in
/// `txn`, in order.
pub(super) fn write_mail<'w>(
    txn: &WriteTransaction,
    writes: impl IntoIterator<Item = &'w MailWrite>,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let mut log = txn.open_table(LOG)?;
    let mut index = txn.open_table(INDEX)?;
    let mut digests = txn.open_table(DIGESTS)?;
    let mut expires = txn.open_table(EXPIRES)?;
    let mut expires_by_seq = txn.open_table(EXPIRES_BY_SEQ)?;
    for write in writes {
        match write {
            MailWrite::Deposit(item) => {
                log.insert(item.seq, encode_item(item).as_slice())?;
                index.insert((&item.mailbox.0, item.seq), ())?;
                digests.insert(&DepositDigest::of(&item.sealed).0, item.seq)?;
                if let Some(at) = item.expires_at_ms {
                    expires.insert((at, item.seq), &item.mailbox.0)?;
                    expires_by_seq.insert(item.seq, at)?;
                }
            }
            MailWrite::Delete(mailbox, seq) => {
                // Only the mailbox's own item: an ack names seqs of the
                // signer's mailbox and nothing else.
                if index.remove((&mailbox.0, *seq))?.is_none() {
                    continue;
                }
                if let Some(at) = expires_by_seq.remove(*seq)?.map(|v| v.value()) {
                    expires.remove((at, *seq))?;
                }
                let removed = log.remove(*seq)?.map(|v| v.value().to_vec());
                if let Some(value) = removed {
                    digests.remove(&DepositDigest::of(parse_item(&value)?.sealed).0)?;
                }
            }
            MailWrite::NextSeq(seq) => {
                meta.insert(NEXT_SEQ_KEY, seq.to_be_bytes().as_slice())?;
            }
        }
    }
    Ok(())
}

/// Applies an owner's writes in `txn` (hosted keys, revoked holders, push);
/// anything else is ignored.
pub(super) fn write_keys(txn: &WriteTransaction, writes: &[RelayWrite]) -> Result<(), StoreError> {
    let mut otks = txn.open_table(OTKS)?;
    let mut fallback = txn.open_table(FALLBACK)?;
    let mut revoked = txn.open_table(REVOKED)?;
    let mut dropped = txn.open_table(DROPPED)?;
    let mut push = txn.open_table(PUSH)?;
    for write in writes {
        match write {
            RelayWrite::PutKeys {
                device,
                one_time,
                fallback: fb,
            } => {
                let d = &device.0;
                otks.retain_in((d, &[0u8; 32])..=(d, &[0xff; 32]), |_, _| false)?;
                for (key, bundle) in one_time {
                    otks.insert((d, &key.0), bundle.as_slice())?;
                }
                fallback.insert(d, fb.as_slice())?;
            }
            RelayWrite::TakeKey { device, key } => {
                otks.remove((&device.0, &key.0))?;
            }
            RelayWrite::Drop { device } => {
                let d = &device.0;
                otks.retain_in((d, &[0u8; 32])..=(d, &[0xff; 32]), |_, _| false)?;
                fallback.remove(d)?;
                push.remove(d)?;
                dropped.insert(d, ())?;
            }
            RelayWrite::PutPush {
                device,
                target: Some(target),
            } => {
                let value = [&target.token[..], target.endpoint.as_bytes()].concat();
                push.insert(&device.0, value.as_slice())?;
            }
            RelayWrite::PutPush {
                device,
                target: None,
            } => {
                push.remove(&device.0)?;
            }
            RelayWrite::PutRevoked { mailbox, holders } if holders.is_empty() => {
                revoked.remove(&mailbox.0)?;
            }
            RelayWrite::PutRevoked { mailbox, holders } => {
                revoked.insert(&mailbox.0, holders.concat().as_slice())?;
            }
            _ => {}
        }
    }
    Ok(())
}

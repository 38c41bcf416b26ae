//! Mail that is in the mail log but not yet in redb: what the store's
//! reads add to (and hide from) redb's state, and the log's record format.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use hush_protocol::MailboxId;
use hush_protocol::relay::{DepositDigest, StoredMail};

use super::StoreError;

/// A write of the mail path, as logged and then applied to redb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MailWrite {
    Deposit(Arc<StoredMail>),
    /// Deletes the mailbox's item under that seq (only logged when the
    /// item exists).
    Delete(MailboxId, u64),
    NextSeq(u64),
}

const DEPOSIT: u8 = 1;
const DELETE: u8 = 2;
const NEXT_SEQ: u8 = 3;
const DEPOSIT_EXPIRING: u8 = 4;

/// A log record's payload: the batch's writes back to back.
///
/// ```text
/// deposit  = 0x01 | seq u64 | stored_at_ms u64 | sender_tag u64 | mailbox [32] | len u32 | sealed
/// delete   = 0x02 | mailbox [32] | seq u64
/// next_seq = 0x03 | seq u64
/// deposit with an expiry = 0x04 | expires_at_ms u64 | then as 0x01 from seq on
/// ```
/// (integers big-endian)
pub(super) fn encode(writes: &[MailWrite]) -> Vec<u8> {
    let size = writes
        .iter()
        .map(|w| match w {
            MailWrite::Deposit(item) => 69 + item.sealed.len(),
            MailWrite::Delete(..) => 41,
            MailWrite::NextSeq(_) => 9,
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    for write in writes {
        match write {
            MailWrite::Deposit(item) => {
                match item.expires_at_ms {
                    Some(at) => {
                        out.push(DEPOSIT_EXPIRING);
                        out.extend_from_slice(&at.to_be_bytes());
                    }
                    None => out.push(DEPOSIT),
                }
                out.extend_from_slice(&item.seq.to_be_bytes());
                out.extend_from_slice(&item.stored_at_ms.to_be_bytes());
                out.extend_from_slice(&item.sender_tag.to_be_bytes());
                out.extend_from_slice(&item.mailbox.0);
                // The engine bounds sealed envelopes far below 4 GiB.
                out.extend_from_slice(&(item.sealed.len() as u32).to_be_bytes());
                out.extend_from_slice(&item.sealed);
            }
            MailWrite::Delete(mailbox, seq) => {
                out.push(DELETE);
                out.extend_from_slice(&mailbox.0);
                out.extend_from_slice(&seq.to_be_bytes());
            }
            MailWrite::NextSeq(seq) => {
                out.push(NEXT_SEQ);
                out.extend_from_slice(&seq.to_be_bytes());
            }
        }
    }
    out
}

pub(super) fn decode(mut bytes: &[u8]) -> Result<Vec<MailWrite>, StoreError> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], StoreError> {
        if bytes.len() < n {
            return Err(StoreError::Corrupt("a mail log record ends early"));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn word(bytes: &mut &[u8]) -> Result<u64, StoreError> {
        let b = take(bytes, 8)?;
        Ok(u64::from_be_bytes(b.try_into().unwrap_or_default()))
    }
    fn mailbox(bytes: &mut &[u8]) -> Result<MailboxId, StoreError> {
        let b = take(bytes, 32)?;
        Ok(MailboxId(b.try_into().unwrap_or_default()))
    }
    let mut out = Vec::new();
    while let Some((&kind, rest)) = bytes.split_first() {
        bytes = rest;
        out.push(match kind {
            DEPOSIT | DEPOSIT_EXPIRING => {
                let expires_at_ms = match kind {
                    DEPOSIT_EXPIRING => Some(word(&mut bytes)?),
                    _ => None,
                };
                let seq = word(&mut bytes)?;
                let stored_at_ms = word(&mut bytes)?;
                let sender_tag = word(&mut bytes)?;
                let mailbox = mailbox(&mut bytes)?;
                let len = take(&mut bytes, 4)?;
                let len = u32::from_be_bytes(len.try_into().unwrap_or_default()) as usize;
                let sealed = take(&mut bytes, len)?.to_vec();
                MailWrite::Deposit(Arc::new(StoredMail {
                    mailbox,
                    seq,
                    stored_at_ms,
                    sender_tag,
                    sealed,
                    expires_at_ms,
                }))
            }
            DELETE => {
                let mailbox = mailbox(&mut bytes)?;
                MailWrite::Delete(mailbox, word(&mut bytes)?)
            }
            NEXT_SEQ => MailWrite::NextSeq(word(&mut bytes)?),
            _ => return Err(StoreError::Corrupt("a mail log record of unknown kind")),
        });
    }
    Ok(out)
}

/// What the logged, not yet indexed writes change about redb's state.
/// Bounded by the mail logs' capacity: the writer waits for the indexer
/// before it reuses a log.
///
/// It is kept in parts, one per pile the indexer takes, oldest first, so
/// that letting go of a pile once redb holds it is one `pop_front` under
/// the lock (the writer and the readers wait on that lock), not a removal
/// per write.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    parts: VecDeque<Part>,
    pub next_seq: u64,
}

#[derive(Debug, Default)]
pub(super) struct Part {
    /// Deposits not yet (known to be) in redb, by seq.
    items: BTreeMap<u64, Arc<StoredMail>>,
    by_mailbox: BTreeSet<([u8; 32], u64)>,
    digests: HashMap<[u8; 32], u64>,
    /// Deleted items redb may still hold.
    deleted: HashSet<u64>,
}

impl Part {
    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.deleted.is_empty()
    }

    fn forget(&mut self, seq: u64) -> bool {
        let Some(item) = self.items.remove(&seq) else {
            return false;
        };
        self.by_mailbox.remove(&(item.mailbox.0, seq));
        let digest = DepositDigest::of(&item.sealed).0;
        if self.digests.get(&digest) == Some(&seq) {
            self.digests.remove(&digest);
        }
        true
    }
}

impl Overlay {
    /// The live item under `seq` if it is here and belongs to `mailbox`.
    pub fn item(&self, mailbox: &MailboxId, seq: u64) -> Option<&Arc<StoredMail>> {
        self.parts
            .iter()
            .find_map(|p| p.items.get(&seq))
            .filter(|i| i.mailbox == *mailbox)
    }

    /// Whether `seq` was deleted (redb may still hold it).
    pub fn is_deleted(&self, seq: u64) -> bool {
        self.parts.iter().any(|p| p.deleted.contains(&seq))
    }

    /// Whether a live deposit with this digest is here.
    pub fn has_digest(&self, digest: &DepositDigest) -> bool {
        self.parts.iter().any(|p| p.digests.contains_key(&digest.0))
    }

    /// The live items of `mailbox` with seq ≥ `from`, in seq order.
    pub fn mailbox_items<'a>(
        &'a self,
        mailbox: &'a MailboxId,
        from: u64,
    ) -> impl Iterator<Item = &'a Arc<StoredMail>> + 'a {
        self.parts.iter().flat_map(move |p| {
            p.by_mailbox
                .range((mailbox.0, from)..=(mailbox.0, u64::MAX))
                .filter_map(|(_, seq)| p.items.get(seq))
        })
    }

    /// All live items with seq ≥ `from`, in seq order.
    pub fn items(&self, from: u64) -> impl Iterator<Item = &Arc<StoredMail>> {
        self.parts
            .iter()
            .flat_map(move |p| p.items.range(from..).map(|e| e.1))
    }

    /// Takes in a batch that is now in the log.
    pub fn add(&mut self, writes: &[MailWrite]) {
        if self.parts.is_empty() {
            self.parts.push_back(Part::default());
        }
        for write in writes {
            match write {
                MailWrite::Deposit(item) => {
                    let Some(part) = self.parts.back_mut() else {
                        continue;
                    };
                    part.by_mailbox.insert((item.mailbox.0, item.seq));
                    part.digests
                        .insert(DepositDigest::of(&item.sealed).0, item.seq);
                    part.items.insert(item.seq, item.clone());
                }
                MailWrite::Delete(mailbox, seq) => {
                    if self.item(mailbox, *seq).is_some() {
                        for part in &mut self.parts {
                            if part.forget(*seq) {
                                break;
                            }
                        }
                    }
                    if let Some(part) = self.parts.back_mut() {
                        part.deleted.insert(*seq);
                    }
                }
                MailWrite::NextSeq(seq) => self.next_seq = self.next_seq.max(*seq),
            }
        }
    }

    /// Closes the newest part: what the indexer takes now is everything
    /// before the part that later batches go to. Returns how many parts
    /// that is.
    pub fn seal(&mut self) -> usize {
        if self.parts.back().is_some_and(|p| !p.is_empty()) {
            self.parts.push_back(Part::default());
        }
        self.parts.len().saturating_sub(1)
    }

    /// Lets go of the `sealed` oldest parts, which redb now holds
    /// durably; the caller drops them (outside the lock).
    pub fn indexed(&mut self, sealed: usize) -> Vec<Part> {
        let n = sealed.min(self.parts.len());
        self.parts.drain(..n).collect()
    }
}

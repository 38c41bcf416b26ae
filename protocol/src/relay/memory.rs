//! A [`MailLookup`] in memory, for the deterministic harness, the engine's
//! tests and its fuzz target: the same contract as the relay's redb store
//! (ordered log, per-mailbox index, dedupe digests, hosted keys).

use std::collections::{BTreeMap, HashMap};

use super::storage::{
    Applied, DepositDigest, HostedKey, MailLookup, MailPage, OneTimeKey, RelayWrite, Revoked,
    StoreFault, StoredMail,
};
use crate::{DeviceId, MailboxId};

#[derive(Debug, Default, Clone)]
pub struct MemoryMailStore {
    log: BTreeMap<u64, StoredMail>,
    digests: HashMap<DepositDigest, u64>,
    one_time: BTreeMap<(DeviceId, OneTimeKey), Vec<u8>>,
    fallback: HashMap<DeviceId, Vec<u8>>,
    revoked: BTreeMap<MailboxId, Vec<[u8; 16]>>,
    dropped: std::collections::BTreeSet<DeviceId>,
    push: BTreeMap<DeviceId, crate::PushTarget>,
    next_seq: u64,
    /// When set, the next commit fails (and changes nothing).
    pub fail_next_commit: bool,
}

impl MemoryMailStore {
    /// Applies a batch as one transaction.
    pub fn apply(&mut self, writes: Vec<RelayWrite>) -> Result<Applied, StoreFault> {
        if std::mem::take(&mut self.fail_next_commit) {
            return Err(StoreFault("the disk is full (simulated)".into()));
        }
        let mut applied = Applied::default();
        for write in writes {
            match write {
                RelayWrite::Deposit(item) => {
                    self.digests
                        .insert(DepositDigest::of(&item.sealed), item.seq);
                    self.log.insert(item.seq, item);
                    applied.deposited += 1;
                }
                RelayWrite::Delete(mailbox, seq, why) => {
                    if self.log.get(&seq).is_some_and(|i| i.mailbox == mailbox)
                        && let Some(item) = self.log.remove(&seq)
                    {
                        self.digests.remove(&DepositDigest::of(&item.sealed));
                        let len = item.sealed.len() as u64;
                        applied.deleted.push((mailbox, len, item.sender_tag, why));
                    }
                }
                RelayWrite::PutKeys {
                    device,
                    one_time,
                    fallback,
                } => {
                    self.one_time.retain(|(d, _), _| *d != device);
                    for (key, bundle) in one_time {
                        self.one_time.insert((device, key), bundle);
                    }
                    self.fallback.insert(device, fallback);
                }
                RelayWrite::TakeKey { device, key } => {
                    self.one_time.remove(&(device, key));
                }
                RelayWrite::NextSeq(seq) => self.next_seq = seq,
                RelayWrite::Drop { device } => {
                    self.one_time.retain(|(d, _), _| *d != device);
                    self.fallback.remove(&device);
                    self.push.remove(&device);
                    self.dropped.insert(device);
                }
                RelayWrite::PutPush { device, target } => match target {
                    Some(target) => {
                        self.push.insert(device, target);
                    }
                    None => {
                        self.push.remove(&device);
                    }
                },
                RelayWrite::PutRevoked { mailbox, holders } => {
                    if holders.is_empty() {
                        self.revoked.remove(&mailbox);
                    } else {
                        self.revoked.insert(mailbox, holders);
                    }
                }
            }
        }
        Ok(applied)
    }

    /// Items stored, over all mailboxes.
    pub fn len(&self) -> usize {
        self.log.len()
    }

    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// The mailbox of each stored item, in order: what a relay sees of
    /// who writes where.
    pub fn mailboxes(&self) -> Vec<MailboxId> {
        self.log.values().map(|m| m.mailbox).collect()
    }
}

impl MailLookup for MemoryMailStore {
    fn revoked(&self) -> Result<Vec<Revoked>, StoreFault> {
        Ok(self.revoked.iter().map(|(m, h)| (*m, h.clone())).collect())
    }

    fn dropped(&self) -> Result<Vec<DeviceId>, StoreFault> {
        Ok(self.dropped.iter().copied().collect())
    }

    fn push_targets(&self) -> Result<Vec<(DeviceId, crate::PushTarget)>, StoreFault> {
        Ok(self.push.iter().map(|(d, t)| (*d, t.clone())).collect())
    }

    fn stored(&self, digests: &[DepositDigest]) -> Result<Vec<bool>, StoreFault> {
        Ok(digests
            .iter()
            .map(|d| self.digests.contains_key(d))
            .collect())
    }

    fn page(
        &self,
        mailbox: &MailboxId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MailPage, StoreFault> {
        let mut items = Vec::new();
        let mut bytes = 0;
        for item in self
            .log
            .range(after.saturating_add(1)..)
            .map(|(_, i)| i)
            .filter(|i| i.mailbox == *mailbox)
        {
            if items.len() >= limit || bytes + item.sealed.len() > max_bytes && !items.is_empty() {
                return Ok((items, true));
            }
            bytes += item.sealed.len();
            items.push((item.seq, item.sealed.clone()));
        }
        Ok((items, false))
    }

    fn hosted_key(
        &self,
        device: &DeviceId,
        skip: &dyn Fn(&OneTimeKey) -> bool,
    ) -> Result<Option<HostedKey>, StoreFault> {
        let one_time = self
            .one_time
            .iter()
            .filter(|((d, k), _)| d == device && !skip(k))
            .map(|((_, k), bundle)| (Some(*k), bundle.clone()))
            .next();
        Ok(one_time.or_else(|| self.fallback.get(device).map(|b| (None, b.clone()))))
    }

    fn keys_left(&self, device: &DeviceId) -> Result<u32, StoreFault> {
        let n = self.one_time.keys().filter(|(d, _)| d == device).count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn expired(
        &self,
        cutoff_ms: u64,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(MailboxId, u64)>, StoreFault> {
        let old = self.log.values().take_while(|i| i.stored_at_ms < cutoff_ms);
        let due = self.log.values().filter(|i| {
            i.stored_at_ms >= cutoff_ms && i.expires_at_ms.is_some_and(|at| at <= now_ms)
        });
        Ok(old
            .chain(due)
            .take(limit)
            .map(|i| (i.mailbox, i.seq))
            .collect())
    }

    fn usage(&self) -> Result<Vec<(MailboxId, u64, u64)>, StoreFault> {
        Ok(self
            .log
            .values()
            .map(|i| (i.mailbox, i.sealed.len() as u64, i.sender_tag))
            .collect())
    }

    fn next_seq(&self) -> Result<u64, StoreFault> {
        Ok(self.next_seq.max(1))
    }
}

//! Deposits: who may leave how much in which mailbox (deposit rights,
//! quotas, strangers' shares), and what is written for it.

use std::collections::HashSet;
use std::net::IpAddr;

use super::{After, MAX_PENDING_BYTES, MAX_REMEMBERED_RIGHTS, RelayEngine};
use crate::relay::{DepositDigest, MailLookup, RelayWrite, StoredMail};
use crate::{
    DepositItem, DepositResult, DepositRight, MailboxResponse, Now, Refusal, SealedEnvelope, Wire,
};

impl<R> RelayEngine<R> {
    /// Whether a deposit right is the device's own signature (answers are
    /// remembered: a contact sends the same right with every deposit).
    fn right_holds(&mut self, right: &DepositRight) -> bool {
        let key = *blake3::hash(&right.to_bytes()).as_bytes();
        if let Some(known) = self.rights.get(&key) {
            return *known;
        }
        let holds = right.verify();
        if self.rights.len() >= MAX_REMEMBERED_RIGHTS {
            self.rights.clear();
        }
        self.rights.insert(key, holds);
        holds
    }

    /// Whether the mailbox's owner revoked this right (it blocked the
    /// holder): its items then count as a stranger's.
    fn is_revoked(&self, right: &DepositRight) -> bool {
        self.revoked
            .get(&right.mailbox())
            .is_some_and(|holders| holders.contains(&right.holder))
    }

    pub(super) fn deposit(
        &mut self,
        now: Now,
        (sender, ip): (&[u8], Option<IpAddr>),
        right: Option<DepositRight>,
        items: Vec<DepositItem>,
        reply: R,
        store: &impl MailLookup,
    ) {
        let stranger = self.secrets.sender_tag(sender);
        // Items for the right's mailbox count as its holder's, in the
        // contacts' share; everything else as this connection's.
        let holder = right
            .filter(|r| self.right_holds(r) && !self.is_revoked(r))
            .map(|r| (r.mailbox(), self.secrets.holder_tag(&r.holder)));
        let digests: Vec<DepositDigest> =
            items.iter().map(|i| DepositDigest::of(&i.sealed)).collect();
        // One read for the whole deposit; if it fails, the items are
        // refused as unavailable (never stored twice).
        let known = match store.stored(&digests) {
            Ok(known) => Some(known),
            Err(e) => {
                self.fault("looking up deposit digests", e);
                None
            }
        };
        let mut results = Vec::with_capacity(items.len());
        let mut wait_for_commit = false;
        let mut settled = Vec::new();
        let mut woken = HashSet::new();
        for (i, (item, digest)) in items.into_iter().zip(digests).enumerate() {
            let DepositItem {
                mailbox,
                sealed,
                expires_at_ms,
            } = item;
            let len = sealed.len() as u64;
            let tag = match holder {
                Some((opens, tag)) if opens == mailbox => tag,
                _ => stranger,
            };
            let known = known.as_ref().map(|k| k.get(i).copied().unwrap_or(false));
            let refusal = if self.dropped.contains(&mailbox) {
                Some(Refusal::Dropped)
            } else if SealedEnvelope::from_bytes(&sealed).is_err() {
                Some(Refusal::Malformed)
            } else if len > self.rules.quotas.max_item_bytes {
                Some(Refusal::TooLarge)
            } else {
                None
            };
            let result = if let Some(reason) = refusal {
                DepositResult::Refused(reason)
            } else if self.pending.contains(&digest) {
                // Its first copy is being committed: answer once that is done.
                wait_for_commit = true;
                DepositResult::Duplicate
            } else if known == Some(true) {
                DepositResult::Duplicate
            } else if known.is_none() || self.batch.bytes + sealed.len() > MAX_PENDING_BYTES {
                DepositResult::Refused(Refusal::Unavailable)
            } else if let Some(reason) = self.usage.check(&self.rules.quotas, &mailbox, tag, len) {
                DepositResult::Refused(reason)
            } else if tag == stranger
                && ip.is_some_and(|ip| !self.stranger_ips.allow(now.mono_ms, ip))
            {
                // One address with many peer ids: try again in a minute.
                DepositResult::Refused(Refusal::Unavailable)
            } else {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.seq_changed = true;
                self.usage.add(mailbox, len, tag);
                self.pending.insert(digest);
                settled.push(digest);
                self.batch.bytes += sealed.len();
                self.batch.writes.push(RelayWrite::Deposit(StoredMail {
                    mailbox,
                    seq,
                    stored_at_ms: now.unix_ms,
                    sender_tag: tag,
                    sealed,
                    expires_at_ms,
                }));
                woken.insert(mailbox);
                wait_for_commit = true;
                DepositResult::Stored
            };
            match result {
                DepositResult::Duplicate => self.stats.duplicates += 1,
                DepositResult::Refused(reason) => self.count_refusal(reason),
                DepositResult::Stored => {}
            }
            results.push(result);
        }
        let response = MailboxResponse::Deposited { results };
        if wait_for_commit {
            self.batch.after.push(After::Reply(reply, response));
            self.batch.after.push(After::Settled(settled));
            for mailbox in woken {
                self.batch.after.push(After::Wake(mailbox));
            }
        } else {
            self.replies.push_back((reply, response));
        }
    }
}

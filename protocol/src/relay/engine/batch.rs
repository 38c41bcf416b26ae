//! Batch requests: an owner's fetch or ack over its own mailbox and its
//! pairwise ones (see [`KeySet`]). Key sets are checked once per challenge
//! and remembered, so later batches name them by digest.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::{After, FETCH_BYTES, RelayEngine, RelayEvent};
use crate::relay::{MailLookup, RelayWrite, Removal, StoreFault};
use crate::{
    Auth, BatchItem, BatchRequest, DeviceId, KeySet, MAX_MAILBOX_ITEMS, MailboxId, MailboxResponse,
    Now, Refusal,
};

/// Mailboxes the remembered key sets may name together, at most; the
/// oldest sets are forgotten first (their owners send them again).
pub const MAX_REMEMBERED_SET_KEYS: usize = 1 << 18;
/// Key proofs checked per IP address a minute, at most (a full set costs
/// one signature check a key: about 0.6 s of a core for this many). An
/// owner sends its set in full once per challenge (5 minutes).
pub const SET_KEYS_PER_IP_MINUTE: u32 = 16_384;
/// Addresses whose key proofs are counted at once.
pub const MAX_SET_IPS: usize = 4_096;

/// A key set the relay checked: whose it is, under which challenge, and
/// the mailboxes it names (the owner's own first).
#[derive(Debug)]
struct KnownSet {
    owner: DeviceId,
    challenge: [u8; 32],
    mailboxes: Vec<MailboxId>,
}

/// Key sets checked lately, by digest, oldest first.
#[derive(Debug, Default)]
pub(super) struct KnownSets {
    sets: HashMap<[u8; 32], KnownSet>,
    order: VecDeque<[u8; 32]>,
    keys: usize,
    /// The set each owner's last batch named (one entry per remembered
    /// owner: bounded with the sets).
    latest: HashMap<DeviceId, [u8; 32]>,
}

impl KnownSets {
    fn get(&mut self, digest: &[u8; 32], auth: &Auth) -> Option<&[MailboxId]> {
        let set = self
            .sets
            .get(digest)
            .filter(|s| s.owner == auth.device && s.challenge == auth.challenge)?;
        self.latest.insert(auth.device, *digest);
        Some(set.mailboxes.as_slice())
    }

    /// The mailboxes `device`'s last batch named (its own first), while
    /// that set is remembered.
    pub(super) fn latest(&self, device: &DeviceId) -> Option<&[MailboxId]> {
        let digest = self.latest.get(device)?;
        self.sets.get(digest).map(|s| s.mailboxes.as_slice())
    }

    fn insert(&mut self, digest: [u8; 32], set: KnownSet) {
        if self.sets.contains_key(&digest) {
            return;
        }
        while self.keys + set.mailboxes.len() > MAX_REMEMBERED_SET_KEYS {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.sets.remove(&old) {
                self.keys -= gone.mailboxes.len();
                if self.latest.get(&gone.owner) == Some(&old) {
                    self.latest.remove(&gone.owner);
                }
            }
        }
        self.keys += set.mailboxes.len();
        self.order.push_back(digest);
        self.latest.insert(set.owner, digest);
        self.sets.insert(digest, set);
    }
}

impl<R> RelayEngine<R> {
    /// A batch whose auth is fresh and verified: resolves its key set and
    /// answers the fetch or queues the deletes.
    pub(super) fn batch(
        &mut self,
        (now, ip): (Now, Option<IpAddr>),
        auth: &Auth,
        keys: KeySet,
        request: BatchRequest,
        reply: R,
        store: &impl MailLookup,
    ) {
        let mailboxes = match self.resolve_set(now, ip, auth, keys) {
            Ok(mailboxes) => mailboxes,
            Err(refusal) => return self.reply(reply, MailboxResponse::refused(refusal)),
        };
        // A device registered for push is woken for mail in these too
        // (also when it registered after the relay learnt the set).
        self.pushes
            .set_pairwise(&auth.device, mailboxes.get(1..).unwrap_or_default());
        match request {
            BatchRequest::Fetch { after, limit } => {
                self.stats.fetches += 1;
                let limit = usize::from(limit).clamp(1, MAX_MAILBOX_ITEMS);
                // Empty mailboxes are not read: a device with hundreds of
                // pairwise mailboxes polls about once a second, and most
                // hold nothing.
                let usage = &self.usage;
                match merged_page(&mailboxes, |m| usage.holds(m), after, limit, store)
                    .and_then(|(items, more)| Ok((items, more, store.keys_left(&auth.device)?)))
                {
                    Ok((items, more, keys_left)) => self.reply(
                        reply,
                        MailboxResponse::Batch {
                            items,
                            more,
                            keys_left,
                        },
                    ),
                    Err(e) => {
                        self.fault("reading a mailbox", e);
                        self.reply(reply, MailboxResponse::refused(Refusal::Unavailable));
                    }
                }
            }
            BatchRequest::Ack { items } => {
                let mut removed = 0u32;
                for (index, seq) in items {
                    if let Some(mailbox) = mailboxes.get(usize::from(index)) {
                        removed += 1;
                        self.batch
                            .writes
                            .push(RelayWrite::Delete(*mailbox, seq, Removal::Acked));
                    }
                }
                self.batch
                    .after
                    .push(After::Reply(reply, MailboxResponse::Acked { removed }));
            }
        }
    }

    /// The mailboxes a batch covers, its signer's own first. Refused
    /// `NotOwner` when a proof fails; `StaleChallenge` when a set named by
    /// digest is not remembered (forgotten, or of another challenge: the
    /// owner sends it in full under a new one); `Unavailable` when the
    /// address checked its share of proofs this minute.
    fn resolve_set(
        &mut self,
        now: Now,
        ip: Option<IpAddr>,
        auth: &Auth,
        keys: KeySet,
    ) -> Result<Vec<MailboxId>, Refusal> {
        match keys {
            KeySet::Known(digest) => self
                .known_sets
                .get(&digest, auth)
                .map(<[_]>::to_vec)
                .ok_or(Refusal::StaleChallenge),
            KeySet::Full { keys, proofs } => {
                let digest = KeySet::digest(&auth.challenge, &auth.device, &keys);
                if let Some(known) = self.known_sets.get(&digest, auth) {
                    return Ok(known.to_vec());
                }
                let count = u32::try_from(keys.len()).unwrap_or(u32::MAX);
                if ip.is_some_and(|ip| !self.set_ips.allow_n(now.mono_ms, ip, count)) {
                    return Err(Refusal::Unavailable);
                }
                if !KeySet::proofs_hold(&digest, &keys, &proofs) {
                    self.events.push_back(RelayEvent::ForgedOwnerRequest);
                    return Err(Refusal::NotOwner);
                }
                let mailboxes: Vec<MailboxId> = std::iter::once(&auth.device)
                    .chain(&keys)
                    .map(MailboxId::of)
                    .collect();
                self.known_sets.insert(
                    digest,
                    KnownSet {
                        owner: auth.device,
                        challenge: auth.challenge,
                        mailboxes: mailboxes.clone(),
                    },
                );
                Ok(mailboxes)
            }
        }
    }
}

/// The items after `after` in any of `mailboxes`, in sequence order: at
/// most `limit` and about [`FETCH_BYTES`]. Sequence numbers are one counter
/// over all mailboxes, so the page ends before the first item some
/// mailbox could not include (the next page, from the last item's number,
/// then misses nothing).
fn merged_page(
    mailboxes: &[MailboxId],
    holds: impl Fn(&MailboxId) -> bool,
    after: u64,
    limit: usize,
    store: &impl MailLookup,
) -> Result<(Vec<BatchItem>, bool), StoreFault> {
    let mut items: Vec<BatchItem> = Vec::new();
    // Items past this number may be missing from the pages read.
    let mut complete_to = u64::MAX;
    // Each mailbox gets a share of the byte budget (and gives at least
    // one item), so a large set reads about one page, not one per mailbox.
    let held: Vec<(usize, &MailboxId)> = mailboxes
        .iter()
        .enumerate()
        .filter(|(_, m)| holds(m))
        .collect();
    let share = (FETCH_BYTES / held.len().max(1)).max(1);
    for (index, mailbox) in held {
        let Ok(index) = u16::try_from(index) else {
            break;
        };
        let (page, more) = store.page(mailbox, after, limit, share)?;
        if more && let Some((last, _)) = page.last() {
            complete_to = complete_to.min(*last);
        }
        items.extend(page.into_iter().map(|(seq, sealed)| (index, seq, sealed)));
    }
    items.sort_unstable_by_key(|(_, seq, _)| *seq);
    let mut more = complete_to != u64::MAX;
    items.retain(|(_, seq, _)| *seq <= complete_to);
    let mut bytes = 0;
    let mut keep = 0;
    for (_, _, sealed) in &items {
        if keep >= limit || (keep > 0 && bytes + sealed.len() > FETCH_BYTES) {
            break;
        }
        bytes += sealed.len();
        keep += 1;
    }
    if keep < items.len() {
        more = true;
        items.truncate(keep);
    }
    Ok((items, more))
}

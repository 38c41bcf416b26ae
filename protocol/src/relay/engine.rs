//! The relay engine: every decision a relay makes about mailboxes, owner
//! challenges, quotas and hosted keys, with no IO.
//!
//! In: mailbox requests (bytes, the sender's peer id, and an opaque reply
//! token `R` the host gives back with the answer), finished commits, and
//! timeouts, each with the time ([`Now`]). Reads it needs mid-decision go
//! through [`MailLookup`]. Out: batches of [`RelayWrite`]s to commit
//! ([`RelayEngine::poll_commit`]), answers ([`RelayEngine::poll_reply`]),
//! things worth logging ([`RelayEngine::poll_event`]), counters
//! ([`RelayEngine::stats`]) and the next deadline.
//!
//! Durability: a deposit is acked, a one-time key handed out, an ack or a
//! key upload answered only once the batch holding it committed. While one
//! batch commits, the next gathers (group commit).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use super::dht::RateLimit;
use super::quota::{Quotas, Usage};
use super::secrets::Secrets;
use super::storage::{
    Applied, DepositDigest, MailLookup, OneTimeKey, RelayWrite, Removal, StoreFault,
};
use crate::{
    Auth, DepositResult, DeviceId, DeviceList, KeyBundle, MAX_FETCH_WAIT_MS, MAX_MAILBOX_ITEMS,
    MailboxId, MailboxRequest, MailboxResponse, Now, OwnerRequest, Refusal, Wire, revoked_devices,
};

mod batch;
mod deposit;
mod push;

pub use batch::{MAX_REMEMBERED_SET_KEYS, SET_KEYS_PER_IP_MINUTE};
pub use push::{MAX_PUSH_MAILBOXES, MAX_PUSH_QUEUE, PUSH_SETS_PER_IP_MINUTE, PushRules, is_public};

/// Deposits waiting for the next commit may hold at most this many bytes;
/// beyond it the relay answers `Unavailable` and senders retry.
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// Fetches held open waiting for mail, at most one per mailbox.
pub const MAX_WAITERS: usize = 10_000;
/// Bytes of mail one fetch answer carries, about.
pub const FETCH_BYTES: usize = 1024 * 1024;
/// Expired items deleted per sweep (the rest go in the next one).
pub const EXPIRE_BATCH: usize = 10_000;
/// Sweeps for expired mail run every quarter of the retention period, but
/// no more often than every `MIN_SWEEP_MS` and at least once a second (mail
/// whose sender gave it an expiry goes within a second of it; a sweep with
/// nothing to drop costs two index lookups).
const MIN_SWEEP_MS: u64 = 250;
const MAX_SWEEP_MS: u64 = 1_000;

/// How the engine is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRules {
    pub quotas: Quotas,
    /// How long unfetched mail is kept (advertised to nodes).
    pub retention_secs: u64,
    /// Push for offline devices.
    pub push: PushRules,
}

/// Counters for the relay's metrics: everything is counted once it
/// happened (deposits and deletions once their commit landed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub stored_messages: u64,
    pub stored_bytes: u64,
    pub deposits: u64,
    pub duplicates: u64,
    pub fetches: u64,
    pub delivered: u64,
    pub expired: u64,
    pub keys_claimed: u64,
    pub commits: u64,
    /// Mailboxes dropped because their device was revoked.
    pub dropped_mailboxes: u64,
    /// Holders whose deposit rights mailbox owners revoked, all mailboxes
    /// together.
    pub revoked_holders: u64,
    /// Refusals answered, by [`Refusal`] code.
    pub refusals: [u64; Refusal::COUNT],
    /// Devices with a push registration.
    pub push_devices: u64,
    /// Wake-ups handed to the host, and those dropped for a full queue.
    pub pushes: u64,
    pub pushes_dropped: u64,
}

/// Something the host should log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// A store read or commit failed; what it was doing.
    Fault {
        during: &'static str,
        error: StoreFault,
    },
    /// A request was not signed by the mailbox's owner.
    ForgedOwnerRequest,
    /// Expired mail is being deleted.
    Expiring { items: usize },
}

/// Runs once the batch it was queued with committed (or failed).
#[derive(Debug)]
enum After<R> {
    Reply(R, MailboxResponse),
    /// New mail in this mailbox: answer a fetch waiting on it.
    Wake(MailboxId),
    /// These deposits are on disk now (or failed): the store answers for them.
    Settled(Vec<DepositDigest>),
    /// A handed-out one-time key is deleted on disk (or the delete failed).
    KeyGone(DeviceId, OneTimeKey),
}

#[derive(Debug)]
struct Batch<R> {
    writes: Vec<RelayWrite>,
    after: Vec<After<R>>,
    bytes: usize,
}

impl<R> Default for Batch<R> {
    fn default() -> Self {
        Self {
            writes: Vec::new(),
            after: Vec::new(),
            bytes: 0,
        }
    }
}

/// A fetch held open until mail arrives or its deadline.
#[derive(Debug)]
struct Waiter<R> {
    reply: R,
    device: DeviceId,
    after: u64,
    limit: usize,
    deadline_ms: u64,
}

/// Revoked holder tags a relay keeps across all mailboxes (16 bytes each);
/// an owner asking for more is refused `RelayFull`.
pub const MAX_REVOKED_TOTAL: usize = 65_536;

/// Most dropped mailboxes a relay remembers (32 bytes each).
pub const MAX_DROPPED: usize = 1 << 20;

/// One-time keys a device's relay hands out per minute at most; further
/// claims get the fallback key.
pub const KEY_CLAIMS_PER_MINUTE: u32 = 10;
/// Devices whose claims are counted at once (a minute's worth).
const MAX_CLAIM_WINDOWS: usize = 100_000;
/// Deposit rights whose check is remembered (forgotten all at once past it).
const MAX_REMEMBERED_RIGHTS: usize = 16_384;
/// IP addresses whose strangers' deposits are counted at once.
const MAX_STRANGER_IPS: usize = 100_000;

/// The relay's mailbox logic. `R` is the host's reply token (a response
/// channel), handed back with each answer.
#[derive(Debug)]
pub struct RelayEngine<R> {
    rules: RelayRules,
    secrets: Secrets,
    usage: Usage,
    next_seq: u64,
    seq_changed: bool,
    batch: Batch<R>,
    /// What waits for the batch being committed; `None` when none is.
    committing: Option<Vec<After<R>>>,
    /// Deposits not yet durable.
    pending: HashSet<DepositDigest>,
    /// One-time keys handed out but not yet deleted on disk.
    taken: HashSet<(DeviceId, OneTimeKey)>,
    /// One-time keys handed out per device in the current minute: (minute
    /// start, count); at most [`MAX_CLAIM_WINDOWS`] devices.
    claims: HashMap<DeviceId, (u64, u32)>,
    /// Deposit rights checked lately, by their hash: whether each holds.
    rights: HashMap<[u8; 32], bool>,
    /// Holder tags whose rights each mailbox's owner revoked.
    revoked: HashMap<MailboxId, HashSet<[u8; 16]>>,
    /// Revoked holder tags across every mailbox (at most
    /// [`MAX_REVOKED_TOTAL`]).
    revoked_total: usize,
    /// Strangers' items deposited per IP address this minute.
    stranger_ips: RateLimit<IpAddr>,
    /// Mailboxes of devices their account revoked (at most
    /// [`MAX_DROPPED`]): refused for good.
    dropped: HashSet<MailboxId>,
    waiters: HashMap<MailboxId, Waiter<R>>,
    /// Push registrations, and the wake-ups due.
    pushes: push::Pushes,
    /// Pairwise key sets checked lately (see `MailboxRequest::Batch`).
    known_sets: batch::KnownSets,
    /// Key proofs checked per address this minute.
    set_ips: RateLimit<IpAddr>,
    /// Push registrations per address this minute.
    push_ips: RateLimit<IpAddr>,
    next_sweep_ms: u64,
    replies: VecDeque<(R, MailboxResponse)>,
    events: VecDeque<RelayEvent>,
    stats: RelayStats,
}

impl<R> RelayEngine<R> {
    /// An engine over a store as it is on disk. `secrets` are two fresh
    /// random keys (challenges, sender tags) from the host.
    pub fn load(
        rules: RelayRules,
        secrets: [[u8; 32]; 2],
        store: &impl MailLookup,
        now: Now,
    ) -> Result<Self, StoreFault> {
        let usage = Usage::from_rows(store.usage()?);
        let stats = RelayStats {
            stored_messages: usage.items,
            stored_bytes: usage.bytes,
            ..RelayStats::default()
        };
        let [challenge_key, tag_key] = secrets;
        let per_ip = u32::try_from(rules.quotas.stranger_items_per_ip_minute).unwrap_or(u32::MAX);
        let revoked: HashMap<MailboxId, HashSet<[u8; 16]>> = store
            .revoked()?
            .into_iter()
            .map(|(mailbox, holders)| (mailbox, holders.into_iter().collect()))
            .collect();
        let revoked_total = revoked.values().map(HashSet::len).sum();
        let dropped = store.dropped()?.iter().map(MailboxId::of).collect();
        let pushes = push::Pushes::load(store.push_targets()?, &rules.push);
        Ok(Self {
            stranger_ips: RateLimit::new(per_ip, MAX_STRANGER_IPS),
            next_sweep_ms: now.mono_ms,
            rules,
            secrets: Secrets::new(challenge_key, tag_key),
            usage,
            next_seq: store.next_seq()?,
            seq_changed: false,
            batch: Batch::default(),
            committing: None,
            pending: HashSet::new(),
            taken: HashSet::new(),
            claims: HashMap::new(),
            rights: HashMap::new(),
            revoked,
            revoked_total,
            dropped,
            waiters: HashMap::new(),
            pushes,
            known_sets: batch::KnownSets::default(),
            set_ips: RateLimit::new(batch::SET_KEYS_PER_IP_MINUTE, batch::MAX_SET_IPS),
            push_ips: RateLimit::new(push::PUSH_SETS_PER_IP_MINUTE, batch::MAX_SET_IPS),
            replies: VecDeque::new(),
            events: VecDeque::new(),
            stats,
        })
    }

    pub fn stats(&self) -> RelayStats {
        RelayStats {
            stored_messages: self.usage.items,
            stored_bytes: self.usage.bytes,
            revoked_holders: self.revoked_total as u64,
            dropped_mailboxes: self.dropped.len() as u64,
            push_devices: self.pushes.len() as u64,
            ..self.stats
        }
    }

    /// A mailbox request from `sender` (its peer id's bytes), whose IP
    /// address the host does not know.
    pub fn handle_request(
        &mut self,
        now: Now,
        sender: &[u8],
        bytes: &[u8],
        reply: R,
        store: &impl MailLookup,
    ) {
        self.handle_request_from(now, sender, None, bytes, reply, store);
    }

    /// A mailbox request from `sender` (its peer id's bytes) over a
    /// connection from `ip`: strangers' deposits count per address too
    /// ([`Quotas::stranger_items_per_ip_minute`]).
    pub fn handle_request_from(
        &mut self,
        now: Now,
        sender: &[u8],
        ip: Option<IpAddr>,
        bytes: &[u8],
        reply: R,
        store: &impl MailLookup,
    ) {
        let request = match MailboxRequest::from_bytes(bytes) {
            Ok(r) => r,
            Err(e) => {
                let response = MailboxResponse::Refused {
                    reason: Refusal::Malformed,
                    message: format!("the relay could not decode the request: {e}"),
                };
                self.reply(reply, response);
                return;
            }
        };
        match request {
            MailboxRequest::Info => {
                let response = MailboxResponse::Info {
                    challenge: self.secrets.challenge(now.unix_ms / 1000),
                    retention_secs: self.rules.retention_secs,
                    max_item_len: u32::try_from(self.rules.quotas.max_item_bytes)
                        .unwrap_or(u32::MAX),
                };
                self.reply(reply, response);
            }
            MailboxRequest::Deposit { right, items } => {
                self.deposit(now, (sender, ip), right, items, reply, store);
            }
            MailboxRequest::ClaimKey { device }
                if self.dropped.contains(&MailboxId::of(&device)) =>
            {
                self.reply(reply, MailboxResponse::refused(Refusal::Dropped));
            }
            MailboxRequest::ClaimKey { device } => self.claim_key(now, device, reply, store),
            MailboxRequest::DropRevoked { old, new } => self.drop_revoked(&old, &new, reply),
            MailboxRequest::Owner { auth, .. } | MailboxRequest::Batch { auth, .. }
                if self.dropped.contains(&MailboxId::of(&auth.device)) =>
            {
                self.reply(reply, MailboxResponse::refused(Refusal::Dropped));
            }
            MailboxRequest::Owner { auth, request } => {
                if let Some(reply) = self.owner_checks(now, &auth, &request.body_bytes(), reply) {
                    self.pushes.seen(&auth.device, sender);
                    match request {
                        OwnerRequest::SetPush { target } => {
                            self.set_push((now, ip), auth.device, sender, target, reply);
                        }
                        request => self.owner_request(now, &auth, request, reply, store),
                    }
                }
            }
            MailboxRequest::Batch {
                auth,
                keys,
                request,
            } => {
                let body = request.body_bytes(&keys);
                if let Some(reply) = self.owner_checks(now, &auth, &body, reply) {
                    self.pushes.seen(&auth.device, sender);
                    self.batch((now, ip), &auth, keys, request, reply, store);
                }
            }
        }
    }

    /// The batch to commit next, once the previous one finished: the host
    /// applies it in one durable transaction and reports with
    /// [`RelayEngine::handle_committed`].
    pub fn poll_commit(&mut self) -> Option<Vec<RelayWrite>> {
        if self.committing.is_some() {
            return None;
        }
        if std::mem::take(&mut self.seq_changed) {
            self.batch.writes.push(RelayWrite::NextSeq(self.next_seq));
        }
        if self.batch.writes.is_empty() && self.batch.after.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut self.batch);
        self.committing = Some(batch.after);
        Some(batch.writes)
    }

    /// Whether a batch handed out by [`RelayEngine::poll_commit`] has not
    /// been reported yet.
    pub fn is_committing(&self) -> bool {
        self.committing.is_some()
    }

    /// The batch from the last [`RelayEngine::poll_commit`] committed, or
    /// failed (then nothing of it is on disk).
    pub fn handle_committed(
        &mut self,
        result: Result<Applied, StoreFault>,
        store: &impl MailLookup,
    ) {
        let Some(mut afters) = self.committing.take() else {
            return;
        };
        match &result {
            Ok(applied) => {
                self.stats.commits += 1;
                self.stats.deposits += applied.deposited;
                for (mailbox, bytes, tag, why) in &applied.deleted {
                    self.usage.remove(*mailbox, *bytes, *tag);
                    match why {
                        Removal::Acked => self.stats.delivered += 1,
                        Removal::Expired => self.stats.expired += 1,
                    }
                }
            }
            Err(e) => {
                self.events.push_back(RelayEvent::Fault {
                    during: "a write batch (what it held is refused)",
                    error: e.clone(),
                });
                // What was gathered since may build on it (a duplicate of a
                // lost deposit): refuse that too, and recount from disk.
                let later = std::mem::take(&mut self.batch);
                afters.extend(later.after);
                self.recount(store);
            }
        }
        let ok = result.is_ok();
        for after in afters {
            match after {
                After::Reply(reply, response) if ok => self.reply(reply, response),
                After::Reply(reply, response) => {
                    let refused = match response {
                        MailboxResponse::Deposited { results } => MailboxResponse::Deposited {
                            results: vec![
                                DepositResult::Refused(Refusal::Unavailable);
                                results.len()
                            ],
                        },
                        _ => MailboxResponse::refused(Refusal::Unavailable),
                    };
                    self.reply(reply, refused);
                }
                After::Wake(mailbox) if ok => {
                    self.pushes.mail_arrived(&mailbox);
                    self.wake(&mailbox, store);
                }
                After::Wake(_) => {}
                After::Settled(digests) => {
                    for d in digests {
                        self.pending.remove(&d);
                    }
                }
                After::KeyGone(device, key) => {
                    self.taken.remove(&(device, key));
                }
            }
        }
    }

    /// Answers fetches whose wait ran out and, when due, queues expired
    /// mail for deletion.
    pub fn handle_timeout(&mut self, now: Now, store: &impl MailLookup) {
        let expired: Vec<MailboxId> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline_ms <= now.mono_ms)
            .map(|(m, _)| *m)
            .collect();
        for mailbox in expired {
            if let Some(w) = self.waiters.remove(&mailbox) {
                let response = self.empty_page(&w.device, store);
                self.reply(w.reply, response);
            }
        }
        let dropped = self.pushes.tick(now, self.push_interval_ms());
        self.stats.pushes_dropped += dropped;
        if now.mono_ms >= self.next_sweep_ms {
            let every = (self.rules.retention_secs.saturating_mul(1000) / 4)
                .clamp(MIN_SWEEP_MS, MAX_SWEEP_MS);
            self.next_sweep_ms = now.mono_ms.saturating_add(every);
            self.sweep(now, store);
        }
    }

    /// When [`RelayEngine::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> u64 {
        let push = self
            .pushes
            .next_due(self.push_interval_ms())
            .unwrap_or(u64::MAX);
        self.waiters
            .values()
            .map(|w| w.deadline_ms)
            .fold(self.next_sweep_ms.min(push), u64::min)
    }

    pub fn poll_reply(&mut self) -> Option<(R, MailboxResponse)> {
        self.replies.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// Whether an owner request's challenge is fresh and its signature the
    /// owner's over `body`; if not, refuses it (and gives the reply back
    /// only when it passed).
    fn owner_checks(&mut self, now: Now, auth: &Auth, body: &[u8], reply: R) -> Option<R> {
        if !self.secrets.is_fresh(&auth.challenge, now.unix_ms / 1000) {
            self.reply(reply, MailboxResponse::refused(Refusal::StaleChallenge));
            None
        } else if !auth.verify(body) {
            self.events.push_back(RelayEvent::ForgedOwnerRequest);
            self.reply(reply, MailboxResponse::refused(Refusal::NotOwner));
            None
        } else {
            Some(reply)
        }
    }

    fn reply(&mut self, reply: R, response: MailboxResponse) {
        if let MailboxResponse::Refused { reason, .. } = &response {
            self.count_refusal(*reason);
        }
        self.replies.push_back((reply, response));
    }

    fn count_refusal(&mut self, reason: Refusal) {
        if let Some(n) = self.stats.refusals.get_mut(reason as usize) {
            *n += 1;
        }
    }

    fn fault(&mut self, during: &'static str, error: StoreFault) {
        self.events.push_back(RelayEvent::Fault { during, error });
    }

    fn recount(&mut self, store: &impl MailLookup) {
        match store.usage() {
            Ok(rows) => self.usage = Usage::from_rows(rows),
            Err(e) => self.fault("recounting usage", e),
        }
        match store.next_seq() {
            Ok(seq) => self.next_seq = self.next_seq.max(seq),
            Err(e) => self.fault("rereading the sequence", e),
        }
    }

    /// Bytes the relay keeps besides mail (group history, files): they
    /// count in the same disk budget (`Quotas::disk_bytes`).
    pub fn set_other_bytes(&mut self, bytes: u64) {
        self.usage.other = bytes;
    }

    /// Bytes of mail held.
    pub fn mail_bytes(&self) -> u64 {
        self.usage.bytes
    }

    /// Whether `len` more bytes of something other than mail fit the disk
    /// budget.
    pub fn disk_has_room(&self, len: u64) -> bool {
        self.usage.bytes + self.usage.other + len <= self.rules.quotas.disk_bytes
    }

    /// Whether another of `device`'s one-time keys may go out now: at most
    /// [`KEY_CLAIMS_PER_MINUTE`] a minute, so a stranger cannot drain them
    /// (the fallback key answers beyond that).
    fn may_take_key(&mut self, now: Now, device: DeviceId) -> bool {
        let minute = now.mono_ms / 60_000;
        if !self.claims.contains_key(&device) && self.claims.len() >= MAX_CLAIM_WINDOWS {
            self.claims.retain(|_, (start, _)| *start == minute);
            if self.claims.len() >= MAX_CLAIM_WINDOWS {
                return false;
            }
        }
        let (start, count) = self.claims.entry(device).or_insert((minute, 0));
        if *start != minute {
            *start = minute;
            *count = 0;
        }
        if *count >= KEY_CLAIMS_PER_MINUTE {
            return false;
        }
        *count += 1;
        true
    }

    /// An account revoked devices (see [`revoked_devices`]): their
    /// mailboxes and hosted keys go, and they are refused from now on.
    /// Their mail becomes unreadable at once and is deleted as it expires.
    fn drop_revoked(&mut self, old: &DeviceList, new: &DeviceList, reply: R) {
        let devices = match revoked_devices(old, new) {
            Ok(devices) => devices,
            Err(e) => {
                let response = MailboxResponse::Refused {
                    reason: Refusal::Malformed,
                    message: format!("nothing to drop: {e}"),
                };
                self.reply(reply, response);
                return;
            }
        };
        let fresh = devices
            .iter()
            .filter(|d| !self.dropped.contains(&MailboxId::of(d)))
            .count();
        if self.dropped.len() + fresh > MAX_DROPPED {
            self.reply(reply, MailboxResponse::refused(Refusal::RelayFull));
            return;
        }
        for device in &devices {
            let mailbox = MailboxId::of(device);
            self.dropped.insert(mailbox);
            // Written again when asked again: a drop whose commit failed
            // (answered `Unavailable`, so the owner retries) lands then.
            self.batch.writes.push(RelayWrite::Drop { device: *device });
            self.pushes.remove(device);
            if let Some(w) = self.waiters.remove(&mailbox) {
                self.reply(w.reply, MailboxResponse::refused(Refusal::Dropped));
            }
        }
        let devices = u16::try_from(devices.len()).unwrap_or(u16::MAX);
        self.batch
            .after
            .push(After::Reply(reply, MailboxResponse::Dropped { devices }));
    }

    fn claim_key(&mut self, now: Now, device: DeviceId, reply: R, store: &impl MailLookup) {
        let one_time = self.may_take_key(now, device);
        let taken = &self.taken;
        let found = store.hosted_key(&device, &|k| !one_time || taken.contains(&(device, *k)));
        match found {
            Ok(Some((key, bundle))) => {
                let Ok(bundle) = KeyBundle::from_bytes(&bundle) else {
                    self.reply(reply, MailboxResponse::refused(Refusal::Unavailable));
                    return;
                };
                self.stats.keys_claimed += 1;
                match key {
                    Some(key) => {
                        // Handed out once: deleted before anyone hears of it.
                        self.taken.insert((device, key));
                        self.batch.writes.push(RelayWrite::TakeKey { device, key });
                        self.batch
                            .after
                            .push(After::Reply(reply, MailboxResponse::Key(bundle)));
                        self.batch.after.push(After::KeyGone(device, key));
                    }
                    // The fallback key stays: hand it out at once.
                    None => self.reply(reply, MailboxResponse::Key(bundle)),
                }
            }
            Ok(None) => self.reply(reply, MailboxResponse::refused(Refusal::NoKeys)),
            Err(e) => {
                self.fault("reading hosted keys", e);
                self.reply(reply, MailboxResponse::refused(Refusal::Unavailable));
            }
        }
    }

    fn owner_request(
        &mut self,
        now: Now,
        auth: &Auth,
        request: OwnerRequest,
        reply: R,
        store: &impl MailLookup,
    ) {
        let device = auth.device;
        let mailbox = MailboxId::of(&device);
        match request {
            OwnerRequest::Fetch {
                after,
                limit,
                wait_ms,
            } => {
                self.stats.fetches += 1;
                let limit = usize::from(limit).clamp(1, MAX_MAILBOX_ITEMS);
                match self.page(&mailbox, &device, after, limit, store) {
                    Ok(MailboxResponse::Items { items, .. }) if items.is_empty() && wait_ms > 0 => {
                        self.park(now, mailbox, device, after, limit, wait_ms, reply, store);
                    }
                    Ok(response) => self.reply(reply, response),
                    Err(e) => {
                        self.fault("reading a mailbox", e);
                        self.reply(reply, MailboxResponse::refused(Refusal::Unavailable));
                    }
                }
            }
            OwnerRequest::Ack { seqs } => {
                let removed = u32::try_from(seqs.len()).unwrap_or(u32::MAX);
                for seq in seqs {
                    self.batch
                        .writes
                        .push(RelayWrite::Delete(mailbox, seq, Removal::Acked));
                }
                self.batch
                    .after
                    .push(After::Reply(reply, MailboxResponse::Acked { removed }));
            }
            OwnerRequest::PutKeys { one_time, fallback } => {
                let max = usize::try_from(self.rules.quotas.one_time_keys_per_device)
                    .unwrap_or(usize::MAX);
                let foreign = one_time
                    .iter()
                    .chain([&fallback])
                    .any(|b| b.device_id != device);
                if foreign || one_time.len() > max {
                    let response = MailboxResponse::Refused {
                        reason: Refusal::Malformed,
                        message: format!(
                            "keys must be the signing device's own, at most {max} one-time keys"
                        ),
                    };
                    self.reply(reply, response);
                    return;
                }
                let count = u32::try_from(one_time.len()).unwrap_or(u32::MAX);
                self.batch.writes.push(RelayWrite::PutKeys {
                    device,
                    one_time: one_time
                        .iter()
                        .map(|b| (OneTimeKey(b.one_time_key), b.to_bytes()))
                        .collect(),
                    fallback: fallback.to_bytes(),
                });
                self.batch.after.push(After::Reply(
                    reply,
                    MailboxResponse::KeysStored { one_time: count },
                ));
            }
            // Answered in `handle_request_from` (it needs the peer).
            OwnerRequest::SetPush { .. } => {
                self.reply(reply, MailboxResponse::refused(Refusal::Malformed));
            }
            OwnerRequest::Revoke { holders } => {
                let holders: HashSet<[u8; 16]> = holders.into_iter().collect();
                let before = self.revoked.get(&mailbox).map_or(0, HashSet::len);
                let after = self.revoked_total - before + holders.len();
                if after > MAX_REVOKED_TOTAL {
                    self.reply(reply, MailboxResponse::refused(Refusal::RelayFull));
                    return;
                }
                self.revoked_total = after;
                let count = u16::try_from(holders.len()).unwrap_or(u16::MAX);
                let mut list: Vec<[u8; 16]> = holders.iter().copied().collect();
                list.sort_unstable();
                if holders.is_empty() {
                    self.revoked.remove(&mailbox);
                } else {
                    self.revoked.insert(mailbox, holders);
                }
                self.batch.writes.push(RelayWrite::PutRevoked {
                    mailbox,
                    holders: list,
                });
                self.batch.after.push(After::Reply(
                    reply,
                    MailboxResponse::Revoked { holders: count },
                ));
            }
        }
    }

    fn page(
        &self,
        mailbox: &MailboxId,
        device: &DeviceId,
        after: u64,
        limit: usize,
        store: &impl MailLookup,
    ) -> Result<MailboxResponse, StoreFault> {
        let (items, more) = store.page(mailbox, after, limit, FETCH_BYTES)?;
        Ok(MailboxResponse::Items {
            items,
            more,
            keys_left: store.keys_left(device)?,
        })
    }

    fn empty_page(&self, device: &DeviceId, store: &impl MailLookup) -> MailboxResponse {
        MailboxResponse::Items {
            items: Vec::new(),
            more: false,
            keys_left: store.keys_left(device).unwrap_or(0),
        }
    }

    /// Holds an empty fetch open until mail arrives (a push, without a
    /// second protocol). One waiter per mailbox: a newer fetch replaces it.
    #[allow(clippy::too_many_arguments)]
    fn park(
        &mut self,
        now: Now,
        mailbox: MailboxId,
        device: DeviceId,
        after: u64,
        limit: usize,
        wait_ms: u32,
        reply: R,
        store: &impl MailLookup,
    ) {
        if self.waiters.len() >= MAX_WAITERS && !self.waiters.contains_key(&mailbox) {
            let response = self.empty_page(&device, store);
            self.reply(reply, response);
            return;
        }
        let waiter = Waiter {
            reply,
            device,
            after,
            limit,
            deadline_ms: now
                .mono_ms
                .saturating_add(u64::from(wait_ms.min(MAX_FETCH_WAIT_MS))),
        };
        if let Some(old) = self.waiters.insert(mailbox, waiter) {
            let response = self.empty_page(&old.device, store);
            self.reply(old.reply, response);
        }
    }

    fn wake(&mut self, mailbox: &MailboxId, store: &impl MailLookup) {
        let Some(w) = self.waiters.remove(mailbox) else {
            return;
        };
        match self.page(mailbox, &w.device, w.after, w.limit, store) {
            Ok(response) => self.reply(w.reply, response),
            Err(e) => {
                self.fault("reading a mailbox", e);
                self.reply(w.reply, MailboxResponse::refused(Refusal::Unavailable));
            }
        }
    }

    /// Queues mail older than the retention period for deletion.
    fn sweep(&mut self, now: Now, store: &impl MailLookup) {
        let cutoff = now
            .unix_ms
            .saturating_sub(self.rules.retention_secs.saturating_mul(1000));
        match store.expired(cutoff, now.unix_ms, EXPIRE_BATCH) {
            Ok(items) => {
                if !items.is_empty() {
                    self.events
                        .push_back(RelayEvent::Expiring { items: items.len() });
                }
                for (mailbox, seq) in items {
                    self.batch
                        .writes
                        .push(RelayWrite::Delete(mailbox, seq, Removal::Expired));
                }
            }
            Err(e) => self.fault("looking for expired mail", e),
        }
    }
}

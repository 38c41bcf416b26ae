//! The relay's store: sealed mail per mailbox, dedupe digests, hosted
//! one-time keys and the relay's own identity, in redb (`relay.redb`),
//! with mail written first to a pair of logs (`mail-0.wal`, `mail-1.wal`).
//!
//! | table      | key                     | value                                  |
//! |------------|-------------------------|----------------------------------------|
//! | `meta`     | name                    | bytes (identity secret, next seq, log position) |
//! | `log`      | seq                     | stored_at_ms u64 ‖ sender tag u64 ‖ mailbox ‖ sealed |
//! | `mailbox`  | (mailbox, seq)          | (): each mailbox's items, in order     |
//! | `digests`  | blake3(sealed)          | seq: dedupe of resent deposits         |
//! | `otks`     | (device, one-time key)  | key bundle                             |
//! | `fallback` | device                  | key bundle                             |
//!
//! **The mail path.** A deposit is acknowledged once it is on the disk,
//! and the cheapest way there is one sequential append and one
//! `fdatasync`. Every redb commit of a batch of deposits dirties a page of
//! `digests` and of `mailbox` per envelope (both are keyed by hashes), so a
//! durable commit writes and syncs megabytes at full ingest; waiting for it
//! set the ack latency. So [`Store::apply`] appends each batch's mail
//! writes to the active mail log ([`hush_host::wal`]) and syncs, and the
//! batch counts as committed; an *indexer* thread then applies what the
//! logs hold to redb, as many batches per durable commit as have piled up,
//! and records in `meta` how far it got. Until a batch is in redb, the
//! [`Overlay`] adds its deposits to the store's reads and hides its
//! deletions, so the engine sees every committed batch at once.
//!
//! The two logs take turns: when the active one is full the writer moves
//! to the other, first waiting (if it must) until the indexer has put
//! everything that log held into redb. So the mail in memory is bounded by
//! the two logs' size. On open, records past the position redb records
//! are applied to redb before anything else. A batch larger than a whole
//! log goes straight into redb in a durable commit, after the indexer has
//! caught up.
//!
//! Hosted keys (`PutKeys`, `TakeKey`) are rare and read right after they
//! are written: they are committed to redb durably in `apply` itself.

mod overlay;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hush_host::wal::{Position, Wal};
use hush_protocol::relay::{
    Applied, DepositDigest, HostedKey, MailLookup, MailPage, OneTimeKey, RelayWrite, Revoked,
    StoreFault, StoredMail,
};
use hush_protocol::{DeviceId, MailboxId, PushTarget};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use thiserror::Error;

use overlay::{MailWrite, Overlay};
use tables::{
    DIGESTS, DROPPED, EXPIRES, FALLBACK, INDEX, LOG, LOGGED_KEY, META, OTKS, PUSH, REVOKED,
    parse_item,
};

/// Each mail log's size: about a second of full ingest.
const LOG_CAPACITY: u64 = 16 * 1024 * 1024;
/// The indexer's `nice` value: below the threads that answer peers, so
/// under load it yields the CPU to them and the logs absorb the lag.
#[cfg(target_os = "linux")]
const INDEXER_NICE: i32 = 10;
/// The indexer lets logged batches pile up for this long, or until this
/// many bytes are queued, before it commits them: a few large commits cost
/// the disk far less than hundreds of small ones.
const INDEX_DELAY: Duration = Duration::from_millis(200);
const INDEX_BYTES: usize = 4 * 1024 * 1024;
/// How long the indexer waits before retrying a commit that failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

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
    #[error("the relay's mail log could not be read or written: {0}")]
    Log(#[source] std::io::Error),
    #[error("the relay could not move mail from its log into its database: {0}")]
    Index(String),
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

pub struct Store {
    db: Arc<Database>,
    shared: Arc<Shared>,
    /// Held by `apply` throughout: batches are logged one at a time.
    logs: Mutex<Logs>,
    indexer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// What the writer, the indexer and the readers share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a batch is queued or the store is closing.
    work: Condvar,
    /// Signalled when the indexer finished (or failed) a commit.
    progress: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stop {
    #[default]
    Running,
    /// Index everything queued, then stop (a clean close).
    Drain,
    /// Stop at once (tests: what a crash leaves).
    #[cfg(test)]
    Abandon,
}

/// How the mail logs are doing, for the relay's metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// Log bytes not yet moved into redb.
    pub unindexed_bytes: u64,
    /// Durable redb commits the indexer made.
    pub index_commits: u64,
    /// Times a deposit batch waited for the indexer (both logs full).
    pub writer_waits: u64,
}

#[derive(Default)]
struct State {
    overlay: Overlay,
    /// Logged batches not yet handed to the indexer, oldest first, their
    /// log payload's bytes, and when the oldest was queued.
    queue: VecDeque<(Position, Vec<MailWrite>)>,
    queued_bytes: usize,
    oldest: Option<Instant>,
    /// A writer waits for the indexer: commit without waiting for more.
    hurry: bool,
    /// The last log position redb holds durably.
    indexed: Position,
    stats: LogStats,
    /// Why the indexer's last commit failed, until one succeeds.
    fault: Option<String>,
    stop: Stop,
    #[cfg(test)]
    paused: bool,
}

struct Logs {
    files: [Wal; 2],
    active: usize,
    /// The last record appended to each log since its restart.
    last: [Option<Position>; 2],
}

impl Logs {
    fn latest(&self) -> Option<Position> {
        self.last.iter().flatten().max().copied()
    }
}

impl Store {
    /// Opens (or creates) the store at `path` with redb's page cache of
    /// the default size ([`crate::config::DEFAULT_DB_CACHE_BYTES`]).
    #[cfg(test)]
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(
            path,
            LOG_CAPACITY,
            crate::config::DEFAULT_DB_CACHE_BYTES as usize,
        )
    }

    /// Opens (or creates) the store at `path`, keeping at most
    /// `cache_bytes` of the database in memory (pages read, and pages
    /// written but not yet synced).
    pub fn open_cached(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        Self::open_with(path, LOG_CAPACITY, cache_bytes)
    }

    fn open_with(path: &Path, log_capacity: u64, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)?;
        let txn = db.begin_write()?;
        tables::create_all(&txn)?;
        txn.commit()?;

        let durable = {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            match meta.get(LOGGED_KEY)? {
                Some(v) => Position::from_bytes(v.value())
                    .ok_or(StoreError::Corrupt("the mail log position"))?,
                None => Position::default(),
            }
        };
        let log_path = |i: usize| path.with_file_name(format!("mail-{i}.wal"));
        let open = |i| Wal::open_after(&log_path(i), log_capacity, Some(durable));
        let (first, mut replay) = open(0).map_err(StoreError::Log)?;
        let (second, more) = open(1).map_err(StoreError::Log)?;
        replay.extend(more);
        replay.sort_by_key(|r| r.position);
        let top = [first.next_position(), second.next_position(), durable]
            .iter()
            .map(|p| p.generation)
            .max()
            .unwrap_or_default();
        if let Some(last) = replay.last() {
            let mut writes = Vec::new();
            for record in &replay {
                writes.extend(overlay::decode(&record.payload)?);
            }
            let txn = db.begin_write()?;
            tables::write_mail(&txn, &writes)?;
            txn.open_table(META)?
                .insert(LOGGED_KEY, last.position.to_bytes().as_slice())?;
            txn.commit()?;
            tracing::info!(
                batches = replay.len(),
                "mail log replayed into the database"
            );
        }
        let mut files = [first, second];
        files[0].restart(top + 1);

        let db = Arc::new(db);
        let shared = Arc::new(Shared::default());
        shared.lock().indexed = Position {
            generation: top,
            seq: u64::MAX,
        };
        let indexer = {
            let (db, shared) = (db.clone(), shared.clone());
            std::thread::Builder::new()
                .name("relay-indexer".into())
                .spawn(move || index(&db, &shared))
                .map_err(StoreError::Log)?
        };
        Ok(Self {
            db,
            shared,
            logs: Mutex::new(Logs {
                files,
                active: 0,
                last: [None, None],
            }),
            indexer: Some(indexer),
        })
    }

    /// The relay's libp2p secret, created on first start.
    pub fn identity(&self) -> Result<[u8; 32], StoreError> {
        let txn = self.db.begin_write()?;
        let secret = {
            let mut meta = txn.open_table(META)?;
            let existing = meta.get(tables::IDENTITY_KEY)?.map(|v| v.value().to_vec());
            match existing {
                Some(bytes) => <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| StoreError::Corrupt("the relay identity"))?,
                None => {
                    let secret: [u8; 32] = rand::random();
                    meta.insert(tables::IDENTITY_KEY, secret.as_slice())?;
                    secret
                }
            }
        };
        txn.commit()?;
        Ok(secret)
    }

    /// How the mail logs are doing.
    /// Devices with a fallback key here (every node uploads one), and
    /// one-time keys held for all devices together.
    pub fn hosted_keys(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let devices = txn.open_table(FALLBACK)?.len()?;
        let keys = txn.open_table(OTKS)?.len()?;
        Ok((devices, keys))
    }

    pub fn log_stats(&self) -> LogStats {
        self.shared.lock().stats
    }

    /// Commits a batch: when this returns `Ok`, all of it is on the disk
    /// and every read sees it. On `Err`, none of it is visible (a deposit
    /// whose log append failed after its bytes reached the disk may still
    /// come back after a restart: its sender resent it, and the owner's
    /// node drops the copy).
    pub fn apply(&self, writes: Vec<RelayWrite>) -> Result<Applied, StoreError> {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let (mail, keys, applied) = self.resolve(writes)?;
        if !mail.is_empty() {
            self.log(&mut logs, mail)?;
        }
        if !keys.is_empty() {
            let txn = self.db.begin_write()?;
            tables::write_keys(&txn, &keys)?;
            txn.commit()?;
        }
        Ok(applied)
    }

    /// Splits a batch into mail writes and key writes, and finds which
    /// deletions name an existing item of their mailbox (only those are
    /// logged and reported).
    fn resolve(
        &self,
        writes: Vec<RelayWrite>,
    ) -> Result<(Vec<MailWrite>, Vec<RelayWrite>, Applied), StoreError> {
        let (mut mail, mut keys, mut applied) = (Vec::new(), Vec::new(), Applied::default());
        let mut batch: HashMap<u64, Arc<StoredMail>> = HashMap::new();
        let mut gone = HashSet::new();
        let (state, txn) = self.view()?;
        let (index, log) = (txn.open_table(INDEX)?, txn.open_table(LOG)?);
        for write in writes {
            match write {
                RelayWrite::Deposit(item) => {
                    let item = Arc::new(item);
                    batch.insert(item.seq, item.clone());
                    mail.push(MailWrite::Deposit(item));
                    applied.deposited += 1;
                }
                RelayWrite::Delete(mailbox, seq, why) => {
                    if gone.contains(&seq) || state.overlay.is_deleted(seq) {
                        continue;
                    }
                    let here = batch.get(&seq).filter(|i| i.mailbox == mailbox);
                    let found = match here.or_else(|| state.overlay.item(&mailbox, seq)) {
                        Some(item) => Some((item.sealed.len(), item.sender_tag)),
                        None if index.get((&mailbox.0, seq))?.is_some() => match log.get(seq)? {
                            Some(v) => {
                                let item = parse_item(v.value())?;
                                Some((item.sealed.len(), item.sender_tag))
                            }
                            None => None,
                        },
                        None => None,
                    };
                    let Some((len, tag)) = found else {
                        continue;
                    };
                    gone.insert(seq);
                    mail.push(MailWrite::Delete(mailbox, seq));
                    applied.deleted.push((mailbox, len as u64, tag, why));
                }
                RelayWrite::NextSeq(seq) => mail.push(MailWrite::NextSeq(seq)),
                keys_write => keys.push(keys_write),
            }
        }
        Ok((mail, keys, applied))
    }

    /// Appends a batch of mail writes to the active log and syncs, then
    /// shows it to readers and queues it for the indexer.
    fn log(&self, logs: &mut Logs, mail: Vec<MailWrite>) -> Result<(), StoreError> {
        let payload = overlay::encode(&mail);
        if !logs.files[logs.active].could_fit(payload.len()) {
            // Larger than a whole log: into redb directly, after all that
            // was logged before it.
            if let Some(latest) = logs.latest() {
                self.wait_until_indexed(latest)?;
            }
            let txn = self.db.begin_write()?;
            tables::write_mail(&txn, &mail)?;
            txn.commit()?;
            return Ok(());
        }
        if !logs.files[logs.active].fits(payload.len()) {
            let next = 1 - logs.active;
            if let Some(last) = logs.last[next] {
                self.wait_until_indexed(last)?;
            }
            let generation = logs.files[logs.active].next_position().generation + 1;
            logs.files[next].restart(generation);
            logs.last[next] = None;
            logs.active = next;
        }
        let active = logs.active;
        let position = logs.files[active]
            .append(&payload, true)
            .map_err(StoreError::Log)?;
        logs.last[active] = Some(position);
        let mut state = self.shared.lock();
        state.overlay.add(&mail);
        state.queue.push_back((position, mail));
        state.queued_bytes += payload.len();
        state.stats.unindexed_bytes += payload.len() as u64;
        if state.oldest.is_none() || state.queued_bytes >= INDEX_BYTES {
            state.oldest.get_or_insert_with(Instant::now);
            self.shared.work.notify_one();
        }
        Ok(())
    }

    fn wait_until_indexed(&self, position: Position) -> Result<(), StoreError> {
        let mut state = self.shared.lock();
        if state.indexed < position {
            tracing::debug!("the mail logs are full; waiting for the indexer");
            state.stats.writer_waits += 1;
        }
        while state.indexed < position {
            if let Some(e) = &state.fault {
                return Err(StoreError::Index(e.clone()));
            }
            state.hurry = true;
            self.shared.work.notify_one();
            state = self
                .shared
                .progress
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }

    /// The overlay and a redb snapshot that agree: the indexer changes the
    /// overlay only under its lock and only after its commit, so a
    /// snapshot taken under the lock either lacks a batch the overlay
    /// still holds, or holds it (and the overlay may too).
    fn view(&self) -> Result<(MutexGuard<'_, State>, ReadTransaction), StoreError> {
        let state = self.shared.lock();
        let txn = self.db.begin_read()?;
        Ok((state, txn))
    }

    fn close(&mut self, how: Stop) {
        if let Some(indexer) = self.indexer.take() {
            self.shared.lock().stop = how;
            self.shared.work.notify_all();
            if indexer.join().is_err() {
                tracing::error!(
                    "the relay's indexer panicked; the mail log is replayed on the next start"
                );
            }
        }
    }
}

#[cfg(test)]
impl Store {
    fn pause_indexer(&self, paused: bool) {
        self.shared.lock().paused = paused;
        self.shared.work.notify_all();
    }

    /// Waits until redb holds everything logged so far.
    fn settle(&self) {
        let latest = self.logs.lock().unwrap().latest();
        if let Some(position) = latest {
            self.wait_until_indexed(position).unwrap();
        }
    }

    /// Stops the way a crash would: what the indexer has not applied is
    /// only in the logs.
    fn crash(mut self) {
        self.close(Stop::Abandon);
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close(Stop::Drain);
    }
}

/// The indexer: applies logged batches to redb, everything queued in one
/// durable commit, until the store closes.
fn index(db: &Database, shared: &Shared) {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), INDEXER_NICE)
    {
        tracing::debug!(error = %e, "could not lower the indexer's priority");
    }
    loop {
        let (sealed, pile_bytes);
        let batch: Vec<(Position, Vec<MailWrite>)> = {
            let mut state = shared.lock();
            loop {
                match state.stop {
                    Stop::Running => {}
                    Stop::Drain if !state.queue.is_empty() => {}
                    _ => return,
                }
                #[cfg(test)]
                let paused = state.paused && state.stop == Stop::Running;
                #[cfg(not(test))]
                let paused = false;
                let waited = state.oldest.map_or(Duration::ZERO, |t| t.elapsed());
                let wait = if state.queue.is_empty() || paused {
                    None
                } else if state.hurry
                    || state.stop != Stop::Running
                    || state.queued_bytes >= INDEX_BYTES
                    || waited >= INDEX_DELAY
                {
                    break;
                } else {
                    Some(INDEX_DELAY - waited)
                };
                state = match wait {
                    None => shared.work.wait(state).unwrap_or_else(|p| p.into_inner()),
                    Some(timeout) => match shared.work.wait_timeout(state, timeout) {
                        Ok((state, _)) => state,
                        Err(p) => p.into_inner().0,
                    },
                };
            }
            pile_bytes = std::mem::take(&mut state.queued_bytes);
            state.oldest = None;
            state.hurry = false;
            sealed = state.overlay.seal();
            state.queue.drain(..).collect()
        };
        let Some(last) = batch.last().map(|(p, _)| *p) else {
            continue;
        };
        let commit = || -> Result<(), StoreError> {
            let txn = db.begin_write()?;
            tables::write_mail(&txn, batch.iter().flat_map(|(_, w)| w))?;
            txn.open_table(META)?
                .insert(LOGGED_KEY, last.to_bytes().as_slice())?;
            txn.commit()?;
            Ok(())
        };
        let started = std::time::Instant::now();
        let result = commit();
        tracing::debug!(
            batches = batch.len(),
            ms = started.elapsed().as_millis() as u64,
            "mail log indexed"
        );
        let mut state = shared.lock();
        match result {
            Ok(()) => {
                let done = state.overlay.indexed(sealed);
                state.indexed = last;
                state.stats.index_commits += 1;
                state.stats.unindexed_bytes = state
                    .stats
                    .unindexed_bytes
                    .saturating_sub(pile_bytes as u64);
                state.fault = None;
                shared.progress.notify_all();
                drop(state);
                drop(done);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not move mail from the log into the database; retrying");
                state.fault = Some(e.to_string());
                for entry in batch.into_iter().rev() {
                    state.queue.push_front(entry);
                }
                state.oldest.get_or_insert_with(Instant::now);
                state.queued_bytes += pile_bytes;
                state.hurry = true;
                shared.progress.notify_all();
                if state.stop != Stop::Running {
                    // Closing: the log keeps it for the next start.
                    return;
                }
                drop(state);
                std::thread::sleep(RETRY_AFTER);
            }
        }
    }
}

/// What [`Store::each_item`] shows of a stored item.
struct ItemInfo {
    seq: u64,
    mailbox: MailboxId,
    stored_at_ms: u64,
    sender_tag: u64,
    /// The sealed envelope's length.
    len: u64,
}

impl Store {
    /// Visits every stored item in seq order (redb's, then those only the
    /// overlay holds) until `f` returns false.
    fn each_item(&self, mut f: impl FnMut(ItemInfo) -> bool) -> Result<(), StoreError> {
        let (state, txn) = self.view()?;
        let log = txn.open_table(LOG)?;
        let mut last = 0;
        for row in log.iter()? {
            let (k, v) = row?;
            last = k.value();
            if state.overlay.is_deleted(last) {
                continue;
            }
            let item = parse_item(v.value())?;
            let info = ItemInfo {
                seq: last,
                mailbox: item.mailbox,
                stored_at_ms: item.stored_at_ms,
                sender_tag: item.sender_tag,
                len: item.sealed.len() as u64,
            };
            if !f(info) {
                return Ok(());
            }
        }
        for item in state.overlay.items(last.saturating_add(1)) {
            let info = ItemInfo {
                seq: item.seq,
                mailbox: item.mailbox,
                stored_at_ms: item.stored_at_ms,
                sender_tag: item.sender_tag,
                len: item.sealed.len() as u64,
            };
            if !f(info) {
                break;
            }
        }
        Ok(())
    }
}

fn fault(e: impl Into<StoreError>) -> StoreFault {
    StoreFault(e.into().to_string())
}

/// One page entry's size, as the page limit counts it.
fn entry_len(sealed: &[u8]) -> usize {
    tables::MAIL_HEADER + sealed.len()
}

impl MailLookup for Store {
    fn dropped(&self) -> Result<Vec<DeviceId>, StoreFault> {
        let read = || -> Result<Vec<DeviceId>, StoreError> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(DROPPED)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                out.push(DeviceId(*row?.0.value()));
            }
            Ok(out)
        };
        read().map_err(fault)
    }

    fn push_targets(&self) -> Result<Vec<(DeviceId, PushTarget)>, StoreFault> {
        let read = || -> Result<Vec<(DeviceId, PushTarget)>, StoreError> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(PUSH)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (device, value) = row?;
                let value = value.value();
                let corrupt = || StoreError::Corrupt("a push registration");
                let token = value.get(..16).ok_or_else(corrupt)?;
                let endpoint = std::str::from_utf8(&value[16..]).map_err(|_| corrupt())?;
                out.push((
                    DeviceId(*device.value()),
                    PushTarget {
                        endpoint: endpoint.to_owned(),
                        token: token.try_into().map_err(|_| corrupt())?,
                    },
                ));
            }
            Ok(out)
        };
        read().map_err(fault)
    }

    fn revoked(&self) -> Result<Vec<Revoked>, StoreFault> {
        let read = || -> Result<Vec<Revoked>, StoreError> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(REVOKED)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (mailbox, tags) = row?;
                let holders = tags
                    .value()
                    .chunks_exact(16)
                    .filter_map(|c| <[u8; 16]>::try_from(c).ok())
                    .collect();
                out.push((MailboxId(*mailbox.value()), holders));
            }
            Ok(out)
        };
        read().map_err(fault)
    }

    fn stored(&self, digests: &[DepositDigest]) -> Result<Vec<bool>, StoreFault> {
        let read = || -> Result<Vec<bool>, StoreError> {
            let (state, txn) = self.view()?;
            let table = txn.open_table(DIGESTS)?;
            digests
                .iter()
                .map(|d| {
                    if state.overlay.has_digest(d) {
                        return Ok(true);
                    }
                    Ok(match table.get(&d.0)? {
                        Some(seq) => !state.overlay.is_deleted(seq.value()),
                        None => false,
                    })
                })
                .collect()
        };
        read().map_err(fault)
    }

    fn page(
        &self,
        mailbox: &MailboxId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MailPage, StoreFault> {
        let read = || -> Result<MailPage, StoreError> {
            let (state, txn) = self.view()?;
            let index = txn.open_table(INDEX)?;
            let log = txn.open_table(LOG)?;
            let mut items = Vec::new();
            let mut bytes = 0;
            let full = |items: &Vec<_>, bytes: usize, len: usize| {
                items.len() >= limit || bytes + len > max_bytes && !items.is_empty()
            };
            let mut last = after;
            let start = after.saturating_add(1);
            for row in index.range((&mailbox.0, start)..=(&mailbox.0, u64::MAX))? {
                let (_, seq) = row?.0.value();
                if state.overlay.is_deleted(seq) {
                    continue;
                }
                let Some(value) = log.get(seq)? else {
                    continue;
                };
                let sealed = parse_item(value.value())?.sealed;
                if full(&items, bytes, entry_len(sealed)) {
                    return Ok((items, true));
                }
                bytes += entry_len(sealed);
                items.push((seq, sealed.to_vec()));
                last = seq;
            }
            // Everything in redb is older than what only the overlay holds.
            let start = last.saturating_add(1);
            for item in state.overlay.mailbox_items(mailbox, start) {
                let seq = item.seq;
                if full(&items, bytes, entry_len(&item.sealed)) {
                    return Ok((items, true));
                }
                bytes += entry_len(&item.sealed);
                items.push((seq, item.sealed.clone()));
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
            let d = &device.0;
            let txn = self.db.begin_read()?;
            let otks = txn.open_table(OTKS)?;
            for row in otks.range((d, &[0u8; 32])..=(d, &[0xff; 32]))? {
                let (k, v) = row?;
                let key = OneTimeKey(*k.value().1);
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
            let d = &device.0;
            let txn = self.db.begin_read()?;
            let otks = txn.open_table(OTKS)?;
            let n = otks.range((d, &[0u8; 32])..=(d, &[0xff; 32]))?.count();
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        };
        read().map_err(fault)
    }

    fn expired(
        &self,
        cutoff_ms: u64,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(MailboxId, u64)>, StoreFault> {
        let mut out = Vec::new();
        self.each_item(|item| {
            if item.stored_at_ms >= cutoff_ms || out.len() >= limit {
                return false;
            }
            out.push((item.mailbox, item.seq));
            true
        })
        .map_err(fault)?;
        if out.len() >= limit {
            return Ok(out);
        }
        // Then mail past the expiry its sender gave: in redb's order, then
        // what only the log holds yet.
        let mut early = || -> Result<(), StoreError> {
            let (state, txn) = self.view()?;
            let mut taken: std::collections::HashSet<u64> = out.iter().map(|(_, s)| *s).collect();
            let expires = txn.open_table(EXPIRES)?;
            for row in expires.range((0, 0)..=(now_ms, u64::MAX))? {
                let (k, v) = row?;
                let (_, seq) = k.value();
                if out.len() >= limit {
                    return Ok(());
                }
                if !state.overlay.is_deleted(seq) && taken.insert(seq) {
                    out.push((MailboxId(*v.value()), seq));
                }
            }
            for item in state.overlay.items(0) {
                if out.len() >= limit {
                    break;
                }
                if item.expires_at_ms.is_some_and(|at| at <= now_ms) && taken.insert(item.seq) {
                    out.push((item.mailbox, item.seq));
                }
            }
            Ok(())
        };
        early().map_err(fault)?;
        Ok(out)
    }

    fn usage(&self) -> Result<Vec<(MailboxId, u64, u64)>, StoreFault> {
        let mut out = Vec::new();
        self.each_item(|item| {
            out.push((item.mailbox, item.len, item.sender_tag));
            true
        })
        .map_err(fault)?;
        Ok(out)
    }

    fn next_seq(&self) -> Result<u64, StoreFault> {
        let read = || -> Result<u64, StoreError> {
            let (state, txn) = self.view()?;
            let meta = txn.open_table(META)?;
            let stored = match meta.get(tables::NEXT_SEQ_KEY)? {
                Some(v) => <[u8; 8]>::try_from(v.value())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("the next sequence number"))?,
                None => 1,
            };
            Ok(stored.max(state.overlay.next_seq))
        };
        read().map_err(fault)
    }
}

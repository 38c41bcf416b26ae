//! Which groups of a blob to ask which source for (issue 16, transfer):
//! the sans-IO core of a download. Several sources serve at once, each
//! with a bounded number of requests in flight (so memory stays bounded
//! whatever the file's size); a source that sends a group that does not
//! verify is marked bad and its range goes to another; a source that has
//! nothing, is busy or fails is left alone for a while.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use super::{
    BlobError, BlobGroup, BlobRefusal, BlobRequest, BlobResponse, BlobRoot, MAX_GROUPS_PER_REQUEST,
    groups,
};

/// Requests in flight to one source (each up to 1 MiB).
pub const MAX_IN_FLIGHT_PER_SOURCE: usize = 4;
/// Most sources one download keeps.
pub const MAX_SOURCES: usize = 16;
/// How long a busy or failing source is left alone, at first (doubling).
pub const SOURCE_BACKOFF_MS: u64 = 1_000;
/// The longest a source is left alone.
pub const MAX_SOURCE_BACKOFF_MS: u64 = 60_000;

/// A request handed out by [`Fetcher::poll_request`].
pub type RequestId = u64;

#[derive(Debug, Clone, Default)]
struct Source {
    in_flight: usize,
    /// It sent bytes that do not verify: never asked again.
    bad: bool,
    /// It does not hold the blob.
    lacks: bool,
    failures: u32,
    /// Not asked before then (ms on the caller's clock).
    until_ms: u64,
}

/// What became of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Groups to check, in order, against the root ([`super::accept_group`])
    /// and store as each proves itself (so that what was verified is on
    /// disk a group later); then [`Fetcher::on_checked`] says how far they
    /// went.
    Check {
        request: BlobRequest,
        groups: Vec<BlobGroup>,
    },
    /// Nothing came (refused, failed, or a response to a request we did
    /// not make).
    Nothing,
}

/// A download's schedule.
#[derive(Debug, Clone)]
pub struct Fetcher<S> {
    root: BlobRoot,
    len: u64,
    /// Groups neither stored nor in flight.
    wanted: BTreeSet<u64>,
    /// Groups stored so far are not tracked here; in flight: id → (source,
    /// request).
    in_flight: HashMap<RequestId, (S, BlobRequest)>,
    /// Answered, being checked and stored: id → (source, request).
    checking: HashMap<RequestId, (S, BlobRequest)>,
    sources: HashMap<S, Source>,
    next_id: RequestId,
}

impl<S: Copy + Eq + Hash> Fetcher<S> {
    /// A download of the blob `root` (`len` ciphertext bytes) that still
    /// needs `missing`.
    pub fn new(root: BlobRoot, len: u64, missing: impl IntoIterator<Item = u64>) -> Self {
        let total = groups(len);
        Self {
            root,
            len,
            wanted: missing.into_iter().filter(|i| *i < total).collect(),
            in_flight: HashMap::new(),
            checking: HashMap::new(),
            sources: HashMap::new(),
            next_id: 0,
        }
    }

    /// A peer that may hold the blob (the sender, a member, a relay).
    pub fn add_source(&mut self, source: S) {
        if self.sources.len() < MAX_SOURCES {
            self.sources.entry(source).or_default();
        }
    }

    /// Nothing wanted, in flight or being checked.
    pub fn is_done(&self) -> bool {
        self.wanted.is_empty() && self.in_flight.is_empty() && self.checking.is_empty()
    }

    /// Groups wanted but no source left to ask (all bad or lacking it).
    pub fn is_stalled(&self) -> bool {
        !self.is_done()
            && self.in_flight.is_empty()
            && self.checking.is_empty()
            && self.sources.values().all(|s| s.bad || s.lacks)
    }

    /// Every source lied: none is worth asking again.
    pub fn all_lied(&self) -> bool {
        self.sources.values().all(|s| s.bad)
    }

    /// Asks again the sources that said they lack the blob (a relay that
    /// was still receiving it, a sender that lost it and has it back).
    pub fn ask_again(&mut self) {
        for s in self.sources.values_mut() {
            s.lacks = false;
        }
    }

    /// The sources that lied.
    pub fn bad_sources(&self) -> impl Iterator<Item = &S> {
        self.sources.iter().filter(|(_, s)| s.bad).map(|(p, _)| p)
    }

    /// The next request to send, if a source has room: the lowest run of
    /// wanted groups (at most [`MAX_GROUPS_PER_REQUEST`]) to the usable
    /// source with the fewest requests in flight.
    pub fn poll_request(&mut self, now_ms: u64) -> Option<(RequestId, S, BlobRequest)> {
        let first = *self.wanted.first()?;
        let source = self
            .sources
            .iter()
            .filter(|(_, s)| {
                !s.bad && !s.lacks && s.in_flight < MAX_IN_FLIGHT_PER_SOURCE && s.until_ms <= now_ms
            })
            .min_by_key(|(_, s)| s.in_flight)
            .map(|(p, _)| *p)?;
        let mut count: u16 = 0;
        while count < MAX_GROUPS_PER_REQUEST && self.wanted.remove(&(first + u64::from(count))) {
            count += 1;
        }
        let request = BlobRequest {
            root: self.root,
            len: self.len,
            first,
            count,
        };
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.insert(id, (source, request));
        if let Some(s) = self.sources.get_mut(&source) {
            s.in_flight += 1;
        }
        Some((id, source, request))
    }

    /// A source answered request `id`. Its groups come back to be checked
    /// (the source's slot is free again meanwhile).
    pub fn on_response(&mut self, now_ms: u64, id: RequestId, response: BlobResponse) -> Fetched {
        let Some((source, request)) = self.end(id) else {
            return Fetched::Nothing;
        };
        match response {
            BlobResponse::Groups(groups) => {
                self.checking.insert(id, (source, request));
                Fetched::Check { request, groups }
            }
            BlobResponse::Refused(reason) => {
                match reason {
                    BlobRefusal::NotHere | BlobRefusal::BadRange => {
                        if let Some(s) = self.sources.get_mut(&source) {
                            s.lacks = true;
                        }
                    }
                    BlobRefusal::Busy => self.back_off(now_ms, &source),
                }
                self.want_again(&request, |_| true);
                Fetched::Nothing
            }
        }
    }

    /// The groups of request `id` were checked: the first `stored` proved
    /// themselves and are stored; `lie` is why the next did not, if one
    /// did not (its source is marked bad: it is never asked again). What
    /// was not stored is wanted again. Returns the liar.
    pub fn on_checked(
        &mut self,
        now_ms: u64,
        id: RequestId,
        stored: usize,
        lie: Option<&BlobError>,
    ) -> Option<S> {
        let (source, request) = self.checking.remove(&id)?;
        let stored = (stored as u64).min(u64::from(request.count));
        self.want_again(&request, |i| i >= request.first + stored);
        if lie.is_some() {
            if let Some(s) = self.sources.get_mut(&source) {
                s.bad = true;
            }
            return Some(source);
        }
        if stored == 0 {
            // It sent nothing of what it was asked: leave it alone a while.
            self.back_off(now_ms, &source);
        } else if let Some(s) = self.sources.get_mut(&source) {
            s.failures = 0;
        }
        None
    }

    /// Request `id` failed (connection closed, timeout).
    pub fn on_failure(&mut self, now_ms: u64, id: RequestId) {
        if let Some((source, request)) = self.end(id) {
            self.back_off(now_ms, &source);
            self.want_again(&request, |_| true);
        }
    }

    fn end(&mut self, id: RequestId) -> Option<(S, BlobRequest)> {
        let (source, request) = self.in_flight.remove(&id)?;
        if let Some(s) = self.sources.get_mut(&source) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        Some((source, request))
    }

    fn want_again(&mut self, request: &BlobRequest, which: impl Fn(u64) -> bool) {
        let range = request.first..request.first + u64::from(request.count);
        self.wanted.extend(range.filter(|i| which(*i)));
    }

    fn back_off(&mut self, now_ms: u64, source: &S) {
        if let Some(s) = self.sources.get_mut(source) {
            let wait = SOURCE_BACKOFF_MS
                .saturating_mul(1 << s.failures.min(16))
                .min(MAX_SOURCE_BACKOFF_MS);
            s.failures = s.failures.saturating_add(1);
            s.until_ms = now_ms.saturating_add(wait);
        }
    }
}

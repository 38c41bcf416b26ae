//! The client half of the mailbox protocol: where one home relay's drain
//! loop stands, and what it asks the relay next.
//!
//! ```text
//!  Idle(due) ──poll──▶ Challenging ──challenge──▶ Fetching ──page──▶ handled ─┬─▶ Fetching (more, or hold open)
//!     ▲  │ (fresh challenge)                         ▲                        ├─▶ Idle(poll interval)
//!     │  └──────────────poll──────────────────────────┘                        └─▶ Idle(soon) after a stall
//!     └──────────────── failed (backoff) ◀── any request
//! ```
//!
//! A page is handled while the next one is already on its way (prefetch);
//! if handling stalls (the store is busy), the prefetched page is dropped
//! and fetched again from the cursor, so mail is never handled out of order.

use std::collections::BTreeMap;

use crate::device::{FIRST_RETRY_MS, backoff_ms};
use crate::{MAX_REVOKED_HOLDERS, Now};

/// A challenge is reused this long (relays accept one for 10 minutes).
pub const CHALLENGE_REUSE_MS: u64 = 300_000;
/// Keep at least this many one-time keys at each home relay ...
pub const KEYS_LOW: u32 = 5;
/// A device makes a new fallback key this often, so one a stranger got by
/// draining the one-time keys is not used for good.
pub const FALLBACK_ROTATE_MS: u64 = 7 * 24 * 3600 * 1000;

/// Whether the fallback key is due to be replaced: it is `made_at_ms` old
/// (`None`: there is none, or its age is unknown) at `now_ms`, or some
/// relay ran out of one-time keys since (a burst of claims: everyone
/// writing to us now shares the fallback key).
pub fn fallback_due(made_at_ms: Option<u64>, now_ms: u64, ran_out: bool) -> bool {
    ran_out || made_at_ms.is_none_or(|made| now_ms.saturating_sub(made) >= FALLBACK_ROTATE_MS)
}

/// How long mail from a sender who is not a contact waits at our relay
/// (from when we first read it) for the user to add them; then it is
/// deleted, so strangers' mail does not sit in the mailbox for the whole
/// retention period.
pub const STRANGER_GRACE_MS: u64 = 60 * 60 * 1000;
/// Most strangers' items one home mailbox tracks; beyond it, new ones are
/// deleted at once (a relay keeps at most a few hundred per mailbox).
const MAX_TRACKED_STRANGERS: usize = 4096;

/// A home relay that failed is asked again after at most this long (ms):
/// mail and presence depend on it, so a relay that comes back (or a
/// network that heals) is noticed within seconds, not minutes.
pub const RELAY_RETRY_MAX_MS: u64 = 4_000;

/// How long to wait before asking a home relay again after `attempts`
/// failures in a row: doubling from [`FIRST_RETRY_MS`] up to
/// [`RELAY_RETRY_MAX_MS`], then a random-looking point in the upper half
/// of that, drawn from `seed` (per mailbox), so the devices of a relay that
/// restarts do not all come back in the same instant.
pub fn relay_backoff_ms(attempts: u32, seed: u64) -> u64 {
    let base = (FIRST_RETRY_MS << attempts.min(8)).min(RELAY_RETRY_MAX_MS);
    let half = base / 2;
    half + splitmix64(seed ^ u64::from(attempts)) % (half + 1)
}

/// SplitMix64's output function: spreads a seed over 64 bits.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A refused or lost `Revoke` is sent again after this long.
pub const REVOKE_RETRY_MS: u64 = 30_000;

/// What to ask the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainStep {
    /// `Info`, for a fresh challenge.
    AskChallenge,
    /// A signed `Fetch` of what comes after `after`; held open by the relay
    /// when `wait`.
    Fetch { after: u64, wait: bool },
}

/// What to do with a page that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStart {
    /// It was asked for before a stall: drop it (it is fetched again).
    Discard,
    /// Handle it: its items come after `from`; `prefetch` is the next
    /// page's fetch, to send now.
    Handle {
        from: u64,
        prefetch: Option<DrainStep>,
    },
}

/// How handling a page went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHandled {
    /// The highest sequence number handled (or left for later on purpose).
    pub cursor: u64,
    pub keys_left: u32,
    /// The store could not take an item: stop here, try again soon.
    pub stalled: bool,
    pub got_any: bool,
    pub more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    None,
    Challenging,
    /// `discard`: asked for before a stall; its page is dropped.
    Fetching {
        waited: bool,
        discard: bool,
    },
}

/// One home relay's drain loop and key stock.
#[derive(Debug, Clone)]
pub struct HomeMailbox {
    challenge: Option<([u8; 32], u64)>,
    /// The highest sequence number read this run.
    cursor: u64,
    request: Request,
    /// The page being handled: (it was a held-open fetch, the next page
    /// was prefetched).
    handling: Option<(bool, bool)>,
    /// The last fetch found nothing: the next one is held open.
    drained: bool,
    /// When the next request goes, while none is on its way (mono ms).
    due_ms: u64,
    attempts: u32,
    /// How often to ask again after a held-open fetch came back empty.
    poll_ms: u64,
    keys_left: Option<u32>,
    /// The relay ran out of one-time keys since our last upload there.
    ran_out: bool,
    /// When the fallback key this relay holds was made (as we uploaded it).
    fallback_made_ms: Option<u64>,
    uploading: bool,
    connected: bool,
    last_error: Option<String>,
    /// Items from senders who are not contacts: seq → when first read.
    strangers: BTreeMap<u64, u64>,
    /// Spreads retries (see [`relay_backoff_ms`]) and polls.
    jitter_seed: u64,
    /// Whether an empty fetch is followed by one the relay holds open
    /// (answered the moment mail lands); otherwise the next poll goes at
    /// a random point of the poll interval (see [`HomeMailbox::polling`]).
    hold: bool,
    /// The holders whose deposit rights the relay should refuse (blocked
    /// contacts), sorted; what the relay holds, once it said so this run;
    /// whether a `Revoke` is on its way, and when one may go (mono ms).
    revoke_wanted: Vec<[u8; 16]>,
    revoke_at_relay: Option<Vec<[u8; 16]>>,
    revoking: bool,
    revoke_due_ms: u64,
}

impl HomeMailbox {
    pub fn new(now: Now, poll_ms: u64) -> Self {
        Self {
            challenge: None,
            cursor: 0,
            request: Request::None,
            handling: None,
            drained: false,
            due_ms: now.mono_ms,
            attempts: 0,
            poll_ms,
            keys_left: None,
            ran_out: false,
            fallback_made_ms: None,
            uploading: false,
            connected: false,
            last_error: None,
            strangers: BTreeMap::new(),
            jitter_seed: 0,
            hold: true,
            revoke_wanted: Vec::new(),
            revoke_at_relay: None,
            revoking: false,
            revoke_due_ms: now.mono_ms,
        }
    }

    /// The holder tags (of blocked and removed contacts' deposit rights)
    /// this relay should refuse, the most important first; the first
    /// [`MAX_REVOKED_HOLDERS`] are kept.
    pub fn want_revoked(&mut self, mut holders: Vec<[u8; 16]>) {
        holders.truncate(MAX_REVOKED_HOLDERS);
        holders.sort_unstable();
        holders.dedup();
        self.revoke_wanted = holders;
    }

    /// The list to send in a signed `Revoke` now, if the relay may hold
    /// another one (once per run at least: it keeps the list across our
    /// restarts) and none is on its way. Waits for a fresh challenge (the
    /// drain loop gets one).
    pub fn revocation_due(&mut self, now: Now) -> Option<Vec<[u8; 16]>> {
        let fresh = self
            .challenge
            .is_some_and(|(_, at)| now.mono_ms.saturating_sub(at) < CHALLENGE_REUSE_MS);
        if self.revoking
            || !fresh
            || now.mono_ms < self.revoke_due_ms
            || self.revoke_at_relay.as_ref() == Some(&self.revoke_wanted)
        {
            return None;
        }
        self.revoking = true;
        Some(self.revoke_wanted.clone())
    }

    /// The relay now refuses the rights of these holders.
    pub fn revoked(&mut self, holders: Vec<[u8; 16]>) {
        self.revoking = false;
        self.revoke_at_relay = Some(holders);
    }

    /// The `Revoke` failed: tried again after [`REVOKE_RETRY_MS`].
    pub fn revoke_failed(&mut self, now: Now, error: String) {
        self.revoking = false;
        self.revoke_due_ms = now.mono_ms + REVOKE_RETRY_MS;
        self.last_error = Some(error);
    }

    /// Retries of this mailbox are spread by `seed` (pass a random one).
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = seed;
        self
    }

    /// Never asks the relay to hold a fetch open: after reading to the
    /// end, the next fetch goes between a half and one and a half poll
    /// intervals later, at random. When we fetch then says nothing about
    /// when mail was deposited, and mail that arrives close together is
    /// fetched together (the relay cannot pair a deposit with the fetch
    /// it woke).
    pub fn polling(mut self) -> Self {
        self.hold = false;
        self
    }

    /// When to poll next after reading to the end.
    fn next_poll_ms(&mut self, now: Now) -> u64 {
        if self.hold {
            return now.mono_ms.saturating_add(self.poll_ms);
        }
        self.jitter_seed = splitmix64(self.jitter_seed);
        let spread = self.jitter_seed % self.poll_ms.saturating_add(1);
        now.mono_ms
            .saturating_add(self.poll_ms / 2)
            .saturating_add(spread)
    }

    /// Items from strangers read in a page (`seqs`), and those whose grace
    /// ([`STRANGER_GRACE_MS`]) is over, to delete now. Call after each page.
    pub fn strangers(&mut self, now: Now, seqs: &[u64]) -> Vec<u64> {
        let mut expired = Vec::new();
        for seq in seqs {
            if self.strangers.len() >= MAX_TRACKED_STRANGERS && !self.strangers.contains_key(seq) {
                expired.push(*seq);
            } else {
                self.strangers.entry(*seq).or_insert(now.mono_ms);
            }
        }
        let over: Vec<u64> = self
            .strangers
            .iter()
            .filter(|(_, first)| now.mono_ms.saturating_sub(**first) >= STRANGER_GRACE_MS)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &over {
            self.strangers.remove(seq);
        }
        expired.extend(over);
        expired
    }

    /// The challenge to sign owner requests over.
    pub fn challenge(&self) -> Option<[u8; 32]> {
        self.challenge.map(|(c, _)| c)
    }

    pub fn keys_left(&self) -> Option<u32> {
        self.keys_left
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// A connection to the relay opened or the last one closed. Opening
    /// one ends any wait: the drain loop (and a held fetch) starts again
    /// at once instead of after a backoff.
    pub fn set_connected(&mut self, now: Now, connected: bool) {
        if connected && !self.connected {
            self.retry_now(now);
        }
        self.connected = connected;
    }

    /// The network seems to be back (an interface changed, or a peer lost
    /// with the relay answered again): if the drain loop waits after a
    /// failure, it goes now, as if it had never failed.
    pub fn retry_now(&mut self, now: Now) {
        if self.request == Request::None && self.attempts > 0 {
            self.due_ms = self.due_ms.min(now.mono_ms);
            self.attempts = 0;
        }
    }

    /// The next request, if one is due and none is on its way.
    pub fn poll(&mut self, now: Now) -> Option<DrainStep> {
        if self.request != Request::None || self.due_ms > now.mono_ms {
            return None;
        }
        let fresh = self
            .challenge
            .is_some_and(|(_, at)| now.mono_ms.saturating_sub(at) < CHALLENGE_REUSE_MS);
        if fresh {
            Some(self.fetch(self.drained && self.hold))
        } else {
            self.request = Request::Challenging;
            Some(DrainStep::AskChallenge)
        }
    }

    fn fetch(&mut self, wait: bool) -> DrainStep {
        self.request = Request::Fetching {
            waited: wait,
            discard: false,
        };
        DrainStep::Fetch {
            after: self.cursor,
            wait,
        }
    }

    /// The relay handed out a challenge: fetch at once.
    pub fn challenge_arrived(&mut self, now: Now, challenge: [u8; 32]) -> DrainStep {
        self.challenge = Some((challenge, now.mono_ms));
        self.fetch(false)
    }

    /// A page arrived; `last` is its last item's sequence number.
    pub fn page_arrived(&mut self, now: Now, last: Option<u64>, more: bool) -> PageStart {
        let waited = match self.request {
            Request::Fetching { discard: true, .. } => {
                self.request = Request::None;
                self.due_ms = now.mono_ms.saturating_add(backoff_ms(0));
                return PageStart::Discard;
            }
            Request::Fetching { waited, .. } => waited,
            Request::None | Request::Challenging => false,
        };
        self.request = Request::None;
        let from = self.cursor;
        // More is waiting: ask for the next page now, so the relay reads
        // and sends it while this one is handled.
        let prefetch = match last {
            Some(last) if more => {
                self.cursor = last;
                Some(self.fetch(false))
            }
            _ => None,
        };
        self.handling = Some((waited, prefetch.is_some()));
        PageStart::Handle { from, prefetch }
    }

    /// The page from [`HomeMailbox::page_arrived`] is handled: what next.
    pub fn page_handled(&mut self, now: Now, page: PageHandled) -> Option<DrainStep> {
        let (waited, prefetched) = self.handling.take().unwrap_or((false, false));
        self.attempts = 0;
        self.last_error = None;
        self.keys_left = Some(page.keys_left);
        self.ran_out |= page.keys_left == 0;
        self.cursor = page.cursor;
        if prefetched {
            // The next page is on its way.
            self.drained = false;
            if let Request::Fetching { discard, .. } = &mut self.request {
                *discard = page.stalled;
            }
            None
        } else if page.stalled {
            self.request = Request::None;
            self.due_ms = now.mono_ms.saturating_add(backoff_ms(0));
            None
        } else if page.more || page.got_any {
            self.drained = false;
            Some(self.fetch(false))
        } else if !waited && self.hold {
            self.drained = true;
            Some(self.fetch(true))
        } else {
            // An open fetch came back empty (or none is held open): ask
            // again after the poll interval.
            self.drained = true;
            self.request = Request::None;
            self.due_ms = self.next_poll_ms(now);
            None
        }
    }

    /// Whether the last fetch found the mailbox empty (read to the end).
    pub fn is_drained(&self) -> bool {
        self.drained
    }

    /// An `Info` or `Fetch` failed (or could not be signed): back off.
    pub fn failed(&mut self, now: Now, error: String) {
        self.request = Request::None;
        self.handling = None;
        self.challenge = None;
        self.due_ms = now
            .mono_ms
            .saturating_add(relay_backoff_ms(self.attempts, self.jitter_seed));
        self.attempts = self.attempts.saturating_add(1);
        self.last_error = Some(error);
    }

    /// Another request to the relay (an ack) failed: say so.
    pub fn noted_error(&mut self, error: String) {
        self.last_error = Some(error);
    }

    /// Read the mailbox again from the start (mail we could not place
    /// before, e.g. from someone just added as a contact, is still there).
    pub fn reread(&mut self, now: Now) {
        self.cursor = 0;
        self.drained = false;
        self.due_ms = now.mono_ms;
    }

    /// Whether to mint and upload one-time keys now (the relay runs low and
    /// no upload is on its way); if so, an upload counts as started.
    /// `fallback_made_ms`: when our current fallback key was made; a relay
    /// holding an older one gets keys again at once.
    pub fn start_restock(&mut self, fallback_made_ms: u64) -> bool {
        let stale_fallback = self.fallback_made_ms != Some(fallback_made_ms);
        if self.uploading || (self.keys_left.is_some_and(|n| n >= KEYS_LOW) && !stale_fallback) {
            return false;
        }
        self.uploading = true;
        self.fallback_made_ms = Some(fallback_made_ms);
        true
    }

    /// Whether this relay ran out of one-time keys since our last upload.
    pub fn ran_out(&self) -> bool {
        self.ran_out
    }

    /// We made a new fallback key (this relay gets it with its next
    /// upload): running out before counts no more.
    pub fn fallback_replaced(&mut self) {
        self.ran_out = false;
    }

    pub fn keys_stored(&mut self, one_time: u32) {
        self.uploading = false;
        self.ran_out = false;
        self.keys_left = Some(one_time);
    }

    pub fn upload_failed(&mut self, error: Option<String>) {
        self.uploading = false;
        self.fallback_made_ms = None;
        if error.is_some() {
            self.last_error = error;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: u64 = 1_000;

    fn handled(cursor: u64, got_any: bool, more: bool, stalled: bool) -> PageHandled {
        PageHandled {
            cursor,
            keys_left: 10,
            stalled,
            got_any,
            more,
        }
    }

    /// Attack (issue 13, item 4): strangers' mail sat in the mailbox for
    /// the whole retention period (30 days), holding the strangers' share.
    #[test]
    fn strangers_mail_is_deleted_once_its_grace_is_over() {
        let start = Now::new(0, 0);
        let mut m = HomeMailbox::new(start, POLL);
        assert!(m.strangers(start, &[3, 4]).is_empty(), "within the grace");
        let later = start.plus_ms(STRANGER_GRACE_MS / 2);
        assert!(m.strangers(later, &[3, 9]).is_empty());
        let over = start.plus_ms(STRANGER_GRACE_MS);
        assert_eq!(m.strangers(over, &[]), vec![3, 4], "first read counts");
        let after = later.plus_ms(STRANGER_GRACE_MS);
        assert_eq!(m.strangers(after, &[]), vec![9]);
        // Past the tracking bound, more go at once.
        let many: Vec<u64> = (100..100 + MAX_TRACKED_STRANGERS as u64 + 5).collect();
        assert_eq!(m.strangers(after, &many).len(), 5);
    }

    /// Issue 18, item 1: a held fetch answered the moment a deposit lands
    /// tells whoever watches the relay which deposit was for whom.
    #[test]
    fn a_polling_drain_never_holds_a_fetch_and_polls_at_random_points() {
        let mut now = Now::new(0, 0);
        let mut m = HomeMailbox::new(now, POLL).with_jitter_seed(5).polling();
        assert_eq!(m.poll(now), Some(DrainStep::AskChallenge));
        m.challenge_arrived(now, [7; 32]);
        let mut gaps = std::collections::BTreeSet::new();
        for _ in 0..20 {
            m.page_arrived(now, None, false);
            assert_eq!(m.page_handled(now, handled(0, false, false, false)), None);
            assert!(m.is_drained());
            let mut waited = 0;
            let step = loop {
                if let Some(step) = m.poll(now) {
                    break step;
                }
                now = now.plus_ms(10);
                waited += 10;
            };
            assert_eq!(
                step,
                DrainStep::Fetch {
                    after: 0,
                    wait: false
                }
            );
            assert!((POLL / 2..=POLL * 3 / 2 + 10).contains(&waited), "{waited}");
            gaps.insert(waited);
        }
        assert!(
            gaps.len() > 10,
            "the polls spread over the interval: {gaps:?}"
        );
    }

    #[test]
    fn a_drain_fetches_pages_in_order_then_holds_a_fetch_open() {
        let now = Now::new(0, 0);
        let mut m = HomeMailbox::new(now, POLL);
        assert_eq!(m.poll(now), Some(DrainStep::AskChallenge));
        assert_eq!(m.poll(now), None, "one request at a time");
        let step = m.challenge_arrived(now, [7; 32]);
        assert_eq!(
            step,
            DrainStep::Fetch {
                after: 0,
                wait: false
            }
        );
        // A full page: the next is asked for before this one is handled.
        let start = m.page_arrived(now, Some(256), true);
        assert_eq!(
            start,
            PageStart::Handle {
                from: 0,
                prefetch: Some(DrainStep::Fetch {
                    after: 256,
                    wait: false
                })
            }
        );
        assert_eq!(m.page_handled(now, handled(256, true, true, false)), None);
        // The last page: then an empty one; then a fetch held open.
        assert_eq!(
            m.page_arrived(now, Some(300), false),
            PageStart::Handle {
                from: 256,
                prefetch: None
            }
        );
        assert_eq!(
            m.page_handled(now, handled(300, true, false, false)),
            Some(DrainStep::Fetch {
                after: 300,
                wait: false
            })
        );
        m.page_arrived(now, None, false);
        assert_eq!(
            m.page_handled(now, handled(300, false, false, false)),
            Some(DrainStep::Fetch {
                after: 300,
                wait: true
            })
        );
        // The held-open fetch came back empty: again after the poll interval,
        // held open again, with the challenge reused.
        m.page_arrived(now, None, false);
        assert_eq!(m.page_handled(now, handled(300, false, false, false)), None);
        assert_eq!(m.poll(now.plus_ms(POLL - 1)), None);
        assert_eq!(
            m.poll(now.plus_ms(POLL)),
            Some(DrainStep::Fetch {
                after: 300,
                wait: true
            })
        );
    }

    #[test]
    fn a_stall_drops_the_prefetched_page_and_reads_it_again() {
        let now = Now::new(0, 0);
        let mut m = HomeMailbox::new(now, POLL);
        m.poll(now);
        m.challenge_arrived(now, [7; 32]);
        m.page_arrived(now, Some(256), true);
        // Handling stopped at 100: the page after 256 must not be handled.
        assert_eq!(m.page_handled(now, handled(100, true, true, true)), None);
        assert_eq!(m.page_arrived(now, Some(512), true), PageStart::Discard);
        assert_eq!(m.poll(now), None, "not at once");
        assert_eq!(
            m.poll(now.plus_ms(backoff_ms(0))),
            Some(DrainStep::Fetch {
                after: 100,
                wait: false
            })
        );
    }

    #[test]
    fn failures_back_off_and_ask_for_a_new_challenge() {
        let now = Now::new(0, 0);
        let mut m = HomeMailbox::new(now, POLL);
        m.poll(now);
        m.failed(now, "unreachable".into());
        assert_eq!(m.last_error(), Some("unreachable"));
        let first = relay_backoff_ms(0, 0);
        assert_eq!(m.poll(now.plus_ms(first - 1)), None);
        assert_eq!(m.poll(now.plus_ms(first)), Some(DrainStep::AskChallenge));
        m.failed(now, "again".into());
        assert_eq!(m.poll(now.plus_ms(relay_backoff_ms(1, 0) - 1)), None);
        // A challenge older than its reuse period is asked for again.
        let later = now.plus_ms(relay_backoff_ms(1, 0));
        assert_eq!(m.poll(later), Some(DrainStep::AskChallenge));
        m.challenge_arrived(later, [1; 32]);
        m.page_arrived(later, None, false);
        m.page_handled(later, handled(0, false, false, false));
        m.page_arrived(later, None, false);
        m.page_handled(later, handled(0, false, false, false));
        assert_eq!(m.last_error(), None);
        let stale = later.plus_ms(CHALLENGE_REUSE_MS);
        assert_eq!(m.poll(stale), Some(DrainStep::AskChallenge));
    }

    #[test]
    fn retries_of_a_home_relay_stay_within_seconds_and_are_spread() {
        for attempts in 0..40 {
            let base = (FIRST_RETRY_MS << attempts.min(8)).min(RELAY_RETRY_MAX_MS);
            for seed in 0..50 {
                let wait = relay_backoff_ms(attempts, seed);
                assert!(
                    (base / 2..=base).contains(&wait),
                    "{attempts} {seed}: {wait}"
                );
            }
        }
        let spread: std::collections::HashSet<u64> =
            (0..50).map(|seed| relay_backoff_ms(10, seed)).collect();
        assert!(spread.len() > 25, "seeds spread retries: {spread:?}");
    }

    #[test]
    fn a_relay_that_answers_again_ends_the_backoff_at_once() {
        let now = Now::new(0, 0);
        let mut m = HomeMailbox::new(now, POLL).with_jitter_seed(7);
        m.set_connected(now, true);
        for _ in 0..6 {
            m.poll(now);
            m.failed(now, "the relay could not be reached".into());
            m.set_connected(now, false);
        }
        assert_eq!(m.poll(now.plus_ms(100)), None, "backing off");
        // A connection to the relay opened (or the network came back).
        m.set_connected(now.plus_ms(100), true);
        assert_eq!(m.poll(now.plus_ms(100)), Some(DrainStep::AskChallenge));
        // And a failure after that starts from the shortest wait again.
        m.failed(now.plus_ms(100), "again".into());
        let wait = relay_backoff_ms(0, 7);
        assert_eq!(
            m.poll(now.plus_ms(100 + wait)),
            Some(DrainStep::AskChallenge)
        );
    }

    #[test]
    fn keys_are_restocked_once_at_a_time_when_low() {
        let mut m = HomeMailbox::new(Now::default(), POLL);
        assert!(m.start_restock(1), "nothing known: stock up");
        assert!(!m.start_restock(1), "one upload at a time");
        m.keys_stored(20);
        assert!(!m.start_restock(1));
        m.keys_stored(KEYS_LOW - 1);
        assert!(m.start_restock(1));
        m.upload_failed(Some("refused".into()));
        assert_eq!(m.last_error(), Some("refused"));
        assert!(m.start_restock(1));
        m.keys_stored(20);
        assert!(m.start_restock(2), "a new fallback key goes up at once");
    }

    /// Attack (issue 13, item 7, fallback key): a stranger drains a
    /// device's one-time keys; from then on everyone who writes to it
    /// starts on the same fallback key, which never changed.
    #[test]
    fn the_fallback_key_is_replaced_weekly_and_after_the_keys_ran_out() {
        assert!(fallback_due(None, 0, false), "none yet");
        assert!(!fallback_due(Some(0), FALLBACK_ROTATE_MS - 1, false));
        assert!(
            fallback_due(Some(0), FALLBACK_ROTATE_MS, false),
            "a week old"
        );
        let now = Now::new(0, 0);
        let mut m = HomeMailbox::new(now, POLL);
        assert!(m.start_restock(1));
        m.keys_stored(20);
        // Drained: the relay reports none left.
        m.page_arrived(now, None, false);
        m.page_handled(
            now,
            PageHandled {
                cursor: 0,
                keys_left: 0,
                stalled: false,
                got_any: false,
                more: false,
            },
        );
        assert!(m.ran_out());
        assert!(fallback_due(Some(1), 1, m.ran_out()), "a burst of claims");
        m.fallback_replaced();
        assert!(!m.ran_out());
        assert!(m.start_restock(2));
    }

    #[test]
    fn the_revocation_list_goes_once_per_run_and_again_when_it_changes() {
        let start = Now::new(0, 0);
        let mut m = HomeMailbox::new(start, POLL);
        assert_eq!(m.revocation_due(start), None, "no challenge yet");
        m.challenge_arrived(start, [1; 32]);
        // Even empty: the relay may hold a list from an earlier run.
        assert_eq!(m.revocation_due(start), Some(vec![]));
        assert_eq!(m.revocation_due(start), None, "one on its way");
        m.revoked(vec![]);
        assert_eq!(m.revocation_due(start), None, "the relay has it");
        m.want_revoked(vec![[2; 16], [1; 16], [2; 16]]);
        let list = m.revocation_due(start);
        assert_eq!(list, Some(vec![[1; 16], [2; 16]]), "sorted, once each");
        m.revoke_failed(start, "refused".into());
        assert_eq!(m.revocation_due(start.plus_ms(REVOKE_RETRY_MS - 1)), None);
        let later = start.plus_ms(REVOKE_RETRY_MS);
        assert_eq!(m.revocation_due(later), list);
        m.revoked(vec![[1; 16], [2; 16]]);
        assert_eq!(m.revocation_due(later), None);
        m.want_revoked((0..100u8).map(|n| [n; 16]).collect());
        assert_eq!(
            m.revocation_due(later).map(|l| l.len()),
            Some(MAX_REVOKED_HOLDERS)
        );
    }
}

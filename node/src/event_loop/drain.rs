//! Draining our home mailboxes: our own mailbox and the pairwise ones we
//! gave our contacts (`PairwiseKey`), read together in batches
//! (`MailboxRequest::Batch`) at random points of the poll interval.
//!
//! ```text
//!  Info ─▶ Batch{Full set + proofs, Fetch} ─▶ page ─▶ open each item with
//!          Batch{Known(digest), Fetch}   ◀──┘        its mailbox's key ─▶ engine
//!          Batch{Known(digest), Ack{(mailbox index, seq)…}} ◀── durable
//! ```
//!
//! The relay checks the set's proofs once per challenge; later batches
//! name it by digest. Items remember their mailbox until acked, so an ack
//! names the right one even when the set changed in between.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use hush_protocol::device::{DrainStep, PageHandled, PageStart};
use hush_protocol::{
    Auth, BatchItem, BatchRequest, DeviceId, KeySet, MAX_MAILBOX_ITEMS, MailboxId, MailboxRequest,
    MailboxSecret, PairwiseKey, SealError,
};

use super::relays::MailRequest;
use super::{After, EventLoop};
use crate::store::Op;

/// Items asked for per fetch.
const FETCH_LIMIT: u16 = 256;
/// Items read and not yet acked whose mailbox is remembered, per relay;
/// beyond it the oldest are forgotten (an ack of one then goes to our own
/// mailbox, and the item is read again later: it is stored only once).
const MAX_UNACKED: usize = 65_536;
/// The time every home relay was read to the end is stored at most this
/// often.
const DRAINED_EVERY_MS: u64 = 3_600_000;

/// A key set as one batch named it.
#[derive(Debug)]
pub(super) struct SentSet {
    challenge: [u8; 32],
    digest: [u8; 32],
    keys: Vec<Arc<PairwiseKey>>,
    /// Sent in full (with proofs): once answered, the relay knows it.
    full: bool,
}

impl SentSet {
    /// The mailbox of index `index` (0: our own).
    fn mailbox(&self, own: MailboxId, index: u16) -> Option<MailboxId> {
        match usize::from(index) {
            0 => Some(own),
            i => self.keys.get(i - 1).map(|k| k.mailbox()),
        }
    }
}

/// One home relay's side of the pairwise mailboxes.
#[derive(Debug, Default)]
pub(super) struct FetchSet {
    /// The set the last batch named, and whether the relay took it in full
    /// (later batches under the same challenge name it by digest).
    last: Option<Arc<SentSet>>,
    known: bool,
    /// Read and not yet acked: seq → the mailbox it is in.
    unacked: BTreeMap<u64, MailboxId>,
    /// Pages read and not yet handled, in the order they came: at most
    /// two (the one being handled, and the next, asked for when it was
    /// started).
    pages: VecDeque<Slot>,
    /// The id of the next page read.
    next_page: u64,
}

/// A page read: opened off the loop, then started (the relay's
/// `HomeMailbox` told it arrived, which asks for the next page) and
/// handled, in turn. Opening runs ahead of the turn: the next page's
/// seals are opened while this one is, and while the relay reads and
/// sends the one after.
#[derive(Debug)]
struct Slot {
    page: ReadPage,
    /// The cursor the drain stood at when the page was started.
    from: Option<u64>,
    opened: Option<Vec<Opened>>,
}

impl FetchSet {
    fn remember(&mut self, seq: u64, mailbox: MailboxId) {
        self.unacked.insert(seq, mailbox);
        while self.unacked.len() > MAX_UNACKED {
            self.unacked.pop_first();
        }
    }
}

impl EventLoop {
    /// Sends what a home relay's drain loop asks for.
    pub(super) fn drain_step(&mut self, i: usize, step: DrainStep) {
        match step {
            DrainStep::AskChallenge => {
                self.home_request(i, MailboxRequest::Info, MailRequest::Info(i));
            }
            // Never held open (`HomeMailbox::polling`).
            DrainStep::Fetch { after, .. } => {
                let request = BatchRequest::Fetch {
                    after,
                    limit: FETCH_LIMIT,
                };
                match self.batch_request(i, request, true) {
                    Some((request, set)) => {
                        self.home_request(i, request, MailRequest::Fetch(i, set));
                    }
                    None => {
                        let now = self.host_clock.now();
                        if let Some(relay) = self.home.get_mut(i) {
                            relay.mailbox.failed(now, "could not sign a fetch".into());
                        }
                    }
                }
            }
        }
    }

    /// A signed batch to home relay `i` over our own mailbox and the
    /// pairwise ones: the set fetched now when `fresh_set`, else the one
    /// the last fetch named (acks refer to its indexes).
    fn batch_request(
        &mut self,
        i: usize,
        request: BatchRequest,
        fresh_set: bool,
    ) -> Option<(MailboxRequest, Arc<SentSet>)> {
        let device = self.me.device_id();
        let challenge = self.home.get(i)?.mailbox.challenge()?;
        let keys = match (fresh_set, &self.home.get(i)?.set.last) {
            (false, Some(last)) => last.keys.clone(),
            _ => {
                let now = self.host_clock.now();
                self.engine.pairwise_mailboxes(now.unix_ms, self.drained_at)
            }
        };
        let ids: Vec<DeviceId> = keys.iter().map(|k| k.key()).collect();
        let digest = KeySet::digest(&challenge, &device, &ids);
        let relay = self.home.get_mut(i)?;
        let known = relay.set.known
            && relay
                .set
                .last
                .as_ref()
                .is_some_and(|l| l.digest == digest && l.challenge == challenge);
        let set = if known {
            relay.set.last.clone()?
        } else {
            relay.set.known = false;
            let set = Arc::new(SentSet {
                challenge,
                digest,
                keys,
                full: true,
            });
            relay.set.last = Some(set.clone());
            set
        };
        let keys = if known {
            KeySet::Known(digest)
        } else {
            let proof = KeySet::proof_bytes(&digest);
            KeySet::Full {
                keys: ids,
                proofs: set.keys.iter().map(|k| k.sign(&proof)).collect(),
            }
        };
        let signed = Auth::signed_bytes(&challenge, &request.body_bytes(&keys));
        let signature = self.me.keypair.sign(&signed).ok()?;
        let auth = Auth {
            device,
            challenge,
            signature: signature.try_into().ok()?,
        };
        let request = MailboxRequest::Batch {
            auth: Box::new(auth),
            keys,
            request,
        };
        Some((request, set))
    }

    /// Deletes these items at home relay `i`, each from the mailbox it was
    /// read from.
    pub(super) fn ack_mail(&mut self, i: usize, seqs: Vec<u64>) {
        let own = MailboxId::of(&self.me.device_id());
        let Some(relay) = self.home.get_mut(i) else {
            return;
        };
        let Some(last) = relay.set.last.clone() else {
            return;
        };
        let index: HashMap<MailboxId, u16> = std::iter::once(own)
            .chain(last.keys.iter().map(|k| k.mailbox()))
            .zip(0u16..)
            .collect();
        let mut items = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let mailbox = relay.set.unacked.remove(&seq).unwrap_or(own);
            match index.get(&mailbox) {
                Some(i) => items.push((*i, seq)),
                // No longer fetched (a contact blocked since): it stays
                // until the relay's retention ends.
                None => tracing::debug!(seq, "mail read from a mailbox no longer fetched"),
            }
        }
        for chunk in items.chunks(MAX_MAILBOX_ITEMS * 4) {
            let request = BatchRequest::Ack {
                items: chunk.to_vec(),
            };
            if let Some((request, _)) = self.batch_request(i, request, false) {
                self.home_request(i, request, MailRequest::Ack(i));
            }
        }
    }

    /// A page of mail arrived: its seals are opened off the loop (an
    /// X25519 agreement each, on two threads), and it is handled in turn
    /// ([`EventLoop::next_pages`]). The loop meanwhile stores the page
    /// before, and the relay reads the next.
    pub(super) fn on_items(
        &mut self,
        i: usize,
        set: Arc<SentSet>,
        items: Vec<BatchItem>,
        more: bool,
        keys_left: u32,
    ) {
        let own = MailboxId::of(&self.me.device_id());
        let Some(relay) = self.home.get_mut(i) else {
            return;
        };
        relay.answered();
        if set.full
            && relay
                .set
                .last
                .as_ref()
                .is_some_and(|l| l.digest == set.digest)
        {
            // The relay checked the proofs: later batches name the set.
            relay.set.known = true;
        }
        let last = items.last().map(|(_, seq, _)| *seq);
        let got_any = !items.is_empty();
        let mut placed = Vec::with_capacity(items.len());
        for (index, seq, sealed) in items {
            match set.mailbox(own, index) {
                Some(mailbox) => {
                    relay.set.remember(seq, mailbox);
                    let key = usize::from(index)
                        .checked_sub(1)
                        .and_then(|k| set.keys.get(k).cloned());
                    placed.push((seq, key, sealed));
                }
                None => tracing::debug!(seq, index, "a relay sent mail of a mailbox not asked for"),
            }
        }
        let page = ReadPage {
            relay: i,
            peer: relay.peer,
            id: relay.set.next_page,
            last,
            got_any,
            more,
            keys_left,
        };
        relay.set.next_page += 1;
        relay.set.pages.push_back(Slot {
            page: page.clone(),
            from: None,
            opened: None,
        });
        let secret = self.me.mailbox.clone();
        let task = tokio::task::spawn_blocking(move || open_all(&secret, &own, placed));
        self.opening
            .push(Box::pin(async move { (page, task.await) }));
        self.next_pages(i);
    }

    /// The opening of a page ended: handle it in its turn, or (the opening
    /// thread died, which it cannot on its own) read it again after a
    /// backoff.
    pub(super) fn on_opening_done(
        &mut self,
        page: ReadPage,
        opened: Result<Vec<Opened>, tokio::task::JoinError>,
    ) {
        let now = self.host_clock.now();
        let Some(relay) = self
            .home
            .get_mut(page.relay)
            .filter(|r| r.peer == page.peer)
        else {
            // Replaced while the page was opened: the new relay's mailbox
            // never asked for it (its mail stays at the old one).
            return;
        };
        let Some(slot) = relay.set.pages.iter_mut().find(|s| s.page.id == page.id) else {
            // Dropped (its relay stalled or failed in the meantime).
            return;
        };
        match opened {
            Ok(opened) => slot.opened = Some(opened),
            Err(e) => {
                tracing::error!(error = %e, "opening a page of mail failed; reading it again");
                relay.set.pages.clear();
                relay
                    .mailbox
                    .failed(now, "opening a page of mail failed".into());
                return;
            }
        }
        self.next_pages(page.relay);
    }

    /// Moves relay `i`'s pages on in turn: the first is started (the next
    /// page is asked for), and handled once open; then the one after it.
    fn next_pages(&mut self, i: usize) {
        loop {
            let now = self.host_clock.now();
            let Some(relay) = self.home.get_mut(i) else {
                return;
            };
            let Some(slot) = relay.set.pages.front_mut() else {
                return;
            };
            if slot.from.is_none() {
                match relay
                    .mailbox
                    .page_arrived(now, slot.page.last, slot.page.more)
                {
                    PageStart::Discard => {
                        relay.set.pages.pop_front();
                        continue;
                    }
                    PageStart::Handle { from, prefetch } => {
                        slot.from = Some(from);
                        // More is waiting: the next page is asked for now,
                        // so the relay reads and sends it (and its seals are
                        // opened) while this one is handled.
                        if let Some(step) = prefetch {
                            self.drain_step(i, step);
                        }
                    }
                }
            }
            let Some(relay) = self.home.get_mut(i) else {
                return;
            };
            let ready = relay
                .set
                .pages
                .front()
                .is_some_and(|s| s.opened.is_some() && s.from.is_some());
            if !ready {
                return;
            }
            let Some(Slot {
                page,
                from: Some(from),
                opened: Some(opened),
            }) = relay.set.pages.pop_front()
            else {
                return;
            };
            self.on_opened(page, from, opened);
        }
    }

    /// A page's seals are open and its turn came: store it, ack what is
    /// durable, and read on.
    fn on_opened(&mut self, page: ReadPage, start_cursor: u64, opened: Vec<Opened>) {
        let ReadPage {
            relay: i,
            got_any,
            more,
            keys_left,
            ..
        } = page;
        let now = self.host_clock.now();
        let store = self.store.clone();
        let page = self
            .engine
            .handle_mail(ctx!(self), &*store, start_cursor, opened);
        self.drive();
        if !page.ack_now.is_empty() {
            self.ack_mail(i, page.ack_now);
        }
        if !page.ack_after.is_empty() {
            self.batch.after.push(After::MailAck(i, page.ack_after));
        }
        let (cursor, stalled) = (page.cursor, page.stalled);
        let Some(relay) = self.home.get_mut(i) else {
            return;
        };
        let expired = relay.mailbox.strangers(now, &page.strangers);
        if !expired.is_empty() {
            tracing::info!(
                count = expired.len(),
                "deleting mail from non-contacts that waited past its grace"
            );
            self.ack_mail(i, expired);
        }
        let Some(relay) = self.home.get_mut(i) else {
            return;
        };
        let handled = PageHandled {
            cursor,
            keys_left,
            stalled,
            got_any,
            more,
        };
        let step = relay.mailbox.page_handled(now, handled);
        if relay.mailbox.is_drained() {
            // Cards pushed to us while we were away are taken: sends held
            // at start for them go now.
            self.engine.mailbox_drained(ctx!(self));
            self.drive();
            self.note_drained(now.unix_ms);
        }
        if let Some(step) = step {
            self.drain_step(i, step);
        }
        self.restock_keys(i);
    }

    /// Every home relay read to the end: stored (hourly at most), so our
    /// pairwise mailboxes are fetched back to before it after a long
    /// time away.
    fn note_drained(&mut self, now_ms: u64) {
        let all = self
            .home
            .iter()
            .filter(|r| !r.retired)
            .all(|r| r.mailbox.is_drained());
        let due = self
            .drained_at
            .is_none_or(|at| now_ms.saturating_sub(at) >= DRAINED_EVERY_MS);
        if all && due {
            self.drained_at = Some(now_ms);
            self.batch.ops.push(Op::PutDrained(now_ms));
        }
    }
}

/// An item to open: its seq, the pairwise mailbox it is in (`None`: our
/// own), and the sealed bytes.
type Placed = (u64, Option<Arc<PairwiseKey>>, Vec<u8>);

/// An item of a page, opened: its seq and envelope.
pub(super) type Opened = (u64, Result<Vec<u8>, SealError>);

/// Pages being opened off the loop, each with what it was read as.
pub(super) type Opening = futures::stream::FuturesUnordered<
    std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = (ReadPage, Result<Vec<Opened>, tokio::task::JoinError>),
                > + Send,
        >,
    >,
>;

/// A page read from a home relay, while its seals are opened.
#[derive(Debug, Clone)]
pub(super) struct ReadPage {
    relay: usize,
    /// The relay at that index when the page came: if it was replaced in
    /// the meantime, the page is dropped (its mail stays there, and is read
    /// again should the relay come back).
    peer: libp2p::PeerId,
    /// Its place among the relay's pages (`FetchSet::next_page`).
    id: u64,
    /// The page's last item's seq.
    last: Option<u64>,
    got_any: bool,
    more: bool,
    keys_left: u32,
}

/// Opens a page of sealed envelopes (an X25519 agreement each), split over
/// two threads: half as long as opening them in turn. Runs off the loop.
fn open_all(secret: &MailboxSecret, own: &MailboxId, items: Vec<Placed>) -> Vec<Opened> {
    let open = |part: &[Placed]| -> Vec<Opened> {
        part.iter()
            .map(|(seq, key, sealed)| {
                let opened = match key {
                    Some(key) => key.open(sealed),
                    None => secret.open(own, sealed),
                };
                (*seq, opened)
            })
            .collect()
    };
    if items.len() < 16 {
        return open(&items);
    }
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|scope| {
        // A machine out of threads (`spawn` would panic) opens them all
        // here.
        let Ok(later) = std::thread::Builder::new().spawn_scoped(scope, || open(second)) else {
            return open(&items);
        };
        let mut opened = open(first);
        match later.join() {
            Ok(rest) => opened.extend(rest),
            // The helper thread cannot panic on its own; if it did, open
            // the rest here.
            Err(_) => opened.extend(open(second)),
        }
        opened
    })
}

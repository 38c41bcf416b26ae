//! A device's batches handled in the order it sent them
//! (`/hush/direct/2`): each request names the batch that must be handled
//! before it ([`BatchOrder`]), and one that overtook it on the way waits
//! here, briefly and boundedly, for it.
//!
//! Why order matters: the envelopes of two batches in flight come from
//! one Olm chain, in order. Olm keeps 40 skipped message keys per chain;
//! a batch of up to 128 decrypted before the one it follows would leave the
//! earlier one undecryptable (recovered only by a new session).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::BatchOrder;

/// How long a batch waits for the one it names (ms); then it is handled
/// anyway (the other was lost with a failed request, or never sent).
pub const HOLD_MS: u64 = 2_000;
/// Most batches held for one peer. A sender keeps two in flight, so one
/// waits at most; beyond this a batch is handled as it comes.
pub const MAX_HELD_PER_PEER: usize = 2;
/// Most batches held for all peers together (each up to 1 MiB).
pub const MAX_HELD: usize = 32;
/// How many handled batches are remembered per peer.
const HANDLED_KEPT: usize = 8;
/// Most peers remembered; the ones holding nothing are forgotten first.
const MAX_PEERS: usize = 1024;

/// The batches of each peer: which were handled, which wait.
#[derive(Debug)]
pub struct InOrder<P, T> {
    peers: HashMap<P, Line<T>>,
    /// Batches held, over all peers.
    held: usize,
}

#[derive(Debug)]
struct Line<T> {
    handled: VecDeque<u64>,
    held: Vec<Held<T>>,
}

impl<T> Default for Line<T> {
    fn default() -> Self {
        Self {
            handled: VecDeque::new(),
            held: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Held<T> {
    order: BatchOrder,
    since_ms: u64,
    item: T,
}

impl<P, T> Default for InOrder<P, T> {
    fn default() -> Self {
        Self {
            peers: HashMap::new(),
            held: 0,
        }
    }
}

impl<T> Line<T> {
    /// `seq` was handled: remembers it, and moves what waited for it (and
    /// what waited for that) to `out`, in order.
    fn release(&mut self, seq: u64, held: &mut usize, out: &mut Vec<T>) {
        let mut next = seq;
        loop {
            if !self.handled.contains(&next) {
                if self.handled.len() == HANDLED_KEPT {
                    self.handled.pop_front();
                }
                self.handled.push_back(next);
            }
            let Some(i) = self.held.iter().position(|h| h.order.after == next) else {
                return;
            };
            let h = self.held.remove(i);
            *held -= 1;
            next = h.order.seq;
            out.push(h.item);
        }
    }
}

impl<P: Hash + Eq + Clone, T> InOrder<P, T> {
    /// A batch from `peer` arrived: what to handle now, in this order (it
    /// and what waited for it), or nothing while it waits for the batch it
    /// names.
    pub fn arrive(&mut self, now_ms: u64, peer: P, order: BatchOrder, item: T) -> Vec<T> {
        self.make_room(&peer);
        let held = &mut self.held;
        let line = self.peers.entry(peer).or_default();
        let waits =
            order.after != 0 && order.after != order.seq && !line.handled.contains(&order.after);
        if waits && line.held.len() < MAX_HELD_PER_PEER && *held < MAX_HELD {
            line.held.push(Held {
                order,
                since_ms: now_ms,
                item,
            });
            *held += 1;
            return Vec::new();
        }
        let mut out = vec![item];
        line.release(order.seq, held, &mut out);
        out
    }

    /// Batches that waited [`HOLD_MS`] for one that did not come: handled
    /// now, oldest first, each followed by what waited for it.
    pub fn expire(&mut self, now_ms: u64) -> Vec<(P, T)> {
        let mut out = Vec::new();
        if self.held == 0 {
            return out;
        }
        let held = &mut self.held;
        for (peer, line) in &mut self.peers {
            loop {
                let oldest = line
                    .held
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| now_ms.saturating_sub(h.since_ms) >= HOLD_MS)
                    .min_by_key(|(_, h)| h.since_ms)
                    .map(|(i, _)| i);
                let Some(i) = oldest else { break };
                let h = line.held.remove(i);
                *held -= 1;
                let mut items = vec![h.item];
                line.release(h.order.seq, held, &mut items);
                out.extend(items.into_iter().map(|item| (peer.clone(), item)));
            }
        }
        out
    }

    /// The peer has no connection left: what it had waiting is dropped (its
    /// answers can no longer reach it; it sends again), and its next
    /// connection starts afresh. Returns how many were dropped.
    pub fn forget(&mut self, peer: &P) -> usize {
        let dropped = self.peers.remove(peer).map_or(0, |line| line.held.len());
        self.held -= dropped;
        dropped
    }

    /// Batches waiting, over all peers.
    pub fn held(&self) -> usize {
        self.held
    }

    fn make_room(&mut self, peer: &P) {
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(peer) {
            self.peers.retain(|_, line| !line.held.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(seq: u64, after: u64) -> BatchOrder {
        BatchOrder { seq, after }
    }

    #[test]
    fn a_batch_that_overtook_the_one_it_names_waits_for_it_then_both_go_in_order() {
        let mut line: InOrder<u8, &str> = InOrder::default();
        assert_eq!(line.arrive(0, 1, order(10, 0), "first"), ["first"]);
        // 12 follows 11, which is still on its way.
        assert!(line.arrive(5, 1, order(12, 11), "third").is_empty());
        assert_eq!(line.held(), 1);
        assert_eq!(
            line.arrive(6, 1, order(11, 10), "second"),
            ["second", "third"]
        );
        assert_eq!(line.held(), 0);
        // Another peer's numbers are its own.
        assert!(line.arrive(7, 2, order(11, 10), "other").is_empty());
    }

    #[test]
    fn a_batch_naming_one_that_never_comes_is_handled_after_the_hold() {
        let mut line: InOrder<u8, u32> = InOrder::default();
        assert!(line.arrive(0, 1, order(2, 1), 2).is_empty());
        assert!(line.arrive(10, 1, order(3, 2), 3).is_empty());
        assert!(line.expire(HOLD_MS - 1).is_empty(), "still waiting");
        // The first to wait goes, and the one that waited for it.
        assert_eq!(line.expire(HOLD_MS), [(1, 2), (1, 3)]);
        assert_eq!(line.held(), 0);
        // The late one is handled as it comes.
        assert_eq!(line.arrive(HOLD_MS + 1, 1, order(1, 0), 1), [1]);
    }

    #[test]
    fn a_peer_naming_batches_it_never_sends_holds_no_more_than_its_share() {
        let mut line: InOrder<u16, u64> = InOrder::default();
        let mut handled_at_once = 0;
        for seq in 1..=10 {
            // Each names one that does not exist.
            handled_at_once += line.arrive(0, 7, order(seq, 1_000 + seq), seq).len();
        }
        assert_eq!(line.held(), MAX_HELD_PER_PEER);
        assert_eq!(handled_at_once, 10 - MAX_HELD_PER_PEER);
        // Many peers together hold no more than the whole budget.
        for peer in 0..100u16 {
            line.arrive(0, peer, order(2, 1), 0);
            line.arrive(0, peer, order(3, 1), 0);
        }
        assert_eq!(line.held(), MAX_HELD);
    }

    #[test]
    fn a_peer_gone_drops_what_it_had_waiting() {
        let mut line: InOrder<u8, u8> = InOrder::default();
        assert!(line.arrive(0, 1, order(5, 4), 5).is_empty());
        assert_eq!(line.forget(&1), 1);
        assert_eq!(line.held(), 0);
        assert!(line.expire(HOLD_MS).is_empty());
        // A new connection: 4 is unknown again, so 5 waits again.
        assert!(line.arrive(0, 1, order(5, 4), 5).is_empty());
    }
}

//! Replacing a home relay that stopped answering (issue 19, item 4).
//!
//! A home relay the node picked through the DHT that has answered nothing
//! (no challenge, no page) for `--relay-failover-secs` is replaced by the
//! best ranked relay the DHT offers that the node does not hold and that
//! shares no operator group with the relays kept
//! (`discovery::find_replacement`). Then:
//!
//! ```text
//!  relay i silent ≥ failover ─▶ search (own task, courier identity)
//!     ─▶ new relay appended (or in a spent retired slot); i retired
//!     ─▶ saved (PutRelays, PutRetiredRelays) ─▶ card, presence records and
//!        Body::Relays to contacts and our devices name the new set
//! ```
//!
//! A retired relay is still read (with its backoff) until it has been read
//! to the end once, so what it held reaches us if it comes back; a
//! restart keeps reading it. Relays given with `--relay` are never
//! replaced. With no candidate, the node says so in `status`, keeps its
//! outbox and the relays that answer, and searches again later.

use std::time::Duration;

use hush_protocol::MailboxId;
use libp2p::{Multiaddr, PeerId};
use tokio::task::JoinHandle;

use super::relays::HomeRelay;
use super::{EventLoop, millis};
use crate::network::peer_in;
use crate::store::Op;

/// Home relay slots at most: the active ones and the retired ones still
/// read (a slot whose relay was read to the end is reused first).
pub(super) const MAX_HOME_SLOTS: usize = crate::node::MAX_HOME_RELAYS + 5;
/// A search that found nothing is made again this much later at most.
const MAX_RETRY: Duration = Duration::from_secs(15 * 60);

/// When and how home relays are replaced (see the module docs).
#[derive(Debug)]
pub(crate) struct Failover {
    after_ms: u64,
    /// Where a search enters the DHT besides the relays that answer.
    pub(super) bootstrap: Vec<Multiaddr>,
    search: Option<Search>,
    /// No new search before then (mono ms), after one found nothing.
    next_search_ms: u64,
}

#[derive(Debug)]
pub(super) struct Search {
    replacing: PeerId,
    task: JoinHandle<Option<String>>,
}

impl Failover {
    pub(crate) fn new(after: Duration, bootstrap: Vec<Multiaddr>) -> Self {
        Self {
            after_ms: millis(after).max(1),
            bootstrap,
            search: None,
            next_search_ms: 0,
        }
    }

    /// The home relay to replace now, if any: one not retired that has not
    /// answered for the failover period, when the relays were found
    /// through the DHT (`found`) and no search is under way.
    pub(super) fn due(&self, home: &[HomeRelay], now_ms: u64, found: bool) -> Option<usize> {
        if !found || self.search.is_some() || now_ms < self.next_search_ms {
            return None;
        }
        home.iter().position(|r| {
            !r.retired
                && r.unanswered_since
                    .is_some_and(|since| now_ms.saturating_sub(since) >= self.after_ms)
        })
    }

    /// The search under way, once it finished.
    pub(super) async fn finished(search: &mut Option<Search>) -> (PeerId, Option<String>) {
        match search {
            Some(s) => {
                let found = (&mut s.task).await.ok().flatten();
                (s.replacing, found)
            }
            None => std::future::pending().await,
        }
    }

    pub(super) fn search_slot(&mut self) -> &mut Option<Search> {
        &mut self.search
    }
}

impl EventLoop {
    /// Starts the search for a replacement when a home relay is due, and
    /// forgets retired relays read to the end.
    pub(super) fn failover_tick(&mut self) {
        let now = self.host_clock.now();
        self.forget_spent_relays();
        let Some(i) = self
            .failover
            .due(&self.home, now.mono_ms, self.me.relays_found)
        else {
            return;
        };
        let replacing = self.home[i].peer;
        let active: Vec<&HomeRelay> = self.home.iter().filter(|r| !r.retired).collect();
        let keep: Vec<Multiaddr> = active
            .iter()
            .filter(|r| r.peer != replacing)
            .map(|r| r.addr.clone())
            .collect();
        let seeds: Vec<Multiaddr> = self
            .failover
            .bootstrap
            .iter()
            .cloned()
            .chain(
                active
                    .iter()
                    .filter(|r| r.unanswered_since.is_none())
                    .map(|r| r.addr.clone()),
            )
            .collect();
        let avoid: Vec<PeerId> = self.home.iter().map(|r| r.peer).collect();
        let mailbox = MailboxId::of(&self.me.device_id());
        tracing::warn!(
            relay = %self.home[i].addr,
            silent_secs = self.failover.after_ms / 1000,
            "a home relay has not answered for the failover period: looking for another"
        );
        let task = tokio::spawn(async move {
            crate::discovery::find_replacement(&seeds, mailbox, &keep, &avoid).await
        });
        self.failover.search = Some(Search { replacing, task });
    }

    /// What a search for a replacement of `replacing` found.
    pub(super) fn on_replacement(&mut self, replacing: PeerId, found: Option<String>) {
        self.failover.search = None;
        let now = self.host_clock.now();
        let Some(i) = self
            .home
            .iter()
            .position(|r| r.peer == replacing && !r.retired)
        else {
            return;
        };
        if self.home[i].unanswered_since.is_none() {
            tracing::info!(relay = %self.home[i].addr, "the home relay answers again: kept");
            return;
        }
        let found = found.and_then(|a| {
            let addr: Multiaddr = a.parse().ok()?;
            Some((peer_in(&addr)?, addr))
        });
        let Some((peer, addr)) = found else {
            let retry = Duration::from_millis(self.failover.after_ms).min(MAX_RETRY);
            self.failover.next_search_ms = now.mono_ms.saturating_add(millis(retry));
            let why = format!(
                "home relay {} has not answered for {} s and the DHT offers no other relay that takes new mailboxes: its replicas are down to the others; searching again in {} s",
                self.home[i].addr,
                now.mono_ms
                    .saturating_sub(self.home[i].unanswered_since.unwrap_or(now.mono_ms))
                    / 1000,
                retry.as_secs()
            );
            tracing::warn!("{why}");
            self.me.relay_search = Some(why);
            return;
        };
        self.replace_home_relay(i, peer, addr);
    }

    /// Retires home relay `i` and takes `addr` in its place: saved, and
    /// told to contacts (pushed, and in our presence records).
    fn replace_home_relay(&mut self, i: usize, peer: PeerId, addr: Multiaddr) {
        let now = self.host_clock.now();
        let old = self.home[i].addr.to_string();
        self.home[i].retired = true;
        // It forgets our push endpoint (if it ever answers again).
        self.home[i].push = super::push::PushSlot::Unsent;
        // Read to the end since it was retired, not before.
        self.home[i].mailbox.reread(now);
        let mut relay = HomeRelay::new(peer, addr.clone(), now, self.mail_poll);
        relay.mailbox.want_revoked(self.engine.revoked_holders());
        let slot = if self.home.len() < MAX_HOME_SLOTS {
            self.home.push(relay);
            self.home.len() - 1
        } else {
            // A spent retired slot, else the oldest retired one: answers
            // still under way for the relay that held it are dropped (they
            // name another peer).
            let j = self
                .home
                .iter()
                .position(|r| r.retired && r.spent)
                .or_else(|| {
                    self.home
                        .iter()
                        .position(|r| r.retired && r.peer != self.home[i].peer)
                })
                .unwrap_or(i);
            self.home[j] = relay;
            j
        };
        // The stored revocations go to it when it first answers.
        self.drops_due.insert(slot);
        self.swarm
            .behaviour_mut()
            .kad
            .add_address(&peer, addr.clone());
        let new = addr.to_string();
        for r in &mut self.me.relays {
            if *r == old {
                r.clone_from(&new);
            }
        }
        if !self.me.relays.contains(&new) {
            self.me.relays.push(new.clone());
        }
        self.batch.ops.push(Op::PutRelays(self.me.relays.clone()));
        self.batch
            .ops
            .push(Op::PutRetiredRelays(self.retired_to_keep()));
        self.me.relay_search = None;
        tracing::warn!(old = %old, new = %new, "home relay replaced");
        self.presence.set_relays(&self.me.relays);
        let relays = self.me.relays.clone();
        self.engine.push_relays(ctx!(self), &relays);
        self.drive();
        self.own_card_to_engine();
    }

    /// At start: home relays given anew (`--relay`) are told to contacts,
    /// as a replacement is.
    pub(super) fn push_relays_if_changed(&mut self) {
        if self.me.relays_changed {
            self.me.relays_changed = false;
            let relays = self.me.relays.clone();
            self.engine.push_relays(ctx!(self), &relays);
            self.drive();
        }
    }

    /// Retired relays read to the end are done: not read again, and not
    /// kept for the next start.
    fn forget_spent_relays(&mut self) {
        let mut changed = false;
        for relay in self
            .home
            .iter_mut()
            .filter(|r| r.retired && !r.spent && r.mailbox.is_drained())
        {
            tracing::info!(relay = %relay.addr, "a replaced home relay was read to the end");
            relay.spent = true;
            changed = true;
        }
        if changed {
            self.batch
                .ops
                .push(Op::PutRetiredRelays(self.retired_to_keep()));
        }
    }

    /// The retired relays still to read, as saved.
    fn retired_to_keep(&self) -> Vec<String> {
        self.home
            .iter()
            .filter(|r| r.retired && !r.spent)
            .map(|r| r.addr.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_protocol::Now;

    const MIN: u64 = 60_000;

    fn relay(unanswered_since: Option<u64>, retired: bool) -> HomeRelay {
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/7001/p2p/{}", PeerId::random())
            .parse()
            .expect("a relay address");
        let mut r = HomeRelay::new(
            peer_in(&addr).expect("its peer"),
            addr,
            Now::new(0, 0),
            Duration::from_secs(1),
        );
        r.unanswered_since = unanswered_since;
        r.retired = retired;
        r
    }

    fn failover() -> Failover {
        Failover::new(Duration::from_secs(60 * 60), Vec::new())
    }

    #[test]
    fn a_relay_silent_for_the_failover_period_is_due_once_it_has_been() {
        let home = [relay(None, false), relay(Some(10 * MIN), false)];
        let f = failover();
        assert_eq!(f.due(&home, 69 * MIN, true), None, "silent 59 minutes");
        assert_eq!(f.due(&home, 70 * MIN, true), Some(1), "silent an hour");
    }

    #[test]
    fn pinned_relays_are_never_replaced_however_long_they_are_silent() {
        let home = [relay(Some(0), false)];
        assert_eq!(failover().due(&home, 1_000 * 60 * MIN, false), None);
    }

    #[test]
    fn a_retired_relay_is_not_replaced_again() {
        let home = [relay(Some(0), true), relay(None, false)];
        assert_eq!(failover().due(&home, 1_000 * 60 * MIN, true), None);
    }

    #[test]
    fn after_a_search_found_nothing_the_next_waits() {
        let home = [relay(Some(0), false)];
        let mut f = failover();
        f.next_search_ms = 90 * MIN;
        assert_eq!(f.due(&home, 80 * MIN, true), None);
        assert_eq!(f.due(&home, 90 * MIN, true), Some(0));
    }
}

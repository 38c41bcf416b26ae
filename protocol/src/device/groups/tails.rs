//! Our messages a member did not confirm while others did: handed to it
//! over Olm.
//!
//! A member that misses one of our messages on the topic notices the gap
//! when our next message comes ([`gaps`](super::gaps)) and asks for it.
//! After our last message there is no next one. Other members confirmed
//! it, so it is not published again ([`resend`](super::resend)), and the
//! member that missed it would read it only when we write again, or when
//! its relays connect again.
//!
//! So we remember, for each message we send, the joined members that have
//! not confirmed it (a receipt of either kind). [`HAND_AFTER_MS`] after it
//! went out, if some member confirmed it, each of them still in the group
//! is handed to the host
//! ([`GroupEffect::Hand`]), which gives it the message over Olm
//! ([`GroupBook::hand`]) if one of its devices is connected to us now: a
//! `Found` it did not ask for, which a member takes from the maker of the
//! message's session alone (`recent.rs`). A member not connected reads it
//! from its relays' history when it comes back, as before. While no member
//! has confirmed it, the resends own it (every member may lack it, and one
//! publication reaches them all): it is looked at again every
//! [`HAND_AFTER_MS`], and let go once the last resend has had as long.
//!
//! In memory only: a restart forgets what is owed. Bounded like the
//! messages watched for resends ([`MAX_TAILS`], [`MAX_TAIL_BYTES`]); the
//! oldest goes first.

use std::collections::{HashMap, VecDeque};

use super::{GroupBook, GroupEffect, RESEND_AFTER_MS};
use crate::device::Ctx;
use crate::{AccountId, GroupId, MessageId};

/// How long after our message went out the members that have not
/// confirmed it are handed it. Members confirm within a receipt batch (1 to
/// 2 s, `RECEIPT_BATCH_MS`), and a gap is asked about within seconds; this
/// is for what nothing else will bring.
pub(crate) const HAND_AFTER_MS: u64 = 15_000;
/// Messages remembered at most, over all groups.
const MAX_TAILS: usize = 1024;
/// Their bytes at most.
const MAX_TAIL_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
struct Tail {
    group: GroupId,
    bytes: Vec<u8>,
    /// Joined members, other than us, that have not confirmed it.
    lacking: Vec<AccountId>,
    /// Some member has.
    confirmed: bool,
    due_ms: u64,
    /// Past this, with no member's receipt, it is let go.
    last_ms: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Tails {
    tails: HashMap<MessageId, Tail>,
    /// Oldest first (due in this order).
    order: VecDeque<MessageId>,
    bytes: usize,
}

impl Tails {
    /// One of our messages went out to `members` (joined, us left out).
    pub(super) fn sent(
        &mut self,
        now_ms: u64,
        id: MessageId,
        group: GroupId,
        bytes: &[u8],
        members: Vec<AccountId>,
    ) {
        if members.is_empty() || self.tails.contains_key(&id) {
            return;
        }
        while self.tails.len() >= MAX_TAILS
            || (self.bytes + bytes.len() > MAX_TAIL_BYTES && !self.tails.is_empty())
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        // Ids of messages every member confirmed stay in `order` until they
        // reach its front; a fast sender's would pile up behind one not due.
        if self.order.len() >= 4 * MAX_TAILS {
            let tails = &self.tails;
            self.order.retain(|id| tails.contains_key(id));
        }
        self.bytes += bytes.len();
        self.order.push_back(id);
        self.tails.insert(
            id,
            Tail {
                group,
                bytes: bytes.to_vec(),
                lacking: members,
                confirmed: false,
                due_ms: now_ms.saturating_add(HAND_AFTER_MS),
                last_ms: now_ms
                    .saturating_add(RESEND_AFTER_MS[RESEND_AFTER_MS.len() - 1])
                    .saturating_add(HAND_AFTER_MS),
            },
        );
    }

    /// `account` confirmed `ids` (of ours).
    pub(super) fn confirmed(&mut self, account: &AccountId, ids: &[MessageId]) {
        for id in ids {
            let Some(tail) = self.tails.get_mut(id) else {
                continue;
            };
            tail.lacking.retain(|a| a != account);
            tail.confirmed = true;
            if tail.lacking.is_empty() {
                self.remove(id);
            }
        }
    }

    /// Every message some member confirmed that is due at `now_ms`, with
    /// the members still lacking it. One no member confirmed yet is looked
    /// at again later, or let go.
    fn due(&mut self, now_ms: u64) -> Vec<(GroupId, Vec<u8>, Vec<AccountId>)> {
        let mut due = Vec::new();
        let mut later = Vec::new();
        while let Some(id) = self.order.front().copied() {
            match self.tails.get_mut(&id) {
                Some(tail) if tail.due_ms > now_ms => break,
                Some(tail) if !tail.confirmed && now_ms < tail.last_ms => {
                    tail.due_ms = now_ms.saturating_add(HAND_AFTER_MS);
                    later.push(id);
                    self.order.pop_front();
                    continue;
                }
                _ => {}
            }
            self.order.pop_front();
            if let Some(tail) = self.tails.remove(&id) {
                self.bytes -= tail.bytes.len();
                if tail.confirmed {
                    due.push((tail.group, tail.bytes, tail.lacking));
                }
            }
        }
        self.order.extend(later);
        due
    }

    fn remove(&mut self, id: &MessageId) {
        if let Some(tail) = self.tails.remove(id) {
            self.bytes -= tail.bytes.len();
            // `order` keeps the id; `due` skips ids no longer here.
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.tails.len()
    }

    #[cfg(test)]
    pub(super) fn order_len(&self) -> usize {
        self.order.len()
    }
}

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + std::hash::Hash + std::fmt::Display,
{
    /// On the tick: the members still lacking one of our messages, to the
    /// host, for those it finds connected.
    pub(super) fn hand_tails(&mut self, now_ms: u64) {
        for (group, bytes, lacking) in self.tails.due(now_ms) {
            if !self.still_in(&group) {
                continue;
            }
            let Some(g) = self.groups.get(&group) else {
                continue;
            };
            for account in lacking {
                // Removed, or left, since: not ours to hand anything now.
                // (`lacking` never holds us: `sent` leaves us out.)
                let Some(member) = g
                    .state
                    .members
                    .get(&account)
                    .filter(|m| m.status == crate::MemberStatus::Joined)
                else {
                    continue;
                };
                let devices = member.card.device_list.ids().collect();
                self.effects.push_back(GroupEffect::Hand {
                    to: account,
                    devices,
                    group,
                    bytes: bytes.clone(),
                });
            }
        }
    }

    /// The host found one of `to`'s devices connected: it gets this
    /// message of ours over Olm.
    pub fn hand(&mut self, ctx: &mut Ctx<'_>, to: AccountId, group: GroupId, bytes: Vec<u8>) {
        if !self.still_in(&group) {
            return;
        }
        self.note(
            group,
            super::Severity::Debug,
            "a member missed our message on the topic: handed to it over Olm",
        );
        self.send_control(ctx, to, group, crate::ControlKind::Found(vec![bytes]));
    }
}

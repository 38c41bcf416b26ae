//! Group messages a member missed, from another member.
//!
//! A gap in a session's indices ([`gaps`](super::gaps)) is first a message
//! still on its way, then one the home relays' history may hold. A node
//! without relays, or whose relays missed the message too, had nowhere
//! else to ask: the others' receipts confirmed the message, so its sender
//! never published it again, and the member lacked it for good.
//!
//! So each member keeps the messages it read (and sent) last, as they were
//! published ([`Recent`], in memory, bounded; the node stores them when it
//! stops and gives them back when it starts, [`GroupBook::kept_messages`]),
//! and a member whose gap is
//! still open when the relays are asked also asks two members over Olm
//! ([`ControlKind::Missed`]): the session's maker, who holds what it sent,
//! and one other member at random, in case the maker is away. They answer
//! with what they hold ([`ControlKind::Found`]), which is read as if it
//! came from the topic: checked against the topic's publish key, and
//! decrypted (and so checked) by the session itself. Nothing a member
//! answers can be forged or replayed into another group.
//!
//! Bounds: a catch-up asks about [`MAX_SESSIONS_ASKED`] sessions at most;
//! a member answers an asker about a session at most once per
//! [`ANSWER_GAP_MS`], about at most [`MAX_SESSIONS_ASKED`] sessions of a
//! group in that time, each answer at most [`MAX_ANSWER_BYTES`]; a
//! `Found` is read only from a member asked in the last
//! [`FOUND_WAIT_MS`], no more messages than asked of it, and only for
//! sessions of that group we hold.

use std::collections::VecDeque;

use super::*;
use crate::device::KeptRecord;
use crate::group::{MAX_FOUND, MAX_MISSED};
use crate::{CHANNEL_SESSION, ControlKind, GroupMessage, Wire};

/// Messages kept at most, over all groups.
pub const RECENT_MESSAGES: usize = 512;
/// Their encoded bytes at most.
pub const RECENT_BYTES: usize = 1024 * 1024;
/// A member that asked about a session is answered about it again after
/// this long at the earliest.
pub const ANSWER_GAP_MS: u64 = 10_000;
/// Sessions one catch-up asks about at most (the others' gaps are left to
/// the relays), and sessions one asker is answered about at most in a
/// group every [`ANSWER_GAP_MS`].
pub const MAX_SESSIONS_ASKED: usize = 16;
/// What one answer carries at most (over controls of at most
/// [`MAX_CONTROL_BYTES`] each).
pub const MAX_ANSWER_BYTES: usize = 4 * MAX_CONTROL_BYTES;
/// How long after asking a member its answer is read (it may come
/// through its relays if it is away).
pub const FOUND_WAIT_MS: u64 = 120_000;
/// Asks and answers remembered at most (older ones are forgotten first).
const MAX_REMEMBERED: usize = 4096;
/// Messages one unasked `Found` may hand over (the maker's own, see
/// `tails.rs`, which hands one at a time).
const MAX_HANDED: usize = 8;

#[derive(Debug)]
struct Kept {
    group: GroupId,
    session: SessionId,
    index: u32,
    bytes: Vec<u8>,
}

/// The group messages read or sent last, and who was asked and answered.
#[derive(Debug, Default)]
pub(super) struct Recent {
    kept: VecDeque<Kept>,
    bytes: usize,
    /// Members we asked: (group, member) → when, and how many messages
    /// their answer may still bring.
    asked: HashMap<(GroupId, AccountId), (u64, usize)>,
    /// Asks we answered: (group, member, session) → when.
    answered: HashMap<(GroupId, AccountId, SessionId), u64>,
    /// Answers to one member in a group: since when, how many sessions.
    answers: HashMap<(GroupId, AccountId), (u64, usize)>,
}

impl Recent {
    fn keep(&mut self, kept: Kept) {
        // One too large for a control over Olm (a file's offer near the
        // padded payload's 64 KiB) could never be answered: the relays
        // hold it, or nobody.
        if kept.bytes.len() + 4 > MAX_CONTROL_BYTES {
            return;
        }
        self.bytes += kept.bytes.len();
        self.kept.push_back(kept);
        while self.kept.len() > RECENT_MESSAGES || self.bytes > RECENT_BYTES {
            let Some(old) = self.kept.pop_front() else {
                break;
            };
            self.bytes -= old.bytes.len();
        }
    }

    /// The kept messages of `session` in `group` at `indices`.
    fn find(&self, group: GroupId, session: SessionId, indices: &[u32]) -> Vec<&[u8]> {
        self.kept
            .iter()
            .filter(|k| k.group == group && k.session == session && indices.contains(&k.index))
            .map(|k| k.bytes.as_slice())
            .collect()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.kept.len()
    }

    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Notes `key` at `now` in `map` unless it is there from within `gap`;
/// false if it is (or the map is full of recent entries).
fn note_once<K: Eq + Hash>(map: &mut HashMap<K, u64>, key: K, now: u64, gap: u64) -> bool {
    if map
        .get(&key)
        .is_some_and(|at| now.saturating_sub(*at) < gap)
    {
        return false;
    }
    if map.len() >= MAX_REMEMBERED {
        map.retain(|_, at| now.saturating_sub(*at) < gap);
        if map.len() >= MAX_REMEMBERED {
            return false;
        }
    }
    map.insert(key, now);
    true
}

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + Hash + fmt::Display,
{
    /// Keeps a message of `group` read or sent at `index` of `session`,
    /// as published, for members that missed it.
    pub(super) fn keep_recent(
        &mut self,
        group: GroupId,
        session: SessionId,
        index: u32,
        bytes: &[u8],
    ) {
        self.recent.keep(Kept {
            group,
            session,
            index,
            bytes: bytes.to_vec(),
        });
    }

    /// The messages kept for other members, oldest first, of the groups
    /// we still hold: what the node stores when it stops.
    pub fn kept_messages(&self) -> Vec<KeptRecord> {
        self.recent
            .kept
            .iter()
            .filter(|k| self.groups.contains_key(&k.group))
            .map(|k| KeptRecord {
                group: k.group,
                session: k.session.0,
                index: k.index,
                bytes: k.bytes.clone(),
            })
            .collect()
    }

    /// Messages kept before the node stopped, oldest first (as
    /// [`kept_messages`](Self::kept_messages) gave them): kept again in
    /// place of what is kept now, those of groups we hold, within the same
    /// bounds. Call after the groups are restored.
    pub fn restore_kept(&mut self, records: Vec<KeptRecord>) {
        self.recent.kept.clear();
        self.recent.bytes = 0;
        for record in records {
            if !self.groups.contains_key(&record.group) {
                continue;
            }
            self.recent.keep(Kept {
                group: record.group,
                session: SessionId(record.session),
                index: record.index,
                bytes: record.bytes,
            });
        }
    }

    /// A gap stayed open: asks the session's maker and one other joined
    /// member, at random, for the messages at `indices`.
    pub(super) fn ask_members(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        session: SessionId,
        maker: AccountId,
        indices: Vec<u32>,
    ) {
        let me = self.account();
        let Some(g) = self.groups.get(&id) else {
            return;
        };
        let others: Vec<AccountId> = g
            .state
            .joined()
            .map(|(a, _)| *a)
            .filter(|a| *a != me && *a != maker)
            .collect();
        let mut ask = Vec::with_capacity(2);
        // A maker that left or was removed may not hold the group any more.
        if maker != me && g.state.joined().any(|(a, _)| *a == maker) {
            ask.push(maker);
        }
        if !others.is_empty() {
            let len = u64::try_from(others.len()).unwrap_or(u64::MAX);
            let pick = usize::try_from(ctx.rng.next_u64() % len).unwrap_or(0);
            ask.push(others[pick]);
        }
        if ask.is_empty() {
            return;
        }
        let indices: Vec<u32> = indices.into_iter().take(MAX_MISSED).collect();
        self.note(
            id,
            Severity::Debug,
            "asking members for group messages we missed",
        );
        let now = ctx.now.mono_ms;
        if self.recent.asked.len() >= MAX_REMEMBERED {
            self.recent
                .asked
                .retain(|_, (at, _)| now.saturating_sub(*at) < FOUND_WAIT_MS);
        }
        for member in ask {
            if self.recent.asked.len() >= MAX_REMEMBERED {
                break;
            }
            let asked = self.recent.asked.entry((id, member)).or_insert((now, 0));
            *asked = (now, asked.1.saturating_add(indices.len()));
            let kind = ControlKind::Missed {
                session,
                indices: indices.clone(),
            };
            self.send_control(ctx, member, id, kind);
        }
    }

    /// A joined member asks for messages of `session` it missed: what we
    /// kept of them, within the bounds above.
    pub(super) fn on_missed(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        account: AccountId,
        session: SessionId,
        indices: &[u32],
    ) {
        // Joined members only: one invited, removed or gone gets nothing.
        let member = self
            .groups
            .get(&id)
            .is_some_and(|g| g.state.joined().any(|(a, _)| *a == account));
        if !member || account == self.account() {
            return;
        }
        if self.recent.find(id, session, indices).is_empty() {
            return;
        }
        let now = ctx.now.mono_ms;
        let recent = &mut self.recent;
        let window = recent.answers.entry((id, account)).or_insert((now, 0));
        if now.saturating_sub(window.0) >= ANSWER_GAP_MS {
            *window = (now, 0);
        }
        if window.1 >= MAX_SESSIONS_ASKED
            || !note_once(
                &mut recent.answered,
                (id, account, session),
                now,
                ANSWER_GAP_MS,
            )
        {
            let what = "a repeated ask for missed group messages ignored";
            self.note(id, Severity::Info, what);
            return;
        }
        window.1 += 1;
        if self.recent.answers.len() > MAX_REMEMBERED {
            self.recent
                .answers
                .retain(|_, (since, _)| now.saturating_sub(*since) < ANSWER_GAP_MS);
        }
        // Copied only once the ask is let through: a flood of asks costs
        // a scan each, not a copy.
        let found: Vec<Vec<u8>> = self
            .recent
            .find(id, session, indices)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let mut chunk: Vec<Vec<u8>> = Vec::new();
        let (mut chunk_bytes, mut total) = (0, 0);
        for bytes in found {
            let len = bytes.len() + 4;
            if total + len > MAX_ANSWER_BYTES {
                break;
            }
            if !chunk.is_empty()
                && (chunk_bytes + len > MAX_CONTROL_BYTES || chunk.len() >= MAX_FOUND)
            {
                let full = std::mem::take(&mut chunk);
                self.send_control(ctx, account, id, ControlKind::Found(full));
                chunk_bytes = 0;
            }
            chunk_bytes += len;
            total += len;
            chunk.push(bytes);
        }
        if !chunk.is_empty() {
            self.send_control(ctx, account, id, ControlKind::Found(chunk));
        }
    }

    /// Messages a member we asked found for us: read as from the topic,
    /// if they are the group's and of a session of it we hold.
    pub(super) fn on_found<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        id: GroupId,
        account: AccountId,
        messages: Vec<Vec<u8>>,
    ) {
        let now = ctx.now.mono_ms;
        let key = (id, account);
        let take = match self.recent.asked.get_mut(&key) {
            Some((at, left)) if now.saturating_sub(*at) < FOUND_WAIT_MS => {
                let take = messages.len().min(*left);
                *left -= take;
                take
            }
            _ => 0,
        };
        if self
            .recent
            .asked
            .get(&key)
            .is_some_and(|(_, left)| *left == 0)
        {
            self.recent.asked.remove(&key);
        }
        // Unasked, only its own: the maker of a message's session hands
        // it to a member that did not confirm it (`tails.rs`). It could
        // publish those on the topic as well, so this lets it do nothing
        // it could not; each is checked as the others below.
        let (take, handed) = if take == 0 {
            (
                messages
                    .len()
                    .min(MAX_HANDED)
                    .min(self.made_by(account, &messages)),
                true,
            )
        } else {
            (take, false)
        };
        if take == 0 {
            let what =
                "group messages from a member we did not ask (or more than we asked for); ignored";
            self.note(id, Severity::Info, what);
            return;
        }
        if handed {
            self.note(
                id,
                Severity::Debug,
                "a member handed us its message we had not confirmed",
            );
        }
        for bytes in messages.into_iter().take(take) {
            let Ok(message) = GroupMessage::from_bytes(&bytes) else {
                continue;
            };
            let ours = self
                .groups
                .get(&id)
                .is_some_and(|g| g.topics().any(|t| g.authentic_for(t, &message)))
                && message.session != CHANNEL_SESSION
                && self
                    .inbound
                    .get(&message.session)
                    .is_some_and(|i| i.group == id);
            if !ours {
                let what = "a found group message not of this group's sessions; skipped";
                self.note(id, Severity::Warn, what);
                continue;
            }
            self.on_message(ctx, lookup, id, &bytes);
        }
    }

    /// How many of `messages`, from the first, are of Megolm sessions
    /// `account` made (and we hold).
    fn made_by(&self, account: AccountId, messages: &[Vec<u8>]) -> usize {
        messages
            .iter()
            .take_while(|bytes| {
                GroupMessage::from_bytes(bytes).is_ok_and(|m| {
                    self.inbound
                        .get(&m.session)
                        .is_some_and(|i| i.account == account)
                })
            })
            .count()
    }
}

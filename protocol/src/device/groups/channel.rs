//! The group's channel (protocol.md §11.6b): membership ops and op heads
//! published once on the group's topic, for every member of the epoch,
//! instead of once per member over Olm.
//!
//! A channel message is a [`GroupMessage`] under [`CHANNEL_SESSION`]: a
//! padded [`Payload`] carrying a [`GroupControl`], sealed with a key derived
//! from the epoch's publish secret (which every member of the epoch holds,
//! and no relay). The payload's sender is a claim (any holder of the key
//! could write it); what it carries proves itself: ops are signed by their
//! authors, and heads are only a hint of what the sender holds.
//!
//! Ops published on a topic can be missed (a member not yet subscribed, a
//! full queue, a lagging epoch key), and a join that nobody names as a
//! parent would never be asked for. So members converge by announcing
//! their heads:
//!
//! ```text
//!  our op set changed ─▶ after a quiet spell (+ jitter): publish Heads(ours)
//!  Heads(h) arrives:
//!    h == ours                ─▶ cancel ours (someone said it)
//!    we lack some of h        ─▶ soon, Heads(ours) while they are few,
//!                                 else Want(those), leaving out what
//!                                 others just wanted (others answer it)
//!    we hold ops beyond h     ─▶ in our turn, publish those ops, unless
//!                                 they came by on the channel meanwhile
//!                                 (holding none of h: our own heads;
//!                                 not ops we got in the last 2 s: those
//!                                 are still on their way to h's sender)
//!  Want(w) arrives:
//!    we lack some of w        ─▶ their answer reaches us too: ours
//!                                 leaves them out for a while
//!    we hold some of w        ─▶ in our turn, publish those, as above
//! ```
//!
//! A member with many heads that lacks ops says which, not what it holds
//! (see [`LACK_HEADS_MAX`](super::LACK_HEADS_MAX)): while many members join
//! at once, each lacks different joins, so their heads differ and no
//! announcement silences another, and every announcement named every head
//! to every member (at 300 members, three quarters of setup's traffic).
//! A want names only what is lacked, and members that lack the same leave
//! it out of theirs.
//!
//! Each member says it lacks ops at most once per [`HEADS_MIN_GAP_MS`] and
//! answers at most once per [`ANSWER_MIN_GAP_MS`] per group, so a member
//! announcing junk heads or wants costs each other member at most that.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;

use super::{
    ASK_AFTER_MS, DeviceLookup, GroupAfter, GroupBook, GroupEffect, GroupWrite, SYNC_AFTER_MS,
    Severity, chunks, membership::OpsFrom, receive::Received,
};
use crate::CHANNEL_SESSION;
use crate::device::{Ctx, SeenKey};
use crate::{
    AccountId, Body, ControlKind, GroupControl, GroupId, GroupMessage, GroupOp, OpHash, Payload,
    Wire,
};

/// After our op set last changed, this long before we announce our heads
/// (ops still spreading land first), plus our turn (see [`turn`]) times
/// [`TURN_MS`], so that the first announcement silences the others.
pub(super) const HEADS_QUIET_MS: u64 = 2_000;
/// The random delay of an announcement that is ours alone (we lack
/// something), and of the first one after start.
pub(super) const HEADS_JITTER_MS: u64 = 3_000;
/// How long each turn before ours lasts (see [`turn`]), at most
/// [`MAX_TURN_WAIT_MS`] in all.
pub(super) const TURN_MS: u64 = 250;
pub(super) const MAX_TURN_WAIT_MS: u64 = 10_000;
/// We say we lack ops that someone else's heads named (with our heads, or
/// a want) at most this often per group (announcements after our own set
/// changed do not count: ops that take effect limit those).
pub(super) const HEADS_MIN_GAP_MS: u64 = 5_000;
/// Ops another member wanted on the channel are left out of our wants
/// this long: the answer to theirs reaches us too (if not, we ask over
/// Olm, and want them ourselves after this).
pub(super) const WANTED_FOR_MS: u64 = HEADS_MIN_GAP_MS;
/// Answers per group come at most this often.
pub(super) const ANSWER_MIN_GAP_MS: u64 = 5_000;
/// An op we got less than this long ago is still spreading on the
/// channel: heads that lack it do not make us owe it. Our own announcement
/// comes at least this long after our set last changed ([`HEADS_QUIET_MS`]),
/// so heads answering it find none of our ops spreading: what a member
/// really lacks is still answered, a little later.
pub(super) const SPREADING_MS: u64 = HEADS_QUIET_MS;
/// After our op set last changed we check in with a member over Olm (our
/// heads; it answers with what they lack) after about this long, then
/// after twice as long each time, up to [`CHECK_LAST_MS`]; each check-in
/// comes between half and one and a half times its gap. A member that
/// hears nothing of the channel (outside every mesh, its peers' queues
/// dropping what it needs) is told of no heads it lacks, least of all in
/// a quiet group where nobody announces any: checking in, it learns what
/// it missed. About seven check-ins per member after each change (nine
/// while new to the group, see [`CHECK_NEW_MS`]), none once the group is
/// settled; fewer where members hear each other: a check-in is skipped
/// when a member told us heads equal to ours since it was scheduled (as
/// in Trickle, RFC 6206: what was heard consistent is not said again),
/// never two in a row. After a change, the announcement on the channel
/// that silences the others' usually silences their first check-ins too.
pub(super) const CHECK_FIRST_MS: u64 = 30_000;
/// The first gap while we are new to the group's channel (see
/// [`NEW_FOR_MS`]): a member that just joined (or just started) is the one
/// most likely to have missed ops while its mesh formed, and a member
/// that missed the others' joins holds up the whole group's setup.
pub(super) const CHECK_NEW_MS: u64 = 4_000;
/// How long after we joined the channel (our first tick as a member, also
/// after a restart) the first gap is [`CHECK_NEW_MS`].
pub(super) const NEW_FOR_MS: u64 = 60_000;
/// The longest gap between check-ins; past it they stop until our op set
/// changes again.
pub(super) const CHECK_LAST_MS: u64 = 32 * 60_000;
/// Heads that lack more ops than this (beyond those still spreading) are
/// far behind: only the first member in turn for them (the announcer
/// aside) answers, on the channel. Every member holding the ops would
/// otherwise answer in its turn until the first answer arrived, and while
/// a busy group forms the channel is slower than the turns: at 100 members
/// nearly every member published the op set to every member (0.4–1.5 GB
/// of loopback traffic during setup). A few ops lacking are answered as before, in
/// turn by whoever holds them: small, and a second answer is cheap.
pub(super) const MAX_CHANNEL_ANSWER_OPS: usize = 16;
/// Ops remembered as spreading, at most (per group): past that, new ops
/// count as spread (answered as before). Also the most ops remembered as
/// wanted by others.
const MAX_SPREADING: usize = 4_096;

/// Where a group's channel stands: when we announce our heads next, and
/// which ops we owe others.
#[derive(Debug, Default)]
pub(super) struct ChannelSync {
    /// Scheduled once after start (a member that was away announces what
    /// it holds).
    primed: bool,
    heads_due: Option<u64>,
    /// When we say which announced heads we lack (see [`ControlKind::Want`]).
    want_due: Option<u64>,
    /// When we last said we lack ops (our heads while lacking, or a want).
    lack_last: Option<u64>,
    /// Ops other members wanted on the channel, and when (see
    /// [`WANTED_FOR_MS`]).
    wanted: HashMap<OpHash, u64>,
    /// Ops we owe on the channel, and when we publish them (see
    /// [`ChannelSync::owe`]).
    answer: HashSet<OpHash>,
    answer_due: Option<u64>,
    answer_last: Option<u64>,
    /// Announced heads we lack, since when, whom to ask over Olm if the
    /// channel does not bring them (see [`MAX_LACKING_ASKS`]), and how many
    /// times we asked.
    lacking: Vec<OpHash>,
    lacking_since: u64,
    lacking_from: Option<AccountId>,
    lacking_asked: u8,
    /// Ops we got less than [`SPREADING_MS`] ago, and when.
    spreading: HashMap<OpHash, u64>,
    /// When we next check in with a member over Olm, and the gap that
    /// check-in closes (see [`CHECK_FIRST_MS`]).
    check_due: Option<u64>,
    check_gap: u64,
    /// Since our next check-in was scheduled, a member told us heads equal
    /// to ours (live on the channel, or checking in with us): that
    /// check-in would learn nothing, and is skipped (see [`CHECK_FIRST_MS`]).
    agreed: bool,
    /// The last check-in due was skipped: the next one goes whatever we
    /// hear, so that a member who keeps telling us our own heads (one that
    /// stands between us and the rest of the group) delays what a check-in
    /// would find by one gap at most. A change of our op set starts a new
    /// schedule, and clears it.
    skipped: bool,
    /// When we joined the channel (primed it), for [`NEW_FOR_MS`].
    since: u64,
}

/// A member that still lacks announced heads asks over Olm (see
/// [`GroupBook::ask_for_ops`]) at most this many times per lack (a head we
/// refuse for good must not make us ask for ever), spaced by
/// [`ask_wait`]. Ops waiting for a parent ask on after that, once per
/// [`SYNC_AFTER_MS`].
pub(super) const MAX_LACKING_ASKS: u8 = 3;

/// How long after the last ask (or the lack's start) ask number `asked`
/// goes out: the first, with our heads, and the first for every op
/// [`ASK_AFTER_MS`] apart; later ones [`SYNC_AFTER_MS`] apart, as often as
/// a member answers one asker's asks of a kind (see
/// [`GroupBook::may_answer`]), so that none is sent to be ignored.
pub(super) fn ask_wait(asked: u8) -> u64 {
    if asked < 2 {
        ASK_AFTER_MS
    } else {
        SYNC_AFTER_MS
    }
}

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + Hash + fmt::Display,
{
    /// Publishes `kind` on the group's channel with the newest publish key
    /// we hold (after the batch commits); false if we hold none.
    pub(super) fn publish_channel(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        kind: ControlKind,
    ) -> bool {
        let payload = Payload {
            sender_account: self.account(),
            sender_device: self.me.device,
            id: ctx.next_id(),
            body: Body::Group(GroupControl { group: id, kind }),
        };
        let Some(g) = self.groups.get(&id) else {
            return false;
        };
        let Some((topic, key)) = g.channel_key() else {
            return false;
        };
        let bytes = key
            .seal_channel(ctx.rng, &id, &payload.to_padded())
            .to_bytes();
        self.effects.extend([
            GroupEffect::Write(GroupWrite::Seen(
                SeenKey::of_group(&CHANNEL_SESSION, GroupMessage::digest(&bytes)),
                ctx.now.unix_ms,
            )),
            GroupEffect::After(GroupAfter::Publish {
                group: id,
                topic,
                bytes,
                watch: None,
            }),
        ]);
        true
    }

    /// Our own new ops on the channel, in as few messages as fit; false if
    /// we hold no publish key (they go over Olm then).
    pub(super) fn publish_ops(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        ops: Vec<GroupOp>,
    ) -> bool {
        if self.groups.get(&id).and_then(|g| g.channel_key()).is_none() {
            return false;
        }
        for chunk in chunks(ops) {
            self.publish_channel(ctx, id, ControlKind::Ops(chunk));
        }
        true
    }

    /// Our op set changed: announce the heads after a quiet spell and our
    /// turn among the members holding the same heads (a later change
    /// moves it on).
    pub(super) fn heads_changed(&mut self, ctx: &mut Ctx<'_>, id: GroupId) {
        let me = self.account();
        let jitter = ctx.rng.next_u64() % TURN_MS;
        let spread = ctx.rng.next_u64();
        if let Some(g) = self.groups.get_mut(&id) {
            let seed = heads_seed(&g.ops.complete_heads(id));
            let wait = turn(&g.state, &me, &seed) * TURN_MS;
            g.sync.heads_due =
                Some(ctx.now.mono_ms + HEADS_QUIET_MS + wait.min(MAX_TURN_WAIT_MS) + jitter);
            // A new schedule of check-ins: its first may be skipped.
            let first = g.sync.first_gap(ctx.now.mono_ms);
            g.sync.check_after(ctx.now.mono_ms, first, spread);
            g.sync.skipped = false;
        }
    }

    /// Checks in with a joined member other than us, at random: our heads
    /// over Olm, answered with what they lack (if anything).
    fn check_in(&mut self, ctx: &mut Ctx<'_>, id: GroupId) {
        let me = self.account();
        let Some(g) = self.groups.get(&id) else {
            return;
        };
        let others: Vec<AccountId> = g
            .state
            .joined()
            .map(|(a, _)| *a)
            .filter(|a| *a != me)
            .collect();
        if others.is_empty() {
            return;
        }
        let len = u64::try_from(others.len()).unwrap_or(u64::MAX);
        let pick = usize::try_from(ctx.rng.next_u64() % len).unwrap_or(0);
        let heads = g.ops.complete_heads(id);
        self.note(
            id,
            Severity::Debug,
            "checking in with a member: our heads over Olm",
        );
        self.send_control(ctx, others[pick], id, ControlKind::Heads(heads));
    }

    /// Asks `from` over Olm for the ops we lack: the first time with our
    /// heads (it answers with what they lack, usually a few ops), after
    /// that for every op (`SyncRequest`: what our heads cannot tell it).
    pub(super) fn ask_for_ops(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        from: AccountId,
        asked: u8,
    ) {
        let Some(g) = self.groups.get(&id) else {
            return;
        };
        if asked == 0 {
            let heads = g.ops.complete_heads(id);
            self.note(
                id,
                Severity::Debug,
                "group ops missing; asking a member for what our heads lack",
            );
            self.send_control(ctx, from, id, ControlKind::Heads(heads));
        } else {
            let what = "group ops still missing; asking a member for every op";
            self.note(id, Severity::Info, what);
            self.send_control(ctx, from, id, ControlKind::SyncRequest);
        }
    }

    /// `account` asked over Olm with its heads (or checked in): the ops
    /// they lack, to it alone, at most once per [`SYNC_AFTER_MS`] (like a
    /// `SyncRequest`); heads we lack are asked for back.
    pub(super) fn on_asked_with_heads(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        account: AccountId,
        heads: &[OpHash],
    ) {
        let now = ctx.now.mono_ms;
        let Some(g) = self
            .groups
            .get_mut(&id)
            .filter(|g| g.state.members.contains_key(&account))
        else {
            return;
        };
        if same_heads(&g.ops.complete_heads(id), heads) {
            g.sync.agreed = true;
        }
        // Heads we lack (a check-in from a member ahead of us): ask it back
        // in a while if nothing brings them, as for heads on the channel.
        let lacking = not_held(&g.ops, heads);
        if !lacking.is_empty() {
            g.sync.lacks(now, lacking, Some(account));
        }
        let ops: Vec<GroupOp> = g
            .ops
            .lacked_by(id, heads)
            .iter()
            .filter_map(|h| g.ops.get(h))
            .cloned()
            .collect();
        if ops.is_empty() || !self.may_answer(ctx, id, account, false) {
            return;
        }
        self.send_ops(ctx, account, id, ops);
    }

    /// Whether `account`, a member, may have an answer over Olm to an ask
    /// for ops now: one per [`SYNC_AFTER_MS`] for each kind of ask (with
    /// heads, or for every op: `full`), since asking again and again must
    /// not fill our outbox; if so, the window starts. The kinds count
    /// apart: an ask for every op follows an ask with heads whose answer
    /// did not arrive or did not suffice, and is no repeat of it.
    pub(super) fn may_answer(
        &mut self,
        ctx: &Ctx<'_>,
        id: GroupId,
        account: AccountId,
        full: bool,
    ) -> bool {
        let member = self
            .groups
            .get(&id)
            .is_some_and(|g| g.state.members.contains_key(&account));
        if !member {
            return false;
        }
        let now = ctx.now.mono_ms;
        self.synced
            .retain(|_, at| now.saturating_sub(*at) < SYNC_AFTER_MS);
        if self.synced.contains_key(&(id, account, full)) {
            self.note(id, Severity::Info, "a repeated ask for group ops ignored");
            return false;
        }
        self.synced.insert((id, account, full), now);
        true
    }

    /// A message on one of the group's channels (the topic `topic`, live or
    /// from a relay's history), its signature checked.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_channel<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        id: GroupId,
        topic: &str,
        message: &GroupMessage,
        digest: [u8; 32],
        live: bool,
    ) -> Received {
        let Some(g) = self.groups.get(&id) else {
            return Received::Refused;
        };
        let opened = g
            .keys
            .iter()
            .find(|k| k.topic == topic)
            .and_then(|k| k.key.open_channel(&id, message));
        let control = opened
            .and_then(|plaintext| Payload::from_padded(&plaintext).ok())
            .and_then(|payload| match payload.body {
                Body::Group(control) if control.group == id => {
                    Some((payload.sender_account, control.kind))
                }
                _ => None,
            });
        let Some((sender, kind)) = control else {
            let what = "a channel message that does not open under its topic's key; ignored";
            self.note(id, Severity::Warn, what);
            return Received::Refused;
        };
        self.receiving.insert(digest);
        self.effects.extend([
            GroupEffect::Write(GroupWrite::Seen(
                SeenKey::of_group(&message.session, digest),
                ctx.now.unix_ms,
            )),
            GroupEffect::After(GroupAfter::Settled(digest)),
        ]);
        match kind {
            ControlKind::Ops(ops) => {
                if let Some(g) = self.groups.get_mut(&id) {
                    for op in &ops {
                        g.sync.answer.remove(&op.hash());
                    }
                }
                self.on_ops(ctx, lookup, OpsFrom::Channel(sender), id, ops);
            }
            // Old heads (a relay's history) say nothing about now.
            ControlKind::Heads(heads) if live => self.on_heads(ctx, id, sender, &heads),
            ControlKind::Want(ops) if live => self.on_want(ctx, id, sender, &ops),
            ControlKind::Heads(_) | ControlKind::Want(_) => {}
            _ => {
                let what = "a control message the channel does not carry; ignored";
                self.note(id, Severity::Warn, what);
            }
        }
        Received::Read
    }

    /// A member's heads, live on the channel.
    fn on_heads(&mut self, ctx: &mut Ctx<'_>, id: GroupId, sender: AccountId, heads: &[OpHash]) {
        let now = ctx.now.mono_ms;
        let me = self.account();
        let heads_jitter = ctx.rng.next_u64() % (HEADS_JITTER_MS + 1);
        let answer_jitter = ctx.rng.next_u64() % TURN_MS;
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        let ours = g.ops.complete_heads(id);
        if same_heads(&ours, heads) {
            // They lack what we lack, if anything: the answers reach us.
            g.sync.heads_due = None;
            g.sync.want_due = None;
            g.sync.agreed = true;
            return;
        }
        let lacking = not_held(&g.ops, heads);
        if !lacking.is_empty() {
            let earliest = g.sync.lack_last.map_or(0, |t| t + HEADS_MIN_GAP_MS);
            let due = (now + heads_jitter).max(earliest);
            // Few heads of ours say what we lack, and more (what no heads
            // named); past what a want names, the want (see
            // `LACK_HEADS_MAX`).
            let when = if ours.len() <= self.config.lack_heads_max {
                &mut g.sync.heads_due
            } else {
                &mut g.sync.want_due
            };
            *when = Some(when.map_or(due, |d| d.min(due)));
            let from = whom_to_ask(&g.state, Some(sender), &me);
            g.sync.lacks(now, lacking, from);
        }
        let beyond = g.ops.lacked_by(id, heads);
        g.sync.owe(
            &g.state,
            &me,
            now,
            beyond,
            (heads, sender, MAX_CHANNEL_ANSWER_OPS),
            answer_jitter,
        );
    }

    /// A member's want, live on the channel: what we hold of it we owe
    /// (as for heads that lack it), and what we lack of it we leave out of
    /// our own wants for a while: the answer reaches us too.
    fn on_want(&mut self, ctx: &mut Ctx<'_>, id: GroupId, sender: AccountId, wants: &[OpHash]) {
        let now = ctx.now.mono_ms;
        let me = self.account();
        let answer_jitter = ctx.rng.next_u64() % TURN_MS;
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        let (held, lacked): (Vec<OpHash>, Vec<OpHash>) =
            wants.iter().partition(|h| g.ops.contains(h));
        for h in lacked {
            if g.sync.wanted.len() >= MAX_SPREADING {
                break;
            }
            g.sync.wanted.insert(h, now);
        }
        if g.sync.want_due.is_some() && g.sync.lacking.iter().all(|h| g.sync.wanted.contains_key(h))
        {
            g.sync.want_due = None;
        }
        // A want is answered by the first member in turn alone, however
        // few ops it names: wants come from groups with many heads, forming
        // at once, where the channel is slower than the turns (every holder
        // answering in its turn, 4,371 answers went out while 300 members
        // formed, against 627 before wants).
        g.sync
            .owe(&g.state, &me, now, held, (wants, sender, 0), answer_jitter);
    }

    /// On the tick: announce heads and publish answers that are due.
    pub(super) fn channel_tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now.mono_ms;
        let me = self.account();
        let mut ids: Vec<GroupId> = self.groups.keys().copied().collect();
        ids.sort();
        for id in ids {
            let jitter = ctx.rng.next_u64() % (HEADS_JITTER_MS + 1);
            let spread = ctx.rng.next_u64();
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            if g.record.left || !g.state.members.contains_key(&me) {
                g.sync = ChannelSync::default();
                continue;
            }
            if !g.sync.primed {
                g.sync.primed = true;
                g.sync.since = now;
                let due = now + HEADS_QUIET_MS + jitter;
                g.sync.heads_due.get_or_insert(due);
                if g.sync
                    .check_due
                    .is_none_or(|due| due > now + CHECK_NEW_MS * 3 / 2)
                {
                    g.sync.check_after(now, CHECK_NEW_MS, spread);
                }
            }
            if g.sync.check_due.is_some_and(|due| now >= due) {
                let skip = g.sync.agreed && !g.sync.skipped;
                g.sync.skipped = skip;
                let gap = g.sync.check_gap.saturating_mul(2);
                if gap <= CHECK_LAST_MS {
                    g.sync.check_after(now, gap, spread);
                } else {
                    g.sync.check_due = None;
                }
                if skip {
                    let what = "a member told us our own heads; no check-in this time";
                    self.note(id, Severity::Debug, what);
                } else {
                    self.check_in(ctx, id);
                }
            }
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            if g.sync.heads_due.is_some_and(|due| now >= due) {
                g.sync.heads_due = None;
                if !g.sync.lacking.is_empty() {
                    g.sync.lack_last = Some(now);
                }
                let heads = g.ops.complete_heads(id);
                self.publish_channel(ctx, id, ControlKind::Heads(heads));
            }
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            g.sync
                .wanted
                .retain(|_, at| now.saturating_sub(*at) < WANTED_FOR_MS);
            if g.sync.want_due.is_some_and(|due| now >= due) {
                g.sync.want_due = None;
                let (held, wanted) = (&g.ops, &g.sync.wanted);
                let wants: Vec<OpHash> = g
                    .sync
                    .lacking
                    .iter()
                    .filter(|h| !held.contains(h) && !wanted.contains_key(*h))
                    .take(crate::MAX_WANTS)
                    .copied()
                    .collect();
                if !wants.is_empty() {
                    g.sync.lack_last = Some(now);
                    self.note(id, Severity::Debug, "saying which group ops we lack");
                    self.publish_channel(ctx, id, ControlKind::Want(wants));
                }
            }
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            g.sync
                .spreading
                .retain(|_, got| now.saturating_sub(*got) < SPREADING_MS);
            let held = &g.ops;
            g.sync.lacking.retain(|h| !held.contains(h));
            if g.sync.lacking.is_empty() {
                g.sync.lacking_asked = 0;
            } else if now >= g.sync.lacking_since + ask_wait(g.sync.lacking_asked) {
                g.sync.lacking_since = now;
                let asked = g.sync.lacking_asked;
                let ask = g.sync.lacking_from.filter(|_| asked < MAX_LACKING_ASKS);
                g.sync.lacking_asked = asked.saturating_add(1);
                if let Some(from) = ask {
                    self.ask_for_ops(ctx, id, from, asked);
                }
            }
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            if g.sync.answer_due.is_some_and(|due| now >= due) {
                g.sync.answer_due = None;
                g.sync.answer_last = Some(now);
                let owed = std::mem::take(&mut g.sync.answer);
                let mut ops: Vec<GroupOp> =
                    owed.iter().filter_map(|h| g.ops.get(h)).cloned().collect();
                ops.sort_by_key(|op| op.at);
                if !ops.is_empty() {
                    self.note(id, Severity::Debug, "publishing ops a member lacks");
                    self.publish_ops(ctx, id, ops);
                }
            }
        }
    }
}

impl ChannelSync {
    /// Ops we hold that a member lacks (`lacked`, as its heads or its want
    /// `said` tell), to publish in our turn for what it said, unless they
    /// come by on the channel first. Not ops we got in the last
    /// [`SPREADING_MS`] (still on their way to it); and if more than `most`
    /// remain ([`MAX_CHANNEL_ANSWER_OPS`] for heads), only the first member
    /// in turn (the sender aside) owes them.
    fn owe(
        &mut self,
        state: &crate::GroupState,
        me: &AccountId,
        now: u64,
        lacked: Vec<OpHash>,
        (said, sender, most): (&[OpHash], AccountId, usize),
        jitter: u64,
    ) {
        let spreading = &self.spreading;
        let owed: Vec<OpHash> = lacked
            .into_iter()
            .filter(|h| {
                spreading
                    .get(h)
                    .is_none_or(|got| now.saturating_sub(*got) >= SPREADING_MS)
            })
            .collect();
        let seed = heads_seed(said);
        let far = owed.len() > most && turn_except(state, me, &seed, &sender) > 0;
        if far || owed.is_empty() {
            return;
        }
        self.answer.extend(owed);
        let earliest = self.answer_last.map_or(0, |t| t + ANSWER_MIN_GAP_MS);
        // Whoever holds the ops answers in its turn for what was said: the
        // first answer silences the rest.
        let wait = turn(state, me, &seed) * TURN_MS;
        let due = (now + wait.min(MAX_TURN_WAIT_MS) + jitter).max(earliest);
        self.answer_due = Some(self.answer_due.map_or(due, |d| d.min(due)));
    }

    /// Heads we lack, to ask `from` for if nothing brings them (see
    /// [`MAX_LACKING_ASKS`]); a lack already open keeps its start.
    fn lacks(&mut self, now: u64, lacking: Vec<OpHash>, from: Option<AccountId>) {
        if self.lacking.is_empty() {
            self.lacking_since = now;
        }
        self.lacking = lacking;
        self.lacking_from = from;
    }

    /// The first gap after our op set changed: short while we are new to
    /// the channel (not yet primed, or primed under [`NEW_FOR_MS`] ago).
    fn first_gap(&self, now: u64) -> u64 {
        if !self.primed || now.saturating_sub(self.since) < NEW_FOR_MS {
            CHECK_NEW_MS
        } else {
            CHECK_FIRST_MS
        }
    }

    /// The next check-in closes a gap of `gap` ms: it comes between half
    /// and one and a half times that after `now` (`spread`: random).
    fn check_after(&mut self, now: u64, gap: u64, spread: u64) {
        self.check_gap = gap;
        self.agreed = false;
        self.check_due = Some(now + gap / 2 + spread % (gap + 1));
    }

    /// We got these ops (ours, or from anyone) just now: they are still
    /// spreading (see [`SPREADING_MS`]).
    pub(super) fn got(&mut self, now: u64, ops: impl IntoIterator<Item = OpHash>) {
        for h in ops {
            if self.spreading.len() >= MAX_SPREADING {
                break;
            }
            self.spreading.insert(h, now);
        }
    }

    /// Ops we lack (`missing`: parents of ops we could not take), to ask
    /// `from` for over Olm if the channel does not bring them (see
    /// [`GroupBook::channel_tick`]); at most [`MAX_LACKED`] are kept.
    pub(super) fn lack(&mut self, now: u64, missing: Vec<OpHash>, from: Option<AccountId>) {
        if missing.is_empty() {
            return;
        }
        if self.lacking.is_empty() {
            self.lacking_since = now;
        }
        for h in missing {
            if self.lacking.len() >= MAX_LACKED {
                break;
            }
            if !self.lacking.contains(&h) {
                self.lacking.push(h);
            }
        }
        if from.is_some() {
            self.lacking_from = from;
        }
    }
}

/// Whom to ask over Olm for ops we lack if the channel does not bring
/// them: `sender` (who brought word of them) if it is a member we know,
/// else whoever invited us; never ourselves.
pub(super) fn whom_to_ask(
    state: &crate::GroupState,
    sender: Option<AccountId>,
    me: &AccountId,
) -> Option<AccountId> {
    sender
        .filter(|a| state.members.contains_key(a))
        .or_else(|| state.members.get(me).map(|m| m.invited_by))
        .filter(|a| a != me)
}

/// Whether two lists of heads name the same ops (in any order).
pub(super) fn same_heads(ours: &[OpHash], theirs: &[OpHash]) -> bool {
    let ours: HashSet<&OpHash> = ours.iter().collect();
    let theirs: HashSet<&OpHash> = theirs.iter().collect();
    ours == theirs
}

/// Which of `heads` we do not hold.
fn not_held(ops: &super::OpSet, heads: &[OpHash]) -> Vec<OpHash> {
    heads.iter().filter(|h| !ops.contains(h)).copied().collect()
}

/// Ops we lack and will ask for, kept at most (per group).
const MAX_LACKED: usize = 256;

/// What orders the members' turns for a set of heads: a hash of them.
fn heads_seed(heads: &[OpHash]) -> [u8; 32] {
    let mut sorted = heads.to_vec();
    sorted.sort_unstable();
    let mut h = blake3::Hasher::new_derive_key("hush 2026-12 group heads turn");
    for head in &sorted {
        h.update(head);
    }
    *h.finalize().as_bytes()
}

/// [`turn`] among the members other than `except` (whose heads we answer).
fn turn_except(
    state: &crate::GroupState,
    me: &AccountId,
    seed: &[u8; 32],
    except: &AccountId,
) -> u64 {
    let place = turn(state, me, seed);
    if state.members.contains_key(except) && rank(seed, except) < rank(seed, me) {
        place.saturating_sub(1)
    } else {
        place
    }
}

/// Our place (0 = first) among the group's members ordered by a hash of
/// `seed` and each account: every member computes the same order for the
/// same heads, so the members who would all say the same thing speak one
/// after the other, and the first to speak silences the rest.
fn turn(state: &crate::GroupState, me: &AccountId, seed: &[u8; 32]) -> u64 {
    let mine = rank(seed, me);
    state
        .members
        .keys()
        .filter(|a| rank(seed, a) < mine)
        .count() as u64
}

/// Where `account` stands in the order for `seed` (see [`turn`]).
fn rank(seed: &[u8; 32], account: &AccountId) -> [u8; 32] {
    *blake3::Hasher::new_keyed(seed)
        .update(&account.0)
        .finalize()
        .as_bytes()
}

//! Our membership commands (create, invite, join, leave, remove, promote)
//! and what any op, ours or a member's, changes once applied.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::hash::Hash;

use super::Severity;
use super::{
    DIRECT_DIAL_MEMBERS, GroupAfter, GroupBook, GroupCommandError, GroupEffect, GroupNotice,
    GroupWrite, Inbound, MAX_GROUPS, Standing, chunks,
};
use crate::device::{Ctx, GroupRecord, MessageKind, MessageRecord, Status};
use crate::{
    AccountId, Action, Body, ContactCard, ControlKind, ConversationId, DeviceId, GroupControl,
    GroupError, GroupId, GroupOp, GroupState, MAX_GROUP_OPS, MAX_IDLE_OPS_PER_AUTHOR, MemberStatus,
    OpHash, OpSet, Payload, Role, SessionId, Wire,
};

/// Where ops came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpsFrom {
    /// Our own.
    Us,
    /// Over Olm from a device of this account.
    Olm(AccountId),
    /// On the group's channel, this account says.
    Channel(AccountId),
}

impl OpsFrom {
    pub(super) fn account(self) -> Option<AccountId> {
        match self {
            Self::Us => None,
            Self::Olm(a) | Self::Channel(a) => Some(a),
        }
    }
}

/// How the members' devices changed with their cards (`Card` ops).
struct DeviceChanges {
    /// Members with a device they did not have.
    gained: BTreeSet<AccountId>,
    /// Devices no longer on their member's card.
    gone: HashSet<DeviceId>,
}

impl DeviceChanges {
    fn between(before: &GroupState, after: &GroupState) -> Self {
        let mut changes = Self {
            gained: BTreeSet::new(),
            gone: HashSet::new(),
        };
        for (account, m) in &after.members {
            let Some(b) = before.members.get(account) else {
                continue;
            };
            if b.card.signature == m.card.signature {
                continue;
            }
            let ids = |c: &ContactCard| -> HashSet<DeviceId> { c.device_list.ids().collect() };
            let (old, new) = (ids(&b.card), ids(&m.card));
            changes.gone.extend(old.difference(&new).copied());
            if !new.is_subset(&old) {
                changes.gained.insert(*account);
            }
        }
        changes
    }
}

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + Hash + fmt::Display,
{
    /// Creates a group; `card` is our own, as members will see it.
    pub fn create(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: String,
        card: ContactCard,
    ) -> Result<GroupId, GroupCommandError> {
        if self.groups.len() >= MAX_GROUPS {
            return Err(GroupCommandError::TooManyGroups {
                count: self.groups.len(),
            });
        }
        let mut nonce = [0u8; 16];
        ctx.rng.fill_bytes(&mut nonce);
        let id = GroupId::derive(&self.account(), &nonce);
        let at = ctx.next_id();
        let key = self
            .me
            .key
            .as_ref()
            .ok_or(GroupCommandError::NoAccountKey)?;
        let op = GroupOp::sign(
            key,
            id,
            at,
            Vec::new(),
            Action::Create {
                nonce,
                name,
                member_limit: self.config.member_limit,
                card,
            },
        );
        self.insert(id, OpSet::default(), GroupRecord::default(), None);
        self.apply_ops(ctx, id, vec![op], OpsFrom::Us);
        self.subscribe(id);
        Ok(id)
    }

    /// Invites the holder of `card` (a contact of ours).
    pub fn invite(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: &str,
        card: ContactCard,
        admin: bool,
    ) -> Result<GroupId, GroupCommandError> {
        let id = self.resolve(group)?;
        let role = if admin { Role::Admin } else { Role::Member };
        self.change(ctx, id, group, "inviting", Action::Invite { role, card })
    }

    /// An admin's change that names a member (remove, promote).
    pub fn member_change(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: &str,
        action: Action,
    ) -> Result<GroupId, GroupCommandError> {
        let id = self.resolve(group)?;
        let what = match &action {
            Action::Promote { .. } => "promoting a member",
            _ => "removing a member",
        };
        self.change(ctx, id, group, what, action)
    }

    /// An admin sets how long members' messages last (`None`: kept).
    pub fn set_timer(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: &str,
        secs: Option<u32>,
    ) -> Result<GroupId, GroupCommandError> {
        let id = self.resolve(group)?;
        let what = "setting the disappearing timer";
        self.change(ctx, id, group, what, Action::Timer { secs })
    }

    pub fn join(&mut self, ctx: &mut Ctx<'_>, group: &str) -> Result<GroupId, GroupCommandError> {
        let id = self.resolve(group)?;
        if self.groups[&id].standing(&self.account()) == Standing::Removed {
            return Err(GroupCommandError::Removed {
                group: group.to_owned(),
            });
        }
        let id = self.change(ctx, id, group, "joining", Action::Join)?;
        if let Some(g) = self.groups.get_mut(&id) {
            g.record.left = false;
        }
        self.subscribe(id);
        Ok(id)
    }

    pub fn leave(&mut self, ctx: &mut Ctx<'_>, group: &str) -> Result<GroupId, GroupCommandError> {
        let id = self.resolve(group)?;
        let me = self.account();
        if self.groups[&id].state.members.contains_key(&me) {
            self.change(ctx, id, group, "leaving", Action::Leave)?;
        }
        // Removed or left already: forget the topic (history stays).
        if let Some(g) = self.groups.get_mut(&id) {
            g.record.left = true;
            g.end_sessions();
            let write = g.write_record(&self.me.pickle_key);
            self.effects.push_back(GroupEffect::Write(write));
            let topics: Vec<String> = g.topics().map(str::to_owned).collect();
            for topic in topics {
                self.effects.push_back(GroupEffect::Unsubscribe { topic });
            }
        }
        self.drop_inbound(|i| i.group == id);
        self.unconfirmed.drop_group(&id);
        self.drop_forgotten();
        self.effects.push_back(GroupEffect::PeersChanged);
        Ok(id)
    }

    /// Our account's device list changed (a device linked or revoked): in
    /// every group we are in whose card of us is older, a `Card` op puts
    /// the new one, so that every member, contact or not, reaches our new
    /// devices and takes their messages, and stops at a revoked one. Only
    /// a device holding the account key signs it (the one that changed
    /// the list); the rest do nothing. Run again at start, it makes what a
    /// crash left unmade.
    pub fn refresh_own_card(&mut self, ctx: &mut Ctx<'_>, card: &ContactCard) {
        if self.me.key.is_none() {
            return;
        }
        let me = self.account();
        let stale: Vec<(GroupId, String)> = self
            .groups
            .values()
            .filter(|g| !g.record.left)
            .filter(|g| {
                g.state.members.get(&me).is_some_and(|m| {
                    m.card.device_list.issued_at_ms < card.device_list.issued_at_ms
                })
            })
            .map(|g| (g.id, g.state.name.clone()))
            .collect();
        for (id, name) in stale {
            let action = Action::Card { card: card.clone() };
            if self
                .change(ctx, id, &name, "updating your devices", action)
                .is_err()
            {
                let what = "could not put the account's new device list in the group";
                self.effects
                    .push_back(GroupEffect::Note(id, Severity::Warn, what));
            }
        }
    }

    /// Signs our op, applies it and sends it on.
    fn change(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        group: &str,
        what: &'static str,
        action: Action,
    ) -> Result<GroupId, GroupCommandError> {
        let me = self.account();
        let g = &self.groups[&id];
        if let Err(e) = g.state.check(&me, &action) {
            return Err(match e {
                GroupError::NotMember => GroupCommandError::NotIn {
                    group: group.to_owned(),
                    hint: "you left or were never invited",
                },
                GroupError::NotInvited if g.state.removed.contains(&me) => {
                    GroupCommandError::Removed {
                        group: group.to_owned(),
                    }
                }
                reason => GroupCommandError::Refused {
                    group: group.to_owned(),
                    action: what,
                    reason,
                },
            });
        }
        if g.ops.len() >= MAX_GROUP_OPS {
            return Err(GroupCommandError::Refused {
                group: group.to_owned(),
                action: what,
                reason: GroupError::Full {
                    limit: g.state.member_limit,
                },
            });
        }
        let parents = g.ops.heads_given(id, &me, Some(&g.state));
        // `at` may not precede a parent's (a parent from a fast clock
        // carries ours along).
        let newest = parents
            .iter()
            .filter_map(|p| g.ops.get(p).map(|o| o.at))
            .max();
        let next = ctx.next_id();
        let at = newest.map_or(next, |n| next.max(n));
        let key = self
            .me
            .key
            .as_ref()
            .ok_or(GroupCommandError::NoAccountKey)?;
        let op = GroupOp::sign(key, id, at, parents, action);
        self.apply_ops(ctx, id, vec![op], OpsFrom::Us);
        Ok(id)
    }

    /// Adds verified ops (ours, or from `from`), stores them, refolds, and
    /// does what the new state asks: tell members, rotate, tell the user.
    pub(super) fn apply_ops(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        ops: Vec<GroupOp>,
        from: OpsFrom,
    ) {
        let me = self.account();
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        let before = g.state.clone();
        let mut new = Vec::new();
        for op in ops {
            if g.ops.len() >= MAX_GROUP_OPS {
                self.effects.push_back(GroupEffect::Note(
                    id,
                    Severity::Warn,
                    "group holds the most ops it may; ignoring more",
                ));
                break;
            }
            if g.ops.insert(op.clone()) {
                new.push(op);
            }
        }
        if new.is_empty() {
            return;
        }
        let fresh: Vec<OpHash> = new.iter().map(GroupOp::hash).collect();
        let (mut state, idle) = g.ops.fold_after(id, before.clone(), &fresh);
        if from != OpsFrom::Us {
            // An author whose ops do not take effect (junk, void, or
            // waiting on parents that never come) may not fill the set:
            // past the cap its new idle ops are dropped. Not an admin's:
            // an admin could fill the set with ops that take effect anyway
            // (invitations and removals), and its invitations, published
            // in a burst on the channel, may wait for a parent that
            // gossip lost until the heads exchange brings it.
            let over: BTreeSet<AccountId> = state
                .idle
                .iter()
                .filter(|(a, n)| **n > MAX_IDLE_OPS_PER_AUTHOR && !state.is_admin(a))
                .map(|(a, _)| *a)
                .collect();
            if !over.is_empty() {
                let capped: Vec<OpHash> = new
                    .iter()
                    .filter(|op| over.contains(&op.author))
                    .map(GroupOp::hash)
                    .filter(|h| idle.contains(h))
                    .collect();
                let gone = g.ops.drop_idle(&capped);
                // The state counts only the idle ops still held.
                for op in new.iter().filter(|op| gone.contains(&op.hash())) {
                    if let Some(n) = state.idle.get_mut(&op.author) {
                        *n = n.saturating_sub(1);
                    }
                }
                state.idle.retain(|_, n| *n > 0);
                new.retain(|op| !gone.contains(&op.hash()));
                let what = "a member's group ops that take no effect passed the cap; dropped";
                self.effects
                    .push_back(GroupEffect::Note(id, Severity::Warn, what));
            }
        }
        if new.is_empty() {
            return;
        }
        for op in &new {
            self.effects.push_back(GroupEffect::Write(GroupWrite::Op(
                id,
                op.hash(),
                op.to_bytes(),
            )));
        }
        g.sync.got(ctx.now.mono_ms, new.iter().map(GroupOp::hash));
        g.sources.update(&state, self.reach);
        g.state = state;
        let after = g.state.clone();
        let missing_parents = new.iter().any(|op| !g.ops.has_parents(op));
        // Ops of someone else that its author made without knowing of ours:
        // we make sure our invitees get it (its author cannot send it to
        // them), and an invitee gets our ops its inviter did not know.
        // Everything else reaches every member from its author. (Ops from
        // the channel reached every holder of the key, invitees included:
        // what they missed, the heads exchange repairs.)
        let mut forward: Vec<(AccountId, Vec<GroupOp>)> = Vec::new();
        if matches!(from, OpsFrom::Olm(_)) {
            for op in new.iter().filter(|op| op.author != me) {
                let unseen: Vec<GroupOp> = g
                    .ops
                    .unseen_by(op)
                    .into_iter()
                    .filter(|o| o.author == me)
                    .cloned()
                    .collect();
                if unseen.is_empty() {
                    continue;
                }
                for o in &unseen {
                    if let Action::Invite { card, .. } = &o.action
                        && card.account() != op.author
                    {
                        forward.push((card.account(), vec![op.clone()]));
                    }
                }
                if let Action::Invite { card, .. } = &op.action
                    && card.account() != me
                {
                    forward.push((card.account(), unseen));
                }
            }
        }
        let joined_before: BTreeSet<AccountId> = before.joined().map(|(a, _)| *a).collect();
        let joined_after: BTreeSet<AccountId> = after.joined().map(|(a, _)| *a).collect();
        let devices = DeviceChanges::between(&before, &after);
        if !joined_before.is_subset(&joined_after) || !devices.gone.is_empty() {
            // Someone (or some device) is out: a new session before our
            // next message. (Newcomers get the current one then, see
            // `ensure_outbound`.)
            g.end_sessions();
        }
        // A member with new devices gets our current session again (its
        // new devices with it), at our next message; the next session's
        // key too, when it takes over.
        g.record
            .outbound_members
            .retain(|a| !devices.gained.contains(a));
        if let Some(next) = g.next.as_mut() {
            next.members.retain(|a| !devices.gained.contains(a));
        }
        let write = g.write_record(&self.me.pickle_key);
        self.effects.push_back(GroupEffect::Write(write));
        // New members' devices must be known before anything goes to them.
        self.effects.push_back(GroupEffect::PeersChanged);

        // Newcomers already sent the current publish key (below).
        let mut keyed: Vec<AccountId> = Vec::new();
        if from == OpsFrom::Us {
            // Our own op: once on the group's channel for every member of
            // the epoch; over Olm the full set to whoever is new (it reads
            // nothing of the channel before it holds the key it comes
            // with), and the op to whoever it puts out. Without a publish
            // key yet (an invitee whose key is late), over Olm to everyone.
            // Our join goes with the invitation that named us: many
            // members may have missed it (see `invitation_of`).
            let mut channel_ops = new.clone();
            if new.iter().any(|op| matches!(op.action, Action::Join))
                && let Some(invitation) = self
                    .groups
                    .get(&id)
                    .and_then(|g| invitation_of(&g.ops, &me))
            {
                channel_ops.insert(0, invitation);
            }
            let on_channel = self.publish_ops(ctx, id, channel_ops);
            let mut to: BTreeSet<AccountId> = after.members.keys().copied().collect();
            to.extend(before.members.keys().copied());
            to.remove(&me);
            // The current epoch's key goes to our invitees before the op
            // set, not after it (`settle_epochs`): an invitee holds it
            // early until the invitation arrives, so it never reads its
            // invitation without the key, and its join goes on the
            // channel, not over Olm to every member. (A large op set takes
            // several messages, and the key could come batches later.)
            let current_key = self.groups.get(&id).and_then(|g| {
                let epoch = g.state.epoch()?.op;
                let k = g.keys.iter().find(|k| k.epoch == epoch)?;
                Some((epoch, k.key.clone()))
            });
            for account in to {
                let newcomer =
                    !before.members.contains_key(&account) && after.members.contains_key(&account);
                let departed =
                    before.members.contains_key(&account) && !after.members.contains_key(&account);
                if newcomer {
                    if let Some((epoch, key)) = &current_key {
                        let key = Box::new(key.clone());
                        self.send_control(
                            ctx,
                            account,
                            id,
                            ControlKind::PublishKey { epoch: *epoch, key },
                        );
                        keyed.push(account);
                    }
                    let all_ops = self.groups.get(&id).map(|g| g.ops.ops().cloned().collect());
                    self.send_ops(ctx, account, id, all_ops.unwrap_or_default());
                } else if departed || !on_channel {
                    self.send_ops(ctx, account, id, new.clone());
                }
            }
        }
        self.heads_changed(ctx, id);
        // One message (or as few as fit) per account, each op once: a
        // batch of someone's ops is not passed on as a message per op.
        let mut batched: BTreeMap<AccountId, (HashSet<OpHash>, Vec<GroupOp>)> = BTreeMap::new();
        for (account, ops) in forward {
            let (seen, to) = batched.entry(account).or_default();
            for op in ops {
                if seen.insert(op.hash()) {
                    to.push(op);
                }
            }
        }
        for (account, (_, ops)) in batched {
            self.send_ops(ctx, account, id, ops);
        }
        if missing_parents && let Some(from) = from.account() {
            // Usually the missing ops are on their way (from their own
            // authors): ask for everything only if they do not come.
            self.missing_since
                .entry(id)
                .or_insert((ctx.now.mono_ms, from, 0));
        }

        if before.members.keys().ne(after.members.keys()) && after.members.contains_key(&me) {
            self.dial_members(id);
        }
        // Members who left or were removed: their sessions no longer count.
        let gone: Vec<AccountId> = joined_before.difference(&joined_after).copied().collect();
        if !gone.is_empty() || !devices.gone.is_empty() {
            self.drop_inbound(|i| {
                i.group == id && (gone.contains(&i.account) || devices.gone.contains(&i.device))
            });
        }
        let newcomers: Vec<AccountId> = after
            .members
            .keys()
            .filter(|a| !before.members.contains_key(a) && !keyed.contains(a))
            .copied()
            .collect();
        self.settle_epochs(ctx, id, &newcomers);
        let was = before.members.get(&me).map(|m| m.status);
        let now = after.members.get(&me).map(|m| m.status);
        if was.is_none() && now == Some(MemberStatus::Invited) {
            let by = after.members.get(&me).map_or(me, |m| m.invited_by);
            self.effects
                .push_back(GroupEffect::After(GroupAfter::Notice(Box::new(
                    GroupNotice::Invited {
                        group: id,
                        name: after.name.clone(),
                        by,
                    },
                ))));
            self.subscribe(id);
        }
        if before.timer_set != after.timer_set
            && let Some((author, at)) = after.timer_set
        {
            // The conversation shows the change, like a message.
            let record = MessageRecord {
                id: at,
                from: author,
                outgoing: author == me,
                text: String::new(),
                status: Status::Delivered,
                sent_at_ms: at.millis(),
                stored_at_ms: ctx.now.unix_ms,
                timer_secs: None,
                kind: MessageKind::Timer(after.timer),
            };
            let conversation = ConversationId::group(&id);
            self.effects.extend([
                GroupEffect::Write(GroupWrite::Message(conversation, record.clone())),
                GroupEffect::After(GroupAfter::Notice(Box::new(GroupNotice::Message {
                    group: id,
                    name: after.name.clone(),
                    message: record,
                    file: None,
                }))),
            ]);
        }
        if before.digest != after.digest {
            let standing = self.groups[&id].standing(&me);
            self.effects
                .push_back(GroupEffect::After(GroupAfter::Notice(Box::new(
                    GroupNotice::Changed {
                        group: id,
                        name: after.name.clone(),
                        version: after.version,
                        standing,
                    },
                ))));
        }
    }

    fn drop_inbound(&mut self, mut gone: impl FnMut(&Inbound) -> bool) {
        let ids: Vec<SessionId> = self
            .inbound
            .iter()
            .filter(|(_, i)| gone(i))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.inbound.remove(&id);
            self.effects
                .push_back(GroupEffect::Write(GroupWrite::DropInbound(id)));
        }
    }

    pub(super) fn send_ops(
        &mut self,
        ctx: &mut Ctx<'_>,
        account: AccountId,
        id: GroupId,
        ops: Vec<GroupOp>,
    ) {
        for chunk in chunks(ops) {
            self.send_control(ctx, account, id, ControlKind::Ops(chunk));
        }
    }

    /// A control message to every device of `account` over Olm.
    pub(super) fn send_control(
        &mut self,
        ctx: &mut Ctx<'_>,
        to: AccountId,
        group: GroupId,
        kind: ControlKind,
    ) {
        let payload = Payload {
            sender_account: self.account(),
            sender_device: self.me.device,
            id: ctx.next_id(),
            body: Body::Group(GroupControl { group, kind }),
        };
        self.effects.push_back(GroupEffect::Send { to, payload });
    }

    /// Subscribes to the topic (and the host asks the home relays to keep
    /// its history), and dials a few members.
    fn subscribe(&mut self, id: GroupId) {
        let Some(g) = self.groups.get(&id) else {
            return;
        };
        let topics: Vec<String> = g.topics().map(str::to_owned).collect();
        for topic in topics {
            self.effects
                .push_back(GroupEffect::Subscribe { group: id, topic });
        }
        self.dial_members(id);
    }

    /// Dials the [`DIRECT_DIAL_MEMBERS`] members nearest us by a hash of
    /// both accounts (the host skips those it is connected to): each member
    /// its own few, so the mesh is spread over the group instead of resting
    /// on its first members, and a member who missed joins is still dialled
    /// by members who saw them. Again whenever the members change.
    fn dial_members(&mut self, id: GroupId) {
        let Some(g) = self.groups.get(&id) else {
            return;
        };
        if g.record.left {
            return;
        }
        let me = self.account();
        let rank = |a: &AccountId| {
            *blake3::Hasher::new_derive_key("hush 2026-12 group dial order")
                .update(&me.0)
                .update(&a.0)
                .finalize()
                .as_bytes()
        };
        let mut members: Vec<(&AccountId, _)> =
            g.state.members.iter().filter(|(a, _)| **a != me).collect();
        members.sort_by_cached_key(|(a, _)| rank(a));
        let devices: Vec<DeviceId> = members
            .into_iter()
            .flat_map(|(_, m)| m.card.device_list.ids())
            .take(DIRECT_DIAL_MEMBERS)
            .collect();
        if !devices.is_empty() {
            self.effects.push_back(GroupEffect::Dial(devices));
        }
    }
}

/// The newest invitation of `account` in `ops`, which its join descends
/// from. Published again with the join: an admin inviting many people at
/// once publishes each invitation before the newest members' meshes have
/// formed, so many miss it, and every later invitation (each names the one
/// before as a parent) and every join of its invitee waits for it. From the
/// invitee a moment later it comes a second time, over other mesh paths.
fn invitation_of(ops: &OpSet, account: &AccountId) -> Option<GroupOp> {
    ops.ops()
        .filter(
            |op| matches!(&op.action, Action::Invite { card, .. } if card.account() == *account),
        )
        .max_by_key(|op| op.at)
        .cloned()
}

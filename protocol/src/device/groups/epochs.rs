//! Publish keys: the credential for a group's topic (protocol.md §11.6a).
//!
//! Each epoch of a group (its creation, then each removal or departure)
//! has its own Ed25519 publish key, and its own topic named by the public
//! half. The epoch's *maker* ([`GroupState::epoch_maker`]) makes the key
//! and hands it, over Olm, to every member, and to every member who comes
//! later; a member who lacks the current key asks the maker for it. We
//! keep the keys of the last [`MAX_EPOCH_KEYS`] epochs, subscribed to
//! their topics (a member who has not heard of a new epoch yet still
//! publishes on the one before), and publish on the newest we hold.
//!
//! [`GroupState::epoch_maker`]: crate::GroupState::epoch_maker

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use super::{Group, GroupBook, GroupEffect, GroupWrite, SYNC_AFTER_MS, Severity};
use crate::device::{Ctx, PublishKeyRecord};
use crate::{AccountId, ControlKind, Epoch, GroupId, OpHash, PublishKey};

/// Epochs whose keys (and topics) a member keeps.
pub const MAX_EPOCH_KEYS: usize = 4;
/// Keys for epochs whose op has not reached us yet, held over all groups.
const MAX_EARLY_KEYS: usize = 64;

/// One epoch's publish key, as we hold it.
pub(super) struct EpochKey {
    pub(super) epoch: OpHash,
    pub(super) key: PublishKey,
    pub(super) topic: String,
    /// Per home relay (PeerId text): the last history sequence number read.
    pub(super) cursors: Vec<(String, u64)>,
    received_ms: u64,
}

impl EpochKey {
    fn new(epoch: OpHash, key: PublishKey, cursors: Vec<(String, u64)>, received_ms: u64) -> Self {
        Self {
            epoch,
            topic: key.topic(),
            key,
            cursors,
            received_ms,
        }
    }

    pub(super) fn record(&self) -> PublishKeyRecord {
        PublishKeyRecord {
            secret: self.key.secret(),
            cursors: self.cursors.clone(),
            received_ms: self.received_ms,
        }
    }
}

/// Keys received before the op that began their epoch, and the tick of
/// the last request for a missing key, per group.
#[derive(Default)]
pub(super) struct EpochWaits {
    early: Vec<(GroupId, OpHash, AccountId, PublishKey)>,
    /// When we started missing the current key, and when we last asked.
    missing: HashMap<GroupId, (u64, Option<u64>)>,
    /// When each member last got a key from us on request.
    answered: HashMap<(GroupId, AccountId), u64>,
}

impl<P> Group<P> {
    /// Where `epoch` stands among the group's epochs (0 = current), if it
    /// is one of the last [`MAX_EPOCH_KEYS`].
    fn recency(&self, epoch: &OpHash) -> Option<usize> {
        self.state
            .epochs
            .iter()
            .rev()
            .take(MAX_EPOCH_KEYS)
            .position(|e| e.op == *epoch)
    }

    /// The key we publish with: the newest epoch's we hold.
    fn publish_key(&self) -> Option<&EpochKey> {
        self.keys
            .iter()
            .filter_map(|k| self.recency(&k.epoch).map(|r| (r, k)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, k)| k)
    }

    /// The key we publish with (tests play a member who misuses it).
    #[cfg(test)]
    pub(crate) fn publish_key_for_tests(&self) -> Option<PublishKey> {
        self.publish_key().map(|k| k.key.clone())
    }

    /// The topic and key of the channel we publish on, once we hold a key.
    pub(super) fn channel_key(&self) -> Option<(String, PublishKey)> {
        self.publish_key().map(|k| (k.topic.clone(), k.key.clone()))
    }

    /// The topic we publish on, once we hold a key.
    pub fn topic(&self) -> Option<&str> {
        self.publish_key().map(|k| k.topic.as_str())
    }

    /// Every topic we read: those of the epochs whose keys we hold.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.topic.as_str())
    }

    /// Whether we hold the current epoch's key.
    fn has_current_key(&self) -> bool {
        self.state
            .epoch()
            .is_some_and(|e| self.keys.iter().any(|k| k.epoch == e.op))
    }

    /// Whether a holder of `topic`'s publish key (a topic of this group
    /// whose key we hold) made `message` ([`PublishKey::is_authentic`]).
    pub(super) fn authentic_for(&self, topic: &str, message: &crate::GroupMessage) -> bool {
        self.keys
            .iter()
            .find(|k| k.topic == topic)
            .is_some_and(|k| k.key.is_authentic(message))
    }

    /// Signs a message with the newest key we hold: the topic and the bytes.
    pub(super) fn seal(
        &self,
        session: crate::SessionId,
        ciphertext: Vec<u8>,
        expires_at_ms: Option<u64>,
    ) -> Option<(String, crate::GroupMessage)> {
        let k = self.publish_key()?;
        let message = k.key.seal_until(session, ciphertext, expires_at_ms);
        Some((k.topic.clone(), message))
    }

    /// Whether `from` may hand us (`me`) the key of `epoch`: the author of
    /// the `Create` or `Remove` that began it, an admin for a departure,
    /// and, for the current epoch, its maker and the admin who invited us
    /// (who sends it with the invitation).
    fn may_give(&self, me: &AccountId, from: &AccountId, epoch: &Epoch) -> bool {
        let current = self.state.epoch().map(|e| e.op) == Some(epoch.op);
        let my_inviter = self.state.members.get(me).map(|m| m.invited_by) == Some(*from);
        if current && (self.state.epoch_maker() == Some(*from) || my_inviter) {
            return true;
        }
        match epoch.author {
            Some(author) => author == *from,
            None => self.state.is_admin(from),
        }
    }
}

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + Hash + fmt::Display,
{
    /// A stored publish key.
    pub fn restore_publish_key(&mut self, id: GroupId, epoch: OpHash, record: &PublishKeyRecord) {
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        let key = PublishKey::from_secret(&record.secret);
        let k = EpochKey::new(epoch, key, record.cursors.clone(), record.received_ms);
        self.by_topic.insert(k.topic.clone(), id);
        g.keys.push(k);
    }

    /// After the group's state changed (and on the tick): drop the keys of
    /// epochs past the last few, take keys that came before their op, make
    /// the current epoch's key if it is ours to make, and hand it to
    /// `newcomers`.
    pub(super) fn settle_epochs(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        newcomers: &[AccountId],
    ) {
        let me = self.account();
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        let stale: Vec<OpHash> = g
            .keys
            .iter()
            .filter(|k| g.recency(&k.epoch).is_none())
            .map(|k| k.epoch)
            .collect();
        for epoch in stale {
            self.drop_key(id, epoch);
        }
        let early: Vec<_> = {
            let (mine, rest) = std::mem::take(&mut self.epoch_waits.early)
                .into_iter()
                .partition(|(g, _, _, _)| *g == id);
            self.epoch_waits.early = rest;
            mine
        };
        for (_, epoch, from, key) in early {
            self.on_publish_key(ctx, from, id, epoch, key);
        }
        let Some(g) = self.groups.get(&id) else {
            return;
        };
        let Some(current) = g.state.epoch().copied() else {
            return;
        };
        if g.record.left {
            return;
        }
        if g.state.epoch_maker() != Some(me) {
            // Our invitees get the key we hold with their invitation, so
            // they can write as soon as they join.
            let ours: Vec<AccountId> = newcomers
                .iter()
                .filter(|a| g.state.members.get(a).is_some_and(|m| m.invited_by == me))
                .copied()
                .collect();
            let held = g.keys.iter().find(|k| k.epoch == current.op);
            if let Some(key) = held.map(|k| k.key.clone()) {
                for account in ours {
                    let kind = ControlKind::PublishKey {
                        epoch: current.op,
                        key: Box::new(key.clone()),
                    };
                    self.send_control(ctx, account, id, kind);
                }
            }
            return;
        }
        let members: Vec<AccountId> = g
            .state
            .members
            .keys()
            .copied()
            .filter(|a| *a != me)
            .collect();
        let (key, to) = match g.keys.iter().find(|k| k.epoch == current.op) {
            Some(k) => (k.key.clone(), newcomers.to_vec()),
            None => {
                let key = PublishKey::generate(ctx.rng);
                self.adopt_key(ctx, id, current.op, key.clone());
                self.note(id, Severity::Info, "new publish key for the group");
                (key, members)
            }
        };
        for account in to.into_iter().filter(|a| *a != me) {
            let kind = ControlKind::PublishKey {
                epoch: current.op,
                key: Box::new(key.clone()),
            };
            self.send_control(ctx, account, id, kind);
        }
    }

    /// A publish key from a member device of `from`.
    pub(super) fn on_publish_key(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: AccountId,
        id: GroupId,
        epoch: OpHash,
        key: PublishKey,
    ) {
        let Some(g) = self.groups.get(&id) else {
            // An invitation's key may overtake the invitation.
            self.hold_early(id, epoch, from, key);
            return;
        };
        if g.keys.iter().any(|k| k.epoch == epoch) {
            return;
        }
        let known = g.state.epochs.iter().find(|e| e.op == epoch).copied();
        match known {
            Some(e) if g.recency(&epoch).is_some() && g.may_give(&self.me.account, &from, &e) => {
                self.adopt_key(ctx, id, epoch, key);
            }
            // We are not a member: an admin inviting us again sends the
            // key before the invitation (see `apply_ops`), which makes it
            // our inviter.
            Some(_)
                if !g.state.members.contains_key(&self.me.account)
                    && g.state.members.contains_key(&from) =>
            {
                self.hold_early(id, epoch, from, key);
            }
            Some(_) => {
                let what = "a publish key from a member that does not make it, or of an old epoch; ignored";
                self.note(id, Severity::Warn, what);
            }
            None if g.state.members.contains_key(&from) => {
                // Its op (or that op's parents) is probably on the way.
                self.hold_early(id, epoch, from, key);
            }
            None => {
                let what = "a publish key from a non-member; ignored";
                self.note(id, Severity::Warn, what);
            }
        }
    }

    /// Holds a key that came before its op (the oldest held goes first past
    /// [`MAX_EARLY_KEYS`]); [`GroupBook::settle_epochs`] takes it up.
    fn hold_early(&mut self, id: GroupId, epoch: OpHash, from: AccountId, key: PublishKey) {
        let early = &mut self.epoch_waits.early;
        if early.len() >= MAX_EARLY_KEYS {
            early.remove(0);
        }
        early.push((id, epoch, from, key));
    }

    /// A member asks for the key of `epoch` (it lacks it): answered if we
    /// hold it, at most once per [`SYNC_AFTER_MS`] per member.
    pub(super) fn on_publish_key_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: AccountId,
        id: GroupId,
        epoch: OpHash,
    ) {
        let Some(g) = self.groups.get(&id) else {
            return;
        };
        if !g.state.members.contains_key(&from) || g.recency(&epoch).is_none() {
            return;
        }
        let Some(key) = g
            .keys
            .iter()
            .find(|k| k.epoch == epoch)
            .map(|k| k.key.clone())
        else {
            return;
        };
        let now = ctx.now.mono_ms;
        let answered = &mut self.epoch_waits.answered;
        answered.retain(|_, at| now.saturating_sub(*at) < SYNC_AFTER_MS);
        if answered.insert((id, from), now).is_some() {
            return;
        }
        let key = Box::new(key);
        self.send_control(ctx, from, id, ControlKind::PublishKey { epoch, key });
    }

    /// On the tick: make the keys that are ours to make, and ask the
    /// makers for current keys missing longer than [`SYNC_AFTER_MS`]
    /// (again every [`SYNC_AFTER_MS`] while they are missing).
    pub(super) fn ask_for_missing_keys(&mut self, ctx: &mut Ctx<'_>) {
        let me = self.account();
        let now = ctx.now.mono_ms;
        let mut ids: Vec<GroupId> = self.groups.keys().copied().collect();
        ids.sort();
        for id in ids {
            let g = &self.groups[&id];
            if g.record.left || g.has_current_key() || !g.state.members.contains_key(&me) {
                self.epoch_waits.missing.remove(&id);
                continue;
            }
            let (Some(epoch), Some(maker)) = (g.state.epoch().copied(), g.state.epoch_maker())
            else {
                continue;
            };
            if maker == me {
                self.settle_epochs(ctx, id, &[]);
                continue;
            }
            let (since, asked) = *self.epoch_waits.missing.entry(id).or_insert((now, None));
            let due = asked.map_or(since, |a| a) + SYNC_AFTER_MS;
            if now >= due {
                self.epoch_waits.missing.insert(id, (since, Some(now)));
                let kind = ControlKind::PublishKeyRequest { epoch: epoch.op };
                self.send_control(ctx, maker, id, kind);
            }
        }
    }

    /// Keeps (stores, subscribes to) a key.
    fn adopt_key(&mut self, ctx: &mut Ctx<'_>, id: GroupId, epoch: OpHash, key: PublishKey) {
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        let k = EpochKey::new(epoch, key, Vec::new(), ctx.now.unix_ms);
        let topic = k.topic.clone();
        self.effects
            .push_back(GroupEffect::Write(GroupWrite::PublishKey(
                id,
                epoch,
                k.record(),
            )));
        g.keys.push(k);
        let left = g.record.left;
        self.by_topic.insert(topic.clone(), id);
        self.epoch_waits.missing.remove(&id);
        if !left {
            self.effects
                .push_back(GroupEffect::Subscribe { group: id, topic });
        }
    }

    fn drop_key(&mut self, id: GroupId, epoch: OpHash) {
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        let Some(at) = g.keys.iter().position(|k| k.epoch == epoch) else {
            return;
        };
        let k = g.keys.remove(at);
        self.by_topic.remove(&k.topic);
        self.effects.extend([
            GroupEffect::Write(GroupWrite::DropPublishKey(id, epoch)),
            GroupEffect::Unsubscribe { topic: k.topic },
        ]);
    }
}

//! Group messages that wait for their session's room key: counted per
//! group and per session, and by age, so junk under made-up sessions
//! cannot take every group's room, and nothing waits forever.

use std::collections::{BTreeMap, HashMap};

use crate::{GroupId, SessionId};

/// Most messages waiting for a key, over all groups.
pub const MAX_PENDING: usize = 10_000;
/// Most messages of one group waiting for a key.
pub const MAX_PENDING_PER_GROUP: u32 = 2_000;
/// Most messages waiting for one session's key (a sender starts a new
/// session after 100 messages by default).
pub const MAX_PENDING_PER_SESSION: u32 = 256;
/// How long a message waits for its key (as long as relays keep mail, which
/// is how long a late key may still be on its way).
pub const PENDING_FOR_MS: u64 = 30 * 24 * 3600 * 1000;

/// How long a message waits for its key before the log warns of it: a key
/// behind its message by seconds is ordinary (the key goes over Olm, the
/// message over the topic), one minutes late means the sender's device or
/// the way from it is in trouble.
pub const LATE_KEY_MS: u64 = 2 * 60 * 1000;
/// While messages stay late, how often the log says so again.
pub const LATE_KEY_NOTED_EVERY_MS: u64 = 60 * 60 * 1000;

/// Why a message cannot wait for its key now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Full {
    All,
    Group,
    Session,
}

impl Full {
    pub(super) const fn describe(self) -> &'static str {
        match self {
            Self::All => "the most group messages waiting for their key are kept already",
            Self::Group => "the most messages of this group waiting for their key are kept already",
            Self::Session => "the most messages waiting for this session's key are kept already",
        }
    }
}

/// The waiting messages (each by its session and digest), as on disk.
#[derive(Debug, Default)]
pub(super) struct PendingIndex {
    /// (received at, Unix ms; session; digest) → group.
    by_age: BTreeMap<(u64, SessionId, [u8; 32]), GroupId>,
    /// (session, digest) → received at.
    at: HashMap<(SessionId, [u8; 32]), u64>,
    groups: HashMap<GroupId, u32>,
    sessions: HashMap<SessionId, u32>,
}

impl PendingIndex {
    pub(super) fn len(&self) -> usize {
        self.at.len()
    }

    pub(super) fn contains(&self, session: SessionId, digest: &[u8; 32]) -> bool {
        self.at.contains_key(&(session, *digest))
    }

    /// Whether one more message of `group` under `session` may wait.
    pub(super) fn admits(&self, group: &GroupId, session: &SessionId) -> Result<(), Full> {
        if self.len() >= MAX_PENDING {
            Err(Full::All)
        } else if self.groups.get(group).copied().unwrap_or(0) >= MAX_PENDING_PER_GROUP {
            Err(Full::Group)
        } else if self.sessions.get(session).copied().unwrap_or(0) >= MAX_PENDING_PER_SESSION {
            Err(Full::Session)
        } else {
            Ok(())
        }
    }

    pub(super) fn insert(
        &mut self,
        at_ms: u64,
        session: SessionId,
        digest: [u8; 32],
        group: GroupId,
    ) {
        if self.at.insert((session, digest), at_ms).is_some() {
            return;
        }
        self.by_age.insert((at_ms, session, digest), group);
        *self.groups.entry(group).or_default() += 1;
        *self.sessions.entry(session).or_default() += 1;
    }

    pub(super) fn remove(&mut self, session: SessionId, digest: &[u8; 32]) {
        let Some(at_ms) = self.at.remove(&(session, *digest)) else {
            return;
        };
        let Some(group) = self.by_age.remove(&(at_ms, session, *digest)) else {
            return;
        };
        decrement(&mut self.groups, group);
        decrement(&mut self.sessions, session);
    }

    /// The groups of the messages that have waited since `cutoff_ms`
    /// (Unix ms) or longer, the longest first (a group once per message).
    pub(super) fn waiting_since(&self, cutoff_ms: u64) -> impl Iterator<Item = GroupId> + '_ {
        self.by_age
            .range(..=(cutoff_ms, SessionId([0xff; 32]), [0xff; 32]))
            .map(|(_, group)| *group)
    }

    /// Takes out what waited [`PENDING_FOR_MS`] or longer at `now_ms`.
    pub(super) fn expire(&mut self, now_ms: u64) -> Vec<(SessionId, [u8; 32])> {
        let cutoff = now_ms.saturating_sub(PENDING_FOR_MS);
        let old: Vec<(SessionId, [u8; 32])> = self
            .by_age
            .range(..=(cutoff, SessionId([0xff; 32]), [0xff; 32]))
            .map(|((_, session, digest), _)| (*session, *digest))
            .collect();
        for (session, digest) in &old {
            self.remove(*session, digest);
        }
        old
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: K) {
    if let Some(n) = counts.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_group_and_session_and_old_ones_expire() {
        let mut index = PendingIndex::default();
        let (group, other) = (GroupId([1; 32]), GroupId([2; 32]));
        let session = SessionId([3; 32]);
        for n in 0..MAX_PENDING_PER_SESSION {
            assert_eq!(index.admits(&group, &session), Ok(()));
            let mut digest = [0; 32];
            digest[..4].copy_from_slice(&n.to_be_bytes());
            index.insert(u64::from(n), session, digest, group);
        }
        assert_eq!(index.admits(&group, &session), Err(Full::Session));
        assert_eq!(index.admits(&group, &SessionId([4; 32])), Ok(()));
        assert_eq!(index.admits(&other, &SessionId([4; 32])), Ok(()));
        let gone = index.expire(PENDING_FOR_MS + 10);
        assert_eq!(gone.len(), 11, "received at 0..=10 ms");
        assert_eq!(index.len(), MAX_PENDING_PER_SESSION as usize - 11);
        assert_eq!(index.admits(&group, &session), Ok(()));
    }
}

//! Who may hand us messages on a group's topic.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::device::CardReach;
use crate::{AccountId, ContactCard, GroupState};

/// Who may hand us messages on a group's topic: each member's devices
/// and relays, from its card (a peer id from a device key costs a point
/// decompression: computed once per member, not once per op applied).
pub(super) struct Sources<P> {
    /// Per member: its card's signature (a new card is read anew) and peers.
    by_member: HashMap<AccountId, ([u8; 64], Vec<P>)>,
    all: HashSet<P>,
}

impl<P: Copy + Eq + Hash> Sources<P> {
    pub(super) fn new<A>(state: &GroupState, reach: fn(&ContactCard) -> CardReach<P, A>) -> Self {
        let mut sources = Self {
            by_member: HashMap::new(),
            all: HashSet::new(),
        };
        sources.update(state, reach);
        sources
    }

    /// Follows the state's members: new ones' peers computed, departed
    /// ones' dropped.
    pub(super) fn update<A>(
        &mut self,
        state: &GroupState,
        reach: fn(&ContactCard) -> CardReach<P, A>,
    ) {
        let before = self.by_member.len();
        self.by_member.retain(|account, (signature, _)| {
            state
                .members
                .get(account)
                .is_some_and(|m| m.card.signature == *signature)
        });
        let mut changed = self.by_member.len() != before;
        for (account, m) in &state.members {
            if self.by_member.contains_key(account) {
                continue;
            }
            let r = reach(&m.card);
            let devices = r.devices.into_iter().map(|(_, p)| p);
            let relays = r.relays.into_iter().map(|(p, _)| p);
            let peers = devices.chain(relays).collect();
            self.by_member.insert(*account, (m.card.signature, peers));
            changed = true;
        }
        if changed {
            self.all = self
                .by_member
                .values()
                .flat_map(|(_, peers)| peers)
                .copied()
                .collect();
        }
    }

    pub(super) fn contains(&self, peer: &P) -> bool {
        self.all.contains(peer)
    }
}

//! The hybrid logical clock that mints [`MessageId`]s.
//!
//! Ids are unique without coordination (64 random bits), sort by time, never
//! go backwards on one device even when the wall clock does, and an id minted
//! after observing a received id sorts after it (so a reply sorts after what
//! it answers).

use serde::{Deserialize, Serialize};

use crate::ids::MessageId;

/// The largest millisecond value that fits the id's 48-bit time field.
const MAX_MILLIS: u64 = (1 << 48) - 1;

/// Clock state: the last (millis, counter) pair handed out or observed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hlc {
    millis: u64,
    counter: u16,
}

impl Hlc {
    /// The state after the last id in `ids`, e.g. restored from storage.
    pub fn resume(last: MessageId) -> Self {
        Self {
            millis: last.millis(),
            counter: last.counter(),
        }
    }

    /// The last (millis, counter) handed out or observed, as an id with no
    /// random part: store it and [`Hlc::resume`] from it after a restart.
    pub fn last(&self) -> MessageId {
        MessageId::from_parts(self.millis, self.counter, 0)
    }

    /// Mints the next id. `now_millis` is the wall clock, `random` fresh
    /// randomness from the caller.
    pub fn next(&mut self, now_millis: u64, random: u64) -> MessageId {
        let now = now_millis.min(MAX_MILLIS);
        if now > self.millis {
            self.millis = now;
            self.counter = 0;
        } else if self.counter == u16::MAX {
            // Counter exhausted within one millisecond: borrow from the future.
            self.millis = (self.millis + 1).min(MAX_MILLIS);
            self.counter = 0;
        } else {
            self.counter += 1;
        }
        MessageId::from_parts(self.millis, self.counter, random)
    }

    /// Advances the clock past a received id, so ids minted afterwards sort
    /// after it. Ids far in the future (a peer's broken clock) are capped at
    /// `now_millis + max_skew_millis` so one peer cannot push us to the end of time.
    pub fn observe(&mut self, id: MessageId, now_millis: u64, max_skew_millis: u64) {
        let cap = now_millis.saturating_add(max_skew_millis).min(MAX_MILLIS);
        let (millis, counter) = if id.millis() > cap {
            (cap, 0)
        } else {
            (id.millis(), id.counter())
        };
        if (millis, counter) > (self.millis, self.counter) {
            self.millis = millis;
            self.counter = counter;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the wall clock does, ids from one clock strictly increase.
        #[test]
        fn ids_strictly_increase(steps in proptest::collection::vec((0u64..5_000, any::<u64>(), any::<bool>()), 1..300)) {
            let mut clock = Hlc::default();
            let mut last: Option<MessageId> = None;
            let mut wall = 1_700_000_000_000u64;
            for (delta, random, backwards) in steps {
                wall = if backwards { wall.saturating_sub(delta) } else { wall + delta };
                let id = clock.next(wall, random);
                if let Some(prev) = last {
                    prop_assert!(id > prev);
                }
                last = Some(id);
            }
        }

        /// A reply minted after observing an id sorts after it.
        #[test]
        fn reply_sorts_after_observed(own_wall in 0u64..(1 << 47), their_ms in 0u64..(1 << 47), c: u16, r1: u64, r2: u64) {
            let theirs = MessageId::from_parts(their_ms, c, r1);
            let mut clock = Hlc::default();
            clock.observe(theirs, their_ms, 0);
            let reply = clock.next(own_wall, r2);
            prop_assert!(reply > theirs);
        }
    }

    #[test]
    fn future_ids_are_capped() {
        let mut clock = Hlc::default();
        clock.observe(MessageId::from_parts(MAX_MILLIS, 0, 0), 1_000, 60_000);
        let id = clock.next(1_000, 0);
        assert!(id.millis() <= 61_001);
    }
}

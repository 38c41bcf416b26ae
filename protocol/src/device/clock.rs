//! The device's message clock: mints the ids of what it sends and moves
//! past the ids of what it receives (a hybrid logical clock, [`Hlc`]), and
//! remembers that it moved so the host stores it with the next batch.

use crate::{Hlc, MessageId, Now};

/// A peer's clock may run this far ahead of ours before we cap it.
pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;

/// The clock and whether it moved since the host last stored it.
#[derive(Debug, Clone, Default)]
pub struct MessageClock {
    hlc: Hlc,
    changed: bool,
}

impl MessageClock {
    /// The clock after the stored `last` id (none: a new device).
    pub fn resume(last: Option<MessageId>) -> Self {
        Self {
            hlc: last.map(Hlc::resume).unwrap_or_default(),
            changed: false,
        }
    }

    /// A new id; `random` is fresh randomness from the host.
    pub fn next(&mut self, now: Now, random: u64) -> MessageId {
        self.changed = true;
        self.hlc.next(now.unix_ms, random)
    }

    /// Moves past an id someone else minted (capped at
    /// [`MAX_CLOCK_SKEW_MS`] ahead of our wall clock).
    pub fn observe(&mut self, id: MessageId, now: Now) {
        self.changed = true;
        self.hlc.observe(id, now.unix_ms, MAX_CLOCK_SKEW_MS);
    }

    /// Whether the clock moved since [`MessageClock::take_changed`].
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// The state to store, if it moved since the last call.
    pub fn take_changed(&mut self) -> Option<MessageId> {
        std::mem::take(&mut self.changed).then(|| self.hlc.last())
    }
}

/// What an engine call needs from the host beside its input: the time,
/// the message clock and randomness (seeded by the host; a test seeds it
/// with a constant).
pub struct Ctx<'a> {
    pub now: Now,
    pub clock: &'a mut MessageClock,
    pub rng: &'a mut dyn rand::RngCore,
}

impl Ctx<'_> {
    /// A new message id.
    pub fn next_id(&mut self) -> MessageId {
        let random = self.rng.next_u64();
        self.clock.next(self.now, random)
    }
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

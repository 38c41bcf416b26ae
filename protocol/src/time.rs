//! Time as an engine sees it: handed in by the host with every input.

/// What the host's clocks read when it hands an input to an engine.
///
/// `mono_ms` only moves forward (milliseconds since some start the host
/// chose) and drives timers and deadlines; `unix_ms` is the wall clock and
/// goes into what is stored or sent (timestamps, challenges), where it may
/// step back without breaking a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    pub mono_ms: u64,
    pub unix_ms: u64,
}

impl Now {
    pub const fn new(mono_ms: u64, unix_ms: u64) -> Self {
        Self { mono_ms, unix_ms }
    }

    /// The same instant `ms` later on both clocks (for fake clocks in tests
    /// and harnesses).
    #[must_use]
    pub const fn plus_ms(self, ms: u64) -> Self {
        Self {
            mono_ms: self.mono_ms.saturating_add(ms),
            unix_ms: self.unix_ms.saturating_add(ms),
        }
    }
}

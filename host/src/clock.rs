//! The clock a host reads and hands to its engine.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hush_protocol::Now;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A host's clocks: monotonic milliseconds since the host started, and
/// the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct HostClock {
    start: Instant,
}

impl Default for HostClock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl HostClock {
    pub fn now(&self) -> Now {
        let mono_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Now::new(mono_ms, now_ms())
    }
}

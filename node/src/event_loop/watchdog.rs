//! Says in the log when the loop is slow or stuck in one turn. While it is,
//! the node answers nothing: not the API, not its peers. A turn over
//! [`SLOW_TURN`] is logged when it ends, with what it handled; one that has
//! not ended after [`STUCK_TURN`] is logged by a task beside the loop, on
//! the runtime's other worker (the turn may never end), again each time
//! its length doubles. (On a runtime of one worker, as in some tests, a
//! stuck turn holds the task too: only its end is logged.) What the loop
//! awaits between turns (polling the swarm, a commit at shutdown) is not
//! a turn: a hang there is not seen here.
//!
//! A task, not a thread: with a thread of its own, an idle node held about
//! 1.3 MiB more (docs/benchmarks.md, seventeenth session).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// A turn this long is logged when it ends.
const SLOW_TURN: Duration = Duration::from_secs(1);
/// A turn this long is logged while it runs.
const STUCK_TURN: Duration = Duration::from_secs(5);
/// How often the task beside looks.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What a turn of the loop handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Turn {
    /// Starting commits, sending early events (the top of every turn).
    Flush = 1,
    Command = 2,
    Network = 3,
    Files = 4,
    Courier = 5,
    Failover = 6,
    Mail = 7,
    Commit = 8,
    Tick = 9,
}

impl Turn {
    fn from_u8(n: u8) -> Option<Self> {
        use Turn::*;
        [
            Flush, Command, Network, Files, Courier, Failover, Mail, Commit, Tick,
        ]
        .into_iter()
        .find(|t| *t as u8 == n)
    }

    fn describe(self) -> &'static str {
        match self {
            Turn::Flush => "starting a commit",
            Turn::Command => "a command from the API",
            Turn::Network => "a network event",
            Turn::Files => "a file transfer's report",
            Turn::Courier => "a courier event",
            Turn::Failover => "a relay replacement's result",
            Turn::Mail => "a page of mail opened",
            Turn::Commit => "a landed commit",
            Turn::Tick => "the periodic tick",
        }
    }
}

/// What the watchdog tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    /// A turn ended, over the slow limit.
    Slow(Turn, Duration),
    /// A turn has run this long and not ended.
    Stuck(Turn, Duration),
}

type Reporter = Arc<dyn Fn(Report) + Send + Sync>;

/// Logs it (warn).
fn log(report: Report) {
    match report {
        Report::Slow(turn, took) => tracing::warn!(
            took_ms = took.as_millis() as u64,
            "one turn of the event loop, handling {}, took {:.1} s: the node answered nothing meanwhile",
            turn.describe(),
            took.as_secs_f64()
        ),
        Report::Stuck(turn, running) => tracing::warn!(
            running_s = running.as_secs(),
            "the event loop has been handling {} for {} s: the node answers nothing (API, peers) until it ends",
            turn.describe(),
            running.as_secs()
        ),
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    slow: Duration,
    stuck: Duration,
    look_every: Duration,
}

const LIMITS: Limits = Limits {
    slow: SLOW_TURN,
    stuck: STUCK_TURN,
    look_every: LOOK_EVERY,
};

/// The loop's side: marks where each turn starts and ends.
pub(super) struct Watchdog {
    shared: Arc<Shared>,
    turn: Option<(Turn, Instant)>,
    slow: Duration,
    report: Reporter,
}

#[derive(Debug)]
struct Shared {
    epoch: Instant,
    /// When the running turn started, in ms after `epoch`, plus one
    /// (0: between turns).
    started: AtomicU64,
    turn: AtomicU8,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    fn ms_at(&self, at: Instant) -> u64 {
        let ms = at.saturating_duration_since(self.epoch).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX).min(u64::MAX - 1)
    }
}

impl Watchdog {
    /// Starts the task beside, which ends when this is dropped. Within a
    /// tokio runtime only (as the loop runs).
    pub(super) fn start() -> Self {
        Self::with(LIMITS, Arc::new(log))
    }

    fn with(limits: Limits, report: Reporter) -> Self {
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            started: AtomicU64::new(0),
            turn: AtomicU8::new(0),
        });
        let weak = Arc::downgrade(&shared);
        let beside = Arc::clone(&report);
        // In the loop's span: the node's name goes with what it logs.
        let watching = watch(weak, limits, beside);
        tokio::spawn(tracing::Instrument::in_current_span(watching));
        Self {
            shared,
            turn: None,
            slow: limits.slow,
            report,
        }
    }

    /// A turn handling `turn` starts (ending the one before, if any).
    pub(super) fn begin(&mut self, turn: Turn) {
        self.end();
        // One clock read a turn here, one in `end`.
        let now = Instant::now();
        self.shared.turn.store(turn as u8, Ordering::Relaxed);
        self.shared
            .started
            .store(self.shared.ms_at(now) + 1, Ordering::Relaxed);
        self.turn = Some((turn, now));
    }

    /// The running turn ends; told if it was slow.
    pub(super) fn end(&mut self) {
        let Some((turn, started)) = self.turn.take() else {
            return;
        };
        self.shared.started.store(0, Ordering::Relaxed);
        let took = started.elapsed();
        if took >= self.slow {
            (self.report)(Report::Slow(turn, took));
        }
    }
}

/// The task beside: tells of a turn that has run `limits.stuck`, and
/// again at twice as long, and so on.
async fn watch(shared: Weak<Shared>, limits: Limits, report: Reporter) {
    let first = u64::try_from(limits.stuck.as_millis()).unwrap_or(u64::MAX);
    let mut look = tokio::time::interval(limits.look_every);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The turn told of (its start) and at what age it is told next.
    let mut told: Option<(u64, u64)> = None;
    loop {
        look.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let started = shared.started.load(Ordering::Relaxed);
        if started == 0 {
            told = None;
            continue;
        }
        let running = shared.now_ms().saturating_sub(started - 1);
        let due = match told {
            Some((turn_start, due)) if turn_start == started => due,
            _ => first,
        };
        if running < due {
            continue;
        }
        // The next telling at the first doubling past this age (a look
        // that came late tells once, not once per doubling it missed).
        let mut next = due.max(1);
        while next <= running {
            next = next.saturating_mul(2);
        }
        told = Some((started, next));
        if let Some(turn) = Turn::from_u8(shared.turn.load(Ordering::Relaxed)) {
            report(Report::Stuck(turn, Duration::from_millis(running)));
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    #[test]
    fn every_turn_kind_reads_back_from_its_number() {
        for n in 1..=9 {
            let turn = Turn::from_u8(n).expect("a turn");
            assert_eq!(turn as u8, n);
        }
        assert_eq!(Turn::from_u8(0), None);
        assert_eq!(Turn::from_u8(10), None);
    }

    fn watchdog() -> (Watchdog, mpsc::Receiver<Report>) {
        let (tx, rx) = mpsc::channel(16);
        let limits = Limits {
            slow: Duration::from_millis(50),
            stuck: Duration::from_millis(100),
            look_every: Duration::from_millis(10),
        };
        let report: Reporter = Arc::new(move |r| {
            let _ = tx.try_send(r);
        });
        (Watchdog::with(limits, report), rx)
    }

    async fn next(told: &mut mpsc::Receiver<Report>) -> Report {
        tokio::time::timeout(Duration::from_secs(10), told.recv())
            .await
            .ok()
            .flatten()
            .expect("a report")
    }

    /// The loop's turn is "stuck" here only in name (the test awaits
    /// between), which is all the watchdog sees of it.
    #[tokio::test]
    async fn a_turn_that_does_not_end_is_told_while_it_runs_and_again_as_it_doubles() {
        let (mut dog, mut told) = watchdog();
        dog.begin(Turn::Command);
        let first = next(&mut told).await;
        let Report::Stuck(Turn::Command, running) = first else {
            panic!("{first:?}");
        };
        assert!(running >= Duration::from_millis(100), "{running:?}");
        let second = next(&mut told).await;
        let Report::Stuck(Turn::Command, later) = second else {
            panic!("{second:?}");
        };
        assert!(later >= Duration::from_millis(200), "{later:?}");
        dog.end();
        let ended = next(&mut told).await;
        assert!(matches!(ended, Report::Slow(Turn::Command, _)), "{ended:?}");
    }
}

//! When one connection probes, and when it is dead: the rules, with no IO
//! (the handler feeds them instants and does what they say).

use std::time::{Duration, Instant};

/// How a connection probes its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// A connection that heard nothing for this long sends a probe (the
    /// side that dialled; the other side waits a fifth longer, so while the
    /// dialler probes, its probes are the listener's proof too and only one
    /// side pays).
    pub idle: Duration,
    /// A probe unanswered this long has failed; the next goes at once.
    pub probe_timeout: Duration,
    /// After this many failed probes in a row the connection is dead.
    pub max_misses: u32,
}

impl Default for Config {
    /// Dead within `idle × 1.2 + probe_timeout × max_misses` = 14.4 s of
    /// silence; one probe and its answer every 7 s while idle (about 58
    /// bytes a second on the wire, see `hush bench liveness`).
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(7),
            probe_timeout: Duration::from_secs(2),
            max_misses: 3,
        }
    }
}

impl Config {
    /// The longest a dead connection stays up: from the last thing heard
    /// to being declared dead, on the side that waits longer.
    pub fn detection_bound(&self) -> Duration {
        self.listener_idle() + self.probe_timeout * self.max_misses
    }

    fn listener_idle(&self) -> Duration {
        self.idle + self.idle / 5
    }
}

/// Which side of the connection we are (the dialler probes first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Dialer,
    Listener,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing before this instant.
    WaitUntil(Instant),
    /// Send a probe now.
    Probe,
    /// Nothing was heard for `silent_for` and every probe failed.
    Dead { silent_for: Duration },
}

/// One connection's liveness: the last time anything was heard from the
/// peer (a probe of theirs or the answer to ours), and the probes since.
#[derive(Debug, Clone)]
pub struct Schedule {
    idle: Duration,
    probe_timeout: Duration,
    max_misses: u32,
    heard: Instant,
    /// Probes sent since the peer was last heard.
    misses: u32,
    last_probe: Option<Instant>,
    dead: bool,
}

impl Schedule {
    /// A connection that opened at `now` (the handshake counts as heard).
    pub fn new(config: Config, side: Side, now: Instant) -> Self {
        Self {
            idle: match side {
                Side::Dialer => config.idle,
                Side::Listener => config.listener_idle(),
            },
            probe_timeout: config.probe_timeout,
            max_misses: config.max_misses.max(1),
            heard: now,
            misses: 0,
            last_probe: None,
            dead: false,
        }
    }

    /// The peer answered a probe or sent one: it is alive.
    pub fn heard(&mut self, now: Instant) {
        if !self.dead {
            self.heard = self.heard.max(now);
            self.misses = 0;
        }
    }

    /// What is due at `now`. After `Probe`, the probe counts as sent.
    pub fn poll(&mut self, now: Instant) -> Step {
        if self.dead {
            return Step::Dead {
                silent_for: now.saturating_duration_since(self.heard),
            };
        }
        let due = match self.last_probe {
            Some(at) if self.misses > 0 => at + self.probe_timeout,
            _ => self.heard + self.idle,
        };
        if now < due {
            return Step::WaitUntil(due);
        }
        if self.misses >= self.max_misses {
            self.dead = true;
            return Step::Dead {
                silent_for: now.saturating_duration_since(self.heard),
            };
        }
        self.misses += 1;
        self.last_probe = Some(now);
        Step::Probe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Runs the schedule from `start` to `end` in 100 ms steps, answering
    /// probes (after 10 ms) while `answers(t)`; returns when probes went and
    /// when it died, as offsets from `start`.
    fn run(
        side: Side,
        end: Duration,
        answers: impl Fn(Duration) -> bool,
    ) -> (Vec<Duration>, Option<Duration>) {
        let start = Instant::now();
        let mut s = Schedule::new(Config::default(), side, start);
        let (mut probes, mut pending) = (Vec::new(), Vec::new());
        let mut t = Duration::ZERO;
        while t <= end {
            let now = start + t;
            pending.retain(|at: &Duration| {
                if t >= *at + Duration::from_millis(10) {
                    if answers(t) {
                        s.heard(now);
                    }
                    false
                } else {
                    true
                }
            });
            match s.poll(now) {
                Step::Probe => {
                    probes.push(t);
                    pending.push(t);
                }
                Step::Dead { .. } => return (probes, Some(t)),
                Step::WaitUntil(at) => assert!(at > now),
            }
            t += Duration::from_millis(100);
        }
        (probes, None)
    }

    #[test]
    fn an_answering_peer_is_probed_once_per_idle_period_and_never_dies() {
        let (probes, dead) = run(Side::Dialer, 60 * S, |_| true);
        assert_eq!(dead, None);
        assert_eq!(probes.len(), 8, "one probe every ~7 s: {probes:?}");
    }

    #[test]
    fn a_silent_peer_is_dead_after_three_failed_probes_within_the_bound() {
        let cut = 20 * S;
        for side in [Side::Dialer, Side::Listener] {
            let (probes, dead) = run(side, 120 * S, |t| t < cut);
            let dead = dead.expect("declared dead");
            let after_cut = dead - cut;
            assert!(
                after_cut <= Config::default().detection_bound(),
                "{side:?}: dead {after_cut:?} after the cut"
            );
            let failed = probes.iter().filter(|p| **p >= cut).count();
            assert_eq!(
                failed, 3,
                "{side:?}: three probes after the cut: {probes:?}"
            );
        }
    }

    #[test]
    fn a_short_blip_does_not_kill_the_connection() {
        // Silent for 4 s from just before a probe, then answering again:
        // the third probe is answered.
        let (_, dead) = run(Side::Dialer, 60 * S, |t| !(14 * S..18 * S).contains(&t));
        assert_eq!(dead, None);
    }

    #[test]
    fn hearing_the_peer_postpones_the_next_probe() {
        let start = Instant::now();
        let config = Config::default();
        let mut s = Schedule::new(config, Side::Listener, start);
        // The dialler's probes arrive every idle period (and a little):
        // the listener never probes.
        let every = config.idle + Duration::from_millis(100);
        for i in 1..20u32 {
            let now = start + every * i;
            s.heard(now);
            assert!(matches!(s.poll(now), Step::WaitUntil(_)));
            assert!(matches!(s.poll(now + every), Step::WaitUntil(_)));
        }
    }
}

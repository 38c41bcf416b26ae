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

/// One connection's liveness: when the probe exchange last worked (an
/// answer to ours, or a probe of theirs), when anything at all last came
/// from the peer, and the probes since.
///
/// Probes follow the probe exchange, not the traffic: while a large
/// transfer flows to us, the peer's answers wait behind it, so we keep
/// probing every `probe_timeout` (a few bytes beside the transfer); our
/// probes reach the peer at once, which is how a peer busy sending learns
/// that we are still there. Death needs both: the probes failed, and
/// nothing at all arrived for `probe_timeout × max_misses`.
#[derive(Debug, Clone)]
pub struct Schedule {
    idle: Duration,
    probe_timeout: Duration,
    max_misses: u32,
    /// The probe exchange last worked.
    heard: Instant,
    /// Anything (any byte) last arrived; at least `heard`.
    active: Instant,
    /// Probes sent since the probe exchange last worked.
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
            active: now,
            misses: 0,
            last_probe: None,
            dead: false,
        }
    }

    /// The peer answered a probe or sent one: it is alive and the probe
    /// exchange works.
    pub fn heard(&mut self, now: Instant) {
        if !self.dead {
            self.heard = self.heard.max(now);
            self.active = self.active.max(now);
            self.misses = 0;
        }
    }

    /// Something else arrived from the peer at `at`: it is alive.
    pub fn active(&mut self, at: Instant) {
        if !self.dead {
            self.active = self.active.max(at);
        }
    }

    /// What is due at `now`. After `Probe`, the probe counts as sent.
    pub fn poll(&mut self, now: Instant) -> Step {
        if self.dead {
            return Step::Dead {
                silent_for: now.saturating_duration_since(self.active),
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
            let silent_for = now.saturating_duration_since(self.active);
            if silent_for >= self.probe_timeout * self.max_misses {
                self.dead = true;
                return Step::Dead { silent_for };
            }
            // Unanswered, but the peer is sending: its answers are late.
        } else {
            self.misses += 1;
        }
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
    fn a_peer_busy_sending_is_alive_while_its_answers_are_late_and_dead_once_it_stops() {
        let config = Config::default();
        let start = Instant::now();
        let mut s = Schedule::new(config, Side::Dialer, start);
        // A transfer flows to us from 1 s on; no answer to any probe.
        let mut probes = 0;
        let mut t = Duration::ZERO;
        while t < 120 * S {
            s.active(start + t.min(60 * S));
            match s.poll(start + t) {
                Step::Probe => probes += 1,
                Step::Dead { silent_for } => {
                    assert!(t >= 60 * S, "dead at {t:?} while bytes arrived");
                    let bound = config.probe_timeout * (config.max_misses + 1);
                    assert!(
                        silent_for <= bound,
                        "{silent_for:?} after the transfer stopped"
                    );
                    assert!(probes > 20, "probed on all along: {probes}");
                    return;
                }
                Step::WaitUntil(_) => {}
            }
            t += Duration::from_millis(100);
        }
        panic!("never declared dead after the transfer stopped at 60 s");
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

//! The event journal: every event of this run, numbered, the last
//! [`JOURNAL_LEN`] kept, so a client of the local API that lost its
//! connection resumes from the last event it saw (`events.subscribe` with
//! `after`) and misses nothing.
//!
//! A cursor is `RUN-SEQ`: a random id of this run of the node (hex) and the
//! event's number in it. A cursor of another run (the node restarted), or
//! one older than what the journal still holds, is answered with a `gap`
//! event first: the client then catches up through `conversations` and
//! `history --after`, and goes on from the events that follow.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::view::Event;

/// Events kept for clients that reconnect.
pub const JOURNAL_LEN: usize = 4096;

/// One event with its cursor.
#[derive(Debug, Clone)]
pub struct Journaled {
    pub seq: u64,
    pub event: Event,
}

#[derive(Debug)]
struct Ring {
    next: u64,
    events: VecDeque<Arc<Journaled>>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Journal {
    run: u64,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<Journaled>>,
}

/// Where a subscriber starts.
pub struct Resume {
    /// Kept events after the cursor, oldest first.
    pub replay: Vec<Arc<Journaled>>,
    /// Whether events before those may have been missed (another run, or
    /// older than the journal holds).
    pub gap: bool,
    /// What follows.
    pub live: broadcast::Receiver<Arc<Journaled>>,
}

impl Journal {
    pub fn new() -> Arc<Self> {
        let (live, _) = broadcast::channel(JOURNAL_LEN);
        Arc::new(Self {
            run: rand::random::<u64>() >> 16,
            ring: Mutex::new(Ring {
                next: 1,
                events: VecDeque::with_capacity(JOURNAL_LEN),
            }),
            live,
        })
    }

    /// Numbers `event`, keeps it and hands it to every subscriber: one
    /// allocation, no copy (each subscriber reads the same event).
    pub fn send(&self, event: Event) {
        // Nothing under this lock panics; were it poisoned, the ring is
        // still whole (each step leaves it so), and no event is dropped.
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let journaled = Arc::new(Journaled {
            seq: ring.next,
            event,
        });
        ring.next += 1;
        if ring.events.len() == JOURNAL_LEN {
            ring.events.pop_front();
        }
        ring.events.push_back(journaled.clone());
        // Sent under the lock, so a subscriber that read the ring sees
        // every later event live, none twice.
        let _ = self.live.send(journaled);
    }

    /// The events from now on. A subscriber more than [`JOURNAL_LEN`]
    /// events behind is told how many it missed
    /// ([`broadcast::error::RecvError::Lagged`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Journaled>> {
        self.live.subscribe()
    }

    /// The cursor of event `seq` of this run.
    pub fn cursor(&self, seq: u64) -> String {
        format!("{:012x}-{seq}", self.run)
    }

    /// A subscriber from after `cursor` (from now on without one).
    pub fn resume(&self, cursor: Option<&str>) -> Result<Resume, String> {
        let after = match cursor {
            None => None,
            Some(c) => Some(parse(c)?),
        };
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.live.subscribe();
        let Some((run, seq)) = after else {
            return Ok(Resume {
                replay: Vec::new(),
                gap: false,
                live,
            });
        };
        let oldest = ring.events.front().map_or(ring.next, |e| e.seq);
        let same_run = run == self.run;
        let from = if same_run { seq.saturating_add(1) } else { 1 };
        Ok(Resume {
            replay: ring
                .events
                .iter()
                .filter(|e| e.seq >= from)
                .cloned()
                .collect(),
            gap: !same_run || from < oldest,
            live,
        })
    }
}

fn parse(cursor: &str) -> Result<(u64, u64), String> {
    let bad = || format!("invalid cursor {cursor:?}: use the `cursor` of an event as it came");
    let (run, seq) = cursor.split_once('-').ok_or_else(bad)?;
    Ok((
        u64::from_str_radix(run, 16).map_err(|_| bad())?,
        seq.parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event::Gap {
            reason: n.to_string(),
        }
    }

    fn seqs(r: &Resume) -> Vec<u64> {
        r.replay.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn a_client_resumes_after_its_cursor_and_hears_of_gaps() {
        let journal = Journal::new();
        for n in 0..3 {
            journal.send(event(n));
        }
        let cursor = journal.cursor(1);
        let resume = journal.resume(Some(&cursor)).expect("resumes");
        assert_eq!(seqs(&resume), [2, 3]);
        assert!(!resume.gap);
        let mut live = resume.live;
        journal.send(event(9));
        assert_eq!(
            live.recv().await.expect("live").seq,
            4,
            "then live, none twice"
        );
        // Another run's cursor: everything kept, and a gap.
        let other = journal.resume(Some("1-5")).expect("resumes");
        assert!(other.gap);
        assert_eq!(seqs(&other), [1, 2, 3, 4]);
        assert!(journal.resume(Some("nonsense")).is_err());
    }

    #[test]
    fn the_journal_keeps_only_the_newest_events() {
        let journal = Journal::new();
        for n in 0..(JOURNAL_LEN as u64 + 10) {
            journal.send(event(n));
        }
        let resume = journal.resume(Some(&journal.cursor(1))).expect("resumes");
        assert!(resume.gap, "events 2 to 11 are gone");
        assert_eq!(resume.replay.len(), JOURNAL_LEN);
        assert_eq!(resume.replay[0].seq, 11);
    }
}

//! `futures_timer::Delay` on tokio's timer, for hush.
//!
//! libp2p times everything with the `futures-timer` crate: its `Delay`
//! registers with a timer thread of its own when it is made, and again
//! when it is dropped, and each time wakes that thread. Gossipsub makes a
//! `Delay` for every message it forwards to every peer (the time the
//! message may wait in the peer's queue) and drops it unpolled once the
//! message is sent; libp2p's connections make one for every stream they
//! open. In a group of 50 that was a seventh of the CPU per delivered
//! message: the timer thread's work, the futex wake-ups of it and the
//! thread hand-offs (docs/benchmarks.md, "libp2p's timers on tokio's
//! wheel").
//!
//! This crate takes `futures-timer`'s place in the build
//! (`[patch.crates-io]` in the workspace manifest) with the same API:
//! `Delay::new`, `Delay::reset` and `Future`. A `Delay` is only a deadline
//! until it is first polled: made and dropped unpolled, it costs nothing
//! else. Polled inside a tokio runtime (every task of hush's is), it waits
//! on that runtime's timer wheel; polled where there is none, on a helper
//! thread of its own, so it never panics for want of a runtime. Not
//! supported, as with any tokio timer: a runtime built without its time
//! driver (`enable_time`; every runtime hush builds enables it), and
//! polling a `Delay` after the runtime it first waited on was dropped
//! (hush never moves a swarm from one runtime to another).
//!
//! One difference from `futures-timer`: a `Delay` whose timer went away
//! there panicked when polled ("timer has gone away"); here there is no
//! such state.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//!
//! let mut delay = futures_timer::Delay::new(Duration::from_millis(5));
//! (&mut delay).await; // on the runtime's timer wheel
//! delay.reset(Duration::from_millis(5)); // pending again
//! delay.await;
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Deadlines past this far are treated as this far (an `Instant` cannot
/// hold every `Duration`).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// A future that completes once a duration has passed.
pub struct Delay {
    deadline: Instant,
    timer: Timer,
}

enum Timer {
    /// Never polled since made or reset: only the deadline.
    Unarmed,
    /// On the runtime's timer wheel.
    Tokio(Pin<Box<tokio::time::Sleep>>),
    /// No runtime where it was polled: a helper thread wakes it.
    Thread(Arc<Mutex<Option<Waker>>>),
}

fn deadline_after(dur: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(dur)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

impl Delay {
    /// A delay that completes `dur` from now.
    pub fn new(dur: Duration) -> Delay {
        Delay {
            deadline: deadline_after(dur),
            timer: Timer::Unarmed,
        }
    }

    /// Completes `dur` from now instead (also after it completed).
    pub fn reset(&mut self, dur: Duration) {
        self.deadline = deadline_after(dur);
        match &mut self.timer {
            Timer::Tokio(sleep) => sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(self.deadline)),
            // Its thread may wake the task once more for the old deadline:
            // a spurious wake-up, which a future must bear anyway.
            Timer::Thread(_) => self.timer = Timer::Unarmed,
            Timer::Unarmed => {}
        }
    }

    fn arm(&mut self) {
        self.timer = if tokio::runtime::Handle::try_current().is_ok() {
            Timer::Tokio(Box::pin(tokio::time::sleep_until(
                tokio::time::Instant::from_std(self.deadline),
            )))
        } else {
            let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
            let shared = waker.clone();
            let deadline = self.deadline;
            let spawned = std::thread::Builder::new()
                .name("delay".into())
                .spawn(move || {
                    let now = Instant::now();
                    if deadline > now {
                        std::thread::sleep(deadline - now);
                    }
                    let waker = shared.lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                });
            match spawned {
                Ok(_) => Timer::Thread(waker),
                // No thread to be had now: stays unarmed, and the task is
                // woken to poll (and try) again.
                Err(_) => Timer::Unarmed,
            }
        };
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.deadline {
            return Poll::Ready(());
        }
        if matches!(this.timer, Timer::Unarmed) {
            this.arm();
        }
        match &mut this.timer {
            Timer::Tokio(sleep) => sleep.as_mut().poll(cx),
            Timer::Thread(waker) => {
                *waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
                // The thread may have woken (nobody) between the check
                // above and the waker's registration.
                if Instant::now() >= this.deadline {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
            Timer::Unarmed => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delay")
            .field("deadline", &self.deadline)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_delay_completes_after_its_duration_on_the_runtime() {
        let start = Instant::now();
        Delay::new(Duration::from_millis(30)).await;
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn a_reset_delay_completes_after_the_new_duration() {
        let start = Instant::now();
        let mut delay = Delay::new(Duration::from_millis(5));
        (&mut delay).await;
        // Reset after it completed: pending again, for the new duration.
        delay.reset(Duration::from_millis(40));
        let again = Instant::now();
        delay.await;
        assert!(again.elapsed() >= Duration::from_millis(40));
        assert!(start.elapsed() >= Duration::from_millis(45));
    }

    #[tokio::test]
    async fn a_delay_reset_while_waiting_moves_its_deadline() {
        let mut delay = Delay::new(Duration::from_secs(3600));
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut delay).poll(&mut cx).is_pending());
        assert!(matches!(delay.timer, Timer::Tokio(_)));
        delay.reset(Duration::from_millis(20));
        let start = Instant::now();
        delay.await;
        assert!(start.elapsed() >= Duration::from_millis(15));
    }

    #[test]
    fn a_delay_polled_without_a_runtime_completes_on_its_own_thread() {
        let start = Instant::now();
        let mut delay = Delay::new(Duration::from_millis(30));
        let thread = std::thread::current();
        let waker = Waker::from(Arc::new(Unparker(thread)));
        let mut cx = Context::from_waker(&waker);
        while Pin::new(&mut delay).poll(&mut cx).is_pending() {
            std::thread::park_timeout(Duration::from_secs(5));
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the helper thread never woke the task"
            );
        }
        assert!(matches!(delay.timer, Timer::Thread(_)));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_delay_never_polled_is_only_a_deadline_and_a_huge_one_does_not_overflow() {
        let delay = Delay::new(Duration::MAX);
        assert!(matches!(delay.timer, Timer::Unarmed));
        assert!(delay.deadline > Instant::now() + Duration::from_secs(86_400 * 365));
    }

    struct Unparker(std::thread::Thread);

    impl std::task::Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Wakes the test's own thread.
    fn thread_waker() -> Waker {
        Waker::from(Arc::new(Unparker(std::thread::current())))
    }
}

//! A thread beside the committing one. A durable batch is written to redb
//! there while the committing thread appends it to the write-ahead log and
//! waits for the disk, so a commit costs the longer of the two instead of
//! their sum (docs/benchmarks.md, "redb beside the log's sync").

use std::sync::mpsc::{self, Receiver, SyncSender};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
pub(super) struct Beside {
    /// `None` if the thread could not be started: jobs then run inline.
    jobs: Option<SyncSender<Job>>,
}

impl Beside {
    pub(super) fn start() -> Self {
        // One job at a time: the store's log lock is held around each.
        let (jobs, queue) = mpsc::sync_channel::<Job>(1);
        let started = std::thread::Builder::new()
            .name("hush-store".into())
            .spawn(move || {
                for job in queue {
                    // A job that panics drops its result's sender (its
                    // caller sees a disconnect); the thread goes on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        if let Err(e) = &started {
            tracing::warn!(error = %e, "could not start the store's writer thread; writing in line");
        }
        Self {
            jobs: started.ok().map(|_| jobs),
        }
    }

    /// Starts `job` on the thread and returns where its result will come;
    /// if `job` panics, the receiver reports a disconnect. If the thread
    /// could not start, the job runs here, before this returns.
    pub(super) fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Receiver<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(job());
        });
        match &self.jobs {
            Some(jobs) => {
                if let Err(mpsc::SendError(job)) = jobs.send(job) {
                    job();
                }
            }
            None => job(),
        }
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_off_the_calling_thread_and_their_results_come_back() {
        let beside = Beside::start();
        let here = std::thread::current().id();
        let there = beside.run(move || std::thread::current().id() != here);
        assert_eq!(there.recv(), Ok(true));
        assert_eq!(beside.run(|| 7).recv(), Ok(7));
    }

    #[test]
    fn a_job_that_panics_reports_a_disconnect_and_later_jobs_still_run() {
        let beside = Beside::start();
        let here = std::thread::current().id();
        let panicked = beside.run(|| -> u8 { panic!("a job failed") });
        assert!(panicked.recv().is_err());
        let there = beside.run(move || std::thread::current().id() != here);
        assert_eq!(there.recv(), Ok(true), "still on the thread beside");
    }
}

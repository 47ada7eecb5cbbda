//! When `Worker::drain` is done across capsules: every capsule found its queues empty and ran
//! no job, with no job started or ended anywhere in the process since each looked.
//!
//! A capsule cannot stop on its own emptiness: a job of another capsule may still push to its
//! queues. So each capsule's fetcher, once idle, reports the moment it looked (the process's
//! count of job changes, [`InFlight::changes`]) and waits; when a job starts or ends anywhere it
//! looks again, and when every capsule's report is as recent as the count, no job ran since the
//! earliest of those looks, so none can push any more, and every fetcher stops.
//!
//! That decision sticks: the first capsule to see every report match marks the drain done, and
//! every other capsule stops on its next check, whatever the count says by then. The count may
//! still move after the decision (the acker settles a job that had finished before the looks),
//! and a capsule that looked again then would wait forever for a report the stopped capsule
//! never sends.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::in_flight::InFlight;
use super::tasks::sleep_or;

/// How often an idle capsule checks, while draining, whether the others are idle too.
const POLL: Duration = Duration::from_millis(10);

/// The capsules' idle reports, while draining.
#[derive(Debug)]
pub(crate) struct Drain {
    /// The reports, and whether the drain is done.
    state: Mutex<Reports>,
}

/// What the capsules reported, behind [`Drain`]'s lock.
#[derive(Debug)]
struct Reports {
    /// Per capsule (by its index, the default one first), the count of job changes
    /// ([`InFlight::changes`]) when it last looked at its queues and found them empty with no
    /// job running; `None` before it has.
    looked_at: Vec<Option<u64>>,
    /// A capsule saw every report equal to the count: the drain is done for every capsule,
    /// whatever the count does afterwards.
    done: bool,
}

impl Drain {
    /// No report yet, for a process of `capsules` capsules.
    pub(crate) fn new(capsules: usize) -> Self {
        Self {
            state: Mutex::new(Reports {
                looked_at: vec![None; capsules],
                done: false,
            }),
        }
    }

    /// Notes that capsule `index` found its queues empty and ran no job, in a look that began
    /// when `in_flight`'s count of changes was `looked_at`; then waits. `true` when every
    /// capsule is idle, or another capsule found them so (the drain is done); `false` when a
    /// job started or ended meanwhile, or `quiet` came, and the capsule must look again.
    pub(crate) async fn idle(
        &self,
        index: usize,
        looked_at: u64,
        in_flight: &InFlight,
        quiet: &CancellationToken,
    ) -> bool {
        self.state().looked_at[index] = Some(looked_at);
        loop {
            let now = in_flight.changes();
            {
                let mut state = self.state();
                if state.done || state.looked_at.iter().all(|report| *report == Some(now)) {
                    state.done = true;
                    return true;
                }
            }
            if now != looked_at || sleep_or(quiet, POLL).await {
                return false;
            }
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Reports> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    use super::Drain;
    use crate::worker::in_flight::InFlight;
    use crate::worker::unit::Fetched;

    #[tokio::test]
    async fn one_capsule_is_done_when_it_is_idle() {
        let in_flight = InFlight::default();
        let drain = Drain::new(1);
        let quiet = CancellationToken::new();
        assert!(drain.idle(0, in_flight.changes(), &in_flight, &quiet).await);
    }

    #[tokio::test]
    async fn a_job_anywhere_since_a_look_means_looking_again() {
        let in_flight = InFlight::default();
        let drain = Drain::new(2);
        let quiet = CancellationToken::new();
        let looked_at = in_flight.changes();
        // Capsule 1 runs a job, which may push to capsule 0's queues, while 0 waits.
        let ticket = in_flight.track(Fetched::new("single", "{}"));
        assert!(!drain.idle(0, looked_at, &in_flight, &quiet).await);
        in_flight.untrack(ticket);
        // Capsule 1, idle now, waits for capsule 0 to look again.
        let now = in_flight.changes();
        let waiting = drain.idle(1, now, &in_flight, &quiet);
        let (one, zero) = tokio::join!(waiting, async {
            tokio::task::yield_now().await;
            drain.idle(0, now, &in_flight, &quiet).await
        });
        assert!(one && zero);
    }

    #[tokio::test]
    async fn once_done_the_drain_stays_done_for_every_capsule() {
        let in_flight = InFlight::default();
        let drain = Drain::new(2);
        let quiet = CancellationToken::new();
        let now = in_flight.changes();
        // Capsule 1 reports and waits for capsule 0.
        let mut one = std::pin::pin!(drain.idle(1, now, &in_flight, &quiet));
        let waiting = tokio::time::timeout(std::time::Duration::ZERO, one.as_mut()).await;
        assert!(waiting.is_err(), "capsule 1 waits for capsule 0");
        // Capsule 0 reports the same count, sees every report equal to it, and stops.
        assert!(drain.idle(0, now, &in_flight, &quiet).await);
        // Then the count moves before capsule 1 looks again (the acker settling a job that
        // had finished): capsule 0 reports no more, so capsule 1 must stop too.
        let ticket = in_flight.track(Fetched::new("default", "{}"));
        in_flight.untrack(ticket);
        assert!(one.await, "capsule 1 stops as capsule 0 did");
        let later = in_flight.changes();
        assert!(drain.idle(1, later, &in_flight, &quiet).await);
    }

    #[tokio::test]
    async fn quiet_ends_the_wait() {
        let in_flight = InFlight::default();
        let drain = Drain::new(2);
        let quiet = CancellationToken::new();
        quiet.cancel();
        assert!(!drain.idle(0, in_flight.changes(), &in_flight, &quiet).await);
    }
}

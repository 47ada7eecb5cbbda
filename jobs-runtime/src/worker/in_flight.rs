//! The jobs this process holds: taken from the working list and not yet settled.
//!
//! Shutdown hands back the unfinished ones, the heartbeat lists the running ones in the
//! process's work hash, and the fetcher's sweep skips every held one, finished or not (a
//! finished job stays held until its batched acknowledgement lands).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::unit::Fetched;

/// The jobs held, each under a ticket.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    /// Every held job by its ticket.
    jobs: Mutex<HashMap<u64, Held>>,
    /// The next ticket; tickets also name a job's "thread" in the work hash (Sidekiq's `tid`).
    next_ticket: AtomicU64,
}

/// A job this process took and has not settled yet.
#[derive(Debug)]
struct Held {
    /// The job, as taken.
    job: Fetched,
    /// When it started, in epoch seconds.
    since: i64,
    /// It finished and waits for its batched acknowledgement: no longer running, still held.
    finished: bool,
}

/// A running job, as the heartbeat's work hash shows it.
#[derive(Debug, Clone)]
pub(crate) struct RunningJob {
    /// A thread-like id: its ticket in base 36, as Sidekiq writes `tid`.
    pub(crate) tid: String,
    /// The job, as taken.
    pub(crate) job: Fetched,
    /// When it started, in epoch seconds.
    pub(crate) since: i64,
}

impl InFlight {
    /// Notes a job as running; returns its ticket.
    pub(crate) fn track(&self, job: Fetched) -> u64 {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let since = chrono::Utc::now().timestamp();
        let held = Held {
            job,
            since,
            finished: false,
        };
        self.jobs().insert(ticket, held);
        ticket
    }

    /// Notes a job as finished, waiting for its acknowledgement: no longer running, still held.
    pub(crate) fn finished(&self, ticket: u64) {
        if let Some(held) = self.jobs().get_mut(&ticket) {
            held.finished = true;
        }
    }

    /// Notes a job as settled: no longer held.
    pub(crate) fn untrack(&self, ticket: u64) {
        self.jobs().remove(&ticket);
    }

    /// How many jobs are held, running or finished, for each JSON.
    pub(crate) fn held(&self) -> HashMap<Vec<u8>, usize> {
        let mut held = HashMap::new();
        for entry in self.jobs().values() {
            *held.entry(entry.job.json.clone()).or_insert(0) += 1;
        }
        held
    }

    /// The leases the held jobs hold (members), running or finished: no sweep gives them to
    /// another job.
    pub(crate) fn leases(&self) -> std::collections::HashSet<String> {
        self.jobs()
            .values()
            .filter_map(|held| held.job.lease.as_ref())
            .map(|lease| lease.member.clone())
            .collect()
    }

    /// The jobs still running (not the finished ones waiting for their acknowledgement).
    pub(crate) fn running(&self) -> Vec<RunningJob> {
        self.jobs()
            .iter()
            .filter(|(_, held)| !held.finished)
            .map(|(ticket, held)| RunningJob {
                tid: base36(*ticket),
                job: held.job.clone(),
                since: held.since,
            })
            .collect()
    }

    fn jobs(&self) -> MutexGuard<'_, HashMap<u64, Held>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `n` in base 36, as Sidekiq writes thread ids.
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{InFlight, base36};
    use crate::worker::unit::Fetched;

    fn job(json: &str) -> Fetched {
        Fetched::new("default", json)
    }

    #[test]
    fn finished_jobs_are_held_but_not_running() {
        let in_flight = InFlight::default();
        let first = in_flight.track(job("a"));
        let second = in_flight.track(job("a"));
        in_flight.finished(first);
        assert_eq!(in_flight.held()[&b"a"[..]], 2);
        let running = in_flight.running();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].tid, base36(second));
        in_flight.untrack(first);
        in_flight.untrack(second);
        assert!(in_flight.held().is_empty());
    }

    #[test]
    fn thread_ids_are_base_36() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
    }
}

//! The jobs this process holds: moved into the working list and not yet settled.
//!
//! Shutdown hands back the unfinished ones, the heartbeat lists the running ones in the
//! process's work hash, and every capsule's sweep skips every held one: running, finished (a
//! finished job stays held until its batched acknowledgement lands), or taken and not started
//! yet by any capsule's fetcher ([`Taken`]), so that no capsule takes up another's pending job,
//! even one whose JSON names one of its queues.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::unit::Fetched;

/// The jobs held, each under a ticket.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    /// Every held job by its ticket (foldhash, cheaper than SipHash: three look-ups a job;
    /// tickets are ours, not an attacker's).
    jobs: Mutex<foldhash::HashMap<u64, Held>>,
    /// The next ticket; tickets also name a job's "thread" in the work hash (Sidekiq's `tid`).
    next_ticket: AtomicU64,
    /// How many times a job started, finished or was settled: `Worker::drain` knows from it
    /// whether any job ran (and so may have pushed more) while a capsule looked at its queues.
    changes: AtomicU64,
}

/// A job this process took and has not settled yet.
#[derive(Debug)]
struct Held {
    /// The job, as taken.
    job: Fetched,
    /// When it started, in epoch seconds (when it was taken, while pending).
    since: i64,
    /// Where it is in its life.
    state: State,
}

/// Where a held job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Taken by a capsule's fetcher (taken ahead, brought by a `BLMOVE`, found by a sweep) and
    /// not started yet.
    Pending,
    /// Running.
    Running,
    /// It finished and waits for its batched acknowledgement: no longer running, still held.
    Finished,
}

/// A job a capsule's fetcher took and has not started: held in [`InFlight`] as pending while
/// this lives, so that no other capsule's sweep takes it up. Dropped, it is no longer held
/// (handed back, forgotten, or left to shutdown); [`InFlight::start`] makes it a running job.
#[derive(Debug)]
pub(crate) struct Taken {
    /// Its ticket in [`InFlight`].
    ticket: u64,
    /// The job.
    job: Fetched,
    /// Where it is held.
    in_flight: Arc<InFlight>,
    /// Still held as pending (false once started or let go).
    held: bool,
}

impl Taken {
    /// Lets the job go: no longer held as pending (it was handed back, or shutdown hands it
    /// back); the job.
    pub(crate) fn release(mut self) -> Fetched {
        self.let_go();
        std::mem::take(&mut self.job)
    }

    /// Sets the lease the job holds, here and in [`InFlight`]'s copy (which
    /// [`InFlight::leases`] reads).
    pub(crate) fn set_lease(&mut self, lease: Option<crate::cap::Lease>) {
        if self.held
            && let Some(held) = self.in_flight.jobs().get_mut(&self.ticket)
        {
            held.job.lease = lease.clone();
        }
        self.job.lease = lease;
    }

    fn let_go(&mut self) {
        if std::mem::replace(&mut self.held, false) {
            self.in_flight.jobs().remove(&self.ticket);
        }
    }
}

impl std::ops::Deref for Taken {
    type Target = Fetched;

    fn deref(&self) -> &Fetched {
        &self.job
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.let_go();
    }
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
    #[cfg(test)]
    pub(crate) fn track(&self, job: Fetched) -> u64 {
        let ticket = self.hold(job, State::Running);
        self.changes.fetch_add(1, Ordering::SeqCst);
        ticket
    }

    /// Notes a job a fetcher took as pending, until the [`Taken`] is started or dropped.
    pub(crate) fn take(self: &Arc<Self>, job: Fetched) -> Taken {
        let ticket = self.hold(job.clone(), State::Pending);
        Taken {
            ticket,
            job,
            in_flight: Arc::clone(self),
            held: true,
        }
    }

    /// Notes a pending job as running, in one step (no sweep sees it unheld in between);
    /// returns its ticket and the job.
    pub(crate) fn start(&self, mut taken: Taken) -> (u64, Fetched) {
        let ticket = taken.ticket;
        let since = crate::timestamp::epoch_seconds();
        {
            let mut jobs = self.jobs();
            match jobs.get_mut(&ticket) {
                Some(held) if taken.held => {
                    held.state = State::Running;
                    held.since = since;
                }
                // Let go of already: held anew.
                _ => {
                    let held = Held {
                        job: taken.job.clone(),
                        since,
                        state: State::Running,
                    };
                    jobs.insert(ticket, held);
                }
            }
        }
        taken.held = false;
        self.changes.fetch_add(1, Ordering::SeqCst);
        (ticket, std::mem::take(&mut taken.job))
    }

    fn hold(&self, job: Fetched, state: State) -> u64 {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let since = crate::timestamp::epoch_seconds();
        self.jobs().insert(ticket, Held { job, since, state });
        ticket
    }

    /// Notes a job as finished, waiting for its acknowledgement: no longer running, still held.
    pub(crate) fn finished(&self, ticket: u64) {
        if let Some(held) = self.jobs().get_mut(&ticket) {
            held.state = State::Finished;
        }
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// Notes a job as settled: no longer held.
    pub(crate) fn untrack(&self, ticket: u64) {
        self.jobs().remove(&ticket);
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// A count that moves whenever a job starts, finishes or is settled.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// How many jobs are held, for each JSON: running, finished, or taken and pending in a
    /// capsule's fetcher.
    pub(crate) fn held(&self) -> HashMap<bytes::Bytes, usize> {
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
            .filter(|(_, held)| held.state == State::Running)
            .map(|(ticket, held)| RunningJob {
                tid: base36(*ticket),
                job: held.job.clone(),
                since: held.since,
            })
            .collect()
    }

    fn jobs(&self) -> MutexGuard<'_, foldhash::HashMap<u64, Held>> {
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
    use std::sync::Arc;

    use super::{InFlight, base36};
    use crate::worker::unit::Fetched;

    fn job(json: &str) -> Fetched {
        Fetched::new("default", json.to_owned())
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
    fn a_taken_job_is_held_until_started_or_let_go() {
        let in_flight = Arc::new(InFlight::default());
        let changes = in_flight.changes();
        let taken = in_flight.take(job("a"));
        let other = in_flight.take(job("b"));
        assert_eq!(in_flight.held().len(), 2, "pending jobs are held");
        assert!(in_flight.running().is_empty(), "not running");
        assert_eq!(in_flight.changes(), changes, "taking is no job change");
        let (ticket, started) = in_flight.start(taken);
        assert_eq!(started, job("a"));
        assert_eq!(in_flight.running().len(), 1);
        assert_eq!(other.release(), job("b"));
        assert_eq!(in_flight.held().len(), 1, "let go");
        drop(in_flight.take(job("c")));
        assert_eq!(in_flight.held().len(), 1, "dropped, let go");
        in_flight.untrack(ticket);
        assert!(in_flight.held().is_empty());
    }

    #[test]
    fn thread_ids_are_base_36() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
    }
}

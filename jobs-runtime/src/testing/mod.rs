//! Testing jobs without Redis, as `Sidekiq::Testing` does: record pushes ([`fake`]) or run
//! them at once ([`inline`]).
//!
//! Each mode is on from the call until the returned guard is dropped, for the thread that made
//! it, so tests running in parallel never see each other's jobs. Every push is handled as for
//! Redis first (client middleware, checks, jid, `created_at`, `enqueued_at` unless scheduled,
//! the JSON round trip), then recorded or run instead of written.
//!
//! ```
//! use jobs_runtime::{Client, Payload, testing};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), jobs_runtime::Error> {
//! let fake = testing::fake();
//! let client = Client::from_env()?; // never connects while the fake is on
//! let jid = client.push(Payload::new("HardJob", vec!["bob".into()])).await?;
//!
//! let recorded = fake.queue("default");
//! assert_eq!(recorded[0].jid(), &jid);
//! assert!(recorded[0].payload().enqueued_at.is_some());
//! assert_eq!(fake.queue_sizes()["default"], 1);
//! # Ok(()) }
//! ```
//!
//! The README's "Testing your jobs" shows both modes with `#[job]` types: typed access
//! ([`Fake::jobs`]), assertions, running recorded jobs ([`Fake::drain`], with `#[state]` values
//! from [`Fake::state`]) and the fake clock for scheduled jobs ([`Fake::advance`]).
//!
//! # Which code sees the mode
//!
//! The guard turns the mode on for its thread. That covers:
//!
//! - the body of a `#[tokio::test]`, in either flavour: the test's future runs on the test's
//!   own thread (`block_on`);
//! - every task a current-thread runtime runs, spawned ones included: they all run on that
//!   thread. This is `#[tokio::test]`'s default, so an axum app served from a spawned task in
//!   the test is covered too.
//!
//! In a multi-thread runtime, tasks spawned onto its worker threads do not see the thread's
//! mode, and their pushes would go to Redis. Wrap such a task in the mode's `scope`
//! (`tokio::spawn(fake.scope(task))`): a tokio task-local that follows the future to whichever
//! thread polls it. A scope wins over the thread's mode.
//!
//! The guards are neither `Send` nor `Sync`, so each is dropped on the thread it was made on;
//! the newest live guard's mode is the one on, and dropping a guard, in any order, removes only
//! its own. A job a fake runs pushes into that fake, whatever mode is newest.
//!
//! # Running jobs
//!
//! Jobs run as a worker runs them: the class is looked up among the jobs linked into the test
//! binary (so, as for a worker, two jobs must not share a wire name), the arguments decoded, the
//! job run through the given server middleware with its timeout, a panic caught. A failure is
//! [`Error::Failed`], carrying the job's error; retries do not apply.
//!
//! # Limiters in tests
//!
//! While a mode is on, [`Limiter`](crate::Limiter)s live in memory, one set per mode, with the
//! same rules as in Redis (on the fake clock in fake mode). [`Fake::force_over_limit`] (and
//! [`Inline::force_over_limit`]) makes every call of one limiter over its limit, to check how a
//! job reacts: run by [`Fake::drain`], it fails with an error whose
//! [`is_over_limit`](crate::Error::is_over_limit) is `true` (a worker would reschedule it).
//!
//! Global caps, on queues (`Worker::cap_queue`) and on job classes (`#[job(concurrency = n)]`,
//! `Worker::cap_class`), do nothing in either mode: [`Fake::drain`] runs every job as if nothing
//! were capped (see `docs/limits.md`, "Global caps").
//!
//! # Periodic jobs in tests
//!
//! A fake follows the periodic entries a worker of the test binary would: every
//! `#[job(cron = "…")]` job linked into it, and the entries the test gives
//! ([`Fake::periodic_entries`], [`Fake::periodic_entry`]; hand it the app's own with
//! [`Worker::periodic_entries`](crate::Worker::periodic_entries)). Advancing the fake clock
//! ([`Fake::advance`], [`Fake::advance_to`]) across their ticks pushes one job per tick, oldest
//! first, as a worker would push it at that tick (client middleware included), carrying
//! `jobs_periodic` and `jobs_tick` ([`EnqueuedJob::tick`]). [`Fake::set_now`] puts the clock
//! where the test starts without running the schedule. So "the nightly job is queued at 03:00
//! Berlin time" needs no sleeping:
//!
//! ```
//! use jobs_runtime::chrono::{TimeZone, Utc};
//! use jobs_runtime::periodic::{Periodic, Tz};
//! use jobs_runtime::{Worker, testing};
//!
//! let berlin = |hour| {
//!     Tz::Europe__Berlin
//!         .with_ymd_and_hms(2026, 11, 22, hour, 0, 0)
//!         .unwrap()
//!         .with_timezone(&Utc)
//! };
//! // The app's worker, as its `main` builds it.
//! let worker = Worker::new().periodic_entry(
//!     Periodic::class("nightly_report", "0 3 * * *", "NightlyReport", vec![])
//!         .timezone("Europe/Berlin"),
//! );
//!
//! let fake = testing::fake().periodic_entries(worker.periodic_entries());
//! fake.set_now(berlin(2)); // 02:00 in Berlin: nothing pushed
//! fake.advance_to(berlin(4)); // runs the schedule up to 04:00
//!
//! let [job] = fake.queue("default").try_into().unwrap();
//! assert_eq!(job.class(), "NightlyReport");
//! assert_eq!(job.periodic_entry(), Some("nightly_report"));
//! assert_eq!(job.tick(), Some(berlin(3)));
//! ```
//!
//! Unlike a worker, the fake has no catch-up rule ([`CatchUp`](crate::periodic::CatchUp)):
//! it is one process that was never down, so every tick the clock passes is pushed. It refuses
//! to push more than 10,000 ticks of one entry in one move of the clock (a day of an entry that
//! runs every second): advance in smaller steps, or jump with [`Fake::set_now`]. Jumps of the
//! clock ([`Fake::set_now`], [`Fake::drain_all`]'s) do not run the schedule. The pushes happen
//! within `advance`, which does not wait: a client middleware that waits on I/O or a timer
//! fails the test (push through a client without it, [`Fake::periodic_client`]).

pub(crate) mod batches;
mod enqueued;
mod fake;
mod inline;
mod locks;
mod periodic;
mod runner;
mod scope;

pub use enqueued::EnqueuedJob;
pub use fake::Fake;
pub use inline::Inline;

use std::sync::Arc;

use crate::client::Pushed;
use crate::error::Error;
use crate::payload::Payload;
use crate::timestamp::Timestamp;
use crate::unique::Request;
use fake::FakeShared;
use runner::Settings;

/// Turns fake mode on for this thread until the returned [`Fake`] is dropped: pushes are
/// recorded there, not written to Redis.
pub fn fake() -> Fake {
    Fake::install()
}

/// Turns inline mode on for this thread until the returned [`Inline`] is dropped: each push
/// runs its job at once, in-process, and returns when it is done.
pub fn inline() -> Inline {
    Inline::install()
}

/// A testing mode that is on: what the slots of `scope.rs` hold, and what [`deliver`] hands a
/// push to.
#[derive(Clone)]
pub(crate) enum Active {
    /// Pushes are recorded.
    Fake(Arc<FakeShared>),
    /// Pushes run at once.
    Inline(Arc<Settings>),
}

/// The testing mode on for the code running now, if any: pushes then go to [`deliver`] instead
/// of Redis.
pub(crate) fn active() -> Option<Active> {
    scope::active()
}

/// The limiters of the testing mode on for the code running now, if any: limiters then live in
/// memory instead of Redis.
pub(crate) fn limits() -> Option<Arc<crate::limit::MemoryLimits>> {
    match scope::active()? {
        Active::Fake(shared) => Some(Arc::clone(shared.settings().limits())),
        Active::Inline(settings) => Some(Arc::clone(settings.limits())),
    }
}

/// The time pushes count from: the fake clock while fake mode is on, else the real time.
pub(crate) fn now() -> Timestamp {
    match scope::active() {
        Some(Active::Fake(shared)) => shared.now(),
        _ => Timestamp::now(),
    }
}

/// Hands a prepared job (its JSON, when it is due if scheduled, and the unique lock it takes)
/// to `mode`: recorded in fake mode, run in inline mode; a unique job whose lock another job of
/// the mode holds is refused as a duplicate (a fake records it as refused).
pub(crate) async fn deliver(
    mode: &Active,
    json: &str,
    at: Option<Timestamp>,
    lock: Option<&Request>,
) -> Result<Pushed, Error> {
    let payload = Payload::from_json(json).map_err(|error| Error::Encode {
        class: "a job".to_owned(),
        reason: error.to_string(),
    })?;
    match mode {
        Active::Fake(shared) => Ok(shared.record(EnqueuedJob { payload, at }, lock)),
        Active::Inline(settings) => {
            let locks = settings.locks();
            if let Some(lock) = lock {
                match locks.take(lock, &payload.jid, Timestamp::now()) {
                    locks::Taken::Now => {}
                    locks::Taken::Already => return Ok(Pushed::Queued(payload.jid)),
                    locks::Taken::By(holder) => return Ok(Pushed::Duplicate(holder)),
                }
            }
            locks.release_at_start(&payload);
            let ran = settings.runner().run(&payload).await;
            locks.release(&payload);
            ran.map(|()| Pushed::Queued(payload.jid))
        }
    }
}

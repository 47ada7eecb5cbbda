//! Fake mode: pushes are recorded in memory, for a test to inspect and run.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::Active;
use super::batches::{self, FakeBatches, Outcome};
use super::enqueued::EnqueuedJob;
use super::locks::Taken;
use super::periodic::{self, Entries};
use super::runner::Settings;
use super::scope::{self, ThreadGuard};
use crate::batch::{BatchStatus, Bid};
use crate::client::{Client, Pushed};
use crate::error::Error;
use crate::jid::Jid;
use crate::job::Job;
use crate::job_error::RetryOverride;
use crate::options::Retry;
use crate::periodic::{Entry, Periodic, Tz};
use crate::timestamp::Timestamp;
use crate::unique::Request;
use crate::worker::ServerMiddleware;

/// Fake mode, on until this is dropped: every push on this thread (and inside
/// [`scope`](Fake::scope)) is recorded here instead of written to Redis. Made by
/// [`testing::fake`](super::fake()); the [module docs](super) show it at work.
///
/// Recorded jobs run, when the test says so, exactly as a worker runs them ([`drain`],
/// [`perform_one`]); the jobs they push are recorded too. Scheduled jobs wait for the fake
/// clock ([`advance`]), or for [`drain_all`]. Advancing the clock across the ticks of periodic
/// entries (every `#[job(cron)]` job of the binary, and those given with [`periodic_entries`])
/// pushes their jobs: the [module docs](super#periodic-jobs-in-tests) show it.
///
/// [`drain`]: Fake::drain
/// [`perform_one`]: Fake::perform_one
/// [`advance`]: Fake::advance
/// [`drain_all`]: Fake::drain_all
/// [`periodic_entries`]: Fake::periodic_entries
#[must_use = "fake mode ends when this is dropped"]
pub struct Fake {
    shared: Arc<FakeShared>,
    _guard: ThreadGuard,
}

/// The recorded jobs and the fake clock, shared by the handle and the pushes.
pub(crate) struct FakeShared {
    store: Mutex<Store>,
    settings: Settings,
    /// The periodic entries, locked apart from the store: their jobs are pushed into it.
    periodic: Mutex<Entries>,
    /// The batches pushed in this fake, locked apart from the store: their callbacks are
    /// recorded into it.
    batches: Mutex<FakeBatches>,
}

struct Store {
    /// In push order.
    jobs: Vec<EnqueuedJob>,
    /// Pushes of unique jobs refused as duplicates, in push order.
    refused: Vec<EnqueuedJob>,
    /// How far the fake clock is ahead of the real one (behind it, when negative).
    ahead: TimeDelta,
    /// The time on the fake clock the periodic schedule has run up to: the next move of the
    /// clock pushes the ticks after it.
    schedule_ran_to: DateTime<Utc>,
}

impl FakeShared {
    /// Records a pushed job, taking the unique lock it asks for; a duplicate is recorded as
    /// refused instead.
    pub(crate) fn record(&self, job: EnqueuedJob, lock: Option<&Request>) -> Pushed {
        let now = self.now();
        let jid = job.payload.jid.clone();
        if let Some(lock) = lock {
            match self.settings.locks().take(lock, &jid, now) {
                Taken::Now => {}
                // Sent twice: recorded once, as Redis pushes it once.
                Taken::Already => return Pushed::Queued(jid),
                Taken::By(holder) => {
                    self.store().refused.push(job);
                    return Pushed::Duplicate(holder);
                }
            }
        }
        self.store().jobs.push(job);
        Pushed::Queued(jid)
    }

    /// The jobs' state, middleware, unique locks and limiters.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The fake clock's time.
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from(clock(self.store().ahead))
    }

    /// Sets the fake clock to `time`; `schedule_ran_to` moves there too when `reset_schedule`.
    fn set_now(&self, time: DateTime<Utc>, reset_schedule: bool) {
        let mut store = self.store();
        store.ahead = time.signed_duration_since(Utc::now());
        if reset_schedule {
            store.schedule_ran_to = time;
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The batches pushed in this fake.
    pub(crate) fn batches(&self) -> MutexGuard<'_, FakeBatches> {
        self.batches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn periodic(&self) -> MutexGuard<'_, Entries> {
        self.periodic.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fake clock's time when it is `ahead` of the real one. A clock moved past either end of
/// time stays there rather than overflowing.
fn clock(ahead: TimeDelta) -> DateTime<Utc> {
    Utc::now()
        .checked_add_signed(ahead)
        .unwrap_or(if ahead < TimeDelta::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

impl Fake {
    /// Turns fake mode on for this thread.
    pub(super) fn install() -> Self {
        let shared = Arc::new(FakeShared {
            store: Mutex::new(Store {
                jobs: Vec::new(),
                refused: Vec::new(),
                ahead: TimeDelta::zero(),
                schedule_ran_to: Utc::now(),
            }),
            settings: Settings::default(),
            periodic: Mutex::new(Entries::default()),
            batches: Mutex::new(FakeBatches::default()),
        });
        Self {
            _guard: ThreadGuard::install(Active::Fake(Arc::clone(&shared))),
            shared,
        }
    }

    /// Gives the jobs this fake runs a `#[state]` value, as `Worker::state` does.
    pub fn state<T: Clone + Send + Sync + 'static>(self, value: T) -> Self {
        self.shared
            .settings
            .update(|runner| runner.state.insert(value));
        self
    }

    /// Runs the jobs this fake runs through a server middleware, as `Worker::middleware` does.
    pub fn middleware(self, middleware: impl ServerMiddleware) -> Self {
        self.shared
            .settings
            .update(|runner| runner.middleware.push(Arc::new(middleware)));
        self
    }

    /// Adds periodic entries, as [`Worker::periodic_entry`](crate::Worker::periodic_entry) does
    /// each: advancing the fake clock across their ticks pushes their jobs. The entries of every
    /// `#[job(cron)]` job linked into the test binary are there already. To test the app's own
    /// schedule, hand over its worker's:
    /// `testing::fake().periodic_entries(app::worker().periodic_entries())` (and its config
    /// file's, `worker.config().periodic`, each made a [`Periodic`] by
    /// [`FileEntry::to_periodic`](crate::periodic::FileEntry::to_periodic)).
    ///
    /// # Panics
    ///
    /// When an entry is bad (its name, expression, zone or job) or two entries share a name,
    /// with the error the worker would stop with at start.
    #[track_caller]
    pub fn periodic_entries(self, entries: &[Periodic]) -> Self {
        if let Err(error) = self.shared.periodic().add(entries.iter().cloned()) {
            panic!("a fake cannot follow these periodic entries: {error}");
        }
        self
    }

    /// Adds one periodic entry: see [`periodic_entries`](Fake::periodic_entries).
    ///
    /// # Panics
    ///
    /// When the entry is bad or its name is taken, as [`periodic_entries`](Fake::periodic_entries).
    #[track_caller]
    pub fn periodic_entry(self, entry: Periodic) -> Self {
        self.periodic_entries(std::slice::from_ref(&entry))
    }

    /// Pushes the periodic jobs through `client`, whose client middleware then sees them, as a
    /// worker given [`Worker::client`](crate::Worker::client) pushes them. By default they go
    /// through the default client, as `perform_async` pushes. Other pushes are unchanged.
    pub fn periodic_client(self, client: &Client) -> Self {
        self.shared.periodic().set_client(client.clone());
        self
    }

    /// Makes every call of the limiter `name` over its limit (while this fake is on, until
    /// [`lift_over_limit`](Fake::lift_over_limit)): `within_limit` returns
    /// [`Error::OverLimit`] at once, without running its work, so a test sees how a job
    /// reacts.
    pub fn force_over_limit(&self, name: &str) -> &Self {
        self.shared.settings.limits().force(name);
        self
    }

    /// Ends [`force_over_limit`](Fake::force_over_limit) for `name`.
    pub fn lift_over_limit(&self, name: &str) -> &Self {
        self.shared.settings.limits().lift(name);
        self
    }

    /// Keeps fake mode on for `future` wherever it runs: needed only when pushes happen on
    /// another thread than the one that made this fake, as in a multi-thread runtime's
    /// spawned tasks (spawn `fake.scope(task)` rather than `task`).
    pub fn scope<F: Future>(&self, future: F) -> impl Future<Output = F::Output> + use<F> {
        scope::scope(Active::Fake(Arc::clone(&self.shared)), future)
    }

    /// Every job recorded and not yet run, in push order.
    pub fn enqueued(&self) -> Vec<EnqueuedJob> {
        self.shared.store().jobs.clone()
    }

    /// The recorded jobs of type `J`, in push order.
    pub fn enqueued_of<J: Job>(&self) -> Vec<EnqueuedJob> {
        self.filtered(EnqueuedJob::is::<J>)
    }

    /// The recorded calls of job type `J`, decoded from their JSON: what a worker would run.
    ///
    /// # Panics
    ///
    /// When a recorded job of that name does not decode as `J` (a `Payload` pushed by hand).
    pub fn jobs<J: Job>(&self) -> Vec<J> {
        self.enqueued_of::<J>()
            .iter()
            .map(|job| match job.decode::<J>() {
                Ok(call) => call,
                Err(error) => panic!(
                    "the recorded {} job {} does not decode: {error}",
                    J::NAME,
                    job.jid()
                ),
            })
            .collect()
    }

    /// The recorded jobs pushed to `queue`, scheduled ones included, in push order.
    pub fn queue(&self, queue: &str) -> Vec<EnqueuedJob> {
        self.filtered(|job| job.queue() == queue)
    }

    /// How many recorded jobs each queue has.
    pub fn queue_sizes(&self) -> BTreeMap<String, usize> {
        let mut sizes = BTreeMap::new();
        for job in &self.shared.store().jobs {
            *sizes.entry(job.queue().to_owned()).or_insert(0) += 1;
        }
        sizes
    }

    /// The recorded jobs not yet due on the fake clock.
    pub fn scheduled(&self) -> Vec<EnqueuedJob> {
        let now = self.shared.now();
        self.filtered(|job| !job.is_due(now))
    }

    /// How many jobs are recorded.
    pub fn len(&self) -> usize {
        self.shared.store().jobs.len()
    }

    /// Whether no job is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pushes of unique jobs refused as duplicates (their lock held by a recorded job, or
    /// one running), in push order: each as it would have been pushed, with the jid it would
    /// have had.
    pub fn refused(&self) -> Vec<EnqueuedJob> {
        self.shared.store().refused.clone()
    }

    /// Forgets every recorded job (releasing their unique locks), and the refused pushes.
    pub fn clear(&self) {
        let mut store = self.shared.store();
        for job in store.jobs.drain(..) {
            self.shared.settings.locks().release(&job.payload);
        }
        store.refused.clear();
    }

    /// Forgets the recorded jobs of type `J`, releasing their unique locks.
    pub fn clear_jobs<J: Job>(&self) {
        let mut store = self.shared.store();
        let locks = self.shared.settings.locks();
        store.jobs.retain(|job| {
            let keep = !job.is::<J>();
            if !keep {
                locks.release(&job.payload);
            }
            keep
        });
    }

    /// The fake clock: the real time plus however far [`advance`](Fake::advance) moved it (or
    /// wherever [`set_now`](Fake::set_now) put it), running on at the real clock's pace.
    /// `perform_in` counts from it, and it decides which jobs are due.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.now().to_datetime()
    }

    /// Puts the fake clock at `time`, earlier or later, without running the periodic schedule:
    /// where a test starts ("it is 02:00 in Berlin"). The next [`advance`](Fake::advance)
    /// pushes the ticks after `time`. Scheduled jobs are due or not by the new time.
    pub fn set_now(&self, time: DateTime<Utc>) {
        self.shared.set_now(time, true);
    }

    /// Moves the fake clock forward by `by`: jobs scheduled within it become due, and each tick
    /// of a periodic entry it spans pushes that tick's job.
    ///
    /// Periodic entries are those of the `#[job(cron)]` jobs linked into the test binary and
    /// those given with [`periodic_entries`](Fake::periodic_entries). Every tick since the
    /// schedule last ran (the fake's start, the last `advance` or `advance_to`, or
    /// [`set_now`](Fake::set_now)) up to the new time is pushed, oldest first, one job per
    /// tick; disabled entries push nothing. There is no catch-up rule: the fake is one process
    /// that was never down. Each job is pushed with the clock at its tick, through the client
    /// path as `perform_async` pushes (client middleware, `created_at`, `enqueued_at`, the JSON
    /// round trip), so it is recorded as a worker would push it, carrying `jobs_periodic` and
    /// `jobs_tick` ([`EnqueuedJob::tick`](super::EnqueuedJob::tick)).
    ///
    /// # Panics
    ///
    /// When an entry spans more than 10,000 ticks (a day of an entry that runs every second:
    /// advance in smaller steps, or jump with [`set_now`](Fake::set_now)), when an entry is bad
    /// or its job cannot be pushed (the error says which and why), and when a client middleware
    /// waits on I/O or a timer: the pushes happen within this call, with no runtime to wait on
    /// (give the fake a client without it, [`periodic_client`](Fake::periodic_client)). A
    /// middleware that stops a job leaves its tick unpushed, as in a worker.
    #[track_caller]
    pub fn advance(&self, by: Duration) {
        let by = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        let ahead = self.shared.store().ahead;
        self.move_clock(ahead.checked_add(&by).unwrap_or(TimeDelta::MAX));
    }

    /// Moves the fake clock forward to `time`, as [`advance`](Fake::advance) does: runs the
    /// periodic schedule up to `time`. A `time` not after the fake clock's leaves the clock
    /// where it is (and pushes the ticks due up to now).
    ///
    /// # Panics
    ///
    /// As [`advance`](Fake::advance).
    #[track_caller]
    pub fn advance_to(&self, time: DateTime<Utc>) {
        let ahead = self.shared.store().ahead;
        self.move_clock(time.signed_duration_since(Utc::now()).max(ahead));
    }

    /// Runs the oldest due job, as a worker would; returns its jid, or `None` when no job is
    /// due. The job leaves the record before it runs, whatever its outcome.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] when the job returns an error or panics (an unknown class, arguments
    /// that do not decode or a missing `#[state]` fail the same way).
    pub async fn perform_one(&self) -> Result<Option<Jid>, Error> {
        self.perform_next(|_| true).await
    }

    /// Runs due jobs, oldest first, until none is left, including the jobs they push; returns
    /// how many ran. Scheduled jobs stay until the fake clock reaches them (Sidekiq's
    /// `drain_all` runs them too: that is [`drain_all`](Fake::drain_all) here).
    ///
    /// # Errors
    ///
    /// The first failure, as [`perform_one`](Fake::perform_one); the jobs after it stay.
    pub async fn drain(&self) -> Result<usize, Error> {
        let mut ran = 0;
        while self.perform_next(|_| true).await?.is_some() {
            ran += 1;
        }
        Ok(ran)
    }

    /// Runs the due jobs of type `J` until none is left, including those they push; other jobs
    /// stay. Sidekiq's `MyJob.drain`.
    ///
    /// # Errors
    ///
    /// The first failure, as [`perform_one`](Fake::perform_one).
    pub async fn drain_jobs<J: Job>(&self) -> Result<usize, Error> {
        let mut ran = 0;
        while self.perform_next(EnqueuedJob::is::<J>).await?.is_some() {
            ran += 1;
        }
        Ok(ran)
    }

    /// Runs every job, scheduled ones too: whenever nothing is due, the fake clock jumps to the
    /// next scheduled job. Returns how many ran. A job that always schedules another never
    /// lets this end. The jumps do not run the periodic schedule: the ticks jumped over push
    /// nothing ([`advance`](Fake::advance) pushes them).
    ///
    /// # Errors
    ///
    /// The first failure, as [`perform_one`](Fake::perform_one).
    pub async fn drain_all(&self) -> Result<usize, Error> {
        let mut ran = self.drain().await?;
        while let Some(next) = self.next_scheduled() {
            if next > self.shared.now() {
                self.shared.set_now(next.to_datetime(), true);
            }
            ran += self.drain().await?;
        }
        Ok(ran)
    }

    /// The batch `bid` pushed in this fake, as [`Batch::status`](crate::Batch::status) reads
    /// one from Redis: its counts, failures and when its callbacks fired (on the fake clock).
    /// `None` when no batch with this id was pushed in this fake.
    pub fn batch(&self, bid: &Bid) -> Option<BatchStatus> {
        let batches = self.shared.batches();
        Some(batches.get(bid.as_str())?.status(bid))
    }

    /// Fails the test unless a job of type `J` is recorded.
    #[track_caller]
    pub fn assert_enqueued<J: Job>(&self) {
        if self.enqueued_of::<J>().is_empty() {
            panic!(
                "expected a {} job to be enqueued, but none was; enqueued: {}",
                J::NAME,
                self.summary()
            );
        }
    }

    /// Fails the test unless a recorded job of type `J` matches `matches`, which sees the
    /// decoded call (`|job| job.date == today`).
    #[track_caller]
    pub fn assert_enqueued_with<J: Job>(&self, matches: impl Fn(&J) -> bool) {
        if !self.jobs::<J>().iter().any(matches) {
            panic!(
                "expected a {} job with the given arguments to be enqueued, but none matched; \
                 enqueued: {}",
                J::NAME,
                self.summary()
            );
        }
    }

    /// Fails the test unless exactly `count` jobs of type `J` are recorded.
    #[track_caller]
    pub fn assert_enqueued_count<J: Job>(&self, count: usize) {
        let found = self.enqueued_of::<J>().len();
        if found != count {
            panic!(
                "expected {count} {} job(s) to be enqueued, found {found}; enqueued: {}",
                J::NAME,
                self.summary()
            );
        }
    }

    /// Fails the test if a job of type `J` is recorded.
    #[track_caller]
    pub fn assert_not_enqueued<J: Job>(&self) {
        self.assert_enqueued_count::<J>(0);
    }

    /// Fails the test if any job is recorded.
    #[track_caller]
    pub fn assert_nothing_enqueued(&self) {
        if !self.is_empty() {
            panic!(
                "expected no job to be enqueued; enqueued: {}",
                self.summary()
            );
        }
    }

    /// Moves the fake clock to `ahead` of the real one, pushing the job of every periodic tick
    /// after the time the schedule ran up to, with the clock at each tick in turn.
    #[track_caller]
    fn move_clock(&self, ahead: TimeDelta) {
        let until = clock(ahead);
        let after = self.shared.store().schedule_ran_to;
        let (entries, due) = {
            let mut periodic = self.shared.periodic();
            let entries = match periodic.checked() {
                Ok(entries) => entries.to_vec(),
                Err(error) => panic!("the fake cannot follow the periodic entries: {error}"),
            };
            let due =
                periodic::due(&entries, after, until).unwrap_or_else(|error| panic!("{error}"));
            (entries, due)
        };
        if !due.is_empty() {
            let client = self
                .shared
                .periodic()
                .client()
                .unwrap_or_else(|error| panic!("the fake cannot push periodic jobs: {error}"));
            for (tick, index) in due {
                self.push_tick(&client, &entries[index], tick);
            }
        }
        let mut store = self.shared.store();
        store.ahead = ahead;
        store.schedule_ran_to = store.schedule_ran_to.max(until);
    }

    /// Pushes the job of `entry`'s `tick` through `client` into this fake, with the clock at the
    /// tick.
    #[track_caller]
    fn push_tick(&self, client: &Client, entry: &Entry, tick: DateTime<Tz>) {
        let failed = |reason: String| -> ! {
            panic!(
                "the periodic entry `{}` did not push its job for {}: {reason}",
                entry.name,
                tick.to_rfc3339()
            )
        };
        let payload = entry
            .payload_for(tick)
            .unwrap_or_else(|error| failed(error.to_string()));
        self.shared.set_now(tick.with_timezone(&Utc), false);
        // Into this fake, whichever mode is the newest on the thread.
        let push = scope::scope(Active::Fake(Arc::clone(&self.shared)), client.push(payload));
        match periodic::finish_now(push) {
            Some(Ok(_)) => {}
            // As in a worker: the tick passes, its job is not pushed.
            Some(Err(error)) if error.is_stopped() => {}
            Some(Err(error)) => failed(error.to_string()),
            None => failed(
                "a client middleware waited (on I/O or a timer), and the fake pushes periodic \
                 jobs within `advance`, with no runtime to wait on; give the fake a client \
                 without that middleware (`Fake::periodic_client`)"
                    .to_owned(),
            ),
        }
    }

    fn filtered(&self, keep: impl Fn(&EnqueuedJob) -> bool) -> Vec<EnqueuedJob> {
        let store = self.shared.store();
        store.jobs.iter().filter(|job| keep(job)).cloned().collect()
    }

    /// Takes the oldest due job that `pick` accepts out of the record, and runs it.
    async fn perform_next(
        &self,
        pick: impl Fn(&EnqueuedJob) -> bool,
    ) -> Result<Option<Jid>, Error> {
        let now = self.shared.now();
        let job = {
            let mut store = self.shared.store();
            let Some(index) = store
                .jobs
                .iter()
                .position(|job| job.is_due(now) && pick(job))
            else {
                return Ok(None);
            };
            store.jobs.remove(index)
        };
        let runner = self.shared.settings.runner();
        // What the job pushes comes back to this fake, whichever mode the thread has now and
        // wherever the job's polls happen.
        let mode = Active::Fake(Arc::clone(&self.shared));
        // Its unique lock is held while it waits and runs (until it starts, for `start`); the
        // job leaves the record whatever its outcome (a fake retries nothing), and so the lock.
        let locks = self.shared.settings.locks();
        locks.release_at_start(&job.payload);
        let ran = super::scope::scope(mode, runner.run(&job.payload)).await;
        locks.release(&job.payload);
        if let Some(bid) = batches::bid_of(&job.payload) {
            // As batch_update.lua sees it: a job that may be retried failed (the fake retries
            // nothing, so it stays pending); one without retries, killed or discarded is dead.
            let outcome = match &ran {
                Ok(()) => Outcome::Success,
                Err(error) => {
                    let (error_class, message, overridden) = match error {
                        Error::Failed { error, .. } => (
                            error.class().to_owned(),
                            error.to_string(),
                            error.retry_override(),
                        ),
                        other => (
                            crate::error_class::JOB_ERROR.to_owned(),
                            other.to_string(),
                            None,
                        ),
                    };
                    let failure = batches::Failure {
                        class: job.payload.class.clone(),
                        error_class,
                        error_message: message,
                    };
                    let dead =
                        matches!(
                            overridden,
                            Some(RetryOverride::Kill | RetryOverride::Discard)
                        ) || matches!(job.payload.retry, Some(Retry::Disabled | Retry::Times(0)));
                    if dead {
                        Outcome::Death(failure)
                    } else {
                        Outcome::Failure(failure)
                    }
                }
            };
            let now = self.shared.now().to_datetime();
            let callbacks =
                self.shared
                    .batches()
                    .settle(bid, job.payload.jid.as_str(), outcome, now);
            for callback in callbacks {
                batches::record_callback(&self.shared, &callback);
            }
        }
        ran?;
        // Let other tasks run between jobs: a drain of a job that pushes itself again never
        // ends, but it does not starve the runtime.
        tokio::task::yield_now().await;
        Ok(Some(job.payload.jid))
    }

    /// The earliest time a recorded job is scheduled for.
    fn next_scheduled(&self) -> Option<Timestamp> {
        let store = self.shared.store();
        store
            .jobs
            .iter()
            .filter_map(|job| job.at)
            .min_by(|a, b| a.as_epoch_seconds().total_cmp(&b.as_epoch_seconds()))
    }

    /// `[ScoreGeneration on default, SendEmail on mailers at …]`, for failure messages.
    fn summary(&self) -> String {
        let store = self.shared.store();
        let jobs: Vec<String> = store
            .jobs
            .iter()
            .map(|job| match job.at() {
                Some(at) => format!("{} on {} at {at}", job.job_name(), job.queue()),
                None => format!("{} on {}", job.job_name(), job.queue()),
            })
            .collect();
        format!("[{}]", jobs.join(", "))
    }
}

impl fmt::Debug for Fake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fake")
            .field("enqueued", &self.len())
            .finish_non_exhaustive()
    }
}

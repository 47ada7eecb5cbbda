//! Fake mode: pushes are recorded in memory, for a test to inspect and run.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::Active;
use super::enqueued::EnqueuedJob;
use super::runner::Settings;
use super::scope::{self, ThreadGuard};
use crate::error::Error;
use crate::jid::Jid;
use crate::job::Job;
use crate::timestamp::Timestamp;
use crate::worker::ServerMiddleware;

/// Fake mode, on until this is dropped: every push on this thread (and inside
/// [`scope`](Fake::scope)) is recorded here instead of written to Redis. Made by
/// [`testing::fake`](super::fake()); the [module docs](super) show it at work.
///
/// Recorded jobs run, when the test says so, exactly as a worker runs them ([`drain`],
/// [`perform_one`]); the jobs they push are recorded too. Scheduled jobs wait for the fake
/// clock ([`advance`]), or for [`drain_all`].
///
/// [`drain`]: Fake::drain
/// [`perform_one`]: Fake::perform_one
/// [`advance`]: Fake::advance
/// [`drain_all`]: Fake::drain_all
#[must_use = "fake mode ends when this is dropped"]
pub struct Fake {
    shared: Arc<FakeShared>,
    _guard: ThreadGuard,
}

/// The recorded jobs and the fake clock, shared by the handle and the pushes.
#[derive(Default)]
pub(crate) struct FakeShared {
    store: Mutex<Store>,
    settings: Settings,
}

#[derive(Default)]
struct Store {
    /// In push order.
    jobs: Vec<EnqueuedJob>,
    /// How far the fake clock is ahead of the real one.
    ahead: TimeDelta,
}

impl FakeShared {
    /// Records a pushed job.
    pub(crate) fn record(&self, job: EnqueuedJob) {
        self.store().jobs.push(job);
    }

    /// The fake clock's time.
    pub(crate) fn now(&self) -> Timestamp {
        // A clock advanced past the end of time stays there rather than overflowing.
        let ahead = self.store().ahead;
        Timestamp::from(
            Utc::now()
                .checked_add_signed(ahead)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Fake {
    /// Turns fake mode on for this thread.
    pub(super) fn install() -> Self {
        let shared = Arc::new(FakeShared::default());
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

    /// Forgets every recorded job.
    pub fn clear(&self) {
        self.shared.store().jobs.clear();
    }

    /// Forgets the recorded jobs of type `J`.
    pub fn clear_jobs<J: Job>(&self) {
        self.shared.store().jobs.retain(|job| !job.is::<J>());
    }

    /// The fake clock: the real time plus however far [`advance`](Fake::advance) moved it.
    /// `perform_in` counts from it, and it decides which jobs are due.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.now().to_datetime()
    }

    /// Moves the fake clock forward, so jobs scheduled within `by` become due.
    pub fn advance(&self, by: Duration) {
        let by = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        let mut store = self.shared.store();
        store.ahead = store.ahead.checked_add(&by).unwrap_or(TimeDelta::MAX);
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
    /// lets this end.
    ///
    /// # Errors
    ///
    /// The first failure, as [`perform_one`](Fake::perform_one).
    pub async fn drain_all(&self) -> Result<usize, Error> {
        let mut ran = self.drain().await?;
        while let Some(next) = self.next_scheduled() {
            let wait = next.as_epoch_seconds() - self.shared.now().as_epoch_seconds();
            if wait > 0.0 {
                self.advance(Duration::from_secs_f64(wait));
            }
            ran += self.drain().await?;
        }
        Ok(ran)
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
        super::scope::scope(mode, runner.run(&job.payload)).await?;
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
                Some(at) => format!("{} on {} at {at}", job.class(), job.queue()),
                None => format!("{} on {}", job.class(), job.queue()),
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

//! The worker: runs the jobs linked into the binary, taking them from Redis.
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> Result<(), jobs_runtime::Error> {
//!     jobs_runtime::Worker::from_cli()?.run().await
//! }
//! ```
//!
//! One fetcher takes jobs into this process's working list ([`fetch`](self) module docs) and
//! starts a task per job, at most `concurrency` at once; each job is decoded, run through the
//! server middleware with its timeout, and settled in one atomic step. A scheduler moves due
//! scheduled and retried jobs to their queues, and counters are flushed every few seconds.
//! `docs/worker.md` describes the whole life of a job.

pub(crate) mod backtrace;
mod cli;
mod config;
mod fetch;
mod hooks;
mod identity;
mod middleware;
mod order;
mod processor;
mod retry;
mod scheduler;
mod settle;
mod shutdown;
mod stats;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use config::WorkerConfig;
pub use hooks::{Exhausted, Lifecycle};
pub use middleware::{Next, ServerMiddleware};
pub use order::QueueSpec;
pub use scheduler::enqueue_due;

use crate::client::Client;
use crate::error::Error;
use crate::job_error::JobError;
use crate::payload::Payload;
use crate::redis::Connection;
use crate::redis::keys::Keys;
use crate::registry::Registry;
use crate::state::JobState;
use fetch::{Fetched, Fetcher};
use hooks::Hooks;
use middleware::DynServerMiddleware;
use order::QueueOrder;
use retry::RetryPolicy;
use scheduler::Scheduler;
use stats::Counters;

/// How often counters are flushed and `Beat` hooks run.
const BEAT: Duration = Duration::from_secs(5);

/// How long shutdown waits for cancelled jobs to stop.
const CANCEL_FOR: Duration = Duration::from_secs(3);

/// A worker process's settings, state, middleware and hooks; [`run`](Worker::run) starts it.
///
/// ```no_run
/// # use jobs_runtime::{Worker, worker::Lifecycle};
/// # #[derive(Clone)] struct Pool;
/// # async fn example(pool: Pool) -> Result<(), jobs_runtime::Error> {
/// Worker::new()
///     .queues(["critical", "default"])
///     .concurrency(10)
///     .state(pool)
///     .on(Lifecycle::Startup, || tracing::info!("ready"))
///     .run()
///     .await
/// # }
/// ```
#[must_use = "a worker does nothing until `run` is awaited"]
pub struct Worker {
    config: WorkerConfig,
    client: Option<Client>,
    registry: Option<Registry>,
    state: JobState,
    middleware: Vec<Arc<dyn DynServerMiddleware>>,
    hooks: Hooks,
}

impl Default for Worker {
    fn default() -> Self {
        Self::new()
    }
}

impl Worker {
    /// A worker with Sidekiq's defaults: concurrency 5, queue `default`, 25 s shutdown timeout,
    /// the default client (`REDIS_URL`) and every job linked into the binary.
    pub fn new() -> Self {
        Self::from_config(WorkerConfig::default())
    }

    /// A worker with these settings.
    pub fn from_config(config: WorkerConfig) -> Self {
        Self {
            config,
            client: None,
            registry: None,
            state: JobState::new(),
            middleware: Vec::new(),
            hooks: Hooks::default(),
        }
    }

    /// A worker configured like `sidekiq`: flags `-c -q -C -e -t -g -v` from the command line,
    /// over `config/jobs.yml` (or the file `-C` names). Prints help for `--help` and exits. Also
    /// sets up logging to standard output (`RUST_LOG` filters it; `-v` means debug), unless the
    /// program already has a `tracing` subscriber.
    pub fn from_cli() -> Result<Self, Error> {
        let flags = match cli::Flags::parse_from(std::env::args_os()) {
            Ok(flags) => flags,
            Err(error) if !error.use_stderr() => error.exit(),
            Err(error) => {
                return Err(Error::Cli {
                    message: error.render().to_string().trim_end().to_owned(),
                });
            }
        };
        let config = flags.into_config(|name| std::env::var(name).ok())?;
        init_logging(config.verbose);
        Ok(Self::from_config(config))
    }

    /// [`from_cli`](Self::from_cli) over given arguments (the first is the program name), without
    /// exiting or setting up logging; `--help` gives an [`Error::Cli`] holding the help text.
    pub fn from_args<I, T>(args: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let flags = cli::Flags::parse_from(args).map_err(|error| Error::Cli {
            message: error.render().to_string().trim_end().to_owned(),
        })?;
        Ok(Self::from_config(
            flags.into_config(|name| std::env::var(name).ok())?,
        ))
    }

    /// The settings.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Takes jobs through `client` (its Redis and namespace) instead of the default client.
    pub fn client(mut self, client: &Client) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// Runs at most this many jobs at once.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.config.concurrency = concurrency.max(1);
        self
    }

    /// Takes jobs from these queues in strict order (earlier queues first), replacing the list.
    pub fn queues<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.config.queues = names.into_iter().map(QueueSpec::new).collect();
        self
    }

    /// Takes jobs from these weighted queues, replacing the list.
    pub fn weighted_queues(mut self, queues: impl IntoIterator<Item = QueueSpec>) -> Self {
        self.config.queues = queues.into_iter().collect();
        self
    }

    /// How long shutdown waits for running jobs before handing them back to their queues.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// What `retry: true` means (default 25).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.config.max_retries = retries;
        self
    }

    /// Polls for due scheduled and retried jobs around this average, whatever the number of
    /// processes (default: 5 s per live process).
    pub fn poll_interval(mut self, average: Duration) -> Self {
        self.config.poll_interval_average = Some(average);
        self
    }

    /// Gives jobs a value to ask for with a `#[state]` parameter of its type.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Runs only these job types (default: every job linked into the binary).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Adds a server middleware, around every job, after those added before it.
    pub fn middleware(mut self, middleware: impl ServerMiddleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Runs `hook` at a moment of the worker's life.
    pub fn on(mut self, moment: Lifecycle, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.on(moment, hook);
        self
    }

    /// Calls `handler` for every failed run (Sidekiq's error handlers).
    pub fn on_error(
        mut self,
        handler: impl Fn(&JobError, &Payload) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_error(handler);
        self
    }

    /// Calls `handler` when a job is gone for good: buried, or dropped after `retry: false` or a
    /// discard (Sidekiq's death handlers).
    pub fn on_death(
        mut self,
        handler: impl Fn(&Payload, &JobError) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_death(handler);
        self
    }

    /// Calls `handler` when a job's retries run out, before it is buried; returning
    /// [`Exhausted::Discard`] drops it instead (Sidekiq's `sidekiq_retries_exhausted`).
    pub fn on_retries_exhausted(
        mut self,
        handler: impl Fn(&Payload, &JobError) -> Exhausted + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_exhausted(handler);
        self
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run(self) -> Result<(), Error> {
        self.run_until(shutdown::terminate()).await
    }

    /// Runs until `stop` resolves, then shuts down gracefully: stop taking jobs, wait up to the
    /// timeout for running ones, hand the rest back to the front of their queues, flush counters.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send) -> Result<(), Error> {
        self.start(Mode::UntilStopped, stop).await
    }

    /// Runs every job waiting in the queues (and any they push), then stops: for tests and
    /// one-off scripts. The scheduler does not run.
    pub async fn drain(self) -> Result<(), Error> {
        self.start(Mode::UntilIdle, std::future::pending()).await
    }

    async fn start(self, mode: Mode, stop: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let registry = match self.registry {
            Some(registry) => registry,
            None => Registry::from_inventory()?,
        };
        check_state(&registry, &self.state)?;
        if self.config.queues.is_empty() {
            return Err(Error::Config {
                origin: "the worker's settings".to_owned(),
                reason: "there are no queues to take jobs from; name at least one with -q, \
                         `:queues:` or `.queues([...])`"
                    .to_owned(),
            });
        }
        let client = match self.client {
            Some(client) => client,
            None => Client::global()?,
        };
        let identity = identity::new_identity();
        let shared = Arc::new(Shared {
            working: client.keys().working(&identity),
            identity,
            client,
            registry,
            state: self.state,
            middleware: self.middleware,
            hooks: self.hooks,
            counters: Counters::default(),
            policy: RetryPolicy {
                max_retries: self.config.max_retries,
            },
            dead_max_jobs: self.config.dead_max_jobs,
            dead_timeout: self.config.dead_timeout,
            in_flight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let mut stop = std::pin::pin!(stop);
        if !wait_for_redis(&shared, stop.as_mut()).await {
            return Ok(());
        }
        let order = QueueOrder::new(&self.config.queues);
        tracing::info!(
            identity = %shared.identity,
            concurrency = self.config.concurrency,
            queues = ?order.names(),
            order = if order.is_strict() { "strict" } else { "weighted" },
            jobs = ?shared.registry.iter().map(|job| job.name()).collect::<Vec<_>>(),
            redis = %shared.client.url(),
            "worker started"
        );
        shared.hooks.fire(Lifecycle::Startup);

        let quiet = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let mut fetching = tokio::spawn(Fetcher::new(Arc::clone(&shared), order).run(
            quiet.clone(),
            Arc::clone(&slots),
            mode == Mode::UntilIdle,
        ));
        let scheduling = (mode == Mode::UntilStopped).then(|| {
            let scheduler = Scheduler::new(
                shared.client.clone(),
                self.config.poll_interval_average,
                self.config.average_scheduled_poll_interval,
            );
            tokio::spawn(scheduler.run(quiet.clone()))
        });
        let beating = tokio::spawn(beat(Arc::clone(&shared), quiet.clone()));

        let fetched = tokio::select! {
            () = &mut stop => None,
            finished = &mut fetching => Some(finished),
        };
        if mode == Mode::UntilStopped {
            tracing::info!(timeout = ?self.config.timeout, "shutting down: taking no more jobs");
        }
        quiet.cancel();
        shared.hooks.fire(Lifecycle::Quiet);
        shared.hooks.fire(Lifecycle::Shutdown);
        let finished = match fetched {
            Some(finished) => finished,
            None => fetching.await,
        };
        let (tasks, watchers) = finished.map_err(|error| Error::Worker {
            reason: format!("the fetcher stopped unexpectedly: {error}"),
        })?;
        let watched_deadline = tokio::time::Instant::now() + fetch::BLOCK + settle::HAND_BACK_FOR;
        let (handed_back, ()) = tokio::join!(
            shared.hand_back_watched(watchers, watched_deadline),
            shared.finish_running(tasks, self.config.timeout),
        );
        let deadline = tokio::time::Instant::now() + settle::HAND_BACK_FOR;
        shared.hand_back_leftovers(handed_back, deadline).await;
        if let Some(scheduling) = scheduling {
            let _ = scheduling.await;
        }
        let _ = beating.await;
        if let Err(error) = shared.counters.flush(shared.redis(), shared.keys()).await {
            tracing::warn!(%error, "cannot write the last counters");
        }
        tracing::info!("worker stopped");
        Ok(())
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .field("client", &self.client)
            .field("state", &self.state)
            .field("middleware", &self.middleware.len())
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    UntilStopped,
    UntilIdle,
}

/// Everything the worker's tasks share.
pub(crate) struct Shared {
    identity: String,
    working: String,
    client: Client,
    registry: Registry,
    state: JobState,
    middleware: Vec<Arc<dyn DynServerMiddleware>>,
    hooks: Hooks,
    counters: Counters,
    policy: RetryPolicy,
    dead_max_jobs: usize,
    dead_timeout: Duration,
    /// Jobs started and not yet settled, for shutdown to hand back.
    in_flight: Mutex<HashMap<u64, Fetched>>,
    next_id: AtomicU64,
}

impl Shared {
    pub(crate) fn redis(&self) -> &Connection {
        self.client.redis()
    }

    pub(crate) fn keys(&self) -> &Keys {
        self.client.keys()
    }

    /// This process's working list.
    pub(crate) fn working(&self) -> &str {
        &self.working
    }

    /// Notes a job as running; returns its ticket for [`untrack`](Self::untrack).
    pub(crate) fn track(&self, job: Fetched) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.running().insert(id, job);
        id
    }

    /// Notes a job as settled.
    pub(crate) fn untrack(&self, id: u64) {
        self.running().remove(&id);
    }

    /// How many running jobs hold each JSON.
    pub(crate) fn held(&self) -> HashMap<String, usize> {
        let mut held = HashMap::new();
        for job in self.running().values() {
            *held.entry(job.json.clone()).or_insert(0) += 1;
        }
        held
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Fetched>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands back the jobs idle watchers brought after the worker went quiet; returns how many.
    async fn hand_back_watched(
        &self,
        watchers: fetch::Watchers,
        deadline: tokio::time::Instant,
    ) -> usize {
        let jobs = watchers.drain().await;
        for job in &jobs {
            self.requeue(job, deadline).await;
        }
        jobs.len()
    }

    /// Waits up to `timeout` for running jobs; hands the jobs of those still running back to
    /// their queues, then cancels them. Handing back first means a task that settles late finds
    /// its job gone and changes nothing; cancelling is bounded, because a job blocking its
    /// thread does not stop at cancellation.
    async fn finish_running(&self, mut tasks: tokio::task::JoinSet<()>, timeout: Duration) {
        let running = tasks.len();
        if running > 0 {
            tracing::info!(running, "waiting for running jobs");
        }
        let all_done = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, all_done).await.is_ok() {
            return;
        }
        let unfinished: Vec<Fetched> = self.running().values().cloned().collect();
        let deadline = tokio::time::Instant::now() + settle::HAND_BACK_FOR;
        for job in &unfinished {
            self.requeue(job, deadline).await;
        }
        tracing::warn!(
            count = unfinished.len(),
            "handed unfinished jobs back to the front of their queues"
        );
        tasks.abort_all();
        let all_cancelled = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(CANCEL_FOR, all_cancelled)
            .await
            .is_err()
        {
            tracing::warn!("some jobs did not stop when cancelled (blocking code?); leaving them");
        }
    }

    /// Every job in this process's working list, as taken (its queue read from its JSON).
    pub(crate) async fn working_list(&self) -> Result<Vec<Fetched>, Error> {
        let listed: Vec<String> = self
            .redis()
            .command(redis::cmd("LRANGE").arg(self.working()).arg(0).arg(-1))
            .await?;
        Ok(listed
            .into_iter()
            .map(|json| Fetched {
                queue: Payload::from_json(&json)
                    .map(|payload| payload.queue)
                    .unwrap_or_else(|_| "default".to_owned()),
                json,
            })
            .collect())
    }

    /// Hands back anything still in the working list (a reply lost on the way), so a stopped
    /// worker leaves nothing behind.
    async fn hand_back_leftovers(&self, already: usize, deadline: tokio::time::Instant) {
        let leftovers = match self.working_list().await {
            Ok(leftovers) => leftovers,
            Err(error) => {
                tracing::warn!(%error, "cannot check the working list; recovery will");
                return;
            }
        };
        for job in &leftovers {
            self.requeue(job, deadline).await;
        }
        if already + leftovers.len() > 0 {
            tracing::info!(
                count = already + leftovers.len(),
                "handed jobs taken after quiet back to their queues"
            );
        }
    }
}

/// Every `BEAT`: flush counters and run `Beat` hooks, until `quiet`.
async fn beat(shared: Arc<Shared>, quiet: CancellationToken) {
    let mut ticks = tokio::time::interval(BEAT);
    ticks.tick().await;
    loop {
        tokio::select! {
            () = quiet.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = shared.counters.flush(shared.redis(), shared.keys()).await {
            tracing::warn!(%error, "cannot write counters; will try again");
        }
        shared.hooks.fire(Lifecycle::Beat);
    }
}

/// Waits until Redis answers, logging while it does not; `false` when `stop` came first.
async fn wait_for_redis(
    shared: &Shared,
    mut stop: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let mut delay = Duration::from_millis(200);
    loop {
        match shared.redis().command::<String>(&redis::cmd("PING")).await {
            Ok(_) => return true,
            Err(error) => {
                tracing::warn!(%error, "waiting for Redis");
            }
        }
        tokio::select! {
            () = stop.as_mut() => return false,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Refuses to start when a job asks for a `#[state]` type the worker was not given.
fn check_state(registry: &Registry, state: &JobState) -> Result<(), Error> {
    for job in registry.iter() {
        for wanted in job.state() {
            if !state.contains(wanted) {
                return Err(Error::MissingState {
                    job: job.name().to_owned(),
                    type_name: wanted.name().to_owned(),
                    location: job.location().to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Logs to standard output, filtered by `RUST_LOG` (default `info`, or `debug` when verbose).
fn init_logging(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

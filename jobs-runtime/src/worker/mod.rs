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

mod ack;
pub(crate) mod backtrace;
mod cli;
mod config;
mod control;
mod fetch;
mod heartbeat;
mod hooks;
mod identity;
mod logging;
pub(crate) mod middleware;
mod order;
mod preflight;
pub(crate) mod processor;
mod recovery;
mod retry;
mod scheduler;
mod settle;
mod stats;
mod systemd;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

pub use config::WorkerConfig;
pub use hooks::{Exhausted, Lifecycle};
pub use logging::{LOG_FORMAT_VAR, LogFormat, init_logging};
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
use control::Control;
use fetch::{Fetched, Fetcher};
use heartbeat::Heartbeat;
use hooks::Hooks;
use middleware::DynServerMiddleware;
use order::QueueOrder;
use retry::RetryPolicy;
use scheduler::Scheduler;
use stats::Counters;
use systemd::Notifier;

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
    /// sets up logging to standard output ([`init_logging`]: text, or JSON with
    /// `--log-format json` or `JOBS_LOG_FORMAT=json`; `RUST_LOG` filters it; `-v` means
    /// debug), unless the program already has a `tracing` subscriber.
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
        init_logging(config.log_format, config.verbose);
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

    /// Serves the web dashboard at `address` while the worker runs (what `--web` sets); use a
    /// loopback address unless the dashboard is behind a password (`JOBS_WEB_PASSWORD`).
    pub fn web(mut self, address: std::net::SocketAddr) -> Self {
        self.config.web = Some(address);
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

    /// Writes the heartbeat every `interval` (default 10 s), each living `ttl` (default 60 s,
    /// at least twice the interval): a process silent for `ttl` is dead and its jobs are
    /// recovered.
    pub fn heartbeat(mut self, interval: Duration, ttl: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self.config.heartbeat_ttl = ttl;
        self
    }

    /// Looks for dead processes' jobs every `interval` (default 15 s); a job recovered more
    /// than `max_recoveries` times (default 3) goes to the dead set.
    pub fn recovery(mut self, interval: Duration, max_recoveries: u32) -> Self {
        self.config.recovery_interval = interval;
        self.config.max_recoveries = max_recoveries;
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

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully, as `sidekiq` does: SIGTSTP
    /// quiets (no new jobs), SIGTTIN logs the running jobs, a second SIGINT hands running jobs
    /// back at once. A dashboard's Quiet and Stop buttons work through the heartbeat. Meant for
    /// a worker binary: when a job blocks its thread past the timeout, its job is handed back
    /// and the process exits, within the timeout plus a few seconds.
    pub async fn run(self) -> Result<(), Error> {
        self.start(Mode::UntilStopped, std::future::pending(), true)
            .await
    }

    /// Runs until `stop` resolves (or a dashboard stops it), then shuts down gracefully: stop
    /// taking jobs, wait up to the timeout for running ones, hand the rest back to the front of
    /// their queues, flush counters, clear the heartbeat. OS signals are left to the caller.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send) -> Result<(), Error> {
        self.start(Mode::UntilStopped, stop, false).await
    }

    /// Runs every job waiting in the queues (and any they push), then stops: for tests and
    /// one-off scripts. The scheduler and crash recovery do not run.
    pub async fn drain(self) -> Result<(), Error> {
        self.start(Mode::UntilIdle, std::future::pending(), false)
            .await
    }

    async fn start(
        self,
        mode: Mode,
        stop: impl Future<Output = ()> + Send,
        os_signals: bool,
    ) -> Result<(), Error> {
        let registry = match self.registry {
            Some(registry) => registry,
            None => Registry::from_inventory()?,
        };
        check_state(&registry, &self.state)?;
        if self.config.heartbeat_ttl < self.config.heartbeat_interval * 2 {
            return Err(Error::Config {
                origin: "the worker's settings".to_owned(),
                reason: format!(
                    "the heartbeat TTL ({:?}) must be at least twice its interval ({:?}), or \
                     live processes would be presumed dead",
                    self.config.heartbeat_ttl, self.config.heartbeat_interval
                ),
            });
        }
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
        let config = self.config;
        let (acker, acks) = ack::Acker::new();
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
                max_retries: config.max_retries,
            },
            dead_max_jobs: config.dead_max_jobs,
            dead_timeout: config.dead_timeout,
            concurrency: config.concurrency,
            max_recoveries: config.max_recoveries,
            stuck: std::sync::atomic::AtomicBool::new(false),
            in_flight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            acker,
        });
        let acking = ack::AckTask::spawn(Arc::clone(&shared), acks);
        let control = Control::default();
        let signals = os_signals.then(|| {
            let dumper = Arc::clone(&shared);
            tokio::spawn(control::listen(control.clone(), move || {
                dumper.dump_running();
            }))
        });
        let mut stop = std::pin::pin!(stop);
        let mut stop_seen = false;
        tokio::select! {
            up = wait_for_redis(&shared) => up,
            () = &mut stop => { stop_seen = true; }
            () = control.stopped() => {}
        }
        if stop_seen || control.is_stopping() {
            return Ok(());
        }
        preflight::check(&shared).await?;
        // The dashboard's address is bound before any job is taken, so a taken port stops
        // the worker here, holding nothing.
        let web_until = tokio_util::sync::CancellationToken::new();
        let _stop_web_on_return = web_until.clone().drop_guard();
        if mode == Mode::UntilStopped
            && let Some(address) = config.web
        {
            serve_dashboard(&shared.client, &config, address, web_until.clone()).await?;
        }
        let order = QueueOrder::new(&config.queues);
        let heartbeat = Heartbeat::new(
            Arc::clone(&shared),
            control.clone(),
            process_info(&shared, &config, &order),
            config.heartbeat_interval,
            config.heartbeat_ttl,
        );
        shared.hooks.fire(Lifecycle::Startup);
        // No job is taken before the process is known to crash recovery.
        while let Err(error) = heartbeat.beat().await {
            tracing::warn!(%error, "cannot write the first heartbeat; trying again in 1 s");
            tokio::select! {
                () = &mut stop, if !stop_seen => return Ok(()),
                () = control.stopped() => return Ok(()),
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        tracing::info!(
            identity = %shared.identity,
            concurrency = config.concurrency,
            queues = ?order.names(),
            order = if order.is_strict() { "strict" } else { "weighted" },
            jobs = ?shared.registry.iter().map(|job| job.name()).collect::<Vec<_>>(),
            redis = %shared.client.url(),
            "worker started"
        );

        let notifier = Notifier::from_env();
        let watchdog_until = tokio_util::sync::CancellationToken::new();
        // An early return (the fetcher failing) stops the pings too.
        let _stop_watchdog_on_return = watchdog_until.clone().drop_guard();
        let watchdog = (mode == Mode::UntilStopped)
            .then(|| tokio::spawn(notifier.run_watchdog(watchdog_until.clone())));
        if mode == Mode::UntilStopped {
            notifier.ready();
        }

        let slots = Arc::new(Semaphore::new(config.concurrency));
        let mut fetching = tokio::spawn(Fetcher::new(Arc::clone(&shared), order).run(
            control.quiet_token(),
            Arc::clone(&slots),
            mode == Mode::UntilIdle,
        ));
        let mut background = Vec::new();
        if mode == Mode::UntilStopped {
            let scheduler = Scheduler::new(
                shared.client.clone(),
                config.poll_interval_average,
                config.average_scheduled_poll_interval,
            );
            background.push(tokio::spawn(scheduler.run(control.quiet_token())));
            background.push(tokio::spawn(recovery::run(
                Arc::clone(&shared),
                control.clone(),
                config.recovery_interval,
                config.max_recoveries,
            )));
        }
        let heartbeat = Arc::new(heartbeat);
        let beat_until = tokio_util::sync::CancellationToken::new();
        // An early return stops the beats, so other processes recover this one's jobs.
        let _stop_beating_on_return = beat_until.clone().drop_guard();
        let beating = {
            let heartbeat = Arc::clone(&heartbeat);
            let until = beat_until.clone();
            tokio::spawn(async move { heartbeat.run(until).await })
        };

        // The fetcher ends at quiet (or, draining, when the queues are empty). What its idle
        // watchers bring then goes straight back, for the other processes, in a task of its own:
        // a stop arriving meanwhile must not wait behind their blocking fetches.
        let hand_back_watched = |watchers: fetch::Watchers| {
            let shared = Arc::clone(&shared);
            let deadline = tokio::time::Instant::now() + fetch::BLOCK + settle::HAND_BACK_FOR;
            tokio::spawn(async move { shared.hand_back_watched(watchers, deadline).await })
        };
        let mut fetched = None;
        let mut quiet_announced = false;
        loop {
            tokio::select! {
                () = &mut stop, if !stop_seen => {
                    stop_seen = true;
                    control.stop();
                }
                () = control.stopped() => break,
                () = control.quieted(), if !quiet_announced => {
                    quiet_announced = true;
                    tracing::info!("quiet: taking no more jobs");
                    shared.hooks.fire(Lifecycle::Quiet);
                }
                finished = &mut fetching, if fetched.is_none() => {
                    let finished = finished
                        .map(|(tasks, watchers)| (tasks, hand_back_watched(watchers)));
                    fetched = Some(finished);
                    if mode == Mode::UntilIdle {
                        break;
                    }
                }
            }
        }
        control.stop();
        web_until.cancel();
        if mode == Mode::UntilStopped {
            notifier.stopping();
            tracing::info!(timeout = ?config.timeout, "shutting down");
        }
        if !quiet_announced {
            shared.hooks.fire(Lifecycle::Quiet);
        }
        shared.hooks.fire(Lifecycle::Shutdown);
        let finished = match fetched {
            Some(finished) => finished,
            None => fetching
                .await
                .map(|(tasks, watchers)| (tasks, hand_back_watched(watchers))),
        };
        let (tasks, handing_back) = finished.map_err(|error| Error::Worker {
            reason: format!("the fetcher stopped unexpectedly: {error}"),
        })?;
        let (handed_back, ()) = tokio::join!(
            async { handing_back.await.unwrap_or_default() },
            shared.finish_running(tasks, config.timeout, &control),
        );
        // Finished jobs leave the working list before what is left in it is handed back.
        shared.acker.flush().await;
        drop(acking);
        let deadline = tokio::time::Instant::now() + settle::HAND_BACK_FOR;
        shared.hand_back_leftovers(handed_back, deadline).await;
        for task in background {
            let _ = task.await;
        }
        beat_until.cancel();
        let _ = beating.await;
        if let Err(error) = shared.counters.flush(shared.redis(), shared.keys()).await {
            tracing::warn!(%error, "cannot write the last counters");
        }
        if let Err(error) = heartbeat.clear().await {
            tracing::warn!(%error, "cannot clear the heartbeat; it expires by itself");
        }
        watchdog_until.cancel();
        if let Some(watchdog) = watchdog {
            let _ = watchdog.await;
        }
        control.stop_now();
        if let Some(signals) = signals {
            let _ = signals.await;
        }
        tracing::info!("worker stopped");
        if os_signals && shared.stuck.load(Ordering::Relaxed) {
            // A job blocking its thread would keep the runtime from shutting down; its job is
            // already handed back, so the process exits now, as Sidekiq does after its timeout.
            tracing::warn!("exiting with jobs still blocking their threads");
            std::process::exit(0);
        }
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
    concurrency: usize,
    max_recoveries: u32,
    /// Set when cancelled jobs would not stop (blocking code): `run()` then exits the process.
    stuck: std::sync::atomic::AtomicBool,
    /// Jobs started and not yet settled: for shutdown to hand back, for the heartbeat's work
    /// hash, and for the sweep to know which working-list entries are held.
    in_flight: Mutex<HashMap<u64, Tracked>>,
    next_id: AtomicU64,
    /// Acknowledges finished jobs in batches (`ack.rs`).
    acker: ack::Acker,
}

/// A job this process took and has not settled yet.
struct Tracked {
    job: Fetched,
    /// When it started, in epoch seconds.
    since: i64,
    /// It finished and waits for its batched acknowledgement: no longer running, still held.
    finished: bool,
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
        let since = chrono::Utc::now().timestamp();
        let tracked = Tracked {
            job,
            since,
            finished: false,
        };
        self.running().insert(id, tracked);
        id
    }

    /// Notes a job as finished, waiting for its acknowledgement: no longer running, still held.
    pub(crate) fn finished(&self, id: u64) {
        if let Some(tracked) = self.running().get_mut(&id) {
            tracked.finished = true;
        }
    }

    /// Notes a job as settled.
    pub(crate) fn untrack(&self, id: u64) {
        self.running().remove(&id);
    }

    /// How many jobs this process holds (running, or finished and not yet acknowledged) for
    /// each JSON.
    pub(crate) fn held(&self) -> HashMap<String, usize> {
        let mut held = HashMap::new();
        for tracked in self.running().values() {
            *held.entry(tracked.job.json.clone()).or_insert(0) += 1;
        }
        held
    }

    /// The running jobs: a thread-like id (base 36, as Sidekiq's `tid`), the job, its start.
    pub(crate) fn running_jobs(&self) -> Vec<(String, Fetched, i64)> {
        self.running()
            .iter()
            .filter(|(_, tracked)| !tracked.finished)
            .map(|(id, tracked)| (base36(*id), tracked.job.clone(), tracked.since))
            .collect()
    }

    /// Logs every running job (SIGTTIN, or `TTIN` from a dashboard).
    pub(crate) fn dump_running(&self) {
        let now = chrono::Utc::now().timestamp();
        let running = self.running_jobs();
        tracing::info!(count = running.len(), "running jobs");
        for (tid, job, since) in running {
            let (class, jid) = Payload::from_json(&job.json)
                .map(|payload| (payload.class, payload.jid.to_string()))
                .unwrap_or_default();
            tracing::info!(%tid, %jid, %class, queue = %job.queue, elapsed_s = now - since, "running");
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Tracked>> {
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
        let jobs = watchers.drain(self).await;
        for job in &jobs {
            self.requeue(job, deadline).await;
        }
        jobs.len()
    }

    /// Waits up to `timeout` for running jobs; hands the jobs of those still running back to
    /// their queues, then cancels them. Handing back first means a task that settles late finds
    /// its job gone and changes nothing; cancelling is bounded, because a job blocking its
    /// thread does not stop at cancellation.
    async fn finish_running(
        &self,
        mut tasks: tokio::task::JoinSet<()>,
        timeout: Duration,
        control: &Control,
    ) {
        let running = tasks.len();
        if running > 0 {
            tracing::info!(running, "waiting for running jobs");
        }
        let all_done = async { while tasks.join_next().await.is_some() {} };
        let finished = tokio::select! {
            done = tokio::time::timeout(timeout, all_done) => done.is_ok(),
            () = control.stopped_now() => false,
        };
        if finished {
            return;
        }
        let unfinished: Vec<Fetched> = self
            .running()
            .values()
            .filter(|tracked| !tracked.finished)
            .map(|tracked| tracked.job.clone())
            .collect();
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
            self.stuck.store(true, Ordering::Relaxed);
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

/// Waits until Redis answers, logging while it does not.
async fn wait_for_redis(shared: &Shared) {
    let mut delay = Duration::from_millis(200);
    loop {
        match shared.redis().command::<String>(&redis::cmd("PING")).await {
            Ok(_) => return,
            Err(error) => tracing::warn!(%error, "waiting for Redis"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Serves the dashboard beside the worker (`--web`) until `until` is cancelled; behind basic
/// auth when `JOBS_WEB_PASSWORD` is set. The address is bound first, so a taken port stops the
/// worker at start with an error that says so.
#[cfg(feature = "web")]
async fn serve_dashboard(
    client: &Client,
    config: &WorkerConfig,
    address: std::net::SocketAddr,
    until: tokio_util::sync::CancellationToken,
) -> Result<(), Error> {
    let mut dashboard =
        crate::web::Dashboard::new(client).dead_limits(crate::api::DeadLimits::of(config));
    if let Ok(password) = std::env::var("JOBS_WEB_PASSWORD")
        && !password.is_empty()
    {
        let user = std::env::var("JOBS_WEB_USER").unwrap_or_else(|_| "admin".to_owned());
        dashboard = dashboard.basic_auth(user, password);
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| Error::Config {
            origin: "--web".to_owned(),
            reason: format!(
                "cannot serve the dashboard at {address} ({error}); choose another address"
            ),
        })?;
    tokio::spawn(async move {
        if let Err(error) = crate::web::serve_on(listener, dashboard, until.cancelled_owned()).await
        {
            tracing::error!(%address, %error, "the dashboard stopped");
        }
    });
    Ok(())
}

/// Without the `web` feature there is no dashboard to serve.
#[cfg(not(feature = "web"))]
async fn serve_dashboard(
    _client: &Client,
    _config: &WorkerConfig,
    address: std::net::SocketAddr,
    _until: tokio_util::sync::CancellationToken,
) -> Result<(), Error> {
    Err(Error::Config {
        origin: "--web".to_owned(),
        reason: format!(
            "cannot serve the dashboard at {address}: this build has no `web` feature; \
             enable it (it is on by default) or drop --web"
        ),
    })
}

/// The heartbeat's `info` JSON, with Sidekiq's fields.
fn process_info(shared: &Shared, config: &WorkerConfig, order: &QueueOrder) -> serde_json::Value {
    serde_json::json!({
        "hostname": identity::hostname(),
        "started_at": crate::timestamp::Timestamp::now(),
        "pid": std::process::id(),
        "tag": config.tag.clone().unwrap_or_default(),
        "concurrency": config.concurrency,
        "queues": order.names(),
        "labels": config.labels,
        "identity": shared.identity,
        "version": concat!("jobs ", env!("CARGO_PKG_VERSION")),
    })
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

//! The worker: runs the jobs linked into the binary, taking them from Redis.
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> Result<(), jobs_runtime::Error> {
//!     jobs_runtime::Worker::from_cli()?.run().await
//! }
//! ```
//!
//! One fetcher per capsule (the default one, and those of [`Worker::capsule`]) takes jobs into
//! this process's working list and starts a task per job, at most the capsule's `concurrency`
//! at once; each job is decoded, run through the server middleware with its timeout, and
//! settled in one atomic step. A scheduler moves due scheduled and retried jobs to
//! their queues, a heartbeat keeps the process visible and alive, and crash recovery hands back
//! the jobs of processes that died. `docs/worker.md` describes the whole life of a job.
//!
//! # Layout, bottom up
//!
//! Each file imports only from the groups above its own (and from its own group's leaves), so
//! the folder reads from the top of this list down:
//!
//! - **Process setup**: `cli`, `config` ([`WorkerConfig`]), `capsule` ([`Capsule`]: a
//!   process's pools of concurrency), `logging`, `identity`, `preflight` (checks of the Redis
//!   server), `systemd`.
//! - **Leaves**: `unit` (a job as taken, Sidekiq's `UnitOfWork`), `in_flight` (the jobs this
//!   process holds), `control` (the shutdown phases and the signal listener), `tasks` (the one
//!   loop shape), `backoff`, `hooks`, `middleware`, `order`, `retry` (Sidekiq's retry rules),
//!   `stats` (counters), `drain` (when `Worker::drain` is done across capsules).
//! - **One job's path**: `settle` (out of the working list, one atomic step), `ack` (batched
//!   acknowledgements), `shared` (what the tasks share), `execute` (run a job's code),
//!   `processor` (run, log, count and settle one job).
//! - **The loops**: `fetch` (the fetcher; `fetch/idle` for the blocking waits), `scheduler`,
//!   `periodic` (cron entries), `recovery`, `heartbeat`, `dashboard` (`--web`), `health`
//!   (`--health`).
//! - **The launch sequence**: `launch`, the named steps from start to exit.
//! - **The builder**: [`Worker`], here.

// The setup of a process.
mod capsule;
mod cli;
mod config;
mod erb;
mod identity;
mod logging;
mod preflight;
mod systemd;

// Leaves: shared by the rest, importing none of it.
mod backoff;
mod control;
mod drain;
mod hooks;
mod in_flight;
mod liveness;
pub(crate) mod middleware;
mod order;
mod overrated;
mod retry;
mod stats;
mod tasks;
mod unit;

// One job's path: run it, settle it.
mod ack;
pub(crate) mod execute;
mod processor;
mod settle;
mod shared;

// The loops, and the launch sequence that starts and stops them.
mod dashboard;
mod fetch;
mod health;
mod heartbeat;
mod launch;
mod periodic;
mod recovery;
mod scheduler;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use capsule::{Capsule, DEFAULT_CAPSULE, DEFAULT_CONCURRENCY};
pub use config::WorkerConfig;
pub use hooks::{Exhausted, Lifecycle};
pub use logging::{LOG_FORMAT_VAR, LogFormat, init_logging};
pub use middleware::{Next, ServerMiddleware};
pub use order::QueueSpec;
pub use scheduler::enqueue_due;
#[cfg(feature = "postgres")]
pub(crate) use tasks::sleep_or;

use crate::client::Client;
use crate::error::Error;
use crate::job_error::JobError;
use crate::payload::Payload;
use crate::periodic::Periodic;
use crate::registry::Registry;
use crate::state::JobState;
use hooks::Hooks;
use launch::{Mode, Parts, launch};
use middleware::DynServerMiddleware;

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
    periodic: Vec<Periodic>,
    metrics: crate::metrics::ExecutionMetrics,
    #[cfg(feature = "postgres")]
    outbox: Option<crate::outbox::Relay>,
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
            periodic: Vec::new(),
            metrics: crate::metrics::ExecutionMetrics::default(),
            #[cfg(feature = "postgres")]
            outbox: None,
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

    /// Caps `queue` across every process: at most `cap` of its jobs run at once anywhere (one
    /// job per lease in Redis; see `docs/limits.md`, "Global caps"). Written to Redis when the
    /// worker starts, for every worker to enforce, as the dashboard's cap form and
    /// [`Caps::set`](crate::api::Caps::set) do; the queue's jobs wait in their queue for room
    /// while other queues keep flowing. A cap of 0 is refused when the worker starts (pause
    /// the queue instead); naming a queue again replaces its cap. Only the queues named here
    /// are written, and each start writes over the cap Redis holds (one changed on the
    /// dashboard meanwhile included); caps not named here are left alone.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), jobs_runtime::Error> {
    /// jobs_runtime::Worker::new()
    ///     .queues(["default", "imports"])
    ///     .cap_queue("imports", 2)
    ///     .run()
    ///     .await
    /// # }
    /// ```
    pub fn cap_queue(mut self, queue: impl Into<String>, cap: u32) -> Self {
        let queue = queue.into();
        self.config.queue_caps.retain(|(known, _)| *known != queue);
        self.config.queue_caps.push((queue, cap));
        self
    }

    /// Caps job class `class` across every process: at most `cap` of its jobs run at once
    /// anywhere (see `docs/limits.md`, "Class caps"), as `#[job(concurrency = n)]` does, which
    /// this replaces for that class. For a class given by name: a job registered under another
    /// name, a Ruby class this worker runs through a registration, or to override the code's
    /// number. Written to Redis when the worker starts, over whatever Redis held (a cap changed
    /// on the dashboard meanwhile included); the jobs beyond the cap are parked until a slot
    /// frees. A cap of 0 is refused when the worker starts; naming a class again replaces its
    /// cap.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), jobs_runtime::Error> {
    /// jobs_runtime::Worker::new()
    ///     .cap_class("ImportJob", 2)
    ///     .run()
    ///     .await
    /// # }
    /// ```
    pub fn cap_class(mut self, class: impl Into<String>, cap: u32) -> Self {
        let class = class.into();
        self.config.class_caps.retain(|(known, _)| *known != class);
        self.config.class_caps.push((class, cap));
        self
    }

    /// Records execution metrics (on by default): per job class and minute, runs, failures,
    /// time and a time histogram, in Sidekiq 8's keys, written with the heartbeat
    /// (`docs/metrics.md`). `false` turns them off, and the `--web` Prometheus endpoint then
    /// exports no per-class figures for this process.
    pub fn record_metrics(self, on: bool) -> Self {
        self.metrics.set_enabled(on);
        self
    }

    /// This worker's execution metrics, to serve its figures on a dashboard of your own
    /// (`Dashboard::process_metrics`); `--web` serves them already.
    pub fn execution_metrics(&self) -> crate::metrics::ExecutionMetrics {
        self.metrics.clone()
    }

    /// Serves the web dashboard at `address` while the worker runs (what `--web` sets); use a
    /// loopback address unless the dashboard is behind a password (`JOBS_WEB_PASSWORD`).
    pub fn web(mut self, address: std::net::SocketAddr) -> Self {
        self.config.web = Some(address);
        self
    }

    /// Answers orchestrators' probes at `address` while the worker runs (what `--health`
    /// sets): `GET /livez` (the last heartbeat landed within its TTL) and `GET /readyz`
    /// (Redis answers, and the worker is neither quiet nor stopping), 200 or 503 with a short
    /// JSON body. Needs the `web` feature.
    pub fn health(mut self, address: std::net::SocketAddr) -> Self {
        self.config.health = Some(address);
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

    /// Adds a capsule (Sidekiq 7's `config.capsule`): its queues' jobs run in a pool of their
    /// own, at most its concurrency at once, beside the default capsule (the
    /// [`queues`](Self::queues) and [`concurrency`](Self::concurrency) above) and the others.
    /// A capsule of a name given before replaces it; the capsule named
    /// [`DEFAULT_CAPSULE`] sets the default capsule's concurrency and queues, each only when
    /// it names them. A capsule given no concurrency runs [`DEFAULT_CONCURRENCY`] (5) jobs at
    /// once.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), jobs_runtime::Error> {
    /// use jobs_runtime::{Worker, worker::Capsule};
    ///
    /// Worker::new()
    ///     .queues(["default"])
    ///     .concurrency(5)
    ///     .capsule(Capsule::new("single").queues(["single"]).concurrency(1))
    ///     .run()
    ///     .await
    /// # }
    /// ```
    ///
    /// The worker refuses to start (an [`Error::Config`]) when a capsule has concurrency 0 or
    /// no queue, or when a queue is in two capsules. See `docs/capsules.md`.
    pub fn capsule(mut self, capsule: Capsule) -> Self {
        self.config.set_capsule(capsule);
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

    /// Pushes the job `make` computes from each tick of `cron` (5 fields, or 6 with seconds
    /// first, read in UTC), once per tick across every worker process, as the entry `name`:
    ///
    /// ```no_run
    /// # use jobs_runtime as jobs;
    /// # struct ScoreGeneration { date: chrono::NaiveDate }
    /// # impl jobs::Job for ScoreGeneration {
    /// #     const NAME: &'static str = "ScoreGeneration";
    /// #     const OPTIONS: jobs::JobOptions = jobs::JobOptions::DEFAULT;
    /// #     fn encode_args(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> { Ok(vec![]) }
    /// #     fn decode_args(_: Vec<serde_json::Value>) -> Result<Self, jobs::ArgsError> { unimplemented!() }
    /// #     fn perform(self, _: jobs::JobContext, _: &jobs::JobState) -> jobs::JobFuture { unimplemented!() }
    /// # }
    /// # async fn example() -> Result<(), jobs::Error> {
    /// jobs::Worker::from_cli()?
    ///     .periodic("scores", "0 3 * * *", |tick| ScoreGeneration { date: tick.date_naive() })
    ///     .run()
    ///     .await
    /// # }
    /// ```
    ///
    /// A bad expression stops the worker at start, naming the entry. For a time zone, a queue,
    /// a fixed job or a job of another language, give a [`Periodic`] to
    /// [`periodic_entry`](Self::periodic_entry).
    pub fn periodic<J: crate::job::Job>(
        self,
        name: impl Into<String>,
        cron: impl Into<String>,
        make: impl Fn(chrono::DateTime<crate::periodic::Tz>) -> J + Send + Sync + 'static,
    ) -> Self {
        self.periodic_entry(Periodic::new(name, cron, make))
    }

    /// Adds a periodic entry: see [`Periodic`] and [`periodic`](Self::periodic).
    pub fn periodic_entry(mut self, entry: Periodic) -> Self {
        self.periodic.push(entry);
        self
    }

    /// The periodic entries given to this builder ([`periodic`](Self::periodic),
    /// [`periodic_entry`](Self::periodic_entry)), in order; not those of `#[job(cron)]` or of
    /// the config file. For a test to hand the app's schedule to a fake:
    /// [`Fake::periodic_entries`](crate::testing::Fake::periodic_entries).
    pub fn periodic_entries(&self) -> &[Periodic] {
        &self.periodic
    }

    /// Runs the outbox's relay while the worker runs (feature `postgres`): it moves the jobs a
    /// crash left in the table `jobs_outbox` of this database to Redis, through this worker's
    /// client (so the app's transactions must push to the same Redis and namespace). Give it
    /// the app's `PgPool` for the defaults, or a [`Relay`](crate::outbox::Relay) with its
    /// settings. See [`outbox`](crate::outbox).
    #[cfg(feature = "postgres")]
    pub fn outbox(mut self, relay: impl Into<crate::outbox::Relay>) -> Self {
        self.outbox = Some(relay.into());
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
    /// one-off scripts. The scheduler, crash recovery and the outbox's relay do not run.
    pub async fn drain(self) -> Result<(), Error> {
        self.start(Mode::UntilIdle, std::future::pending(), false)
            .await
    }

    /// Hands the worker's parts to the launch sequence (`launch.rs`).
    async fn start(
        self,
        mode: Mode,
        stop: impl Future<Output = ()> + Send,
        os_signals: bool,
    ) -> Result<(), Error> {
        let parts = Parts {
            config: self.config,
            client: self.client,
            registry: self.registry,
            state: self.state,
            middleware: self.middleware,
            hooks: self.hooks,
            periodic: self.periodic,
            metrics: self.metrics,
            #[cfg(feature = "postgres")]
            outbox: self.outbox,
        };
        launch(parts, mode, stop, os_signals).await
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

//! The launch sequence of a worker, from its parts to its exit, as a list of named steps
//! (Sidekiq's `launcher.rb` and `manager.rb`):
//!
//! 1. [`prepare`]: check the settings, the registry and the `#[state]` values; build the
//!    shared state and start the acker (and, for `run`, the signal listener);
//! 2. [`serve_health`](Launcher::serve_health): bind `--health`, so probes are answered while
//!    the worker waits for Redis;
//! 3. [`connect`](Launcher::connect): wait for Redis, then check it (`preflight.rs`);
//! 4. [`serve_dashboard`](Launcher::serve_dashboard): bind `--web` before any job is taken;
//! 5. [`first_beat`](Launcher::first_beat): no job is taken before the process is known to
//!    crash recovery;
//! 6. [`start_loops`](Launcher::start_loops): one fetcher per capsule (`capsule.rs`), the
//!    scheduler, the periodic loop, the outbox's relay (feature `postgres`),
//!    crash recovery, the heartbeat and systemd's watchdog;
//! 7. [`steady`](Launcher::steady): until the stop phase (or, draining, until every capsule's
//!    queues are empty); a capsule's fetcher that fails stops the worker;
//! 8. [`shutdown`](Launcher::shutdown): quiet, wait up to the timeout for running jobs, hand
//!    back the rest, flush the acknowledgements, hand back what is left in the working list,
//!    stop the heartbeat, flush the counters, clear the heartbeat, stop the watchdog and the
//!    signal listener; all of it even when a fetcher failed, whose failure is returned last.
//!
//! Which loop ends in which phase is in `tasks.rs`; what each phase means, in `control.rs`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::ack::{AckLoop, Acker};
use super::backoff::Backoff;
use super::capsule::{self, Plan};
use super::config::WorkerConfig;
use super::control::{Control, Signals};
use super::dashboard::DashboardServer;
use super::fetch::{BLOCK, Fetcher, IdleFetch};
use super::health::{HealthServer, Probes};
use super::heartbeat::Heartbeat;
use super::hooks::{Hooks, Lifecycle};
use super::identity;
use super::in_flight::InFlight;
use super::liveness::{Liveness, Pulse};
use super::middleware::DynServerMiddleware;
use super::periodic::PeriodicLoop;
use super::preflight;
use super::recovery::Recovery;
use super::retry::RetryPolicy;
use super::scheduler::Scheduler;
use super::settle::{HAND_BACK_FOR, Settler};
use super::shared::Shared;
use super::stats::Counters;
use super::systemd::Notifier;
use super::tasks::Running;
use super::unit::Fetched;
use crate::client::Client;
use crate::error::Error;
use crate::periodic::{Entry, Periodic};
use crate::registry::Registry;
use crate::state::JobState;

/// How long shutdown waits for cancelled jobs to stop.
const CANCEL_FOR: Duration = Duration::from_secs(3);

/// How long shutdown waits for the last acknowledgements to land.
const FLUSH_FOR: Duration = Duration::from_secs(30);

/// How long a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Until stopped: a worker process, with the scheduler, crash recovery and the dashboard.
    UntilStopped,
    /// Until the queues are empty and no job runs: `Worker::drain`.
    UntilIdle,
}

/// A worker's parts, as its builder left them.
pub(crate) struct Parts {
    /// The settings.
    pub(crate) config: WorkerConfig,
    /// The client to take jobs through; the global one when `None`.
    pub(crate) client: Option<Client>,
    /// The job types to run; every linked one when `None`.
    pub(crate) registry: Option<Registry>,
    /// The `#[state]` values.
    pub(crate) state: JobState,
    /// The server middleware, outermost first.
    pub(crate) middleware: Vec<Arc<dyn DynServerMiddleware>>,
    /// Lifecycle hooks and handlers.
    pub(crate) hooks: Hooks,
    /// The periodic entries given to the builder.
    pub(crate) periodic: Vec<Periodic>,
    /// The execution metrics (`crate::metrics`), on unless turned off.
    pub(crate) metrics: crate::metrics::ExecutionMetrics,
    /// The outbox's relay, when the worker was given one.
    #[cfg(feature = "postgres")]
    pub(crate) outbox: Option<crate::outbox::Relay>,
}

/// The caller's stop request: a future, seen once.
struct StopRequest<'a> {
    /// Resolves when the caller wants the worker to stop.
    future: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    /// It resolved already.
    seen: bool,
}

impl StopRequest<'_> {
    /// Resolves the first time the caller asks to stop; never again after that.
    async fn requested(&mut self) {
        if self.seen {
            return std::future::pending().await;
        }
        self.future.as_mut().await;
        self.seen = true;
    }
}

/// What one capsule's fetcher left when it ended: the tasks of the jobs it started, and its
/// idle fetch, with what it brought after quiet; or, when its task failed, its capsule's name
/// and the failure (its jobs' tasks went with it, and their jobs stay in the working list).
type FetcherLeft = Result<(JoinSet<()>, IdleFetch), FetcherFailure>;

/// A fetcher that failed: its capsule's name, and how its task failed.
type FetcherFailure = (String, JoinError);

/// What the fetchers left when they ended.
struct FetcherEnd {
    /// The tasks of the jobs they started, one set per capsule whose fetcher ended well.
    tasks: Vec<JoinSet<()>>,
    /// The hand-back of what their idle fetches brought after quiet (how many jobs).
    handing_back: JoinHandle<usize>,
    /// The first fetcher that failed, if any: the capsule's name and the failure. Shutdown
    /// still waits for the others' jobs and hands back every job left; then `run` and `drain`
    /// return it as an error.
    failed: Option<FetcherFailure>,
}

/// What the fetchers that ended well left, split: their jobs' tasks and their idle fetches;
/// and the first failure. A failed fetcher must not cost the others their jobs: dropping a
/// `JoinSet` would cancel its running jobs mid-run and drop the jobs it took ahead.
fn split_fetchers(
    left: Vec<FetcherLeft>,
) -> (Vec<JoinSet<()>>, Vec<IdleFetch>, Option<FetcherFailure>) {
    let mut tasks = Vec::with_capacity(left.len());
    let mut idles = Vec::with_capacity(left.len());
    let mut failed = None;
    for end in left {
        match end {
            Ok((set, idle)) => {
                tasks.push(set);
                idles.push(idle);
            }
            Err(failure) => {
                failed.get_or_insert(failure);
            }
        }
    }
    (tasks, idles, failed)
}

/// The loops that run until shutdown stops them, each at its moment.
struct Loops {
    /// The fetchers, one per capsule, on a task that ends at quiet (or, draining, once every
    /// capsule is idle) with what each left.
    fetcher: Running<Vec<FetcherLeft>>,
    /// The scheduler (ends at quiet) and crash recovery (ends at stop), when running until
    /// stopped.
    pollers: Vec<Running<()>>,
    /// The heartbeat's loop; the heartbeat itself, for the last flush and the clearing.
    heartbeat: (Running<()>, Arc<Heartbeat>),
    /// The liveness loop, on a thread of its own.
    liveness: Running<()>,
    /// systemd's watchdog, where one is set.
    watchdog: Option<Running<()>>,
}

/// The loops started before the first beat.
struct Early {
    /// Acknowledges finished jobs; stopped right after its last flush.
    acker: Running<()>,
    /// The signal listener (for `run`); stopped last.
    signals: Option<Running<()>>,
    /// The dashboard (for `--web`); ends at stop, not waited for.
    dashboard: Option<Running<()>>,
    /// The health endpoint (for `--health`); ends at exit, not waited for.
    health: Option<Running<()>>,
}

/// Runs a worker from its parts until it has stopped.
pub(crate) async fn launch(
    parts: Parts,
    mode: Mode,
    stop: impl Future<Output = ()> + Send,
    os_signals: bool,
) -> Result<(), Error> {
    // Kept apart from the launcher, which is shared across awaits and so must be `Sync`; the
    // caller's future need only be `Send`.
    let mut stop = StopRequest {
        future: Box::pin(stop),
        seen: false,
    };
    let (mut launcher, ack_loop) = prepare(parts, mode, os_signals)?;
    let mut early = launcher.start_early(ack_loop);
    early.health = launcher.serve_health().await?;
    if !launcher.connect(&mut stop).await {
        return Ok(());
    }
    preflight::check(&launcher.shared).await?;
    crate::cap::apply(&launcher.shared.client, &launcher.config.queue_caps).await?;
    let class_caps = launcher.shared.class_caps.declared();
    crate::cap::class::apply(&launcher.shared.client, class_caps).await?;
    early.dashboard = launcher.serve_dashboard().await?;
    let plans = capsule::plans(&launcher.config.all_capsules());
    let heartbeat = Heartbeat::new(
        Arc::clone(&launcher.shared),
        launcher.control.clone(),
        &launcher.config,
        &plans,
    );
    launcher.shared.hooks.fire(Lifecycle::Startup);
    if !launcher.first_beat(&heartbeat, &mut stop).await {
        return Ok(());
    }
    let mut loops = launcher.start_loops(plans, heartbeat);
    let fetched = launcher.steady(&mut loops.fetcher, &mut stop).await;
    launcher.shutdown(early, loops, fetched).await
}

/// The class caps a worker declares: its jobs' `#[job(concurrency = n)]` (under the name the
/// worker looks them up by), then [`Worker::cap_class`](super::Worker::cap_class), which
/// replaces a class's cap.
fn declared_class_caps(registry: &Registry, config: &WorkerConfig) -> Vec<(String, u32)> {
    let mut caps: Vec<(String, u32)> = registry
        .iter()
        .filter_map(|job| Some((job.name().to_owned(), job.options().concurrency?)))
        .collect();
    for (class, cap) in &config.class_caps {
        caps.retain(|(known, _)| known != class);
        caps.push((class.clone(), *cap));
    }
    caps
}

/// Step 1: checks the parts and builds the shared state; returns the launcher and the loop of
/// the acker the shared state holds.
fn prepare(parts: Parts, mode: Mode, os_signals: bool) -> Result<(Launcher, AckLoop), Error> {
    let registry = match parts.registry {
        Some(registry) => registry,
        None => Registry::from_inventory()?,
    };
    check_state(&registry, &parts.state)?;
    parts.config.validate()?;
    let periodic = super::periodic::entries_of(&registry, &parts.config, &parts.periodic)?;
    let client = match parts.client {
        Some(client) => client,
        None => Client::global()?,
    };
    let config = parts.config;
    let concurrency = config.total_concurrency();
    let identity = identity::new_identity();
    let working = client.keys().working(&identity);
    let in_flight = Arc::new(InFlight::default());
    let busy = Arc::clone(&in_flight);
    parts
        .metrics
        .attach(concurrency, move || busy.running().len());
    let leases = Arc::new(crate::cap::Leases::new(config.heartbeat_ttl));
    let class_caps = crate::cap::class::ClassCaps::new(declared_class_caps(&registry, &config));
    let (acker, ack_loop) = Acker::new(
        client.clone(),
        working.clone(),
        Arc::clone(&in_flight),
        Arc::clone(&leases),
    );
    let settler = Settler::new(
        client.clone(),
        working.clone(),
        config.dead_limits(),
        Arc::clone(&leases),
    );
    let shared = Arc::new(Shared {
        identity,
        working,
        client,
        registry,
        state: parts.state,
        middleware: parts.middleware,
        hooks: parts.hooks,
        counters: Counters::default(),
        metrics: parts.metrics,
        policy: RetryPolicy {
            max_retries: config.max_retries,
        },
        settler,
        concurrency,
        max_recoveries: config.max_recoveries,
        gate: Arc::default(),
        stuck: AtomicBool::new(false),
        in_flight,
        acker,
        pulse: Arc::new(Pulse::new(config.liveness_ttl())),
        leases,
        class_caps,
    });
    let launcher = Launcher {
        shared,
        config,
        mode,
        os_signals,
        control: Control::default(),
        notifier: Notifier::from_env(),
        quiet_announced: false,
        periodic,
        #[cfg(feature = "postgres")]
        outbox: parts.outbox,
    };
    Ok((launcher, ack_loop))
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

/// A worker on its way from start to exit.
struct Launcher {
    /// What the worker's tasks share.
    shared: Arc<Shared>,
    /// The settings.
    config: WorkerConfig,
    /// How long it runs.
    mode: Mode,
    /// Whether it listens for OS signals (and may exit the process when a job blocks).
    os_signals: bool,
    /// The phase signals.
    control: Control,
    /// systemd's notifications.
    notifier: Notifier,
    /// The quiet hooks have run.
    quiet_announced: bool,
    /// The periodic entries, checked.
    periodic: Vec<Entry>,
    /// The outbox's relay, when the worker was given one.
    #[cfg(feature = "postgres")]
    outbox: Option<crate::outbox::Relay>,
}

impl Launcher {
    /// Step 1, continued: starts the acker and, for `run`, the signal listener.
    fn start_early(&self, ack_loop: AckLoop) -> Early {
        let exit = self.control.exit_phase();
        let acker = Running::spawn(exit, |shutdown| ack_loop.run(shutdown));
        let signals = self.os_signals.then(|| {
            let shared = Arc::clone(&self.shared);
            let listener = Signals::new(self.control.clone(), move || shared.dump_running());
            Running::spawn(exit, |shutdown| listener.run(shutdown))
        });
        Early {
            acker,
            signals,
            dashboard: None,
            health: None,
        }
    }

    /// What the health probes read (`health.rs`): the heartbeat, bounded by its TTL.
    fn probes(&self) -> Probes {
        Probes::new(
            Arc::clone(&self.shared.pulse),
            self.control.clone(),
            self.shared.client.clone(),
            self.config.heartbeat_ttl,
        )
    }

    /// Step 2: binds the health endpoint's address, when `--health` asks for one and the
    /// worker runs until stopped, and serves it until the worker has stopped.
    async fn serve_health(&self) -> Result<Option<Running<()>>, Error> {
        let Some(address) = self
            .config
            .health
            .filter(|_| self.mode == Mode::UntilStopped)
        else {
            return Ok(None);
        };
        let server = HealthServer::bind(self.probes(), address).await?;
        let exit = self.control.exit_phase();
        Ok(Some(Running::spawn(exit, |shutdown| server.run(shutdown))))
    }

    /// Step 3: waits until Redis answers, logging while it does not; `false` when asked to
    /// stop first.
    async fn connect(&self, stop: &mut StopRequest<'_>) -> bool {
        let shared = &self.shared;
        let wait = async {
            let mut backoff = Backoff::connecting();
            loop {
                match shared.redis().command::<String>(&redis::cmd("PING")).await {
                    Ok(_) => return,
                    Err(error) => tracing::warn!(%error, "waiting for Redis"),
                }
                tokio::time::sleep(backoff.next()).await;
            }
        };
        let connected = tokio::select! {
            () = wait => true,
            () = stop.requested() => false,
            () = self.control.stopped() => false,
        };
        connected && !self.control.is_stopping()
    }

    /// Step 4: binds the dashboard's address, when `--web` asks for one and the worker runs
    /// until stopped, and serves it (with the health probes beside it) until the stop phase.
    async fn serve_dashboard(&self) -> Result<Option<Running<()>>, Error> {
        let Some(address) = self.config.web.filter(|_| self.mode == Mode::UntilStopped) else {
            return Ok(None);
        };
        let server = DashboardServer::bind(
            &self.shared.client,
            &self.config,
            address,
            self.probes(),
            &self.shared.metrics,
        )
        .await?;
        let stop = self.control.stop_phase();
        Ok(Some(Running::spawn(stop, |shutdown| server.run(shutdown))))
    }

    /// Step 5: writes the first heartbeat, trying every second; `false` when asked to stop
    /// first.
    async fn first_beat(&self, heartbeat: &Heartbeat, stop: &mut StopRequest<'_>) -> bool {
        while let Err(error) = heartbeat.beat().await {
            tracing::warn!(%error, "cannot write the first heartbeat; trying again in 1 s");
            tokio::select! {
                () = stop.requested() => return false,
                () = self.control.stopped() => return false,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        true
    }

    /// Step 6: starts taking jobs for each capsule of `plans`, and the loops beside the
    /// fetchers.
    fn start_loops(&self, plans: Vec<Plan>, heartbeat: Heartbeat) -> Loops {
        let shared = &self.shared;
        let config = &self.config;
        let default = &plans[0];
        // `capsules`: every capsule as `name: concurrency [queues] mode`, the default first.
        let capsules: Vec<String> = plans
            .iter()
            .map(|plan| {
                format!(
                    "{}: {} {:?} {}",
                    plan.scope.name,
                    plan.scope.concurrency,
                    plan.order.names(),
                    plan.mode
                )
            })
            .collect();
        tracing::info!(
            identity = %shared.identity,
            concurrency = shared.concurrency,
            queues = ?default.order.names(),
            order = if default.order.is_strict() { "strict" } else { "weighted" },
            capsules = ?capsules,
            jobs = ?shared.registry.iter().map(|job| job.name()).collect::<Vec<_>>(),
            redis = %shared.client.url(),
            "worker started"
        );
        let until_stopped = self.mode == Mode::UntilStopped;
        let watchdog = until_stopped
            .then(|| self.notifier.watchdog())
            .flatten()
            .map(|watchdog| Running::spawn(self.control.exit_phase(), |s| watchdog.run(s)));
        if until_stopped {
            self.notifier.ready();
        }
        let fetchers: Vec<Fetcher> = plans
            .into_iter()
            .map(|plan| {
                let slots = Arc::new(Semaphore::new(plan.scope.concurrency));
                Fetcher::new(
                    Arc::clone(shared),
                    plan.scope,
                    plan.order,
                    slots,
                    !until_stopped,
                    config.timeout,
                )
            })
            .collect();
        let fetcher = Running::spawn(self.control.quiet_phase(), |s| run_fetchers(fetchers, s));
        let mut pollers = Vec::new();
        if until_stopped {
            let scheduler = Scheduler::new(
                shared.client.clone(),
                config.poll_interval_average,
                config.average_scheduled_poll_interval,
            );
            pollers.push(Running::spawn(self.control.quiet_phase(), |s| {
                scheduler.run(s)
            }));
            if !self.periodic.is_empty() {
                let periodic = PeriodicLoop::new(shared.client.clone(), self.periodic.clone());
                pollers.push(Running::spawn(self.control.quiet_phase(), |s| {
                    periodic.run(s)
                }));
            }
            #[cfg(feature = "postgres")]
            if let Some(relay) = self.outbox.clone() {
                let relay = crate::outbox::RelayLoop::new(relay, shared.client.clone());
                pollers.push(Running::spawn(self.control.quiet_phase(), |s| relay.run(s)));
            }
            let recovery = Recovery::new(Arc::clone(shared), config.recovery_interval);
            pollers.push(Running::spawn(self.control.stop_phase(), |s| {
                recovery.run(s)
            }));
        }
        let heartbeat = Arc::new(heartbeat);
        let beating = Arc::clone(&heartbeat);
        let beating = Running::spawn(self.control.exit_phase(), |s| beating.run(s));
        let liveness = Liveness::new(
            shared.client.clone(),
            shared.keys().alive(&shared.identity),
            config.liveness_interval(),
            Arc::clone(&shared.pulse),
        );
        let liveness = Running::spawn_thread(self.control.exit_phase(), "jobs-liveness", |s| {
            liveness.run(s)
        });
        Loops {
            fetcher,
            pollers,
            heartbeat: (beating, heartbeat),
            liveness,
            watchdog,
        }
    }

    /// Step 7: runs until the stop phase (or, draining, until the fetchers end). Announces
    /// quiet once; when the fetchers end at quiet, hands back what their idle fetches bring, on
    /// a task of its own: a stop arriving meanwhile must not wait behind blocking fetches. A
    /// fetcher that fails, running until stopped, stops the process: it would otherwise go on
    /// without fetchers, alive to its orchestrator and taking no job.
    async fn steady(
        &mut self,
        fetcher: &mut Running<Vec<FetcherLeft>>,
        stop: &mut StopRequest<'_>,
    ) -> Option<FetcherEnd> {
        let mut fetched = None;
        loop {
            tokio::select! {
                () = stop.requested() => self.control.stop(),
                () = self.control.stopped() => break,
                () = self.control.quieted(), if !self.quiet_announced => {
                    self.quiet_announced = true;
                    tracing::info!("quiet: taking no more jobs");
                    self.shared.hooks.fire(Lifecycle::Quiet);
                }
                finished = fetcher.task(), if fetched.is_none() => {
                    let end = self.end_fetchers(finished);
                    let failed = end.failed.is_some();
                    fetched = Some(end);
                    if self.mode == Mode::UntilIdle {
                        break;
                    }
                    if failed {
                        tracing::error!(
                            "a capsule's fetcher stopped unexpectedly; stopping the worker"
                        );
                        self.control.stop();
                    }
                }
            }
        }
        fetched
    }

    /// Step 8: shuts down, in order.
    async fn shutdown(
        mut self,
        early: Early,
        loops: Loops,
        fetched: Option<FetcherEnd>,
    ) -> Result<(), Error> {
        self.begin_shutdown();
        // The dashboard ends with the stop phase; open requests may finish on their own.
        drop(early.dashboard);
        let FetcherEnd {
            tasks,
            handing_back,
            failed,
        } = match fetched {
            Some(fetched) => fetched,
            None => self.end_fetchers(loops.fetcher.join().await),
        };
        // A failed fetcher's capsule lost its jobs' tasks; the others' jobs still finish, are
        // acknowledged, and every job left in the working list is handed back, as in any
        // shutdown.
        let (handed_back, ()) = tokio::join!(
            async { handing_back.await.unwrap_or_default() },
            self.finish_running(tasks),
        );
        // Finished jobs leave the working list before what is left in it is handed back. The
        // acker is not waited for: a job still blocking its thread may ack later, in vain.
        if tokio::time::timeout(FLUSH_FOR, self.shared.acker.flush())
            .await
            .is_err()
        {
            tracing::warn!("cannot acknowledge the finished jobs; they stay for the hand-back");
        }
        drop(early.acker);
        self.hand_back_leftovers(handed_back).await;
        for poller in loops.pollers {
            let _ = poller.join().await;
        }
        let (beating, heartbeat) = loops.heartbeat;
        beating.stop().await;
        loops.liveness.stop().await;
        self.clear(&heartbeat).await;
        if let Some(watchdog) = loops.watchdog {
            watchdog.stop().await;
        }
        self.control.exit();
        if let Some(signals) = early.signals {
            let _ = signals.join().await;
        }
        // The health endpoint ends with the exit phase; open requests may finish on their own.
        drop(early.health);
        tracing::info!("worker stopped");
        let failed = failed.map(|(capsule, error)| Error::Worker {
            reason: format!("the fetcher of the capsule `{capsule}` stopped unexpectedly: {error}"),
        });
        if self.os_signals && self.shared.stuck.load(Ordering::Relaxed) {
            // A job blocking its thread would keep the runtime from shutting down; its job is
            // already handed back, so the process exits now, as Sidekiq does after its timeout.
            tracing::warn!("exiting with jobs still blocking their threads");
            if let Some(error) = &failed {
                tracing::error!(%error, "the worker failed");
                std::process::exit(1);
            }
            std::process::exit(0);
        }
        failed.map_or(Ok(()), Err)
    }

    /// Enters the stop phase, tells systemd, and runs the quiet and shutdown hooks.
    fn begin_shutdown(&mut self) {
        self.control.stop();
        if self.mode == Mode::UntilStopped {
            self.notifier.stopping();
            tracing::info!(timeout = ?self.config.timeout, "shutting down");
        }
        if !self.quiet_announced {
            self.shared.hooks.fire(Lifecycle::Quiet);
        }
        self.shared.hooks.fire(Lifecycle::Shutdown);
    }

    /// Splits what the fetchers left into their jobs' tasks, to wait for, and the hand-back of
    /// their idle fetches, keeping every capsule's whatever another's did; with the first
    /// failure, when a fetcher's task (or the task running them) failed.
    fn end_fetchers(&self, finished: Result<Vec<FetcherLeft>, JoinError>) -> FetcherEnd {
        let (tasks, idles, failed) = match finished {
            Ok(left) => split_fetchers(left),
            Err(error) => (Vec::new(), Vec::new(), Some(("every".to_owned(), error))),
        };
        if let Some((capsule, error)) = &failed {
            tracing::error!(%capsule, %error, "a capsule's fetcher stopped unexpectedly");
        }
        FetcherEnd {
            tasks,
            handing_back: self.hand_back_idle(idles),
            failed,
        }
    }

    /// Hands back, on a task of its own, the jobs the idle fetches brought or took ahead after
    /// the fetchers stopped; the task returns how many.
    fn hand_back_idle(&self, idles: Vec<IdleFetch>) -> JoinHandle<usize> {
        let shared = Arc::clone(&self.shared);
        let deadline = tokio::time::Instant::now() + BLOCK + HAND_BACK_FOR;
        tokio::spawn(async move {
            // Each capsule's waits end at once, side by side rather than one after another.
            let finishing: Vec<JoinHandle<Vec<Fetched>>> = idles
                .into_iter()
                .map(|idle| {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move { idle.finish(&shared).await })
                })
                .collect();
            let mut jobs = Vec::new();
            for finished in finishing {
                jobs.extend(finished.await.unwrap_or_default());
            }
            // Bounded as a whole: what is not handed back by then, recovery hands back.
            let handing_back = async {
                for job in &jobs {
                    shared.settler.requeue(job, deadline).await;
                }
            };
            let _ = tokio::time::timeout_at(deadline, handing_back).await;
            jobs.len()
        })
    }

    /// Waits up to the timeout for running jobs; hands the jobs of those still running back to
    /// their queues, then cancels them. Handing back first means a task that settles late finds
    /// its job gone and changes nothing; cancelling is bounded, because a job blocking its
    /// thread does not stop at cancellation.
    async fn finish_running(&self, mut tasks: Vec<JoinSet<()>>) {
        let running: usize = tasks.iter().map(JoinSet::len).sum();
        if running > 0 {
            tracing::info!(running, "waiting for running jobs");
        }
        let all_done = async {
            for capsule in &mut tasks {
                while capsule.join_next().await.is_some() {}
            }
        };
        let finished = tokio::select! {
            done = tokio::time::timeout(self.config.timeout, all_done) => done.is_ok(),
            () = self.control.stopped_now() => false,
        };
        if finished {
            return;
        }
        let unfinished: Vec<Fetched> = self
            .shared
            .in_flight
            .running()
            .into_iter()
            .map(|running| running.job)
            .collect();
        let deadline = tokio::time::Instant::now() + HAND_BACK_FOR;
        let handing_back = async {
            for job in &unfinished {
                self.shared.settler.requeue_started(job, deadline).await;
            }
        };
        // Bounded as a whole: what is not handed back by then, recovery hands back.
        let _ = tokio::time::timeout_at(deadline, handing_back).await;
        tracing::warn!(
            count = unfinished.len(),
            "handed unfinished jobs back to the front of their queues"
        );
        for capsule in &mut tasks {
            capsule.abort_all();
        }
        let all_cancelled = async {
            for capsule in &mut tasks {
                while capsule.join_next().await.is_some() {}
            }
        };
        if tokio::time::timeout(CANCEL_FOR, all_cancelled)
            .await
            .is_err()
        {
            tracing::warn!("some jobs did not stop when cancelled (blocking code?); leaving them");
            self.shared.stuck.store(true, Ordering::Relaxed);
        }
    }

    /// Hands back anything still in the working list (a reply lost on the way, an
    /// acknowledgement that never landed), so a stopped worker leaves nothing behind; `already`
    /// were handed back from the idle fetch. A leftover whose lease is noted
    /// ([`crate::cap::Leases`]) gives that queue lease back in its hand-back step (class leases
    /// are never a pending job's: see [`crate::cap::LeaseKind`]); the leases still noted after
    /// that, of either kind (their jobs gone, not handed back in time, or a class lease whose
    /// release never landed) are released too, so a stopped worker holds no slot of any cap.
    async fn hand_back_leftovers(&self, already: usize) {
        let deadline = tokio::time::Instant::now() + HAND_BACK_FOR;
        let listed = tokio::time::timeout_at(deadline, self.shared.working_list()).await;
        let leftovers = match listed {
            Ok(Ok(leftovers)) => leftovers,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot check the working list; recovery will");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!("cannot check the working list in time; recovery will");
                Vec::new()
            }
        };
        let mut noted = self.shared.leases.snapshot();
        // A leftover's hand-back releases its queue lease; a class lease still noted (its
        // release never landed) is no job's to give back: released with the rest below.
        crate::cap::queue_leases_only(&mut noted);
        let leftovers: Vec<Fetched> = leftovers
            .into_iter()
            .map(|job| {
                let lease = noted.get_mut(&job.json[..]).and_then(Vec::pop);
                job.with_lease(lease)
            })
            .collect();
        let handing_back = async {
            for job in &leftovers {
                self.shared.settler.requeue(job, deadline).await;
            }
        };
        // Bounded as a whole: what is not handed back by then, recovery hands back.
        let _ = tokio::time::timeout_at(deadline, handing_back).await;
        self.release_leases_left(deadline).await;
        if already + leftovers.len() > 0 {
            tracing::info!(
                count = already + leftovers.len(),
                "handed jobs taken after quiet back to their queues"
            );
        }
    }

    /// Releases every lease this process still holds (shutdown, once no job of it runs or
    /// waits): otherwise each would keep its slot until it ran out.
    async fn release_leases_left(&self, deadline: tokio::time::Instant) {
        let mut pipeline = redis::pipe();
        if !self
            .shared
            .leases
            .add_release_of_all_to(&mut pipeline, self.shared.keys())
        {
            return;
        }
        let released =
            tokio::time::timeout_at(deadline, self.shared.redis().query::<()>(&pipeline)).await;
        match released {
            Ok(Ok(())) => tracing::info!("released the leases left on capped queues"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot release the leases left; they run out by themselves")
            }
            Err(_) => tracing::warn!("cannot release the leases left in time; they run out"),
        }
    }

    /// Writes the last counters and removes the process's heartbeat, as Sidekiq does on a
    /// clean exit.
    async fn clear(&self, heartbeat: &Heartbeat) {
        let shared = &self.shared;
        if let Err(error) = shared.counters.flush(shared.redis(), shared.keys()).await {
            tracing::warn!(%error, "cannot write the last counters");
        }
        if let Err(error) = shared.metrics.flush(shared.redis(), shared.keys()).await {
            tracing::warn!(%error, "cannot write the last execution metrics");
        }
        if let Err(error) = heartbeat.clear().await {
            tracing::warn!(%error, "cannot clear the heartbeat; it expires by itself");
        }
    }
}

/// Runs the capsules' fetchers side by side, each on a task of its own, until `shutdown` (the
/// quiet phase) or, draining, until every capsule is idle; returns what each left, in order.
/// A fetcher that fails quiets the others, so the launcher learns of it without waiting for a
/// quiet (or, draining, for an idle moment that one could no longer report).
async fn run_fetchers(fetchers: Vec<Fetcher>, shutdown: CancellationToken) -> Vec<FetcherLeft> {
    let quiet = shutdown.child_token();
    let running: Vec<(String, JoinHandle<FetcherLeft>)> = fetchers
        .into_iter()
        .map(|fetcher| {
            let quiet = quiet.clone();
            let capsule = fetcher.capsule_name().to_owned();
            let name = capsule.clone();
            let running = tokio::spawn(async move {
                let left = tokio::spawn(fetcher.run(quiet.clone())).await;
                if left.is_err() {
                    quiet.cancel();
                }
                left.map_err(|error| (name, error))
            });
            (capsule, running)
        })
        .collect();
    let mut left = Vec::with_capacity(running.len());
    for (capsule, fetcher) in running {
        left.push(fetcher.await.unwrap_or_else(|error| Err((capsule, error))));
    }
    left
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;
    use tokio::task::JoinSet;

    use super::{FetcherLeft, split_fetchers};
    use crate::worker::fetch::IdleFetch;

    #[tokio::test]
    async fn a_failed_fetcher_leaves_the_others_jobs_running() {
        // The default capsule's fetcher failed; `single`'s ended well with a job still running.
        let failed = tokio::spawn(async { panic!("a fetcher's bug") })
            .await
            .unwrap_err();
        let (finish, finished) = oneshot::channel::<()>();
        let mut running = JoinSet::new();
        running.spawn(async move {
            let _ = finished.await;
        });
        let left: Vec<FetcherLeft> = vec![
            Err(("default".to_owned(), failed)),
            Ok((running, IdleFetch::new(Default::default()))),
        ];
        let (mut tasks, idles, failure) = split_fetchers(left);
        let (capsule, error) = failure.expect("the failure is kept");
        assert_eq!(capsule, "default");
        assert!(error.is_panic());
        assert_eq!((tasks.len(), idles.len()), (1, 1), "single's are kept");
        // Its job was not cancelled: it runs to its end.
        finish.send(()).unwrap();
        let ended = tasks[0].join_next().await.expect("the job's task");
        assert!(ended.is_ok(), "the job ran to its end: {ended:?}");
    }
}

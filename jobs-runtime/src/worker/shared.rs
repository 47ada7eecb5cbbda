//! What the worker's tasks share: who this process is, what it runs, and the jobs it holds.
//!
//! One value per worker, behind an `Arc`, built once by the launcher and read by the fetcher,
//! every job's task, the heartbeat and crash recovery. It owns no loop and starts nothing.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::ack::Acker;
use super::hooks::Hooks;
use super::in_flight::InFlight;
use super::liveness::Pulse;
use super::middleware::DynServerMiddleware;
use super::retry::RetryPolicy;
use super::settle::Settler;
use super::stats::Counters;
use super::unit::Fetched;
use crate::client::Client;
use crate::error::Error;
use crate::payload::Payload;
use crate::raw_job::RawJob;
use crate::redis::Connection;
use crate::redis::keys::Keys;
use crate::registry::Registry;
use crate::state::JobState;

/// Everything the worker's tasks share.
pub(crate) struct Shared {
    /// This process's identity (`hostname:pid:<12 hex>`), as Sidekiq names processes.
    pub(crate) identity: String,
    /// The key of this process's working list, where taken jobs wait until settled.
    pub(crate) working: String,
    /// The Redis connection and namespace of every key the worker touches.
    pub(crate) client: Client,
    /// The job types this worker runs.
    pub(crate) registry: Registry,
    /// The values jobs ask for with `#[state]`.
    pub(crate) state: JobState,
    /// The server middleware, outermost first.
    pub(crate) middleware: Vec<Arc<dyn DynServerMiddleware>>,
    /// Lifecycle hooks and error, death and retries-exhausted handlers.
    pub(crate) hooks: Hooks,
    /// `stat:processed` and `stat:failed` counted since the last flush.
    pub(crate) counters: Counters,
    /// Execution metrics per class and minute, written with the counters (`crate::metrics`).
    pub(crate) metrics: crate::metrics::ExecutionMetrics,
    /// What `retry: true` means, for failed jobs.
    pub(crate) policy: RetryPolicy,
    /// Moves jobs out of working lists.
    pub(crate) settler: Settler,
    /// The most jobs run at once: every capsule's concurrency, added up (each capsule's
    /// fetcher knows its own, `capsule.rs`).
    pub(crate) concurrency: usize,
    /// How many recoveries from dead processes bury a job; one short of it, a job runs alone.
    pub(crate) max_recoveries: u32,
    /// The process-wide gate of running jobs: every job's task holds it for reading while its
    /// job runs (until its acknowledgement is queued); a job one crash from the dead set takes
    /// it for writing to run alone in the whole process, every capsule included
    /// (`fetch/mod.rs`, `Fetcher::run_alone`). While one waits for it or holds it, no fetcher
    /// starts a job. Uncontended, a read costs one atomic step per job, and no Redis command.
    pub(crate) gate: Arc<tokio::sync::RwLock<()>>,
    /// Set when cancelled jobs would not stop (blocking code): `run()` then exits the process.
    pub(crate) stuck: AtomicBool,
    /// The jobs held: for shutdown to hand back, for the heartbeat's work hash, and for the
    /// sweep to know which working-list entries are held.
    pub(crate) in_flight: Arc<InFlight>,
    /// Acknowledges finished jobs in batches (`ack.rs`).
    pub(crate) acker: Acker,
    /// Whether this process's liveness renewals land (`liveness.rs`): the fetcher takes no job
    /// while they falter, and forgets the jobs it took ahead after a lapse.
    pub(crate) pulse: Arc<Pulse>,
    /// This process's leases on capped queues and classes: their counter and lifetime
    /// (`crate::cap`).
    pub(crate) leases: Arc<crate::cap::Leases>,
    /// Which job classes are capped (`crate::cap::class`), read when a job starts.
    pub(crate) class_caps: crate::cap::class::ClassCaps,
}

impl Shared {
    /// The shared connection.
    pub(crate) fn redis(&self) -> &Connection {
        self.client.redis()
    }

    /// The key names, in the client's namespace.
    pub(crate) fn keys(&self) -> &Keys {
        self.client.keys()
    }

    /// Logs every running job (SIGTTIN, or `TTIN` from a dashboard).
    pub(crate) fn dump_running(&self) {
        let now = chrono::Utc::now().timestamp();
        let running = self.in_flight.running();
        tracing::info!(count = running.len(), "running jobs");
        for running in running {
            let (class, jid) = Payload::from_json(&running.job.text())
                .map(|payload| (payload.class, payload.jid.to_string()))
                .unwrap_or_default();
            tracing::info!(
                tid = %running.tid,
                %jid,
                %class,
                queue = %running.job.queue,
                elapsed_s = now - running.since,
                "running"
            );
        }
    }

    /// Every job in this process's working list, as taken (its queue read from its JSON).
    pub(crate) async fn working_list(&self) -> Result<Vec<Fetched>, Error> {
        let listed: Vec<Vec<u8>> = self
            .redis()
            .command(redis::cmd("LRANGE").arg(&self.working).arg(0).arg(-1))
            .await?;
        Ok(listed
            .into_iter()
            .map(|json| Fetched::new(queue_of(&json), json))
            .collect())
    }
}

/// The queue a job names, for a job found in a working list without the queue it was taken
/// from; `default` when it names none (or is no job: it is buried from there).
pub(crate) fn queue_of(json: &[u8]) -> String {
    RawJob::parse(json)
        .ok()
        .and_then(|job| job.get_as::<String>("queue"))
        .filter(|queue| !queue.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

//! The heartbeat: what makes a process visible to Sidekiq's Web UI and API.
//!
//! Every `heartbeat_interval` (10 s), in one `MULTI`:
//! - `SADD processes <identity>`;
//! - `HSET <identity>` with `info` (JSON), `busy`, `beat`, `quiet`, `rss`, `rtt_us`,
//!   `concurrency` (every capsule's, added up) and `jobs_liveness`, expiring after
//!   `heartbeat_ttl` (60 s); `info` lists every capsule's queues in `queues`, and each capsule
//!   in Sidekiq 7's `weights` and Sidekiq 8's `capsules`;
//! - `<identity>:work` (and `<identity>:workers`, which Sidekiq 6.4.0–6.4.1 read) rewritten with
//!   one field per running job, expiring after `heartbeat_ttl` but never under [`WORK_TTL_MIN`]:
//!   crash recovery reads a dead process's `:work` to tell the jobs it was running from those it
//!   had only taken ahead;
//! - `jobs:alive:<identity>` renewed (between beats, `liveness.rs` renews it from a thread of its
//!   own; crash recovery reads it);
//! - `SADD jobs:workers <identity>`, and `RPOP <identity>-signals`, whose `TSTP`, `TERM` or
//!   `TTIN` it obeys.
//!
//! Then it renews the leases this process holds on capped queues and classes (`crate::cap`),
//! rereads which job classes are capped and brings back the parked jobs of those it runs once no
//! live lease of theirs is left (`crate::cap::class`), and flushes the counters and the execution metrics (`crate::metrics`). It
//! beats through shutdown, and on a clean exit the process removes itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::capsule::Plan;
use super::config::WorkerConfig;
use super::control::Control;
use super::hooks::Lifecycle;
use super::identity;
use super::shared::Shared;
use super::tasks::sleep_or;
use crate::error::Error;
use crate::timestamp::Timestamp;

/// The least time a beat keeps the work hash (Sidekiq's TTL), so that crash recovery, which
/// comes within the liveness TTL (at most 10 s) and a sweep, still finds it with a short
/// `heartbeat_ttl`. Sidekiq's pages show a process's work only while its hash lives.
pub(crate) const WORK_TTL_MIN: Duration = Duration::from_secs(60);

/// One process's heartbeat.
pub(crate) struct Heartbeat {
    /// The process it speaks for.
    shared: Arc<Shared>,
    /// Where the dashboard's signals go, and whether the process is quiet.
    control: Control,
    /// The `info` JSON, written every beat (Sidekiq caches it too).
    info: String,
    /// The time between beats.
    interval: Duration,
    /// How long a beat keeps the process hash.
    ttl: Duration,
    /// How long the liveness key lives (`liveness.rs`).
    liveness_ttl: Duration,
}

impl Heartbeat {
    /// The heartbeat of the process `shared`, configured by `config`, running `capsules` (the
    /// default one first).
    pub(crate) fn new(
        shared: Arc<Shared>,
        control: Control,
        config: &WorkerConfig,
        capsules: &[Plan],
    ) -> Self {
        let info = process_info(&shared.identity, config, capsules);
        Self {
            shared,
            control,
            info,
            interval: config.heartbeat_interval,
            ttl: config.heartbeat_ttl,
            liveness_ttl: config.liveness_ttl(),
        }
    }

    /// Beats until `shutdown`, which comes after the last job is handed back, so that a process
    /// waiting for its jobs to finish is not presumed dead (the launcher then clears the
    /// heartbeat). Cancellation-safe: each beat is one transaction.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if sleep_or(&shutdown, self.interval).await {
                return;
            }
            if let Err(error) = self.beat().await {
                tracing::warn!(%error, "cannot write the heartbeat; will try again");
            }
        }
    }

    /// One beat: counters, the process hash, its running jobs, and one pending signal.
    pub(crate) async fn beat(&self) -> Result<(), Error> {
        let shared = &self.shared;
        let started = Instant::now();
        shared
            .redis()
            .command::<String>(&redis::cmd("PING"))
            .await?;
        let rtt_us = started.elapsed().as_micros() as u64;

        let keys = shared.keys();
        let identity = &shared.identity;
        let process = keys.process(identity);
        // Sidekiq 6.4.2+ reads `:work`, 6.4.0 and 6.4.1 `:workers`: write both.
        let work_keys = [keys.process_work(identity), keys.process_workers(identity)];
        let ttl = self.ttl.as_millis().max(1) as i64;
        let work_ttl = self.ttl.max(WORK_TTL_MIN).as_millis() as i64;
        let running = shared.in_flight.running();
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        pipeline.sadd(keys.processes(), identity).ignore();
        pipeline
            .hset_multiple(
                &process,
                &[
                    ("info", self.info.clone()),
                    ("busy", running.len().to_string()),
                    ("beat", Timestamp::now().as_epoch_seconds().to_string()),
                    ("quiet", self.control.is_quiet().to_string()),
                    ("rss", resident_kilobytes().to_string()),
                    ("rtt_us", rtt_us.to_string()),
                    ("concurrency", shared.concurrency.to_string()),
                    // Marks a process whose liveness is its `jobs:alive:` key (recovery.rs).
                    ("jobs_liveness", self.liveness_ttl.as_millis().to_string()),
                ],
            )
            .ignore();
        pipeline.pexpire(&process, ttl).ignore();
        // Renewed here too, so the key exists before the first job is taken.
        pipeline
            .cmd("SET")
            .arg(keys.alive(identity))
            .arg(1)
            .arg("PX")
            .arg(self.liveness_ttl.as_millis().max(1).to_string())
            .ignore();
        let fields: Vec<(String, String)> = running
            .iter()
            .map(|running| {
                let value = json!({
                    "queue": &*running.job.queue,
                    "payload": running.job.text(),
                    "run_at": running.since,
                });
                (running.tid.clone(), value.to_string())
            })
            .collect();
        for work in &work_keys {
            pipeline.del(work).ignore();
            if !fields.is_empty() {
                pipeline.hset_multiple(work, &fields).ignore();
                pipeline.pexpire(work, work_ttl).ignore();
            }
        }
        pipeline.sadd(keys.workers(), identity).ignore();
        pipeline.rpop(keys.process_signals(identity), None);
        let sent = Instant::now();
        let (signal,): (Option<String>,) = shared.redis().query(&pipeline).await?;
        shared.pulse.renewed_at(sent);
        // Every lease this process holds, its job running or waiting for a slot (`crate::cap`).
        if let Err(error) = shared.leases.renew(&shared.client).await {
            tracing::warn!(%error, "cannot renew the leases on capped queues and classes; will try again");
        }
        self.unpark().await;
        // Counters after the heartbeat, so a slow flush never delays the beat.
        if let Err(error) = shared.counters.flush(shared.redis(), shared.keys()).await {
            tracing::warn!(%error, "cannot write counters; will try again");
        }
        if let Err(error) = shared.metrics.flush(shared.redis(), shared.keys()).await {
            tracing::warn!(%error, "cannot write execution metrics; those of this beat are dropped");
        }
        if let Some(signal) = signal {
            tracing::info!(%signal, "signal from the dashboard");
            if signal == "TTIN" {
                shared.dump_running();
            } else if !self.control.obey(&signal) {
                tracing::warn!(%signal, "ignoring an unknown signal");
            }
        }
        shared.hooks.fire(Lifecycle::Beat);
        Ok(())
    }

    /// Rereads which job classes are capped (one `SMEMBERS jobs:caps:class`), then, for each capped
    /// class this worker runs, brings its parked jobs back to their queues while there is room
    /// (`scripts/cap_class_release.lua`, releasing nothing): so that jobs parked while a holder
    /// was killed come back once its lease ran out. Once per beat, never per job.
    async fn unpark(&self) {
        let shared = &self.shared;
        let capped = match shared.class_caps.refresh(&shared.client).await {
            Ok(capped) => capped,
            Err(error) => {
                tracing::warn!(%error, "cannot read the job classes' caps; will try again");
                return;
            }
        };
        let declared = shared.class_caps.declared();
        let runs = |class: &str| {
            shared.registry.get(class).is_some() || declared.iter().any(|(known, _)| known == class)
        };
        for class in capped.iter().filter(|class| runs(class)) {
            match crate::cap::class::unpark(&shared.client, class).await {
                Ok(0) => {}
                Ok(moved) => tracing::info!(%class, moved, "parked jobs back in their queues"),
                Err(error) => {
                    tracing::warn!(%class, %error, "cannot bring parked jobs back; will try again");
                }
            }
        }
    }

    /// Removes this process from `processes` and deletes its heartbeat and work hash, as
    /// Sidekiq does on a clean exit; leaves `jobs:workers` only when the working list is empty.
    pub(crate) async fn clear(&self) -> Result<(), Error> {
        let keys = self.shared.keys();
        let identity = &self.shared.identity;
        let left: u64 = self
            .shared
            .redis()
            .command(redis::cmd("LLEN").arg(&self.shared.working))
            .await?;
        let mut pipeline = redis::pipe();
        pipeline.srem(keys.processes(), identity).ignore();
        pipeline.del(keys.process(identity)).ignore();
        pipeline.del(keys.process_work(identity)).ignore();
        pipeline.del(keys.process_workers(identity)).ignore();
        pipeline.del(keys.alive(identity)).ignore();
        if left == 0 {
            pipeline.srem(keys.workers(), identity).ignore();
        }
        self.shared.redis().query::<()>(&pipeline).await
    }
}

/// The heartbeat's `info` JSON, with Sidekiq's fields: `concurrency` is every capsule's added
/// up, `queues` every capsule's queues (the default capsule's first), `weights` (Sidekiq 7)
/// one `{queue: weight}` per capsule, and `capsules` (Sidekiq 8.0.9+) each capsule by name,
/// with its `concurrency`, `mode` and `weights`. Written in order (queues in each capsule's
/// order), which a `serde_json::Value` would sort.
fn process_info(identity: &str, config: &WorkerConfig, capsules: &[Plan]) -> String {
    let mut queues: Vec<&str> = Vec::new();
    for plan in capsules {
        for name in plan.order.names() {
            if !queues.contains(&name.as_str()) {
                queues.push(name);
            }
        }
    }
    let info = Info {
        hostname: identity::hostname(),
        started_at: Timestamp::now(),
        pid: std::process::id(),
        tag: config.tag.clone().unwrap_or_default(),
        concurrency: capsules.iter().map(|plan| plan.scope.concurrency).sum(),
        queues,
        labels: &config.labels,
        identity,
        version: concat!("jobs ", env!("CARGO_PKG_VERSION")),
        weights: capsules.iter().map(|plan| Weights(&plan.weights)).collect(),
        capsules: Capsules(capsules),
    };
    serde_json::to_string(&info).unwrap_or_else(|_| json!({ "identity": identity }).to_string())
}

/// The `info` JSON's fields, in Sidekiq's order.
#[derive(Serialize)]
struct Info<'a> {
    /// The machine's host name.
    hostname: String,
    /// When the process started, in epoch seconds with a fraction.
    started_at: Timestamp,
    /// The process id.
    pid: u32,
    /// The `-g` / `:tag:` name, or empty.
    tag: String,
    /// How many jobs run at once: every capsule's concurrency, added up.
    concurrency: usize,
    /// Every capsule's queues, each once, the default capsule's first.
    queues: Vec<&'a str>,
    /// The `:labels:`.
    labels: &'a [String],
    /// The process's identity (`hostname:pid:<12 hex>`), as its key names it.
    identity: &'a str,
    /// `jobs <version>`, where Sidekiq writes its own version.
    version: &'static str,
    /// Sidekiq 7's `weights`: one `{queue: weight}` per capsule, the default one first.
    weights: Vec<Weights<'a>>,
    /// Sidekiq 8.0.9+'s `capsules`: each capsule by name with its concurrency, mode and
    /// weights.
    capsules: Capsules<'a>,
}

/// One capsule's `{queue: weight}`, in its queue order.
struct Weights<'a>(&'a [(String, u32)]);

impl Serialize for Weights<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (queue, weight) in self.0 {
            map.serialize_entry(queue, weight)?;
        }
        map.end()
    }
}

/// Sidekiq 8's `capsules`: `{name: {concurrency, mode, weights}}`, the default one first.
struct Capsules<'a>(&'a [Plan]);

impl Serialize for Capsules<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// One capsule's entry.
        #[derive(Serialize)]
        struct Entry<'a> {
            /// How many of its jobs run at once.
            concurrency: usize,
            /// Sidekiq 7's name for its order: `strict`, `random` or `weighted`.
            mode: &'static str,
            /// Its `{queue: weight}`, in its queue order.
            weights: Weights<'a>,
        }
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for plan in self.0 {
            let entry = Entry {
                concurrency: plan.scope.concurrency,
                mode: plan.mode,
                weights: Weights(&plan.weights),
            };
            map.serialize_entry(&plan.scope.name, &entry)?;
        }
        map.end()
    }
}

/// This process's resident memory in kilobytes, from `/proc/self/status` (0 where unknown).
fn resident_kilobytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.split_whitespace().next())
                .and_then(|kilobytes| kilobytes.parse().ok())
        })
        .unwrap_or(0)
}

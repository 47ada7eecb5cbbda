//! Execution metrics: per job class and minute, how many runs, how many failed, their total
//! time and a histogram of their times, in the keys Sidekiq 8 writes (`j|…` hashes, `h|…`
//! histograms), so Sidekiq's Metrics tab shows Rust jobs and the dashboard's shows Ruby's.
//!
//! A worker counts each run in memory (one short lock, no Redis call) and writes the counts with
//! each heartbeat and at exit, in one pipeline (`flush.rs`). The same counts, summed since the
//! process started, are what the Prometheus endpoint of `--web` exports for this process.
//! [`Worker::record_metrics(false)`](crate::Worker::record_metrics) turns them off.
//! `docs/metrics.md` has the keys, the TTLs and the decisions.

mod flush;
mod histogram;
mod tracker;

use std::sync::{Arc, OnceLock};

pub use flush::{MINUTE_TTL_SECONDS, TEN_MINUTES_TTL_SECONDS};
pub use histogram::{BUCKET_BOUNDS_MS, BUCKET_LABELS, BUCKETS, Histogram, bucket_of};
pub(crate) use tracker::Run;
#[cfg(feature = "web")]
pub(crate) use tracker::SECONDS_BOUNDS;
pub use tracker::{MAX_CLASSES, OTHER, QueueTotals};

use crate::error::Error;
use crate::redis::Connection;
use crate::redis::keys::Keys;

/// A worker's execution metrics: what it counts, and how busy it is. Cheap to clone (shared).
///
/// Get it from [`Worker::execution_metrics`](crate::Worker::execution_metrics) to serve this
/// process's figures on a dashboard of your own
/// ([`Dashboard::process_metrics`](crate::web::Dashboard::process_metrics)); `--web` does it.
#[derive(Clone, Default)]
pub struct ExecutionMetrics {
    inner: Arc<Inner>,
}

/// What the handle shares.
#[derive(Default)]
struct Inner {
    /// Off: nothing is counted nor written.
    off: std::sync::atomic::AtomicBool,
    /// The counts.
    tracker: tracker::Tracker,
    /// The worker's concurrency and how to count its running jobs, once it runs.
    process: OnceLock<Process>,
}

/// What a running worker tells its metrics about itself.
struct Process {
    /// The most jobs run at once.
    concurrency: usize,
    /// Counts the jobs running now.
    busy: Box<dyn Fn() -> usize + Send + Sync>,
}

impl std::fmt::Debug for ExecutionMetrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ExecutionMetrics")
            .field("enabled", &self.enabled())
            .field("concurrency", &self.concurrency())
            .finish_non_exhaustive()
    }
}

impl ExecutionMetrics {
    /// Whether runs are counted (on unless the worker turned them off).
    pub fn enabled(&self) -> bool {
        !self.inner.off.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Turns counting on or off (before the worker starts).
    pub(crate) fn set_enabled(&self, on: bool) {
        self.inner
            .off
            .store(!on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every class's runs per queue since the worker started, sorted by class and queue.
    pub fn totals(&self) -> Vec<QueueTotals> {
        self.inner.tracker.totals()
    }

    /// The worker's concurrency; `None` before it runs.
    pub fn concurrency(&self) -> Option<usize> {
        self.inner.process.get().map(|process| process.concurrency)
    }

    /// How many jobs the worker runs now; `None` before it runs.
    pub fn busy(&self) -> Option<usize> {
        self.inner.process.get().map(|process| (process.busy)())
    }

    /// Tells the metrics the worker's concurrency and how to count its running jobs.
    pub(crate) fn attach(
        &self,
        concurrency: usize,
        busy: impl Fn() -> usize + Send + Sync + 'static,
    ) {
        let _ = self.inner.process.set(Process {
            concurrency,
            busy: Box::new(busy),
        });
    }

    /// Counts one run of the job `payload` taken from `queue`, as Sidekiq's metrics middleware
    /// does: under its `wrapped` class when it has one (ActiveJob), else its class.
    pub(crate) fn record(
        &self,
        payload: &crate::payload::Payload,
        queue: &str,
        elapsed: std::time::Duration,
        failed: bool,
    ) {
        if !self.enabled() {
            return;
        }
        let class = payload
            .extra
            .get("wrapped")
            .and_then(serde_json::Value::as_str)
            .filter(|wrapped| !wrapped.is_empty())
            .unwrap_or(&payload.class);
        let minute = crate::timestamp::epoch_seconds().div_euclid(60);
        self.inner.tracker.record(&Run {
            class,
            queue,
            minute,
            ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            seconds: elapsed.as_secs_f64(),
            failed,
        });
    }

    /// Writes what was counted since the last flush in one round trip. On failure the counts
    /// are dropped, as Sidekiq drops them: the pipeline is increments, not atomic, and may have
    /// run in part or in whole (a reply that timed out, a command the server refuses after the
    /// others ran), so writing them again could count them twice, on every beat if the failure
    /// stays; and nothing piles up in memory while Redis is away.
    pub(crate) async fn flush(&self, redis: &Connection, keys: &Keys) -> Result<(), Error> {
        let pending = self.inner.tracker.take_pending();
        if pending.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        flush::write(&mut pipeline, keys, &pending);
        redis.query::<()>(&pipeline).await
    }
}

//! `GET /metrics`: figures for Prometheus, in its text format (version 0.0.4), encoded by the
//! `prometheus-client` crate.
//!
//! From Redis, on any dashboard: Sidekiq's `stat:processed` and `stat:failed`, each queue's
//! size and latency, the scheduled, retry and dead set sizes, and the processes' count, busy
//! jobs and concurrency. From the worker serving it (`--web`, or
//! [`Dashboard::process_metrics`](super::Dashboard::process_metrics)): its runs and failures by
//! class and queue, and their run times as a histogram (since it started), its busy jobs and
//! concurrency. Labels are bounded: classes are the ones the worker ran (its registry, at most
//! [`MAX_CLASSES`](crate::metrics::MAX_CLASSES), then `other`), queues the first
//! [`MAX_QUEUE_LABELS`] of the `queues` set, then `other`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::Mounted;
use super::failure::Failure;
use crate::api::{ProcessSet, Stats};
use crate::metrics::{ExecutionMetrics, QueueTotals, SECONDS_BOUNDS};

/// The most queues labelled one by one; the rest add up under `queue="(other)"`, a name
/// Sidekiq's Web UI refuses for a queue, so it never doubles a real queue's series.
pub(crate) const MAX_QUEUE_LABELS: usize = 500;

/// The content type of Prometheus's text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub(crate) async fn serve(State(state): State<Arc<Mounted>>) -> Result<Response, Failure> {
    let snapshot = Snapshot::read(&state.client, state.process_metrics.as_ref()).await?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut body = String::new();
    if prometheus_client::encoding::prometheus_text::encode(&mut body, &registry).is_err() {
        return Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    Ok(([(CONTENT_TYPE, TEXT_FORMAT)], body).into_response())
}

/// Everything one scrape exports, read at once.
#[derive(Debug)]
struct Snapshot {
    /// Sidekiq's totals and set sizes.
    stats: Stats,
    /// Each queue's name, size and latency in seconds, at most [`MAX_QUEUE_LABELS`] + `other`.
    queues: Vec<(String, u64, f64)>,
    /// The processes' total concurrency.
    concurrency: u64,
    /// The serving worker's figures, if it is one.
    process: Option<Process>,
}

/// The serving worker's figures.
#[derive(Debug)]
struct Process {
    /// Runs per class and queue since it started.
    totals: Vec<QueueTotals>,
    /// Jobs running now.
    busy: u64,
    /// Its concurrency.
    concurrency: u64,
}

impl Snapshot {
    /// Reads the figures of `client`'s Redis and, when given, of the serving worker.
    async fn read(
        client: &crate::client::Client,
        metrics: Option<&ExecutionMetrics>,
    ) -> Result<Self, crate::error::Error> {
        let stats = Stats::fetch(client).await?;
        let mut queues = Vec::new();
        let mut other: Option<(u64, f64)> = None;
        for (index, (queue, size, latency)) in Stats::queues(client).await?.into_iter().enumerate()
        {
            if index < MAX_QUEUE_LABELS {
                queues.push((queue.name().to_owned(), size as u64, latency));
            } else {
                let (total, slowest) = other.get_or_insert((0, 0.0));
                *total += size as u64;
                *slowest = slowest.max(latency);
            }
        }
        if let Some((size, latency)) = other {
            queues.push((crate::metrics::OTHER.to_owned(), size, latency));
        }
        let concurrency = ProcessSet::new(client)
            .list()
            .await?
            .iter()
            .filter_map(|process| process.concurrency())
            .sum();
        let process = metrics
            .filter(|metrics| metrics.concurrency().is_some())
            .map(|metrics| Process {
                totals: if metrics.enabled() {
                    metrics.totals()
                } else {
                    Vec::new()
                },
                busy: metrics.busy().unwrap_or(0) as u64,
                concurrency: metrics.concurrency().unwrap_or(0) as u64,
            });
        Ok(Self {
            stats,
            queues,
            concurrency,
            process,
        })
    }
}

/// Encodes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let metric_encoder = encoder.encode_descriptor(name, help, unit, metric.metric_type())?;
    metric.encode(metric_encoder)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = &self.stats;
        let counters = [
            (
                "jobs_stat_processed",
                "Jobs run by every process, failed or not (Sidekiq's stat:processed).",
                stats.processed,
            ),
            (
                "jobs_stat_failed",
                "Failed runs of every process (Sidekiq's stat:failed).",
                stats.failed,
            ),
        ];
        for (name, help, value) in counters {
            single(&mut encoder, name, help, None, &ConstCounter::new(value))?;
        }
        let gauges = [
            (
                "jobs_scheduled_set_size",
                "Jobs in the scheduled set.",
                stats.scheduled_size,
            ),
            (
                "jobs_retry_set_size",
                "Jobs in the retry set.",
                stats.retry_size,
            ),
            (
                "jobs_dead_set_size",
                "Jobs in the dead set.",
                stats.dead_size,
            ),
            (
                "jobs_processes",
                "Live worker processes (Ruby and Rust).",
                stats.processes_size,
            ),
            (
                "jobs_busy",
                "Jobs running now in every process.",
                stats.workers_size,
            ),
            (
                "jobs_concurrency",
                "The concurrency of every process, added up.",
                self.concurrency,
            ),
        ];
        for (name, help, value) in gauges {
            single(
                &mut encoder,
                name,
                help,
                None,
                &ConstGauge::new(value as i64),
            )?;
        }
        let mut sizes = encoder.encode_descriptor(
            "jobs_queue_size",
            "Jobs waiting in a queue.",
            None,
            MetricType::Gauge,
        )?;
        for (queue, size, _) in &self.queues {
            let labels = [("queue", queue.as_str())];
            ConstGauge::new(*size as i64).encode(sizes.encode_family(&labels)?)?;
        }
        let mut latencies = encoder.encode_descriptor(
            "jobs_queue_latency",
            "How long the oldest job of a queue has waited.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (queue, _, latency) in &self.queues {
            let labels = [("queue", queue.as_str())];
            ConstGauge::new(*latency).encode(latencies.encode_family(&labels)?)?;
        }
        if let Some(process) = &self.process {
            encode_process(&mut encoder, process)?;
        }
        Ok(())
    }
}

/// The serving worker's own figures.
fn encode_process(
    encoder: &mut DescriptorEncoder<'_>,
    process: &Process,
) -> Result<(), std::fmt::Error> {
    single(
        encoder,
        "jobs_process_busy",
        "Jobs this process runs now.",
        None,
        &ConstGauge::new(process.busy as i64),
    )?;
    single(
        encoder,
        "jobs_process_concurrency",
        "The most jobs this process runs at once.",
        None,
        &ConstGauge::new(process.concurrency as i64),
    )?;
    counters(
        encoder,
        "jobs_processed",
        "Jobs this process ran since it started, failed or not, by class and queue.",
        &process.totals,
        |totals| totals.processed,
    )?;
    counters(
        encoder,
        "jobs_failed",
        "Runs of this process that failed since it started, by class and queue.",
        &process.totals,
        |totals| totals.failed,
    )?;
    let mut durations = encoder.encode_descriptor(
        "jobs_run_duration",
        "How long this process's runs took, failed or not, by class and queue.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for totals in &process.totals {
        let labels = labels(totals);
        // Per bucket: the encoder adds them up into Prometheus's cumulative `le` buckets, and
        // writes `+Inf` as the count (so the last, unbounded bucket is left out here).
        let buckets: Vec<(f64, u64)> = SECONDS_BOUNDS
            .iter()
            .zip(totals.buckets)
            .map(|(bound, count)| (*bound, count))
            .collect();
        durations
            .encode_family(&labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                totals.seconds,
                totals.processed,
                &buckets,
                None,
            )?;
    }
    Ok(())
}

/// The labels of one class's runs taken from one queue.
fn labels(totals: &QueueTotals) -> [(&'static str, &str); 2] {
    [
        ("class", totals.class.as_str()),
        ("queue", totals.queue.as_str()),
    ]
}

/// One counter family by class and queue, each series read from its totals by `count`.
fn counters(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    totals: &[QueueTotals],
    count: impl Fn(&QueueTotals) -> u64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for series in totals {
        ConstCounter::new(count(series)).encode(family.encode_family(&labels(series))?)?;
    }
    Ok(())
}

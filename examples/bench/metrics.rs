//! `bench metrics [N] [ROUNDS]`: the execution metrics' figures, against a private Redis.
//!
//! - `op=metrics_on` / `op=metrics_off`: a worker (concurrency 10) drains N no-op jobs with
//!   execution metrics on, then off, alternating for ROUNDS rounds each: jobs per second and
//!   CPU microseconds per job (this process), and the median of each.
//! - `op=metrics_page`: 500 classes with 72 hours of keys (every 10-minute rollup, 8 hours of
//!   minute hashes and histograms, as Sidekiq 8 keeps them): the time of `Metrics::top` for
//!   1 h, 8 h and 72 h, and of the page served by the router (median of 5).
//! - `op=metrics_memory`: what a day of metrics for 100 classes holds in Redis (`used_memory`
//!   before and after writing them): 144 10-minute rollups, 480 minute hashes, 48,000
//!   histograms (the 8 hours they live).

use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, Utc};
use jobs::api::{Metrics, Period};
use tower::ServiceExt;

use super::figures::{flush, rate};
use super::measure::{PrivateRedis, cpu_seconds};
use super::{ARGUMENT, Finished, NoOp};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs every metrics figure.
pub(crate) async fn run(n: usize, rounds: usize) -> Result {
    let redis = PrivateRedis::start()?;
    let url = redis.url();
    let client = jobs::Client::builder().url(&url).build()?;
    println!(
        "# bench metrics n={n} rounds={rounds} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let mut on = Vec::new();
    let mut off = Vec::new();
    for round in 0..rounds {
        for enabled in [true, false] {
            flush(&url).await?;
            let (per_s, cpu_us) = throughput(&client, n, enabled).await?;
            let op = if enabled { "metrics_on" } else { "metrics_off" };
            println!(
                "RESULT op={op} round={round} n={n} jobs_per_s={per_s:.0} cpu_us_per_job={cpu_us:.1}"
            );
            if enabled { &mut on } else { &mut off }.push((per_s, cpu_us));
        }
    }
    for (op, figures) in [("metrics_on", &mut on), ("metrics_off", &mut off)] {
        let mut rates: Vec<f64> = figures.iter().map(|f| f.0).collect();
        let mut cpu: Vec<f64> = figures.iter().map(|f| f.1).collect();
        println!(
            "RESULT op={op} rounds={rounds} jobs_per_s_p50={:.0} cpu_us_per_job_p50={:.1}",
            median(&mut rates),
            median(&mut cpu)
        );
    }
    flush(&url).await?;
    page(&client, &url).await?;
    flush(&url).await?;
    memory(&url).await
}

/// Drains `n` no-op jobs with metrics on or off: jobs per second and CPU µs per job.
async fn throughput(client: &jobs::Client, n: usize, enabled: bool) -> Result<(f64, f64)> {
    NoOp::set()
        .client(client)
        .perform_bulk((0..n).map(|_| NoOp {
            date: ARGUMENT.to_owned(),
        }))
        .await?;
    let finished = Finished::expect(n);
    let registry = jobs::Registry::from_registrations(
        jobs::registered_jobs().filter(|job| job.name() == "NoOp"),
    )?;
    let worker = jobs::Worker::new()
        .client(client)
        .registry(registry)
        .queues(["bench"])
        .concurrency(10)
        .state(finished.clone())
        .record_metrics(enabled);
    let cpu = cpu_seconds();
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    finished.all_done().await;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let _ = stop.send(());
    running.await??;
    Ok((rate(n, secs), cpu * 1e6 / n as f64))
}

/// Writes `classes` classes' keys from `now` back over `hours` of 10-minute rollups and 8 hours
/// of minute hashes and histograms, as Sidekiq 8's workers leave them.
async fn seed(url: &str, classes: usize, hours: i64, now: DateTime<Utc>) -> Result {
    let mut connection = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let names: Vec<String> = (0..classes)
        .map(|i| format!("App::Jobs::Class{i:03}"))
        .collect();
    for ten in 0..hours * 6 {
        let at = now - Span::minutes(ten * 10);
        let minute = at.format("%y%m%d|%-H:%M").to_string();
        let key = format!("j|{}", &minute[..minute.len() - 1]);
        let mut pipe = redis::pipe();
        let mut fields = Vec::new();
        for (index, name) in names.iter().enumerate() {
            fields.push((format!("{name}|p"), 100 + index as u64));
            fields.push((format!("{name}|f"), index as u64 % 3));
            fields.push((format!("{name}|ms"), 5_000 + index as u64 * 7));
        }
        pipe.hset_multiple(&key, &fields).ignore();
        pipe.expire(&key, 3 * 86_400).ignore();
        pipe.query_async::<()>(&mut connection).await?;
    }
    for back in 0..480 {
        let at = now - Span::minutes(back);
        let key = format!("j|{}", at.format("%y%m%d|%-H:%M"));
        let mut pipe = redis::pipe();
        let mut fields = Vec::new();
        for (index, name) in names.iter().enumerate() {
            fields.push((format!("{name}|p"), 10 + index as u64 % 5));
            fields.push((format!("{name}|ms"), 500 + index as u64));
            let gram = format!("h|{name}-{}", at.format("%-d-%-H:%-M"));
            pipe.cmd("BITFIELD")
                .arg(&gram)
                .arg("OVERFLOW")
                .arg("SAT")
                .arg("INCRBY")
                .arg("u16")
                .arg(format!("#{}", index % 26))
                .arg(10)
                .ignore();
            pipe.expire(&gram, 8 * 3600).ignore();
        }
        pipe.hset_multiple(&key, &fields).ignore();
        pipe.expire(&key, 8 * 3600).ignore();
        pipe.query_async::<()>(&mut connection).await?;
    }
    Ok(())
}

/// The Metrics page's cost with 500 classes over 72 hours.
async fn page(client: &jobs::Client, url: &str) -> Result {
    let now = Utc::now();
    seed(url, 500, 72, now).await?;
    let metrics = Metrics::new(client);
    for period in [Period::Hour, Period::EightHours, Period::ThreeDays] {
        let mut times = Vec::new();
        let mut classes = 0;
        for _ in 0..5 {
            let started = Instant::now();
            classes = metrics.top(period, "", Utc::now()).await?.classes.len();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let mut served = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let router = jobs::web::router(client);
            let request =
                axum::http::Request::get(format!("/metrics/classes?period={}", period.name()))
                    .body(axum::body::Body::empty())?;
            let started = Instant::now();
            let response = router.oneshot(request).await?;
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            served.push(started.elapsed().as_secs_f64() * 1000.0);
            bytes = body.len();
        }
        println!(
            "RESULT op=metrics_page classes={classes} period={} api_ms_p50={:.1} page_ms_p50={:.1} page_kb={}",
            period.name(),
            median(&mut times),
            median(&mut served),
            bytes / 1024
        );
    }
    let started = Instant::now();
    let _ = metrics
        .class("App::Jobs::Class007", Period::EightHours, Utc::now())
        .await?;
    println!(
        "RESULT op=metrics_class_page period=8h api_ms={:.1}",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}

/// Redis's `used_memory` after `FLUSHDB`.
async fn used_memory(url: &str) -> Result<u64> {
    let mut connection = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut connection)
        .await?;
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0))
}

/// The memory a day of metrics for 100 classes takes in Redis.
async fn memory(url: &str) -> Result {
    let before = used_memory(url).await?;
    seed(url, 100, 24, Utc::now()).await?;
    let after = used_memory(url).await?;
    println!(
        "RESULT op=metrics_memory classes=100 hours=24 used_memory_mb={:.1}",
        (after.saturating_sub(before)) as f64 / 1_048_576.0
    );
    Ok(())
}

/// The median of `values`.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

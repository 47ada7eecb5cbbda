//! `bench all`: every figure against a private Redis, one `RESULT` line each.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use super::measure::{self, PrivateRedis};
use super::{ARGUMENT, NoOp};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs every figure with `n` jobs each.
pub(crate) async fn all(n: usize) -> Result {
    figures(n, true).await
}

/// Only the figures no peer script measures: one-at-a-time pushes against raw `LPUSH` round
/// trips, pushes from 50 tasks, and the scheduler (for `bench/run.sh`, which runs the rest
/// through the peer scripts).
pub(crate) async fn extras(n: usize) -> Result {
    figures(n, false).await
}

async fn figures(n: usize, everything: bool) -> Result {
    let redis = PrivateRedis::start()?;
    let url = redis.url();
    let client = jobs::Client::builder().url(&url).build()?;
    println!(
        "# bench n={n} cores={} redis={}",
        std::thread::available_parallelism().map_or(0, usize::from),
        redis_version(&url).await
    );
    enqueue_against_raw(&client, &url, n).await?;
    enqueue_concurrent(&client, &url, n, 50).await?;
    if everything {
        enqueue_bulk(&client, &url, n).await?;
        for concurrency in [10, 50] {
            process(&client, &url, n, concurrency).await?;
        }
        latency(&url, n.clamp(10, 1_000)).await?;
    }
    scheduler(&client, &url, n).await?;
    Ok(())
}

async fn connection(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?)
}

/// Empties the private Redis between figures.
pub(crate) async fn flush(url: &str) -> Result {
    let mut connection = connection(url).await?;
    redis::cmd("FLUSHDB")
        .query_async::<()>(&mut connection)
        .await?;
    Ok(())
}

async fn redis_version(url: &str) -> String {
    let Ok(mut connection) = connection(url).await else {
        return "?".to_owned();
    };
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut connection)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned()
}

/// `n` per second over `secs`.
pub(crate) fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

fn no_op() -> NoOp {
    NoOp {
        date: ARGUMENT.to_owned(),
    }
}

/// One-at-a-time pushes from one task, against the ceiling for them: `LPUSH`es of a job's JSON
/// (the same size as the pushed jobs) from one connection, each awaited. The two alternate in twenty rounds, so a slower moment of the
/// machine weighs on both alike; the ratio is the median of the rounds' ratios.
async fn enqueue_against_raw(client: &jobs::Client, url: &str, n: usize) -> Result {
    const ROUNDS: usize = 20;
    flush(url).await?;
    let mut connection = connection(url).await?;
    let (commands, _) = measure::redis_commands(url).await;
    let per_round = (n / ROUNDS).max(1);
    let job = serde_json::json!({
        "class": "NoOp", "args": [ARGUMENT], "queue": "bench", "retry": true,
        "jid": "0123456789abcdef01234567", "created_at": epoch(), "enqueued_at": epoch(),
    })
    .to_string();
    let (mut raw_secs, mut jobs_secs, mut raw_commands) = (0.0, 0.0, 0);
    let mut ratios = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let before = measure::redis_commands(url).await.0;
        let started = Instant::now();
        for _ in 0..per_round {
            redis::cmd("LPUSH")
                .arg("raw")
                .arg(&job)
                .query_async::<()>(&mut connection)
                .await?;
        }
        let raw_round = started.elapsed().as_secs_f64();
        raw_secs += raw_round;
        raw_commands += measure::redis_commands(url).await.0 - before;
        let started = Instant::now();
        for _ in 0..per_round {
            NoOp::set().client(client).perform_async(no_op()).await?;
        }
        let jobs_round = started.elapsed().as_secs_f64();
        jobs_secs += jobs_round;
        ratios.push(raw_round / jobs_round);
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ROUNDS / 2];
    let (after, _) = measure::redis_commands(url).await;
    let total = per_round * ROUNDS;
    let raw = rate(total, raw_secs);
    println!("RESULT peer=redis op=raw_lpush n={total} conc=1 round_trips_per_s={raw:.0}");
    println!(
        "RESULT peer=jobs op=enqueue_vs_raw n={total} conc=1 secs={jobs_secs:.3} jobs_per_s={:.0} \
         of_raw_round_trips={:.2} redis_cmds_per_job={:.2}",
        rate(total, jobs_secs),
        ratio,
        (after - commands - raw_commands) as f64 / total as f64
    );
    Ok(())
}

/// Pushes from `tasks` tasks sharing one client.
async fn enqueue_concurrent(client: &jobs::Client, url: &str, n: usize, tasks: usize) -> Result {
    flush(url).await?;
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let client = client.clone();
        let share = n / tasks + usize::from(task < n % tasks);
        running.spawn(async move {
            for _ in 0..share {
                NoOp::set().client(&client).perform_async(no_op()).await?;
            }
            Ok::<(), jobs::Error>(())
        });
    }
    while let Some(result) = running.join_next().await {
        result??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "RESULT peer=jobs op=enqueue_concurrent n={n} conc={tasks} secs={secs:.3} jobs_per_s={:.0}",
        rate(n, secs)
    );
    Ok(())
}

/// `perform_bulk`, 1,000 jobs to a round trip.
async fn enqueue_bulk(client: &jobs::Client, url: &str, n: usize) -> Result {
    flush(url).await?;
    let started = Instant::now();
    NoOp::set()
        .client(client)
        .perform_bulk((0..n).map(|_| no_op()))
        .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "RESULT peer=jobs op=enqueue_bulk n={n} conc=1 batch=1000 secs={secs:.3} jobs_per_s={:.0}",
        rate(n, secs)
    );
    Ok(())
}

/// Runs this benchmark as a worker process (`work MODE N CONCURRENCY`), so its CPU and memory
/// are the worker's alone; returns its `BENCH` line.
async fn worker_process(
    url: &str,
    mode: &str,
    n: usize,
    concurrency: usize,
    ready: impl AsyncFnOnce() -> Result,
) -> Result<String> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["work", mode, &n.to_string(), &concurrency.to_string()])
        .env("REDIS_URL", url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    while let Some(line) = lines.next_line().await? {
        if line == "READY" {
            break;
        }
    }
    ready().await?;
    let mut bench = String::new();
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix("BENCH ") {
            bench = rest.to_owned();
        }
    }
    // A figure from a worker that crashed or printed nothing would be a zero, not a failure.
    let status = child.wait().await?;
    if !status.success() {
        return Err(format!("the `work {mode}` process exited with {status}").into());
    }
    if bench.is_empty() {
        return Err(format!("the `work {mode}` process printed no BENCH line").into());
    }
    Ok(bench)
}

/// A number field (`name=value`) of a `BENCH` line; 0 when it has none.
pub(crate) fn field(line: &str, name: &str) -> f64 {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// Prefills `n` no-op jobs, then times a worker process draining them.
async fn process(client: &jobs::Client, url: &str, n: usize, concurrency: usize) -> Result {
    flush(url).await?;
    NoOp::set()
        .client(client)
        .perform_bulk((0..n).map(|_| no_op()))
        .await?;
    let (commands, scripts) = measure::redis_commands(url).await;
    let mut started = 0.0;
    let bench = worker_process(url, "process", n, concurrency, async || {
        started = epoch();
        Ok(())
    })
    .await?;
    let (after, scripts_after) = measure::redis_commands(url).await;
    let (first, done) = (field(&bench, "first_ts"), field(&bench, "done_ts"));
    let cpu = field(&bench, "cpu_s");
    println!(
        "RESULT peer=jobs op=process n={n} conc={concurrency} secs={:.3} jobs_per_s={:.0} \
         steady_jobs_per_s={:.0} cpu_s={cpu:.2} cpu_us_per_job={:.1} rss_mb={:.1} \
         redis_cmds_per_job={:.2} redis_scripts_per_job={:.3}",
        done - started,
        rate(n, done - started),
        rate(n, done - first),
        cpu * 1e6 / n as f64,
        field(&bench, "rss_mb"),
        (after - commands) as f64 / n as f64,
        (scripts_after - scripts) as f64 / n as f64,
    );
    Ok(())
}

fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// An idle worker process; jobs pushed one every 5 ms; push-to-start times.
async fn latency(url: &str, n: usize) -> Result {
    flush(url).await?;
    let client = jobs::Client::builder().url(url).build()?;
    let bench = worker_process(url, "latency", n, 10, async || {
        // Let the worker go idle, blocked in BLMOVE.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..n {
            super::Probe::set()
                .client(&client)
                .perform_async(())
                .await?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    })
    .await?;
    println!("RESULT peer=jobs op=latency n={n} conc=10 gap_ms=5 {bench}");
    Ok(())
}

/// `n` scheduled jobs, all due, moved to their queue by one `enqueue_due`.
async fn scheduler(client: &jobs::Client, url: &str, n: usize) -> Result {
    flush(url).await?;
    let mut connection = connection(url).await?;
    let due = epoch() - 60.0;
    let mut pipeline = redis::pipe();
    for index in 0..n {
        let job = serde_json::json!({
            "class": "NoOp", "args": [ARGUMENT], "queue": "bench", "retry": true,
            "jid": format!("{index:024x}"), "created_at": due,
        });
        pipeline.zadd("schedule", job.to_string(), due).ignore();
        if (index + 1) % 10_000 == 0 || index + 1 == n {
            pipeline.query_async::<()>(&mut connection).await?;
            pipeline = redis::pipe();
        }
    }
    let started = Instant::now();
    let moved = jobs::worker::enqueue_due(client).await?;
    if moved != n {
        return Err(format!("the scheduler moved {moved} of {n} due jobs").into());
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "RESULT peer=jobs op=scheduler n={n} moved={moved} secs={secs:.3} jobs_per_s={:.0}",
        rate(moved, secs)
    );
    Ok(())
}

//! `bench periodic`: periodic jobs' figures against a private Redis.
//!
//! - `op=periodic_tick`: three worker processes' worth of workers (in this process) share a
//!   1-second entry; how long from a tick to its job's push (`enqueued_at - jobs_tick`), and
//!   the Redis commands and scripts each process spends per tick (measured against the same
//!   workers without the entry, over the same time);
//! - `op=periodic_pass`: one worker with `entries` entries all due in the same second: how late
//!   the first and the last of them are pushed, and the CPU Redis and the worker spend on it.

use std::time::Duration;

use chrono::{Timelike, Utc};
use jobs::periodic::Periodic;

use super::measure::{self, Samples};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A worker of no job types (no state to give), taking from a queue nothing is pushed to.
fn idle_worker(client: &jobs::Client) -> Result<jobs::Worker> {
    Ok(jobs::Worker::new()
        .client(client)
        .registry(jobs::Registry::from_registrations(std::iter::empty())?)
        .queues(["periodic-idle"]))
}

/// Runs `workers` until `for_how_long` has passed; returns Redis's (commands, scripts) meanwhile.
async fn run_for(
    url: &str,
    workers: Vec<jobs::Worker>,
    for_how_long: Duration,
) -> Result<(u64, u64)> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut running = Vec::new();
    // Started before counting: their start-up (preflight, declarations) is not the steady cost.
    for worker in workers {
        let mut stopped = stopped.clone();
        running.push(tokio::spawn(worker.run_until(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (commands_before, scripts_before) = measure::redis_commands(url).await;
    tokio::time::sleep(for_how_long).await;
    let (commands_after, scripts_after) = measure::redis_commands(url).await;
    let _ = stop.send(true);
    for worker in running {
        worker.await??;
    }
    Ok((
        commands_after - commands_before,
        scripts_after - scripts_before,
    ))
}

/// The jobs in `queue:<queue>`, as JSON.
async fn queued(url: &str, queue: &str) -> Result<Vec<serde_json::Value>> {
    let mut connection = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let jobs: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("queue:{queue}"))
        .arg(0)
        .arg(-1)
        .query_async(&mut connection)
        .await?;
    Ok(jobs
        .iter()
        .filter_map(|job| serde_json::from_str(job).ok())
        .collect())
}

/// How long after its tick each job was pushed.
fn push_delays(jobs: &[serde_json::Value]) -> Samples {
    let samples = Samples::default();
    for job in jobs {
        if let (Some(tick), Some(pushed)) = (job["jobs_tick"].as_f64(), job["enqueued_at"].as_f64())
        {
            samples.add(chrono::TimeDelta::microseconds(
                ((pushed - tick) * 1e6).round() as i64,
            ));
        }
    }
    samples
}

/// `op=periodic_tick`: `processes` workers sharing a 1-second entry for `seconds`.
pub(crate) async fn tick(
    client: &jobs::Client,
    url: &str,
    processes: usize,
    seconds: u64,
) -> Result {
    let span = Duration::from_secs(seconds);
    let idle: Vec<_> = (0..processes)
        .map(|_| idle_worker(client))
        .collect::<Result<_>>()?;
    let (idle_commands, idle_scripts) = run_for(url, idle, span).await?;
    let ticking: Vec<_> = (0..processes)
        .map(|_| {
            Ok(idle_worker(client)?.periodic_entry(
                Periodic::class("bench_every_second", "* * * * * *", "Tick", Vec::new())
                    .queue("periodic-ticks"),
            ))
        })
        .collect::<Result<_>>()?;
    let (commands, scripts) = run_for(url, ticking, span).await?;
    let jobs = queued(url, "periodic-ticks").await?;
    let delays = push_delays(&jobs);
    let (p50, p99, max, _) = delays.summary();
    let per_tick = |with: u64, without: u64| {
        with.saturating_sub(without) as f64 / (seconds as f64 * processes as f64)
    };
    println!(
        "RESULT peer=jobs op=periodic_tick processes={processes} secs={seconds} ticks={} \
         p50_ms={p50:.3} p99_ms={p99:.3} max_ms={max:.3} redis_cmds_per_tick_per_process={:.2} \
         redis_scripts_per_tick_per_process={:.2}",
        jobs.len(),
        per_tick(commands, idle_commands),
        per_tick(scripts, idle_scripts),
    );
    Ok(())
}

/// `op=periodic_pass`: one worker with `entries` entries, all due in the same second.
pub(crate) async fn pass(client: &jobs::Client, url: &str, entries: usize) -> Result {
    // One tick a minute, at a second far enough ahead for the declarations to land first.
    let at = Utc::now() + chrono::TimeDelta::seconds(20);
    let cron = format!("{} {} * * * *", at.second(), at.minute());
    let mut worker = idle_worker(client)?;
    for index in 0..entries {
        worker = worker.periodic_entry(
            Periodic::class(format!("bench_{index:05}"), &cron, "Tick", Vec::new())
                .queue("periodic-pass"),
        );
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    let before_tick = (at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(before_tick.saturating_sub(Duration::from_secs(1))).await;
    let (redis_before, worker_before) = (measure::redis_cpu(url).await?, measure::cpu_seconds());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut jobs = Vec::new();
    while jobs.len() < entries && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        jobs = queued(url, "periodic-pass").await?;
    }
    let (redis_after, worker_after) = (measure::redis_cpu(url).await?, measure::cpu_seconds());
    let _ = stop.send(());
    running.await??;
    let delays = push_delays(&jobs);
    let (p50, _, last, _) = delays.summary();
    println!(
        "RESULT peer=jobs op=periodic_pass entries={entries} pushed={} first_to_last_p50_ms={p50:.1} \
         last_entry_ms={last:.1} redis_cpu_ms={:.0} worker_cpu_ms={:.0}",
        jobs.len(),
        (redis_after - redis_before) * 1000.0,
        (worker_after - worker_before) * 1000.0,
    );
    Ok(())
}

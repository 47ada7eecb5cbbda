//! The peer protocol of `../shared/bench/peers/common.sh`, so `bench/peers/jobs.sh` runs
//! `jobs` exactly as the other peers are run: a producer and a worker process, each printing
//! one `BENCH` line.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jobs::worker::Lifecycle;

use super::measure::{self, Samples};
use super::{ARGUMENT, Finished, NoOp, Probe};

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

/// Seconds since the epoch, as the protocol's timestamps.
fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

fn no_op() -> NoOp {
    NoOp {
        date: ARGUMENT.to_owned(),
    }
}

/// `produce MODE N [GAP_MS]`: pushes `n` jobs one at a time (`enqueue`), in bulk (`bulk`,
/// `prefill`), or one every `gap_ms` for the latency test (`latency`).
pub(crate) async fn produce(mode: &str, n: usize, gap_ms: usize) -> Result {
    let client = jobs::Client::from_env()?;
    let started = Instant::now();
    match mode {
        "enqueue" => {
            for _ in 0..n {
                NoOp::set().client(&client).perform_async(no_op()).await?;
            }
        }
        "bulk" | "prefill" => {
            let batch: usize = std::env::var("BULK")
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(1_000);
            let mut left = n;
            while left > 0 {
                let size = batch.min(left);
                NoOp::set()
                    .client(&client)
                    .perform_bulk((0..size).map(|_| no_op()))
                    .await?;
                left -= size;
            }
        }
        "latency" => {
            for _ in 0..n {
                Probe::set().client(&client).perform_async(()).await?;
                tokio::time::sleep(Duration::from_millis(gap_ms as u64)).await;
            }
        }
        other => return Err(format!("unknown produce mode `{other}`").into()),
    }
    if mode != "prefill" && mode != "latency" {
        println!("BENCH secs={:.4}", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// `work MODE N CONCURRENCY`: runs a worker until `n` jobs finished, then prints the figures
/// and exits.
pub(crate) async fn work(mode: &str, n: usize, concurrency: usize) -> Result {
    let client = jobs::Client::from_env()?;
    let finished = Finished::expect(n);
    let samples = Samples::default();
    let worker = jobs::Worker::new()
        .client(&client)
        .queues(["bench"])
        .concurrency(concurrency)
        .state(finished.clone())
        .state(samples.clone())
        .on(Lifecycle::Startup, || println!("READY"));
    let cpu_before = measure::cpu_seconds();
    match mode {
        "process" => {
            let started = Instant::now();
            let epoch_at_start = epoch();
            worker.run_until(finished.all_done()).await?;
            let since_start =
                |at: Option<Instant>| at.map_or(0.0, |at| at.duration_since(started).as_secs_f64());
            println!(
                "BENCH first_ts={:.6} done_ts={:.6} cpu_s={:.3} rss_mb={:.1}",
                epoch_at_start + since_start(finished.first()),
                epoch_at_start + since_start(finished.last()),
                measure::cpu_seconds() - cpu_before,
                measure::rss_mb()
            );
        }
        "latency" => {
            let waiting = {
                let samples = samples.clone();
                async move {
                    while samples.len() < n {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            };
            worker.run_until(waiting).await?;
            let (p50, p99, max, mean) = samples.summary();
            println!("BENCH p50_ms={p50:.3} p99_ms={p99:.3} max_ms={max:.3} mean_ms={mean:.3}");
        }
        other => return Err(format!("unknown work mode `{other}`").into()),
    }
    Ok(())
}

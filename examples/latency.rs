//! Measures how soon an idle worker starts a job after it is pushed: the time from the job's
//! `enqueued_at` to the start of its body, for jobs pushed one at a time, 5 ms apart.
//!
//! ```text
//! cargo run --release --example latency            # against REDIS_URL; use a Redis of its own
//! ```
//!
//! Prints one line: `latency n=500 p50_ms=… p99_ms=… max_ms=…`.

// A benchmark talks to the person running it on standard output.
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::{JobContext, job};

/// Milliseconds from push to start, one per job.
#[derive(Clone, Default)]
struct Samples(Arc<Mutex<Vec<f64>>>);

/// Records how long ago it was pushed.
#[job(queue = "latency")]
async fn probe(#[context] ctx: JobContext, #[state] samples: Samples) {
    if let Some(enqueued) = ctx.enqueued_at() {
        let waited = chrono::Utc::now() - enqueued;
        let millis = waited.num_microseconds().unwrap_or(0) as f64 / 1000.0;
        samples.0.lock().expect("samples").push(millis);
    }
}

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    const JOBS: usize = 500;
    let samples = Samples::default();
    let client = jobs::Client::from_env()?;
    let worker = jobs::Worker::new()
        .client(&client)
        .queues(["latency"])
        .concurrency(10)
        .state(samples.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    // Let the worker go idle, blocked in BLMOVE.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..JOBS {
        Probe::set().client(&client).perform_async(()).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    running.await.expect("the worker task")?;

    let mut millis = samples.0.lock().expect("samples").clone();
    if millis.is_empty() {
        println!("latency n=0: no job ran; is the worker reaching Redis?");
        return Ok(());
    }
    millis.sort_by(f64::total_cmp);
    let at =
        |fraction: f64| millis[((millis.len() as f64 * fraction) as usize).min(millis.len() - 1)];
    println!(
        "latency n={} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        millis.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

//! `bench batches [N] [ROUNDS]`: what batches cost, against a private Redis.
//!
//! - Pushing: N no-op jobs as one batch, twice (`Batch::push_all`, 1,000 jobs a step, each step
//!   registering its jobs in the batch and pushing them together) against the same N with
//!   `perform_bulk`.
//! - Processing: a worker in this process (concurrency 10) drains N no-op jobs in batches
//!   against N plain ones, a quarter at a time. The batch's count update rides in each job's settle (the batched
//!   acknowledgement's pipeline), so the figure to read is Redis commands and scripts per job:
//!   the round trips do not change.
//! - Callback latency: ROUNDS batches of 1,000 jobs, each with an `on_success` callback; the
//!   time from the end of the batch's last job to the start of its callback.
//!
//! The kinds alternate round by round, so a slower moment of the machine weighs on each.

use std::sync::Mutex;
use std::time::Instant;

use jobs::{Batch, job};

use super::figures::{flush, rate};
use super::measure::{self, PrivateRedis};
use super::{ARGUMENT, Finished, NoOp};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// When the callback of the batch being measured started: a static, not a `#[state]`, since
/// every worker of the bench (the peer scripts' `work` included) registers every job and would
/// refuse to start without the state.
static CALLBACK_SEEN: Mutex<Option<Instant>> = Mutex::new(None);

/// When the last callback started, if one did since [`forget_callback`].
fn callback_seen() -> Option<Instant> {
    *CALLBACK_SEEN.lock().expect("callback seen")
}

/// Forgets the last callback, before a batch whose callback is waited for.
fn forget_callback() {
    *CALLBACK_SEEN.lock().expect("callback seen") = None;
}

/// The batch's `on_success` callback: notes when it started.
#[job(queue = "bench")]
async fn batch_done() {
    *CALLBACK_SEEN.lock().expect("callback seen") = Some(Instant::now());
}

/// `n` no-op jobs.
fn no_ops(n: usize) -> impl Iterator<Item = NoOp> {
    (0..n).map(|_| NoOp {
        date: ARGUMENT.to_owned(),
    })
}

/// Prints the figures for `n` jobs per kind, and the callback latency over `rounds` batches.
pub(crate) async fn figures(n: usize, rounds: usize) -> Result {
    const ROUNDS: usize = 4;
    const PUSH_ROUNDS: usize = 2;
    let redis = PrivateRedis::start()?;
    let url = redis.url();
    let client = jobs::Client::builder().url(&url).build()?;
    println!(
        "# bench batches n={n} rounds={rounds} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    // Pushing the whole `n` as one batch and as one bulk push: [batch, bulk].
    let mut push_secs = [0.0; 2];
    for _ in 0..PUSH_ROUNDS {
        for (index, in_batch) in [true, false].into_iter().enumerate() {
            flush(&url).await?;
            let started = Instant::now();
            if in_batch {
                Batch::new()
                    .client(&client)
                    .description("bench")
                    .on_success(BatchDone {})
                    .push_all(no_ops(n))
                    .await?;
            } else {
                client.perform_bulk(no_ops(n)).await?;
            }
            push_secs[index] += started.elapsed().as_secs_f64();
        }
    }
    // Processing: [batch, plain].
    let mut process_secs = [0.0; 2];
    let mut commands = [0; 2];
    let mut scripts = [0; 2];
    let per_round = (n / ROUNDS).max(1);
    for _ in 0..ROUNDS {
        for (index, in_batch) in [true, false].into_iter().enumerate() {
            flush(&url).await?;
            if in_batch {
                Batch::new()
                    .client(&client)
                    .on_success(BatchDone {})
                    .push_all(no_ops(per_round))
                    .await?;
            } else {
                client.perform_bulk(no_ops(per_round)).await?;
            }
            let (commands_before, scripts_before) = measure::redis_commands(&url).await;
            // A batch's callback runs too (not counted as one of the `n`), so that nothing of
            // this round is left for the next.
            let (secs, _) = drain(&client, per_round, in_batch).await?;
            process_secs[index] += secs;
            let (commands_after, scripts_after) = measure::redis_commands(&url).await;
            commands[index] += commands_after - commands_before;
            scripts[index] += scripts_after - scripts_before;
        }
    }
    let pushed = n * PUSH_ROUNDS;
    for (index, op) in ["push_batch", "push_bulk"].into_iter().enumerate() {
        println!(
            "RESULT peer=jobs op={op} n={n} jobs_per_s={:.0}",
            rate(pushed, push_secs[index]),
        );
    }
    let total = per_round * ROUNDS;
    for (index, op) in ["process_batch", "process_plain"].into_iter().enumerate() {
        println!(
            "RESULT peer=jobs op={op} n={total} conc=10 jobs_per_s={:.0} of_plain={:.2} \
             redis_cmds_per_job={:.2} scripts_per_job={:.3}",
            rate(total, process_secs[index]),
            process_secs[1] / process_secs[index],
            commands[index] as f64 / total as f64,
            scripts[index] as f64 / total as f64,
        );
    }
    callback_latency(&client, &url, rounds).await
}

/// Runs a worker in this process (queue `bench`, concurrency 10) until the `n` no-op jobs
/// waiting in Redis finished and, with `callback`, the batch's callback ran. Returns the
/// seconds to the end of the last no-op job, and when it ended.
async fn drain(client: &jobs::Client, n: usize, callback: bool) -> Result<(f64, Option<Instant>)> {
    if callback {
        forget_callback();
    }
    let finished = Finished::expect(n);
    let worker = jobs::Worker::new()
        .client(client)
        .queues(["bench"])
        .concurrency(10)
        .state(finished.clone())
        .state(measure::Samples::default());
    let started = Instant::now();
    let done = finished.clone();
    worker
        .run_until(async move {
            done.all_done().await;
            if callback {
                while callback_seen().is_none() {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        })
        .await?;
    let last = finished.last();
    let secs = last.map_or_else(|| started.elapsed(), |last| last - started);
    Ok((secs.as_secs_f64(), last))
}

/// Prints the time from the end of a batch's last job to the start of its `on_success`
/// callback, over `rounds` batches of 1,000 jobs: median and worst.
async fn callback_latency(client: &jobs::Client, url: &str, rounds: usize) -> Result {
    const JOBS: usize = 1_000;
    let mut millis = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        flush(url).await?;
        Batch::new()
            .client(client)
            .on_success(BatchDone {})
            .push_all(no_ops(JOBS))
            .await?;
        let (_, last) = drain(client, JOBS, true).await?;
        if let (Some(last), Some(callback)) = (last, callback_seen()) {
            millis.push(callback.saturating_duration_since(last).as_secs_f64() * 1_000.0);
        }
    }
    millis.sort_by(f64::total_cmp);
    let median = millis.get(millis.len() / 2).copied().unwrap_or(0.0);
    let worst = millis.last().copied().unwrap_or(0.0);
    println!(
        "RESULT peer=jobs op=batch_callback_latency batches={} jobs_per_batch={JOBS} \
         p50_ms={median:.2} max_ms={worst:.2}",
        millis.len()
    );
    Ok(())
}

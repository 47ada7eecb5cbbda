//! `bench unique [N]`: what a unique job costs beside a plain one, against a private Redis.
//!
//! - one-at-a-time pushes from one task, unique against plain, alternating in twenty rounds so a
//!   slower moment of the machine weighs on both (the ratio is the median of the rounds');
//! - a worker in this process draining a queue of N unique jobs against N plain ones
//!   (concurrency 10), with Redis commands per job;
//! - duplicate pushes (all refused) one at a time.

use std::time::Instant;

use jobs::job;

use super::figures::{flush, rate};
use super::measure::{self, PrivateRedis};
use super::{ARGUMENT, Finished, NoOp};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The benchmark's no-op job, unique for ten minutes over its arguments.
#[job(queue = "bench", unique_for = 600)]
async fn unique_no_op(#[state] finished: Finished, date: String, n: u64) {
    let _ = (date, n);
    finished.record();
}

/// Prints the unique jobs' figures, `n` jobs each.
pub(crate) async fn figures(n: usize) -> Result {
    let redis = PrivateRedis::start()?;
    let url = redis.url();
    let client = jobs::Client::builder().url(&url).build()?;
    println!(
        "# bench unique n={n} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    push_one_at_a_time(&client, &url, n).await?;
    duplicates(&client, &url, n).await?;
    for unique in [false, true] {
        drain(&client, &url, n, unique).await?;
    }
    Ok(())
}

fn unique(n: usize) -> UniqueNoOp {
    UniqueNoOp {
        date: ARGUMENT.to_owned(),
        n: n as u64,
    }
}

fn plain() -> NoOp {
    NoOp {
        date: ARGUMENT.to_owned(),
    }
}

/// Unique pushes (each of other arguments, so each is queued) against plain ones.
async fn push_one_at_a_time(client: &jobs::Client, url: &str, n: usize) -> Result {
    const ROUNDS: usize = 20;
    flush(url).await?;
    let per_round = (n / ROUNDS).max(1);
    let (mut plain_secs, mut unique_secs) = (0.0, 0.0);
    let (mut plain_commands, mut unique_commands) = (0, 0);
    let mut ratios = Vec::with_capacity(ROUNDS);
    let mut next = 0;
    for _ in 0..ROUNDS {
        let before = measure::redis_commands(url).await.0;
        let started = Instant::now();
        for _ in 0..per_round {
            NoOp::set().client(client).perform_async(plain()).await?;
        }
        let plain_round = started.elapsed().as_secs_f64();
        let middle = measure::redis_commands(url).await.0;
        let started = Instant::now();
        for _ in 0..per_round {
            let pushed = client.perform_async(unique(next)).await?;
            assert!(
                !pushed.is_duplicate(),
                "each unique push has its own arguments"
            );
            next += 1;
        }
        let unique_round = started.elapsed().as_secs_f64();
        let after = measure::redis_commands(url).await.0;
        plain_secs += plain_round;
        unique_secs += unique_round;
        plain_commands += middle - before;
        unique_commands += after - middle;
        ratios.push(plain_round / unique_round);
    }
    ratios.sort_by(f64::total_cmp);
    let total = per_round * ROUNDS;
    println!(
        "RESULT peer=jobs op=enqueue_plain n={total} conc=1 jobs_per_s={:.0} redis_cmds_per_job={:.2}",
        rate(total, plain_secs),
        plain_commands as f64 / total as f64
    );
    println!(
        "RESULT peer=jobs op=enqueue_unique n={total} conc=1 jobs_per_s={:.0} of_plain={:.2} \
         redis_cmds_per_job={:.2}",
        rate(total, unique_secs),
        ratios[ROUNDS / 2],
        unique_commands as f64 / total as f64
    );
    Ok(())
}

/// Pushes of a job whose lock is held: every one refused, one round trip each.
async fn duplicates(client: &jobs::Client, url: &str, n: usize) -> Result {
    flush(url).await?;
    client.perform_async(unique(0)).await?;
    let before = measure::redis_commands(url).await.0;
    let started = Instant::now();
    for _ in 0..n {
        let pushed = client.perform_async(unique(0)).await?;
        assert!(pushed.is_duplicate());
    }
    let secs = started.elapsed().as_secs_f64();
    let after = measure::redis_commands(url).await.0;
    println!(
        "RESULT peer=jobs op=enqueue_duplicate n={n} conc=1 pushes_per_s={:.0} redis_cmds_per_push={:.2}",
        rate(n, secs),
        (after - before) as f64 / n as f64
    );
    Ok(())
}

/// Bulk-pushes `n` jobs (unique or plain), then times a worker in this process draining them.
async fn drain(client: &jobs::Client, url: &str, n: usize, unique_jobs: bool) -> Result {
    flush(url).await?;
    if unique_jobs {
        client.perform_bulk((0..n).map(unique)).await?;
    } else {
        client.perform_bulk((0..n).map(|_| plain())).await?;
    }
    let (commands, scripts) = measure::redis_commands(url).await;
    let secs = measure::drain_queue(client, n).await?;
    let (after, scripts_after) = measure::redis_commands(url).await;
    let op = if unique_jobs {
        "process_unique"
    } else {
        "process_plain"
    };
    println!(
        "RESULT peer=jobs op={op} n={n} conc=10 secs={secs:.3} jobs_per_s={:.0} \
         redis_cmds_per_job={:.2} redis_scripts_per_job={:.3}",
        rate(n, secs),
        (after - commands) as f64 / n as f64,
        (scripts_after - scripts) as f64 / n as f64,
    );
    Ok(())
}

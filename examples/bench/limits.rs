//! `bench limits [N]`: what a limiter costs, against a private Redis.
//!
//! - `within_limit` of each kind, uncontended, N calls one at a time from one task: calls per
//!   second, round trips (`EVALSHA`/`EVAL` plus a concurrent call's `ZREM`) and Redis commands
//!   (those inside the script included) per call, from `INFO commandstats`;
//! - a worker in this process (concurrency 10) draining N no-op jobs that each take an
//!   uncontended limiter, against N that take none, alternating in rounds so a slower moment of
//!   the machine weighs on both.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use jobs::Limiter;
use jobs::job;
use jobs::limit::Per;

use super::figures::{flush, rate};
use super::measure::{self, PrivateRedis};
use super::{ARGUMENT, Finished, NoOp};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The limiter the limited no-op job takes (a static, not a `#[state]`: the other benchmarks'
/// workers, which have every job, know nothing of it).
static LIMITER: RwLock<Option<Limiter>> = RwLock::new(None);

/// The benchmark's no-op job, inside an uncontended limiter.
#[job(queue = "bench")]
async fn limited_no_op(
    #[state] finished: Finished,
    date: String,
) -> std::result::Result<(), jobs::Error> {
    let _ = date;
    let limiter = LIMITER.read().ok().and_then(|limiter| limiter.clone());
    match limiter {
        Some(limiter) => limiter.within_limit(|| async { finished.record() }).await,
        None => {
            finished.record();
            Ok(())
        }
    }
}

/// Prints the limiters' figures, `n` calls or jobs each.
pub(crate) async fn figures(n: usize) -> Result {
    let redis = PrivateRedis::start()?;
    let url = redis.url();
    let client = jobs::Client::builder().url(&url).build()?;
    println!(
        "# bench limits n={n} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let size = (n as u64).max(1) * 10;
    let hour = Duration::from_secs(3_600);
    let limiters = [
        Limiter::concurrent("c", 1_000),
        Limiter::bucket("b", size, Per::Day),
        Limiter::window("w", size, hour),
        Limiter::leaky("l", size, hour),
        Limiter::points("p", size, hour),
    ];
    for limiter in limiters {
        calls(&limiter.client(&client), &url, n).await?;
    }
    drain(&client, &url, n).await
}

/// `n` calls of `limiter`, one at a time.
async fn calls(limiter: &Limiter, url: &str, n: usize) -> Result {
    flush(url).await?;
    limiter.within_limit(|| async {}).await?; // loads the script
    let before = command_counts(url).await?;
    let started = Instant::now();
    for _ in 0..n {
        limiter.within_limit(|| async {}).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let after = command_counts(url).await?;
    let per_call = |count: u64| count as f64 / n as f64;
    println!(
        "RESULT peer=jobs op=within_limit_{} n={n} conc=1 calls_per_s={:.0} \
         round_trips_per_call={:.2} redis_cmds_per_call={:.2}",
        limiter.kind(),
        rate(n, secs),
        per_call(after.round_trips - before.round_trips),
        per_call(after.commands - before.commands),
    );
    Ok(())
}

/// Commands Redis ran, and those of them sent by a client (scripts and `ZREM`).
struct Counts {
    commands: u64,
    round_trips: u64,
}

async fn command_counts(url: &str) -> Result<Counts> {
    let mut connection = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await?;
    let mut counts = Counts {
        commands: 0,
        round_trips: 0,
    };
    for (name, calls) in measure::command_calls(&info) {
        counts.commands += calls;
        if name.starts_with("eval") || name == "zrem" {
            counts.round_trips += calls;
        }
    }
    Ok(counts)
}

/// A worker draining plain no-op jobs against limited ones (a concurrent limiter of 1,000, and
/// a bucket), in alternating rounds.
async fn drain(client: &jobs::Client, url: &str, n: usize) -> Result {
    const ROUNDS: usize = 4;
    let per_round = (n / ROUNDS).max(1);
    let hold = Limiter::concurrent("bench", 1_000).client(client);
    let rate_limit = Limiter::bucket("bench-bucket", u64::MAX >> 12, Per::Day).client(client);
    let mut secs = [0.0; 3];
    let mut commands = [0; 3];
    for _ in 0..ROUNDS {
        for (index, limiter) in [None, Some(&hold), Some(&rate_limit)]
            .into_iter()
            .enumerate()
        {
            flush(url).await?;
            if let Ok(mut current) = LIMITER.write() {
                *current = limiter.cloned();
            }
            match limiter {
                None => {
                    let jobs = (0..per_round).map(|_| NoOp {
                        date: ARGUMENT.to_owned(),
                    });
                    client.perform_bulk(jobs).await?;
                }
                Some(_) => {
                    let jobs = (0..per_round).map(|_| LimitedNoOp {
                        date: ARGUMENT.to_owned(),
                    });
                    client.perform_bulk(jobs).await?;
                }
            }
            let before = measure::redis_commands(url).await.0;
            secs[index] += measure::drain_queue(client, per_round).await?;
            commands[index] += measure::redis_commands(url).await.0 - before;
        }
    }
    let total = per_round * ROUNDS;
    for (index, op) in [
        "process_plain",
        "process_concurrent_limited",
        "process_bucket_limited",
    ]
    .into_iter()
    .enumerate()
    {
        println!(
            "RESULT peer=jobs op={op} n={total} conc=10 jobs_per_s={:.0} of_plain={:.2} \
             redis_cmds_per_job={:.2}",
            rate(total, secs[index]),
            secs[0] / secs[index],
            commands[index] as f64 / total as f64,
        );
    }
    Ok(())
}

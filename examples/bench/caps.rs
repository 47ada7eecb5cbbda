//! `bench caps [N]`: what a global cap on a queue costs the fetch, against a private Redis.
//!
//! A worker in this process (concurrency 10) drains N no-op jobs from the queue `bench`:
//! uncapped; capped at 1,000 (a cap that never binds: the cost of the leases alone); and capped
//! at 5 (a cap that binds: half the worker's slots); and its job class (`NoOp`) capped at 1,000
//! (a class cap that never binds: its take and release steps alone). Alternating rounds, so a slower moment of
//! the machine weighs on each. For each: jobs per second and Redis commands per job (those
//! inside the scripts included), from `INFO commandstats`.

use jobs::api::Caps;

use super::figures::{flush, rate};
use super::measure::{self, PrivateRedis};
use super::{ARGUMENT, NoOp};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A cap measured.
#[derive(Clone, Copy)]
enum Cap {
    /// No cap at all.
    None,
    /// The queue `bench` capped.
    Queue(u32),
    /// The job class `NoOp` capped.
    Class(u32),
}

/// The caps measured: none, a queue's that never binds, one that binds, a class's that never
/// binds.
const CAPS: [Cap; 4] = [
    Cap::None,
    Cap::Queue(1_000),
    Cap::Queue(5),
    Cap::Class(1_000),
];

/// Prints the figures for `n` jobs of each kind.
pub(crate) async fn figures(n: usize) -> Result {
    const ROUNDS: usize = 4;
    let redis = PrivateRedis::start()?;
    let url = redis.url();
    let client = jobs::Client::builder().url(&url).build()?;
    println!(
        "# bench caps n={n} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let per_round = (n / ROUNDS).max(1);
    let mut secs = [0.0; CAPS.len()];
    let mut commands = [0; CAPS.len()];
    for _ in 0..ROUNDS {
        for (index, cap) in CAPS.into_iter().enumerate() {
            flush(&url).await?;
            match cap {
                Cap::None => {}
                Cap::Queue(cap) => Caps::new(&client).set("bench", cap).await?,
                // The worker learns it from `jobs:caps` at its first beat, before it takes a job.
                Cap::Class(cap) => Caps::new(&client).set_class("NoOp", cap).await?,
            }
            let jobs = (0..per_round).map(|_| NoOp {
                date: ARGUMENT.to_owned(),
            });
            client.perform_bulk(jobs).await?;
            let before = measure::redis_commands(&url).await.0;
            secs[index] += measure::drain_queue(&client, per_round).await?;
            commands[index] += measure::redis_commands(&url).await.0 - before;
        }
    }
    let total = per_round * ROUNDS;
    for (index, op) in [
        "process_uncapped",
        "process_cap_1000",
        "process_cap_5",
        "process_class_cap_1000",
    ]
    .into_iter()
    .enumerate()
    {
        println!(
            "RESULT peer=jobs op={op} n={total} conc=10 jobs_per_s={:.0} of_uncapped={:.2} \
             redis_cmds_per_job={:.2}",
            rate(total, secs[index]),
            secs[0] / secs[index],
            commands[index] as f64 / total as f64,
        );
    }
    Ok(())
}

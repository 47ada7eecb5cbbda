//! The benchmark: every figure of `BENCHMARKS.md`, one machine-readable line each.
//!
//! ```text
//! cargo run --release --example bench                 # all figures, against a private redis-server
//! cargo run --release --example bench -- all 10000    # the same with 10,000 jobs per figure
//! ```
//!
//! `all [N]` starts its own `redis-server` on a free port (and kills it at the end), so it never
//! touches your data, and prints lines such as
//! `RESULT peer=jobs op=process n=100000 conc=10 secs=… jobs_per_s=… cpu_us_per_job=… rss_mb=…
//! redis_cmds_per_job=…`.
//!
//! `periodic [ENTRIES]` prints the periodic jobs' figures (about a minute): tick-to-push latency
//! and Redis commands per tick on three workers, and one pass of `ENTRIES` (10,000) entries.
//!
//! `unique [N]` prints the unique jobs' figures: one-at-a-time unique pushes against plain ones,
//! refused duplicates, and a worker draining N unique jobs against N plain ones.
//!
//! `caps [N]` prints what a global cap costs the fetch: N no-op jobs drained uncapped, under a
//! cap of 1,000 that never binds, and under a cap of 5 (`caps.rs`).
//!
//! `batches [N] [ROUNDS]` prints the batches' figures: pushing N jobs as one batch against
//! `perform_bulk`, a worker draining N batch jobs against N plain ones (Redis commands and
//! scripts per job), and the latency of a batch's callback after its last job (`batches.rs`).
//!
//! `limits [N]` prints the limiters' figures: N uncontended `within_limit` calls of each kind
//! (round trips and Redis commands per call), and a worker draining N no-op jobs that take an
//! uncontended limiter against N that take none.
//!
//! `active-job [N] [ROUNDS]` prints what a job Rails pushed through ActiveJob costs beside the
//! same job pushed plainly: decoding it, and a worker draining N of each.
//!
//! `outbox [N] [ROWS]` (with `--features postgres`) prints the outbox's figures: N transactions
//! of one push each (rate, and commit-to-Redis latency) and a relay's catch-up of ROWS rows left
//! behind (100,000), against a private PostgreSQL cluster (or `DATABASE_URL`).
//!
//! `sentinel [N]` prints what waiting for a replica costs (`wait_replicas`, Redis's `WAIT 1`):
//! pushes one at a time, from 10 tasks and in bulk, and a worker draining N jobs, without and
//! with it, against a private master and its replica.
//!
//! `cluster [N] [ROUNDS]` prints what a Redis Cluster costs: bulk pushes and a worker draining N
//! jobs on one plain server and on private clusters of 1, 2 and 3 masters, with Redis CPU per
//! job and each master's share of the commands (`cluster.rs`).
//!
//! `paused [ROUNDS]` prints how soon a pause and a resume take effect, busy and idle (about 10 s
//! a round, 5 rounds).
//!
//! `metrics [N] [ROUNDS]` prints the execution metrics' figures: throughput and CPU with them on
//! and off, the Metrics page with 500 classes over 72 h, and a day of 100 classes in Redis.
//!
//! `dashboard [ROUNDS]` prints how long each dashboard page and admin API list call takes over
//! 1,000,000 retries, scheduled and dead jobs, 10,000 queues and 1,000 processes (`dashboard.rs`).
//!
//! `curves [N] [ROUNDS] [CURVE]` prints how throughput, worker and Redis CPU, Redis commands
//! and RSS move with concurrency, payload size, queue count and order, runtime flavour and
//! worker processes, and the time from launch to the first job (`curves.rs`).
//!
//! `sets [N] [BIG] [ROUNDS]` prints what 1,000,000 entries in each of `schedule`, `retry` and
//! `dead` cost pushes and processing (N jobs a figure), the scheduler promoting BIG due jobs,
//! and recovery of 10 and 100 dead processes holding 1,000 jobs each (`sets.rs`).
//!
//! `extras [N]` prints only the figures no peer script measures; `bench/run.sh` runs it, then
//! runs the peer scripts (`bench/peers/jobs.sh` beside Sidekiq, BullMQ and the others), which
//! use the other two forms, against the Redis at `REDIS_URL`:
//! - `produce enqueue|bulk|prefill|latency N [GAP_MS]`
//! - `work process|latency N CONCURRENCY`

// A benchmark talks to the person running it on standard output.
#![allow(clippy::print_stdout)]

mod active_job;
mod batches;
mod caps;
mod cluster;
mod curves;
mod dashboard;
mod figures;
mod limits;
mod measure;
mod metrics;
#[cfg(feature = "postgres")]
mod outbox;
mod paused;
mod peer;
mod periodic;
mod sentinel;
mod sets;
mod unique;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jobs::job;
use tokio::sync::Notify;

/// The argument every benchmark job carries, as the peers' jobs do.
pub(crate) const ARGUMENT: &str = "2026-11-22";

/// Counts finished jobs and wakes the waiter when the last one is done.
#[derive(Clone, Default)]
pub(crate) struct Finished {
    count: Arc<AtomicUsize>,
    target: Arc<AtomicUsize>,
    done: Arc<Notify>,
    first: Arc<std::sync::OnceLock<std::time::Instant>>,
    last: Arc<std::sync::OnceLock<std::time::Instant>>,
}

impl Finished {
    /// Expects `target` jobs from now on.
    pub(crate) fn expect(target: usize) -> Self {
        let finished = Self::default();
        finished.target.store(target, Ordering::SeqCst);
        finished
    }

    fn record(&self) {
        let _ = self.first.set(std::time::Instant::now());
        let now = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if now == self.target.load(Ordering::SeqCst) {
            let _ = self.last.set(std::time::Instant::now());
            self.done.notify_one();
        }
    }

    /// Waits until every expected job finished.
    pub(crate) async fn all_done(&self) {
        self.done.notified().await;
    }

    /// When the first job finished.
    pub(crate) fn first(&self) -> Option<std::time::Instant> {
        self.first.get().copied()
    }

    /// When the last expected job finished.
    pub(crate) fn last(&self) -> Option<std::time::Instant> {
        self.last.get().copied()
    }
}

/// The benchmark's no-op job.
#[job(queue = "bench")]
async fn no_op(#[state] finished: Finished, date: String) {
    let _ = date;
    finished.record();
}

/// Records how long after its push it started, for the latency figure.
#[job(queue = "bench")]
async fn probe(#[context] ctx: jobs::JobContext, #[state] samples: measure::Samples) {
    if let Some(enqueued) = ctx.enqueued_at() {
        samples.add(chrono::Utc::now() - enqueued);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The worker runs on one thread, as a worker for light jobs should: Redis has the other
    // core, and no wakeup crosses threads. `BENCH_THREADS=N` runs it on N threads instead.
    let threads: usize = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1);
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let number = |index: usize, default: usize| -> Result<usize, String> {
        words.get(index).map_or(Ok(default), |text| {
            text.parse()
                .map_err(|_| format!("`{text}` is not a number"))
        })
    };
    match words.first().copied().unwrap_or("all") {
        "all" => figures::all(number(1, 100_000)?).await,
        "extras" => figures::extras(number(1, 100_000)?).await,
        "periodic" => {
            let redis = measure::PrivateRedis::start()?;
            let client = jobs::Client::builder().url(redis.url()).build()?;
            periodic::tick(&client, &redis.url(), 3, 20).await?;
            periodic::pass(&client, &redis.url(), number(1, 10_000)?).await
        }
        "unique" => unique::figures(number(1, 20_000)?).await,
        "limits" => limits::figures(number(1, 20_000)?).await,
        "caps" => caps::figures(number(1, 20_000)?).await,
        "curves" => curves::figures(number(1, 20_000)?, number(2, 3)?, words.get(3).copied()).await,
        "sentinel" => sentinel::figures(number(1, 20_000)?).await,
        "cluster" => cluster::figures(number(1, 20_000)?, number(2, 3)?).await,
        "sets" => sets::figures(number(1, 20_000)?, number(2, 1_000_000)?, number(3, 3)?).await,
        "batches" => batches::figures(number(1, 100_000)?, number(2, 20)?).await,
        "active-job" => active_job::figures(number(1, 20_000)?, number(2, 4)?).await,
        "paused" => paused::run(number(1, 5)?).await,
        #[cfg(feature = "postgres")]
        "outbox" => outbox::figures(number(1, 2_000)?, number(2, 100_000)?).await,
        "dashboard" => dashboard::run(&words[1..]).await,
        "metrics" => metrics::run(number(1, 20_000)?, number(2, 3)?).await,
        "produce" => {
            let mode = words.get(1).copied().unwrap_or("enqueue");
            peer::produce(mode, number(2, 100_000)?, number(3, 5)?).await
        }
        "work" => {
            let mode = words.get(1).copied().unwrap_or("process");
            peer::work(mode, number(2, 100_000)?, number(3, 10)?).await
        }
        other => Err(format!(
            "unknown command `{other}`; use `all [N]`, `extras [N]`, `periodic [ENTRIES]`, \
             `unique [N]`, `limits [N]`, `caps [N]`, `curves [N] [ROUNDS] [CURVE]`, `sentinel [N]`, `cluster [N] [ROUNDS]`, `dashboard [ROUNDS]`, `sets [N] [BIG] [ROUNDS]`, `batches [N] [ROUNDS]`, `active-job [N] [ROUNDS]`, `outbox [N] [ROWS]` (with \
             --features postgres), `produce MODE N [GAP_MS]` or `work MODE N CONCURRENCY`"
        )
        .into()),
    }
}

//! `bench curves [N] [ROUNDS]`: how the worker's costs move with what users turn up, against a
//! private Redis (issue #19, "Costs that stay flat").
//!
//! `bench curves N ROUNDS CURVE` runs only that curve (`concurrency`, `payload`, `queues`,
//! `runtime`, `idle`, `processes` or `launch`).
//!
//! One line per point, each the median of `ROUNDS` (3) alternating rounds with its range:
//! jobs per second, the worker's CPU per job, Redis commands and Redis's CPU (`INFO cpu`) per
//! job, and the worker's RSS.
//!
//! - `concurrency`: N no-op jobs drained at concurrency 1, 10, 100 and 1,000;
//! - `payload`: no-op jobs whose argument is 100 B (N jobs), 1 KB (N), 10 KB (N/5) and 1 MB
//!   (N/100, at least 200: with fewer, the worker's start weighs on the figures), concurrency 10;
//! - `queues`: N jobs spread evenly over 1, 100 and 1,000 queues, strict order and weighted (every
//!   weight 1), concurrency 10; then all N in the first of 1,000 queues (`busy=1`);
//! - `runtime`: the same drain on a current-thread runtime and on a multi-thread one with two
//!   workers (what `#[tokio::main]` gives on this two-core machine), concurrency 10 and 100;
//! - `processes`: 1, 2, 4 and 8 worker processes (`bench work process`, release build) on one
//!   Redis sharing N jobs: total jobs per second, CPU summed over the processes;
//! - `idle`: a worker on 1, 100 and 1,000 empty queues: its connections to Redis and the
//!   commands it sends per second;
//! - `launch`: from spawning a worker process to the start of the one job waiting for it
//!   (`ROUNDS × 4` launches: p50 and max).
//!
//! The in-process drains each run on a thread of their own with a runtime of their own, the
//! benchmark's own thread waiting meanwhile: the process's CPU over the drain is the worker's.
//! RSS is the whole benchmark process's for those (its heap high-water from earlier points
//! included), and the worker process's own for `processes` and the extra `concurrency 1000`
//! worker-process line.

use std::process::Stdio;

use jobs::worker::QueueSpec;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::figures::{field, flush, rate};
use super::measure::{self, PrivateRedis, Samples};
use super::{ARGUMENT, Finished, NoOp};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Which tokio runtime a drain runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// `new_current_thread`: what the benchmark's worker process uses.
    CurrentThread,
    /// `new_multi_thread` with two workers: `#[tokio::main]` on two cores.
    MultiThread,
}

/// The queues of a drain, and how they are ordered.
#[derive(Clone, Copy)]
struct Queues {
    /// How many queues (`curve0`, `curve1` …).
    count: usize,
    /// How many of them, the first, hold the jobs, spread evenly over those.
    busy: usize,
    /// Every queue with weight 1 (Sidekiq's random order) rather than strict order.
    weighted: bool,
}

/// One in-process drain: what to push, and how the worker runs.
#[derive(Clone, Copy)]
struct Drain {
    /// Jobs pushed and drained.
    jobs: usize,
    /// The size of each job's argument, in bytes.
    payload: usize,
    /// The worker's concurrency.
    concurrency: usize,
    /// The queues.
    queues: Queues,
    /// The runtime.
    flavour: Flavour,
}

/// What one drain measured.
#[derive(Clone, Copy, Default)]
struct Sample {
    /// Jobs per second, from the worker's start to the end of the last job.
    rate: f64,
    /// The worker's CPU per job, in µs.
    cpu_us: f64,
    /// Redis commands per job (those inside scripts included).
    commands: f64,
    /// Redis's CPU per job, in µs.
    redis_us: f64,
    /// The RSS after the drain, in MB.
    rss_mb: f64,
}

/// Prints every curve, `n` jobs per point and `rounds` alternating rounds.
/// Only the curve named `only` when given (`concurrency`, `payload`, `queues`, `runtime`,
/// `idle`, `processes`, `launch`).
pub(crate) async fn figures(n: usize, rounds: usize, only: Option<&str>) -> Result {
    const CURVES: [&str; 7] = [
        "concurrency",
        "payload",
        "queues",
        "runtime",
        "idle",
        "processes",
        "launch",
    ];
    if let Some(only) = only.filter(|only| !CURVES.contains(only)) {
        return Err(format!("no curve `{only}`; the curves are {CURVES:?}").into());
    }
    let wanted = |curve: &str| only.is_none_or(|only| only == curve);
    let redis = PrivateRedis::start()?;
    let url = redis.url();
    let rounds = rounds.max(1);
    println!(
        "# bench curves n={n} rounds={rounds} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let one = Queues {
        count: 1,
        busy: 1,
        weighted: false,
    };
    let base = Drain {
        jobs: n,
        payload: ARGUMENT.len(),
        concurrency: 10,
        queues: one,
        flavour: Flavour::CurrentThread,
    };
    let mut points: Vec<(String, Drain)> = Vec::new();
    for concurrency in [1, 10, 100, 1_000] {
        points.push((
            format!("curve=concurrency conc={concurrency}"),
            Drain {
                concurrency,
                ..base
            },
        ));
    }
    for (payload, jobs) in [
        (100, n),
        (1_000, n),
        (10_000, n / 5),
        (1_000_000, (n / 100).max(200)),
    ] {
        points.push((
            format!("curve=payload bytes={payload}"),
            Drain {
                jobs,
                payload,
                ..base
            },
        ));
    }
    // (queues, how many of the first hold the jobs): spread over all, then all in the first.
    for (count, busy) in [(1, 1), (100, 100), (1_000, 1_000), (1_000, 1)] {
        for weighted in [false, true] {
            let order = if weighted { "weighted" } else { "strict" };
            let held = if busy < count {
                format!(" busy={busy}")
            } else {
                String::new()
            };
            points.push((
                format!("curve=queues queues={count}{held} order={order}"),
                Drain {
                    queues: Queues {
                        count,
                        busy,
                        weighted,
                    },
                    ..base
                },
            ));
        }
    }
    for concurrency in [10, 100] {
        for flavour in [Flavour::CurrentThread, Flavour::MultiThread] {
            let name = match flavour {
                Flavour::CurrentThread => "current_thread",
                Flavour::MultiThread => "multi_thread_2",
            };
            points.push((
                format!("curve=runtime runtime={name} conc={concurrency}"),
                Drain {
                    concurrency,
                    flavour,
                    ..base
                },
            ));
        }
    }
    points.retain(|(name, _)| {
        name.split_whitespace()
            .next()
            .and_then(|curve| curve.strip_prefix("curve="))
            .is_some_and(wanted)
    });
    let mut samples = vec![Vec::new(); points.len()];
    for round in 0..rounds {
        for (index, (name, drain)) in points.iter().enumerate() {
            let sample = measure_drain(&url, *drain).await?;
            println!(
                "# round {round} {name}: {:.0} jobs/s {:.1} µs/job",
                sample.rate, sample.cpu_us
            );
            samples[index].push(sample);
        }
    }
    for ((name, drain), taken) in points.iter().zip(&samples) {
        print_point(name, drain.jobs, taken);
    }
    if wanted("concurrency") {
        worker_rss(&url, n, 1_000).await?;
    }
    if wanted("idle") {
        for count in [1, 100, 1_000] {
            idle(&url, count).await?;
        }
    }
    if wanted("processes") {
        processes(&url, n, rounds).await?;
    }
    if wanted("launch") {
        launch(&url, rounds * 4).await?;
    }
    Ok(())
}

/// The median and the range of `values`, as `median (low–high)`.
fn spread(values: impl Iterator<Item = f64>, decimals: usize) -> String {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    let Some((low, high)) = values.first().zip(values.last()) else {
        return "-".to_owned();
    };
    let median = values[values.len() / 2];
    format!("{median:.decimals$} ({low:.decimals$}-{high:.decimals$})")
}

/// Prints one point's `RESULT` line from its rounds.
fn print_point(name: &str, jobs: usize, taken: &[Sample]) {
    println!(
        "RESULT peer=jobs {name} n={jobs} jobs_per_s={} cpu_us_per_job={} \
         redis_cmds_per_job={} redis_cpu_us_per_job={} rss_mb={}",
        spread(taken.iter().map(|s| s.rate), 0),
        spread(taken.iter().map(|s| s.cpu_us), 1),
        spread(taken.iter().map(|s| s.commands), 2),
        spread(taken.iter().map(|s| s.redis_us), 1),
        spread(taken.iter().map(|s| s.rss_mb), 1),
    );
}

/// The name of the `index`-th queue of the curves.
fn queue_name(index: usize) -> String {
    format!("curve{index}")
}

/// Pushes `drain`'s jobs to an empty Redis, then drains them with a worker of its own.
async fn measure_drain(url: &str, drain: Drain) -> Result<Sample> {
    flush(url).await?;
    let client = jobs::Client::builder().url(url).build()?;
    let argument = "x".repeat(drain.payload);
    let per_queue = drain.jobs.div_ceil(drain.queues.busy);
    let mut pushed = 0;
    for index in 0..drain.queues.busy {
        let count = per_queue.min(drain.jobs - pushed);
        // Large payloads go in smaller bulks, so one round trip stays under about 16 MB.
        let bulk = (16_000_000 / drain.payload.max(1)).clamp(1, 1_000);
        let mut left = count;
        while left > 0 {
            let size = bulk.min(left);
            NoOp::set()
                .queue(queue_name(index))
                .client(&client)
                .perform_bulk((0..size).map(|_| NoOp {
                    date: argument.clone(),
                }))
                .await?;
            left -= size;
        }
        pushed += count;
    }
    drop(client);
    let before = measure::redis_commands(url).await.0;
    let redis_before = measure::redis_cpu(url).await?;
    let cpu_before = measure::cpu_seconds();
    let url_owned = url.to_owned();
    let secs = std::thread::spawn(move || run_drain(&url_owned, drain))
        .join()
        .map_err(|_| "the drain's thread panicked")?
        .map_err(|error| error.to_string())?;
    let cpu = measure::cpu_seconds() - cpu_before;
    let commands = measure::redis_commands(url).await.0 - before;
    let redis_cpu = measure::redis_cpu(url).await? - redis_before;
    Ok(Sample {
        rate: rate(drain.jobs, secs),
        cpu_us: cpu * 1e6 / drain.jobs as f64,
        commands: commands as f64 / drain.jobs as f64,
        redis_us: redis_cpu * 1e6 / drain.jobs as f64,
        rss_mb: measure::rss_mb(),
    })
}

/// Runs a worker on a runtime of `drain.flavour` until `drain.jobs` jobs finished; the seconds
/// from its start to the end of the last one.
fn run_drain(url: &str, drain: Drain) -> std::result::Result<f64, String> {
    let runtime = match drain.flavour {
        Flavour::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Flavour::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .map_err(|error| error.to_string())?;
    runtime.block_on(async {
        let client = jobs::Client::builder()
            .url(url)
            .build()
            .map_err(|error| error.to_string())?;
        let queues = (0..drain.queues.count)
            .map(|index| QueueSpec::weighted(queue_name(index), u32::from(drain.queues.weighted)));
        let worker = jobs::Worker::new()
            .client(&client)
            .weighted_queues(queues)
            .concurrency(drain.concurrency);
        measure::drain_with(worker, drain.jobs)
            .await
            .map_err(|error| error.to_string())
    })
}

/// A worker process (`bench work process N CONCURRENCY` on queue `bench`): spawned, then its
/// `BENCH` line once it has run `n` jobs.
struct WorkerProcess {
    /// The process.
    child: tokio::process::Child,
    /// Its standard output, by line.
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl WorkerProcess {
    /// Spawns one against `url`.
    fn spawn(url: &str, n: usize, concurrency: usize) -> Result<Self> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["work", "process", &n.to_string(), &concurrency.to_string()])
            .env("REDIS_URL", url)
            .env("RUST_LOG", "warn")
            .env_remove("BENCH_THREADS")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        Ok(Self { child, lines })
    }

    /// Its `BENCH` line (`first_ts= done_ts= cpu_s= rss_mb=`), once it exited.
    async fn finish(mut self) -> Result<String> {
        let mut bench = String::new();
        while let Some(line) = self.lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("BENCH ") {
                bench = rest.to_owned();
            }
        }
        let status = self.child.wait().await?;
        if !status.success() || bench.is_empty() {
            return Err(format!("a `work process` exited with {status}, line `{bench}`").into());
        }
        Ok(bench)
    }
}

/// Seconds since the epoch.
fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Pushes `n` no-op jobs to the queue `bench`.
async fn prefill(url: &str, n: usize) -> Result {
    let client = jobs::Client::builder().url(url).build()?;
    let mut left = n;
    while left > 0 {
        let size = left.min(1_000);
        NoOp::set()
            .client(&client)
            .perform_bulk((0..size).map(|_| NoOp {
                date: ARGUMENT.to_owned(),
            }))
            .await?;
        left -= size;
    }
    Ok(())
}

/// A worker process at `concurrency` draining `n` jobs: its own RSS and CPU.
async fn worker_rss(url: &str, n: usize, concurrency: usize) -> Result {
    flush(url).await?;
    prefill(url, n).await?;
    let bench = WorkerProcess::spawn(url, n, concurrency)?.finish().await?;
    println!(
        "RESULT peer=jobs curve=concurrency conc={concurrency} process=worker n={n} \
         jobs_per_s={:.0} cpu_us_per_job={:.1} rss_mb={:.1}",
        rate(n, field(&bench, "done_ts") - field(&bench, "first_ts")),
        field(&bench, "cpu_s") * 1e6 / n as f64,
        field(&bench, "rss_mb"),
    );
    Ok(())
}

/// 1, 2, 4 and 8 worker processes (concurrency 10 each) sharing `n` jobs on one Redis, in
/// alternating rounds: total jobs per second from the first job's end in any of them to the
/// last one's, CPU summed over them.
async fn processes(url: &str, n: usize, rounds: usize) -> Result {
    const COUNTS: [usize; 4] = [1, 2, 4, 8];
    let mut taken: Vec<Vec<Sample>> = vec![Vec::new(); COUNTS.len()];
    for _ in 0..rounds {
        for (index, count) in COUNTS.into_iter().enumerate() {
            flush(url).await?;
            let share = n / count;
            // Each process stops after its share; the jobs running then, and a process that
            // took more than its share, must not leave another one short: some to spare.
            prefill(url, share * count + count * 200).await?;
            let before = measure::redis_commands(url).await.0;
            let redis_before = measure::redis_cpu(url).await?;
            let workers = (0..count)
                .map(|_| WorkerProcess::spawn(url, share, 10))
                .collect::<Result<Vec<_>>>()?;
            let mut lines = Vec::new();
            for worker in workers {
                lines.push(worker.finish().await?);
            }
            let commands = measure::redis_commands(url).await.0 - before;
            let redis_cpu = measure::redis_cpu(url).await? - redis_before;
            let first = lines
                .iter()
                .map(|line| field(line, "first_ts"))
                .fold(f64::INFINITY, f64::min);
            let done = lines
                .iter()
                .map(|line| field(line, "done_ts"))
                .fold(0.0, f64::max);
            let total = share * count;
            taken[index].push(Sample {
                rate: rate(total, done - first),
                cpu_us: lines.iter().map(|line| field(line, "cpu_s")).sum::<f64>() * 1e6
                    / total as f64,
                commands: commands as f64 / total as f64,
                redis_us: redis_cpu * 1e6 / total as f64,
                rss_mb: lines
                    .iter()
                    .map(|line| field(line, "rss_mb"))
                    .fold(0.0, f64::max),
            });
        }
    }
    for (count, taken) in COUNTS.into_iter().zip(&taken) {
        print_point(
            &format!("curve=processes processes={count} conc=10"),
            n / count * count,
            taken,
        );
    }
    Ok(())
}

/// From spawning a worker process to the start of the job waiting for it, `runs` times.
async fn launch(url: &str, runs: usize) -> Result {
    let mut millis = Vec::with_capacity(runs);
    for _ in 0..runs {
        flush(url).await?;
        prefill(url, 1).await?;
        let spawned = epoch();
        let bench = WorkerProcess::spawn(url, 1, 10)?.finish().await?;
        millis.push((field(&bench, "first_ts") - spawned) * 1e3);
    }
    millis.sort_by(f64::total_cmp);
    println!(
        "RESULT peer=jobs curve=launch runs={runs} launch_to_first_job_ms_p50={:.1} \
         launch_to_first_job_ms_max={:.1}",
        millis[millis.len() / 2],
        millis.last().copied().unwrap_or(0.0),
    );
    Ok(())
}

/// Redis's count of connected clients, from `INFO clients`.
async fn connected_clients(url: &str) -> Result<u64> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut connection)
        .await?;
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix("connected_clients:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0))
}

/// A worker (concurrency 10) on `count` empty queues, in this process: once it settled, its
/// connections to Redis and the commands it sends per second over 4 s.
async fn idle(url: &str, count: usize) -> Result {
    const SETTLE: std::time::Duration = std::time::Duration::from_secs(3);
    const WATCH: std::time::Duration = std::time::Duration::from_secs(4);
    flush(url).await?;
    let before = connected_clients(url).await?;
    let url_owned = url.to_owned();
    let worker = std::thread::spawn(move || -> std::result::Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        runtime.block_on(async {
            let client = jobs::Client::builder()
                .url(&url_owned)
                .build()
                .map_err(|error| error.to_string())?;
            jobs::Worker::new()
                .client(&client)
                .queues((0..count).map(queue_name))
                .concurrency(10)
                .state(Finished::default())
                .state(Samples::default())
                .run_until(tokio::time::sleep(SETTLE + WATCH + SETTLE))
                .await
                .map_err(|error| error.to_string())
        })
    });
    tokio::time::sleep(SETTLE).await;
    let commands = measure::redis_commands(url).await.0;
    let clients = connected_clients(url).await?.saturating_sub(before);
    tokio::time::sleep(WATCH).await;
    let sent = measure::redis_commands(url).await.0 - commands;
    worker
        .join()
        .map_err(|_| "the idle worker's thread panicked")??;
    println!(
        "RESULT peer=jobs curve=idle queues={count} conc=10 redis_connections={clients} \
         redis_cmds_per_s={:.1}",
        sent as f64 / WATCH.as_secs_f64(),
    );
    Ok(())
}

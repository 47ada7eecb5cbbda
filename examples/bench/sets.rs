//! `bench sets [N] [BIG] [ROUNDS]`: what big `schedule`, `retry` and `dead` sets cost, how fast
//! the scheduler promotes a backlog, and how recovery scales, against a private Redis.
//!
//! - Flat costs: N jobs pushed one at a time from 4 tasks (`perform_async`, and `perform_in`,
//!   which adds to `schedule`), N pushed by `perform_bulk`, a worker in this process
//!   (concurrency 10) draining the 2 N queued, and draining N jobs that fail (each goes to
//!   `retry`), with the three sets empty and with BIG entries in each (1,000,000; realistic job
//!   JSON, due a day from now so the scheduler leaves them alone). The sets are seeded once
//!   and parked under another name (`RENAME`, O(1)) for the empty rounds; rounds alternate.
//! - The scheduler: BIG/10 and BIG due entries in `schedule` promoted by one
//!   `worker::enqueue_due`, and BIG by two racing; time until the queue holds them all.
//! - Recovery: 10 and 100 dead processes (in `jobs:workers`, no liveness key, no heartbeat)
//!   holding 1,000 jobs each in their working lists; a worker started with a 100 ms recovery
//!   interval; time until every working list is handed back, and until every job ran.
//!
//! ROUNDS (3) alternating rounds of the flat figures, at most 2 of the scheduler's and of
//! recovery's. Each figure: the median over the rounds and the range. Redis commands per job from
//! `INFO commandstats` (those inside scripts included).

use std::time::{Duration, Instant};

use jobs::job;

use super::figures::rate;
use super::measure::{self, PrivateRedis};
use super::{ARGUMENT, Finished, NoOp};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The three sets a big backlog lives in.
const SETS: [&str; 3] = ["schedule", "retry", "dead"];

/// The tasks pushing one job at a time.
const PUSHERS: usize = 4;

/// The benchmark's failing job: every run fails, so each goes to `retry` (its next run is
/// 15 s or more away, after the figure).
#[job(queue = "bench", retry = 5)]
async fn failing(
    #[state] finished: Finished,
    date: String,
) -> std::result::Result<(), jobs::JobError> {
    let _ = date;
    finished.record();
    Err(jobs::JobError::msg("the bench's failing job"))
}

/// Prints every figure: `n` jobs per flat figure, `big` entries per set.
pub(crate) async fn figures(n: usize, big: usize, rounds: usize) -> Result {
    let redis = PrivateRedis::start()?;
    let url = redis.url();
    println!(
        "# bench sets n={n} big={big} rounds={rounds} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    flat(&url, n, big, rounds).await?;
    // A round of these takes tens of seconds: two are enough to see the spread.
    scheduler(&url, big, rounds.min(2)).await?;
    recovery(&url, rounds.min(2)).await?;
    Ok(())
}

/// A connection of the benchmark's own, for seeding and checking, with no reply timeout:
/// emptying a Redis of 3,000,000 entries takes seconds.
async fn connection(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// Empties the private Redis between figures.
async fn flush(url: &str) -> Result {
    let mut connection = connection(url).await?;
    redis::cmd("FLUSHDB")
        .query_async::<()>(&mut connection)
        .await?;
    Ok(())
}

/// Seconds since the epoch, as Sidekiq scores and stamps.
fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// The JSON of job `index` as it would sit in `set` (or in a queue or working list for any
/// other name): a no-op job, with the error fields a retried or dead job carries.
fn job_json(set: &str, index: usize, now: f64) -> String {
    let mut job = serde_json::json!({
        "class": "NoOp", "args": [ARGUMENT], "queue": "bench", "retry": true,
        "jid": format!("{index:024x}"), "created_at": now - 120.0,
    });
    if set == "retry" || set == "dead" {
        job["enqueued_at"] = (now - 60.0).into();
        job["failed_at"] = (now - 60.0).into();
        job["retried_at"] = (now - 30.0).into();
        job["retry_count"] = if set == "dead" { 25 } else { 3 }.into();
        job["error_class"] = "RuntimeError".into();
        job["error_message"] = "the upstream service answered 503 Service Unavailable".into();
    } else if set != "schedule" {
        job["enqueued_at"] = (now - 1.0).into();
    }
    job.to_string()
}

/// Adds `count` entries to `set`, scored by `score(index)`: `ZADD`s of 1,000 members,
/// pipelined ten at a time.
async fn seed(url: &str, set: &str, count: usize, score: impl Fn(usize) -> f64) -> Result {
    let mut connection = connection(url).await?;
    let now = epoch();
    let mut pipeline = redis::pipe();
    let mut command = redis::cmd("ZADD");
    command.arg(set);
    for index in 0..count {
        command.arg(score(index)).arg(job_json(set, index, now));
        if (index + 1) % 1_000 == 0 || index + 1 == count {
            pipeline.add_command(command).ignore();
            command = redis::cmd("ZADD");
            command.arg(set);
        }
        if (index + 1) % 10_000 == 0 || index + 1 == count {
            pipeline.query_async::<()>(&mut connection).await?;
            pipeline = redis::pipe();
        }
    }
    Ok(())
}

/// The median and the range of `values`, as `median (min–max)`.
fn spread(values: &[f64], digits: usize) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return "-".to_owned();
    }
    let median = median(&sorted);
    format!(
        "{median:.digits$} ({:.digits$}-{:.digits$})",
        sorted[0],
        sorted[sorted.len() - 1]
    )
}

/// The median of `values` (of an even number, the mean of the middle two).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        len => (sorted[(len - 1) / 2] + sorted[len / 2]) / 2.0,
    }
}

/// The flat figures' names, in the order measured.
const FLAT: [&str; 5] = [
    "push_one",
    "push_in_one",
    "push_bulk",
    "process",
    "process_failing",
];

/// Pushes, processing and failing, with the sets empty, then holding `big` entries each.
async fn flat(url: &str, n: usize, big: usize, rounds: usize) -> Result {
    flush(url).await?;
    let later = epoch() + 86_400.0;
    let seeding = Instant::now();
    for set in SETS {
        if set == "dead" {
            let now = epoch();
            seed(url, set, big, |index| now - index as f64 * 1e-3).await?;
        } else {
            seed(url, set, big, |index| later + index as f64 * 1e-3).await?;
        }
    }
    println!(
        "# seeded {big} entries in each of {SETS:?} in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let client = jobs::Client::builder().url(url).build()?;
    let mut connection = connection(url).await?;
    // [full][figure] → per-round jobs/s; and Redis commands per job of the processing figures.
    let mut rates = vec![vec![Vec::new(); FLAT.len()]; 2];
    let mut commands = vec![vec![Vec::new(); FLAT.len()]; 2];
    for _ in 0..rounds {
        for full in [false, true] {
            for set in SETS {
                let (from, to) = if full {
                    (format!("parked:{set}"), set.to_owned())
                } else {
                    (set.to_owned(), format!("parked:{set}"))
                };
                if full || holds_entries(&mut connection, set).await? {
                    redis::cmd("RENAME")
                        .arg(&from)
                        .arg(&to)
                        .query_async::<()>(&mut connection)
                        .await?;
                }
            }
            let figures = flat_round(&client, url, n).await?;
            for (index, (secs, jobs, cmds)) in figures.into_iter().enumerate() {
                rates[usize::from(full)][index].push(rate(jobs, secs));
                commands[usize::from(full)][index].push(cmds as f64 / jobs as f64);
            }
            // What the round added: its scheduled pushes and its failures, due within the hour.
            for set in ["schedule", "retry"] {
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(set)
                    .arg("-inf")
                    .arg(epoch() + 3_600.0)
                    .query_async::<()>(&mut connection)
                    .await?;
            }
        }
    }
    for (index, op) in FLAT.into_iter().enumerate() {
        let empty = &rates[0][index];
        let full = &rates[1][index];
        println!(
            "RESULT peer=jobs op={op} n={n} big={big} jobs_per_s_empty={} jobs_per_s_full={} \
             full_of_empty={:.2} redis_cmds_per_job_empty={:.3} redis_cmds_per_job_full={:.3}",
            spread(empty, 0),
            spread(full, 0),
            median(full) / median(empty).max(1e-9),
            median(&commands[0][index]),
            median(&commands[1][index]),
        );
    }
    Ok(())
}

/// Whether `set` holds the seeded entries now (so it is to be parked for an empty round).
async fn holds_entries(
    connection: &mut redis::aio::MultiplexedConnection,
    set: &str,
) -> Result<bool> {
    let exists: bool = redis::cmd("EXISTS")
        .arg(set)
        .query_async(connection)
        .await?;
    Ok(exists)
}

/// One round of the flat figures: for each, the seconds, the jobs and the Redis commands.
async fn flat_round(client: &jobs::Client, url: &str, n: usize) -> Result<Vec<(f64, usize, u64)>> {
    let mut figures = Vec::with_capacity(FLAT.len());
    for scheduled in [false, true] {
        let before = measure::redis_commands(url).await.0;
        let started = Instant::now();
        let mut pushers = tokio::task::JoinSet::new();
        for _ in 0..PUSHERS {
            let client = client.clone();
            pushers.spawn(async move {
                for _ in 0..n / PUSHERS {
                    let job = NoOp {
                        date: ARGUMENT.to_owned(),
                    };
                    if scheduled {
                        client.perform_in(Duration::from_secs(3_600), job).await?;
                    } else {
                        client.perform_async(job).await?;
                    }
                }
                Ok::<(), jobs::Error>(())
            });
        }
        while let Some(pushed) = pushers.join_next().await {
            pushed??;
        }
        let secs = started.elapsed().as_secs_f64();
        let cmds = measure::redis_commands(url).await.0 - before;
        figures.push((secs, n / PUSHERS * PUSHERS, cmds));
    }
    let before = measure::redis_commands(url).await.0;
    let started = Instant::now();
    client
        .perform_bulk((0..n).map(|_| NoOp {
            date: ARGUMENT.to_owned(),
        }))
        .await?;
    let secs = started.elapsed().as_secs_f64();
    figures.push((secs, n, measure::redis_commands(url).await.0 - before));
    let queued = n / PUSHERS * PUSHERS + n;
    let before = measure::redis_commands(url).await.0;
    let secs = measure::drain_queue(client, queued).await?;
    figures.push((secs, queued, measure::redis_commands(url).await.0 - before));
    client
        .perform_bulk((0..n).map(|_| Failing {
            date: ARGUMENT.to_owned(),
        }))
        .await?;
    let before = measure::redis_commands(url).await.0;
    let secs = measure::drain_queue(client, n).await?;
    figures.push((secs, n, measure::redis_commands(url).await.0 - before));
    Ok(figures)
}

/// The scheduler promoting a backlog of due jobs: `big` / 10 and `big` with one poller, `big`
/// with two racing.
async fn scheduler(url: &str, big: usize, rounds: usize) -> Result {
    let variants = [(big / 10, 1), (big, 1), (big, 2)];
    let mut secs = vec![Vec::new(); variants.len()];
    let mut commands = vec![Vec::new(); variants.len()];
    let mut scripts = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (index, &(due, pollers)) in variants.iter().enumerate() {
            flush(url).await?;
            let clients = (0..pollers)
                .map(|_| jobs::Client::builder().url(url).build())
                .collect::<std::result::Result<Vec<_>, _>>()?;
            // Connected (and the script loaded) first, so the figure is the promotion alone.
            for client in &clients {
                jobs::worker::enqueue_due(client).await?;
            }
            let past = epoch() - 60.0;
            seed(url, "schedule", due, |index| past + index as f64 * 1e-6).await?;
            let (commands_before, scripts_before) = measure::redis_commands(url).await;
            let started = Instant::now();
            let mut running = tokio::task::JoinSet::new();
            for client in clients {
                running.spawn(async move { jobs::worker::enqueue_due(&client).await });
            }
            let mut moved = 0;
            while let Some(result) = running.join_next().await {
                moved += result??;
            }
            secs[index].push(started.elapsed().as_secs_f64());
            let (commands_after, scripts_after) = measure::redis_commands(url).await;
            let mut connection = connection(url).await?;
            let queued: usize = redis::cmd("LLEN")
                .arg("queue:bench")
                .query_async(&mut connection)
                .await?;
            if moved != due || queued != due {
                return Err(format!(
                    "the scheduler moved {moved} of {due} due jobs; the queue holds {queued}"
                )
                .into());
            }
            commands[index].push((commands_after - commands_before) as f64 / due as f64);
            scripts[index].push((scripts_after - scripts_before) as f64 / due as f64);
        }
    }
    for (index, &(due, pollers)) in variants.iter().enumerate() {
        let rates: Vec<f64> = secs[index].iter().map(|secs| rate(due, *secs)).collect();
        println!(
            "RESULT peer=jobs op=scheduler_promote due={due} pollers={pollers} secs={} \
             jobs_per_s={} redis_cmds_per_job={:.3} scripts_per_job={:.4}",
            spread(&secs[index], 2),
            spread(&rates, 0),
            median(&commands[index]),
            median(&scripts[index]),
        );
    }
    Ok(())
}

/// Jobs each dead process holds.
const HELD: usize = 1_000;

/// Recovery of 10 and of 100 dead processes holding [`HELD`] jobs each.
async fn recovery(url: &str, rounds: usize) -> Result {
    let variants = [10, 100];
    let mut back = vec![Vec::new(); variants.len()];
    let mut ran = vec![Vec::new(); variants.len()];
    let mut commands = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (index, &dead) in variants.iter().enumerate() {
            flush(url).await?;
            let lists = bury_processes(url, dead).await?;
            let total = dead * HELD;
            let client = jobs::Client::builder().url(url).build()?;
            let before = measure::redis_commands(url).await.0;
            let finished = Finished::expect(total);
            let worker = jobs::Worker::new()
                .client(&client)
                .queues(["bench"])
                .concurrency(10)
                .recovery(Duration::from_millis(100), 3)
                .state(finished.clone())
                .state(measure::Samples::default());
            let started = Instant::now();
            let done = finished.clone();
            let watcher = tokio::spawn(handed_back(url.to_owned(), lists, started));
            worker
                .run_until(async move { done.all_done().await })
                .await?;
            let all_back = watcher.await??;
            let all_ran = finished
                .last()
                .map_or_else(|| started.elapsed(), |last| last - started);
            back[index].push(all_back.as_secs_f64());
            ran[index].push(all_ran.as_secs_f64());
            commands[index]
                .push((measure::redis_commands(url).await.0 - before) as f64 / total as f64);
        }
    }
    for (index, &dead) in variants.iter().enumerate() {
        let total = dead * HELD;
        let rates: Vec<f64> = back[index].iter().map(|secs| rate(total, *secs)).collect();
        println!(
            "RESULT peer=jobs op=recovery dead={dead} held={HELD} jobs={total} \
             secs_all_back={} back_jobs_per_s={} secs_all_ran={} redis_cmds_per_job={:.2}",
            spread(&back[index], 2),
            spread(&rates, 0),
            spread(&ran[index], 2),
            median(&commands[index]),
        );
    }
    Ok(())
}

/// Registers `dead` processes as a `jobs` worker killed with `kill -9` leaves them: a member
/// of `jobs:workers`, its liveness key and heartbeat expired, [`HELD`] jobs in its working
/// list. Returns the working lists.
async fn bury_processes(url: &str, dead: usize) -> Result<Vec<String>> {
    let mut connection = connection(url).await?;
    let now = epoch();
    let mut lists = Vec::with_capacity(dead);
    for process in 0..dead {
        let identity = format!("bench-host:{}:dead{process:03}", 10_000 + process);
        let list = format!("jobs:working:{identity}");
        let mut push = redis::cmd("LPUSH");
        push.arg(&list);
        for job in 0..HELD {
            push.arg(job_json("working", process * HELD + job, now));
        }
        redis::pipe()
            .sadd("jobs:workers", &identity)
            .ignore()
            .add_command(push)
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        lists.push(list);
    }
    Ok(lists)
}

/// Waits until none of `lists` exists (every job handed back); the time since `started`.
async fn handed_back(
    url: String,
    lists: Vec<String>,
    started: Instant,
) -> std::result::Result<Duration, String> {
    let mut connection = connection(&url).await.map_err(|error| error.to_string())?;
    loop {
        let left: usize = redis::cmd("EXISTS")
            .arg(&lists)
            .query_async(&mut connection)
            .await
            .map_err(|error| error.to_string())?;
        if left == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("{left} working lists still held after 10 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

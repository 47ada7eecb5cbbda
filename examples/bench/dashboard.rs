//! `bench dashboard [ROUNDS]`: every dashboard page and the admin API's list calls, timed over
//! a Redis holding 1,000,000 retries, 1,000,000 scheduled jobs, 1,000,000 dead jobs, 10,000
//! queues of 3 jobs each and 1,000 live processes running 10 jobs each.
//!
//! It starts a private `redis-server`, seeds it with bulk `ZADD`/`RPUSH`/`HSET` pipelines (the
//! keys as Sidekiq writes them, no namespace), mounts the dashboard in-process and sends each
//! GET through the router `ROUNDS` times (5), the pages taken in turn each round; it prints the
//! p50 and the max of each, in milliseconds, and the size of its answer.
//!
//! Two more forms compare two builds over one seeded Redis, rounds alternating between them:
//! - `dashboard seed URL` seeds the Redis at `URL` (flushed first) and exits;
//! - `dashboard time URL ROUNDS` times the pages against it, seeding nothing.

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use jobs::api::{
    Batches, DeadSet, Limits, Order, Page, PeriodicSet, ProcessSet, Queue, RetrySet, ScheduledSet,
    Stats, WorkSet,
};
use tower::ServiceExt;

use super::measure::PrivateRedis;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Entries in each of `retry`, `schedule` and `dead`.
const SET_SIZE: usize = 1_000_000;

/// Queues, and jobs in each.
const QUEUES: usize = 10_000;
const JOBS_PER_QUEUE: usize = 3;

/// Live processes, and jobs each runs now.
const PROCESSES: usize = 1_000;
const RUNNING_PER_PROCESS: usize = 10;

/// Members per `ZADD`, and commands per pipeline, while seeding.
const MEMBERS_PER_COMMAND: usize = 1_000;
const COMMANDS_PER_PIPELINE: usize = 20;

/// The job classes the seeded jobs spread over.
const CLASSES: [&str; 8] = [
    "App::Jobs::SendEmail",
    "App::Jobs::ChargeCard",
    "App::Jobs::ResizeImage",
    "App::Jobs::SyncCrm",
    "App::Jobs::ScoreGeneration",
    "App::Jobs::ExportCsv",
    "App::Jobs::Webhook",
    "App::Jobs::Reindex",
];

/// `dashboard [ROUNDS]`, `dashboard seed URL` or `dashboard time URL ROUNDS`.
pub(crate) async fn run(words: &[&str]) -> Result {
    match words {
        ["seed", url] => seed(url).await,
        ["time", url, rounds] => time(url, rounds.parse()?).await,
        [] => standalone(5).await,
        [rounds] => standalone(rounds.parse()?).await,
        _ => Err(
            "use `dashboard [ROUNDS]`, `dashboard seed URL` or `dashboard time URL ROUNDS`".into(),
        ),
    }
}

async fn standalone(rounds: usize) -> Result {
    let redis = PrivateRedis::start()?;
    seed(&redis.url()).await?;
    time(&redis.url(), rounds).await
}

/// A job as Sidekiq stores it, numbered `index`, with the fields a failure adds when `failed`.
fn job_json(index: usize, queue: &str, now: f64, failed: bool) -> String {
    let class = CLASSES[index % CLASSES.len()];
    let mut json = format!(
        "{{\"retry\":true,\"queue\":\"{queue}\",\"class\":\"{class}\",\"args\":[{index},\"user{index}@example.com\",{{\"locale\":\"en\",\"plan\":\"pro\"}}],\"jid\":\"{index:024x}\",\"created_at\":{created:.3},\"enqueued_at\":{created:.3}",
        created = now - 3_600.0,
    );
    if failed {
        json.push_str(&format!(
            ",\"error_message\":\"Net::ReadTimeout with #<TCPSocket:(closed)> on attempt {attempt}\",\"error_class\":\"Net::ReadTimeout\",\"failed_at\":{failed:.3},\"retry_count\":{attempt},\"retried_at\":{failed:.3}",
            attempt = index % 25,
            failed = now - 60.0,
        ));
    }
    json.push('}');
    json
}

/// Fills the Redis at `url` (flushed first).
async fn seed(url: &str) -> Result {
    let client = redis::Client::open(url)?;
    let mut redis = client.get_multiplexed_async_connection().await?;
    // In the background: a synchronous flush of millions of keys outlasts the reply timeout.
    redis::cmd("FLUSHDB")
        .arg("ASYNC")
        .query_async::<()>(&mut redis)
        .await?;
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1_000.0;
    for (key, direction, failed) in [
        ("retry", 1.0, true),
        ("schedule", 1.0, false),
        ("dead", -1.0, true),
    ] {
        let mut pipeline = redis::pipe();
        let mut commands = 0;
        for chunk in (0..SET_SIZE)
            .collect::<Vec<_>>()
            .chunks(MEMBERS_PER_COMMAND)
        {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(key);
            for &index in chunk {
                let queue = format!("q{:05}", index % QUEUES);
                zadd.arg(now + direction * index as f64 * 0.5)
                    .arg(job_json(index, &queue, now, failed));
            }
            pipeline.add_command(zadd).ignore();
            commands += 1;
            if commands == COMMANDS_PER_PIPELINE {
                pipeline.query_async::<()>(&mut redis).await?;
                pipeline = redis::pipe();
                commands = 0;
            }
        }
        if commands > 0 {
            pipeline.query_async::<()>(&mut redis).await?;
        }
    }
    let mut pipeline = redis::pipe();
    for queue in 0..QUEUES {
        let name = format!("q{queue:05}");
        pipeline.sadd("queues", &name).ignore();
        let mut push = redis::cmd("LPUSH");
        push.arg(format!("queue:{name}"));
        for job in 0..JOBS_PER_QUEUE {
            push.arg(job_json(queue * JOBS_PER_QUEUE + job, &name, now, false));
        }
        pipeline.add_command(push).ignore();
    }
    pipeline.query_async::<()>(&mut redis).await?;
    let mut pipeline = redis::pipe();
    for process in 0..PROCESSES {
        let identity = format!("host-{process:04}:{}:{process:012x}", 1_000 + process);
        let queues: Vec<String> = (0..5)
            .map(|n| format!("q{:05}", (process * 5 + n) % QUEUES))
            .collect();
        let info = serde_json::json!({
            "hostname": format!("host-{process:04}"),
            "started_at": now - 86_400.0,
            "pid": 1_000 + process,
            "tag": "app",
            "concurrency": RUNNING_PER_PROCESS,
            "queues": queues,
            "labels": ["web-1"],
            "identity": identity,
            "version": "jobs 0.1.0",
        });
        pipeline.sadd("processes", &identity).ignore();
        pipeline
            .hset_multiple(
                &identity,
                &[
                    ("info", info.to_string()),
                    ("busy", RUNNING_PER_PROCESS.to_string()),
                    ("beat", format!("{now:.3}")),
                    ("quiet", "false".to_owned()),
                    ("rss", "123456".to_owned()),
                    ("rtt_us", "250".to_owned()),
                    ("concurrency", RUNNING_PER_PROCESS.to_string()),
                ],
            )
            .ignore();
        let work: Vec<(String, String)> = (0..RUNNING_PER_PROCESS)
            .map(|thread| {
                let queue = &queues[thread % queues.len()];
                let value = serde_json::json!({
                    "queue": queue,
                    "payload": job_json(process * RUNNING_PER_PROCESS + thread, queue, now, false),
                    "run_at": now - thread as f64,
                });
                (format!("tid-{thread}"), value.to_string())
            })
            .collect();
        pipeline
            .hset_multiple(format!("{identity}:work"), &work)
            .ignore();
    }
    pipeline.query_async::<()>(&mut redis).await?;
    println!(
        "# seeded {SET_SIZE} retries, {SET_SIZE} scheduled, {SET_SIZE} dead, {QUEUES} queues of {JOBS_PER_QUEUE}, {PROCESSES} processes running {RUNNING_PER_PROCESS} each in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The admin API calls timed.
const APIS: [&str; 11] = [
    "api Stats::fetch",
    "api Stats::queues",
    "api Queue::all",
    "api ProcessSet::list",
    "api WorkSet::list",
    "api RetrySet::page(100)",
    "api ScheduledSet::page(last 100)",
    "api DeadSet::search(miss)",
    "api Batches::page(25)",
    "api PeriodicSet::list",
    "api Limits::scan(100)",
];

/// Runs the API call `name`; how many items it returned.
async fn api_call(client: &jobs::Client, name: &str) -> Result<usize> {
    Ok(match name {
        "api Stats::fetch" => Stats::fetch(client).await.map(|_| 1)?,
        "api Stats::queues" => Stats::queues(client).await?.len(),
        "api Queue::all" => Queue::all(client).await?.len(),
        "api ProcessSet::list" => ProcessSet::new(client).list().await?.len(),
        "api WorkSet::list" => WorkSet::new(client).list().await?.len(),
        "api RetrySet::page(100)" => RetrySet::new(client).page(Page::first(100)).await?.len(),
        "api ScheduledSet::page(last 100)" => ScheduledSet::new(client)
            .page(Page::numbered(9_999, 100, Order::NewestFirst))
            .await?
            .len(),
        "api DeadSet::search(miss)" => {
            DeadSet::new(client)
                .search("no-such-text", 100, Order::NewestFirst)
                .await?
                .scanned
        }
        "api Batches::page(25)" => Batches::new(client).page(Page::first(25)).await?.len(),
        "api PeriodicSet::list" => PeriodicSet::new(client).list().await?.len(),
        "api Limits::scan(100)" => Limits::new(client).scan(100).await?.limiters.len(),
        other => return Err(format!("no API call {other}").into()),
    })
}

/// Times every page and API call `rounds` times against the seeded Redis at `url`.
async fn time(url: &str, rounds: usize) -> Result {
    let client = jobs::Client::builder().url(url).build()?;
    let app = jobs::web::router(&client);
    let pages: Vec<&str> = vec![
        "/",
        "/stats",
        "/busy",
        "/queues",
        "/queues/q00042",
        "/retries",
        "/retries?page=39999",
        "/retries?substr=ScoreGeneration",
        "/retries?substr=no-such-text",
        "/scheduled",
        "/scheduled?substr=no-such-text",
        "/morgue",
        "/morgue?page=39999",
        "/morgue?substr=user4242%40",
        "/metrics",
        "/metrics/classes",
        "/batches",
        "/workflows",
        "/periodic",
        "/limits",
    ];
    let names: Vec<&str> = pages.iter().copied().chain(APIS.iter().copied()).collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut sizes = vec![0; names.len()];
    // One warm-up round, not counted.
    for round in 0..=rounds {
        for (index, path) in pages.iter().enumerate() {
            let started = Instant::now();
            let (status, bytes) = get(&app, path).await?;
            let millis = started.elapsed().as_secs_f64() * 1_000.0;
            if !status.is_success() {
                return Err(format!("GET {path}: {status}").into());
            }
            if round > 0 {
                samples[index].push(millis);
            }
            sizes[index] = bytes;
        }
        for (offset, name) in APIS.iter().enumerate() {
            let index = pages.len() + offset;
            let started = Instant::now();
            let count = api_call(&client, name).await?;
            let millis = started.elapsed().as_secs_f64() * 1_000.0;
            if round > 0 {
                samples[index].push(millis);
            }
            sizes[index] = count;
        }
    }
    println!("# bench dashboard rounds={rounds} (page bytes; API items)");
    println!("| Page or call | p50 ms | max ms | size |");
    println!("|---|---:|---:|---:|");
    for ((name, mut millis), size) in names.into_iter().zip(samples).zip(sizes) {
        millis.sort_by(f64::total_cmp);
        let p50 = millis.get(millis.len() / 2).copied().unwrap_or(0.0);
        let max = millis.last().copied().unwrap_or(0.0);
        println!("| `{name}` | {p50:.1} | {max:.1} | {size} |");
        println!("RESULT op=dashboard page={name:?} p50_ms={p50:.1} max_ms={max:.1} size={size}");
    }
    Ok(())
}

/// `GET path` through the router, the answer read whole: its status and length.
async fn get(app: &Router, path: &str) -> Result<(axum::http::StatusCode, usize)> {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty())?)
        .await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    Ok((status, body.len()))
}

//! Batches (`jobs::Batch`, `docs/batches.md`) run by real workers on a real Redis: callbacks
//! fire once each at the right moment (complete after every job ran once, success after the
//! retries succeeded, death at the first death), also across worker processes killed with
//! `kill -9`; jobs added from inside a running batch job and nested batches hold the batch
//! open; an update repeated after a lost acknowledgement counts once.
//!
//! The jobs write a ledger into Redis (`support/ledger.rs`, `RPUSH`, so Redis orders the events
//! of every process): `start|<group>|<jid>|<pid>` and `end|…`, the group being `ok` or `fail`
//! for a batch's job, `cb-<event>` for a callback.

use std::collections::HashSet;
use std::time::Duration;

use jobs::api::{JobSet, SetKind};
use jobs::{Batch, BatchEvent, BatchStatus, Bid, JobContext, JobError, Worker, job};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use crate::support::jobs::{AbortProcess, CallLog, worker};
use crate::support::ledger::{self, Ledger};
use crate::support::{ChildWorker, RunningWorker, TestRedis, eventually, ledger_path, sorted_set};

/// The Redis list the jobs write their ledger into.
const EVENTS: &str = "batches-test:events";

/// Connections to the test Redis the jobs count their runs through, one per URL.
static CONNECTIONS: tokio::sync::Mutex<Vec<(String, MultiplexedConnection)>> =
    tokio::sync::Mutex::const_new(Vec::new());

/// A connection to the Redis at `url`, shared by the jobs of this process.
async fn connection(url: &str) -> MultiplexedConnection {
    let mut connections = CONNECTIONS.lock().await;
    if let Some((_, conn)) = connections.iter().find(|(known, _)| known == url) {
        return conn.clone();
    }
    let client = redis::Client::open(url).expect("a Redis URL");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("a connection");
    connections.push((url.to_owned(), conn.clone()));
    conn
}

/// A batch's job: records its run (group `fail` for a run that fails, `ok` otherwise) after
/// `millis`, failing its first `fail_runs` runs (counted in Redis: a retry from the retry set
/// by hand does not raise `retry_count`).
#[job]
pub async fn batch_step(
    #[context] ctx: JobContext,
    url: String,
    fail_runs: u32,
    millis: u64,
) -> Result<(), JobError> {
    let failing = fail_runs > 0 && {
        let mut conn = connection(&url).await;
        let run: u32 = conn.incr(format!("runs:{}", ctx.jid()), 1).await?;
        run <= fail_runs
    };
    let group = if failing { "fail" } else { "ok" };
    ledger::record(&url, EVENTS, group, ctx.jid().as_str(), millis).await;
    if failing {
        return Err(JobError::msg("failing on purpose"));
    }
    Ok(())
}

/// A batch's job that succeeds only once the key `gate` exists (group `ok` or `fail`).
#[job]
pub async fn batch_gate(
    #[context] ctx: JobContext,
    url: String,
    gate: String,
) -> Result<(), JobError> {
    let mut conn = connection(&url).await;
    let open: bool = conn.exists(&gate).await?;
    let group = if open { "ok" } else { "fail" };
    ledger::record(&url, EVENTS, group, ctx.jid().as_str(), 0).await;
    if open {
        Ok(())
    } else {
        Err(JobError::msg("the gate is shut"))
    }
}

/// A batch's job dropped unrun if it has not started within a second of being due.
#[job(expires_in = 1)]
pub async fn batch_expiring(#[context] ctx: JobContext, url: String) {
    ledger::record(&url, EVENTS, "ok", ctx.jid().as_str(), 0).await;
}

/// A batch's job whose one run goes to the dead set (no retries).
#[job(retry = 0)]
pub async fn batch_buried(#[context] ctx: JobContext, url: String) -> Result<(), JobError> {
    ledger::record(&url, EVENTS, "fail", ctx.jid().as_str(), 0).await;
    Err(JobError::msg("buried on purpose"))
}

/// A batch's job that is never retried (`retry: false`: dropped after its failure).
#[job(retry = false)]
pub async fn batch_dropped(#[context] ctx: JobContext, url: String) -> Result<(), JobError> {
    ledger::record(&url, EVENTS, "fail", ctx.jid().as_str(), 0).await;
    Err(JobError::msg("dropped on purpose"))
}

/// A batch's job, never retried, that takes its own entry off every working list (as recovery
/// elsewhere would from a worker it presumed dead) and then fails.
#[job(retry = false)]
pub async fn batch_recovered_elsewhere(
    #[context] ctx: JobContext,
    url: String,
) -> Result<(), JobError> {
    let mut conn = connection(&url).await;
    let lists: Vec<String> = redis::cmd("KEYS")
        .arg("jobs:working:*")
        .query_async(&mut conn)
        .await?;
    for list in lists {
        let entries: Vec<String> = conn.lrange(&list, 0, -1).await?;
        for entry in entries
            .iter()
            .filter(|entry| entry.contains(ctx.jid().as_str()))
        {
            let _: i64 = conn.lrem(&list, 0, entry).await?;
        }
    }
    ledger::record(&url, EVENTS, "fail", ctx.jid().as_str(), 0).await;
    Err(JobError::msg("failing after its entry was taken"))
}

/// A batch's job that adds `leaves` quick steps to its own batch, one call each, then records
/// `fan-out`.
#[job]
pub async fn batch_add_leaves(
    #[context] ctx: JobContext,
    url: String,
    leaves: u32,
) -> Result<(), JobError> {
    let batch = ctx
        .batch()
        .ok_or_else(|| JobError::msg("add_leaves runs in a batch"))?;
    for _ in 0..leaves {
        batch
            .push(BatchStep {
                url: url.clone(),
                fail_runs: 0,
                millis: 0,
            })
            .await?;
    }
    ledger::record(&url, EVENTS, "fan-out", ctx.jid().as_str(), 0).await;
    Ok(())
}

/// A callback: records `cb-<event>` under its own jid and its `enqueued_at` (stamped by each
/// push: a callback pushed twice shows twice, while a push run twice after a crash, the same
/// JSON, shows once).
#[job]
pub async fn record_batch_event(#[context] ctx: JobContext, url: String, event: String) {
    let pushed_at = ctx.enqueued_at().map_or(0, |at| at.timestamp_micros());
    let id = format!("{}@{pushed_at}", ctx.jid());
    ledger::record(&url, EVENTS, &format!("cb-{event}"), &id, 0).await;
}

/// A batch's job that fans out: adds `leaves` slow jobs to its own batch, and a child batch of
/// `child_leaves` with a `child-success` callback, then records `fan-out`.
#[job]
pub async fn batch_fan_out(
    #[context] ctx: JobContext,
    url: String,
    leaves: u32,
    child_leaves: u32,
) -> Result<(), JobError> {
    let batch = ctx
        .batch()
        .ok_or_else(|| JobError::msg("fan_out runs in a batch"))?;
    let leaf = |_| BatchStep {
        url: url.clone(),
        fail_runs: 0,
        millis: 300,
    };
    batch.push_all((0..leaves).map(leaf)).await?;
    batch
        .child()
        .description("child")
        .on_success(RecordBatchEvent {
            url: url.clone(),
            event: "child-success".to_owned(),
        })
        .push_all((0..child_leaves).map(leaf))
        .await?;
    ledger::record(&url, EVENTS, "fan-out", ctx.jid().as_str(), 0).await;
    Ok(())
}

/// A callback job of `event`.
fn callback(redis: &TestRedis, event: &str) -> RecordBatchEvent {
    RecordBatchEvent {
        url: redis.url(),
        event: event.to_owned(),
    }
}

/// A batch on `redis` with a callback for each event.
fn batch_with_callbacks(redis: &TestRedis) -> Batch {
    Batch::new()
        .client(&redis.client())
        .on_complete(callback(redis, "complete"))
        .on_success(callback(redis, "success"))
        .on_death(callback(redis, "death"))
}

/// The batch's status; fails the test when the batch is gone.
async fn status(redis: &TestRedis, bid: &Bid) -> BatchStatus {
    Batch::status(&redis.client(), bid)
        .await
        .unwrap()
        .expect("the batch exists")
}

/// How many pushes of the callback of `event` ran: distinct `<jid>@<enqueued_at>` (a callback
/// pushed once shows once, however often a crash makes it run; pushed twice, twice).
fn pushed(ledger: &Ledger, event: &str) -> usize {
    ledger.done(&format!("cb-{event}")).len()
}

/// How many runs of group `group` ended.
fn runs(ledger: &Ledger, group: &str) -> usize {
    ledger
        .ends
        .get(group)
        .map(|ends| ends.values().sum())
        .unwrap_or(0)
}

/// The JSON of the first job of class `class` in the `default` queue, exactly as queued.
async fn queued_json(raw: &mut MultiplexedConnection, class: &str) -> String {
    let queued: Vec<String> = raw.lrange("queue:default", 0, -1).await.unwrap();
    queued
        .iter()
        .find(|json| json.contains(class))
        .unwrap()
        .clone()
}

/// Waits until the callback of `event` ran.
async fn callback_ran(redis: &TestRedis, event: &str) {
    eventually(
        Duration::from_secs(30),
        &format!("the {event} callback runs"),
        async || pushed(&Ledger::read(redis, EVENTS).await, event) > 0,
    )
    .await;
}

/// Moves every job of the retry set back to its queue every 100 ms, until dropped: fast
/// retries, whatever the backoff's jitter.
fn retry_quickly(redis: &TestRedis) -> tokio::task::JoinHandle<()> {
    let retries = JobSet::new(&redis.client(), SetKind::Retry);
    tokio::spawn(async move {
        loop {
            let _ = retries.retry_all().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[tokio::test]
async fn complete_fires_after_every_job_ran_once_and_success_after_the_retries() {
    let redis = TestRedis::start();
    let url = redis.url();
    let bid = batch_with_callbacks(&redis)
        .description("a thousand steps")
        .push_all((0..1_000).map(|i| BatchStep {
            url: url.clone(),
            fail_runs: if i == 500 { 2 } else { 0 },
            millis: 0,
        }))
        .await
        .unwrap();
    let created = status(&redis, &bid).await;
    assert_eq!(created.total, 1_000);
    assert!(created.sealed);
    assert_eq!(created.description.as_deref(), Some("a thousand steps"));
    let running = RunningWorker::start(worker(&redis, &CallLog::default()).concurrency(20));

    // Every job ran once: 999 succeeded, one failed and waits in the retry set.
    callback_ran(&redis, "complete").await;
    let complete = status(&redis, &bid).await;
    assert!(complete.complete_at.is_some());
    assert_eq!(complete.success_at, None);
    assert_eq!(
        (complete.pending, complete.failures, complete.dead),
        (1, 1, 0)
    );
    let failed = &complete.failed[0];
    assert_eq!(failed.class, "BatchStep");
    assert_eq!(failed.error_message, "failing on purpose");
    assert!(failed.failed_at.is_some());
    assert!(!failed.dead);
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(ledger.done("ok").len(), 999);
    assert_eq!(ledger.done("fail").len(), 1);
    assert!(ledger.done("fail").contains(&failed.member));

    // Its first retry fails too: nothing fires.
    let retries = JobSet::new(&redis.client(), SetKind::Retry);
    eventually(
        Duration::from_secs(10),
        "the first failure's retry",
        async || retries.size().await.unwrap() == 1,
    )
    .await;
    retries.retry_all().await.unwrap();
    eventually(Duration::from_secs(10), "the second failure", async || {
        runs(&Ledger::read(&redis, EVENTS).await, "fail") == 2 && retries.size().await.unwrap() == 1
    })
    .await;
    let second = status(&redis, &bid).await;
    assert_eq!((second.pending, second.failures), (1, 1));
    assert_eq!(second.success_at, None);

    // The second retry succeeds: success fires.
    retries.retry_all().await.unwrap();
    callback_ran(&redis, "success").await;
    let done = status(&redis, &bid).await;
    assert_eq!(
        (done.total, done.pending, done.failures, done.dead),
        (1_000, 0, 0, 0)
    );
    assert!(done.failed.is_empty());
    assert_eq!(
        done.complete_at, complete.complete_at,
        "complete fired once"
    );
    assert!(done.success_at >= done.complete_at);
    assert_eq!(done.death_at, None);
    // A moment for a callback fired twice to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(ledger.done("ok").len(), 1_000);
    assert_eq!(runs(&ledger, "ok"), 1_000, "each job succeeded once");
    assert_eq!(runs(&ledger, "cb-complete"), 1);
    assert_eq!(runs(&ledger, "cb-success"), 1);
    assert_eq!(runs(&ledger, "cb-death"), 0);
}

/// The worker process of [`every_callback_fires_once_across_killed_workers`]: the test jobs,
/// concurrency 10, heartbeat every second expiring after 3, recovery every second (and no job
/// buried for being recovered often: the kills are the test's, not the jobs').
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a worker process by the batch tests"]
async fn batch_child() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by the batch tests, not directly"
    );
    // Warnings to stdout, which a test reads when it keeps the output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .try_init();
    let client = jobs::Client::from_env().expect("REDIS_URL");
    crate::support::jobs::with_test_jobs(Worker::new().client(&client), &CallLog::default())
        .concurrency(10)
        .poll_interval(Duration::from_millis(100))
        .recovery(Duration::from_secs(1), 1_000)
        .timeout(Duration::from_secs(2))
        .run()
        .await
        .expect("the worker runs until stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_callback_fires_once_across_killed_workers() {
    let redis = TestRedis::start();
    let url = redis.url();
    let spawn = || ChildWorker::spawn_entry_without_ledger("batches::batch_child", &url);
    // Two chunks of the creation script: 1,000 and 500.
    let bid = batch_with_callbacks(&redis)
        .push_all((0..1_500).map(|i| BatchStep {
            url: url.clone(),
            fail_runs: if i % 375 == 0 { 2 } else { 0 },
            millis: 100,
        }))
        .await
        .unwrap();
    let mut workers = [spawn(), spawn()];
    let _retries = retry_quickly(&redis);
    // Five kill -9s, spread over the run; each killed process is replaced at once.
    for kill in 0..5 {
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let victim = kill % 2;
        ledger::kill9(&redis, EVENTS, &mut workers[victim]).await;
        workers[victim] = spawn();
    }
    eventually(Duration::from_secs(50), "the batch succeeds", async || {
        status(&redis, &bid).await.success_at.is_some()
    })
    .await;
    callback_ran(&redis, "success").await;
    callback_ran(&redis, "complete").await;
    // A moment for a callback pushed twice to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    let done = status(&redis, &bid).await;
    assert_eq!(
        (done.total, done.pending, done.failures, done.dead),
        (1_500, 0, 0, 0)
    );
    assert_eq!(ledger.done("ok").len(), 1_500, "every job succeeded");
    assert_eq!(ledger.done("fail").len(), 4);
    assert_eq!(pushed(&ledger, "complete"), 1);
    assert_eq!(pushed(&ledger, "success"), 1);
    assert_eq!(pushed(&ledger, "death"), 0);
    assert!(done.complete_at <= done.success_at);
    // The kills cut runs short: those jobs ran again, and still counted once.
    let mut raw = redis.raw().await;
    let events: Vec<String> = raw.lrange(EVENTS, 0, -1).await.unwrap();
    ledger::assert_some_run_cut_short(&events);
}

#[tokio::test]
async fn a_job_that_dies_fires_death_and_complete_and_never_success() {
    let redis = TestRedis::start();
    let url = redis.url();
    let steps = |n| {
        (0..n).map(|_| BatchStep {
            url: url.clone(),
            fail_runs: 0,
            millis: 0,
        })
    };
    // One dies into the dead set (settle.lua's path), the other is dropped (retry: false).
    let buried = batch_with_callbacks(&redis)
        .push(BatchBuried { url: url.clone() })
        .push_all(steps(5))
        .await
        .unwrap();
    let dropped = batch_with_callbacks(&redis)
        .push(BatchDropped { url: url.clone() })
        .push_all(steps(5))
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()));
    for bid in [&buried, &dropped] {
        eventually(Duration::from_secs(10), "death and complete", async || {
            let status = status(&redis, bid).await;
            status.death_at.is_some() && status.complete_at.is_some()
        })
        .await;
    }
    eventually(Duration::from_secs(10), "the callbacks run", async || {
        let ledger = Ledger::read(&redis, EVENTS).await;
        pushed(&ledger, "death") == 2 && pushed(&ledger, "complete") == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop(Duration::from_secs(10)).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "cb-death"), 2, "death fired once per batch");
    assert_eq!(
        runs(&ledger, "cb-complete"),
        2,
        "complete fired once per batch"
    );
    assert_eq!(runs(&ledger, "cb-success"), 0, "success never fired");
    for bid in [&buried, &dropped] {
        let status = status(&redis, bid).await;
        assert_eq!(status.success_at, None);
        assert_eq!((status.total, status.pending, status.dead), (6, 1, 1));
        assert!(status.failed[0].dead);
    }
    assert_eq!(
        status(&redis, &buried).await.failed[0].error_message,
        "buried on purpose"
    );
    assert_eq!(
        status(&redis, &dropped).await.failed[0].error_message,
        "dropped on purpose"
    );
}

#[tokio::test]
async fn jobs_added_by_a_running_job_and_a_child_batch_hold_the_batch_open() {
    let redis = TestRedis::start();
    let url = redis.url();
    let bid = batch_with_callbacks(&redis)
        .push(BatchFanOut {
            url: url.clone(),
            leaves: 10,
            child_leaves: 5,
        })
        .commit()
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()).concurrency(4));
    callback_ran(&redis, "success").await;
    callback_ran(&redis, "child-success").await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    running.stop(Duration::from_secs(10)).await;
    let parent = status(&redis, &bid).await;
    // The fan-out job, its 10 jobs, and the child batch as one member.
    assert_eq!((parent.total, parent.pending, parent.failures), (12, 0, 0));
    assert_eq!(ledger.done("ok").len(), 15);
    // Complete and success came after every job the fan-out added, its child's included.
    assert!(ledger.first_start["cb-complete"] > ledger.last_end["ok"]);
    assert!(ledger.first_start["cb-success"] > ledger.last_end["ok"]);
    assert_eq!(pushed(&ledger, "complete"), 1);
    assert_eq!(pushed(&ledger, "success"), 1);
    assert_eq!(pushed(&ledger, "child-success"), 1);
    let child_bid: Bid = {
        let mut raw = redis.raw().await;
        let members: Vec<String> = raw.zrange("batches", 0, -1).await.unwrap();
        members
            .into_iter()
            .find(|member| *member != bid.to_string())
            .expect("the child batch is listed")
            .parse()
            .unwrap()
    };
    let child = status(&redis, &child_bid).await;
    assert_eq!(child.parent.as_ref(), Some(&bid));
    assert_eq!((child.total, child.pending), (5, 0));
    assert!(child.success_at <= parent.success_at);

    // A batch that succeeded takes no child.
    let refused = Batch::new()
        .client(&redis.client())
        .parent(&bid)
        .commit()
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("already succeeded"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_batch_that_succeeded_refuses_more_jobs_and_its_counts_stay() {
    let redis = TestRedis::start();
    let url = redis.url();
    let bid = batch_with_callbacks(&redis)
        .push(BatchFanOut {
            url: url.clone(),
            leaves: 2,
            child_leaves: 0,
        })
        .commit()
        .await
        .unwrap();
    let mut raw = redis.raw().await;
    let queued: Vec<String> = raw.lrange("queue:default", 0, -1).await.unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()));
    callback_ran(&redis, "success").await;
    let succeeded = status(&redis, &bid).await;
    // The fan-out job runs again (a duplicate, say): its batch takes no more jobs.
    let _: () = raw.lpush("queue:default", &queued[0]).await.unwrap();
    let retries = JobSet::new(&redis.client(), SetKind::Retry);
    eventually(Duration::from_secs(10), "the refused fan-out", async || {
        retries.size().await.unwrap() == 1
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    let refused = &sorted_set(&redis, "retry").await[0].0;
    let message = refused["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("success callback already fired") && message.contains("new batch"),
        "{message}"
    );
    // A failure after a success changes nothing.
    assert_eq!(status(&redis, &bid).await, succeeded);
}

#[tokio::test]
async fn an_update_repeated_after_a_lost_acknowledgement_counts_once() {
    let redis = TestRedis::start();
    let url = redis.url();
    let bid = batch_with_callbacks(&redis)
        .push(BatchStep {
            url: url.clone(),
            fail_runs: 0,
            millis: 0,
        })
        .push(BatchGate {
            url: url.clone(),
            gate: "gate".to_owned(),
        })
        .commit()
        .await
        .unwrap();
    // The step's JSON exactly as queued: what a crash between its batch's update and its
    // acknowledgement leaves in the working list, and recovery puts back.
    let mut raw = redis.raw().await;
    let step = queued_json(&mut raw, "BatchStep").await;
    let running = RunningWorker::start(worker(&redis, &CallLog::default()));
    callback_ran(&redis, "complete").await;
    let _: () = raw.lpush("queue:default", &step).await.unwrap();
    eventually(Duration::from_secs(10), "the step runs again", async || {
        runs(&Ledger::read(&redis, EVENTS).await, "ok") == 2
    })
    .await;
    // Let its acknowledgement (and any callback) land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let repeated = status(&redis, &bid).await;
    assert_eq!(repeated.pending, 1, "the gate still pending: counted once");
    assert_eq!(repeated.success_at, None);
    assert_eq!(pushed(&Ledger::read(&redis, EVENTS).await, "success"), 0);

    let _: () = raw.set("gate", 1).await.unwrap();
    JobSet::new(&redis.client(), SetKind::Retry)
        .retry_all()
        .await
        .unwrap();
    callback_ran(&redis, "success").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop(Duration::from_secs(10)).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "cb-success"), 1);
    assert_eq!(runs(&ledger, "cb-complete"), 1);
    let done = status(&redis, &bid).await;
    assert_eq!((done.total, done.pending, done.failures), (2, 0, 0));
}

#[tokio::test]
async fn an_empty_batch_succeeds_at_once_and_a_bid_is_created_once() {
    let redis = TestRedis::start();
    let bid = Bid::generate();
    let created = batch_with_callbacks(&redis)
        .bid(bid.clone())
        .commit()
        .await
        .unwrap();
    assert_eq!(created, bid);
    let again = Batch::new()
        .client(&redis.client())
        .bid(bid.clone())
        .push(BatchStep {
            url: redis.url(),
            fail_runs: 0,
            millis: 0,
        })
        .commit()
        .await
        .unwrap();
    assert_eq!(again, bid);
    let status = status(&redis, &bid).await;
    assert_eq!(status.total, 0, "the second creation pushed nothing");
    assert_eq!(
        status.callbacks,
        [
            (BatchEvent::Complete, "RecordBatchEvent".to_owned()),
            (BatchEvent::Success, "RecordBatchEvent".to_owned()),
            (BatchEvent::Death, "RecordBatchEvent".to_owned()),
        ]
    );
    assert!(status.complete_at.is_some() && status.success_at.is_some());
    let queued: HashSet<String> = redis
        .queue("default")
        .await
        .iter()
        .map(|job| job["class"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(queued, HashSet::from(["RecordBatchEvent".to_owned()]));
    let callbacks = redis.queue("default").await;
    assert_eq!(callbacks.len(), 2, "complete and success");
    for job in &callbacks {
        assert_eq!(job["batch_callback"]["bid"], bid.to_string());
        assert!(job["enqueued_at"].is_f64());
        assert!(job.get("bid").is_none());
    }
    assert_eq!(
        Batch::status(&redis.client(), &Bid::generate())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_job_that_expired_unrun_counts_as_a_success() {
    let redis = TestRedis::start();
    let bid = batch_with_callbacks(&redis)
        .push(BatchExpiring { url: redis.url() })
        .commit()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let running = RunningWorker::start(worker(&redis, &CallLog::default()));
    callback_ran(&redis, "success").await;
    running.stop(Duration::from_secs(10)).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "ok"), 0, "the job did not run");
    let status = status(&redis, &bid).await;
    assert_eq!((status.total, status.pending, status.failures), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_crashing_its_worker_is_a_death_of_its_batch() {
    let redis = TestRedis::start();
    let url = redis.url();
    let bid = batch_with_callbacks(&redis)
        .push(AbortProcess {})
        .push_all((0..5).map(|_| BatchStep {
            url: url.clone(),
            fail_runs: 0,
            millis: 0,
        }))
        .await
        .unwrap();
    let ledger_file = ledger_path("batch-poison");
    // Buried by recovery at its second counted recovery.
    let env = [("JOBS_TEST_MAX_RECOVERIES", "1")];
    let mut worker = ChildWorker::spawn(&url, &ledger_file, &env);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while status(&redis, &bid).await.death_at.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the poison job never killed its batch"
        );
        if !worker.is_running() {
            worker = ChildWorker::spawn(&url, &ledger_file, &env);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    callback_ran(&redis, "death").await;
    callback_ran(&redis, "complete").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(worker);
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "cb-death"), 1);
    assert_eq!(runs(&ledger, "cb-complete"), 1);
    assert_eq!(runs(&ledger, "cb-success"), 0);
    let status = status(&redis, &bid).await;
    assert_eq!((status.total, status.pending, status.dead), (6, 1, 1));
    assert_eq!(status.failed[0].error_class, "jobs::Abandoned");
    assert!(status.failed[0].dead);
}

#[tokio::test]
async fn inline_mode_refuses_a_batch_with_what_to_do() {
    // Inline mode: fake mode keeps batches in memory (testing_batches).
    let _inline = jobs::testing::inline();
    // Where nothing listens: the refusal comes before any connection.
    let nowhere = jobs::Client::builder()
        .url("redis://127.0.0.1:1")
        .build()
        .unwrap();
    let refused = Batch::new().client(&nowhere).commit().await.unwrap_err();
    assert!(matches!(refused, jobs::Error::Batch { .. }), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("inline mode does not run batches"),
        "{refused}"
    );
}

#[tokio::test]
async fn success_climbs_a_chain_of_nested_batches() {
    let redis = TestRedis::start();
    let url = redis.url();
    let step = || BatchStep {
        url: url.clone(),
        fail_runs: 0,
        millis: 0,
    };
    let on_success = |event: &str| callback(&redis, event);
    let client = redis.client();
    let top = Batch::new()
        .client(&client)
        .on_success(on_success("top-success"))
        .push(BatchGate {
            url: url.clone(),
            gate: "gate".to_owned(),
        })
        .commit()
        .await
        .unwrap();
    let middle = Batch::new()
        .client(&client)
        .parent(&top)
        .on_success(on_success("middle-success"))
        .push(step())
        .commit()
        .await
        .unwrap();
    let bottom = Batch::new()
        .client(&client)
        .parent(&middle)
        .on_success(on_success("bottom-success"))
        .push_all([step(), step()])
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()));
    callback_ran(&redis, "middle-success").await;
    let waiting = status(&redis, &top).await;
    assert_eq!(
        (waiting.total, waiting.pending),
        (2, 1),
        "the gate holds the top open"
    );
    assert_eq!(waiting.success_at, None);

    let retries = JobSet::new(&client, SetKind::Retry);
    eventually(Duration::from_secs(10), "the gate's failure", async || {
        retries.size().await.unwrap() == 1
    })
    .await;
    let mut raw = redis.raw().await;
    let _: () = raw.set("gate", 1).await.unwrap();
    retries.retry_all().await.unwrap();
    callback_ran(&redis, "top-success").await;
    running.stop(Duration::from_secs(10)).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    for event in ["bottom-success", "middle-success", "top-success"] {
        assert_eq!(pushed(&ledger, event), 1, "{event}");
    }
    let [top, middle, bottom] = [
        status(&redis, &top).await,
        status(&redis, &middle).await,
        status(&redis, &bottom).await,
    ];
    assert_eq!(
        (middle.total, middle.pending),
        (2, 0),
        "its job and its child"
    );
    assert_eq!((bottom.total, bottom.pending), (2, 0));
    assert!(bottom.success_at <= middle.success_at);
    assert!(middle.success_at <= top.success_at);
}

#[tokio::test]
async fn a_batch_expires_only_its_own_keys_never_a_queue() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    // A backlog the batch has nothing to do with.
    let _: () = raw
        .lpush(
            "queue:default",
            r#"{"class":"Other","args":[],"jid":"other","queue":"default"}"#,
        )
        .await
        .unwrap();
    let _: () = raw.sadd("queues", "default").await.unwrap();
    let bid = Batch::new()
        .client(&redis.client())
        .retention(Duration::from_secs(60))
        .push(BatchStep {
            url: redis.url(),
            fail_runs: 0,
            millis: 0,
        })
        .commit()
        .await
        .unwrap();
    for key in ["queue:default", "queues", "batches"] {
        let ttl: i64 = raw.ttl(key).await.unwrap();
        assert_eq!(ttl, -1, "{key} has no expiry");
    }
    let ttl: i64 = raw.ttl(format!("batch:{bid}")).await.unwrap();
    assert!(
        (1..=60).contains(&ttl),
        "the batch's own hash expires: {ttl}"
    );
}

#[tokio::test]
async fn an_outcome_counts_only_while_the_job_is_in_the_working_list() {
    let redis = TestRedis::start();
    let bid = batch_with_callbacks(&redis)
        .push(BatchRecoveredElsewhere { url: redis.url() })
        .commit()
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()));
    eventually(Duration::from_secs(10), "the job ran", async || {
        runs(&Ledger::read(&redis, EVENTS).await, "fail") == 1
    })
    .await;
    // Its settle (and any update) lands before the worker stops.
    running.stop(Duration::from_secs(10)).await;
    let status = status(&redis, &bid).await;
    assert_eq!(
        status.death_at, None,
        "a job recovered elsewhere is not this worker's to count"
    );
    assert_eq!((status.pending, status.dead), (1, 0));
}

#[tokio::test]
async fn a_child_batch_s_death_does_not_complete_its_parent_before_the_child_completes() {
    let redis = TestRedis::start();
    let url = redis.url();
    let client = redis.client();
    let parent = Batch::new()
        .client(&client)
        .on_complete(callback(&redis, "p-complete"))
        .on_death(callback(&redis, "p-death"))
        .push(BatchStep {
            url: url.clone(),
            fail_runs: 0,
            millis: 0,
        })
        .commit()
        .await
        .unwrap();
    let child = Batch::new()
        .client(&client)
        .parent(&parent)
        .push(BatchDropped { url: url.clone() })
        .push(BatchStep {
            url: url.clone(),
            fail_runs: 0,
            millis: 1_500,
        })
        .commit()
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()).concurrency(4));
    callback_ran(&redis, "p-complete").await;
    callback_ran(&redis, "p-death").await;
    running.stop(Duration::from_secs(10)).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "ok"), 2);
    assert!(
        ledger.first_start["cb-p-complete"] > ledger.last_end["ok"],
        "the parent completes only after the child's slow job ended"
    );
    let parent = status(&redis, &parent).await;
    assert_eq!(parent.success_at, None);
    assert!(parent.death_at.is_some() && parent.complete_at.is_some());
    assert_eq!((parent.pending, parent.failures, parent.dead), (1, 1, 1));
    assert_eq!(parent.failed[0].member, format!("batch:{child}"));
    assert!(parent.failed[0].dead, "the child's failure keeps its death");
}

/// A client middleware that fails the `nth` job it sees (from 1), once.
struct FailNth {
    nth: usize,
    seen: std::sync::atomic::AtomicUsize,
}

impl jobs::ClientMiddleware for FailNth {
    async fn call(&self, _job: &mut jobs::Payload) -> Result<jobs::Flow, jobs::BoxError> {
        let seen = self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if seen == self.nth {
            return Err("a crash mid-creation".into());
        }
        Ok(jobs::Flow::Continue)
    }
}

#[tokio::test]
async fn a_creation_with_a_fixed_bid_run_again_after_failing_half_way_completes_it() {
    let redis = TestRedis::start();
    let url = redis.url();
    let bid = Bid::generate();
    // The step's `millis` numbers the jobs (no worker runs them).
    let jobs = || {
        (0..2_500).map(|i| BatchStep {
            url: url.clone(),
            fail_runs: 0,
            millis: i,
        })
    };
    let failing = jobs::Client::builder()
        .url(redis.url())
        .middleware(FailNth {
            nth: 1_500,
            seen: std::sync::atomic::AtomicUsize::new(0),
        })
        .build()
        .unwrap();
    let crashed = Batch::new()
        .client(&failing)
        .bid(bid.clone())
        .push_all(jobs())
        .await;
    assert!(crashed.is_err(), "the middleware fails job #1,500");
    let half = status(&redis, &bid).await;
    assert!(!half.sealed);
    assert_eq!(half.total, 1_000, "the first chunk was pushed");

    let again = Batch::new()
        .client(&redis.client())
        .bid(bid.clone())
        .push_all(jobs())
        .await
        .unwrap();
    assert_eq!(again, bid);
    let done = status(&redis, &bid).await;
    assert!(done.sealed, "the re-run completes the creation");
    assert_eq!(done.total, 2_500);
    let queued = redis.queue("default").await;
    assert_eq!(queued.len(), 2_500);
    let mut numbers: Vec<u64> = queued
        .iter()
        .map(|job| job["args"][2].as_u64().expect("the step's millis"))
        .collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (0..2_500).collect::<Vec<u64>>(),
        "each job queued once"
    );

    // A third creation with the bid (more jobs this time) pushes nothing.
    let third = Batch::new()
        .client(&redis.client())
        .bid(bid.clone())
        .push_all((0..3_500).map(|i| BatchStep {
            url: url.clone(),
            fail_runs: 0,
            millis: i,
        }))
        .await
        .unwrap();
    assert_eq!(third, bid);
    assert_eq!(redis.queue("default").await.len(), 2_500);
    assert_eq!(status(&redis, &bid).await.total, 2_500);
}

#[tokio::test]
async fn jobs_added_by_a_job_that_runs_again_are_added_once() {
    let redis = TestRedis::start();
    let url = redis.url();
    let bid = batch_with_callbacks(&redis)
        .push(BatchAddLeaves {
            url: url.clone(),
            leaves: 3,
        })
        // Holds the batch open.
        .push(BatchGate {
            url: url.clone(),
            gate: "gate".to_owned(),
        })
        .commit()
        .await
        .unwrap();
    let mut raw = redis.raw().await;
    let fan_out = queued_json(&mut raw, "BatchAddLeaves").await;
    // The same adding job twice at once: each add arrives twice, as a resend would.
    let _: () = raw.lpush("queue:default", &fan_out).await.unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()).concurrency(4));
    eventually(Duration::from_secs(10), "both copies ran", async || {
        runs(&Ledger::read(&redis, EVENTS).await, "fan-out") == 2
    })
    .await;
    // Run again after it finished (its entry queued again, as recovery would).
    let _: () = raw.lpush("queue:default", &fan_out).await.unwrap();
    eventually(Duration::from_secs(10), "the third run", async || {
        runs(&Ledger::read(&redis, EVENTS).await, "fan-out") == 3
    })
    .await;
    // Let any added job run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop(Duration::from_secs(10)).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "ok"), 3, "each leaf pushed and run once");
    let status = status(&redis, &bid).await;
    assert_eq!(status.total, 5, "the adding job, the gate, three leaves");
    assert_eq!(status.pending, 1, "the gate");
}

#[tokio::test]
async fn a_retry_killed_by_hand_is_a_death_of_its_batch() {
    let redis = TestRedis::start();
    let bid = batch_with_callbacks(&redis)
        .push(BatchGate {
            url: redis.url(),
            gate: "gate".to_owned(),
        })
        .commit()
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()));
    let retries = JobSet::new(&redis.client(), SetKind::Retry);
    eventually(Duration::from_secs(10), "the gate's failure", async || {
        retries.size().await.unwrap() == 1
    })
    .await;
    assert_eq!(retries.kill_all().await.unwrap(), 1);
    callback_ran(&redis, "death").await;
    callback_ran(&redis, "complete").await;
    running.stop(Duration::from_secs(10)).await;
    let status = status(&redis, &bid).await;
    assert!(status.death_at.is_some());
    assert_eq!((status.pending, status.dead), (1, 1));
    assert!(status.failed[0].dead);
    assert_eq!(status.failed[0].error_message, "the gate is shut");
    assert_eq!(status.success_at, None);
}

#[tokio::test]
async fn callbacks_fire_once_after_sealing_while_workers_run_during_the_creation() {
    let redis = TestRedis::start();
    let url = redis.url();
    // Workers first: the first chunk's jobs run (and settle) while the second is sent.
    let running = RunningWorker::start(worker(&redis, &CallLog::default()).concurrency(20));
    let bid = batch_with_callbacks(&redis)
        .push_all((0..1_500).map(|_| BatchStep {
            url: url.clone(),
            fail_runs: 0,
            millis: 0,
        }))
        .await
        .unwrap();
    callback_ran(&redis, "success").await;
    callback_ran(&redis, "complete").await;
    // A moment for a callback pushed twice to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop(Duration::from_secs(10)).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(ledger.done("ok").len(), 1_500);
    assert_eq!(pushed(&ledger, "complete"), 1);
    assert_eq!(pushed(&ledger, "success"), 1);
    assert_eq!(pushed(&ledger, "death"), 0);
    // Fired after the seal: after the last chunk's jobs, not when the first chunk's were done.
    assert!(ledger.first_start["cb-complete"] > ledger.last_end["ok"]);
    assert!(ledger.first_start["cb-success"] > ledger.last_end["ok"]);
    let done = status(&redis, &bid).await;
    assert!(done.sealed);
    assert_eq!((done.total, done.pending), (1_500, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_update_redis_refused_is_logged() {
    let redis = TestRedis::start();
    let bid = batch_with_callbacks(&redis)
        .push(BatchGate {
            url: redis.url(),
            gate: "gate".to_owned(),
        })
        .commit()
        .await
        .unwrap();
    // A key of another type where the batch's failures go: Redis refuses the update's HSET.
    let mut raw = redis.raw().await;
    let _: () = raw.del(format!("batch:{bid}:failed")).await.unwrap();
    let _: () = raw.set(format!("batch:{bid}:failed"), "x").await.unwrap();
    let mut child = ChildWorker::spawn_entry(
        "batches::batch_child",
        &redis.url(),
        &ledger_path("batch-update-error"),
        &[],
    );
    let retries = JobSet::new(&redis.client(), SetKind::Retry);
    eventually(Duration::from_secs(20), "the gate's failure", async || {
        retries.size().await.unwrap() == 1
    })
    .await;
    eventually(Duration::from_secs(5), "the refusal logged", async || {
        child.log().contains("batch update")
    })
    .await;
    let log = child.log();
    child.kill9();
    assert!(log.contains(bid.as_str()), "{log}");
    assert!(log.contains("WRONGTYPE"), "{log}");
}

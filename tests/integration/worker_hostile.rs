//! Hostile entries in the worker's way: bytes that are not UTF-8 in a queue, in a blocking
//! fetch's reply, in a dead process's working list and in this process's own; a recovery count
//! hidden in a job's arguments; a dead-set limit too big for Lua's numbers. Each must cost the
//! one bad entry and nothing else.

use std::sync::atomic::Ordering;
use std::time::Duration;

use jobs::Payload;
use jobs::worker::WorkerConfig;
use redis::AsyncCommands;
use serde_json::json;

use crate::support::jobs::{CallLog, FailWith, Gauge, Ledger, Record, Slow, worker};
use crate::support::{RunningWorker, TestRedis, eventually};

/// An entry that is not UTF-8 (`\xff` cannot start a character), shaped like a job otherwise.
const NOT_UTF8: &[u8] =
    b"\xff{\"class\":\"Record\",\"args\":[\"bad\"],\"jid\":\"x\",\"queue\":\"default\"}";

/// The members of the dead set, parsed.
async fn dead(redis: &TestRedis) -> Vec<serde_json::Value> {
    let members: Vec<String> = redis.raw().await.zrange("dead", 0, -1).await.unwrap();
    members
        .iter()
        .map(|member| serde_json::from_str(member).unwrap())
        .collect()
}

/// How many entries every working list holds in all.
async fn held_in_working_lists(redis: &TestRedis) -> usize {
    let mut raw = redis.raw().await;
    let lists: Vec<String> = raw.keys("jobs:working:*").await.unwrap();
    let mut held = 0;
    for list in lists {
        let length: usize = raw.llen(&list).await.unwrap();
        held += length;
    }
    held
}

/// The JSON of a `Record` job labelled `label`.
fn record(label: &str) -> String {
    Payload::new("Record", vec![json!(label)])
        .to_json()
        .unwrap()
}

/// Makes `identity` a dead process (in `jobs:workers`, no liveness key) holding `entries`.
async fn dead_process(redis: &TestRedis, identity: &str, entries: &[&[u8]]) {
    let mut raw = redis.raw().await;
    let _: () = raw.sadd("jobs:workers", identity).await.unwrap();
    for entry in entries {
        let _: () = raw
            .lpush(format!("jobs:working:{identity}"), *entry)
            .await
            .unwrap();
    }
}

/// Pushes `count` `Record` jobs labelled `0..count`.
async fn push_records(redis: &TestRedis, count: usize) {
    let client = redis.client();
    for label in 0..count {
        client
            .perform_async(Record {
                label: label.to_string(),
            })
            .await
            .unwrap();
    }
}

/// Asserts the one dead entry is the bad one, buried with a reason that names the problem, and
/// that no working list holds anything.
async fn assert_buried_as_not_utf8(redis: &TestRedis) {
    let dead = dead(redis).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["class"], "jobs::InvalidPayload");
    let reason = dead[0]["error_message"].as_str().unwrap();
    assert!(reason.contains("UTF-8"), "{reason}");
    assert_eq!(held_in_working_lists(redis).await, 0);
}

#[tokio::test]
async fn a_job_that_is_not_utf8_is_buried_and_the_rest_of_its_batch_runs() {
    let redis = TestRedis::start();
    push_records(&redis, 10).await;
    let _: () = redis
        .raw()
        .await
        .lpush("queue:default", NOT_UTF8)
        .await
        .unwrap();
    push_records(&redis, 10).await;
    let log = CallLog::default();
    // Concurrency 5 takes 20 jobs a fetch: the bad entry shares its batch with good ones.
    let drained = tokio::time::timeout(
        Duration::from_secs(20),
        worker(&redis, &log).concurrency(5).drain(),
    )
    .await;
    assert!(drained.is_ok(), "the worker stalled on the bad entry");
    drained.unwrap().unwrap();

    assert_eq!(log.entries().len(), 20, "{:?}", log.entries());
    assert_buried_as_not_utf8(&redis).await;
}

#[tokio::test]
async fn a_blocking_fetch_that_brings_bytes_that_are_not_utf8_buries_them() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    // Let the worker find the queue empty and block on it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _: () = redis
        .raw()
        .await
        .lpush("queue:default", NOT_UTF8)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    push_records(&redis, 3).await;
    eventually(
        Duration::from_secs(10),
        "the good jobs to run",
        async || log.entries().len() == 3,
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the bad entry to be buried",
        async || dead(&redis).await.len() == 1,
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_buried_as_not_utf8(&redis).await;
}

#[tokio::test]
async fn recovery_buries_bytes_that_are_not_utf8_and_recovers_every_other_dead_process() {
    let redis = TestRedis::start();
    // A dead process holding the bad entry and a good job, and five more holding a job each:
    // none of them has a heartbeat.
    let beside = record("beside");
    dead_process(
        &redis,
        "poisoned:1:aaaaaaaaaaaa",
        &[NOT_UTF8, beside.as_bytes()],
    )
    .await;
    for n in 0..5 {
        let job = record(&format!("dead{n}"));
        dead_process(
            &redis,
            &format!("dead{n}:1:bbbbbbbbbbbb"),
            &[job.as_bytes()],
        )
        .await;
    }
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(
        Duration::from_secs(15),
        "every good job to run",
        async || log.entries().len() == 6,
    )
    .await;
    running.stop(Duration::from_secs(10)).await;

    let mut ran = log.entries();
    ran.sort();
    assert_eq!(ran, ["beside", "dead0", "dead1", "dead2", "dead3", "dead4"]);
    assert_buried_as_not_utf8(&redis).await;
}

#[tokio::test]
async fn shutdown_hands_back_an_entry_that_is_not_utf8_as_it_was() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    let mut raw = redis.raw().await;
    let mut lists: Vec<String> = Vec::new();
    eventually(
        Duration::from_secs(10),
        "the worker's working list",
        async || {
            // The worker registers in `jobs:workers` when it first fetches.
            let workers: Vec<String> = raw.smembers("jobs:workers").await.unwrap();
            lists = workers
                .iter()
                .map(|identity| format!("jobs:working:{identity}"))
                .collect();
            !lists.is_empty()
        },
    )
    .await;
    // An entry no fetch reply brought (a reply lost on the way, say): shutdown finds it.
    let _: () = raw.lpush(&lists[0], NOT_UTF8).await.unwrap();
    running.stop(Duration::from_secs(10)).await;

    let queued: Vec<Vec<u8>> = raw.lrange("queue:default", 0, -1).await.unwrap();
    assert_eq!(queued, [NOT_UTF8.to_vec()]);
    assert_eq!(held_in_working_lists(&redis).await, 0);
}

#[tokio::test]
async fn a_recovery_count_inside_the_arguments_does_not_make_a_job_run_alone() {
    let redis = TestRedis::start();
    let client = redis.client();
    for _ in 0..10 {
        let mut payload = Payload::new(
            "MeasureWithNote",
            vec![json!(300), json!({"jobs_recoveries": 9})],
        );
        payload.retry = Some(jobs::Retry::Disabled);
        client.push(payload).await.unwrap();
    }
    let gauge = Gauge::default();
    let log = CallLog::default();
    worker(&redis, &log)
        .state(gauge.clone())
        .concurrency(5)
        .drain()
        .await
        .unwrap();
    assert_eq!(gauge.finished.load(Ordering::SeqCst), 10);
    assert_eq!(
        gauge.most.load(Ordering::SeqCst),
        5,
        "jobs ran alone, as if they were one crash from the dead set"
    );
}

#[tokio::test]
async fn recovered_jobs_register_their_queue_again() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let job = Payload::new("RecordHigh", vec![json!("recovered")])
        .queue("high")
        .to_json()
        .unwrap();
    dead_process(&redis, "gone:1:cccccccccccc", &[job.as_bytes()]).await;
    // Someone deleted the queue from the dashboard meanwhile: `queues` no longer names it.
    let _: () = raw.del("queues").await.unwrap();
    recover_into_high(&redis).await;
    let queues: Vec<String> = raw.smembers("queues").await.unwrap();
    assert!(queues.contains(&"high".to_owned()), "{queues:?}");
}

#[tokio::test]
async fn a_dead_set_limit_too_big_for_lua_still_leaves_a_buried_job_in_one_place() {
    let redis = TestRedis::start();
    let client = redis.client();
    client
        .push(Payload::new("BuryMe", vec![]).retry(0))
        .await
        .unwrap();
    let mut config = WorkerConfig::default();
    config.dead_max_jobs = usize::MAX;
    let drained = tokio::time::timeout(
        Duration::from_secs(10),
        jobs::Worker::from_config(config)
            .client(&client)
            .state(CallLog::default())
            .state(Gauge::default())
            .state(Ledger::default())
            .drain(),
    )
    .await;
    assert!(drained.is_ok(), "settling the buried job kept failing");
    drained.unwrap().unwrap();
    let dead = dead(&redis).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["class"], "BuryMe");
    assert_eq!(held_in_working_lists(&redis).await, 0);
}

#[tokio::test]
async fn a_failed_job_whose_retry_cannot_be_written_stays_held_until_it_can() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    // The retry set has the wrong type: moving the failed job there fails until it is fixed.
    let _: () = raw.set("retry", "not a sorted set").await.unwrap();
    redis
        .client()
        .perform_async(FailWith {
            how: "plain".into(),
        })
        .await
        .unwrap();
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    // Longer than any give-up window: the job must still be held, not stranded untracked.
    tokio::time::sleep(Duration::from_secs(33)).await;
    assert_eq!(held_in_working_lists(&redis).await, 1);
    let _: () = raw.del("retry").await.unwrap();
    eventually(
        Duration::from_secs(15),
        "the job to reach the retry set",
        async || {
            let retries: usize = raw.zcard("retry").await.unwrap();
            retries == 1
        },
    )
    .await;
    assert_eq!(held_in_working_lists(&redis).await, 0);
    running.stop(Duration::from_secs(10)).await;
}

/// A `Record` job one crash from the dead set (the test worker buries at 3 recoveries).
fn suspect(label: &str) -> Payload {
    let mut payload = Payload::new("Record", vec![json!(label)]);
    payload.extra.insert("jobs_recoveries".into(), json!(3));
    payload
}

/// Pushes 5 `Slow` jobs of `millis`, a suspect and `records` `Record` jobs, in that order, and
/// starts a worker of concurrency 5 on them.
async fn behind_slow_jobs_a_suspect_then_records(
    redis: &TestRedis,
    log: &CallLog,
    millis: u64,
    records: usize,
) -> RunningWorker {
    let client = redis.client();
    for _ in 0..5 {
        client.perform_async(Slow { millis }).await.unwrap();
    }
    client.push(suspect("suspect")).await.unwrap();
    push_records(redis, records).await;
    RunningWorker::start(worker(redis, log).concurrency(5))
}

/// Every entry of every working list, as text.
async fn working_entries(redis: &TestRedis) -> Vec<String> {
    let mut raw = redis.raw().await;
    let lists: Vec<String> = raw.keys("jobs:working:*").await.unwrap();
    let mut entries = Vec::new();
    for list in lists {
        let held: Vec<String> = raw.lrange(&list, 0, -1).await.unwrap();
        entries.extend(held);
    }
    entries
}

#[tokio::test]
async fn a_job_one_crash_from_the_dead_set_never_waits_taken_ahead_beside_others() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    // Concurrency 5 takes 20 jobs a fetch: the suspect is among those taken ahead.
    let running = behind_slow_jobs_a_suspect_then_records(&redis, &log, 1_500, 10).await;
    eventually(
        Duration::from_secs(10),
        "the slow jobs to start",
        async || {
            log.entries()
                .iter()
                .filter(|entry| entry.starts_with("started"))
                .count()
                == 5
        },
    )
    .await;
    let held = working_entries(&redis).await;
    assert!(
        !held.iter().any(|entry| entry.contains("\"suspect\"")),
        "the suspect waits in the working list beside running jobs: {held:?}"
    );
    eventually(Duration::from_secs(20), "every job to run", async || {
        log.entries().iter().any(|entry| entry == "suspect") && log.entries().len() == 5 * 2 + 11
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_job_one_crash_from_the_dead_set_waits_a_bounded_time_to_run_alone() {
    let redis = TestRedis::start();
    let client = redis.client();
    client.perform_async(Slow { millis: 30_000 }).await.unwrap();
    let log = CallLog::default();
    // The test worker's shutdown timeout, 5 s, bounds the wait.
    let running = RunningWorker::start(worker(&redis, &log).concurrency(2));
    eventually(
        Duration::from_secs(10),
        "the long job to start",
        async || log.entries() == ["started 30000"],
    )
    .await;
    client.push(suspect("suspect")).await.unwrap();
    let pushed = std::time::Instant::now();
    eventually(Duration::from_secs(15), "the suspect to run", async || {
        log.entries().iter().any(|entry| entry == "suspect")
    })
    .await;
    let waited = pushed.elapsed();
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    running.stop(Duration::from_secs(15)).await;
}

#[tokio::test]
async fn a_queues_key_of_the_wrong_type_never_leaves_a_job_in_two_places() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    // A dead process holding a job, and a job due in `schedule`.
    dead_process(
        &redis,
        "gone:1:dddddddddddd",
        &[record("recovered").as_bytes()],
    )
    .await;
    let _: () = raw.zadd("schedule", record("scheduled"), 1).await.unwrap();
    // Registering a queue in `queues` fails from now on.
    let _: () = raw.set("queues", "not a set").await.unwrap();
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(Duration::from_secs(15), "both jobs to run", async || {
        log.entries().len() >= 2
    })
    .await;
    // Several recovery sweeps and scheduler rounds later, each ran once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.stop(Duration::from_secs(10)).await;
    let mut ran = log.entries();
    ran.sort();
    assert_eq!(ran, ["recovered", "scheduled"]);
    assert_eq!(held_in_working_lists(&redis).await, 0);
    let scheduled: usize = raw.zcard("schedule").await.unwrap();
    assert_eq!(scheduled, 0);
}

#[tokio::test]
async fn the_job_that_runs_alone_is_the_one_one_crash_from_the_dead_set() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    // Concurrency 5 takes 20 jobs a fetch: the suspect and 14 others are taken ahead, and the
    // others are handed back in front of it when it is about to run alone.
    let running = behind_slow_jobs_a_suspect_then_records(&redis, &log, 500, 20).await;
    eventually(Duration::from_secs(20), "every job to run", async || {
        log.entries().len() == 5 * 2 + 21
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    let first_after_the_slow_ones = log
        .entries()
        .into_iter()
        .find(|entry| !entry.starts_with("started") && !entry.starts_with("finished"));
    assert_eq!(
        first_after_the_slow_ones.as_deref(),
        Some("suspect"),
        "{:?}",
        log.entries()
    );
}

#[tokio::test]
async fn a_dead_process_whose_work_hash_holds_another_type_is_still_recovered() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let identity = "gone:1:dddddddddddd";
    let job = Payload::new("RecordHigh", vec![json!("recovered")])
        .queue("high")
        .to_json()
        .unwrap();
    dead_process(&redis, identity, &[job.as_bytes()]).await;
    let _: () = raw
        .set(format!("{identity}:work"), "not a hash")
        .await
        .unwrap();
    recover_into_high(&redis).await;
    let recovered: Vec<String> = raw.lrange("queue:high", 0, -1).await.unwrap();
    let recovered: serde_json::Value = serde_json::from_str(&recovered[0]).unwrap();
    assert_eq!(
        recovered["jobs_recovered_unseen"], 1,
        "read as not seen running: {recovered}"
    );
}

/// Runs a worker that takes only from `default` until a dead process's job is recovered into
/// `queue:high`, where it stays (nothing takes from it), then stops the worker.
async fn recover_into_high(redis: &TestRedis) {
    let mut raw = redis.raw().await;
    let running = RunningWorker::start(worker(redis, &CallLog::default()).queues(["default"]));
    eventually(
        Duration::from_secs(15),
        "the job to be recovered",
        async || {
            let queued: usize = raw.llen("queue:high").await.unwrap();
            queued == 1
        },
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
}

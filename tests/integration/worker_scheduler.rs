//! The scheduler: due `schedule` and `retry` members move to their queues, atomically, fast.

use std::collections::HashSet;
use std::time::Duration;

use jobs::worker::enqueue_due;
use redis::AsyncCommands;
use serde_json::json;

use crate::support::jobs::worker;
use crate::support::jobs::{CallLog, Record};
use crate::support::{RunningWorker, TestRedis, eventually, now, sorted_set};

/// Puts `count` due jobs in `set`, as Sidekiq would have written them.
async fn due_jobs(redis: &TestRedis, set: &str, count: usize) {
    let mut raw = redis.raw().await;
    let past = now() - 60.0;
    for chunk in (0..count).collect::<Vec<_>>().chunks(1_000) {
        let mut pipeline = redis::pipe();
        for n in chunk {
            let job = json!({
                "class": "Record", "args": [format!("due {n}")], "queue": "default",
                "jid": format!("{n:024x}"), "retry": true, "created_at": past,
            });
            pipeline
                .zadd(set, job.to_string(), past + *n as f64 / 1000.0)
                .ignore();
        }
        let _: () = pipeline.query_async(&mut raw).await.unwrap();
    }
}

#[tokio::test]
async fn due_jobs_move_to_their_queue_with_a_fresh_enqueued_at() {
    let redis = TestRedis::start();
    due_jobs(&redis, "schedule", 3).await;
    let future = now() + 3600.0;
    let mut raw = redis.raw().await;
    let _: () = raw
        .zadd(
            "schedule",
            json!({"class": "Record", "args": ["later"], "queue": "default", "jid": "f"})
                .to_string(),
            future,
        )
        .await
        .unwrap();
    let before = now();
    assert_eq!(enqueue_due(&redis.client()).await.unwrap(), 3);

    let queued = redis.queue("default").await;
    assert_eq!(queued.len(), 3);
    assert_eq!(queued[0]["args"], json!(["due 0"]), "oldest first");
    assert!(
        queued
            .iter()
            .all(|job| job["enqueued_at"].as_f64().unwrap() >= before - 1.0)
    );
    assert_eq!(
        sorted_set(&redis, "schedule").await.len(),
        1,
        "the future job stays"
    );
    let queues: Vec<String> = raw.smembers("queues").await.unwrap();
    assert_eq!(queues, ["default"]);
}

#[tokio::test]
async fn due_retries_keep_their_error_fields() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let failed = json!({
        "class": "Record", "args": ["again"], "queue": "slow_lane", "jid": "r1", "retry": true,
        "retry_count": 2, "error_message": "boom", "error_class": "JobError",
        "failed_at": 1.5, "bid": "kept",
    });
    let _: () = raw
        .zadd("retry", failed.to_string(), now() - 1.0)
        .await
        .unwrap();
    enqueue_due(&redis.client()).await.unwrap();
    let job = &redis.queue("slow_lane").await[0];
    assert_eq!(job["retry_count"], 2);
    assert_eq!(job["error_message"], "boom");
    assert_eq!(job["bid"], "kept");
    assert!(job["enqueued_at"].is_f64());
}

#[tokio::test]
async fn a_backlog_drains_in_one_call() {
    let redis = TestRedis::start();
    due_jobs(&redis, "schedule", 5_000).await;
    assert_eq!(enqueue_due(&redis.client()).await.unwrap(), 5_000);
    assert_eq!(redis.queue("default").await.len(), 5_000);
    assert!(sorted_set(&redis, "schedule").await.is_empty());
}

#[tokio::test]
async fn racing_pollers_move_each_job_exactly_once() {
    let redis = TestRedis::start();
    due_jobs(&redis, "schedule", 3_000).await;
    // Three clients: three connections, so the pollers really race.
    let clients = [redis.client(), redis.client(), redis.client()];
    let (a, b, c) = tokio::join!(
        enqueue_due(&clients[0]),
        enqueue_due(&clients[1]),
        enqueue_due(&clients[2]),
    );
    assert_eq!(a.unwrap() + b.unwrap() + c.unwrap(), 3_000);
    let queued = redis.queue("default").await;
    let jids: HashSet<String> = queued
        .iter()
        .map(|job| job["jid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(queued.len(), 3_000, "no duplicates");
    assert_eq!(jids.len(), 3_000, "none lost");
}

#[tokio::test]
async fn an_entry_that_is_not_a_job_goes_to_the_dead_set() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let _: () = raw.zadd("schedule", "garbage", now() - 1.0).await.unwrap();
    assert_eq!(enqueue_due(&redis.client()).await.unwrap(), 1);
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead[0].0["class"], "jobs::InvalidPayload");
    assert_eq!(dead[0].0["args"], json!(["garbage"]));
}

#[tokio::test]
async fn a_running_worker_runs_scheduled_jobs_when_due() {
    let redis = TestRedis::start();
    redis
        .client()
        .perform_in(
            Duration::from_millis(300),
            Record {
                label: "scheduled".into(),
            },
        )
        .await
        .unwrap();
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(
        Duration::from_secs(5),
        "the scheduled job to run",
        async || log.entries() == ["scheduled"],
    )
    .await;
    running.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_push_that_fails_leaves_the_job_scheduled() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let _: () = raw.set("queue:default", "not a list").await.unwrap();
    due_jobs(&redis, "schedule", 1).await;
    let error = enqueue_due(&redis.client()).await.unwrap_err();
    assert!(error.to_string().contains("WRONGTYPE"), "{error}");
    assert_eq!(
        sorted_set(&redis, "schedule").await.len(),
        1,
        "nothing lost"
    );
}

//! What `perform_async` writes: Sidekiq's exact keys and JSON.

use chrono::NaiveDate;
use redis::AsyncCommands;

use crate::support::jobs::{Deliver, NightlyCleanup, ScoreGeneration, SendEmail};
use crate::support::{TestRedis, now};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date")
}

fn keys_of(job: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = job
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn perform_async_pushes_sidekiq_json_and_registers_the_queue() {
    let redis = TestRedis::start();
    let client = redis.client();
    let before = now();
    let jid = client
        .perform_async(ScoreGeneration { date: today() })
        .await
        .unwrap();

    assert_eq!(redis.keys().await, ["queue:default", "queues"]);
    let mut raw = redis.raw().await;
    let queues: Vec<String> = raw.smembers("queues").await.unwrap();
    assert_eq!(queues, ["default"]);

    let jobs = redis.queue("default").await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(
        keys_of(job),
        [
            "args",
            "class",
            "created_at",
            "enqueued_at",
            "jid",
            "queue",
            "retry"
        ]
    );
    assert_eq!(job["class"], "ScoreGeneration");
    assert_eq!(job["args"], serde_json::json!(["2026-11-22"]));
    assert_eq!(job["queue"], "default");
    assert_eq!(job["retry"], 25);
    assert_eq!(job["jid"], jid.as_str());
    assert_eq!(jid.as_str().len(), 24);
    assert!(
        jid.as_str()
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );

    let created = job["created_at"].as_f64().expect("created_at is a number");
    let enqueued = job["enqueued_at"]
        .as_f64()
        .expect("enqueued_at is a number");
    assert!(
        job["created_at"].is_f64() && job["enqueued_at"].is_f64(),
        "{job}"
    );
    assert!(before - 1.0 <= created && created <= enqueued && enqueued <= now() + 1.0);
}

#[tokio::test]
async fn timestamps_are_written_with_a_decimal_point() {
    let redis = TestRedis::start();
    redis
        .client()
        .perform_async(ScoreGeneration { date: today() })
        .await
        .unwrap();
    let mut raw = redis.raw().await;
    let json: String = raw.rpop("queue:default", None).await.unwrap();
    for field in ["created_at", "enqueued_at"] {
        let value = json
            .split(&format!("\"{field}\":"))
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .unwrap_or_else(|| panic!("no {field} in {json}"));
        assert!(
            value.contains('.'),
            "{field} = {value} must be float seconds: {json}"
        );
    }
}

#[tokio::test]
async fn default_options_write_retry_true() {
    let redis = TestRedis::start();
    redis
        .client()
        .perform_async(SendEmail {
            to: "ann@example.com".into(),
            subject: "Hi".into(),
        })
        .await
        .unwrap();
    let job = &redis.queue("default").await[0];
    assert_eq!(job["retry"], true);
    assert_eq!(job["args"], serde_json::json!(["ann@example.com", "Hi"]));
}

#[tokio::test]
async fn job_options_reach_the_payload() {
    let redis = TestRedis::start();
    redis
        .client()
        .perform_async(Deliver { message_id: 7 })
        .await
        .unwrap();
    let job = &redis.queue("critical").await[0];
    assert_eq!(job["class"], "Mailer::Deliver");
    assert_eq!(job["queue"], "critical");
    assert_eq!(job["retry"], false);
    assert_eq!(job["backtrace"], true);
    assert_eq!(job["retry_queue"], "slow");
    assert_eq!(job["dead"], false);
    assert_eq!(job["tags"], serde_json::json!(["mail", "urgent"]));
    assert!(
        job.get("timeout").is_none(),
        "timeout is for the worker: {job}"
    );
}

#[tokio::test]
async fn a_job_without_arguments_has_an_empty_args_array() {
    let redis = TestRedis::start();
    redis
        .client()
        .perform_async(NightlyCleanup {})
        .await
        .unwrap();
    let job = &redis.queue("maintenance").await[0];
    assert_eq!(job["args"], serde_json::json!([]));
}

#[tokio::test]
async fn jobs_come_out_in_the_order_they_went_in() {
    let redis = TestRedis::start();
    let client = redis.client();
    let mut jids = Vec::new();
    for day in 1..=5 {
        let date = NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
        jids.push(
            client
                .perform_async(ScoreGeneration { date })
                .await
                .unwrap(),
        );
    }
    let mut raw = redis.raw().await;
    for jid in jids {
        let json: String = raw.rpop("queue:default", None).await.unwrap();
        assert_eq!(crate::support::parse(&json)["jid"], jid.as_str());
    }
}

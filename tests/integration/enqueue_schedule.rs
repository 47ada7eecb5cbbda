//! `perform_in` and `perform_at`: the `schedule` sorted set, scored in float epoch seconds.

use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use redis::AsyncCommands;

use crate::support::jobs::ScoreGeneration;
use crate::support::{TestRedis, now, parse};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date")
}

async fn scheduled(redis: &TestRedis) -> Vec<(serde_json::Value, f64)> {
    let mut raw = redis.raw().await;
    let members: Vec<(String, f64)> = raw.zrange_withscores("schedule", 0, -1).await.unwrap();
    members
        .into_iter()
        .map(|(json, score)| (parse(&json), score))
        .collect()
}

#[tokio::test]
async fn perform_in_adds_to_schedule_without_enqueued_at() {
    let redis = TestRedis::start();
    let client = redis.client();
    let before = now();
    let jid = ScoreGeneration::set()
        .client(&client)
        .perform_in(Duration::from_secs(300), today())
        .await
        .unwrap();

    assert_eq!(redis.keys().await, ["schedule"]);
    let entries = scheduled(&redis).await;
    assert_eq!(entries.len(), 1);
    let (job, score) = &entries[0];
    assert_eq!(job["jid"], jid.as_str());
    assert!(job.get("enqueued_at").is_none(), "{job}");
    assert!(job.get("at").is_none(), "{job}");
    assert!(job["created_at"].is_f64());
    assert!(
        before + 299.0 <= *score && *score <= now() + 301.0,
        "score {score} is not 300 s from now"
    );
}

#[tokio::test]
async fn perform_at_scores_the_exact_time() {
    let redis = TestRedis::start();
    let at =
        Utc.with_ymd_and_hms(2036, 1, 2, 9, 30, 15).unwrap() + chrono::Duration::milliseconds(250);
    redis
        .client()
        .perform_at(at, ScoreGeneration { date: today() })
        .await
        .unwrap();
    let entries = scheduled(&redis).await;
    assert_eq!(entries[0].1, at.timestamp_millis() as f64 / 1000.0);
}

#[tokio::test]
async fn a_time_not_in_the_future_goes_straight_to_the_queue() {
    let redis = TestRedis::start();
    let client = redis.client();
    let past = Utc::now() - chrono::Duration::minutes(5);
    ScoreGeneration::set()
        .client(&client)
        .perform_at(past, today())
        .await
        .unwrap();
    ScoreGeneration::set()
        .client(&client)
        .perform_in(Duration::ZERO, today())
        .await
        .unwrap();
    assert!(scheduled(&redis).await.is_empty());
    let jobs = redis.queue("default").await;
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|job| job["enqueued_at"].is_f64()));
}

#[tokio::test]
async fn set_wait_schedules_and_keeps_other_overrides() {
    let redis = TestRedis::start();
    ScoreGeneration::set()
        .client(&redis.client())
        .queue("reports")
        .wait(Duration::from_secs(60))
        .perform_async(today())
        .await
        .unwrap();
    let entries = scheduled(&redis).await;
    assert_eq!(entries[0].0["queue"], "reports");
    assert!(entries[0].1 > now() + 58.0);
}

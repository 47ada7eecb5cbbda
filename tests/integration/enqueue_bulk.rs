//! `perform_bulk`: 1,000 jobs per round trip, one variadic LPUSH per queue.

use std::collections::HashSet;
use std::time::Duration;

use chrono::NaiveDate;

use crate::support::TestRedis;
use crate::support::jobs::{ScoreGeneration, SendEmail};

fn emails(count: usize) -> Vec<SendEmail> {
    (0..count)
        .map(|n| SendEmail {
            to: format!("user{n}@example.com"),
            subject: "Weekly".into(),
        })
        .collect()
}

#[tokio::test]
async fn bulk_pushes_every_job_in_order_in_chunks_of_a_thousand() {
    let redis = TestRedis::start();
    let jids = redis.client().perform_bulk(emails(2_500)).await.unwrap();

    assert_eq!(jids.len(), 2_500);
    assert_eq!(
        jids.iter().collect::<HashSet<_>>().len(),
        2_500,
        "jids are unique"
    );
    let jobs = redis.queue("default").await;
    assert_eq!(jobs.len(), 2_500);
    for (n, (job, jid)) in jobs.iter().zip(&jids).enumerate() {
        assert_eq!(job["jid"], jid.as_str());
        assert_eq!(job["args"][0], format!("user{n}@example.com"));
    }
    assert_eq!(
        redis.calls("lpush").await,
        3,
        "one LPUSH per chunk of 1,000"
    );
    assert_eq!(redis.calls("sadd").await, 3);
}

#[tokio::test]
async fn jobs_of_one_bulk_call_share_their_timestamps() {
    let redis = TestRedis::start();
    redis.client().perform_bulk(emails(3)).await.unwrap();
    let jobs = redis.queue("default").await;
    assert!(
        jobs.iter()
            .all(|job| job["created_at"] == jobs[0]["created_at"])
    );
    assert!(
        jobs.iter()
            .all(|job| job["enqueued_at"] == jobs[0]["enqueued_at"])
    );
}

#[tokio::test]
async fn bulk_honours_set_overrides_and_scheduling() {
    let redis = TestRedis::start();
    let client = redis.client();
    let dates = (1..=3).map(|day| ScoreGeneration {
        date: NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
    });
    let jids = ScoreGeneration::set()
        .client(&client)
        .queue("reports")
        .wait(Duration::from_secs(600))
        .perform_bulk(dates)
        .await
        .unwrap();
    assert_eq!(jids.len(), 3);
    assert_eq!(redis.keys().await, ["schedule"]);
    assert_eq!(redis.calls("zadd").await, 1, "one ZADD for the whole chunk");
}

#[tokio::test]
async fn an_empty_bulk_writes_nothing() {
    let redis = TestRedis::start();
    let jids = redis.client().perform_bulk(emails(0)).await.unwrap();
    assert!(jids.is_empty());
    assert!(redis.keys().await.is_empty());
}

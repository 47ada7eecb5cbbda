//! What `perform_async` writes: Sidekiq's exact keys and JSON.

use chrono::NaiveDate;
use jobs::Job;

use crate::jobs::ScoreGeneration;
use crate::support::TestRedis;

#[tokio::test]
async fn perform_async_writes_sidekiq_json_to_the_queue() {
    let redis = TestRedis::start();
    let client = redis.client();
    let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    let jid = ScoreGeneration::set()
        .client(&client)
        .perform_async(today)
        .await
        .unwrap();
    let jobs = redis.queue("default").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["class"], "ScoreGeneration");
    assert_eq!(jobs[0]["args"], serde_json::json!(["2026-11-22"]));
    assert_eq!(jobs[0]["jid"], jid.as_str());
    assert_eq!(ScoreGeneration::NAME, "ScoreGeneration");
}

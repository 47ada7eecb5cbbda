//! `set()` overrides, raw payloads for Ruby classes, and namespaces.

use chrono::NaiveDate;
use jobs::Payload;
use serde_json::json;

use crate::support::TestRedis;
use crate::support::jobs::{Deliver, ScoreGeneration};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date")
}

#[tokio::test]
async fn set_overrides_queue_retry_tags_and_adds_options() {
    let redis = TestRedis::start();
    ScoreGeneration::set()
        .client(&redis.client())
        .queue("critical")
        .retry(3)
        .tags(["nightly"])
        .option("bid", "batch-1")
        .perform_async(today())
        .await
        .unwrap();
    let job = &redis.queue("critical").await[0];
    assert_eq!(job["queue"], "critical");
    assert_eq!(job["retry"], 3);
    assert_eq!(job["tags"], json!(["nightly"]));
    assert_eq!(job["bid"], "batch-1");
}

#[tokio::test]
async fn an_option_naming_a_known_key_sets_it_once() {
    let redis = TestRedis::start();
    let client = redis.client();
    ScoreGeneration::set()
        .client(&client)
        .option("queue", "critical")
        .perform_async(today())
        .await
        .unwrap();
    let job = &redis.queue("critical").await[0];
    assert_eq!(job["queue"], "critical");
    let error = ScoreGeneration::set()
        .client(&client)
        .option("retry", "often")
        .perform_async(today())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the option `retry` does not fit"),
        "{error}"
    );
}

#[tokio::test]
async fn set_retry_false_and_true_write_booleans() {
    let redis = TestRedis::start();
    let client = redis.client();
    ScoreGeneration::set()
        .client(&client)
        .retry(false)
        .perform_async(today())
        .await
        .unwrap();
    Deliver::set()
        .client(&client)
        .retry(true)
        .queue("default")
        .perform_async(1)
        .await
        .unwrap();
    let jobs = redis.queue("default").await;
    assert_eq!(jobs[0]["retry"], false);
    assert_eq!(jobs[1]["retry"], true);
}

#[tokio::test]
async fn a_payload_for_a_ruby_class_is_pushed_as_given() {
    let redis = TestRedis::start();
    let payload = Payload::new("HardJob", vec![json!("bob"), json!(5)]).queue("ruby");
    let jid = redis.client().push(payload).await.unwrap();
    let job = &redis.queue("ruby").await[0];
    assert_eq!(job["class"], "HardJob");
    assert_eq!(job["args"], json!(["bob", 5]));
    assert_eq!(job["jid"], jid.as_str());
    assert_eq!(job["retry"], true);
}

#[tokio::test]
async fn a_namespace_prefixes_every_key() {
    let redis = TestRedis::start();
    let client = redis.namespaced_client("shop");
    assert_eq!(client.namespace(), Some("shop"));
    client
        .perform_async(ScoreGeneration { date: today() })
        .await
        .unwrap();
    client
        .perform_in(
            std::time::Duration::from_secs(60),
            ScoreGeneration { date: today() },
        )
        .await
        .unwrap();
    assert_eq!(
        redis.keys().await,
        ["shop:queue:default", "shop:queues", "shop:schedule"]
    );
}

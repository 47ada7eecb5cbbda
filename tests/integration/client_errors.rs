//! Errors a user meets when pushing, each saying what to check, none losing or leaking anything.

use chrono::NaiveDate;
use jobs::{Client, Error};

use crate::support::jobs::{ScoreGeneration, SendEmail};
use crate::support::{TestRedis, free_port};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date")
}

#[tokio::test]
async fn an_unreachable_redis_names_the_url_and_what_to_check() {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let client = Client::builder().url(&url).build().unwrap();
    let error = client
        .perform_async(ScoreGeneration { date: today() })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("connection refused"), "{message}");
    assert!(
        message.contains("check that redis-server is running"),
        "{message}"
    );
}

#[tokio::test]
async fn errors_never_show_the_password() {
    let url = format!("redis://app:hunter2@127.0.0.1:{}/0", free_port());
    let client = Client::builder().url(&url).build().unwrap();
    assert!(!format!("{client:?}").contains("hunter2"));
    assert_eq!(client.url(), url.replace("hunter2", "***"));
    let error = client
        .perform_async(ScoreGeneration { date: today() })
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("app:***@"), "{message}");
}

#[tokio::test]
async fn a_wrong_password_says_the_credentials_were_refused() {
    let redis = TestRedis::start_with_password("right");
    let url = format!("redis://:wrong@127.0.0.1:{}/0", redis.port());
    let client = Client::builder().url(url).build().unwrap();
    let message = client
        .perform_async(ScoreGeneration { date: today() })
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("refused the credentials"), "{message}");
    assert!(!message.contains("wrong"), "{message}");
}

#[test]
fn a_malformed_url_is_refused_when_the_client_is_built() {
    let error = Client::builder().url("http://example").build().unwrap_err();
    assert!(matches!(error, Error::InvalidUrl { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("invalid Redis URL `http://example`")
    );
}

#[tokio::test]
async fn a_payload_over_the_limit_never_reaches_redis() {
    let redis = TestRedis::start();
    let client = Client::builder()
        .url(redis.url())
        .max_payload_bytes(200)
        .build()
        .unwrap();
    let error = client
        .perform_async(SendEmail {
            to: "ann@example.com".into(),
            subject: "x".repeat(500),
        })
        .await
        .unwrap_err();
    let Error::PayloadTooLarge { size, limit, .. } = &error else {
        panic!("expected PayloadTooLarge, got {error:?}");
    };
    assert!(*size > 500 && *limit == 200, "{error}");
    assert!(error.to_string().contains("max_payload_bytes"), "{error}");
    assert!(redis.keys().await.is_empty());
}

#[tokio::test]
async fn an_empty_queue_name_is_refused() {
    let redis = TestRedis::start();
    let error = ScoreGeneration::set()
        .client(&redis.client())
        .queue("")
        .perform_async(today())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidJob { .. }), "{error:?}");
    assert!(error.to_string().contains("queue name is empty"), "{error}");
    assert!(redis.keys().await.is_empty());
}

#[test]
fn a_namespace_with_spaces_is_refused() {
    let error = Client::builder()
        .url("redis://127.0.0.1/0")
        .namespace("my shop")
        .build()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the namespace `my shop` must be non-empty and without spaces (on a Redis Cluster, \
         without `{` or `}` too, as it becomes the keys' hash tag, and not `jobs`, the tag of \
         no namespace), like `shop`"
    );
}

#[test]
fn on_a_cluster_the_namespace_jobs_is_refused_as_it_is_the_tag_of_none() {
    // Without a namespace a cluster's keys are `{jobs}:…`; the namespace `jobs` would share them.
    let url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001";
    let error = Client::builder()
        .url(url)
        .namespace("jobs")
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::InvalidNamespace { .. }), "{error:?}");
    assert!(error.to_string().contains("not `jobs`"), "{error}");
    assert!(
        Client::builder()
            .url("redis://127.0.0.1/0")
            .namespace("jobs")
            .build()
            .is_ok()
    );
}

#[test]
fn on_a_cluster_a_namespace_with_braces_is_refused() {
    let url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001";
    let error = Client::builder()
        .url(url)
        .namespace("shop{1}")
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::InvalidNamespace { .. }), "{error:?}");
    // The same namespace is fine on one server, and a plain one on a cluster.
    assert!(
        Client::builder()
            .url("redis://127.0.0.1/0")
            .namespace("shop{1}")
            .build()
            .is_ok()
    );
    let client = Client::builder()
        .url(url)
        .namespace("shop")
        .build()
        .unwrap();
    assert_eq!(client.namespace(), Some("shop"));
    assert_eq!(
        Client::builder()
            .url("redis+cluster://127.0.0.1:7000/3")
            .build()
            .unwrap_err()
            .to_string(),
        "invalid Redis URL `redis+cluster://127.0.0.1:7000/3`: a cluster has one database, so \
         nothing but `/0` may follow its nodes (separate apps with a namespace; write a `/` in a \
         password as %2F)"
    );
}

//! Client middleware sees, changes or stops each job before it is pushed.

use std::sync::atomic::{AtomicUsize, Ordering};

use jobs::{BoxError, Client, ClientMiddleware, Error, Flow, Payload};

use crate::support::TestRedis;
use crate::support::jobs::SendEmail;

struct Tag(&'static str);

impl ClientMiddleware for Tag {
    async fn call(&self, job: &mut Payload) -> Result<Flow, BoxError> {
        job.tags
            .get_or_insert_with(Vec::new)
            .push(self.0.to_owned());
        Ok(Flow::Continue)
    }
}

/// Stops every other job.
#[derive(Default)]
struct EveryOther(AtomicUsize);

impl ClientMiddleware for EveryOther {
    async fn call(&self, _job: &mut Payload) -> Result<Flow, BoxError> {
        let seen = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(if seen.is_multiple_of(2) {
            Flow::Continue
        } else {
            Flow::Stop
        })
    }
}

struct Broken;

impl ClientMiddleware for Broken {
    async fn call(&self, _job: &mut Payload) -> Result<Flow, BoxError> {
        Err("unique-jobs lock unavailable".into())
    }
}

/// A client for `redis` with one middleware.
fn client_with(redis: &TestRedis, middleware: impl ClientMiddleware) -> Client {
    Client::builder()
        .url(redis.url())
        .middleware(middleware)
        .build()
        .unwrap()
}

fn email(n: usize) -> SendEmail {
    SendEmail {
        to: format!("user{n}@example.com"),
        subject: "Hi".into(),
    }
}

#[tokio::test]
async fn middleware_runs_in_order_and_can_change_the_job() {
    let redis = TestRedis::start();
    let client = Client::builder()
        .url(redis.url())
        .middleware(Tag("first"))
        .middleware(Tag("second"))
        .build()
        .unwrap();
    client.perform_async(email(1)).await.unwrap();
    let job = &redis.queue("default").await[0];
    assert_eq!(job["tags"], serde_json::json!(["first", "second"]));
}

#[tokio::test]
async fn a_stopping_middleware_keeps_the_job_out_of_redis() {
    let redis = TestRedis::start();
    let client = client_with(&redis, EveryOther::default());
    client.perform_async(email(0)).await.unwrap();
    let error = client.perform_async(email(1)).await.unwrap_err();
    assert!(error.is_stopped(), "{error}");
    assert!(error.to_string().contains("EveryOther"), "{error}");
    assert_eq!(redis.queue("default").await.len(), 1);
}

#[tokio::test]
async fn bulk_skips_the_jobs_a_middleware_stops() {
    let redis = TestRedis::start();
    let client = client_with(&redis, EveryOther::default());
    let jids = client.perform_bulk((0..6).map(email)).await.unwrap();
    assert_eq!(jids.len(), 3);
    let jobs = redis.queue("default").await;
    let sent: Vec<_> = jobs.iter().map(|job| job["args"][0].clone()).collect();
    assert_eq!(
        sent,
        [
            "user0@example.com",
            "user2@example.com",
            "user4@example.com"
        ]
    );
}

#[tokio::test]
async fn a_failing_middleware_is_an_error_naming_it() {
    let redis = TestRedis::start();
    let client = client_with(&redis, Broken);
    let error = client.perform_async(email(0)).await.unwrap_err();
    let Error::Middleware { error: cause, .. } = &error else {
        panic!("not a middleware error: {error:?}");
    };
    assert_eq!(cause.to_string(), "unique-jobs lock unavailable");
    let message = error.to_string();
    assert!(message.contains("Broken"), "{message}");
    assert!(
        message.ends_with(": unique-jobs lock unavailable"),
        "{message}"
    );
    assert!(redis.keys().await.is_empty());
}

//! Expiring jobs against a real Redis: a job that has not started within its `expires_in` of
//! being due is dropped, counted and logged, never run and never buried; one that started once
//! is never dropped for its age.

use std::time::Duration;

use jobs::api::{DeadSet, RetrySet, UniqueLocks};
use redis::AsyncCommands;

use crate::support::jobs::{CallLog, Expiring, ExpiringFlaky, worker};
use crate::support::{RunningWorker, TestRedis, counter, eventually, now};

#[tokio::test]
async fn a_job_not_started_within_its_expires_in_is_dropped_counted_and_not_buried() {
    let redis = TestRedis::start();
    let client = redis.client();
    let log = CallLog::default();
    // A unique one too: dropped, it releases its lock.
    let late = Expiring::set()
        .client(&client)
        .unique_for(Duration::from_secs(600))
        .perform_async("late".to_owned())
        .await
        .unwrap();
    let stamped = redis.queue("default").await;
    let deadline = stamped[0]["jobs_expires_at"].as_f64().unwrap();
    let enqueued = stamped[0]["enqueued_at"].as_f64().unwrap();
    assert!((deadline - enqueued - 1.0).abs() < 0.01, "{stamped:?}");
    assert_eq!(stamped[0]["expires_in"], 1);

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let running = RunningWorker::start(worker(&redis, &log));
    client
        .perform_async(Expiring {
            label: "fresh".to_owned(),
        })
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the fresh job to run",
        async || log.entries() == ["expiring fresh"],
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(counter(&redis, "jobs:stat:expired").await, 1);
    assert!(redis.queue("default").await.is_empty());
    assert_eq!(DeadSet::new(&client).size().await.unwrap(), 0);
    assert_eq!(RetrySet::new(&client).size().await.unwrap(), 0);
    assert_eq!(UniqueLocks::new(&client).list(10).await.unwrap(), []);
    // Not a run: `processed` counts the fresh job alone.
    assert_eq!(counter(&redis, "stat:processed").await, 1);
    assert_eq!(jobs::api::Stats::fetch(&client).await.unwrap().expired, 1);
    let web = crate::web_http::app(&client);
    let page = crate::web_http::get(&web, "/jobs").await;
    assert!(page.body.contains("1 jobs expired unrun"), "{}", page.body);
    let again = Expiring::set()
        .client(&client)
        .unique_for(Duration::from_secs(600))
        .perform_async("late".to_owned())
        .await
        .unwrap();
    assert!(!again.is_duplicate(), "{late:?} released its lock");
}

#[tokio::test]
async fn a_scheduled_job_expires_counting_from_its_scheduled_time() {
    let redis = TestRedis::start();
    let client = redis.client();
    let log = CallLog::default();
    // Due in 2 s: it expires 1 s after that, not 1 s after the push.
    client
        .perform_in(
            Duration::from_secs(2),
            Expiring {
                label: "on time".to_owned(),
            },
        )
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(
        Duration::from_secs(10),
        "the scheduled job to run",
        async || log.entries() == ["expiring on time"],
    )
    .await;
    running.stop(Duration::from_secs(10)).await;

    // Due in 1 s, taken 2.5 s after the push: expired.
    client
        .perform_in(
            Duration::from_secs(1),
            Expiring {
                label: "missed".to_owned(),
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(
        Duration::from_secs(10),
        "the missed job to be dropped",
        async || counter(&redis, "jobs:stat:expired").await == 1,
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(log.entries(), ["expiring on time"]);
}

#[tokio::test]
async fn a_job_that_started_is_never_dropped_for_its_age() {
    let redis = TestRedis::start();
    let client = redis.client();
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    client
        .perform_async(ExpiringFlaky {
            label: "flaky".to_owned(),
        })
        .await
        .unwrap();
    let retries = RetrySet::new(&client);
    eventually(Duration::from_secs(10), "the first failure", async || {
        retries.size().await.unwrap() == 1
    })
    .await;
    // Well past its deadline, its retry comes due: it runs, and succeeds.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let entry = retries.page(jobs::api::Page::first(1)).await.unwrap();
    let mut raw = redis.raw().await;
    let _: () = raw
        .zadd("retry", entry[0].record.raw(), now() - 1.0)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the retry to run", async || {
        log.entries().len() == 2
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(counter(&redis, "jobs:stat:expired").await, 0);
    assert_eq!(retries.size().await.unwrap(), 0);
    assert_eq!(DeadSet::new(&client).size().await.unwrap(), 0);
}

#[tokio::test]
async fn a_bad_expires_in_or_unique_for_is_refused_with_a_clear_error() {
    let redis = TestRedis::start();
    let client = redis.client();
    for (setter, words) in [
        (
            Expiring::set().expires_in(Duration::ZERO),
            "`expires_in` must be at least 1 second",
        ),
        (
            Expiring::set().unique_for(Duration::from_secs(400 * 86_400)),
            "`unique_for` must be at most a year",
        ),
        (
            Expiring::set().unique_until(jobs::UniqueUntil::Start),
            "`unique_until` needs `unique_for`",
        ),
    ] {
        let error = setter
            .client(&client)
            .perform_async("x".to_owned())
            .await
            .unwrap_err();
        assert!(matches!(error, jobs::Error::InvalidJob { .. }), "{error:?}");
        assert!(error.to_string().contains(words), "{error}");
    }
    assert!(redis.queue("default").await.is_empty());
}

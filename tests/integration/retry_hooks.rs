//! Per-class retry behaviour declared on `#[job]`, as Sidekiq's `sidekiq_retry_in`,
//! `sidekiq_retries_exhausted` and `retry_for`, run by a real worker on a real Redis.

use std::sync::Mutex;
use std::time::Duration;

use jobs::worker::Exhausted;
use jobs::{JobError, Payload, RetryOverride, job};
use redis::AsyncCommands;

use crate::support::jobs::{CallLog, worker};
use crate::support::{TestRedis, counter, now, sorted_set};

/// The job's `retry_in`: what the error's message says.
fn as_the_message_says(count: u32, error: &JobError) -> Option<RetryOverride> {
    let message = error.to_string();
    if message.contains("one second") {
        Some(RetryOverride::In(Duration::from_secs(1)))
    } else if message.contains("kill") {
        Some(RetryOverride::Kill)
    } else if message.contains("discard") {
        Some(RetryOverride::Discard)
    } else if message.contains("panic") {
        panic!("retry_in panics at count {count}")
    } else {
        None
    }
}

/// Every call of the job's `retries_exhausted`: jid, error message, retry count.
static EXHAUSTED: Mutex<Vec<(String, String, Option<u32>)>> = Mutex::new(Vec::new());

/// The job's `retries_exhausted`: records the call; discards a job whose message says
/// `forget`.
fn record_exhaustion(job: &Payload, error: &JobError) -> Exhausted {
    EXHAUSTED
        .lock()
        .unwrap()
        .push((job.jid.to_string(), error.to_string(), job.retry_count));
    if error.to_string().contains("forget") {
        Exhausted::Discard
    } else {
        Exhausted::Bury
    }
}

/// The calls of `retries_exhausted` for `jid`.
fn exhaustions(jid: &str) -> Vec<(String, Option<u32>)> {
    EXHAUSTED
        .lock()
        .unwrap()
        .iter()
        .filter(|(seen, ..)| seen == jid)
        .map(|(_, message, count)| (message.clone(), *count))
        .collect()
}

/// Always fails with `note` as its message; one retry.
#[job(retry = 1, retry_in = as_the_message_says, retries_exhausted = record_exhaustion)]
pub async fn fail_as_told(note: String) -> Result<(), JobError> {
    Err(JobError::msg(note))
}

async fn run_once(redis: &TestRedis, note: &str) -> String {
    let jid = redis
        .client()
        .perform_async(FailAsTold {
            note: note.to_owned(),
        })
        .await
        .unwrap();
    worker(redis, &CallLog::default()).drain().await.unwrap();
    jid.to_string()
}

#[tokio::test]
async fn retry_in_sets_the_delay_of_the_next_attempt() {
    let redis = TestRedis::start();
    let before = now();
    let jid = run_once(&redis, "again in one second").await;
    let retries = sorted_set(&redis, "retry").await;
    assert_eq!(retries.len(), 1, "{retries:?}");
    let (job, score) = &retries[0];
    assert_eq!(job["jid"], jid.as_str());
    assert_eq!(job["retry_count"], 0);
    // 1 s instead of 0⁴ + 15, plus Sidekiq's jitter of rand(10)·1.
    let delay = score - before;
    assert!((0.9..11.0).contains(&delay), "retry in {delay} s");
    assert!(exhaustions(&jid).is_empty());
}

#[tokio::test]
async fn retry_in_kill_goes_to_the_dead_set_through_retries_exhausted() {
    let redis = TestRedis::start();
    let jid = run_once(&redis, "kill it").await;
    assert!(sorted_set(&redis, "retry").await.is_empty());
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0["jid"], jid.as_str());
    assert_eq!(exhaustions(&jid), [("kill it".to_owned(), Some(0))]);
}

#[tokio::test]
async fn retry_in_discard_drops_the_job() {
    let redis = TestRedis::start();
    let jid = run_once(&redis, "discard it").await;
    assert!(sorted_set(&redis, "retry").await.is_empty());
    assert!(sorted_set(&redis, "dead").await.is_empty());
    assert!(redis.queue("default").await.is_empty());
    assert_eq!(counter(&redis, "stat:failed").await, 1);
    assert!(exhaustions(&jid).is_empty());
}

#[tokio::test]
async fn a_retry_in_that_panics_keeps_sidekiqs_schedule() {
    let redis = TestRedis::start();
    let before = now();
    run_once(&redis, "panic").await;
    let retries = sorted_set(&redis, "retry").await;
    assert_eq!(retries.len(), 1, "{retries:?}");
    let delay = retries[0].1 - before;
    assert!((14.0..=26.0).contains(&delay), "retry in {delay} s");
}

#[tokio::test]
async fn retries_exhausted_is_called_once_when_retries_run_out() {
    let redis = TestRedis::start();
    let jid = run_once(&redis, "plain").await;
    assert!(exhaustions(&jid).is_empty(), "not on the first failure");

    // The retry comes due: its one retry fails too.
    let (job, _) = sorted_set(&redis, "retry").await.remove(0);
    let mut raw = redis.raw().await;
    let _: () = raw.del("retry").await.unwrap();
    let _: () = raw.lpush("queue:default", job.to_string()).await.unwrap();
    worker(&redis, &CallLog::default()).drain().await.unwrap();

    assert_eq!(exhaustions(&jid), [("plain".to_owned(), Some(1))]);
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0["jid"], jid.as_str());
}

#[tokio::test]
async fn retries_exhausted_may_discard_the_job() {
    let redis = TestRedis::start();
    let jid = run_once(&redis, "kill and forget").await;
    assert_eq!(exhaustions(&jid), [("kill and forget".to_owned(), Some(0))]);
    assert!(sorted_set(&redis, "dead").await.is_empty());
    assert!(sorted_set(&redis, "retry").await.is_empty());
}

/// Always fails; retried for an hour after its first failure.
#[job(retry_for = 3600)]
pub async fn fail_for_an_hour(note: String) -> Result<(), JobError> {
    Err(JobError::msg(format!("failed: {note}")))
}

#[tokio::test]
async fn retry_for_retries_within_its_window_and_kills_after_it() {
    let redis = TestRedis::start();
    let jid = redis
        .client()
        .perform_async(FailForAnHour {
            note: "first".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(redis.queue("default").await[0]["retry_for"], 3600);
    worker(&redis, &CallLog::default()).drain().await.unwrap();

    // Within the hour: retried.
    let retries = sorted_set(&redis, "retry").await;
    assert_eq!(retries.len(), 1, "{retries:?}");
    let (mut job, _) = retries[0].clone();
    assert_eq!(job["jid"], jid.as_str());
    assert_eq!(job["retry_count"], 0);

    // The same job, its first failure two hours ago: the window is over after one failure
    // of the 25 `retry` allows, so it goes to the dead set.
    let mut raw = redis.raw().await;
    let _: () = raw.del("retry").await.unwrap();
    job["failed_at"] = (now() - 7200.0).into();
    let _: () = raw.lpush("queue:default", job.to_string()).await.unwrap();
    worker(&redis, &CallLog::default()).drain().await.unwrap();
    assert!(sorted_set(&redis, "retry").await.is_empty());
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0["jid"], jid.as_str());
    assert_eq!(dead[0].0["retry_count"], 1);
}

/// The same hooks on a job Rails pushes through ActiveJob: the worker finds them by the
/// wrapped class, not the wrapper's.
#[job(name = "FailAsToldJob", retry = 1, retry_in = as_the_message_says, retries_exhausted = record_exhaustion)]
pub async fn fail_as_told_job(note: String) -> Result<(), JobError> {
    Err(JobError::msg(note))
}

/// Pushes `note` to `FailAsToldJob` as Rails's Sidekiq adapter does, and runs it once.
async fn run_active_job_once(redis: &TestRedis, note: &str) -> String {
    let envelope = serde_json::json!({
        "job_class": "FailAsToldJob", "job_id": "7d0e", "queue_name": "default",
        "arguments": [note], "executions": 0, "exception_executions": {},
        "locale": "en", "timezone": "UTC"
    });
    let mut payload = Payload::new(jobs::active_job::WRAPPERS[0], vec![envelope]);
    payload.set("wrapped", "FailAsToldJob".into()).unwrap();
    let jid = redis.client().push(payload).await.unwrap();
    worker(redis, &CallLog::default()).drain().await.unwrap();
    jid.to_string()
}

#[tokio::test]
async fn an_active_job_jobs_retry_in_is_its_wrapped_classs() {
    let redis = TestRedis::start();
    let before = now();
    let jid = run_active_job_once(&redis, "again in one second").await;
    let retries = sorted_set(&redis, "retry").await;
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(retries[0].0["jid"], jid.as_str());
    let delay = retries[0].1 - before;
    assert!((0.9..11.0).contains(&delay), "retry in {delay} s");
}

#[tokio::test]
async fn an_active_job_jobs_retries_exhausted_is_its_wrapped_classs() {
    let redis = TestRedis::start();
    let jid = run_active_job_once(&redis, "kill it").await;
    assert!(sorted_set(&redis, "retry").await.is_empty());
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0["wrapped"], "FailAsToldJob");
    assert_eq!(exhaustions(&jid), [("kill it".to_owned(), Some(0))]);
}

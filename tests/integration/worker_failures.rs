//! Failures: Sidekiq's retry, dead-set and error-field rules, panics, timeouts, bad input.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::worker::{Exhausted, QueueSpec, WorkerConfig};
use jobs::{Payload, Worker};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::jobs::{
    BuryMe, CallLog, FailWith, ForgetMe, Overrun, PanicNow, Record, WithBacktrace,
};
use crate::support::jobs::{push_labels_to, worker};
use crate::support::{CapturedLog, RunningWorker, TestRedis, counter, eventually, now, sorted_set};

async fn drain(redis: &TestRedis) {
    worker(redis, &CallLog::default()).drain().await.unwrap();
}

fn fail_with(how: &str) -> FailWith {
    FailWith {
        how: how.to_owned(),
    }
}

#[tokio::test]
async fn a_first_failure_goes_to_retry_with_sidekiqs_error_fields() {
    let redis = TestRedis::start();
    let jid = redis
        .client()
        .perform_async(fail_with("plain"))
        .await
        .unwrap();
    let before = now();
    drain(&redis).await;

    let retries = sorted_set(&redis, "retry").await;
    assert_eq!(retries.len(), 1);
    let (job, score) = &retries[0];
    assert_eq!(job["jid"], jid.as_str());
    assert_eq!(job["retry_count"], 0);
    assert_eq!(job["error_message"], "failed: plain");
    assert_eq!(job["error_class"], "JobError");
    assert!(job["failed_at"].as_f64().unwrap() >= before - 1.0);
    assert!(job.get("retried_at").is_none());
    assert!(
        job.get("error_backtrace").is_none(),
        "no backtrace unless asked"
    );
    // First retry: 0⁴ + 15 + rand(10)·1 seconds.
    let delay = score - before;
    assert!((14.0..=25.0).contains(&delay), "retry in {delay} s");

    assert!(redis.queue("default").await.is_empty());
    assert_eq!(counter(&redis, "stat:processed").await, 1);
    assert_eq!(counter(&redis, "stat:failed").await, 1);
}

#[tokio::test]
async fn a_later_failure_counts_up_and_sets_retried_at() {
    let redis = TestRedis::start();
    let mut payload = Payload::new("FailWith", vec![json!("plain")]).retry(3);
    payload.retry_count = Some(1);
    payload.failed_at = Some(jobs::Timestamp::from_epoch_seconds(1_700_000_000.0));
    redis.client().push(payload).await.unwrap();
    let before = now();
    drain(&redis).await;

    let (job, score) = &sorted_set(&redis, "retry").await[0];
    assert_eq!(job["retry_count"], 2);
    assert_eq!(job["failed_at"], 1_700_000_000.0);
    assert!(job["retried_at"].as_f64().unwrap() >= before - 1.0);
    // 2⁴ + 15 = 31 s, plus rand(10)·3.
    let delay = score - before;
    assert!((30.0..=60.0).contains(&delay), "retry in {delay} s");
}

#[tokio::test]
async fn exhausted_retries_go_to_the_dead_set() {
    let redis = TestRedis::start();
    let mut payload = Payload::new("FailWith", vec![json!("plain")]).retry(3);
    payload.retry_count = Some(2);
    redis.client().push(payload).await.unwrap();
    let died = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&died);
    worker(&redis, &CallLog::default())
        .on_death(move |job, error| {
            seen.lock().unwrap().push(format!("{} {error}", job.class));
        })
        .drain()
        .await
        .unwrap();

    assert!(sorted_set(&redis, "retry").await.is_empty());
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0["retry_count"], 3);
    assert!((dead[0].1 - now()).abs() < 5.0, "scored by time of death");
    assert_eq!(*died.lock().unwrap(), ["FailWith failed: plain"]);
}

#[tokio::test]
async fn retry_zero_is_dead_at_once_and_retry_queue_is_recorded() {
    let redis = TestRedis::start();
    redis.client().perform_async(BuryMe {}).await.unwrap();
    drain(&redis).await;
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0["retry_count"], 0);
    assert_eq!(dead[0].0["queue"], "slow_lane");
    assert_eq!(dead[0].0["error_message"], "always");
}

#[tokio::test]
async fn retry_false_and_dead_false_drop_the_job() {
    let redis = TestRedis::start();
    let client = redis.client();
    client.perform_async(ForgetMe {}).await.unwrap();
    PanicNow::set()
        .client(&client)
        .retry(false)
        .perform_async("no retry".to_owned())
        .await
        .unwrap();
    drain(&redis).await;
    assert!(sorted_set(&redis, "retry").await.is_empty());
    assert!(sorted_set(&redis, "dead").await.is_empty());
    assert_eq!(counter(&redis, "stat:failed").await, 2);
    let keys = redis.keys().await;
    assert!(
        !keys.iter().any(|key| key.starts_with("jobs:working:")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_job_can_set_its_own_delay_or_be_killed_or_discarded() {
    let redis = TestRedis::start();
    let client = redis.client();
    for how in ["in_an_hour", "kill", "discard"] {
        client.perform_async(fail_with(how)).await.unwrap();
    }
    let before = now();
    drain(&redis).await;

    let retries = sorted_set(&redis, "retry").await;
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].0["args"], json!(["in_an_hour"]));
    let delay = retries[0].1 - before;
    assert!((3599.0..=3611.0).contains(&delay), "retry in {delay} s");
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead.len(), 1, "killed despite retries left");
    assert_eq!(dead[0].0["args"], json!(["kill"]));
}

#[tokio::test]
async fn the_exhausted_hook_can_discard_instead_of_burying() {
    let redis = TestRedis::start();
    redis.client().perform_async(BuryMe {}).await.unwrap();
    let asked = Arc::new(Mutex::new(0));
    let count = Arc::clone(&asked);
    worker(&redis, &CallLog::default())
        .on_retries_exhausted(move |job, _error| {
            *count.lock().unwrap() += 1;
            assert_eq!(job.class, "BuryMe");
            Exhausted::Discard
        })
        .drain()
        .await
        .unwrap();
    assert_eq!(*asked.lock().unwrap(), 1);
    assert!(sorted_set(&redis, "dead").await.is_empty());
}

#[tokio::test]
async fn a_panic_is_a_failure_that_is_retried_and_the_worker_keeps_going() {
    let redis = TestRedis::start();
    let client = redis.client();
    for n in 0..3 {
        client
            .perform_async(PanicNow {
                message: format!("kaboom {n}"),
            })
            .await
            .unwrap();
    }
    client
        .perform_async(Record {
            label: "after".into(),
        })
        .await
        .unwrap();
    let log = CallLog::default();
    worker(&redis, &log).concurrency(1).drain().await.unwrap();

    let retries = sorted_set(&redis, "retry").await;
    assert_eq!(retries.len(), 3);
    assert!(retries.iter().all(|(job, _)| job["error_class"] == "Panic"));
    assert_eq!(log.entries(), ["after"], "the slot survived the panics");
}

#[tokio::test]
async fn a_job_over_its_timeout_is_cancelled_and_retried() {
    let redis = TestRedis::start();
    redis.client().perform_async(Overrun {}).await.unwrap();
    let started = std::time::Instant::now();
    drain(&redis).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let (job, _) = &sorted_set(&redis, "retry").await[0];
    assert_eq!(job["error_class"], "jobs::Timeout");
    assert!(
        job["error_message"]
            .as_str()
            .unwrap()
            .contains("timeout of 200ms"),
        "{job}"
    );
}

#[tokio::test]
async fn a_backtrace_is_stored_compressed_when_the_job_asks() {
    let redis = TestRedis::start();
    redis
        .client()
        .perform_async(WithBacktrace {})
        .await
        .unwrap();
    drain(&redis).await;
    let mut raw = redis.raw().await;
    let stored: Vec<String> = raw.zrange("retry", 0, 0).await.unwrap();
    let payload = Payload::from_json(&stored[0]).unwrap();
    let encoded = payload.error_backtrace.clone().unwrap();
    assert!(!encoded.contains('['), "never a raw array: {encoded}");
    assert_eq!(
        payload.backtrace_lines().unwrap(),
        ["upload failed", "caused by: socket closed"]
    );
}

#[tokio::test]
async fn the_dead_set_is_trimmed_to_its_limit() {
    let redis = TestRedis::start();
    let client = redis.client();
    for _ in 0..5 {
        client.perform_async(BuryMe {}).await.unwrap();
    }
    let mut config = WorkerConfig::default();
    config.dead_max_jobs = 3;
    Worker::from_config(config)
        .client(&client)
        .state(CallLog::default())
        .state(crate::support::jobs::Gauge::default())
        .state(crate::support::jobs::Ledger::default())
        .drain()
        .await
        .unwrap();
    assert_eq!(sorted_set(&redis, "dead").await.len(), 3);
}

#[tokio::test]
async fn bad_input_never_stops_the_worker() {
    let redis = TestRedis::start();
    let client = redis.client();
    let mut raw = redis.raw().await;
    let _: () = raw.lpush("queue:default", "{not json").await.unwrap();
    client
        .push(Payload::new("NoSuchJob", vec![json!(1)]))
        .await
        .unwrap();
    client
        .push(Payload::new("Record", vec![json!(42)]))
        .await
        .unwrap();
    client
        .perform_async(Record {
            label: "fine".into(),
        })
        .await
        .unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&errors);
    let log = CallLog::default();
    worker(&redis, &log)
        .concurrency(1)
        .on_error(move |error, job| {
            seen.lock()
                .unwrap()
                .push(format!("{} {}", job.class, error.class()));
        })
        .drain()
        .await
        .unwrap();

    assert_eq!(log.entries(), ["fine"]);
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0["class"], "jobs::InvalidPayload");
    assert_eq!(dead[0].0["args"], json!(["{not json"]));
    assert!(
        dead[0].0["error_message"]
            .as_str()
            .unwrap()
            .contains("not a job")
    );

    let retries = sorted_set(&redis, "retry").await;
    let by_class = |class: &str| {
        retries
            .iter()
            .find(|(job, _)| job["class"] == class)
            .map(|(job, _)| job.clone())
            .unwrap_or_else(|| panic!("no retry for {class}: {retries:?}"))
    };
    let unknown = by_class("NoSuchJob");
    assert_eq!(unknown["error_class"], "jobs::UnknownJob");
    assert!(
        unknown["error_message"]
            .as_str()
            .unwrap()
            .contains("no job named `NoSuchJob`")
    );
    let bad_args = by_class("Record");
    assert_eq!(bad_args["error_class"], "jobs::ArgumentError");
    let message = bad_args["error_message"].as_str().unwrap();
    assert!(message.contains("argument `label` (#1)"), "{message}");
    assert_eq!(
        *errors.lock().unwrap(),
        ["NoSuchJob jobs::UnknownJob", "Record jobs::ArgumentError"]
    );
}

#[tokio::test]
async fn a_panicking_error_handler_does_not_lose_the_job() {
    let redis = TestRedis::start();
    redis
        .client()
        .perform_async(fail_with("plain"))
        .await
        .unwrap();
    worker(&redis, &CallLog::default())
        .on_error(|_, _| panic!("handler bug"))
        .drain()
        .await
        .unwrap();
    assert_eq!(sorted_set(&redis, "retry").await.len(), 1);
}

#[tokio::test]
async fn a_queue_key_of_the_wrong_type_does_not_stop_the_others() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let _: () = raw.set("queue:broken", "not a list").await.unwrap();
    // Alone before the good queue, and in a run of 64 queues where it is the only key, which
    // the fetch script would pass over with one `EXISTS` if it had none (the good queue comes
    // after that run): the broken key is still looked at, and its refusal logged.
    let in_a_run: Vec<String> = (0..10)
        .map(|n| format!("empty{n}"))
        .chain(["broken".to_owned()])
        .chain((10..63).map(|n| format!("empty{n}")))
        .chain(["default".to_owned()])
        .collect();
    assert_eq!(in_a_run.len(), 65);
    for queues in [vec!["broken".to_owned(), "default".to_owned()], in_a_run] {
        redis
            .client()
            .perform_async(Record {
                label: "fine".into(),
            })
            .await
            .unwrap();
        let log = CallLog::default();
        let captured = CapturedLog::default();
        {
            let _guard = captured.install();
            worker(&redis, &log).queues(queues).drain().await.unwrap();
        }
        assert_eq!(log.entries(), ["fine"]);
        let text = captured.text();
        assert!(
            text.contains("cannot take jobs from a queue") && text.contains("queue:broken"),
            "{text}"
        );
        let kept: String = raw.get("queue:broken").await.unwrap();
        assert_eq!(kept, "not a list", "the foreign key is left alone");
    }
}

#[tokio::test]
async fn a_working_list_of_the_wrong_type_leaves_every_queue_as_it_was() {
    // The fetch script reads the working list's type before any job leaves its queue: with a
    // key no job can be pushed onto, a job taken off its queue would be lost.
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let log = CallLog::default();
    let captured = CapturedLog::default();
    let _guard = captured.install();
    let running = RunningWorker::start(worker(&redis, &log).queues(["default", "other"]));
    let mut identity = None;
    eventually(
        Duration::from_secs(5),
        "the worker's first fetch",
        async || {
            let members: Vec<String> = raw.smembers("jobs:workers").await.unwrap();
            identity = members.into_iter().next();
            identity.is_some()
        },
    )
    .await;
    let working = format!("jobs:working:{}", identity.unwrap());
    let _: () = raw.set(&working, "not a list").await.unwrap();
    let labels: Vec<String> = (0..3).map(|n| format!("kept {n}")).collect();
    for queue in ["default", "other"] {
        push_labels_to(&redis.client(), queue, &labels).await;
    }
    eventually(Duration::from_secs(5), "the refusal logged", async || {
        captured.text().contains(&format!(
            "{working}: WRONGTYPE a string, not a list: no job can be taken"
        ))
    })
    .await;
    assert!(log.entries().is_empty(), "{:?}", log.entries());
    for queue in ["default", "other"] {
        assert_eq!(redis.queue(queue).await.len(), 3, "{queue} kept its jobs");
    }

    let _: () = raw.del(&working).await.unwrap();
    eventually(Duration::from_secs(10), "the six jobs to run", async || {
        log.entries().len() == 6
    })
    .await;
    running.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_working_list_that_refuses_the_push_gets_every_job_back_to_its_queue() {
    // The fetch script takes each queue's jobs off first and pushes them onto the working list
    // last. A refusal there (here an ACL that denies LPUSH, which the list's type check cannot
    // foresee) must put every job back where it was, in its order, or it would be lost. (The
    // ACL denies the idle wait's BLMOVE too, which would otherwise take the jobs one by one.)
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER", "nopush", "on", ">secret", "~*", "&*", "+@all", "-lpush", "-lmove",
            "-blmove",
        ])
        .query_async(&mut raw)
        .await
        .unwrap();
    let mut queued = Vec::new();
    for (queue, count) in [("default", 3), ("other", 2)] {
        let labels: Vec<String> = (0..count).map(|n| format!("{queue} {n}")).collect();
        push_labels_to(&redis.client(), queue, &labels).await;
        queued.push((queue, redis.queue(queue).await));
    }
    let url = redis
        .url()
        .replacen("redis://", "redis://nopush:secret@", 1);
    let client = jobs::Client::builder().url(&url).build().unwrap();
    let log = CallLog::default();
    let captured = CapturedLog::default();
    let _guard = captured.install();
    // Weighted, with a cap on one queue: its jobs are taken holding leases, which the refusal
    // must release at once.
    let running = RunningWorker::start(
        crate::support::jobs::with_test_jobs(Worker::new().client(&client), &log)
            .weighted_queues([
                QueueSpec::weighted("default", 1),
                QueueSpec::weighted("other", 1),
            ])
            .cap_queue("default", 10),
    );
    eventually(Duration::from_secs(5), "the refusal logged", async || {
        // Redis 6.2 and 7.0 say "can't run this command", 7.2 on "no permissions to run".
        captured.text().lines().any(|line| {
            line.contains("cannot take jobs from a queue")
                && line.contains("jobs:working:")
                && (line.contains("can't run this command") || line.contains("no permissions"))
        })
    })
    .await;
    let leases: u64 = raw.zcard("jobs:lease:queue:default").await.unwrap();
    running.stop(Duration::from_secs(5)).await;
    assert_eq!(leases, 0, "the leases of the jobs put back are released");
    assert!(log.entries().is_empty(), "{:?}", log.entries());
    for (queue, jobs) in queued {
        assert_eq!(
            redis.queue(queue).await,
            jobs,
            "{queue} has its jobs, in their order"
        );
    }
}

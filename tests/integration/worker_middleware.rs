//! Server middleware around every job, and lifecycle hooks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::worker::{Lifecycle, Next, ServerMiddleware};
use jobs::{JobError, Payload};

use crate::support::jobs::worker;
use crate::support::jobs::{CallLog, FailWith, Record};
use crate::support::{RunningWorker, TestRedis, eventually, sorted_set};

/// Records each job's class and outcome, around the job.
#[derive(Clone, Default)]
struct Observe(Arc<Mutex<Vec<String>>>);

impl ServerMiddleware for Observe {
    async fn call<'a>(&'a self, job: &'a Payload, next: Next<'a>) -> Result<(), JobError> {
        let result = next.run().await;
        let outcome = match &result {
            Ok(()) => "ok".to_owned(),
            Err(error) => format!("error: {error}"),
        };
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {outcome}", job.class));
        result
    }
}

/// Skips jobs tagged `skip` without running them.
struct SkipTagged;

impl ServerMiddleware for SkipTagged {
    async fn call<'a>(&'a self, job: &'a Payload, next: Next<'a>) -> Result<(), JobError> {
        if job
            .tags
            .as_ref()
            .is_some_and(|tags| tags.iter().any(|tag| tag == "skip"))
        {
            return Ok(());
        }
        next.run().await
    }
}

#[tokio::test]
async fn middleware_sees_each_job_and_its_outcome_and_can_skip_one() {
    let redis = TestRedis::start();
    let client = redis.client();
    client
        .perform_async(Record {
            label: "kept".into(),
        })
        .await
        .unwrap();
    Record::set()
        .client(&client)
        .tags(["skip"])
        .perform_async("skipped".to_owned())
        .await
        .unwrap();
    client
        .perform_async(FailWith {
            how: "plain".into(),
        })
        .await
        .unwrap();
    let observed = Observe::default();
    let log = CallLog::default();
    worker(&redis, &log)
        .concurrency(1)
        .middleware(observed.clone())
        .middleware(SkipTagged)
        .drain()
        .await
        .unwrap();

    assert_eq!(log.entries(), ["kept"], "the tagged job was skipped");
    assert_eq!(
        *observed.0.lock().unwrap(),
        ["Record ok", "Record ok", "FailWith error: failed: plain"]
    );
    assert_eq!(
        sorted_set(&redis, "retry").await.len(),
        1,
        "the error still counts"
    );
}

#[tokio::test]
async fn lifecycle_hooks_run_in_order() {
    let redis = TestRedis::start();
    let moments = Arc::new(Mutex::new(Vec::new()));
    let hook = |name: &'static str| {
        let moments = Arc::clone(&moments);
        move || moments.lock().unwrap().push(name)
    };
    let running = RunningWorker::start(
        worker(&redis, &CallLog::default())
            .on(Lifecycle::Startup, hook("startup"))
            .on(Lifecycle::Quiet, hook("quiet"))
            .on(Lifecycle::Shutdown, hook("shutdown"))
            .on(Lifecycle::Beat, hook("beat")),
    );
    eventually(Duration::from_secs(8), "a beat", async || {
        moments.lock().unwrap().contains(&"beat")
    })
    .await;
    running.stop(Duration::from_secs(5)).await;
    let seen = moments.lock().unwrap().clone();
    // Beats go on through shutdown, as Sidekiq's do; the one-shot moments come in order.
    let once: Vec<&str> = seen
        .iter()
        .copied()
        .filter(|moment| *moment != "beat")
        .collect();
    assert_eq!(once, ["startup", "quiet", "shutdown"]);
    assert_eq!(seen.first(), Some(&"startup"));
}

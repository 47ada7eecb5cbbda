//! Workflows against a real Redis and a real worker: a diamond A -> (B, C) -> D where C fails
//! once, a step that dies, a chain of three (and an advance delivered twice), a fan-in, a cycle
//! refused, a namespaced workflow with its own queue, three layers of steps across `kill -9`s
//! of the worker processes, and `testing::inline`. The order is read from a ledger the steps'
//! jobs write into Redis (`start|<step>|<jid>|<pid>`, then `end|…`), not from timing.

use std::collections::HashMap;
use std::time::Duration;

use jobs::api::{JobSet, Page, SetKind, Workflows};
use jobs::workflow::{StepState, WorkflowState, WorkflowStatus};
use jobs::{Client, JobContext, JobError, Payload, Workflow, WorkflowId, job};
use redis::AsyncCommands;

use crate::support::jobs::{CallLog, with_test_jobs};
use crate::support::ledger::{self, Ledger};
use crate::support::{ChildWorker, RunningWorker, TestRedis, eventually};

/// The Redis list the steps write their ledger into.
const EVENTS: &str = "workflows-test:events";

/// A step: records its run under `label` in the ledger of the Redis at `url`, and fails on
/// its first `fail_times` attempts.
#[job]
pub async fn flow_step(
    #[context] ctx: JobContext,
    url: String,
    label: String,
    fail_times: u32,
) -> Result<(), JobError> {
    ledger::record(&url, EVENTS, &label, ctx.jid().as_str(), 5).await;
    if ctx.attempt() <= fail_times {
        return Err(JobError::msg(format!("{label} fails on purpose")));
    }
    Ok(())
}

/// A step with no retries that always fails: it dies on its first run.
#[job(retry = 0)]
pub async fn flow_doomed(
    #[context] ctx: JobContext,
    url: String,
    label: String,
) -> Result<(), JobError> {
    ledger::record(&url, EVENTS, &label, ctx.jid().as_str(), 5).await;
    Err(JobError::msg(format!("{label} dies on purpose")))
}

/// A step with `retry: false` that always fails: dropped on its first run, which a batch counts
/// as a death.
#[job(retry = false)]
pub async fn flow_dropped(
    #[context] ctx: JobContext,
    url: String,
    label: String,
) -> Result<(), JobError> {
    ledger::record(&url, EVENTS, &label, ctx.jid().as_str(), 5).await;
    Err(JobError::msg(format!("{label} is dropped on purpose")))
}

/// A step with no retries that fails on its first run only (it reads the ledger for an earlier
/// run): it dies, and succeeds once retried by hand.
#[job(retry = 0)]
pub async fn flow_dies_once(
    #[context] ctx: JobContext,
    url: String,
    label: String,
) -> Result<(), JobError> {
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let events: Vec<String> = raw.lrange(EVENTS, 0, -1).await.unwrap();
    let ran_before = events
        .iter()
        .any(|event| event.starts_with(&format!("end|{label}|")));
    ledger::record(&url, EVENTS, &label, ctx.jid().as_str(), 5).await;
    if ran_before {
        Ok(())
    } else {
        Err(JobError::msg(format!("{label} dies once on purpose")))
    }
}

/// A step that takes `millis` between its `start` and `end` records: long enough for a
/// `kill -9` to cut some runs short.
#[job]
pub async fn flow_slow(#[context] ctx: JobContext, url: String, label: String, millis: u64) {
    ledger::record(&url, EVENTS, &label, ctx.jid().as_str(), millis).await;
}

/// Nothing is left to run (no queued job, no retry) and none of `never` was started (its
/// step's batch does not exist): asserted on state, not by waiting for what does not happen.
async fn assert_nothing_left(
    client: &Client,
    redis: &TestRedis,
    status: &WorkflowStatus,
    never: &[&str],
) {
    assert!(redis.queue("default").await.is_empty());
    assert_eq!(JobSet::new(client, SetKind::Retry).size().await.unwrap(), 0);
    for name in never {
        let bid: jobs::Bid = status.step(name).unwrap().bid.parse().unwrap();
        assert!(
            jobs::Batch::status(client, &bid).await.unwrap().is_none(),
            "{name} was started"
        );
    }
}

fn step(redis: &TestRedis, label: &str) -> FlowStep {
    failing(redis, label, 0)
}

fn failing(redis: &TestRedis, label: &str, fail_times: u32) -> FlowStep {
    FlowStep {
        url: redis.url(),
        label: label.to_owned(),
        fail_times,
    }
}

/// A worker on `client` with every test job, polling for retries every 200 ms.
fn start_worker(client: &Client) -> RunningWorker {
    RunningWorker::start(
        with_test_jobs(jobs::Worker::new().client(client), &CallLog::default())
            .poll_interval(Duration::from_millis(200))
            .concurrency(4),
    )
}

/// Waits until the workflow is in `state`, moving any failed job waiting in the retry set to
/// its queue meanwhile, its retry count kept (so a retry does not wait out Sidekiq's backoff);
/// returns its status.
async fn wait_for(client: &Client, wid: &WorkflowId, state: WorkflowState) -> WorkflowStatus {
    let retries = JobSet::new(client, SetKind::Retry);
    eventually(
        Duration::from_secs(30),
        &format!("the workflow reaches {}", state.as_str()),
        async || {
            retries.add_all_to_queue().await.unwrap();
            let status = Workflow::status(client, wid).await.unwrap().unwrap();
            status.state == state
        },
    )
    .await;
    Workflow::status(client, wid).await.unwrap().unwrap()
}

/// How many times each job of `label` ran to its end, summed: the step's runs.
fn runs(ledger: &Ledger, label: &str) -> usize {
    ledger.ends.get(label).map_or(0, |ends| ends.values().sum())
}

/// `label`'s first start in the ledger.
fn first_start(ledger: &Ledger, label: &str) -> usize {
    *ledger
        .first_start
        .get(label)
        .unwrap_or_else(|| panic!("{label} never started"))
}

/// `label`'s last end in the ledger.
fn last_end(ledger: &Ledger, label: &str) -> usize {
    *ledger
        .last_end
        .get(label)
        .unwrap_or_else(|| panic!("{label} never ended"))
}

/// Pushes the diamond A -> (B, C) -> D through `client`, with C failing on its first
/// `c_fail_times` attempts.
async fn push_diamond(client: &Client, redis: &TestRedis, c_fail_times: u32) -> WorkflowId {
    Workflow::new("diamond")
        .client(client)
        .step("a", step(redis, "a"))
        .step_after("b", &["a"], step(redis, "b"))
        .step_after("c", &["a"], failing(redis, "c", c_fail_times))
        .step_after("d", &["b", "c"], step(redis, "d"))
        .push()
        .await
        .unwrap()
}

/// Pushes the chain `labels[0]` -> `labels[1]` -> … through `client`, each a step that
/// succeeds.
async fn push_chain(client: &Client, redis: &TestRedis, labels: &[&str]) -> WorkflowId {
    let (first, rest) = labels.split_first().unwrap();
    let mut workflow = Workflow::new("chain")
        .client(client)
        .step(*first, step(redis, first));
    for label in rest {
        workflow = workflow.then(*label, step(redis, label));
    }
    workflow.push().await.unwrap()
}

fn states(status: &WorkflowStatus) -> Vec<(String, StepState)> {
    status
        .steps
        .iter()
        .map(|step| (step.name.clone(), step.state))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_whose_c_fails_once_runs_each_step_once_in_order() {
    let redis = TestRedis::start();
    let client = redis.client();
    let worker = start_worker(&client);
    let wid = push_diamond(&client, &redis, 1).await;

    // C's first failure waits in the retry set (Sidekiq's backoff is 15 s and more) until the
    // test moves it: meanwhile the status shows C retrying and D waiting.
    let retries = JobSet::new(&client, SetKind::Retry);
    eventually(Duration::from_secs(20), "C fails once", async || {
        retries.size().await.unwrap() == 1
    })
    .await;
    let status = Workflow::status(&client, &wid).await.unwrap().unwrap();
    assert_eq!(status.state, WorkflowState::Running);
    let c = status.step("c").unwrap();
    assert_eq!(c.state, StepState::Retrying);
    assert_eq!(
        c.last_error.as_deref(),
        Some("JobError: c fails on purpose")
    );
    assert_eq!(status.step("d").unwrap().state, StepState::Waiting);

    let status = wait_for(&client, &wid, WorkflowState::Succeeded).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(
        ["a", "b", "c", "d"].map(|label| runs(&ledger, label)),
        [1, 1, 2, 1],
        "each step runs once, C twice (it failed once): {ledger:?}"
    );
    assert!(last_end(&ledger, "a") < first_start(&ledger, "b"));
    assert!(last_end(&ledger, "a") < first_start(&ledger, "c"));
    assert!(last_end(&ledger, "b") < first_start(&ledger, "d"));
    assert!(
        last_end(&ledger, "c") < first_start(&ledger, "d"),
        "D starts only after C's retry succeeded"
    );

    assert_eq!(status.description, "diamond");
    assert!(status.succeeded_at.is_some());
    assert_eq!(
        states(&status),
        ["a", "b", "c", "d"].map(|name| (name.to_owned(), StepState::Succeeded))
    );
    assert_eq!(status.step("d").unwrap().depends_on, ["b", "c"]);
    assert_eq!(status.step("c").unwrap().class, "FlowStep");
    worker.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_dies_blocks_its_dependents_and_marks_the_workflow_dead() {
    let redis = TestRedis::start();
    let client = redis.client();
    let worker = start_worker(&client);
    let doomed = FlowDoomed {
        url: redis.url(),
        label: "a".to_owned(),
    };
    let wid = Workflow::new("doomed")
        .client(&client)
        .step("a", doomed)
        .then("b", step(&redis, "b"))
        .then("c", step(&redis, "c"))
        .push()
        .await
        .unwrap();

    let status = wait_for(&client, &wid, WorkflowState::Dead).await;
    assert!(status.dead_at.is_some());
    let a = status.step("a").unwrap();
    assert_eq!(a.state, StepState::Dead);
    assert!(
        a.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("a dies on purpose"),
        "{a:?}"
    );
    // The death's advance made it dead and started nothing: stop the worker and read the state.
    worker.stop(Duration::from_secs(10)).await;
    assert_nothing_left(&client, &redis, &status, &["b", "c"]).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "a"), 1);
    assert_eq!(runs(&ledger, "b"), 0, "B depends on the dead A: {ledger:?}");
    assert_eq!(runs(&ledger, "c"), 0);
    let status = Workflow::status(&client, &wid).await.unwrap().unwrap();
    assert_eq!(status.state, WorkflowState::Dead);
    assert_eq!(
        states(&status),
        [
            ("a".to_owned(), StepState::Dead),
            ("b".to_owned(), StepState::Waiting),
            ("c".to_owned(), StepState::Waiting),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_without_retries_that_fails_blocks_its_dependents_and_others_carry_on() {
    let redis = TestRedis::start();
    let client = redis.client();
    let worker = start_worker(&client);
    let dropped = FlowDropped {
        url: redis.url(),
        label: "x".to_owned(),
    };
    let wid = Workflow::new("dropped")
        .client(&client)
        .step("x", dropped)
        .then("y", step(&redis, "y"))
        .step("z", step(&redis, "z"))
        .then("w", step(&redis, "w"))
        .push()
        .await
        .unwrap();

    eventually(
        Duration::from_secs(20),
        "x dies and w, independent of it, succeeds",
        async || {
            let status = Workflow::status(&client, &wid).await.unwrap().unwrap();
            status.step("x").unwrap().state == StepState::Dead
                && status.step("w").unwrap().state == StepState::Succeeded
        },
    )
    .await;
    let status = wait_for(&client, &wid, WorkflowState::Dead).await;
    worker.stop(Duration::from_secs(10)).await;
    assert_nothing_left(&client, &redis, &status, &["y"]).await;
    let status = Workflow::status(&client, &wid).await.unwrap().unwrap();
    assert_eq!(status.state, WorkflowState::Dead);
    assert_eq!(
        states(&status),
        [
            ("x".to_owned(), StepState::Dead),
            ("y".to_owned(), StepState::Waiting),
            ("z".to_owned(), StepState::Succeeded),
            ("w".to_owned(), StepState::Succeeded),
        ]
    );
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(
        ["x", "y", "z", "w"].map(|label| runs(&ledger, label)),
        [1, 0, 1, 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_step_retried_by_hand_that_succeeds_lets_the_workflow_run_on() {
    let redis = TestRedis::start();
    let client = redis.client();
    let worker = start_worker(&client);
    let once = FlowDiesOnce {
        url: redis.url(),
        label: "a".to_owned(),
    };
    let wid = Workflow::new("revived")
        .client(&client)
        .step("a", once)
        .then("b", step(&redis, "b"))
        .push()
        .await
        .unwrap();
    wait_for(&client, &wid, WorkflowState::Dead).await;

    // What the dashboard's Dead page's "Retry now" does.
    let dead = JobSet::new(&client, SetKind::Dead);
    eventually(
        Duration::from_secs(10),
        "a is in the dead set",
        async || dead.size().await.unwrap() == 1,
    )
    .await;
    assert_eq!(dead.retry_all().await.unwrap(), 1);

    let status = wait_for(&client, &wid, WorkflowState::Succeeded).await;
    assert_eq!(
        states(&status),
        [
            ("a".to_owned(), StepState::Succeeded),
            ("b".to_owned(), StepState::Succeeded),
        ]
    );
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(["a", "b"].map(|label| runs(&ledger, label)), [2, 1]);
    assert!(last_end(&ledger, "a") < first_start(&ledger, "b"));
    worker.stop(Duration::from_secs(10)).await;
}

/// A worker on `client` with every test job, taking from `queues` only.
fn worker_on(client: &Client, queues: &[&str]) -> RunningWorker {
    RunningWorker::start(
        with_test_jobs(jobs::Worker::new().client(client), &CallLog::default())
            .queues(queues.iter().copied())
            .poll_interval(Duration::from_millis(200))
            .concurrency(4),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_three_runs_one_after_the_other() {
    let redis = TestRedis::start();
    let client = redis.client();
    let worker = start_worker(&client);
    let wid = push_chain(&client, &redis, &["one", "two", "three"]).await;

    let status = wait_for(&client, &wid, WorkflowState::Succeeded).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(
        ["one", "two", "three"].map(|label| runs(&ledger, label)),
        [1, 1, 1]
    );
    assert!(last_end(&ledger, "one") < first_start(&ledger, "two"));
    assert!(last_end(&ledger, "two") < first_start(&ledger, "three"));
    assert_eq!(status.state, WorkflowState::Succeeded);
    worker.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advance_run_twice_while_the_next_step_waits_pushes_it_once() {
    let redis = TestRedis::start();
    let client = redis.client();
    // Steps only: A's advance waits in the `workflows` queue.
    let steps = worker_on(&client, &["default"]);
    let wid = Workflow::new("chain")
        .client(&client)
        .queue("workflows")
        .step("a", step(&redis, "a"))
        .then("b", step(&redis, "b"))
        .push()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "A's advance is pushed",
        async || redis.queue("workflows").await.len() == 1,
    )
    .await;
    steps.stop(Duration::from_secs(10)).await;

    // A's advance delivered twice (at least once: a crash after it ran, before its
    // acknowledgement), both run while B has not run.
    let advance = Payload::new(
        "Jobs::Workflow::Advance",
        vec![wid.as_str().into(), "a".into(), "success".into()],
    )
    .queue("workflows");
    client.push(advance).await.unwrap();
    assert_eq!(redis.queue("workflows").await.len(), 2);
    let advances = worker_on(&client, &["workflows"]);
    eventually(Duration::from_secs(20), "both advances run", async || {
        redis.queue("workflows").await.is_empty()
    })
    .await;
    advances.stop(Duration::from_secs(10)).await;
    assert_eq!(
        JobSet::new(&client, SetKind::Retry).size().await.unwrap(),
        0,
        "both advances succeeded"
    );
    assert_eq!(redis.queue("default").await.len(), 1, "B is pushed once");

    let worker = worker_on(&client, &["default", "workflows"]);
    wait_for(&client, &wid, WorkflowState::Succeeded).await;
    worker.stop(Duration::from_secs(10)).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(["a", "b"].map(|label| runs(&ledger, label)), [1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_in_runs_after_every_step_of_its_group() {
    let redis = TestRedis::start();
    let client = redis.client();
    let worker = start_worker(&client);
    let wid = Workflow::new("fan-in")
        .client(&client)
        .group("part", (0..4).map(|_| step(&redis, "part")))
        .then("sum", step(&redis, "sum"))
        .push()
        .await
        .unwrap();

    let status = wait_for(&client, &wid, WorkflowState::Succeeded).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "part"), 4);
    assert_eq!(ledger.done("part").len(), 4, "four distinct jobs");
    assert_eq!(runs(&ledger, "sum"), 1);
    assert!(last_end(&ledger, "part") < first_start(&ledger, "sum"));
    assert_eq!(
        status.step("sum").unwrap().depends_on,
        ["part[0]", "part[1]", "part[2]", "part[3]"]
    );
    let listed = Workflows::new(&client).page(Page::first(10)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, status.id);
    assert_eq!(listed[0].state, WorkflowState::Succeeded);
    assert_eq!(listed[0].succeeded_at, status.succeeded_at);
    assert_eq!(
        (listed[0].total, listed[0].succeeded, listed[0].dead),
        (5, 5, 0)
    );
    worker.stop(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_workflow_with_a_cycle_is_refused_before_anything_is_written() {
    let redis = TestRedis::start();
    let client = redis.client();
    let error = Workflow::new("loop")
        .client(&client)
        .step_after("a", &["b"], step(&redis, "a"))
        .step_after("b", &["a"], step(&redis, "b"))
        .push()
        .await
        .unwrap_err();
    assert!(
        error.to_string().starts_with(
            "cannot push the workflow `loop`: its steps depend on each other in a cycle"
        ),
        "{error}"
    );
    assert!(redis.keys().await.is_empty(), "{:?}", redis.keys().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_workflow_keeps_every_key_in_its_namespace() {
    let redis = TestRedis::start();
    let client = redis.namespaced_client("shop");
    let worker = start_worker(&client);
    let wid = Workflow::new("namespaced")
        .client(&client)
        .queue("flows")
        .step("first", step(&redis, "first"))
        .then("second", step(&redis, "second"))
        .push()
        .await
        .unwrap();
    // The advance jobs go to `flows`, which this worker does not take: the second step waits.
    let mut raw = redis.raw().await;
    eventually(
        Duration::from_secs(10),
        "the first step's advance job is queued",
        async || {
            let queued: Vec<String> = raw.lrange("shop:queue:flows", 0, -1).await.unwrap();
            queued.len() == 1 && queued[0].contains("Jobs::Workflow::Advance")
        },
    )
    .await;
    let status = Workflow::status(&client, &wid).await.unwrap().unwrap();
    assert_eq!(status.queue, "flows");
    assert_eq!(status.step("first").unwrap().state, StepState::Succeeded);
    assert_eq!(status.step("second").unwrap().state, StepState::Waiting);
    worker.stop(Duration::from_secs(10)).await;

    let worker = RunningWorker::start(
        with_test_jobs(jobs::Worker::new().client(&client), &CallLog::default())
            .queues(["default", "flows"]),
    );
    wait_for(&client, &wid, WorkflowState::Succeeded).await;
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "first"), 1);
    assert_eq!(runs(&ledger, "second"), 1);
    let keys = redis.keys().await;
    let outside: Vec<&String> = keys
        .iter()
        .filter(|key| !key.starts_with("shop:") && key.as_str() != EVENTS)
        .collect();
    assert!(
        outside.is_empty(),
        "keys outside the namespace: {outside:?}"
    );
    assert!(keys.contains(&format!("shop:workflow:{wid}")), "{keys:?}");
    worker.stop(Duration::from_secs(10)).await;
}

/// The worker process of [`every_step_runs_in_order_across_killed_workers`]: the test jobs,
/// concurrency 10, heartbeat every second expiring after 3, recovery every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a worker process by the workflow tests"]
async fn workflow_child() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by the workflow tests, not directly"
    );
    let client = Client::from_env().expect("REDIS_URL");
    with_test_jobs(jobs::Worker::new().client(&client), &CallLog::default())
        .concurrency(10)
        .poll_interval(Duration::from_millis(100))
        .recovery(Duration::from_secs(1), 1_000)
        .timeout(Duration::from_secs(2))
        .run()
        .await
        .expect("the worker runs until stopped");
}

/// For each label, the position of the first `end` of each of its jids in the ledger.
fn first_ends(events: &[String]) -> HashMap<String, HashMap<String, usize>> {
    let mut ends: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for (position, event) in events.iter().enumerate() {
        if let ["end", label, jid, _] = event.split('|').collect::<Vec<_>>().as_slice() {
            ends.entry((*label).to_owned())
                .or_default()
                .entry((*jid).to_owned())
                .or_insert(position);
        }
    }
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_runs_in_order_across_killed_workers() {
    let redis = TestRedis::start();
    let url = redis.url();
    let spawn = || ChildWorker::spawn_entry_without_ledger("workflows::workflow_child", &url);
    let layer = |label: &str| {
        (0..12)
            .map(|_| FlowSlow {
                url: url.clone(),
                label: label.to_owned(),
                millis: 500,
            })
            .collect::<Vec<_>>()
    };
    let client = redis.client();
    let wid = Workflow::new("killed")
        .client(&client)
        .group("l1", layer("l1"))
        .group_after("l2", &["l1"], layer("l2"))
        .group_after("l3", &["l2"], layer("l3"))
        .then("end", step(&redis, "end"))
        .push()
        .await
        .unwrap();
    let mut workers = [spawn(), spawn()];
    // Four kill -9s, spread over the run; each killed process is replaced at once.
    for kill in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let victim = kill % 2;
        ledger::kill9(&redis, EVENTS, &mut workers[victim]).await;
        workers[victim] = spawn();
    }
    let status = wait_for(&client, &wid, WorkflowState::Succeeded).await;
    assert!(
        status
            .steps
            .iter()
            .all(|step| step.state == StepState::Succeeded)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut raw = redis.raw().await;
    let events: Vec<String> = raw.lrange(EVENTS, 0, -1).await.unwrap();
    let ends = first_ends(&events);
    let ledger = Ledger::read(&redis, EVENTS).await;
    for (before, after) in [("l1", "l2"), ("l2", "l3"), ("l3", "end")] {
        let finished = &ends[before];
        assert_eq!(finished.len(), if before == "end" { 1 } else { 12 });
        let last = finished.values().max().unwrap();
        assert!(
            *last < first_start(&ledger, after),
            "every step of {before} succeeded before {after} started"
        );
    }
    assert_eq!(ends["end"].len(), 1);
    // The kills cut runs short: those jobs ran again.
    ledger::assert_some_run_cut_short(&events);
}

#[tokio::test]
async fn under_testing_inline_each_step_runs_after_its_dependencies_and_a_failure_stops_the_push() {
    let redis = TestRedis::start();
    let client = redis.client();
    let _inline = jobs::testing::inline();
    Workflow::new("inline")
        .client(&client)
        .step_after("d", &["b", "c"], step(&redis, "d"))
        .step("a", step(&redis, "a"))
        .step_after("b", &["a"], step(&redis, "b"))
        .step_after("c", &["a"], step(&redis, "c"))
        .push()
        .await
        .unwrap();
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert!(last_end(&ledger, "a") < first_start(&ledger, "b"));
    assert!(last_end(&ledger, "c") < first_start(&ledger, "d"));

    let error = Workflow::new("inline failure")
        .client(&client)
        .step("x", failing(&redis, "x", 1))
        .then("y", step(&redis, "y"))
        .push()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("x fails on purpose"), "{error}");
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "x"), 1);
    assert_eq!(runs(&ledger, "y"), 0);
    assert_eq!(
        redis.keys().await,
        [EVENTS],
        "nothing but the ledger is in Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_with_a_short_retention_keeps_the_others_listed() {
    let redis = TestRedis::start();
    let client = redis.client();
    Workflow::new("kept")
        .client(&client)
        .step("a", step(&redis, "a"))
        .push()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Workflow::new("short")
        .client(&client)
        .retention(Duration::from_secs(1))
        .step("a", step(&redis, "a"))
        .push()
        .await
        .unwrap();
    assert_eq!(Workflows::new(&client).size().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_with_a_step_that_cannot_be_a_batch_member_is_refused_before_anything_is_written()
 {
    let redis = TestRedis::start();
    let client = redis.client();
    let mut unique = Payload::new("FlowStep", vec![]).queue("default");
    unique
        .extra
        .insert("unique_for".to_owned(), serde_json::json!(60));
    let error = Workflow::new("unique")
        .client(&client)
        .step("a", step(&redis, "a"))
        .then_payload("b", unique)
        .push()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, jobs::Error::InvalidWorkflow { reason, .. } if reason.contains("`b`")),
        "{error:?}"
    );
    assert!(redis.keys().await.is_empty(), "{:?}", redis.keys().await);
}

/// Stops every job whose label (its second argument) is `c`.
struct StopsC;

impl jobs::ClientMiddleware for StopsC {
    async fn call(&self, job: &mut Payload) -> Result<jobs::Flow, jobs::BoxError> {
        Ok(
            if job.args.get(1).and_then(|label| label.as_str()) == Some("c") {
                jobs::Flow::Stop
            } else {
                jobs::Flow::Continue
            },
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_stopped_by_client_middleware_does_not_count_as_succeeded() {
    let redis = TestRedis::start();
    let client = Client::builder()
        .url(redis.url())
        .middleware(StopsC)
        .build()
        .unwrap();
    let worker = start_worker(&client);
    let wid = push_diamond(&client, &redis, 0).await;
    let status = wait_for(&client, &wid, WorkflowState::Dead).await;
    let c = status.step("c").unwrap();
    assert_eq!(c.state, StepState::Dead);
    assert!(
        c.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("middleware"),
        "{c:?}"
    );
    eventually(Duration::from_secs(10), "B succeeds", async || {
        Workflow::status(&client, &wid)
            .await
            .unwrap()
            .unwrap()
            .step("b")
            .unwrap()
            .state
            == StepState::Succeeded
    })
    .await;
    worker.stop(Duration::from_secs(10)).await;
    let status = Workflow::status(&client, &wid).await.unwrap().unwrap();
    assert_eq!(status.step("d").unwrap().state, StepState::Waiting);
    let ledger = Ledger::read(&redis, EVENTS).await;
    assert_eq!(runs(&ledger, "c"), 0, "{ledger:?}");
    assert_eq!(runs(&ledger, "d"), 0, "{ledger:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_workflow_outlives_its_retention_and_expires_once_finished() {
    let redis = TestRedis::start();
    let client = redis.client();
    let wid = Workflow::new("short")
        .client(&client)
        .retention(Duration::from_secs(1))
        .step("a", step(&redis, "a"))
        .then("b", step(&redis, "b"))
        .push()
        .await
        .unwrap();
    // No worker yet: A waits in its queue longer than the retention.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = Workflow::status(&client, &wid).await.unwrap();
    assert_eq!(
        status.map(|status| status.state),
        Some(WorkflowState::Running)
    );
    let worker = start_worker(&client);
    wait_for(&client, &wid, WorkflowState::Succeeded).await;
    worker.stop(Duration::from_secs(10)).await;
    let mut raw = redis.raw().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("workflow:{wid}"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!((0..=1).contains(&ttl), "a finished workflow expires: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_workflow_does_not_make_the_list_an_error() {
    let redis = TestRedis::start();
    let client = redis.client();
    let wid = Workflow::new("fine")
        .client(&client)
        .step("a", step(&redis, "a"))
        .push()
        .await
        .unwrap();
    // Another workflow's hash overwritten by hand with a string.
    let broken = WorkflowId::generate();
    let mut raw = redis.raw().await;
    let _: () = raw.set(format!("workflow:{broken}"), "x").await.unwrap();
    let _: () = raw.zadd("workflows", broken.as_str(), 1).await.unwrap();
    let listed = Workflows::new(&client).page(Page::first(25)).await.unwrap();
    let ids: Vec<&WorkflowId> = listed.iter().map(|workflow| &workflow.id).collect();
    assert_eq!(ids, [&wid]);
    assert_eq!(listed[0].total, 1);
    assert_eq!(listed[0].succeeded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advance_for_a_step_not_in_the_graph_is_refused() {
    let redis = TestRedis::start();
    let client = redis.client();
    let wid = Workflow::new("one step")
        .client(&client)
        .queue("workflows")
        .step("a", step(&redis, "a"))
        .push()
        .await
        .unwrap();
    let bogus = Payload::new(
        "Jobs::Workflow::Advance",
        vec![wid.as_str().into(), "zzz".into(), "success".into()],
    )
    .queue("workflows");
    client.push(bogus).await.unwrap();
    let advances = worker_on(&client, &["workflows"]);
    let retries = JobSet::new(&client, SetKind::Retry);
    eventually(Duration::from_secs(20), "the advance fails", async || {
        retries.size().await.unwrap() == 1
    })
    .await;
    advances.stop(Duration::from_secs(10)).await;
    let status = Workflow::status(&client, &wid).await.unwrap().unwrap();
    assert_eq!(status.state, WorkflowState::Running);
    let mut raw = redis.raw().await;
    let done: Vec<String> = raw.smembers(format!("workflow:{wid}:done")).await.unwrap();
    assert!(done.is_empty(), "{done:?}");
}

/// Makes every job labelled `b` unique: a batch refuses it.
struct MakesBUnique;

impl jobs::ClientMiddleware for MakesBUnique {
    async fn call(&self, job: &mut Payload) -> Result<jobs::Flow, jobs::BoxError> {
        if job.args.get(1).and_then(|label| label.as_str()) == Some("b") {
            job.extra
                .insert("unique_for".to_owned(), serde_json::json!(60));
        }
        Ok(jobs::Flow::Continue)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_refused_as_a_batch_member_at_its_advance_makes_the_workflow_dead() {
    let redis = TestRedis::start();
    let client = redis.client();
    // The worker's client makes B unique when A's advance starts it; the push's does not.
    let worker_client = Client::builder()
        .url(redis.url())
        .middleware(MakesBUnique)
        .build()
        .unwrap();
    let worker = start_worker(&worker_client);
    let wid = push_chain(&client, &redis, &["a", "b"]).await;
    let status = wait_for(&client, &wid, WorkflowState::Dead).await;
    worker.stop(Duration::from_secs(10)).await;
    let b = status.step("b").unwrap();
    assert_eq!(b.state, StepState::Dead);
    assert!(
        b.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("unique"),
        "{b:?}"
    );
    assert_nothing_left(&client, &redis, &status, &["b"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_trim_keeps_a_running_workflow_older_than_the_retention() {
    let redis = TestRedis::start();
    let client = redis.client();
    let old = Workflow::new("old and running")
        .client(&client)
        .step("a", step(&redis, "a"))
        .push()
        .await
        .unwrap();
    // Listed 31 days ago (no worker: still running).
    let mut raw = redis.raw().await;
    let score: f64 = raw.zscore("workflows", old.as_str()).await.unwrap();
    let _: () = raw
        .zadd("workflows", old.as_str(), score - 31.0 * 24.0 * 3600.0)
        .await
        .unwrap();
    Workflow::new("new")
        .client(&client)
        .step("a", step(&redis, "a"))
        .push()
        .await
        .unwrap();
    assert_eq!(Workflows::new(&client).size().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_can_expire_unrun_is_refused_before_anything_is_written() {
    let redis = TestRedis::start();
    let client = redis.client();
    let mut expiring = Payload::new("FlowStep", vec![]).queue("default");
    expiring
        .extra
        .insert("expires_in".to_owned(), serde_json::json!(60));
    let error = Workflow::new("expiring")
        .client(&client)
        .step("a", step(&redis, "a"))
        .then_payload("b", expiring)
        .push()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, jobs::Error::InvalidWorkflow { reason, .. }
            if reason.contains("`b`") && reason.contains("expires_in")),
        "{error:?}"
    );
    assert!(redis.keys().await.is_empty(), "{:?}", redis.keys().await);
}

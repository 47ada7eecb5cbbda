//! Paused queues: worker processes take none of a paused queue's jobs (busy, idle in
//! `BLMOVE`, after a restart), hand back what they took ahead, idle without spinning when every
//! queue is paused, and take the jobs again on resume; `Worker::drain` leaves a paused queue
//! alone; Ruby Sidekiq 6.4 still lists a paused queue with its size, and a pause Sidekiq Pro
//! writes is ours too.

use std::collections::HashSet;
use std::time::Duration;

use jobs::Payload;
use jobs::api::Queue;
use jobs::worker::QueueSpec;
use redis::AsyncCommands;
use serde_json::json;

use crate::support::jobs::{
    CallLog, Ledgered, push_ledgered, push_low_and_high, with_test_jobs, worker,
};
use crate::support::{ChildWorker, LedgerView, TestRedis, eventually, ledger_path, ruby};

/// The queue the ledger jobs go to, which the child workers take from first.
const FAULTS: &str = "faults";

/// How long the tests watch a paused queue: more than one idle `BLMOVE` (2 s) and one round
/// after it, so a worker that took from it would have.
const WATCH: Duration = Duration::from_secs(3);

/// The jids of the jobs of `queue` in every worker's working list (taken, running or not).
async fn taken_from(redis: &TestRedis, queue: &str) -> HashSet<String> {
    let mut raw = redis.raw().await;
    let lists: Vec<String> = raw.keys("jobs:working:*").await.unwrap();
    let mut jids = HashSet::new();
    for list in lists {
        let entries: Vec<String> = raw.lrange(&list, 0, -1).await.unwrap();
        for entry in entries {
            let job = crate::support::parse(&entry);
            if job["queue"] == queue {
                jids.insert(job["jid"].as_str().unwrap().to_owned());
            }
        }
    }
    jids
}

/// How many jobs wait in `queue:<queue>`.
async fn waiting(redis: &TestRedis, queue: &str) -> usize {
    let mut raw = redis.raw().await;
    raw.llen(format!("queue:{queue}")).await.unwrap()
}

/// The number of worker processes registered for crash recovery (`jobs:workers`): each adds
/// itself as it starts, and leaves when it stops with nothing taken.
async fn fetching_workers(redis: &TestRedis) -> usize {
    let mut raw = redis.raw().await;
    raw.scard("jobs:workers").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_stops_two_busy_workers_and_hands_back_what_they_took_ahead() {
    let redis = TestRedis::start();
    let client = redis.client();
    let ledger = ledger_path("paused-busy");
    // The first 60 jobs are slow, so that each worker (2 slots, 20 jobs taken per round) holds
    // jobs taken ahead when the pause comes; the rest are quick.
    let jids = push_ledgered(
        &redis,
        (0..1_000_u64).map(|n| Ledgered {
            millis: if n < 60 { 300 } else { 5 },
        }),
    )
    .await;
    assert_eq!(jids.len(), 1_000);
    let env = [("JOBS_TEST_CONCURRENCY", "2")];
    let workers = [
        ChildWorker::spawn(&redis.url(), &ledger, &env),
        ChildWorker::spawn(&redis.url(), &ledger, &env),
    ];
    eventually(
        Duration::from_secs(20),
        "both workers to take jobs ahead of their free slots",
        async || fetching_workers(&redis).await == 2 && taken_from(&redis, FAULTS).await.len() > 8,
    )
    .await;

    let queue = Queue::new(&client, FAULTS);
    queue.pause().await.unwrap();
    assert!(queue.is_paused().await.unwrap());
    // In the working lists when the pause returned: a few running, the rest taken ahead.
    let held_at_pause = taken_from(&redis, FAULTS).await;

    // Within a round the jobs taken ahead are back in the queue and the running ones are done.
    eventually(
        Duration::from_secs(10),
        "the working lists to hold nothing of the paused queue",
        async || taken_from(&redis, FAULTS).await.is_empty(),
    )
    .await;
    let ran = LedgerView::read(&ledger).runs.len();
    let left = waiting(&redis, FAULTS).await;
    assert_eq!(ran + left, 1_000, "every job ran or waits in its queue");
    assert!(left > 900, "the queue keeps its jobs: {left} left");
    let queued = redis.queued_jids(FAULTS).await;
    let handed_back: Vec<&String> = held_at_pause.intersection(&queued).collect();
    assert!(
        !handed_back.is_empty(),
        "the jobs taken ahead went back to the queue (of {} held at the pause, none did)",
        held_at_pause.len()
    );
    let oldest = redis.queue(FAULTS).await[0]["jid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        held_at_pause.contains(&oldest),
        "handed back to the front of the queue"
    );

    // None taken while paused, over several fetch rounds.
    tokio::time::sleep(WATCH).await;
    assert_eq!(LedgerView::read(&ledger).runs.len(), ran, "no job started");
    assert_eq!(waiting(&redis, FAULTS).await, left, "no job was taken");
    assert!(taken_from(&redis, FAULTS).await.is_empty());

    // Ruby Sidekiq 6.4 still lists the queue, with its size.
    let listed = ruby(
        &redis.url(),
        "puts 'RESULT:' + JSON.generate(Sidekiq::Queue.all.map { |q| [q.name, q.size] }.to_h)",
    );
    assert_eq!(listed[FAULTS], json!(left), "{listed}");

    // Resumed: every job runs, once.
    queue.unpause().await.unwrap();
    eventually(
        Duration::from_secs(60),
        "every job to run after the resume",
        async || LedgerView::read(&ledger).done.len() == 1_000,
    )
    .await;
    let view = LedgerView::read(&ledger);
    assert_eq!(view.duplicates(), 0, "a job handed back was not run twice");
    assert_eq!(view.runs.keys().cloned().collect::<HashSet<_>>(), jids);
    drop(workers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_takes_nothing_from_a_paused_queue_until_it_is_resumed() {
    let redis = TestRedis::start();
    let client = redis.client();
    let ledger = ledger_path("paused-idle");
    let worker = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    // Idle: one BLMOVE waiting on each of its two queues.
    eventually(
        Duration::from_secs(20),
        "the worker to wait on its queues",
        async || redis.calls("blmove").await >= 2,
    )
    .await;

    let queue = Queue::new(&client, FAULTS);
    queue.pause().await.unwrap();
    // Pushed at once, it meets the BLMOVE issued before the pause: handed back, not run.
    let first = push_ledgered(&redis, [Ledgered { millis: 0 }]).await;
    tokio::time::sleep(WATCH).await;
    // Pushed later, no BLMOVE waits on the queue any more.
    let second = push_ledgered(&redis, [Ledgered { millis: 0 }]).await;
    tokio::time::sleep(WATCH).await;
    assert!(
        LedgerView::read(&ledger).runs.is_empty(),
        "no job of the paused queue ran"
    );
    let both: HashSet<String> = first.union(&second).cloned().collect();
    assert_eq!(redis.queued_jids(FAULTS).await, both);
    assert!(taken_from(&redis, FAULTS).await.is_empty());

    resume_and_wait_for(&queue, &ledger, &both).await;
    drop(worker);
}

/// Resumes `queue` and waits until the ledger says `jids` ran to the end.
async fn resume_and_wait_for(queue: &Queue, ledger: &std::path::Path, jids: &HashSet<String>) {
    queue.unpause().await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the jobs to run after the resume",
        async || LedgerView::read(ledger).done == *jids,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_survives_a_worker_restart() {
    let redis = TestRedis::start();
    let client = redis.client();
    let ledger = ledger_path("paused-restart");
    let queue = Queue::new(&client, FAULTS);
    let mut worker = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(Duration::from_secs(20), "the worker to fetch", async || {
        fetching_workers(&redis).await == 1
    })
    .await;
    queue.pause().await.unwrap();
    let jids = push_ledgered(&redis, (0..50).map(|_| Ledgered { millis: 0 })).await;
    tokio::time::sleep(WATCH).await;
    worker.terminate_within(Duration::from_secs(10));
    assert_eq!(fetching_workers(&redis).await, 0, "it left nothing taken");

    // A new process: its very first round already skips the queue.
    let worker = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(
        Duration::from_secs(20),
        "the new worker to start",
        async || fetching_workers(&redis).await == 1,
    )
    .await;
    tokio::time::sleep(WATCH).await;
    assert!(LedgerView::read(&ledger).runs.is_empty(), "nothing ran");
    assert_eq!(waiting(&redis, FAULTS).await, 50);
    assert!(queue.is_paused().await.unwrap());

    resume_and_wait_for(&queue, &ledger, &jids).await;
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_queues_are_all_paused_idles_without_spinning() {
    let redis = TestRedis::start();
    let client = redis.client();
    let ledger = ledger_path("paused-all");
    for name in [FAULTS, "default"] {
        Queue::new(&client, name).pause().await.unwrap();
    }
    let jids = push_ledgered(&redis, (0..5).map(|_| Ledgered { millis: 0 })).await;
    let worker = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(
        Duration::from_secs(20),
        "the worker to ask which queues are paused",
        async || redis.fetch_script_calls().await >= 1,
    )
    .await;

    // Measured over a while: fetch rounds only,
    // one per 2 s wait, and no job read or moved: no LPUSH (the fetch script's batch move ends
    // with one; its RPOPs are not counted, since the heartbeat's read of the signals list is
    // one too), LRANGE, LTRIM, LMOVE or BLMOVE at all.
    let moves = ["lpush", "lrange", "ltrim", "lmove", "blmove"];
    let rounds_before = redis.fetch_script_calls().await;
    let mut moves_before = Vec::new();
    for command in moves {
        moves_before.push(redis.calls(command).await);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rounds = redis.fetch_script_calls().await - rounds_before;
    assert!(
        (1..=5).contains(&rounds),
        "{rounds} fetch rounds in 5 s: idle, not spinning"
    );
    for (command, before) in moves.into_iter().zip(moves_before) {
        assert_eq!(redis.calls(command).await, before, "no {command}");
    }
    assert!(LedgerView::read(&ledger).runs.is_empty());

    Queue::new(&client, FAULTS).unpause().await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the jobs to run after the resume",
        async || LedgerView::read(&ledger).done == jids,
    )
    .await;
    drop(worker);
}

/// Pushes 3 jobs to `default` and 3 to `high` through `client`, pauses `high` (and
/// `paused_elsewhere` queues the worker does not take from), drains a worker of `client` on both
/// queues, and checks that only the `default` jobs ran.
async fn drain_with_high_paused(client: &jobs::Client, paused_elsewhere: usize) {
    push_low_and_high(client, 3).await;
    let elsewhere = (0..paused_elsewhere).map(|n| format!("elsewhere-{n}"));
    for queue in elsewhere.chain(["high".to_owned()]) {
        Queue::new(client, &queue).pause().await.unwrap();
    }
    let log = CallLog::default();
    tokio::time::timeout(
        Duration::from_secs(30),
        with_test_jobs(jobs::Worker::new().client(client), &log)
            .poll_interval(Duration::from_millis(100))
            .queues(["high", "default"])
            .concurrency(2)
            .drain(),
    )
    .await
    .expect("drain returns with the paused queue still full")
    .unwrap();
    let mut ran = log.entries();
    ran.sort();
    assert_eq!(ran, ["low 0", "low 1", "low 2"]);
}

#[tokio::test]
async fn drain_leaves_a_paused_queue_alone() {
    let redis = TestRedis::start();
    drain_with_high_paused(&redis.client(), 0).await;
    assert_eq!(waiting(&redis, "high").await, 3);
}

#[tokio::test]
async fn an_app_with_more_paused_queues_than_a_worker_has_still_pauses_the_workers_own() {
    // The fetch script reads a paused set no larger than the worker's queues whole, and asks
    // about each of the worker's queues in a larger one: this is the larger.
    let redis = TestRedis::start();
    drain_with_high_paused(&redis.client(), 5).await;
    assert_eq!(waiting(&redis, "high").await, 3);
}

#[tokio::test]
async fn a_namespaced_worker_leaves_its_paused_queue_alone() {
    // The fetch script finds a queue's name in `paused` by its list's key, namespace included.
    let redis = TestRedis::start();
    let client = redis.namespaced_client("shop");
    drain_with_high_paused(&client, 0).await;
    let mut raw = redis.raw().await;
    let high: usize = raw.llen("shop:queue:high").await.unwrap();
    assert_eq!(high, 3);
}

#[tokio::test]
async fn a_weighted_worker_on_many_queues_leaves_a_paused_queue_alone_and_takes_it_up_on_resume() {
    // Past 32 weighted queues a busy round may first look at some of them alone: the paused
    // queue's jobs are not taken, whichever look it is in, and the drain still ends once every
    // unpaused queue is empty (a first look that falls short is followed by a look at all).
    let redis = TestRedis::start();
    let client = redis.client();
    push_low_and_high(&client, 3).await;
    let queue_list = || {
        (0..62u32)
            .map(|n| QueueSpec::weighted(format!("q{n}"), 1))
            .chain([
                QueueSpec::weighted("high", 5),
                QueueSpec::weighted("default", 1),
            ])
    };
    Queue::new(&client, "high").pause().await.unwrap();
    let log = CallLog::default();
    let drain = |log: &CallLog| {
        tokio::time::timeout(
            Duration::from_secs(30),
            worker(&redis, log)
                .weighted_queues(queue_list())
                .concurrency(2)
                .drain(),
        )
    };
    drain(&log)
        .await
        .expect("drain returns with the paused queue still full")
        .unwrap();
    let mut ran = log.entries();
    ran.sort();
    assert_eq!(ran, ["low 0", "low 1", "low 2"]);
    assert_eq!(waiting(&redis, "high").await, 3);

    Queue::new(&client, "high").unpause().await.unwrap();
    let log = CallLog::default();
    drain(&log).await.expect("drain returns").unwrap();
    let mut ran = log.entries();
    ran.sort();
    assert_eq!(ran, ["high 0", "high 1", "high 2"]);
    assert_eq!(waiting(&redis, "high").await, 0);
}

#[tokio::test]
async fn sidekiq_reads_our_pause_and_we_read_sidekiq_pros() {
    let redis = TestRedis::start();
    let client = redis.client();
    for n in 0..3 {
        client
            .push(Payload::new("SendWelcomeEmail", vec![json!(n)]).queue("mailers"))
            .await
            .unwrap();
    }
    let mailers = Queue::new(&client, "mailers");
    assert!(!mailers.is_paused().await.unwrap());
    mailers.pause().await.unwrap();
    mailers.pause().await.unwrap();

    // What Sidekiq 8's queue summaries and Pro's `Queue#paused?` read: the `paused` set, while
    // the queue stays listed with its size (Sidekiq 6.4's API).
    let seen = ruby(
        &redis.url(),
        "paused = Sidekiq.redis { |c| c.smembers('paused') }\n\
         sizes = Sidekiq::Queue.all.map { |q| [q.name, q.size] }.to_h\n\
         Sidekiq.redis { |c| c.sadd('paused', 'reports') }\n\
         puts 'RESULT:' + JSON.generate({paused: paused, sizes: sizes})",
    );
    assert_eq!(seen["paused"], json!(["mailers"]));
    assert_eq!(seen["sizes"], json!({"mailers": 3}));

    // Paused by Sidekiq Pro (the same set): paused here too.
    let reports = Queue::new(&client, "reports");
    assert!(reports.is_paused().await.unwrap());
    assert_eq!(
        Queue::paused_names(&client).await.unwrap(),
        ["mailers", "reports"]
    );
    mailers.unpause().await.unwrap();
    assert!(!mailers.is_paused().await.unwrap());
    assert_eq!(mailers.size().await.unwrap(), 3, "pausing moved no job");
    let still = ruby(
        &redis.url(),
        "puts 'RESULT:' + JSON.generate(Sidekiq.redis { |c| c.smembers('paused') })",
    );
    assert_eq!(still, json!(["reports"]));
}

#[tokio::test]
async fn a_namespace_prefixes_the_paused_set() {
    let redis = TestRedis::start();
    let client = redis.namespaced_client("shop");
    Queue::new(&client, "mailers").pause().await.unwrap();
    let mut raw = redis.raw().await;
    let members: Vec<String> = raw.smembers("shop:paused").await.unwrap();
    assert_eq!(members, ["mailers"]);
    let bare: bool = raw.exists("paused").await.unwrap();
    assert!(!bare);
}

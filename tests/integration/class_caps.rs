//! Global caps per job class (`#[job(concurrency = n)]`): a class capped at 1 across two worker
//! processes never runs more than 1 job at once, while another class of the same queue runs
//! beside it at full speed; a `kill -9` of a holder gives the slot back within the lease
//! lifetime; clearing the cap through the admin API sends the parked jobs back at once.
//!
//! The jobs write a ledger into Redis itself (`RPUSH`, so Redis orders the events of every
//! process): `start|<class>|<jid>|<pid>` once the job runs and `end|…` before it returns, both
//! inside the time its class lease is held. The test adds `kill|<pid>` right after a `kill -9`.

use std::collections::HashSet;
use std::time::Duration;

use jobs::api::Caps;
use jobs::{JobContext, Worker, job};
use redis::AsyncCommands;

use crate::support::jobs::CallLog;
use crate::support::ledger::{self, Ledger};
use crate::support::{ChildWorker, RunningWorker, TestRedis, eventually};

/// The queue both classes share.
const QUEUE: &str = "classes";

/// The capped class.
const CAPPED: &str = "ClassCapped";

/// The uncapped class beside it.
const FREE: &str = "ClassFree";

/// The Redis list the jobs write their ledger into.
const EVENTS: &str = "class-caps-test:events";

/// Records the start, waits `millis`, records the end, in the ledger of the Redis at `url`.
async fn step(url: &str, class: &str, ctx: &JobContext, millis: u64) {
    ledger::record(url, EVENTS, class, ctx.jid().as_str(), millis).await;
}

/// The capped class: at most one of its jobs runs at once, anywhere.
#[job(queue = "classes", concurrency = 1)]
pub async fn class_capped(#[context] ctx: JobContext, url: String, millis: u64) {
    step(&url, CAPPED, &ctx, millis).await;
}

/// The uncapped class, in the same queue.
#[job(queue = "classes")]
pub async fn class_free(#[context] ctx: JobContext, url: String, millis: u64) {
    step(&url, FREE, &ctx, millis).await;
}

/// A worker of the queue `classes` given every test job but the periodic ones, the class-capped
/// ones included (`with_test_jobs` leaves those out), concurrency 5, heartbeat every second
/// expiring after 3 (so a lease lives 3 s), recovery every second.
fn class_worker(client: &jobs::Client) -> Worker {
    let jobs = jobs::registered_jobs().filter(|job| job.options().cron.is_none());
    crate::support::jobs::with_test_jobs(Worker::new().client(client), &CallLog::default())
        .registry(jobs::Registry::from_registrations(jobs).expect("distinct job names"))
        .queues([QUEUE])
        .concurrency(5)
        .heartbeat(Duration::from_secs(1), Duration::from_secs(3))
        .recovery(Duration::from_secs(1), 100)
        .timeout(Duration::from_secs(2))
}

/// The worker process the multi-process tests start ([`class_worker`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a worker process by the other tests of this module"]
async fn class_cap_child() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by the class caps tests, not directly"
    );
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let client = jobs::Client::from_env().expect("REDIS_URL");
    class_worker(&client)
        .run()
        .await
        .expect("the worker runs until stopped");
}

/// A [`class_cap_child`] process, killed (by its PID) when dropped, even on a failed assert.
fn spawn_child(redis: &TestRedis) -> ChildWorker {
    ChildWorker::spawn_entry_without_ledger("class_caps::class_cap_child", &redis.url())
}

/// What the ledger says, by class.
async fn read_ledger(redis: &TestRedis) -> Ledger {
    Ledger::read(redis, EVENTS).await
}

/// The capped class's live and expired leases, and its parked jobs.
async fn leases_and_waiting(redis: &TestRedis) -> (u64, u64) {
    let mut raw = redis.raw().await;
    let leases: u64 = raw
        .zcard(format!("jobs:lease:class:{CAPPED}"))
        .await
        .unwrap();
    let waiting: u64 = raw
        .llen(format!("jobs:waiting:class:{CAPPED}"))
        .await
        .unwrap();
    (leases, waiting)
}

/// Pushes `capped` capped jobs and `free` free ones, interleaved in one bulk push to the
/// shared queue; returns the capped jids.
async fn push(
    redis: &TestRedis,
    capped: usize,
    capped_ms: u64,
    free: usize,
    free_ms: u64,
) -> HashSet<String> {
    let client = redis.client();
    let mut jids = HashSet::new();
    for i in 0..capped.max(free) {
        if i < capped {
            let jid = client
                .perform_async(ClassCapped {
                    url: redis.url(),
                    millis: capped_ms,
                })
                .await
                .unwrap();
            jids.insert(jid.to_string());
        }
        if i < free {
            client
                .perform_async(ClassFree {
                    url: redis.url(),
                    millis: free_ms,
                })
                .await
                .unwrap();
        }
    }
    jids
}

/// Waits until the workers have written the class's cap.
async fn capped_by_workers(redis: &TestRedis) {
    let caps = Caps::new(&redis.client());
    eventually(
        Duration::from_secs(30),
        "the workers cap the class",
        async || caps.get_class(CAPPED).await.unwrap().is_some(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_capped_at_1_across_2_processes_runs_one_at_a_time_beside_a_free_class() {
    let redis = TestRedis::start();
    let workers: Vec<ChildWorker> = (0..2).map(|_| spawn_child(&redis)).collect();
    capped_by_workers(&redis).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let capped = push(&redis, 8, 300, 40, 150).await;
    eventually(Duration::from_secs(60), "every job done", async || {
        let ledger = read_ledger(&redis).await;
        ledger.done(CAPPED).len() == 8 && ledger.done(FREE).len() == 40
    })
    .await;
    let ledger = read_ledger(&redis).await;
    println!("{ledger:?}");
    assert_eq!(
        ledger.peak[CAPPED], 1,
        "the class cap holds, and is reached"
    );
    assert!(ledger.peak[FREE] > 1, "the free class runs many at once");
    assert!(
        ledger.last_end[FREE] < ledger.last_start[CAPPED],
        "the free class finished while capped jobs still waited: not held up behind them"
    );
    assert_eq!(ledger.done(CAPPED), capped);
    for (class, ends) in &ledger.ends {
        for (jid, count) in ends {
            assert_eq!(*count, 1, "{class} {jid} ran exactly once");
        }
    }
    eventually(
        Duration::from_secs(10),
        "no lease nor parked job left",
        async || leases_and_waiting(&redis).await == (0, 0),
    )
    .await;
    let mut raw = redis.raw().await;
    let scheduled: u64 = raw.zcard("schedule").await.unwrap();
    let retries: u64 = raw.zcard("retry").await.unwrap();
    assert_eq!(
        (scheduled, retries),
        (0, 0),
        "none rescheduled, no retry used"
    );
    let queued: u64 = raw.llen(format!("queue:{QUEUE}")).await.unwrap();
    assert_eq!(queued, 0);
    drop(workers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_of_the_holder_gives_the_class_slot_back_within_the_lease_lifetime() {
    let redis = TestRedis::start();
    let mut workers: Vec<ChildWorker> = (0..2).map(|_| spawn_child(&redis)).collect();
    capped_by_workers(&redis).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let jids = push(&redis, 6, 1_500, 0, 0).await;
    let mut victim = None;
    eventually(Duration::from_secs(20), "a capped job runs", async || {
        let ledger = read_ledger(&redis).await;
        victim = ledger.worker_of(CAPPED, &workers);
        victim.is_some()
    })
    .await;
    // Some jobs are parked behind the running one by now.
    eventually(Duration::from_secs(10), "jobs parked", async || {
        leases_and_waiting(&redis).await.1 > 0
    })
    .await;
    let killed_at = ledger::kill9(&redis, EVENTS, &mut workers[victim.unwrap()]).await;
    eventually(
        Duration::from_secs(20),
        "a capped job starts after the kill",
        async || {
            read_ledger(&redis)
                .await
                .first_start_after_kill
                .contains_key(CAPPED)
        },
    )
    .await;
    let back_after = killed_at.elapsed();
    eventually(Duration::from_secs(60), "every job done", async || {
        read_ledger(&redis).await.done(CAPPED).is_superset(&jids)
    })
    .await;
    let ledger = read_ledger(&redis).await;
    println!("slot back {back_after:?} after the kill; {ledger:?}");
    assert_eq!(ledger.peak[CAPPED], 1, "never over the cap, kill included");
    // The lease lifetime is the heartbeat TTL (3 s), the survivor's heartbeat brings parked jobs
    // back every second; the rest is slack for a loaded machine.
    assert!(back_after < Duration::from_secs(20), "{back_after:?}");
    eventually(
        Duration::from_secs(10),
        "no lease nor parked job left",
        async || leases_and_waiting(&redis).await == (0, 0),
    )
    .await;
    drop(workers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_a_class_cap_sends_its_parked_jobs_back_at_once() {
    let redis = TestRedis::start();
    let running = RunningWorker::start(class_worker(&redis.client()));
    capped_by_workers(&redis).await;
    // One long job holds the slot; the others park behind it.
    let long = push(&redis, 1, 6_000, 0, 0).await;
    eventually(Duration::from_secs(10), "the long job runs", async || {
        read_ledger(&redis).await.peak.contains_key(CAPPED)
    })
    .await;
    let parked = push(&redis, 3, 50, 0, 0).await;
    eventually(Duration::from_secs(10), "3 jobs parked", async || {
        leases_and_waiting(&redis).await == (1, 3)
    })
    .await;
    let caps = Caps::new(&redis.client());
    let info = caps.get_class(CAPPED).await.unwrap().unwrap();
    assert_eq!((info.cap, info.in_use, info.waiting), (1, 1, 3));
    assert_eq!(caps.list_classes().await.unwrap(), [info]);
    assert_eq!(caps.clear_class(CAPPED).await.unwrap(), Some(3));
    assert_eq!(
        leases_and_waiting(&redis).await.1,
        0,
        "none parked any more"
    );
    assert_eq!(caps.get_class(CAPPED).await.unwrap(), None);
    eventually(Duration::from_secs(10), "the parked jobs ran", async || {
        read_ledger(&redis).await.done(CAPPED).is_superset(&parked)
    })
    .await;
    assert!(
        !read_ledger(&redis).await.done(CAPPED).is_superset(&long),
        "they ran beside the long job, not after it"
    );
    assert_eq!(caps.clear_class(CAPPED).await.unwrap(), None);
    running.stop(Duration::from_secs(15)).await;
}

#[tokio::test]
async fn the_queues_page_sets_and_clears_a_class_cap() {
    use axum::http::StatusCode;

    use crate::web_http::{app, get, post, post_with};

    let redis = TestRedis::start();
    let client = redis.client();
    let app = app(&client);
    let caps = Caps::new(&client);
    let page = get(&app, "/jobs/queues").await;
    assert!(page.body.contains("Class caps"), "{}", page.body);
    assert!(page.body.contains("No job class is capped."));

    // A POST from elsewhere caps nothing (the page's CSRF protection).
    let fields = [("class", "ImportJob"), ("cap", "2"), ("action", "cap")];
    let cross = post_with(
        &app,
        "/jobs/class_caps",
        &fields,
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert!(caps.get_class("ImportJob").await.unwrap().is_none());

    let set = post(&app, "/jobs/class_caps", &fields).await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert_eq!(caps.get_class("ImportJob").await.unwrap().unwrap().cap, 2);
    let page = get(&app, "/jobs/queues").await;
    assert!(
        page.body.contains(r#"data-class="ImportJob""#),
        "{}",
        page.body
    );
    assert!(page.body.contains("0 / 2"), "{}", page.body);

    let zero = [("class", "ImportJob"), ("cap", "0"), ("action", "cap")];
    let refused = post(&app, "/jobs/class_caps", &zero).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(caps.get_class("ImportJob").await.unwrap().unwrap().cap, 2);

    // A parked job goes back to its queue when the cap is cleared.
    let mut raw = redis.raw().await;
    let parked = r#"{"class":"ImportJob","args":[],"queue":"imports","jid":"abc"}"#;
    let _: () = raw
        .lpush("jobs:waiting:class:ImportJob", parked)
        .await
        .unwrap();
    let uncap = [("class", "ImportJob"), ("action", "uncap")];
    let cleared = post(&app, "/jobs/class_caps", &uncap).await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER, "{}", cleared.body);
    assert!(caps.get_class("ImportJob").await.unwrap().is_none());
    let queued: Vec<String> = raw.lrange("queue:imports", 0, -1).await.unwrap();
    assert_eq!(queued, [parked], "back in its queue, byte for byte");
}

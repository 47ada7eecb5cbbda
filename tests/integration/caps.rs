//! Global caps on queues: a queue capped at 2 across three worker processes never runs more
//! than 2 of its jobs at once while an uncapped queue beside it runs at full speed; a `kill -9`
//! gives its slots back within the lease lifetime; every way a job is settled releases its lease;
//! the admin API and the dashboard's form set and clear a cap.
//!
//! The jobs write a ledger into Redis itself (`RPUSH`, so Redis orders the events of every
//! process): `start|<queue>|<jid>|<pid>` once the job runs and `end|…` before it returns, both
//! inside the time its lease is held. The test adds `kill|<pid>` right after a `kill -9`.

use std::collections::HashSet;
use std::time::Duration;

use jobs::api::Caps;
use jobs::worker::QueueSpec;
use jobs::{JobContext, JobError, Limiter, Worker, job};
use redis::AsyncCommands;

use crate::limits::TakeBusy;
use crate::support::jobs::{CallLog, Explode, highs, push_high_then_low};
use crate::support::ledger::{self, Ledger};
use crate::support::{ChildWorker, RunningWorker, TestRedis, eventually};

/// The capped queue.
const CAPPED: &str = "capped";

/// The uncapped queue beside it.
const FREE: &str = "free";

/// The Redis list the jobs write their ledger into.
const EVENTS: &str = "caps-test:events";

/// Records the start, waits `millis`, records the end, in the ledger of the Redis at `url`.
async fn step(url: &str, ctx: &JobContext, millis: u64) {
    ledger::record(url, EVENTS, ctx.queue(), ctx.jid().as_str(), millis).await;
}

/// A job of the capped queue.
#[job(queue = "capped")]
pub async fn capped_step(#[context] ctx: JobContext, url: String, millis: u64) {
    step(&url, &ctx, millis).await;
}

/// A job of the uncapped queue.
#[job(queue = "free")]
pub async fn free_step(#[context] ctx: JobContext, url: String, millis: u64) {
    step(&url, &ctx, millis).await;
}

/// A job of the capped queue that fails once it has recorded its run (`retry = false`: it is
/// dropped, the acknowledgement path of a failure).
#[job(queue = "capped", retry = false)]
pub async fn capped_dropped(#[context] ctx: JobContext, url: String) -> Result<(), JobError> {
    step(&url, &ctx, 10).await;
    Err(JobError::msg("dropped on purpose"))
}

/// The worker process the multi-process tests start: queues `capped` (capped at 2 through the
/// builder, as every process of a deployment would say) and `free`, concurrency 5, heartbeat
/// every second expiring after 3 (so a lease lives 3 s), recovery every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a worker process by the other tests of this module"]
async fn cap_child() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by the caps tests, not directly"
    );
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let client = jobs::Client::from_env().expect("REDIS_URL");
    crate::support::jobs::with_test_jobs(Worker::new().client(&client), &CallLog::default())
        .queues([CAPPED, FREE])
        .cap_queue(CAPPED, 2)
        .concurrency(5)
        .heartbeat(Duration::from_secs(1), Duration::from_secs(3))
        .recovery(Duration::from_secs(1), 100)
        .timeout(Duration::from_secs(2))
        .run()
        .await
        .expect("the worker runs until stopped");
}

/// A [`cap_child`] process, killed (by its pid) when dropped, even on a failed assert.
fn spawn_child(redis: &TestRedis) -> ChildWorker {
    ChildWorker::spawn_entry_without_ledger("caps::cap_child", &redis.url())
}

/// Starts `count` [`cap_child`] processes, and waits until they have capped the queue and
/// had half a second more to settle in.
async fn start_children(redis: &TestRedis, count: usize) -> Vec<ChildWorker> {
    let workers: Vec<ChildWorker> = (0..count).map(|_| spawn_child(redis)).collect();
    let caps = Caps::new(&redis.client());
    eventually(
        Duration::from_secs(20),
        "the workers cap the queue",
        async || caps.get(CAPPED).await.unwrap().is_some(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    workers
}

/// What the ledger says, by queue.
async fn read_ledger(redis: &TestRedis) -> Ledger {
    Ledger::read(redis, EVENTS).await
}

async fn leases_held(redis: &TestRedis) -> u64 {
    let mut raw = redis.raw().await;
    raw.zcard(format!("jobs:lease:queue:{CAPPED}"))
        .await
        .unwrap()
}

async fn push_steps(redis: &TestRedis, capped: usize, free: usize, millis: u64) {
    let client = redis.client();
    client
        .perform_bulk((0..capped).map(|_| CappedStep {
            url: redis.url(),
            millis,
        }))
        .await
        .unwrap();
    client
        .perform_bulk((0..free).map(|_| FreeStep {
            url: redis.url(),
            millis: millis / 2,
        }))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_capped_at_2_across_3_processes_never_runs_more_than_2() {
    let redis = TestRedis::start();
    // The processes start first, so that none takes the whole queue alone.
    let workers = start_children(&redis, 3).await;
    push_steps(&redis, 12, 40, 400).await;
    eventually(Duration::from_secs(60), "every job done", async || {
        let ledger = read_ledger(&redis).await;
        ledger.done(CAPPED).len() == 12 && ledger.done(FREE).len() == 40
    })
    .await;
    let ledger = read_ledger(&redis).await;
    drop(workers);
    println!("{ledger:?}");
    assert_eq!(ledger.peak[CAPPED], 2, "the cap holds, and is reached");
    assert!(
        ledger.peak[FREE] > 2,
        "the uncapped queue runs at full speed"
    );
    assert!(
        ledger.last_end[FREE] < ledger.last_start[CAPPED],
        "the uncapped queue finished while capped jobs still waited"
    );
    // Which processes ran the capped jobs is left to timing: a process that releases a lease
    // looks for room at once, so one process may run them all, and the cap holds either way.
    println!(
        "capped jobs per process: {:?}",
        ledger.starts_in.get(CAPPED)
    );
    assert_eq!(leases_held(&redis).await, 0, "no lease outlives its job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_gives_the_slots_back_within_the_lease_lifetime() {
    let redis = TestRedis::start();
    let mut workers = start_children(&redis, 2).await;
    let client = redis.client();
    let jids: HashSet<String> = client
        .perform_bulk((0..10).map(|_| CappedStep {
            url: redis.url(),
            millis: 1_500,
        }))
        .await
        .unwrap()
        .into_iter()
        .map(|jid| jid.to_string())
        .collect();
    // Kill the process running capped jobs, as soon as one runs.
    let mut victim = None;
    eventually(Duration::from_secs(20), "a capped job runs", async || {
        let ledger = read_ledger(&redis).await;
        victim = ledger.worker_of(CAPPED, &workers);
        victim.is_some()
    })
    .await;
    let killed_at = ledger::kill9(&redis, EVENTS, &mut workers[victim.unwrap()]).await;
    // The survivor runs 2 at once again once the dead process's leases are gone.
    eventually(
        Duration::from_secs(20),
        "2 capped jobs run after the kill",
        async || read_ledger(&redis).await.peak_after_kill.get(CAPPED) == Some(&2),
    )
    .await;
    let back_after = killed_at.elapsed();
    eventually(Duration::from_secs(60), "every job done", async || {
        read_ledger(&redis).await.done(CAPPED).is_superset(&jids)
    })
    .await;
    let ledger = read_ledger(&redis).await;
    drop(workers);
    println!("slots back {back_after:?} after the kill; {ledger:?}");
    assert_eq!(ledger.peak[CAPPED], 2, "never over the cap, kill included");
    // The lease lifetime is the heartbeat TTL (3 s); a job ends within 1.5 s, a fetch round
    // sees the room within 1 s; the rest is slack for a loaded machine.
    assert!(back_after < Duration::from_secs(10), "{back_after:?}");
    eventually(Duration::from_secs(10), "no lease left", async || {
        leases_held(&redis).await == 0
    })
    .await;
}

/// An in-process worker taking the capped queue (capped at 1), with a 1-second shutdown
/// timeout.
fn capped_worker(redis: &TestRedis) -> Worker {
    crate::support::jobs::worker(redis, &CallLog::default())
        .queues([CAPPED])
        .cap_queue(CAPPED, 1)
        .timeout(Duration::from_secs(1))
}

/// How many jobs wait in every working list (the worker's own: its identity is not known here).
async fn working_len(redis: &TestRedis) -> usize {
    let mut raw = redis.raw().await;
    let lists: Vec<String> = raw.keys("jobs:working:*").await.unwrap();
    let mut total = 0;
    for list in lists {
        let len: usize = raw.llen(list).await.unwrap();
        total += len;
    }
    total
}

/// Waits until `settled` says the job just pushed was settled and the working list is empty,
/// then checks at once, with leases living a minute, that no lease is left.
async fn settled_without_lease(
    redis: &TestRedis,
    what: &str,
    mut settled: impl AsyncFnMut() -> bool,
) {
    eventually(Duration::from_secs(20), what, async || {
        settled().await && working_len(redis).await == 0
    })
    .await;
    assert_eq!(
        leases_held(redis).await,
        0,
        "{what}: its lease was released with it"
    );
}

/// [`settled_without_lease`], the job settled once the sorted set `set` holds `count` entries.
async fn settled_into(redis: &TestRedis, what: &str, set: &str, count: u64) {
    let raw = redis.raw().await;
    settled_without_lease(redis, what, async || {
        raw.clone().zcard::<_, u64>(set).await.unwrap() == count
    })
    .await;
}

/// A job of the capped queue as a Ruby client would push it, with `extra` fields.
fn capped_json(redis: &TestRedis, jid: &str, millis: u64, extra: serde_json::Value) -> String {
    let mut job = serde_json::json!({
        "class": "CappedStep", "args": [redis.url(), millis], "queue": CAPPED,
        "jid": jid, "created_at": 1.7e9, "enqueued_at": 1.7e9,
    });
    if let (Some(job), Some(extra)) = (job.as_object_mut(), extra.as_object()) {
        job.extend(extra.clone());
    }
    job.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_a_job_is_settled_releases_its_lease() {
    let redis = TestRedis::start();
    let client = redis.client();
    let mut raw = redis.raw().await;
    // The test holds the limiter `busy`, so `TakeBusyCapped` is over its limit: rescheduled.
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let (taken, is_taken) = tokio::sync::oneshot::channel::<()>();
    let holder_client = client.clone();
    let holder = tokio::spawn(async move {
        Limiter::concurrent("busy", 1)
            .client(&holder_client)
            .within_limit(|| async move {
                taken.send(()).unwrap();
                let _ = held.await;
            })
            .await
    });
    is_taken.await.unwrap();

    // Leases live a minute: no fetch round drops a leaked one before it is seen.
    let worker = capped_worker(&redis).heartbeat(Duration::from_secs(1), Duration::from_secs(60));
    let running = RunningWorker::start(worker);
    let done = async || read_ledger(&redis).await.done(CAPPED).len();
    // Success (the batched acknowledgement).
    client
        .perform_async(CappedStep {
            url: redis.url(),
            millis: 10,
        })
        .await
        .unwrap();
    settled_without_lease(&redis, "a success", async || done().await == 1).await;
    // A failure dropped (acknowledged).
    client
        .perform_async(CappedDropped { url: redis.url() })
        .await
        .unwrap();
    settled_without_lease(&redis, "a failure dropped", async || done().await == 2).await;
    // A retry, then a death (no retry allowed): each lands in its sorted set.
    for (what, message, retry, set) in [
        ("a retry", "retry me", None, "retry"),
        ("a death", "bury me", Some(0_u32), "dead"),
    ] {
        let mut setter = Explode::set().client(&client).queue(CAPPED);
        if let Some(retry) = retry {
            setter = setter.retry(retry);
        }
        setter
            .perform_async(Explode {
                message: message.to_owned(),
            })
            .await
            .unwrap();
        settled_into(&redis, what, set, 1).await;
    }
    // An over-limit reschedule.
    TakeBusy::set()
        .client(&client)
        .queue(CAPPED)
        .perform_async(TakeBusy {
            redis_url: redis.url(),
        })
        .await
        .unwrap();
    settled_into(&redis, "a reschedule", "schedule", 1).await;
    // An entry that is no job (buried as an invalid payload).
    let _: () = raw
        .lpush(format!("queue:{CAPPED}"), "not a job {")
        .await
        .unwrap();
    settled_into(&redis, "an invalid payload", "dead", 2).await;
    // A job expired before it ran (dropped unrun).
    let expired = capped_json(
        &redis,
        "expired0123456789abcdef0",
        10,
        serde_json::json!({ "jobs_expires_at": 1.0 }),
    );
    let _: () = raw
        .lpush(format!("queue:{CAPPED}"), &expired)
        .await
        .unwrap();
    settled_without_lease(&redis, "an expired job", async || {
        raw.clone()
            .llen::<_, u64>(format!("queue:{CAPPED}"))
            .await
            .unwrap()
            == 0
    })
    .await;
    assert_eq!(done().await, 2, "the expired job did not run");

    // A job cut short by shutdown goes back to its queue, and gives its lease back.
    client
        .perform_async(CappedStep {
            url: redis.url(),
            millis: 30_000,
        })
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the long job runs", async || {
        read_ledger(&redis).await.last_start.contains_key(CAPPED) && leases_held(&redis).await == 1
    })
    .await;
    running.stop(Duration::from_secs(15)).await;
    let queued: u64 = raw.llen(format!("queue:{CAPPED}")).await.unwrap();
    assert_eq!(queued, 1, "handed back to its queue");
    assert_eq!(leases_held(&redis).await, 0, "and its lease released");
    let _ = release.send(());
    let _ = holder.await;
}

/// The live leases of the capped queue, by Redis's clock.
async fn live_leases(redis: &TestRedis) -> u64 {
    let mut raw = redis.raw().await;
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
    let now_ms = seconds * 1000 + micros / 1000;
    raw.zcount(
        format!("jobs:lease:queue:{CAPPED}"),
        format!("({now_ms}"),
        "+inf",
    )
    .await
    .unwrap()
}

/// How many clients of the Redis wait in a `BLMOVE` (a worker's idle wait, one per queue).
async fn blmoves_waiting(redis: &TestRedis) -> usize {
    let mut raw = redis.raw().await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();
    clients.matches("cmd=blmove").count()
}

/// A lease of the capped queue held by a job of another (fake) process.
const ELSEWHERE: &str = "elsewhere|1";

/// When a lease that lives 10 minutes from now expires (Redis's lease scores, in ms).
fn far_lease() -> i64 {
    crate::support::now() as i64 * 1000 + 600_000
}

/// How many capped jobs sit in the working lists (running or waiting for a slot).
async fn capped_in_working_lists(redis: &TestRedis) -> usize {
    let mut raw = redis.raw().await;
    let lists: Vec<String> = raw.keys("jobs:working:*").await.unwrap();
    let mut count = 0;
    for list in lists {
        let jobs: Vec<String> = raw.lrange(list, 0, -1).await.unwrap();
        count += jobs.iter().filter(|job| job.contains("CappedStep")).count();
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_job_brought_while_every_slot_is_taken_never_waits_with_a_lapsed_lease() {
    let redis = TestRedis::start();
    // Concurrency 2, leases living 2 s.
    let worker = crate::support::jobs::worker(&redis, &CallLog::default())
        .queues([CAPPED, FREE])
        .concurrency(2)
        .cap_queue(CAPPED, 1)
        .heartbeat(Duration::from_secs(1), Duration::from_secs(2));
    let running = RunningWorker::start(worker);
    let client = redis.client();
    client
        .perform_async(FreeStep {
            url: redis.url(),
            millis: 8_000,
        })
        .await
        .unwrap();
    // One long job runs; the idle wait has a `BLMOVE` on each queue.
    eventually(
        Duration::from_secs(10),
        "a BLMOVE on each queue",
        async || {
            read_ledger(&redis).await.last_start.contains_key(FREE)
                && blmoves_waiting(&redis).await == 2
        },
    )
    .await;
    // At once: a free job, which takes the last slot, and a capped one, which the other
    // `BLMOVE` brings and `cap_claim` gives a lease (its reply comes a round trip later).
    let free = serde_json::json!({
        "class": "FreeStep", "args": [redis.url(), 8_000], "queue": FREE,
        "jid": "free0123456789abcdef0123", "created_at": 1.7e9, "enqueued_at": 1.7e9,
    })
    .to_string();
    let capped = capped_json(
        &redis,
        "capped0123456789abcdef01",
        10,
        serde_json::json!({}),
    );
    let mut raw = redis.raw().await;
    let _: () = redis::pipe()
        .atomic()
        .lpush(format!("queue:{FREE}"), &free)
        .lpush(format!("queue:{CAPPED}"), &capped)
        .query_async(&mut raw)
        .await
        .unwrap();
    // Past the lease lifetime, the two free jobs still running: a capped job waiting in the
    // working list holds a live lease (renewed), or it went back to its queue.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(read_ledger(&redis).await.peak.get(FREE), Some(&2));
    let waiting = capped_in_working_lists(&redis).await;
    assert_eq!(
        live_leases(&redis).await,
        waiting as u64,
        "every capped job waiting for a slot holds a live lease"
    );
    eventually(Duration::from_secs(20), "the capped job runs", async || {
        !read_ledger(&redis).await.done(CAPPED).is_empty()
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(read_ledger(&redis).await.peak[CAPPED], 1);
    assert_eq!(leases_held(&redis).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_one_crash_from_the_dead_set_runs_alone_holding_a_lease() {
    let redis = TestRedis::start();
    let worker = capped_worker(&redis)
        .concurrency(2)
        .heartbeat(Duration::from_secs(1), Duration::from_secs(60));
    let running = RunningWorker::start(worker);
    let suspect = capped_json(
        &redis,
        "suspect0123456789abcdef0",
        3_000,
        serde_json::json!({ "jobs_recoveries": 3 }),
    );
    let mut raw = redis.raw().await;
    let _: () = raw
        .lpush(format!("queue:{CAPPED}"), &suspect)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the suspect runs", async || {
        read_ledger(&redis).await.last_start.contains_key(CAPPED)
    })
    .await;
    assert_eq!(
        leases_held(&redis).await,
        1,
        "it holds a lease while it runs"
    );
    eventually(Duration::from_secs(10), "the suspect ends", async || {
        !read_ledger(&redis).await.done(CAPPED).is_empty()
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(leases_held(&redis).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_when_an_empty_capped_queue_has_no_room() {
    let redis = TestRedis::start();
    let caps = Caps::new(&redis.client());
    caps.set(CAPPED, 1).await.unwrap();
    let mut raw = redis.raw().await;
    let _: () = raw
        .zadd(format!("jobs:lease:queue:{CAPPED}"), ELSEWHERE, far_lease())
        .await
        .unwrap();
    // The cap is full, held elsewhere, and no job of the queue waits: nothing to drain.
    let worker = crate::support::jobs::worker(&redis, &CallLog::default()).queues([CAPPED]);
    tokio::time::timeout(Duration::from_secs(10), worker.drain())
        .await
        .expect("the drain ends")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cap_leaves_jobs_in_their_queue_and_clearing_it_lets_them_flow() {
    let redis = TestRedis::start();
    let client = redis.client();
    let caps = Caps::new(&client);
    // Cap 1, held by a job of another (fake) process: the worker takes nothing.
    caps.set(CAPPED, 1).await.unwrap();
    let mut raw = redis.raw().await;
    let _: () = raw
        .zadd(format!("jobs:lease:queue:{CAPPED}"), ELSEWHERE, far_lease())
        .await
        .unwrap();
    let worker = crate::support::jobs::worker(&redis, &CallLog::default()).queues([CAPPED]);
    let running = RunningWorker::start(worker);
    client
        .perform_bulk((0..3).map(|_| CappedStep {
            url: redis.url(),
            millis: 10,
        }))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let queued: u64 = raw.llen(format!("queue:{CAPPED}")).await.unwrap();
    assert_eq!(queued, 3, "the jobs wait in their queue, in order");
    let scheduled: u64 = raw.zcard("schedule").await.unwrap();
    assert_eq!(scheduled, 0, "never rescheduled");
    let info = caps.get(CAPPED).await.unwrap().unwrap();
    assert_eq!((info.cap, info.in_use), (1, 1));
    // Cleared: the queue flows at once (within a fetch round).
    assert!(caps.clear(CAPPED).await.unwrap());
    assert!(caps.get(CAPPED).await.unwrap().is_none());
    eventually(Duration::from_secs(5), "the jobs run", async || {
        read_ledger(&redis).await.done(CAPPED).len() == 3
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    // A cap of 0 is refused, and says why.
    let refused = caps.set(CAPPED, 0).await.unwrap_err().to_string();
    assert!(refused.contains("pause"), "{refused}");
}

#[tokio::test]
async fn a_cap_set_while_a_worker_runs_holds_from_its_next_round() {
    let redis = TestRedis::start();
    let caps = Caps::new(&redis.client());
    let worker = crate::support::jobs::worker(&redis, &CallLog::default())
        .queues([CAPPED, FREE])
        .concurrency(5);
    let running = RunningWorker::start(worker);
    // Uncapped, the worker's rounds run the queue's jobs side by side.
    push_steps(&redis, 5, 0, 300).await;
    eventually(
        Duration::from_secs(10),
        "the uncapped jobs run",
        async || read_ledger(&redis).await.done(CAPPED).len() == 5,
    )
    .await;
    let uncapped = read_ledger(&redis).await;
    let mut raw = redis.raw().await;
    let _: () = raw.del(EVENTS).await.unwrap();
    // Caps on two other queues too: the app has more capped queues than the worker has queues.
    caps.set("elsewhere-1", 3).await.unwrap();
    caps.set(CAPPED, 1).await.unwrap();
    caps.set("elsewhere-2", 3).await.unwrap();
    push_steps(&redis, 4, 10, 200).await;
    eventually(
        Duration::from_secs(20),
        "every capped job done",
        async || {
            let ledger = read_ledger(&redis).await;
            ledger.done(CAPPED).len() == 4 && ledger.done(FREE).len() == 10
        },
    )
    .await;
    let capped = read_ledger(&redis).await;
    running.stop(Duration::from_secs(10)).await;
    assert!(uncapped.peak[CAPPED] > 1, "{uncapped:?}");
    assert_eq!(capped.peak[CAPPED], 1, "{capped:?}");
    assert!(capped.peak[FREE] > 1, "{capped:?}");
    assert_eq!(leases_held(&redis).await, 0, "no lease outlives its job");
}

#[tokio::test]
async fn the_queues_page_sets_and_clears_a_cap() {
    use axum::http::StatusCode;

    use crate::web_http::{app, get, post, post_with};

    let redis = TestRedis::start();
    let client = redis.client();
    client
        .perform_async(CappedStep {
            url: redis.url(),
            millis: 1,
        })
        .await
        .unwrap();
    let app = app(&client);
    let caps = Caps::new(&client);
    let page = get(&app, "/jobs/queues").await;
    assert!(
        page.body.contains(r#"action="/jobs/queues/capped/cap""#),
        "{}",
        page.body
    );

    // A POST from elsewhere caps nothing (the page's CSRF protection).
    let cross = post_with(
        &app,
        "/jobs/queues/capped/cap",
        &[("cap", "3")],
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert!(caps.get(CAPPED).await.unwrap().is_none());

    let set = post(&app, "/jobs/queues/capped/cap", &[("cap", "3")]).await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert_eq!(caps.get(CAPPED).await.unwrap().unwrap().cap, 3);
    let page = get(&app, "/jobs/queues").await;
    assert!(page.body.contains("0 / 3"), "{}", page.body);
    assert!(page.body.contains(r#"action="/jobs/queues/capped/uncap""#));

    let refused = post(&app, "/jobs/queues/capped/cap", &[("cap", "0")]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("pause"), "{}", refused.body);
    assert_eq!(caps.get(CAPPED).await.unwrap().unwrap().cap, 3);

    let cleared = post(&app, "/jobs/queues/capped/uncap", &[]).await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER, "{}", cleared.body);
    assert!(caps.get(CAPPED).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_an_idle_wait_brings_to_a_full_cap_goes_back_to_the_front_of_its_queue() {
    let redis = TestRedis::start();
    let client = redis.client();
    let caps = Caps::new(&client);
    caps.set(CAPPED, 1).await.unwrap();
    let worker = crate::support::jobs::worker(&redis, &CallLog::default()).queues([CAPPED]);
    let running = RunningWorker::start(worker);
    // Idle, with room: the worker waits in `BLMOVE` on the capped queue.
    eventually(
        Duration::from_secs(10),
        "the worker waits in BLMOVE",
        async || blmoves_waiting(&redis).await > 0,
    )
    .await;
    // In one transaction, another process takes the one slot and a job arrives: the `BLMOVE`
    // is served after it, when the cap is already full.
    let job = serde_json::json!({
        "class": "CappedStep", "args": [redis.url(), 10], "queue": CAPPED,
        "jid": "0123456789abcdef01234567", "created_at": 1.7e9, "enqueued_at": 1.7e9,
    })
    .to_string();
    let mut raw = redis.raw().await;
    let _: () = redis::pipe()
        .atomic()
        .zadd(format!("jobs:lease:queue:{CAPPED}"), ELSEWHERE, far_lease())
        .lpush(format!("queue:{CAPPED}"), &job)
        .query_async(&mut raw)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queued: Vec<String> = raw.lrange(format!("queue:{CAPPED}"), 0, -1).await.unwrap();
    assert_eq!(queued, [job], "handed back, unchanged");
    assert!(read_ledger(&redis).await.last_start.is_empty(), "not run");
    let leases: Vec<String> = raw
        .zrange(format!("jobs:lease:queue:{CAPPED}"), 0, -1)
        .await
        .unwrap();
    assert_eq!(leases, [ELSEWHERE]);
    // The slot comes back: the job runs, within a fetch round.
    let _: () = raw
        .zrem(format!("jobs:lease:queue:{CAPPED}"), ELSEWHERE)
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the job runs", async || {
        !read_ledger(&redis).await.done(CAPPED).is_empty()
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(leases_held(&redis).await, 0);
}

/// Drains 300 jobs of the queue `high`, capped at 1,000 (a cap a worker of concurrency 10 never
/// reaches), and 300 of `default`, with a worker of concurrency 10 taking them in the order
/// `order` gives it; the labels of the jobs in the order they ran.
async fn ran_beside_a_capped_queue(order: impl FnOnce(Worker) -> Worker) -> Vec<String> {
    let redis = TestRedis::start();
    push_high_then_low(&redis.client(), 300).await;
    let log = CallLog::default();
    order(crate::support::jobs::worker(&redis, &log))
        // Capped, but with room for more than every slot and every lease not yet released.
        .cap_queue("high", 1_000)
        .concurrency(10)
        .drain()
        .await
        .unwrap();
    let ran = log.entries();
    assert_eq!(ran.len(), 600);
    ran
}

#[tokio::test]
async fn a_capped_queue_keeps_its_weight_on_a_busy_weighted_worker() {
    // A round taken ahead of the free slots takes no capped queue's job (it would wait to start
    // holding a lease), so a weighted worker that took ahead would run the capped queue's jobs
    // only when nothing was pending: next to nothing on a busy worker. Weights 1 and 1: about
    // half the jobs come from each, after the first round's 10 (drawn before the worker knows
    // of the cap).
    let ran = ran_beside_a_capped_queue(|worker| {
        worker.weighted_queues([
            QueueSpec::weighted("high", 1),
            QueueSpec::weighted("default", 1),
        ])
    })
    .await;
    let capped_first = highs(&ran[10..310]);
    // 150 expected; 110..=190 is more than four standard deviations either way.
    assert!(
        (110..=190).contains(&capped_first),
        "{capped_first} of the 300 after the first 10 were the capped queue's"
    );
}

#[tokio::test]
async fn a_capped_queue_first_in_strict_order_is_not_passed_over_by_jobs_taken_ahead() {
    // Strict order: the capped queue's jobs come first while it has room. Jobs taken ahead
    // never include a capped queue's, so a worker taking ahead filled its slots with the next
    // queue's jobs instead (10 of the first 300 were the capped queue's). Nor does the first
    // round take ahead once it finds the cap (it took 30 of the other queue's jobs ahead, and
    // 270 of the first 300 were the capped queue's): all 300 are.
    let ran = ran_beside_a_capped_queue(|worker| worker.queues(["high", "default"])).await;
    let capped_first = highs(&ran[..300]);
    assert_eq!(
        capped_first, 300,
        "{capped_first} of the first 300 were the capped queue's"
    );
}

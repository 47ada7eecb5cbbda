//! Limiters against a real Redis and real worker processes: the most holders at once, the calls
//! a bucket lets through, slots freed after `kill -9`, over-limit jobs rescheduled (byte for
//! byte), the admin API and the Limits page, and limiters in fake mode.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jobs::limit::{Per, Reschedule};
use jobs::{JobContext, JobError, Limiter, job};
use redis::AsyncCommands;

use crate::support::jobs::{CallLog, Ledger, worker};
use crate::support::{
    ChildWorker, RunningWorker, TestRedis, counter, eventually, ledger_path, sorted_set,
};
use crate::web_http::{app, get, post};

/// Milliseconds since the epoch, by this machine's clock (the one Redis reads too).
fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Appends `line` to the ledger, in a single write.
fn ledger_line(ledger: &Ledger, line: &str) {
    if let Some(path) = &ledger.0 {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open the ledger");
        file.write_all(format!("{line}\n").as_bytes())
            .expect("write the ledger");
    }
}

/// Holds a slot of `concurrent("stripe", 3)` for `millis`; writes `hold <jid> <start> <end>`
/// (ms) once done.
#[job]
pub async fn hold_stripe(
    #[context] ctx: JobContext,
    #[state] ledger: Ledger,
    millis: u64,
) -> Result<(), JobError> {
    let stripe = Limiter::concurrent("stripe", 3)
        .lock_timeout(Duration::from_secs(30))
        .wait_timeout(Duration::from_secs(60));
    let (start, end) = stripe
        .within_limit(|| async {
            let start = epoch_ms();
            tokio::time::sleep(Duration::from_millis(millis)).await;
            (start, epoch_ms())
        })
        .await?;
    ledger_line(&ledger, &format!("hold {} {start} {end}", ctx.jid()));
    Ok(())
}

/// Makes one call of `bucket("api", 10, :second)`, not waiting; writes `call <jid> <before>
/// <granted>` when it went through: the call was granted by Redis's clock (this machine's)
/// between those two times (ms). Over the limit, it writes `refused <jid> <before> <after>`
/// (refused by Redis's clock between the two) and is rescheduled (1 s steps).
#[job]
pub async fn call_api(#[context] ctx: JobContext, #[state] ledger: Ledger) -> Result<(), JobError> {
    let api = Limiter::bucket("api", 10, Per::Second)
        .wait_timeout(Duration::ZERO)
        .reschedule(Reschedule {
            times: 20,
            backoff: Duration::from_secs(1),
        });
    let before = epoch_ms();
    match api.within_limit(|| async { epoch_ms() }).await {
        Ok(granted) => {
            ledger_line(&ledger, &format!("call {} {before} {granted}", ctx.jid()));
            Ok(())
        }
        Err(error) => {
            let after = epoch_ms();
            if error.is_over_limit() {
                ledger_line(&ledger, &format!("refused {} {before} {after}", ctx.jid()));
            }
            Err(error.into())
        }
    }
}

/// Holds a slot of `concurrent("lease", 2)`, with leases of 3 s, for a minute.
#[job]
pub async fn hold_lease(#[state] ledger: Ledger) -> Result<(), JobError> {
    let lease = Limiter::concurrent("lease", 2).lock_timeout(Duration::from_secs(3));
    lease
        .within_limit(|| async {
            ledger_line(&ledger, "holding");
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
        .await?;
    Ok(())
}

/// Takes `concurrent("busy", 1)` of the Redis at `redis_url` without waiting: over the limit
/// while the test holds it.
#[job]
pub async fn take_busy(redis_url: String) -> Result<(), JobError> {
    let client = jobs::Client::builder().url(redis_url).build()?;
    Limiter::concurrent("busy", 1)
        .wait_timeout(Duration::ZERO)
        .client(&client)
        .within_limit(|| async {})
        .await?;
    Ok(())
}

/// Calls `concurrent("stripe", 1)` in fake mode.
#[job]
pub async fn charge_within_limit(#[state] log: CallLog, cents: u64) -> Result<(), JobError> {
    Limiter::concurrent("stripe", 1)
        .within_limit(|| async { log.0.lock().unwrap().push(format!("charged {cents}")) })
        .await?;
    Ok(())
}

/// Reads a ledger's lines that start with `word`, split into their other words.
fn ledger_rows(path: &std::path::Path, word: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            (words.next() == Some(word)).then(|| words.map(str::to_owned).collect())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_limiter_never_has_more_holders_than_its_size_across_processes() {
    let redis = TestRedis::start();
    let ledger = ledger_path("limit-concurrent");
    let client = redis.client();
    let jobs: Vec<HoldStripe> = (0..400).map(|_| HoldStripe { millis: 20 }).collect();
    client.perform_bulk(jobs).await.expect("push the jobs");
    let env = [("JOBS_TEST_CONCURRENCY", "20")];
    let _first = ChildWorker::spawn(&redis.url(), &ledger, &env);
    let _second = ChildWorker::spawn(&redis.url(), &ledger, &env);
    eventually(Duration::from_secs(120), "all 400 jobs done", async || {
        ledger_rows(&ledger, "hold").len() >= 400
    })
    .await;

    let holds = ledger_rows(&ledger, "hold");
    let jids: HashSet<&String> = holds.iter().map(|row| &row[0]).collect();
    assert_eq!(jids.len(), 400, "each job held the limiter once");
    // Ends before starts at the same instant: a slot given back, then taken.
    let mut events: Vec<(u128, i32)> = holds
        .iter()
        .flat_map(|row| [(row[1].parse().unwrap(), 1), (row[2].parse().unwrap(), -1)])
        .collect();
    events.sort();
    let (mut holding, mut most) = (0, 0);
    for (_, change) in events {
        holding += change;
        most = most.max(holding);
    }
    assert_eq!(most, 3, "the most holders at once");
    assert_eq!(counter(&redis, "stat:failed").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_lets_its_size_through_each_second_and_reschedules_the_rest() {
    let redis = TestRedis::start();
    let ledger = ledger_path("limit-bucket");
    let client = redis.client();
    let jobs: Vec<CallApi> = (0..200).map(|_| CallApi {}).collect();
    let pushed: HashSet<String> = client
        .perform_bulk(jobs)
        .await
        .expect("push the jobs")
        .into_iter()
        .map(|jid| jid.to_string())
        .collect();
    let env = [("JOBS_TEST_CONCURRENCY", "20")];
    let _worker = ChildWorker::spawn(&redis.url(), &ledger, &env);
    eventually(Duration::from_secs(180), "all 200 calls made", async || {
        ledger_rows(&ledger, "call").len() >= 200
    })
    .await;

    let calls = ledger_rows(&ledger, "call");
    let done: HashSet<String> = calls.iter().map(|row| row[0].clone()).collect();
    assert_eq!(done, pushed, "every job made its call once, none lost");
    // Each call was granted in the second of its two times when they share one; a call whose
    // times straddle a boundary may count in either second.
    let mut sure: HashMap<u128, usize> = HashMap::new();
    let mut possible: HashMap<u128, usize> = HashMap::new();
    for row in &calls {
        let (before, granted): (u128, u128) = (row[1].parse().unwrap(), row[2].parse().unwrap());
        let (first, last) = (before / 1_000, granted / 1_000);
        if first == last {
            *sure.entry(first).or_default() += 1;
        }
        for second in first..=last {
            *possible.entry(second).or_default() += 1;
        }
    }
    for (second, count) in &sure {
        assert!(*count <= 10, "{count} calls granted in second {second}");
    }
    // A call refused within one second (by Redis's clock, which is this machine's) was refused
    // because that second's 10 were already granted: the bucket let its whole size through in
    // every second it refused someone, however slowly the worker ran.
    let refusals: HashSet<u128> = ledger_rows(&ledger, "refused")
        .iter()
        .filter_map(|row| {
            let (before, after): (u128, u128) = (row[1].parse().unwrap(), row[2].parse().unwrap());
            (before / 1_000 == after / 1_000).then_some(before / 1_000)
        })
        .collect();
    // 190 jobs wait after the first second, due again 0-1 s, then 1-2 s, 2-3 s… later.
    assert!(
        refusals.len() >= 3,
        "calls were refused within {} seconds only",
        refusals.len()
    );
    for second in &refusals {
        let possible = possible.get(second).copied().unwrap_or(0);
        assert!(
            possible >= 10,
            "second {second} refused a call with only {possible} calls granted in it"
        );
    }
    eventually(Duration::from_secs(10), "the counts flushed", async || {
        counter(&redis, "stat:processed").await >= 200
    })
    .await;
    assert_eq!(counter(&redis, "stat:failed").await, 0);
    assert!(counter(&redis, "jobs:stat:overrated").await >= 100);
    let mut raw = redis.raw().await;
    let retries: u64 = raw.zcard("retry").await.unwrap();
    let dead: u64 = raw.zcard("dead").await.unwrap();
    assert_eq!((retries, dead), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_held_by_a_process_killed_with_kill_9_free_up_within_the_lock_timeout() {
    let redis = TestRedis::start();
    let ledger = ledger_path("limit-kill9");
    let client = redis.client();
    client.perform_async(HoldLease {}).await.unwrap();
    client.perform_async(HoldLease {}).await.unwrap();
    let mut holder = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(Duration::from_secs(30), "both slots held", async || {
        ledger_rows(&ledger, "holding").len() == 2
    })
    .await;
    let lease = Limiter::concurrent("lease", 2)
        .lock_timeout(Duration::from_secs(3))
        .client(&client);
    let error = lease
        .clone()
        .wait_timeout(Duration::ZERO)
        .within_limit(|| async {})
        .await
        .unwrap_err();
    assert!(error.is_over_limit(), "{error}");
    assert!(error.to_string().contains("`lease`"), "{error}");

    holder.kill9();
    let killed = Instant::now();
    let waiting = lease.wait_timeout(Duration::from_secs(20));
    let (first, second) = tokio::join!(
        waiting.within_limit(|| tokio::time::sleep(Duration::from_millis(200))),
        waiting.within_limit(|| tokio::time::sleep(Duration::from_millis(200))),
    );
    first.expect("a slot freed up");
    second.expect("the other slot freed up");
    let took = killed.elapsed();
    // Each lease ran out at most 3 s after it was taken; the 2 s spare is for a loaded machine.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn a_job_over_its_limit_is_rescheduled_with_every_other_byte_kept() {
    let redis = TestRedis::start();
    let client = redis.client();
    // The test holds the one slot while the job runs.
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
    let json = format!(
        r#"{{"class":"TakeBusy","args":["{}"],"retry":3,"queue":"default","jid":"0123456789abcdef01234567","created_at":1700000000.50,"x-note":{{"keep" : [1.0, "me"]}},"enqueued_at":1700000000.5}}"#,
        redis.url()
    );
    let mut raw = redis.raw().await;
    let _: () = raw.lpush("queue:default", &json).await.unwrap();
    let _: () = raw.sadd("queues", "default").await.unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()));
    eventually(Duration::from_secs(10), "the job rescheduled", async || {
        !sorted_set(&redis, "schedule").await.is_empty()
    })
    .await;
    running.stop(Duration::from_secs(10)).await;

    let stored: Vec<(String, f64)> = raw.zrange_withscores("schedule", 0, -1).await.unwrap();
    let expected = json.replace(
        r#""enqueued_at":1700000000.5}"#,
        r#""enqueued_at":1700000000.5,"overrated":1}"#,
    );
    assert_eq!(stored[0].0, expected);
    // Within the first step of the default backoff (300 s).
    let delay = stored[0].1 - crate::support::now();
    assert!((-10.0..=300.0).contains(&delay), "{delay}");
    assert_eq!(counter(&redis, "stat:failed").await, 0);
    assert_eq!(counter(&redis, "jobs:stat:overrated").await, 1);
    let retries: u64 = raw.zcard("retry").await.unwrap();
    assert_eq!(retries, 0);

    // The API and the page see the limiter, its holder and the call over its limit.
    let limits = jobs::api::Limits::new(&client);
    let busy = limits.get("busy").await.unwrap().expect("the limiter");
    assert_eq!(busy.kind, jobs::limit::Kind::Concurrent);
    assert_eq!((busy.size, busy.in_use, busy.calls), (1, 1.0, 1));
    assert_eq!(busy.over_limit, 1);
    assert!(busy.last_over_limit.is_some());
    assert!(busy.expires_in.unwrap() > Duration::from_secs(3_600));
    let listed = limits.list(100).await.unwrap();
    assert_eq!(
        listed.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["busy"]
    );
    let dashboard = app(&client);
    let page = get(&dashboard, "/jobs/limits").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-limiter=\"busy\""), "{}", page.body);
    assert!(page.body.contains("1 at once"), "{}", page.body);
    assert!(page.body.contains("1 jobs rescheduled over a limit"));
    let reset = post(
        &dashboard,
        "/jobs/limits",
        &[("name", "busy"), ("action", "reset")],
    )
    .await;
    assert_eq!(reset.status, 303, "{}", reset.body);
    let busy = limits.get("busy").await.unwrap().expect("still listed");
    assert_eq!((busy.in_use, busy.calls, busy.over_limit), (0.0, 0, 0));
    assert!(!limits.reset("missing").await.unwrap());

    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_limiter_named_per_customer_leaves_keys_that_expire() {
    let redis = TestRedis::start();
    let client = redis.client();
    for id in 0..3 {
        Limiter::window(format!("customer:{id}"), 2, Duration::from_secs(1))
            .ttl(Duration::from_secs(2))
            .client(&client)
            .within_limit(|| async {})
            .await
            .unwrap();
    }
    let mut raw = redis.raw().await;
    let ttl: i64 = raw.pttl("jobs:limit:{customer:1}").await.unwrap();
    assert!((1..=2_000).contains(&ttl), "{ttl}");
    let ttl: i64 = raw.pttl("jobs:limit:{customer:1}:held").await.unwrap();
    assert!((1..=2_000).contains(&ttl), "{ttl}");
    let invalid = Limiter::bucket("a b", 1, Per::Second)
        .client(&client)
        .within_limit(|| async {})
        .await
        .unwrap_err();
    assert!(invalid.to_string().contains("no spaces"), "{invalid}");
}

#[tokio::test]
async fn a_window_limiter_waits_for_room_within_its_wait_timeout() {
    let redis = TestRedis::start();
    let client = redis.client();
    let window = Limiter::window("search", 2, Duration::from_millis(500))
        .wait_timeout(Duration::from_secs(5))
        .client(&client);
    let started = Instant::now();
    for _ in 0..4 {
        window.within_limit(|| async {}).await.unwrap();
    }
    // The third call waited for the first to leave the window.
    assert!(started.elapsed() >= Duration::from_millis(450));
    let error = window
        .clone()
        .wait_timeout(Duration::ZERO)
        .within_limit(|| async {})
        .await
        .unwrap_err();
    let jobs::Error::OverLimit { retry_after, .. } = error else {
        panic!("{error}");
    };
    assert!(retry_after.is_some_and(|after| after <= Duration::from_millis(500)));
}

#[tokio::test]
async fn in_fake_mode_limiters_live_in_memory_and_a_test_can_force_one_over() {
    let fake = jobs::testing::fake();
    let log = CallLog::default();
    let fake = fake.state(log.clone());
    let client = jobs::Client::builder()
        .url("redis://127.0.0.1:1/0")
        .build()
        .unwrap();
    ChargeWithinLimit::perform_async(5).await.unwrap();
    fake.drain().await.expect("within the limit");
    assert_eq!(log.entries(), ["charged 5"]);

    fake.force_over_limit("stripe");
    ChargeWithinLimit::perform_async(7).await.unwrap();
    let error = fake.drain().await.unwrap_err();
    assert!(error.is_over_limit(), "{error}");
    assert_eq!(log.entries(), ["charged 5"]);
    fake.lift_over_limit("stripe");

    // Never reaches the (unreachable) Redis: a bucket of 2 an hour refuses the third call.
    let hourly = Limiter::bucket("hourly", 2, Per::Hour)
        .wait_timeout(Duration::ZERO)
        .client(&client);
    hourly.within_limit(|| async {}).await.unwrap();
    hourly.within_limit(|| async {}).await.unwrap();
    assert!(
        hourly
            .within_limit(|| async {})
            .await
            .unwrap_err()
            .is_over_limit()
    );
}

/// Takes the one slot of `concurrent("busy", 1)` and holds it until the sender is used (or
/// dropped).
async fn hold_busy(
    client: &jobs::Client,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), jobs::Error>>,
) {
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let (taken, is_taken) = tokio::sync::oneshot::channel::<()>();
    let client = client.clone();
    let holder = tokio::spawn(async move {
        Limiter::concurrent("busy", 1)
            .client(&client)
            .within_limit(|| async move {
                taken.send(()).unwrap();
                let _ = held.await;
            })
            .await
    });
    is_taken.await.unwrap();
    (release, holder)
}

/// An expiring job (`expires_in` 1 s) that takes `concurrent("busy", 1)` of the Redis at
/// `redis_url` without waiting, rescheduled over it in 1 s steps; logs its run.
#[job(expires_in = 1)]
pub async fn expiring_over_limit(#[state] log: CallLog, redis_url: String) -> Result<(), JobError> {
    let client = jobs::Client::builder().url(redis_url).build()?;
    Limiter::concurrent("busy", 1)
        .wait_timeout(Duration::ZERO)
        .reschedule(Reschedule {
            times: 5,
            backoff: Duration::from_secs(1),
        })
        .client(&client)
        .within_limit(|| async {})
        .await?;
    log.0.lock().unwrap().push("ran".to_owned());
    Ok(())
}

#[tokio::test]
async fn an_expiring_job_rescheduled_over_a_limit_runs_later_and_is_not_dropped() {
    let redis = TestRedis::start();
    let client = redis.client();
    let log = CallLog::default();
    let (release, holder) = hold_busy(&client).await;
    client
        .perform_async(ExpiringOverLimit {
            redis_url: redis.url(),
        })
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(
        Duration::from_secs(15),
        "two reschedules, or a drop",
        async || {
            let dropped = counter(&redis, "jobs:stat:expired").await > 0;
            dropped
                || sorted_set(&redis, "schedule")
                    .await
                    .iter()
                    .any(|(job, _)| job["overrated"] == 2)
        },
    )
    .await;
    assert_eq!(
        counter(&redis, "jobs:stat:expired").await,
        0,
        "dropped as expired after a reschedule"
    );
    // Its third run comes well past its deadline (1 s after the push): it started long ago.
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    eventually(Duration::from_secs(10), "the job to run", async || {
        log.entries() == ["ran"]
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(counter(&redis, "jobs:stat:expired").await, 0);
    assert_eq!(counter(&redis, "stat:failed").await, 0);
}

/// An app's error wrapping `jobs::Error` as `docs/limits.md` says: `#[from]` (a source), not
/// `#[error(transparent)]`.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("the limiter: {0}")]
    Jobs(#[from] jobs::Error),
}

/// The same with `#[error(transparent)]`, which hides the wrapped error from the chain.
#[derive(Debug, thiserror::Error)]
enum TransparentError {
    #[error(transparent)]
    Jobs(#[from] jobs::Error),
}

fn over_limit() -> jobs::Error {
    jobs::Error::OverLimit {
        limiter: "stripe".to_owned(),
        limit: "3 at once".to_owned(),
        retry_after: None,
        reschedule: Reschedule::default(),
    }
}

#[test]
fn an_over_limit_error_wrapped_as_documented_is_still_over_limit() {
    fn app() -> Result<(), AppError> {
        Err(over_limit())?
    }
    fn job() -> Result<(), JobError> {
        app()?;
        Ok(())
    }
    assert!(job().unwrap_err().is_over_limit());
    let with_context: JobError = anyhow::Error::from(over_limit())
        .context("charging the card")
        .into();
    assert!(with_context.is_over_limit());
    // `transparent` forwards `source()` past the wrapped error: an ordinary failure.
    let hidden: JobError = TransparentError::from(over_limit()).into();
    assert!(!hidden.is_over_limit());
}
#[tokio::test]
async fn a_bucket_grants_exactly_its_size_in_one_redis_second() {
    let redis = TestRedis::start();
    let client = redis.client();
    let mut raw = redis.raw().await;
    let api = Limiter::bucket("exact", 10, Per::Second)
        .wait_timeout(Duration::ZERO)
        .client(&client);
    for _ in 0..5 {
        let (_, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
        tokio::time::sleep(Duration::from_micros(1_002_000 - micros)).await;
        let (second, _): (u64, u64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
        let mut granted = 0;
        for _ in 0..30 {
            match api.within_limit(|| async {}).await {
                Ok(()) => granted += 1,
                Err(error) => assert!(error.is_over_limit(), "{error}"),
            }
        }
        let (end, _): (u64, u64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
        if end == second {
            assert_eq!(granted, 10, "granted in second {second}");
            return;
        }
        // The calls straddled two seconds (a loaded machine): again, in the next one.
    }
    panic!("30 calls never fit in one second");
}

#[tokio::test]
async fn overrated_is_counted_in_place_and_the_21st_over_limit_is_an_ordinary_failure() {
    let redis = TestRedis::start();
    let client = redis.client();
    let (release, holder) = hold_busy(&client).await;
    let job = |jid: &str, overrated: u32| {
        format!(
            r#"{{"class":"TakeBusy","args":["{}"],"retry":3,"queue":"default","jid":"{jid}","overrated":{overrated},"x-note":{{"keep" : [1.0, "me"]}},"enqueued_at":1700000000.5}}"#,
            redis.url()
        )
    };
    let (again, last) = (
        job("0123456789abcdef0000000a", 1),
        job("0123456789abcdef0000000b", 20),
    );
    let mut raw = redis.raw().await;
    let _: () = raw.lpush("queue:default", &[&again, &last]).await.unwrap();
    let _: () = raw.sadd("queues", "default").await.unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()));
    eventually(Duration::from_secs(10), "both jobs settled", async || {
        let scheduled: u64 = redis.raw().await.zcard("schedule").await.unwrap();
        let retries: u64 = redis.raw().await.zcard("retry").await.unwrap();
        (scheduled, retries) == (1, 1)
    })
    .await;
    running.stop(Duration::from_secs(10)).await;

    // 1 → 2 where it stood, every other byte kept.
    let stored: Vec<String> = raw.zrange("schedule", 0, -1).await.unwrap();
    assert_eq!(
        stored,
        [again.replace(r#""overrated":1,"#, r#""overrated":2,"#)]
    );
    // The 21st: an ordinary failure, to the retry set, its count kept.
    let failed = sorted_set(&redis, "retry").await;
    assert_eq!(failed[0].0["jid"], "0123456789abcdef0000000b");
    assert_eq!(failed[0].0["overrated"], 20);
    assert_eq!(failed[0].0["retry_count"], 0);
    assert!(
        failed[0].0["error_message"]
            .as_str()
            .unwrap()
            .contains("`busy`"),
        "{failed:?}"
    );
    assert_eq!(counter(&redis, "stat:failed").await, 1);
    assert_eq!(counter(&redis, "jobs:stat:overrated").await, 1);
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
}

#[tokio::test]
async fn leaky_and_points_limiters_in_redis_fill_and_drain() {
    let redis = TestRedis::start();
    let client = redis.client();
    let limits = jobs::api::Limits::new(&client);
    // Three drops, one draining each second.
    let sms = Limiter::leaky("sms", 3, Duration::from_secs(3))
        .wait_timeout(Duration::ZERO)
        .client(&client);
    for _ in 0..3 {
        sms.within_limit(|| async {}).await.unwrap();
    }
    let error = sms.within_limit(|| async {}).await.unwrap_err();
    let jobs::Error::OverLimit { retry_after, .. } = error else {
        panic!("{error}");
    };
    let after = retry_after.expect("a leaky bucket knows when");
    assert!(
        (Duration::from_millis(700)..=Duration::from_secs(1)).contains(&after),
        "{after:?}"
    );
    // Waiting for a drop to drain lets the call in.
    let started = Instant::now();
    sms.clone()
        .wait_timeout(Duration::from_secs(3))
        .within_limit(|| async {})
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(600));
    let info = limits.get("sms").await.unwrap().expect("listed");
    assert_eq!(info.kind, jobs::limit::Kind::Leaky);
    assert!((2.5..=3.0).contains(&info.in_use), "{info:?}");
    assert_eq!((info.calls, info.over_limit), (4, 1));

    // A budget of 10 points refilling in 10 s.
    let tokens = Limiter::points("tokens", 10, Duration::from_secs(10))
        .wait_timeout(Duration::ZERO)
        .client(&client);
    tokens.within_limit_costing(7, || async {}).await.unwrap();
    let error = tokens
        .within_limit_costing(7, || async {})
        .await
        .unwrap_err();
    let jobs::Error::OverLimit { retry_after, .. } = error else {
        panic!("{error}");
    };
    let after = retry_after.expect("points know when");
    assert!(
        (Duration::from_millis(3_500)..=Duration::from_secs(4)).contains(&after),
        "{after:?}"
    );
    tokens.within_limit_costing(3, || async {}).await.unwrap();
    let info = limits.get("tokens").await.unwrap().expect("listed");
    assert!((9.5..=10.0).contains(&info.in_use), "{info:?}");
    assert_eq!((info.calls, info.over_limit), (2, 1));
}

#[tokio::test]
async fn a_limiter_name_is_escaped_on_the_limits_page() {
    let redis = TestRedis::start();
    let client = redis.client();
    let name = "<script>alert(1)</script>";
    Limiter::window(name, 2, Duration::from_secs(60))
        .client(&client)
        .within_limit(|| async {})
        .await
        .unwrap();
    let page = get(&app(&client), "/jobs/limits").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(name), "{}", page.body);
    assert!(!page.body.contains("Partial list"), "{}", page.body);
    let listing = jobs::api::Limits::new(&client).scan(10).await.unwrap();
    assert!(!listing.partial);
    assert_eq!(listing.limiters[0].name, name);
}

#[tokio::test]
async fn a_clock_going_backwards_does_not_fill_a_leaky_bucket() {
    let redis = TestRedis::start();
    let client = redis.client();
    let drift = Limiter::leaky("drift", 3, Duration::from_secs(3))
        .wait_timeout(Duration::ZERO)
        .client(&client);
    drift.within_limit(|| async {}).await.unwrap();
    // The last call's time a minute ahead of Redis's clock now: a clock that went back.
    let mut raw = redis.raw().await;
    let ahead = (epoch_ms() + 60_000).to_string();
    let _: () = raw.hset("jobs:limit:{drift}", "at", ahead).await.unwrap();
    drift.within_limit(|| async {}).await.unwrap();
    let info = jobs::api::Limits::new(&client)
        .get("drift")
        .await
        .unwrap()
        .expect("listed");
    assert!((1.9..=2.0).contains(&info.in_use), "{info:?}");
}

#[tokio::test]
async fn the_limits_list_of_a_big_keyspace_stops_early_and_says_it_is_partial() {
    let redis = TestRedis::start();
    let client = redis.client();
    let mut raw = redis.raw().await;
    let mut pipeline = redis::pipe();
    for chunk in 0..120 {
        let pairs: Vec<(String, u8)> = (0..1_000)
            .map(|i| (format!("other:{chunk}:{i}"), 1))
            .collect();
        pipeline.mset(&pairs).ignore();
    }
    let _: () = pipeline.query_async(&mut raw).await.unwrap();
    Limiter::window("found", 2, Duration::from_secs(60))
        .client(&client)
        .within_limit(|| async {})
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut raw)
        .await
        .unwrap();
    let limits = jobs::api::Limits::new(&client);
    limits.list(100).await.unwrap();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut raw)
        .await
        .unwrap();
    let scans: u64 = stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_scan:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .expect("SCAN was called");
    assert!(scans <= 50, "{scans} SCAN steps for one list");
    assert!(limits.scan(100).await.unwrap().partial);
    let page = get(&app(&client), "/jobs/limits").await;
    assert!(page.body.contains("Partial list"), "{}", page.body);
}

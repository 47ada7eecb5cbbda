//! Unique jobs against a real Redis and real worker processes: the lock taken with the push in
//! one step, a duplicate answered with the holder's jid, and every way a job ends releasing it.

use std::time::Duration;

use jobs::api::{DeadSet, Queue, RetrySet, ScheduledSet, UniqueLocks};
use jobs::{Payload, Pushed};
use redis::AsyncCommands;

use crate::support::jobs::{
    CallLog, ChargeCustomer, UniqueFailing, UniqueLedgered, UniqueUntilStart, worker,
};
use crate::support::{ChildWorker, LedgerView, RunningWorker, TestRedis, eventually, ledger_path};

/// How many pushes each task of [`child_pusher`] makes, and how many tasks it runs.
const PUSHES_PER_TASK: usize = 5;
const TASKS: usize = 5;

/// Pushes `UniqueLedgered { key: "race", .. }` from [`TASKS`] tasks, [`PUSHES_PER_TASK`] each,
/// once the key `go` exists, and prints one `PUSHED queued|duplicate <jid>` line per push: the
/// other process of the race test. Run by it, not directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a child process of fifty_pushes_from_two_processes_queue_one_job"]
async fn child_pusher() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by the unique-jobs tests, not directly"
    );
    let client = jobs::Client::from_env().expect("REDIS_URL");
    let results = race(&client, "child").await;
    for pushed in results {
        let kind = if pushed.is_duplicate() {
            "duplicate"
        } else {
            "queued"
        };
        println!("PUSHED {kind} {}", pushed.jid());
    }
}

/// Waits for `go`, then pushes from [`TASKS`] tasks at once.
async fn race(client: &jobs::Client, who: &str) -> Vec<Pushed> {
    let mut connection = redis::Client::open(client.url().replace("***", ""))
        .expect("a URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = connection
        .set(format!("ready:{who}"), 1)
        .await
        .expect("SET");
    loop {
        let go: bool = connection.exists("go").await.expect("EXISTS");
        if go {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let client = client.clone();
        tasks.spawn(async move {
            let mut pushed = Vec::new();
            for _ in 0..PUSHES_PER_TASK {
                let job = UniqueLedgered {
                    key: "race".to_owned(),
                    millis: 0,
                };
                pushed.push(client.perform_async(job).await.expect("the push"));
            }
            pushed
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("a pushing task"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_pushes_from_two_processes_queue_one_job() {
    let redis = TestRedis::start();
    let client = redis.client();
    // The other process: this test binary, as `unique_jobs::child_pusher`.
    let child = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "unique_jobs::child_pusher",
            "--ignored",
            "--nocapture",
        ])
        .env("JOBS_TEST_CHILD", "1")
        .env("REDIS_URL", redis.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the pushing process");
    let child = KillOnDrop(Some(child));
    let mut raw = redis.raw().await;
    let here = {
        let client = client.clone();
        tokio::spawn(async move { race(&client, "parent").await })
    };
    eventually(
        Duration::from_secs(30),
        "both pushers to be ready",
        async || {
            let ready: usize = raw.exists(&["ready:child", "ready:parent"]).await.unwrap();
            ready == 2
        },
    )
    .await;
    let _: () = raw.set("go", 1).await.unwrap();
    let mut results = here.await.unwrap();
    let output = child.wait_output();
    results.extend(
        output
            .lines()
            .filter_map(|line| line.strip_prefix("PUSHED "))
            .map(|line| match line.split_once(' ') {
                Some(("queued", jid)) => Pushed::Queued(jid.into()),
                Some(("duplicate", jid)) => Pushed::Duplicate(jid.into()),
                _ => panic!("an unexpected line: {line}"),
            }),
    );
    assert_eq!(results.len(), 2 * TASKS * PUSHES_PER_TASK, "{output}");

    let queued: Vec<&Pushed> = results
        .iter()
        .filter(|pushed| !pushed.is_duplicate())
        .collect();
    assert_eq!(queued.len(), 1, "exactly one push is queued: {results:?}");
    let holder = queued[0].jid().clone();
    assert!(
        results.iter().all(|pushed| *pushed.jid() == holder),
        "every duplicate names the queued job's jid {holder}: {results:?}"
    );
    assert_eq!(redis.queue("faults").await.len(), 1);
    let lock = UniqueLocks::new(&client).list(10).await.unwrap();
    assert_eq!(lock.len(), 1);
    assert_eq!(lock[0].holder, holder);
    assert!(lock[0].expires_in.unwrap() > Duration::from_secs(590));

    // It runs and succeeds: its lock is released, and the next push is queued.
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log).queues(["faults"]));
    eventually(
        Duration::from_secs(10),
        "the lock to be released",
        async || UniqueLocks::new(&client).list(10).await.unwrap().is_empty(),
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
    let next = client
        .perform_async(UniqueLedgered {
            key: "race".to_owned(),
            millis: 0,
        })
        .await
        .unwrap();
    assert!(!next.is_duplicate(), "{next:?}");
    assert_ne!(*next.jid(), holder);
}

/// A child process killed when the test ends, whatever way it ends.
struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    /// Waits for the process to exit and returns what it printed.
    fn wait_output(mut self) -> String {
        let child = self.0.take().expect("a child");
        let output = child.wait_with_output().expect("the child's output");
        assert!(output.status.success(), "the pushing process failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn a_duplicate_is_an_answer_not_an_error_and_bulk_and_scheduled_pushes_honour_the_lock() {
    let redis = TestRedis::start();
    let client = redis.client();
    let first = client
        .perform_async(ChargeCustomer {
            customer: 7,
            cents: 100,
        })
        .await
        .unwrap();
    let Pushed::Queued(holder) = first.clone() else {
        panic!("the first push is queued: {first:?}");
    };
    // Unique per customer: another amount for customer 7 is a duplicate; customer 8 is not.
    let again = client
        .perform_async(ChargeCustomer {
            customer: 7,
            cents: 250,
        })
        .await
        .unwrap();
    assert_eq!(again, Pushed::Duplicate(holder.clone()));
    let scheduled = client
        .perform_in(
            Duration::from_secs(60),
            ChargeCustomer {
                customer: 7,
                cents: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(scheduled, Pushed::Duplicate(holder.clone()));
    let bulk = client
        .perform_bulk([
            ChargeCustomer {
                customer: 7,
                cents: 5,
            },
            ChargeCustomer {
                customer: 8,
                cents: 5,
            },
            ChargeCustomer {
                customer: 8,
                cents: 6,
            },
        ])
        .await
        .unwrap();
    assert_eq!(bulk[0], Pushed::Duplicate(holder.clone()));
    assert!(!bulk[1].is_duplicate());
    assert_eq!(bulk[2], Pushed::Duplicate(bulk[1].jid().clone()));
    assert_eq!(redis.queue("default").await.len(), 2);
    assert_eq!(ScheduledSet::new(&client).size().await.unwrap(), 0);

    // A scheduled unique job holds its lock from its push until `unique_for` after it is due.
    let later = client
        .perform_in(
            Duration::from_secs(3_600),
            ChargeCustomer {
                customer: 9,
                cents: 1,
            },
        )
        .await
        .unwrap();
    assert!(!later.is_duplicate());
    let record = ScheduledSet::new(&client)
        .find_job(later.jid().as_str())
        .await
        .unwrap()
        .unwrap();
    let lock = UniqueLocks::new(&client)
        .of_job(&record.record)
        .await
        .unwrap()
        .expect("the scheduled job's lock");
    assert_eq!(lock.holder, *later.jid());
    assert!(
        lock.expires_in.unwrap() > Duration::from_secs(4_190),
        "{lock:?}"
    );

    // A payload pushed by hand with the option is unique over its class, queue and arguments,
    // whatever the key order and number spelling of its arguments.
    let mut by_hand = Payload::new("RubyReport", vec![serde_json::json!({"b": 1, "a": 2})]);
    by_hand.set("unique_for", 60.into()).unwrap();
    assert!(!client.push(by_hand).await.unwrap().is_duplicate());
    let mut same = Payload::new("RubyReport", vec![serde_json::json!({"a": 2.0, "b": 1})]);
    same.set("unique_for", 60.into()).unwrap();
    assert!(client.push(same).await.unwrap().is_duplicate());
    let mut bad = Payload::new("RubyReport", vec![]);
    bad.set("unique_for", 0.into()).unwrap();
    let error = client.push(bad).await.unwrap_err().to_string();
    assert!(
        error.contains("`unique_for` must be at least 1 second"),
        "{error}"
    );
}

#[tokio::test]
async fn the_lock_holds_through_a_failure_and_its_retry_and_is_released_at_death() {
    let redis = TestRedis::start();
    let client = redis.client();
    let log = CallLog::default();
    let pushed = UniqueFailing::set()
        .client(&client)
        .perform_async("k".to_owned())
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &log));
    let retries = RetrySet::new(&client);
    eventually(Duration::from_secs(10), "the first failure", async || {
        retries.size().await.unwrap() == 1
    })
    .await;
    // Waiting to retry, it still holds its lock.
    let again = UniqueFailing::set()
        .client(&client)
        .perform_async("k".to_owned())
        .await
        .unwrap();
    assert_eq!(again, Pushed::Duplicate(pushed.jid().clone()));

    // Its retry comes due (rescored to now, as time would): it fails again and dies (retry =
    // 1), and the lock is released.
    let entries = retries.page(jobs::api::Page::first(10)).await.unwrap();
    let mut raw = redis.raw().await;
    let _: () = raw
        .zadd(
            "retry",
            entries[0].record.raw(),
            crate::support::now() - 1.0,
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the death", async || {
        DeadSet::new(&client).size().await.unwrap() == 1
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(log.entries(), ["unique_failing k", "unique_failing k"]);
    assert!(UniqueLocks::new(&client).list(10).await.unwrap().is_empty());
    let after = UniqueFailing::set()
        .client(&client)
        .perform_async("k".to_owned())
        .await
        .unwrap();
    assert!(!after.is_duplicate(), "{after:?}");
}

#[tokio::test]
async fn kill_9_of_the_worker_running_a_unique_job_keeps_its_lock_until_it_reruns_and_succeeds() {
    let redis = TestRedis::start();
    let client = redis.client();
    let ledger = ledger_path("unique-kill9");
    let job = || UniqueLedgered {
        key: "nightly".to_owned(),
        millis: 2_000,
    };
    let pushed = client.perform_async(job()).await.unwrap();
    let mut first = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(Duration::from_secs(20), "the job to start", async || {
        LedgerView::read(&ledger)
            .runs
            .contains_key(pushed.jid().as_str())
    })
    .await;
    first.kill9();

    // Dead process, job not finished: a push of the same job is still a duplicate, before,
    // during and after its recovery.
    let during = client.perform_async(job()).await.unwrap();
    assert_eq!(during, Pushed::Duplicate(pushed.jid().clone()));
    let _second = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    let mut checked_while_recovered = false;
    eventually(
        Duration::from_secs(30),
        "the job to run again and finish",
        async || {
            let view = LedgerView::read(&ledger);
            if view.runs.get(pushed.jid().as_str()) == Some(&2) && !checked_while_recovered {
                // Running again in the second process: still unique.
                let rerun = client.perform_async(job()).await.unwrap();
                assert_eq!(rerun, Pushed::Duplicate(pushed.jid().clone()));
                checked_while_recovered = true;
            }
            view.done.contains(pushed.jid().as_str())
        },
    )
    .await;
    assert!(checked_while_recovered, "the rerun was seen");
    eventually(
        Duration::from_secs(10),
        "the lock to be released",
        async || UniqueLocks::new(&client).list(10).await.unwrap().is_empty(),
    )
    .await;
    let after = client.perform_async(job()).await.unwrap();
    assert!(!after.is_duplicate(), "{after:?}");
}

#[tokio::test]
async fn deleting_or_killing_a_unique_job_on_the_dashboard_releases_its_lock() {
    use crate::web_http::{app, post};
    let redis = TestRedis::start();
    let client = redis.client();
    let web = app(&client);
    let push = |customer| {
        let client = client.clone();
        async move {
            client
                .perform_in(
                    Duration::from_secs(600),
                    ChargeCustomer { customer, cents: 1 },
                )
                .await
                .unwrap()
        }
    };
    let locks = UniqueLocks::new(&client);

    // Its page shows its lock; then delete it: its lock goes with it.
    let doomed = push(1).await;
    let entry = ScheduledSet::new(&client)
        .find_job(doomed.jid().as_str())
        .await
        .unwrap()
        .unwrap();
    let page = crate::web_http::get(&web, &format!("/jobs/scheduled/{}", entry.key())).await;
    assert!(page.body.contains("Unique lock"), "{}", page.body);
    assert!(
        page.body.contains("held by this job; runs out"),
        "{}",
        page.body
    );
    let reply = post(
        &web,
        &format!("/jobs/scheduled/{}", entry.key()),
        &[("action", "delete")],
    )
    .await;
    redirected(&reply);
    assert_eq!(locks.list(10).await.unwrap(), []);
    assert!(!push(1).await.is_duplicate());

    // Kill one waiting to retry: it goes to the dead set and its lock is released.
    let log = CallLog::default();
    let victim = UniqueFailing::set()
        .client(&client)
        .perform_async("victim".to_owned())
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(Duration::from_secs(10), "the failure", async || {
        RetrySet::new(&client).size().await.unwrap() == 1
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    let held_by = async |jid: &jobs::Jid| {
        locks
            .list(10)
            .await
            .unwrap()
            .iter()
            .any(|lock| lock.holder == *jid)
    };
    assert!(
        held_by(victim.jid()).await,
        "waiting to retry, it holds its lock"
    );
    let entry = RetrySet::new(&client)
        .find_job(victim.jid().as_str())
        .await
        .unwrap()
        .unwrap();
    let reply = post(
        &web,
        &format!("/jobs/retries/{}", entry.key()),
        &[("action", "kill")],
    )
    .await;
    redirected(&reply);
    assert_eq!(DeadSet::new(&client).size().await.unwrap(), 1);
    assert!(!held_by(victim.jid()).await, "killed, it released its lock");
    let again = UniqueFailing::set()
        .client(&client)
        .perform_in(Duration::from_secs(600), "victim".to_owned())
        .await
        .unwrap();
    assert!(!again.is_duplicate());

    // Delete one waiting in its queue, then clear a queue holding another.
    let waiting = client
        .perform_async(ChargeCustomer {
            customer: 3,
            cents: 1,
        })
        .await
        .unwrap();
    let record = Queue::new(&client, "default")
        .find_job(waiting.jid().as_str())
        .await
        .unwrap()
        .unwrap();
    let reply = post(
        &web,
        "/jobs/queues/default/delete",
        &[("key_val", record.raw())],
    )
    .await;
    redirected(&reply);
    assert!(!held(&locks, 3).await);
    client
        .perform_async(ChargeCustomer {
            customer: 4,
            cents: 1,
        })
        .await
        .unwrap();
    let reply = post(&web, "/jobs/queues/default", &[]).await;
    redirected(&reply);
    assert!(!held(&locks, 4).await);

    // Releasing by hand through the API lets the next push in, and leaves the job alone.
    let held = push(5).await;
    let lock = locks
        .list(10)
        .await
        .unwrap()
        .into_iter()
        .find(|lock| lock.holder == *held.jid());
    assert!(locks.release(&lock.expect("its lock")).await.unwrap());
    let entry = ScheduledSet::new(&client)
        .find_job(held.jid().as_str())
        .await
        .unwrap()
        .unwrap();
    let page = crate::web_http::get(&web, &format!("/jobs/scheduled/{}", entry.key())).await;
    assert!(
        page.body
            .contains("not held: a job like this one can be pushed"),
        "{}",
        page.body
    );
    let next = push(5).await;
    assert!(!next.is_duplicate());
    let page = crate::web_http::get(&web, &format!("/jobs/scheduled/{}", entry.key())).await;
    assert!(page.body.contains("held by another job"), "{}", page.body);
    assert!(page.body.contains(next.jid().as_str()), "{}", page.body);
    assert_eq!(ScheduledSet::new(&client).size().await.unwrap(), 4);

    // Clearing the scheduled set releases every lock its jobs held.
    let reply = post(&web, "/jobs/scheduled/all/delete", &[]).await;
    redirected(&reply);
    assert_eq!(locks.list(10).await.unwrap(), []);
}

/// Whether `ChargeCustomer`'s lock for `customer` on the default queue is held.
async fn held(locks: &UniqueLocks, customer: u64) -> bool {
    let digest =
        jobs::unique::lock_digest("ChargeCustomer", "default", &serde_json::json!(customer));
    locks.get(&digest).await.unwrap().is_some()
}

/// Fails the test unless the dashboard answered a POST with its redirect.
fn redirected(reply: &crate::web_http::Reply) {
    assert_eq!(
        reply.status,
        axum::http::StatusCode::SEE_OTHER,
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_job_unique_until_start_lets_the_next_push_in_while_it_runs() {
    let redis = TestRedis::start();
    let client = redis.client();
    let log = CallLog::default();
    let first = client
        .perform_async(UniqueUntilStart {
            key: "k".to_owned(),
            millis: 3_000,
        })
        .await
        .unwrap();
    let duplicate = client
        .perform_async(UniqueUntilStart {
            key: "k".to_owned(),
            millis: 3_000,
        })
        .await
        .unwrap();
    assert_eq!(duplicate, Pushed::Duplicate(first.jid().clone()));
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(Duration::from_secs(10), "the job to start", async || {
        !log.entries().is_empty()
    })
    .await;
    let during = client
        .perform_async(UniqueUntilStart {
            key: "k".to_owned(),
            millis: 0,
        })
        .await
        .unwrap();
    assert!(
        !during.is_duplicate(),
        "started, it no longer holds the lock"
    );
    running.stop(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_worker_presumed_dead_that_finishes_late_leaves_the_lock_to_the_rerun() {
    let redis = TestRedis::start();
    let client = redis.client();
    let ledger = ledger_path("unique-stalled");
    let job = || UniqueLedgered {
        key: "stalled".to_owned(),
        millis: 4_000,
    };
    let pushed = client.perform_async(job()).await.unwrap();
    let stalled = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(Duration::from_secs(20), "the job to start", async || {
        LedgerView::read(&ledger)
            .runs
            .contains_key(pushed.jid().as_str())
    })
    .await;
    // Frozen past its liveness: a second worker recovers the job and runs it again.
    stalled.signal("STOP");
    let _second = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(Duration::from_secs(30), "the rerun to start", async || {
        LedgerView::read(&ledger).runs.get(pushed.jid().as_str()) == Some(&2)
    })
    .await;
    // Woken, the first worker finishes its run and acknowledges it: its job is no longer in its
    // working list, so the lock, which the rerun needs, stays.
    stalled.signal("CONT");
    let done_in_stalled = format!("done {} {}", pushed.jid(), stalled.pid());
    eventually(
        Duration::from_secs(10),
        "the stalled run to finish",
        async || {
            std::fs::read_to_string(&ledger)
                .unwrap_or_default()
                .lines()
                .any(|line| line == done_in_stalled)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let view = LedgerView::read(&ledger);
    let rerun_done = view.ran_in[pushed.jid().as_str()].len() == 2
        && std::fs::read_to_string(&ledger)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with(&format!("done {}", pushed.jid())))
            .count()
            > 1;
    assert!(!rerun_done, "the rerun is still running (it takes 4 s)");
    let during = client.perform_async(job()).await.unwrap();
    assert_eq!(
        during,
        Pushed::Duplicate(pushed.jid().clone()),
        "the late acknowledgement released the rerun's lock"
    );
}

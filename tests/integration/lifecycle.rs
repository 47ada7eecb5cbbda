//! Process lifecycle and crash safety with real processes: worker processes killed with
//! `kill -9`, stopped with SIGTERM, crashed by a poison job, quieted and stopped from Ruby's
//! API; Redis killed and restarted under them. A ledger file records what ran.

use std::time::{Duration, Instant};

use jobs::Worker;
use redis::AsyncCommands;

use crate::support::jobs::{
    AbortProcess, BlockThread, CallLog, Gauge, Ledger, Ledgered, push_ledgered, worker,
};
use crate::support::{
    ChildWorker, LedgerView, RunningWorker, TestRedis, eventually, ledger_path, now, ruby,
    sorted_set,
};

/// The worker process the tests below (and `periodic.rs`) start (`ChildWorker`): the test jobs,
/// queues `faults` and `default`, heartbeat every 1 s expiring after 3 s, recovery sweeps every
/// 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a worker process by the other tests of this module"]
async fn child_worker() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by the lifecycle tests, not directly"
    );
    // JOBS_LOG_FORMAT (as `from_cli` reads it, through the flags' parsing) picks the worker's
    // own logging; otherwise plain text at info, whatever RUST_LOG says.
    if std::env::var_os(jobs::worker::LOG_FORMAT_VAR).is_some() {
        let flags = Worker::from_args(["worker"]).expect("the log format");
        jobs::worker::init_logging(flags.config().log_format, false);
    } else {
        let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    }
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let ledger = Ledger(std::env::var_os("JOBS_TEST_LEDGER").map(Into::into));
    let client = jobs::Client::from_env().expect("REDIS_URL");
    let mut worker = Worker::new()
        .client(&client)
        .queues(["faults", "default"])
        .concurrency(number("JOBS_TEST_CONCURRENCY", 10) as usize)
        .timeout(Duration::from_millis(number("JOBS_TEST_TIMEOUT_MS", 5_000)));
    // JOBS_TEST_DEFAULT_LIVENESS keeps the default heartbeat, liveness and recovery timing.
    if std::env::var_os("JOBS_TEST_DEFAULT_LIVENESS").is_none() {
        worker = worker
            .heartbeat(Duration::from_secs(1), Duration::from_secs(3))
            .recovery(
                Duration::from_secs(1),
                number("JOBS_TEST_MAX_RECOVERIES", 2) as u32,
            );
    }
    // JOBS_TEST_PERIODIC: a periodic entry `ticks` of that cron, pushing `Tick` to the queue
    // `ticks`, which no test worker takes from (the periodic tests count its jobs).
    if let Ok(cron) = std::env::var("JOBS_TEST_PERIODIC") {
        worker = worker.periodic_entry(
            jobs::periodic::Periodic::class("ticks", cron, "Tick", Vec::new()).queue("ticks"),
        );
    }
    worker
        .poll_interval(Duration::from_millis(200))
        .state(ledger)
        .state(CallLog::default())
        .state(Gauge::default())
        .run()
        .await
        .expect("the worker runs until stopped");
}

/// Pushes `jobs` jobs, runs them on two worker processes, `kill -9`s one of them `kills` times
/// (respawning it at once), and checks that every job ran, and that a job ran again only after
/// a run in a killed process; returns how many ran twice.
async fn kill_9_repeatedly(jobs: u64, kills: usize) -> usize {
    let redis = TestRedis::start();
    let ledger = ledger_path("kill9");
    let jids = push_ledgered(
        &redis,
        (0..jobs).map(|n| Ledgered {
            millis: 20 + n % 60,
        }),
    )
    .await;
    // A job caught by several kills is not a poison job here: never bury it.
    let env = [
        ("JOBS_TEST_CONCURRENCY", "10"),
        ("JOBS_TEST_MAX_RECOVERIES", "100"),
    ];
    let mut workers = [
        ChildWorker::spawn(&redis.url(), &ledger, &env),
        ChildWorker::spawn(&redis.url(), &ledger, &env),
    ];
    let mut killed = Vec::new();
    for round in 0..kills {
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let victim = &mut workers[round % 2];
        killed.push(victim.pid());
        victim.kill9();
        *victim = ChildWorker::spawn(&redis.url(), &ledger, &env);
    }
    eventually(
        Duration::from_secs(300),
        "every job to be done",
        async || LedgerView::read(&ledger).done.len() == jids.len(),
    )
    .await;
    let view = LedgerView::read(&ledger);
    assert_eq!(view.done, jids, "0 of {jobs} lost");
    // Running when its process was killed, or finished with its acknowledgement not yet sent:
    // nothing else runs a job twice.
    let rerun = view.rerun_after_a_live_run(&killed);
    assert!(
        rerun.is_empty(),
        "{} jobs ran again after a run in a process that lived on: {:?}",
        rerun.len(),
        &rerun[..rerun.len().min(10)]
    );
    let duplicates = view.duplicates();
    println!("kill -9: {jobs} jobs, {kills} kills, 0 lost, {duplicates} run again");
    duplicates
}

#[tokio::test]
async fn kill_9_mid_run_loses_no_job() {
    kill_9_repeatedly(2_000, 3).await;
}

#[tokio::test]
#[ignore = "long: 20,000 jobs and 10 kills; CI runs the 2,000-job version"]
async fn kill_9_ten_times_loses_none_of_20000_jobs() {
    kill_9_repeatedly(20_000, 10).await;
}

/// Starts a worker process with `env` on four jobs of `millis`, `kill -9`s it once they run,
/// with a second one started, and returns how long until a job ran again; every job then
/// finishes, each having run twice.
async fn rerun_after_kill_9(name: &str, env: &[(&str, &str)], millis: u64) -> Duration {
    let redis = TestRedis::start();
    let ledger = ledger_path(name);
    let jids = push_ledgered(&redis, (0..4).map(|_| Ledgered { millis })).await;
    let mut first = ChildWorker::spawn(&redis.url(), &ledger, env);
    eventually(Duration::from_secs(10), "the jobs to start", async || {
        LedgerView::read(&ledger).runs.len() == 4
    })
    .await;
    let survivor = ChildWorker::spawn(&redis.url(), &ledger, env);
    first.kill9();
    let killed = Instant::now();
    eventually(Duration::from_secs(40), "a job to run again", async || {
        LedgerView::read(&ledger)
            .runs
            .values()
            .any(|runs| *runs == 2)
    })
    .await;
    let recovery = killed.elapsed();
    eventually(Duration::from_secs(20), "the jobs to finish", async || {
        LedgerView::read(&ledger).done == jids
    })
    .await;
    assert!(
        LedgerView::read(&ledger)
            .runs
            .values()
            .all(|runs| *runs == 2)
    );
    drop(survivor);
    recovery
}

#[tokio::test]
async fn a_killed_workers_jobs_run_again_within_ttl_plus_sweep() {
    let recovery = rerun_after_kill_9("recovery", &[], 2_500).await;
    println!("recovery after kill -9: {recovery:?} (liveness ttl 3 s, sweep 1 s)");
    // Liveness TTL 3 s + sweep 1 s (±20 %) + a fetch.
    assert!(
        recovery <= Duration::from_secs(6),
        "recovered after {recovery:?}"
    );
}

#[tokio::test]
async fn with_default_settings_a_killed_workers_jobs_run_again_within_20_s() {
    let defaults = [("JOBS_TEST_DEFAULT_LIVENESS", "1")];
    let recovery = rerun_after_kill_9("default-recovery", &defaults, 3_000).await;
    println!("recovery after kill -9, default settings: {recovery:?}");
    // Liveness TTL 10 s + a sweep every 5 s (±20 %) + a fetch; Sidekiq's hash lives 60 s.
    assert!(
        recovery <= Duration::from_secs(20),
        "recovered after {recovery:?}"
    );
}

#[tokio::test]
async fn a_worker_whose_threads_are_all_blocked_is_not_presumed_dead() {
    let redis = TestRedis::start();
    let ledger = ledger_path("blocked");
    let defaults = [("JOBS_TEST_DEFAULT_LIVENESS", "1")];
    // The child's runtime has two threads: two jobs blocking them for 15 s stop every task of
    // it, the heartbeat's included, for longer than the liveness TTL (10 s).
    let client = redis.client();
    for _ in 0..2 {
        client
            .perform_async(BlockThread { millis: 15_000 })
            .await
            .unwrap();
    }
    let blocked = ChildWorker::spawn(&redis.url(), &ledger, &defaults);
    eventually(Duration::from_secs(10), "both jobs to block", async || {
        LedgerView::read(&ledger).runs.len() == 2
    })
    .await;
    let watcher = ChildWorker::spawn(&redis.url(), &ledger, &defaults);
    eventually(Duration::from_secs(30), "the jobs to finish", async || {
        LedgerView::read(&ledger).done.len() == 2
    })
    .await;
    // Two recovery sweeps later, still no job ran twice.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let view = LedgerView::read(&ledger);
    assert_eq!(view.duplicates(), 0, "a live worker was presumed dead");
    drop((blocked, watcher));
}

#[tokio::test]
async fn a_paused_worker_does_not_run_the_jobs_it_took_ahead_once_they_were_recovered() {
    let redis = TestRedis::start();
    let ledger = ledger_path("paused");
    let jids = push_ledgered(&redis, (0..40).map(|_| Ledgered { millis: 400 })).await;
    // Concurrency 2 takes 20 jobs a fetch: 18 wait, taken ahead, in the working list.
    let mut paused = ChildWorker::spawn(&redis.url(), &ledger, &[("JOBS_TEST_CONCURRENCY", "2")]);
    eventually(
        Duration::from_secs(10),
        "the first jobs to start",
        async || !LedgerView::read(&ledger).runs.is_empty(),
    )
    .await;
    paused.signal("STOP");
    let survivor = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    // Liveness TTL 3 s + a sweep every 1 s: the paused process's jobs run elsewhere.
    tokio::time::sleep(Duration::from_secs(6)).await;
    paused.signal("CONT");
    eventually(
        Duration::from_secs(30),
        "every job to be done",
        async || LedgerView::read(&ledger).done == jids,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let duplicates = LedgerView::read(&ledger).duplicates();
    println!("paused worker: {duplicates} jobs ran twice (2 were running at the pause)");
    assert!(
        duplicates <= 2,
        "{duplicates} jobs ran twice; only the 2 running at the pause may"
    );
    assert!(paused.is_running());
    drop((paused, survivor));
}

#[tokio::test]
async fn a_paused_idle_worker_does_not_run_what_its_blocking_fetch_brought_once_recovered() {
    let redis = TestRedis::start();
    let ledger = ledger_path("paused-idle");
    let mut paused = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    // Idle: its blocking fetches wait on the queues.
    tokio::time::sleep(Duration::from_secs(2)).await;
    paused.signal("STOP");
    // Redis moves these into the paused worker's working list for its waiting `BLMOVE`s.
    let jids = push_ledgered(&redis, (0..2).map(|_| Ledgered { millis: 100 })).await;
    let survivor = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(Duration::from_secs(15), "the jobs to be done", async || {
        LedgerView::read(&ledger).done == jids
    })
    .await;
    paused.signal("CONT");
    // The `BLMOVE` replies reach the woken worker now; it must not run those jobs again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(LedgerView::read(&ledger).duplicates(), 0);
    assert!(paused.is_running());
    drop((paused, survivor));
}

#[tokio::test]
async fn sigterm_finishes_short_jobs_and_hands_long_ones_back() {
    let redis = TestRedis::start();
    let ledger = ledger_path("sigterm");
    let short = push_ledgered(&redis, (0..5).map(|_| Ledgered { millis: 300 })).await;
    let long = push_ledgered(&redis, (0..2).map(|_| Ledgered { millis: 60_000 })).await;
    let mut worker = ChildWorker::spawn(&redis.url(), &ledger, &[("JOBS_TEST_TIMEOUT_MS", "2000")]);
    eventually(Duration::from_secs(10), "every job to start", async || {
        LedgerView::read(&ledger).runs.len() == 7
    })
    .await;
    let identity: Vec<String> = redis.raw().await.smembers("processes").await.unwrap();
    assert_eq!(identity.len(), 1, "the worker's heartbeat is up");

    // Within the 2 s timeout + 5 s.
    let took = worker.terminate_within(Duration::from_secs(2 + 5));
    println!("SIGTERM to exit: {took:?} (timeout 2 s)");

    let view = LedgerView::read(&ledger);
    assert!(
        short
            .iter()
            .all(|jid| view.done.contains(jid) && view.runs[jid] == 1)
    );
    assert!(long.iter().all(|jid| !view.done.contains(jid)));
    let queued = redis.queued_jids("faults").await;
    assert_eq!(queued, long, "the long jobs are back in their queue");
    let mut raw = redis.raw().await;
    let processes: Vec<String> = raw.smembers("processes").await.unwrap();
    assert!(
        processes.is_empty(),
        "the heartbeat is cleared: {processes:?}"
    );
    let keys = redis.keys().await;
    assert!(
        !keys
            .iter()
            .any(|key| key.starts_with("jobs:working:") || key.ends_with(":work")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_job_that_crashes_its_worker_ends_in_the_dead_set() {
    let redis = TestRedis::start();
    let ledger = ledger_path("poison");
    let client = redis.client();
    let poison = client.perform_async(AbortProcess {}).await.unwrap();
    let others = push_ledgered(&redis, (0..30).map(|_| Ledgered { millis: 20 })).await;
    // Concurrency 4: other jobs run beside the poison job when it first crashes the process.
    let env = [
        ("JOBS_TEST_MAX_RECOVERIES", "1"),
        ("JOBS_TEST_CONCURRENCY", "4"),
    ];
    let mut worker = ChildWorker::spawn(&redis.url(), &ledger, &env);
    let mut crashes = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sorted_set(&redis, "dead").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the poison job never reached the dead set"
        );
        if !worker.is_running() {
            crashes += 1;
            worker = ChildWorker::spawn(&redis.url(), &ledger, &env);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead[0].0["jid"], poison.as_str());
    assert_eq!(dead[0].0["error_class"], "jobs::Abandoned");
    assert_eq!(dead[0].0["jobs_recoveries"], 2);
    // The first crash, before any beat listed the job as running, is spared.
    assert!(crashes >= 3, "{crashes} crashes");
    eventually(
        Duration::from_secs(20),
        "the other jobs to finish",
        async || LedgerView::read(&ledger).done == others,
    )
    .await;
}

#[tokio::test]
async fn jobs_taken_ahead_are_not_counted_as_recovered_when_their_process_dies() {
    let redis = TestRedis::start();
    let ledger = ledger_path("ahead");
    // Concurrency 2: the two long jobs run, the ten behind them are taken ahead and wait.
    let running = push_ledgered(&redis, (0..2).map(|_| Ledgered { millis: 60_000 })).await;
    let ahead = push_ledgered(&redis, (0..10).map(|_| Ledgered { millis: 20 })).await;
    let mut child = ChildWorker::spawn(&redis.url(), &ledger, &[("JOBS_TEST_CONCURRENCY", "2")]);
    eventually(
        Duration::from_secs(10),
        "a beat to list the running jobs, the others taken ahead",
        async || {
            let work = jobs::api::WorkSet::new(&redis.client()).list().await;
            work.is_ok_and(|work| work.len() == 2) && redis.queue("faults").await.is_empty()
        },
    )
    .await;
    child.kill9();
    // A process that takes from another queue recovers the dead one's jobs and runs none.
    let recovering = RunningWorker::start(
        worker(&redis, &CallLog::default())
            .queues(["elsewhere"])
            .recovery(Duration::from_millis(200), 2),
    );
    eventually(
        Duration::from_secs(20),
        "the dead process's jobs to be handed back",
        async || redis.queue("faults").await.len() == 12,
    )
    .await;
    recovering.stop(Duration::from_secs(10)).await;
    for job in redis.queue("faults").await {
        let jid = job["jid"].as_str().unwrap();
        if running.contains(jid) {
            assert_eq!(job["jobs_recoveries"], 1, "a job that ran: {job}");
            assert!(job.get("jobs_recovered_unseen").is_none(), "{job}");
        } else {
            assert!(ahead.contains(jid));
            assert!(
                job.get("jobs_recoveries").is_none(),
                "a job that never started is not counted: {job}"
            );
            assert_eq!(job["jobs_recovered_unseen"], 1, "{job}");
        }
    }
    assert_eq!(LedgerView::read(&ledger).runs.len(), 2, "no other job ran");
}

/// The working list `jobs:working:<identity>` of a `jobs` process killed with `kill -9`, with
/// `jobs` jobs (queue `recovered`) taken in the order of their jids `<identity>-<n>`; the
/// process stays listed in `jobs:workers`, with no liveness key and no heartbeat left.
async fn leave_dead_process(redis: &TestRedis, identity: &str, jobs: usize) -> Vec<String> {
    let mut raw = redis.raw().await;
    let jids: Vec<String> = (0..jobs).map(|n| format!("{identity}-{n}")).collect();
    let taken: Vec<String> = jids
        .iter()
        .map(|jid| {
            serde_json::json!({
                "class": "Recovered", "args": [], "queue": "recovered", "retry": true,
                "jid": jid, "created_at": now(), "enqueued_at": now(),
            })
            .to_string()
        })
        .collect();
    let _: () = raw
        .lpush(format!("jobs:working:{identity}"), &taken)
        .await
        .expect("LPUSH");
    let _: () = raw.sadd("jobs:workers", identity).await.expect("SADD");
    jids
}

#[tokio::test]
async fn one_sweep_hands_back_every_job_of_many_dead_processes_once() {
    let redis = TestRedis::start();
    let mut expected = std::collections::HashSet::new();
    for process in 0..10 {
        let jids = leave_dead_process(&redis, &format!("deadhost:{process}:0123"), 300).await;
        expected.extend(jids);
    }
    // A process among them whose liveness key is set is alive: its jobs are its own.
    let alive = leave_dead_process(&redis, "livehost:1:0123", 50).await;
    let mut raw = redis.raw().await;
    let _: () = raw
        .set_ex("jobs:alive:livehost:1:0123", "1", 60)
        .await
        .expect("SET");
    // A process that takes from another queue recovers them and runs none.
    let recovering = RunningWorker::start(
        worker(&redis, &CallLog::default())
            .queues(["elsewhere"])
            .recovery(Duration::from_millis(200), 2),
    );
    eventually(
        Duration::from_secs(60),
        "every dead process's jobs to be handed back",
        async || {
            let queued: Result<usize, _> = redis.raw().await.llen("queue:recovered").await;
            queued.is_ok_and(|queued| queued >= expected.len())
        },
    )
    .await;
    recovering.stop(Duration::from_secs(10)).await;
    let queued = redis.queue("recovered").await;
    assert_eq!(queued.len(), expected.len(), "each job handed back once");
    let jids: std::collections::HashSet<String> = queued
        .iter()
        .map(|job| job["jid"].as_str().expect("a jid").to_owned())
        .collect();
    assert_eq!(jids, expected, "every job of the dead, and only theirs");
    let workers: Vec<String> = raw.smembers("jobs:workers").await.expect("SMEMBERS");
    assert!(
        !workers
            .iter()
            .any(|identity| identity.starts_with("deadhost:")),
        "the dead are forgotten: {workers:?}"
    );
    let lists: Vec<String> = raw.keys("jobs:working:*").await.expect("KEYS");
    assert_eq!(
        lists,
        ["jobs:working:livehost:1:0123"],
        "only the live one's list is left"
    );
    let kept: Vec<String> = raw
        .lrange("jobs:working:livehost:1:0123", 0, -1)
        .await
        .expect("LRANGE");
    assert_eq!(kept.len(), alive.len(), "the live process keeps its jobs");
}

#[tokio::test]
async fn ruby_sees_the_process_and_its_work_and_can_quiet_and_stop_it() {
    let redis = TestRedis::start();
    let ledger = ledger_path("heartbeat");
    let jid = push_ledgered(&redis, [Ledgered { millis: 30_000 }]).await;
    let mut worker = ChildWorker::spawn(&redis.url(), &ledger, &[("JOBS_TEST_CONCURRENCY", "3")]);
    eventually(Duration::from_secs(10), "the job to start", async || {
        LedgerView::read(&ledger).runs.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let seen = ruby(
        &redis.url(),
        r#"
        process = Sidekiq::ProcessSet.new.first
        work = Sidekiq::Workers.new.map { |pid, tid, work| work }
        puts "RESULT:" + JSON.generate(
          "processes" => Sidekiq::ProcessSet.new.size, "identity" => process.identity,
          "hostname" => process["hostname"], "pid" => process["pid"],
          "concurrency" => process["concurrency"], "busy" => process["busy"],
          "queues" => process["queues"], "beat" => process["beat"],
          "quiet" => process.stopping?, "workers" => Sidekiq::Workers.new.size,
          "work_queue" => work.first && work.first["queue"],
          "work_jid" => work.first && work.first["payload"]["jid"],
          "run_at" => work.first && work.first["run_at"])
        "#,
    );
    assert_eq!(seen["processes"], 1);
    assert_eq!(seen["pid"], worker.pid());
    assert_eq!(seen["concurrency"], 3);
    assert_eq!(seen["busy"], 1);
    assert_eq!(seen["queues"], serde_json::json!(["faults", "default"]));
    assert!((now() - seen["beat"].as_f64().unwrap()).abs() < 5.0);
    assert_eq!(seen["quiet"], false);
    assert_eq!(seen["workers"], 1);
    assert_eq!(seen["work_queue"], "faults");
    assert!(jid.contains(seen["work_jid"].as_str().unwrap()));
    assert!(seen["run_at"].is_i64());
    let identity = seen["identity"].as_str().unwrap().to_owned();

    ruby(
        &redis.url(),
        r#"Sidekiq::ProcessSet.new.first.quiet!
        puts "RESULT:true""#,
    );
    eventually(
        Duration::from_secs(5),
        "the process to show quiet",
        async || {
            let quiet: Option<String> = redis.raw().await.hget(&identity, "quiet").await.unwrap();
            quiet.as_deref() == Some("true")
        },
    )
    .await;
    ruby(
        &redis.url(),
        r#"Sidekiq::ProcessSet.new.first.stop!
        puts "RESULT:true""#,
    );
    let status = worker
        .wait_exit(Duration::from_secs(15))
        .expect("Stop from Ruby's API stops the process");
    assert!(status.success(), "{status}");
    assert_eq!(
        redis.queue("faults").await.len(),
        1,
        "the long job was handed back"
    );
}

#[tokio::test]
async fn a_worker_survives_redis_restarting_and_carries_on() {
    let mut redis = TestRedis::start();
    let ledger = ledger_path("redis-restart");
    let mut worker = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    let first = push_ledgered(&redis, [Ledgered { millis: 10 }]).await;
    eventually(Duration::from_secs(10), "the first job", async || {
        LedgerView::read(&ledger).done == first
    })
    .await;
    redis.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.restart();
    eventually(
        Duration::from_secs(5),
        "the heartbeat to come back",
        async || {
            let processes: Vec<String> = redis.raw().await.smembers("processes").await.unwrap();
            processes.len() == 1
        },
    )
    .await;
    let second = push_ledgered(&redis, [Ledgered { millis: 10 }]).await;
    eventually(
        Duration::from_secs(10),
        "a job pushed after the restart",
        async || LedgerView::read(&ledger).done.is_superset(&second),
    )
    .await;
    assert!(worker.is_running(), "the worker never exited");
}

/// The deploy sequence Sidekiq recommends: quiet early (SIGTSTP), stop later (SIGTERM). Going
/// quiet waits out the idle fetches (up to 2 s) to hand back what they bring; a stop arriving
/// then must not queue behind that wait, so the running job gets its timeout and no more.
#[tokio::test]
async fn a_stop_right_after_quiet_keeps_to_the_shutdown_timeout() {
    let redis = TestRedis::start();
    let ledger = ledger_path("quiet-then-stop");
    let long = push_ledgered(&redis, [Ledgered { millis: 60_000 }]).await;
    let mut worker = ChildWorker::spawn(&redis.url(), &ledger, &[("JOBS_TEST_TIMEOUT_MS", "1000")]);
    // The worker waits on its queues as soon as the job has started.
    eventually(Duration::from_secs(10), "the job to start", async || {
        LedgerView::read(&ledger).runs.len() == 1
    })
    .await;
    worker.signal("TSTP");
    eventually(
        Duration::from_secs(5),
        "the worker to go quiet",
        async || worker.log().contains("quiet: taking no more jobs"),
    )
    .await;
    let took = worker.terminate_within(Duration::from_secs(5));
    println!("SIGTERM after quiet to exit: {took:?} (timeout 1 s)");
    assert!(
        took < Duration::from_millis(1_900),
        "the stop waited {took:?}, beyond its 1 s timeout, behind the quiet's idle fetches"
    );
    assert_eq!(
        redis.queued_jids("faults").await,
        long,
        "the job was handed back"
    );
}

#[tokio::test]
async fn no_acknowledged_push_is_lost_when_redis_is_killed_with_aof() {
    let mut redis =
        TestRedis::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"], None);
    let jids = push_ledgered(&redis, (0..5_000).map(|_| Ledgered { millis: 0 })).await;
    redis.restart_keeping_data();
    let queued = redis.queued_jids("faults").await;
    assert_eq!(queued, jids);
}

#[tokio::test]
async fn sigterm_exits_on_time_even_when_a_job_blocks_its_thread() {
    let redis = TestRedis::start();
    let ledger = ledger_path("blocking");
    let jid = redis
        .client()
        .perform_async(BlockThread { millis: 120_000 })
        .await
        .unwrap();
    let mut worker = ChildWorker::spawn(&redis.url(), &ledger, &[("JOBS_TEST_TIMEOUT_MS", "1000")]);
    eventually(Duration::from_secs(10), "the job to start", async || {
        LedgerView::read(&ledger).runs.len() == 1
    })
    .await;
    // Within the 1 s timeout + 5 s.
    let took = worker.terminate_within(Duration::from_secs(1 + 5));
    println!("SIGTERM with a blocked thread to exit: {took:?} (timeout 1 s)");
    let queued = redis.queue("faults").await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0]["jid"],
        jid.as_str(),
        "the blocked job was handed back"
    );
}

#[tokio::test]
async fn a_stalled_worker_presumed_dead_neither_loses_nor_doubles_its_jobs() {
    let redis = TestRedis::start();
    let ledger = ledger_path("stale");
    let jids = push_ledgered(&redis, (0..3).map(|_| Ledgered { millis: 3_000 })).await;
    let stale = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(Duration::from_secs(10), "the jobs to start", async || {
        LedgerView::read(&ledger).runs.len() == 3
    })
    .await;
    // Freeze it past its heartbeat's TTL: the other worker presumes it dead and recovers.
    stale.signal("STOP");
    let other = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(
        Duration::from_secs(15),
        "the recovered jobs to finish",
        async || LedgerView::read(&ledger).done == jids,
    )
    .await;
    // Wake it: its jobs finish there too, but settling finds them gone and changes nothing.
    stale.signal("CONT");
    eventually(
        Duration::from_secs(10),
        "the stale worker's runs to end",
        async || {
            let text = std::fs::read_to_string(&ledger).unwrap_or_default();
            text.lines().filter(|line| line.starts_with("done")).count() == 6
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        LedgerView::read(&ledger)
            .runs
            .values()
            .all(|runs| *runs == 2)
    );
    assert!(
        redis.queue("faults").await.is_empty(),
        "nothing was pushed back twice"
    );
    assert!(sorted_set(&redis, "retry").await.is_empty());
    assert!(sorted_set(&redis, "dead").await.is_empty());
    let mut raw = redis.raw().await;
    for key in redis
        .keys()
        .await
        .iter()
        .filter(|key| key.starts_with("jobs:working:"))
    {
        let left: u64 = raw.llen(key).await.unwrap();
        assert_eq!(left, 0, "{key} still holds jobs");
    }
    drop((stale, other));
}

#[tokio::test]
async fn a_worker_waiting_out_a_long_shutdown_is_not_presumed_dead() {
    let redis = TestRedis::start();
    let ledger = ledger_path("long-shutdown");
    let jids = push_ledgered(&redis, [Ledgered { millis: 6_000 }]).await;
    // A shutdown timeout (8 s) longer than the heartbeat's TTL (3 s).
    let mut stopping =
        ChildWorker::spawn(&redis.url(), &ledger, &[("JOBS_TEST_TIMEOUT_MS", "8000")]);
    eventually(Duration::from_secs(10), "the job to start", async || {
        LedgerView::read(&ledger).runs.len() == 1
    })
    .await;
    // A live peer whose recovery sweeps (every 1 s) would take the job if the stopping
    // worker's heartbeat lapsed.
    let _other = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    eventually(
        Duration::from_secs(10),
        "the second worker to beat",
        async || {
            let live: Vec<String> = redis.raw().await.smembers("processes").await.unwrap();
            live.len() == 2
        },
    )
    .await;
    stopping.terminate_within(Duration::from_secs(8 + 5));
    let view = LedgerView::read(&ledger);
    assert_eq!(view.done, jids);
    assert!(
        view.runs.values().all(|runs| *runs == 1),
        "the job ran once: the stopping worker kept beating"
    );
}

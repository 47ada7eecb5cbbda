//! Periodic jobs with real worker processes on a real Redis: every tick pushed once across
//! processes killed with `kill -9`, one catch-up after downtime, an older definition giving way
//! to a newer one, and bad entries refused at start.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jobs::Worker;
use jobs::periodic::{CatchUp, Periodic};

use crate::support::jobs::{CallLog, worker};
use crate::support::periodic::hash_of;
use crate::support::{ChildWorker, RunningWorker, TestRedis, eventually, ledger_path};

/// The ticks (epoch ms) of the jobs waiting in `queue`, each with how many jobs carry it.
async fn ticks_in(redis: &TestRedis, queue: &str) -> BTreeMap<i64, usize> {
    let mut ticks = BTreeMap::new();
    for job in redis.queue(queue).await {
        let seconds = job["jobs_tick"]
            .as_f64()
            .expect("a periodic job carries its tick");
        *ticks.entry((seconds * 1000.0).round() as i64).or_insert(0) += 1;
    }
    ticks
}

/// The ticks of `ticks` that are not one second after the one before.
fn gaps(ticks: &BTreeMap<i64, usize>) -> Vec<(i64, i64)> {
    let keys: Vec<i64> = ticks.keys().copied().collect();
    keys.windows(2)
        .filter(|pair| pair[1] - pair[0] != 1_000)
        .map(|pair| (pair[0], pair[1]))
        .collect()
}

#[tokio::test]
async fn every_tick_is_pushed_once_by_three_processes_while_one_is_killed_every_10_s() {
    let redis = TestRedis::start();
    let ledger = ledger_path("periodic-kill");
    let env = [("JOBS_TEST_PERIODIC", "* * * * * *")];
    let spawn = || ChildWorker::spawn(&redis.url(), &ledger, &env);
    let mut workers = [spawn(), spawn(), spawn()];
    eventually(Duration::from_secs(20), "the first tick", async || {
        !redis.queue("ticks").await.is_empty()
    })
    .await;
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let victim = &mut workers[kills % 3];
        victim.kill9();
        *victim = spawn();
        kills += 1;
    }
    drop(workers);
    let ticks = ticks_in(&redis, "ticks").await;
    let doubled: Vec<_> = ticks.iter().filter(|(_, count)| **count > 1).collect();
    assert!(doubled.is_empty(), "ticks pushed twice: {doubled:?}");
    assert_eq!(gaps(&ticks), [], "ticks missed");
    assert!(ticks.len() >= 60, "{} ticks in 60 s", ticks.len());
    println!(
        "periodic: {} ticks of a 1-second entry on 3 processes, {kills} kill -9s: none twice, none missed",
        ticks.len()
    );
}

/// libfaketime, which `scripts/setup` installs (Debian's `faketime`).
fn libfaketime() -> String {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.exists());
    found
        .expect("libfaketime (apt-get install faketime; scripts/setup does)")
        .display()
        .to_string()
}

#[tokio::test]
async fn processes_whose_clocks_are_3_s_off_push_every_tick_once_and_none_early() {
    let redis = TestRedis::start();
    let ledger = ledger_path("periodic-skew");
    let preload = libfaketime();
    let spawn = |offset: &str| {
        let mut env = vec![("JOBS_TEST_PERIODIC", "* * * * * *")];
        if !offset.is_empty() {
            // The wall clock only: timers keep the real monotonic clock.
            env.extend([
                ("LD_PRELOAD", preload.as_str()),
                ("FAKETIME", offset),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ]);
        }
        ChildWorker::spawn(&redis.url(), &ledger, &env)
    };
    let workers = [spawn("+3s"), spawn("-3s"), spawn("")];
    let mut raw = redis.raw().await;
    // Only the periodic scripts call `TIME`.
    let claims_before = redis.calls("time").await;
    let started = Instant::now();
    let mut early = Vec::new();
    while started.elapsed() < Duration::from_secs(20) {
        // The queue first, then the time: a tick pushed in between is not early.
        let ticks = ticks_in(&redis, "ticks").await;
        // Redis's clock, read without `TIME`, which the script calls count.
        let server: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut raw)
            .await
            .unwrap();
        let micros: i64 = server
            .lines()
            .find_map(|line| line.strip_prefix("server_time_usec:"))
            .and_then(|value| value.trim().parse().ok())
            .expect("INFO server has server_time_usec");
        let redis_now = micros / 1000;
        if let Some((newest, _)) = ticks.last_key_value()
            && *newest > redis_now
        {
            early.push((*newest, redis_now));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let claims = redis.calls("time").await - claims_before;
    drop(workers);
    // One claim per tick per process, and a few declarations: the process whose clock runs
    // ahead waits for Redis's clock instead of asking again and again.
    assert!(
        claims <= 3 * 20 * 2,
        "{claims} periodic script calls in 20 s"
    );
    assert!(
        early.is_empty(),
        "pushed before their tick by Redis's clock: {early:?}"
    );
    let ticks = ticks_in(&redis, "ticks").await;
    let doubled: Vec<_> = ticks.iter().filter(|(_, count)| **count > 1).collect();
    assert!(doubled.is_empty(), "ticks pushed twice: {doubled:?}");
    assert_eq!(gaps(&ticks), [], "ticks missed");
    assert!(ticks.len() >= 15, "{} ticks in 20 s", ticks.len());
}

/// An entry of `cron` named `name`, pushing `Tick` to the queue of its own name.
fn ticking(name: &str, cron: &str, catch_up: CatchUp) -> Periodic {
    Periodic::class(name, cron, "Tick", Vec::new())
        .queue(name)
        .catch_up(catch_up)
}

#[tokio::test]
async fn after_downtime_an_entry_runs_once_for_the_ticks_missed_or_not_at_all() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    // Every 20 s: longer than the grace (10 s) within which a late tick is still on time.
    let cron = "*/20 * * * * *";
    let entries = || {
        [
            ticking("catch_one", cron, CatchUp::One),
            ticking("catch_none", cron, CatchUp::None),
        ]
    };
    let start = || {
        let mut built = worker(&redis, &log).queues(["elsewhere"]);
        for entry in entries() {
            built = built.periodic_entry(entry);
        }
        RunningWorker::start(built)
    };
    let first = start();
    eventually(
        Duration::from_secs(20),
        "a tick of each entry",
        async || {
            !redis.queue("catch_one").await.is_empty()
                && !redis.queue("catch_none").await.is_empty()
        },
    )
    .await;
    first.stop(Duration::from_secs(10)).await;
    let before = ticks_in(&redis, "catch_one").await;
    let last_before = *before.keys().last().unwrap();
    // Down across two ticks, restarting more than the grace after the second (and 9 s before
    // the next, for the worker to start on a loaded machine).
    let restart_at = last_before + 2 * 20_000 + 11_000;
    let wait = restart_at - chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let second = start();
    eventually(Duration::from_secs(10), "the catch-up run", async || {
        ticks_in(&redis, "catch_one").await.len() > before.len()
    })
    .await;
    // Both entries' next tick, on schedule after the restart.
    let next_tick = last_before + 3 * 20_000;
    eventually(Duration::from_secs(20), "the next tick", async || {
        ticks_in(&redis, "catch_one").await.contains_key(&next_tick)
            && ticks_in(&redis, "catch_none")
                .await
                .contains_key(&next_tick)
    })
    .await;
    second.stop(Duration::from_secs(10)).await;
    let one = ticks_in(&redis, "catch_one").await;
    let missed: Vec<i64> = one
        .keys()
        .copied()
        .filter(|tick| *tick > last_before && *tick < next_tick)
        .collect();
    assert_eq!(
        missed,
        [last_before + 2 * 20_000],
        "`one`: a single run, for the newest tick missed"
    );
    let none = ticks_in(&redis, "catch_none").await;
    assert!(
        none.keys()
            .all(|tick| *tick <= last_before || *tick >= next_tick),
        "`none`: no run for the ticks missed: {none:?}"
    );
    assert!(one.values().chain(none.values()).all(|count| *count == 1));
}

#[tokio::test]
async fn a_process_with_an_older_definition_leaves_the_entry_to_the_newer_one() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let every_second = "* * * * * *";
    let older = RunningWorker::start(
        worker(&redis, &log)
            .queues(["elsewhere"])
            .periodic_entry(ticking("report", every_second, CatchUp::One).queue("old")),
    );
    eventually(
        Duration::from_secs(10),
        "the older definition's ticks",
        async || redis.queue("old").await.len() >= 2,
    )
    .await;
    // A deploy: the same entry, now pushing to another queue, declared by a newer process.
    let newer = RunningWorker::start(
        worker(&redis, &log)
            .queues(["elsewhere"])
            .periodic_entry(ticking("report", every_second, CatchUp::One).queue("new")),
    );
    eventually(
        Duration::from_secs(10),
        "the newer definition's ticks",
        async || !redis.queue("new").await.is_empty(),
    )
    .await;
    let old_then = ticks_in(&redis, "old").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let old_now = ticks_in(&redis, "old").await;
    let new = ticks_in(&redis, "new").await;
    assert_eq!(old_then, old_now, "the older process pushed nothing more");
    assert!(new.len() >= 4, "{new:?}");
    let all: BTreeMap<i64, usize> =
        old_now
            .keys()
            .chain(new.keys())
            .fold(BTreeMap::new(), |mut all, tick| {
                *all.entry(*tick).or_insert(0) += 1;
                all
            });
    assert!(
        all.values().all(|count| *count == 1),
        "a tick pushed twice: {all:?}"
    );
    assert_eq!(gaps(&all), [], "no tick lost in the handover");
    older.stop(Duration::from_secs(10)).await;
    newer.stop(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_bad_entry_stops_the_worker_at_start_naming_it() {
    let redis = TestRedis::start();
    let bad_cron = worker(&redis, &CallLog::default())
        .periodic_entry(Periodic::class("digest", "0 3 * *", "Digest", Vec::new()))
        .drain()
        .await
        .expect_err("a cron expression of 4 fields");
    let message = bad_cron.to_string();
    assert!(message.contains("periodic entry `digest`"), "{message}");
    assert!(message.contains("has 4 fields"), "{message}");
    let bad_zone = worker(&redis, &CallLog::default())
        .periodic_entry(
            Periodic::class("digest", "@daily", "Digest", Vec::new()).timezone("Berlin"),
        )
        .drain()
        .await
        .expect_err("a zone that is not IANA's");
    assert!(bad_zone.to_string().contains("`Berlin`"), "{bad_zone}");
    let twice = worker(&redis, &CallLog::default())
        .periodic_entry(Periodic::class("digest", "@daily", "Digest", Vec::new()))
        .periodic_entry(Periodic::class("digest", "@hourly", "Digest", Vec::new()))
        .drain()
        .await
        .expect_err("two entries of one name");
    assert!(
        twice
            .to_string()
            .contains("two periodic entries are named `digest`"),
        "{twice}"
    );
    let dir = ledger_path("periodic-config");
    let file = dir.with_file_name("jobs.yml");
    std::fs::write(
        &file,
        "production:\n  periodic:\n    nightly:\n      cron: \"0 3 * * * * *\"\n      class: Nightly\n",
    )
    .unwrap();
    let from_file = Worker::from_args(["worker", "-e", "production", "-C", file.to_str().unwrap()])
        .expect_err("a cron expression of 7 fields");
    let message = from_file.to_string();
    assert!(message.contains("jobs.yml"), "{message}");
    assert!(message.contains("periodic entry `nightly`"), "{message}");
    assert!(message.contains("has 7 fields"), "{message}");
}

#[tokio::test]
async fn a_tick_s_job_is_an_ordinary_job_carrying_its_entry_and_tick() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let running = RunningWorker::start(
        worker(&redis, &log).queues(["elsewhere"]).periodic_entry(
            Periodic::class(
                "berlin",
                "* * * * * *",
                "Report",
                vec![serde_json::json!(7)],
            )
            .timezone("Europe/Berlin")
            .queue("reports"),
        ),
    );
    eventually(Duration::from_secs(10), "a tick", async || {
        !redis.queue("reports").await.is_empty()
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    let job = &redis.queue("reports").await[0];
    assert_eq!(job["class"], "Report");
    assert_eq!(job["args"], serde_json::json!([7]));
    assert_eq!(job["queue"], "reports");
    assert_eq!(job["retry"], true);
    assert_eq!(job["jobs_periodic"], "berlin");
    let tick = job["jobs_tick"].as_f64().unwrap();
    assert_eq!(tick.fract(), 0.0, "a whole second");
    assert!(job["enqueued_at"].as_f64().unwrap() >= tick);
    let mut raw = redis.raw().await;
    let queues: Vec<String> = redis::AsyncCommands::smembers(&mut raw, "queues")
        .await
        .unwrap();
    assert!(queues.contains(&"reports".to_owned()), "{queues:?}");
}

#[tokio::test]
async fn the_entry_records_how_its_last_job_ended() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let running = RunningWorker::start(
        worker(&redis, &log)
            .queues(["periodic"])
            .periodic_entry(
                Periodic::class("succeeds", "* * * * * *", "Record", vec!["tick".into()])
                    .queue("periodic"),
            )
            .periodic_entry(
                // The job's own options: `retry = 0`, so its first failure buries it.
                Periodic::job("buries", "* * * * * *", crate::support::jobs::BuryMe {})
                    .queue("periodic"),
            ),
    );
    let ending = async |name: &str| {
        let hash = hash_of(&redis, name).await;
        (
            hash.get("outcome").cloned(),
            hash.get("finished_jid").cloned(),
        )
    };
    eventually(
        Duration::from_secs(10),
        "both endings recorded",
        async || ending("succeeds").await.0.is_some() && ending("buries").await.0.is_some(),
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
    let (outcome, finished) = ending("succeeds").await;
    assert_eq!(outcome.as_deref(), Some("succeeded"));
    let (outcome, buried_jid) = ending("buries").await;
    assert_eq!(outcome.as_deref(), Some("dead"));
    let dead = crate::support::sorted_set(&redis, "dead").await;
    assert!(
        dead.iter()
            .any(|(job, _)| job["jid"].as_str() == buried_jid.as_deref()),
        "the recorded jid is the buried job's"
    );
    assert!(finished.is_some_and(|jid| jid.len() == 24));
    // The admin API shows the ending beside the last run, and "enqueue now" pushes the job
    // with the options it declares (`retry = 0, retry_queue = "slow_lane"`).
    let set = jobs::api::PeriodicSet::new(&redis.client());
    let entry = set.get("buries").await.unwrap().expect("the entry");
    let last = entry.last_run.expect("a last run");
    // Its last job is the one recorded as ended, or one pushed after it and not run yet.
    let ended = Some(last.jid.as_str()) == buried_jid.as_deref();
    assert_eq!(last.outcome.as_deref(), ended.then_some("dead"), "{last:?}");
    let jid = set.enqueue_now("buries").await.unwrap().expect("pushed");
    let pushed = redis
        .queue("periodic")
        .await
        .into_iter()
        .find(|job| job["jid"] == jid.to_string())
        .expect("the job enqueued now");
    assert_eq!(pushed["retry"], 0);
    assert_eq!(pushed["retry_queue"], "slow_lane");
}

#[tokio::test]
async fn a_periodic_job_whose_entry_key_holds_another_type_is_still_acknowledged() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let mut raw = redis.raw().await;
    let _: () = redis::AsyncCommands::set(&mut raw, "jobs:periodic:wedged", "not a hash")
        .await
        .unwrap();
    let client = redis.client();
    let mut marked = jobs::Payload::new("Record", vec!["marked".into()]);
    marked
        .extra
        .insert("jobs_periodic".to_owned(), "wedged".into());
    client.push(marked).await.unwrap();
    for label in ["a", "b", "c"] {
        client
            .push(jobs::Payload::new("Record", vec![label.into()]))
            .await
            .unwrap();
    }
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(
        Duration::from_secs(10),
        "every job acknowledged",
        async || {
            let keys = redis.keys().await;
            log.entries().len() == 4
                && !keys.iter().any(|key| key.starts_with("jobs:working:"))
                && redis.queue("default").await.is_empty()
        },
    )
    .await;
    // An acknowledgement still failing would hold the shutdown's last flush for 30 s.
    running.stop(Duration::from_secs(10)).await;
}

#[tokio::test]
#[ignore = "long: waits out the 75 s after which a definition nobody declares gives way"]
async fn when_the_processes_of_the_definition_in_force_are_gone_a_running_one_takes_over() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let every_second = "* * * * * *";
    let holding = |queue: &str| {
        worker(&redis, &log)
            .queues(["elsewhere"])
            .periodic_entry(ticking("report", every_second, CatchUp::One).queue(queue))
    };
    let newer = RunningWorker::start(holding("new"));
    eventually(
        Duration::from_secs(10),
        "the newer definition's ticks",
        async || !redis.queue("new").await.is_empty(),
    )
    .await;
    // An old process restarts during the rollout: its start puts its definition back.
    let restarted_old = RunningWorker::start(holding("old"));
    eventually(
        Duration::from_secs(10),
        "the old definition's ticks",
        async || !redis.queue("old").await.is_empty(),
    )
    .await;
    restarted_old.stop(Duration::from_secs(10)).await;
    let stopped = Instant::now();
    let new_before = redis.queue("new").await.len();
    eventually(
        Duration::from_secs(120),
        "the running process to take the entry back",
        async || redis.queue("new").await.len() > new_before + 2,
    )
    .await;
    println!(
        "periodic: the running process took the entry back {:?} after the last process of the definition in force stopped",
        stopped.elapsed()
    );
    newer.stop(Duration::from_secs(10)).await;
    let all: BTreeMap<i64, usize> = ticks_in(&redis, "old")
        .await
        .keys()
        .chain(ticks_in(&redis, "new").await.keys())
        .fold(BTreeMap::new(), |mut all, tick| {
            *all.entry(*tick).or_insert(0) += 1;
            all
        });
    assert!(
        all.values().all(|count| *count == 1),
        "a tick pushed twice: {all:?}"
    );
}

#[tokio::test]
async fn a_queues_key_of_another_type_never_makes_a_tick_push_twice() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let _: () = redis::AsyncCommands::set(&mut raw, "queues", "not a set")
        .await
        .unwrap();
    // Two processes: a claim that failed after its push would leave the tick to the other.
    let start = || {
        RunningWorker::start(
            worker(&redis, &CallLog::default())
                .queues(["elsewhere"])
                .periodic_entry(ticking("odd_queues", "* * * * * *", CatchUp::One)),
        )
    };
    let (first, second) = (start(), start());
    tokio::time::sleep(Duration::from_secs(4)).await;
    first.stop(Duration::from_secs(10)).await;
    second.stop(Duration::from_secs(10)).await;
    let ticks = ticks_in(&redis, "odd_queues").await;
    assert!(ticks.len() >= 2, "{ticks:?}");
    assert!(
        ticks.values().all(|count| *count == 1),
        "a tick pushed twice: {ticks:?}"
    );
}

/// Fails every job of the class `Unbuildable` before it is pushed.
struct RefuseUnbuildable;

impl jobs::ClientMiddleware for RefuseUnbuildable {
    async fn call(&self, job: &mut jobs::Payload) -> Result<jobs::Flow, jobs::BoxError> {
        if job.class == "Unbuildable" {
            return Err("no such thing".into());
        }
        Ok(jobs::Flow::Continue)
    }
}

#[tokio::test]
async fn a_tick_whose_job_cannot_be_built_passes_and_the_next_ticks_are_claimed() {
    let redis = TestRedis::start();
    let client = jobs::Client::builder()
        .url(redis.url())
        .middleware(RefuseUnbuildable)
        .build()
        .unwrap();
    let running = RunningWorker::start(
        worker(&redis, &CallLog::default())
            .client(&client)
            .queues(["elsewhere"])
            .periodic_entry(
                Periodic::class("unbuildable", "* * * * * *", "Unbuildable", Vec::new())
                    .queue("never"),
            ),
    );
    let claimed_up_to = async || {
        hash_of(&redis, "unbuildable")
            .await
            .get("last")
            .and_then(|last| last.parse::<i64>().ok())
            .unwrap_or(0)
    };
    eventually(Duration::from_secs(10), "the entry declared", async || {
        claimed_up_to().await > 0
    })
    .await;
    let declared = claimed_up_to().await;
    eventually(
        Duration::from_secs(10),
        "its ticks claimed, unrun",
        async || claimed_up_to().await >= declared + 2_000,
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert!(redis.queue("never").await.is_empty());
}

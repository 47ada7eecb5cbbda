//! Capsules (Sidekiq 7's pools of concurrency within one process): a real worker process
//! started with `-C` on a Sidekiq 7 YAML file, its capsules' limits measured from a ledger its
//! jobs write, its heartbeat read through the API and by Ruby Sidekiq 6.4; a pause that makes
//! every capsule's fetcher rebuild its jobs from the shared working list; `Worker::drain`
//! across capsules; and the Busy page in Chromium, with a screenshot (`busy-capsules.png`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jobs::api::{ProcessSet, WorkSet};
use jobs::worker::Capsule;
use jobs::{Payload, Setter, Worker};
use serde_json::json;

use crate::support::jobs::{
    CallLog, Gauge, Ledger, Ledgered, LedgeredTogether, Record, RecordThenPush, Slow, worker,
};
use crate::support::{
    ChildWorker, LedgerView, RunningWorker, TestRedis, eventually, free_port, ledger_path, ruby,
};

/// Sidekiq 7's shape (`test/cfg/config_capsules.yml`): the top-level queues and concurrency
/// are the default capsule; `single` runs its queue's jobs one at a time.
const SIDEKIQ_7_YAML: &str = "\
:concurrency: 5
:queues:
  - default
:capsules:
  :single:
    :queues:
      - single
    :concurrency: 1
";

/// The process `capsules_from_a_sidekiq_7_yaml_file` and the pause test start: this binary
/// re-run as a worker configured by `-C $JOBS_TEST_CONFIG` alone (plus the test timings: a
/// 1-second heartbeat expiring after 3, recovery every second), its jobs writing to
/// `$JOBS_TEST_LEDGER`.
#[tokio::test]
#[ignore = "a worker process for the capsules tests, started by them"]
async fn child_worker() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by the capsules tests, not directly"
    );
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let config = std::env::var("JOBS_TEST_CONFIG").expect("JOBS_TEST_CONFIG");
    let ledger = Ledger(std::env::var_os("JOBS_TEST_LEDGER").map(Into::into));
    let client = jobs::Client::from_env().expect("REDIS_URL");
    Worker::from_args(["worker", "-C", &config])
        .expect("the flags and the config file")
        .client(&client)
        .heartbeat(Duration::from_secs(1), Duration::from_secs(3))
        .recovery(Duration::from_secs(1), 2)
        .timeout(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(200))
        .state(ledger)
        .state(CallLog::default())
        .state(Gauge::default())
        .run()
        .await
        .expect("the worker runs until stopped");
}

/// Writes `yaml` to a config file of its own beside `ledger`; returns its path.
fn config_file(ledger: &Path, yaml: &str) -> PathBuf {
    let path = ledger.with_file_name(format!("sidekiq-{}.yml", free_port()));
    std::fs::write(&path, yaml).expect("write the config file");
    path
}

/// Starts `capsules::child_worker` on `redis` with the config file `config`.
fn start_worker(redis: &TestRedis, ledger: &Path, config: &Path) -> ChildWorker {
    ChildWorker::spawn_entry(
        "capsules::child_worker",
        &redis.url(),
        ledger,
        &[("JOBS_TEST_CONFIG", config.to_str().expect("a UTF-8 path"))],
    )
}

/// Pushes `count` ledger jobs of `millis` to `queue`; returns their jids.
async fn push_to(redis: &TestRedis, queue: &str, count: usize, millis: u64) -> HashSet<String> {
    let client = redis.client();
    let mut jids = HashSet::new();
    for _ in 0..count {
        let pushed = Setter::<Ledgered>::new()
            .client(&client)
            .queue(queue)
            .perform_async(Ledgered { millis })
            .await
            .expect("push a ledger job");
        jids.insert(pushed.jid().to_string());
    }
    jids
}

/// The most of `jids` running at once, replaying the ledger's `run` and `done` lines in the
/// order they were appended (each one write, so the file's order is the order they happened).
fn most_at_once(ledger: &Path, jids: &HashSet<String>) -> usize {
    let text = std::fs::read_to_string(ledger).unwrap_or_default();
    let (mut running, mut most) = (0_i64, 0_i64);
    for line in text.lines() {
        let mut words = line.split(' ');
        let (Some(event), Some(jid)) = (words.next(), words.next()) else {
            continue;
        };
        if !jids.contains(jid) {
            continue;
        }
        match event {
            "run" => running += 1,
            "done" => running -= 1,
            _ => {}
        }
        most = most.max(running);
    }
    usize::try_from(most).unwrap_or(0)
}

/// The test worker on `queues` (its default capsule) beside a capsule `single` running the
/// queue `single` one job at a time.
fn with_single(redis: &TestRedis, log: &CallLog, queues: &[&str]) -> Worker {
    worker(redis, log)
        .queues(queues.iter().copied())
        .capsule(Capsule::new("single").queues(["single"]).concurrency(1))
}

/// `text` without its terminal colour codes (`ESC [ … m`).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[tokio::test]
async fn capsules_from_a_sidekiq_7_yaml_file() {
    let redis = TestRedis::start();
    let ledger = ledger_path("capsules");
    let config = config_file(&ledger, SIDEKIQ_7_YAML);
    // Long enough (3 s in each capsule) for the heartbeat (every second) to show them running.
    let single = push_to(&redis, "single", 6, 500).await;
    // Each waits until two of them have started before it goes on: the default capsule runs
    // them side by side, or the test fails after 30 s (not by a race).
    let client = redis.client();
    let mut default = HashSet::new();
    for _ in 0..15 {
        let pushed = Setter::<LedgeredTogether>::new()
            .client(&client)
            .queue("default")
            .perform_async(LedgeredTogether {
                group: "default".into(),
                together: 2,
                millis: 1_000,
            })
            .await
            .expect("push a ledger job");
        default.insert(pushed.jid().to_string());
    }
    let mut worker = start_worker(&redis, &ledger, &config);

    // The heartbeat, through the API: the total, and each capsule.
    eventually(
        Duration::from_secs(15),
        "the process's heartbeat",
        async || !ProcessSet::new(&client).list().await.unwrap().is_empty(),
    )
    .await;
    let process = ProcessSet::new(&client).list().await.unwrap().remove(0);
    assert_eq!(process.pid(), Some(u64::from(worker.pid())));
    assert_eq!(process.concurrency(), Some(6), "every capsule's, added up");
    assert_eq!(process.queues(), ["default", "single"]);
    let listed = process.capsules();
    let names: Vec<(&str, Option<u64>)> = listed
        .iter()
        .map(|capsule| (capsule.name.as_str(), capsule.concurrency))
        .collect();
    assert_eq!(names, [("default", Some(5)), ("single", Some(1))]);
    assert_eq!(listed[0].queues(), ["default"]);
    assert_eq!(listed[1].queues(), ["single"]);
    assert_eq!(listed[1].mode.as_deref(), Some("strict"));
    let info = &process.info;
    assert_eq!(
        info["weights"],
        serde_json::json!([{ "default": 0 }, { "single": 0 }]),
        "Sidekiq 7's weights: one map per capsule"
    );
    assert_eq!(
        info["capsules"]["single"],
        serde_json::json!({ "concurrency": 1, "mode": "strict", "weights": { "single": 0 } }),
        "Sidekiq 8's capsules"
    );

    // While the jobs run, each capsule's running jobs (from the work entries) stay within its
    // concurrency, until the work set has shown jobs running in each.
    let mut seen_running = HashSet::new();
    eventually(
        Duration::from_secs(20),
        "the work set to show jobs running in each capsule",
        async || {
            let work = WorkSet::new(&client).list().await.unwrap();
            for capsule in &listed {
                let running = capsule.running(&work) as u64;
                assert!(
                    running <= capsule.concurrency.unwrap(),
                    "{}: {running}",
                    capsule.name
                );
                if running > 0 {
                    seen_running.insert(capsule.name.clone());
                }
            }
            seen_running.len() == listed.len()
        },
    )
    .await;

    // Ruby Sidekiq 6.4 reads the process, and passes the newer fields through.
    let seen = ruby(
        &redis.url(),
        r#"
        process = Sidekiq::ProcessSet.new.first
        puts "RESULT:" + JSON.generate(
          "size" => Sidekiq::ProcessSet.new.size, "pid" => process["pid"],
          "concurrency" => process["concurrency"], "queues" => process["queues"],
          "capsules" => process["capsules"], "weights" => process["weights"])
        "#,
    );
    assert_eq!(seen["size"], 1);
    assert_eq!(seen["pid"], worker.pid());
    assert_eq!(seen["concurrency"], 6);
    assert_eq!(seen["queues"], serde_json::json!(["default", "single"]));
    assert_eq!(seen["capsules"]["default"]["concurrency"], 5);
    assert_eq!(seen["capsules"]["single"]["concurrency"], 1);
    assert_eq!(seen["weights"][1]["single"], 0);

    let all: HashSet<String> = single.union(&default).cloned().collect();
    eventually(
        Duration::from_secs(30),
        "every job to be done",
        async || LedgerView::read(&ledger).done == all,
    )
    .await;
    let view = LedgerView::read(&ledger);
    assert_eq!(view.duplicates(), 0, "no job ran twice");
    assert_eq!(
        most_at_once(&ledger, &single),
        1,
        "the `single` capsule runs one job at a time"
    );
    let default_most = most_at_once(&ledger, &default);
    assert!(
        (2..=5).contains(&default_most),
        "the default capsule runs several jobs at once, up to 5: {default_most}"
    );
    let log = without_colours(&worker.log());
    let started = log
        .lines()
        .find(|line| line.contains("worker started"))
        .unwrap_or_else(|| panic!("no `worker started` line:\n{log}"));
    assert!(
        started.contains(r#"default: 5 [\"default\"] strict"#)
            && started.contains(r#"single: 1 [\"single\"] strict"#)
            && started.contains("concurrency=6"),
        "{started}"
    );
    worker.terminate_within(Duration::from_secs(10));
}

#[tokio::test]
async fn after_a_pause_each_capsule_takes_up_only_its_own_jobs() {
    // Each capsule takes 20 jobs a fetch and runs one: 19 wait, taken ahead, in the one working
    // list. A pause past the liveness TTL (3 s) makes every fetcher forget what it took ahead
    // and rebuild it from the working list: a fetcher that took up the other capsule's entries
    // would run them beside that capsule, twice, and more than one `single` job at once.
    let redis = TestRedis::start();
    let ledger = ledger_path("capsules-pause");
    let config = config_file(
        &ledger,
        ":concurrency: 1\n:queues: [default]\n:capsules:\n  single: {queues: [single], concurrency: 1}\n",
    );
    let single = push_to(&redis, "single", 30, 100).await;
    let default = push_to(&redis, "default", 30, 100).await;
    let mut worker = start_worker(&redis, &ledger, &config);
    eventually(
        Duration::from_secs(15),
        "both capsules to start jobs",
        async || {
            let runs = LedgerView::read(&ledger).runs;
            runs.keys().any(|jid| single.contains(jid))
                && runs.keys().any(|jid| default.contains(jid))
        },
    )
    .await;
    worker.signal("STOP");
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    worker.signal("CONT");
    let all: HashSet<String> = single.union(&default).cloned().collect();
    eventually(
        Duration::from_secs(30),
        "every job to be done",
        async || LedgerView::read(&ledger).done == all,
    )
    .await;
    let log = without_colours(&worker.log());
    for capsule in ["default", "single"] {
        assert!(
            log.lines()
                .any(|line| line.contains("may have been presumed dead")
                    && line.contains(&format!("capsule={capsule}"))),
            "the `{capsule}` capsule's fetcher saw the lapse and forgot what it took ahead:\n{log}"
        );
    }
    let view = LedgerView::read(&ledger);
    let twice: HashMap<&String, &usize> = view.runs.iter().filter(|(_, runs)| **runs > 1).collect();
    assert!(twice.is_empty(), "jobs ran twice: {twice:?}");
    assert_eq!(most_at_once(&ledger, &single), 1);
    assert_eq!(most_at_once(&ledger, &default), 1);
    worker.terminate_within(Duration::from_secs(10));
}

#[tokio::test]
async fn drain_runs_every_capsules_jobs_then_stops() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let client = redis.client();
    for i in 0..3 {
        // Each `single` job gives the default capsule a job, after it may have found its own
        // queue empty: the drain must not end before those run.
        Setter::<RecordThenPush>::new()
            .client(&client)
            .queue("single")
            .perform_async(RecordThenPush {
                label: format!("single {i}"),
                millis: 200,
                redis_url: redis.url(),
                then: format!("default from single {i}"),
            })
            .await
            .unwrap();
        Setter::<Record>::new()
            .client(&client)
            .perform_async(Record {
                label: format!("default {i}"),
            })
            .await
            .unwrap();
    }
    tokio::time::timeout(
        Duration::from_secs(20),
        with_single(&redis, &log, &["default"]).drain(),
    )
    .await
    .expect("the drain ends")
    .expect("the drain runs");
    let mut ran = log.entries();
    ran.sort();
    assert_eq!(
        ran,
        [
            "default 0",
            "default 1",
            "default 2",
            "default from single 0",
            "default from single 1",
            "default from single 2",
            "single 0",
            "single 1",
            "single 2"
        ]
    );
}

#[tokio::test]
async fn a_job_one_crash_from_the_dead_set_runs_alone_in_the_whole_process() {
    let redis = TestRedis::start();
    let client = redis.client();
    let log = CallLog::default();
    client.perform_async(Slow { millis: 2_000 }).await.unwrap();
    let running = RunningWorker::start(with_single(&redis, &log, &["default"]));
    eventually(
        Duration::from_secs(10),
        "the default capsule's job to start",
        async || log.entries() == ["started 2000"],
    )
    .await;
    // A job of `single` one crash from the dead set (the test worker buries at 3 recoveries):
    // if it ran beside the default capsule's job and the process crashed, it would be buried
    // for a crash that may be its neighbour's. It waits for that job, then runs alone.
    let mut suspect = Payload::new("Slow", vec![json!(1_000)]).queue("single");
    suspect.extra.insert("jobs_recoveries".into(), json!(3));
    client.push(suspect).await.unwrap();
    // While it waits, and while it runs, no capsule starts a job.
    tokio::time::sleep(Duration::from_millis(500)).await;
    client
        .perform_async(Record {
            label: "pushed while the suspect waits".into(),
        })
        .await
        .unwrap();
    eventually(Duration::from_secs(15), "every job to run", async || {
        log.entries().len() == 5
    })
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(
        log.entries(),
        [
            "started 2000",
            "finished 2000",
            "started 1000",
            "finished 1000",
            "pushed while the suspect waits"
        ]
    );
}

#[tokio::test]
async fn a_queue_in_two_capsules_is_refused_at_start() {
    let redis = TestRedis::start();
    let error = with_single(&redis, &CallLog::default(), &["default", "single"])
        .drain()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("the queue `single` is in two capsules, `default` and `single`"),
        "{error}"
    );
}

#[tokio::test]
async fn the_busy_page_shows_each_capsule_in_chromium() {
    use crate::web_browser::{ChromeDriver, open_browser, screenshot, serve_dashboard, text_of};

    let redis = TestRedis::start();
    let client = redis.client();
    let log = CallLog::default();
    // One job running in each capsule until the worker stops.
    for queue in ["single", "default"] {
        Setter::<Slow>::new()
            .client(&client)
            .queue(queue)
            .perform_async(Slow { millis: 60_000 })
            .await
            .unwrap();
    }
    let running =
        RunningWorker::start(with_single(&redis, &log, &["default", "low"]).concurrency(3));
    eventually(
        Duration::from_secs(10),
        "both jobs in the work set",
        async || WorkSet::new(&client).list().await.unwrap().len() == 2,
    )
    .await;

    let driver = ChromeDriver::start();
    let browser = open_browser(&driver).await;
    let (base, stop, server) = serve_dashboard(&client).await;
    browser.goto(&format!("{base}/busy")).await.unwrap();
    let busy = text_of(&browser, "main").await;
    // The process's total, then each capsule with its jobs running of its concurrency.
    assert!(busy.contains("2 / 4"), "{busy}");
    assert!(busy.contains("default 1 / 3"), "{busy}");
    assert!(busy.contains("single 1 / 1"), "{busy}");
    let capsules = browser
        .find_all(fantoccini::Locator::Css("td div.capsule"))
        .await
        .unwrap();
    assert_eq!(capsules.len(), 2);
    assert!(capsules[0].text().await.unwrap().contains("low"));
    screenshot(&browser, "busy-capsules").await;

    browser.close().await.unwrap();
    let _ = stop.send(());
    let _ = server.await;
    drop(driver);
    running.stop(Duration::from_secs(20)).await;
}

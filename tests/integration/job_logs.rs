//! The worker's line for each job: its tags and elapsed time in text and JSON logs, and a
//! job's `log_level` (Sidekiq's) quieting its `start` and `done` lines but not its failure. A
//! real worker process (`lifecycle::child_worker`) writes the logs.

use std::time::Duration;

use jobs::{JobError, LogLevel, Payload, job};

use crate::support::{ChildWorker, TestRedis, counter, eventually, ledger_path};

/// A job with tags.
#[job(tags = ["billing", "nightly"])]
pub async fn tagged_report() {}

/// A frequent job that asks not to be logged unless it fails.
#[job(log_level = "warn", retry = false)]
pub async fn frequent_ping(fail: bool) -> Result<(), JobError> {
    if fail {
        return Err(JobError::msg("the ping failed"));
    }
    Ok(())
}

/// The jids of the pushed jobs.
struct Pushed {
    tagged: String,
    quiet: String,
    quiet_failing: String,
    quiet_by_push: String,
    quiet_from_ruby: String,
}

/// Pushes one job of each kind, runs them on a worker process logging in `format`, and returns
/// what it logged.
async fn run_logging(format: &str) -> (Pushed, String) {
    let redis = TestRedis::start();
    let client = redis.client();
    let jid = |pushed: jobs::Pushed| pushed.jid().to_string();
    let mut ruby_style = Payload::new("TaggedReport", Vec::new());
    // As a Ruby client writes `sidekiq_options log_level: :warn`.
    ruby_style.set("log_level", "warn".into()).unwrap();
    let pushed = Pushed {
        tagged: jid(client.perform_async(TaggedReport {}).await.unwrap()),
        quiet: jid(client
            .perform_async(FrequentPing { fail: false })
            .await
            .unwrap()),
        quiet_failing: jid(client
            .perform_async(FrequentPing { fail: true })
            .await
            .unwrap()),
        quiet_by_push: jid(TaggedReport::set()
            .client(&client)
            .log_level(LogLevel::Error)
            .perform_async(())
            .await
            .unwrap()),
        quiet_from_ruby: jid(client.push(ruby_style).await.unwrap()),
    };
    let ledger = ledger_path("job-logs");
    let mut worker = ChildWorker::spawn(
        &redis.url(),
        &ledger,
        &[("JOBS_LOG_FORMAT", format), ("RUST_LOG", "info")],
    );
    eventually(Duration::from_secs(20), "the five jobs ran", async || {
        counter(&redis, "stat:processed").await == 5
    })
    .await;
    worker.terminate_within(Duration::from_secs(15));
    (pushed, worker.log())
}

/// The lines that name `jid`.
fn lines_of<'a>(log: &'a str, jid: &str) -> Vec<&'a str> {
    log.lines().filter(|line| line.contains(jid)).collect()
}

#[tokio::test]
async fn text_lines_carry_tags_and_elapsed_and_follow_the_log_level() {
    let (pushed, log) = run_logging("text").await;
    let tagged = lines_of(&log, &pushed.tagged);
    let start = tagged.iter().find(|line| line.ends_with(": start"));
    let done = tagged.iter().find(|line| line.contains(": done"));
    for line in [start, done] {
        let line = line.unwrap_or_else(|| panic!("no start or done line:\n{log}"));
        assert!(line.contains("tags=billing,nightly"), "{line}");
        assert!(line.contains("class=TaggedReport"), "{line}");
    }
    assert!(done.unwrap().contains("elapsed="), "{log}");

    for quiet in [
        &pushed.quiet,
        &pushed.quiet_by_push,
        &pushed.quiet_from_ruby,
    ] {
        assert_eq!(lines_of(&log, quiet), Vec::<&str>::new(), "{log}");
    }
    let failing = lines_of(&log, &pushed.quiet_failing);
    assert!(
        failing.iter().any(|line| line.contains("WARN")
            && line.contains(": fail")
            && line.contains("elapsed=")
            && line.contains("the ping failed")),
        "{log}"
    );
    assert!(
        !failing.iter().any(|line| line.ends_with(": start")),
        "{log}"
    );
}

#[tokio::test]
async fn json_lines_carry_tags_and_elapsed_and_follow_the_log_level() {
    let (pushed, log) = run_logging("json").await;
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line.trim()).ok())
        .collect();
    let of = |jid: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|event| event["span"]["jid"] == jid)
            .collect()
    };
    let message = |event: &serde_json::Value| event["fields"]["message"].clone();

    let tagged = of(&pushed.tagged);
    assert_eq!(
        tagged
            .iter()
            .map(|event| message(event))
            .collect::<Vec<_>>(),
        ["start", "done"],
        "{log}"
    );
    for event in &tagged {
        assert_eq!(event["span"]["tags"], "billing,nightly", "{event}");
    }
    assert!(tagged[1]["fields"]["elapsed"].is_string(), "{log}");

    for quiet in [
        &pushed.quiet,
        &pushed.quiet_by_push,
        &pushed.quiet_from_ruby,
    ] {
        assert!(of(quiet).is_empty(), "{log}");
    }
    let failing = of(&pushed.quiet_failing);
    let fail = failing
        .iter()
        .find(|event| message(event) == "fail")
        .unwrap_or_else(|| panic!("no fail event:\n{log}"));
    assert_eq!(fail["level"], "WARN", "{fail}");
    assert!(fail["fields"]["elapsed"].is_string(), "{fail}");
    assert!(
        failing.iter().all(|event| message(event) != "start"),
        "{log}"
    );
}

/// A job that logs at debug.
#[job]
pub async fn debug_note() {
    tracing::debug!("a note for debugging");
}

/// Another job that logs at debug.
#[job]
pub async fn other_debug_note() {
    tracing::debug!("another note for debugging");
}

/// What `docs/tracing.md` offers in place of Sidekiq's `log_level: :debug`: a `RUST_LOG`
/// directive on the job span's class shows that job's debug lines, and only its.
#[tokio::test]
async fn a_rust_log_directive_shows_one_jobs_debug_lines() {
    let redis = TestRedis::start();
    let client = redis.client();
    client.perform_async(DebugNote {}).await.unwrap();
    client.perform_async(OtherDebugNote {}).await.unwrap();
    let mut worker = ChildWorker::spawn(
        &redis.url(),
        &ledger_path("job-debug-logs"),
        &[
            ("JOBS_LOG_FORMAT", "text"),
            ("RUST_LOG", "info,[job{class=^DebugNote$}]=debug"),
        ],
    );
    eventually(Duration::from_secs(20), "the two jobs ran", async || {
        counter(&redis, "stat:processed").await == 2
    })
    .await;
    worker.terminate_within(Duration::from_secs(15));
    let log = worker.log();
    assert!(log.contains("a note for debugging"), "{log}");
    assert!(!log.contains("another note for debugging"), "{log}");
}

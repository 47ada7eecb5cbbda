//! JSON logs: a real worker process with `JOBS_LOG_FORMAT=json` writes one JSON object per
//! event, job events carrying the job's span.

use std::time::Duration;

use crate::support::jobs::{Ledgered, push_ledgered};
use crate::support::{ChildWorker, LedgerView, TestRedis, eventually, ledger_path};

/// The lines the test harness itself prints around the child's run.
fn is_harness_line(line: &str) -> bool {
    line.is_empty() || line.starts_with("running ") || line.starts_with("test ")
}

#[tokio::test]
async fn the_worker_logs_one_json_object_per_line() {
    let redis = TestRedis::start();
    let ledger = ledger_path("json-logs");
    let jids = push_ledgered(&redis, [Ledgered { millis: 10 }]).await;
    let mut worker = ChildWorker::spawn(
        &redis.url(),
        &ledger,
        &[("JOBS_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
    );
    eventually(Duration::from_secs(20), "the job ran", async || {
        LedgerView::read(&ledger).done.len() == 1
    })
    .await;
    worker.terminate_within(Duration::from_secs(15));

    let log = worker.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(str::trim)
        .filter(|line| !is_harness_line(line))
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not JSON ({error}): {line}\n{log}"))
        })
        .collect();
    let message = |event: &serde_json::Value| {
        event["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        events
            .iter()
            .all(|event| event["level"].is_string() && event["timestamp"].is_string()),
        "{log}"
    );
    assert!(
        events
            .iter()
            .any(|event| message(event) == "worker started"),
        "{log}"
    );
    assert!(
        events
            .iter()
            .any(|event| message(event) == "worker stopped"),
        "{log}"
    );
    let jid = jids.into_iter().next().expect("a jid");
    let done = events
        .iter()
        .find(|event| message(event) == "done")
        .unwrap_or_else(|| panic!("no `done` event: {log}"));
    assert_eq!(done["span"]["jid"], jid.as_str(), "{done}");
    assert_eq!(done["span"]["class"], "Ledgered", "{done}");
}

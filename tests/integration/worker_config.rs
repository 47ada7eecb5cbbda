//! Starting a worker: Sidekiq's flags and config file, and the errors for bad ones.

use std::time::Duration;

use jobs::worker::QueueSpec;
use jobs::{Error, Worker};

use crate::support::TestRedis;
use crate::support::jobs::CallLog;

fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jobs-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jobs.yml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn flags_override_the_config_file_and_its_environment_section() {
    let path = config_file(
        "sections",
        ":concurrency: 4\n:queues:\n  - [critical, 3]\n  - default\nproduction:\n  :concurrency: 20\n  :timeout: 9\n",
    );
    let path = path.to_str().unwrap();
    let worker = Worker::from_args(["worker", "-C", path, "-e", "production"]).unwrap();
    let config = worker.config();
    assert_eq!(config.concurrency, 20);
    assert_eq!(config.timeout, Duration::from_secs(9));
    assert_eq!(
        config.queues,
        [
            QueueSpec::weighted("critical", 3),
            QueueSpec::weighted("default", 0)
        ]
    );

    let worker = Worker::from_args([
        "worker",
        "-C",
        path,
        "-e",
        "production",
        "-c",
        "2",
        "-q",
        "low",
    ])
    .unwrap();
    assert_eq!(worker.config().concurrency, 2);
    assert_eq!(worker.config().queues, [QueueSpec::new("low")]);
}

#[test]
fn a_bad_config_file_names_the_file_and_the_key() {
    let path = config_file("bad", ":timeout: soon\n");
    let error = Worker::from_args(["worker", "-C", path.to_str().unwrap()]).unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with(path.to_str().unwrap()), "{message}");
    assert!(
        message.contains("`:timeout:` must be a number of seconds"),
        "{message}"
    );
}

#[test]
fn bad_flags_and_help_come_back_as_errors_with_usage() {
    let error = Worker::from_args(["worker", "--concurrency", "many"]).unwrap_err();
    assert!(matches!(error, Error::Cli { .. }), "{error:?}");
    assert!(
        error.to_string().contains("invalid value 'many'"),
        "{error}"
    );
    let help = Worker::from_args(["worker", "--help"])
        .unwrap_err()
        .to_string();
    for flag in [
        "--concurrency",
        "--queue",
        "--config",
        "--environment",
        "--timeout",
        "--tag",
        "--verbose",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}

#[tokio::test]
async fn a_job_asking_for_state_the_worker_lacks_stops_it_at_start() {
    let redis = TestRedis::start();
    let error = Worker::new()
        .client(&redis.client())
        .state(CallLog::default())
        .state(crate::support::jobs::Ledger::default())
        .drain()
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::MissingState { .. }), "{error:?}");
    assert!(message.contains("MeasureConcurrency"), "{message}");
    assert!(message.contains("Gauge"), "{message}");
    assert!(message.contains(".state(value)"), "{message}");
}

#[tokio::test]
async fn a_worker_without_queues_refuses_to_start() {
    let redis = TestRedis::start();
    let error = crate::support::jobs::worker(&redis, &CallLog::default())
        .queues(Vec::<String>::new())
        .drain()
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no queues to take jobs from"),
        "{error}"
    );
}

#[tokio::test]
async fn a_heartbeat_ttl_under_twice_its_interval_is_refused() {
    let redis = TestRedis::start();
    let error = crate::support::jobs::worker(&redis, &CallLog::default())
        .heartbeat(Duration::from_secs(2), Duration::from_secs(3))
        .drain()
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("at least twice its interval"),
        "{error}"
    );
}

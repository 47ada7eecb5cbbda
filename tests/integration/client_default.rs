//! The process-wide default client, made from `REDIS_URL` or `REDIS_PROVIDER`.
//!
//! The environment is read once per process, so each case re-runs this test binary as a child
//! with the variables set, and checks what the child pushed.

use std::process::Command;

use chrono::NaiveDate;

use crate::support::TestRedis;
use crate::support::jobs::ScoreGeneration;

const CHILD: &str = "client_default::child_pushes_with_the_default_client";

fn run_child(vars: &[(&str, String)]) {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["--exact", CHILD, "--ignored", "--nocapture"])
        .env_remove("REDIS_URL")
        .env_remove("REDIS_PROVIDER")
        .env("JOBS_TEST_CHILD", "1");
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().expect("run the test binary");
    assert!(
        output.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "the child test did not run"
    );
}

#[tokio::test]
async fn perform_async_uses_redis_url() {
    let redis = TestRedis::start();
    run_child(&[("REDIS_URL", redis.url())]);
    assert_eq!(redis.queue("default").await.len(), 1);
}

#[tokio::test]
async fn redis_provider_names_the_variable_holding_the_url() {
    let redis = TestRedis::start();
    run_child(&[
        ("REDIS_PROVIDER", "MY_REDIS_URL".to_owned()),
        ("MY_REDIS_URL", redis.url()),
    ]);
    assert_eq!(redis.queue("default").await.len(), 1);
}

/// Pushes one job through the default client; run by the tests above in a child process.
#[tokio::test]
#[ignore = "run as a child process by the other tests of this module"]
async fn child_pushes_with_the_default_client() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by perform_async_uses_redis_url, not directly"
    );
    let date = NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date");
    ScoreGeneration::perform_async(date)
        .await
        .expect("push through the default client");
}

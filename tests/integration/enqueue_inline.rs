//! `perform_inline`: the job runs at once, after the same JSON round trip as a push.

use chrono::NaiveDate;
use jobs::{Client, Error, JobState};

use crate::support::free_port;
use crate::support::jobs::{
    Average, CallLog, Explode, PanicNow, ParseCount, RecordCall, score_generation,
};

/// A client pointing where nothing listens: inline runs must not need Redis.
fn nowhere() -> Client {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    Client::builder().url(url).build().expect("a client")
}

#[tokio::test]
async fn runs_the_job_with_its_state_and_context_without_redis() {
    let log = CallLog::default();
    let jid = RecordCall::set()
        .client(&nowhere())
        .state(JobState::new().with(log.clone()))
        .perform_inline("hello".to_owned())
        .await
        .unwrap();
    assert_eq!(log.entries(), [format!("hello jid={jid} queue=default")]);
}

#[tokio::test]
async fn a_missing_state_says_how_to_provide_it() {
    let error = RecordCall::set()
        .client(&nowhere())
        .perform_inline("hello".to_owned())
        .await
        .unwrap_err();
    let Error::Failed { error, .. } = &error else {
        panic!("expected Failed, got {error:?}");
    };
    assert_eq!(error.class(), "jobs::MissingState");
    assert!(error.to_string().contains("CallLog"), "{error}");
}

#[tokio::test]
async fn an_argument_that_does_not_survive_json_fails_here() {
    let error = Average::set()
        .client(&nowhere())
        .perform_inline(f64::NAN)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("argument `value` (#1) is not a `f64`"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failing_job_returns_its_error() {
    let error = Explode::set()
        .client(&nowhere())
        .perform_inline("disk full".to_owned())
        .await
        .unwrap_err();
    let Error::Failed { class, error, .. } = &error else {
        panic!("expected Failed, got {error:?}");
    };
    assert_eq!(class, "Explode");
    assert_eq!(error.to_string(), "disk full");
}

#[tokio::test]
async fn a_panic_becomes_a_failure_of_class_panic() {
    let error = PanicNow::set()
        .client(&nowhere())
        .perform_inline("kaboom".to_owned())
        .await
        .unwrap_err();
    let Error::Failed { error, .. } = &error else {
        panic!("expected Failed, got {error:?}");
    };
    assert_eq!(error.class(), "Panic");
    assert_eq!(error.to_string(), "kaboom");
}

#[tokio::test]
async fn anyhow_errors_convert_with_their_messages() {
    let failed = |result: Result<jobs::Jid, Error>| match result {
        Err(Error::Failed { error, .. }) => (error.class().to_owned(), error.to_string()),
        other => panic!("expected Failed, got {other:?}"),
    };
    let client = nowhere();
    let (class, message) = failed(
        ParseCount::set()
            .client(&client)
            .perform_inline("12".to_owned())
            .await,
    );
    assert_eq!(class, "anyhow::Error");
    assert_eq!(message, "count 12 is too large");
    let (_, message) = failed(
        ParseCount::set()
            .client(&client)
            .perform_inline("many".to_owned())
            .await,
    );
    assert_eq!(message, "invalid digit found in string");
}

#[tokio::test]
async fn the_function_stays_callable_as_written() {
    let date = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    assert!(score_generation(date).await.is_ok());
}

#[tokio::test]
async fn the_jobs_timeout_cancels_an_inline_run() {
    let run = crate::support::jobs::Overrun::set()
        .client(&nowhere())
        .perform_inline(());
    // The job sleeps 30 s; its timeout is 0.2 s. The outer limit only keeps a broken build
    // from hanging the suite.
    let error = tokio::time::timeout(std::time::Duration::from_secs(20), run)
        .await
        .expect("the job's timeout ends the run")
        .unwrap_err();
    let Error::Failed { error, .. } = &error else {
        panic!("expected Failed, got {error:?}");
    };
    assert_eq!(error.class(), "jobs::Timeout");
    assert!(
        error.to_string().contains("ran longer than its timeout"),
        "{error}"
    );
}

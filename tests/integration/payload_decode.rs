//! Reading the job JSON Sidekiq 6.4 and 8.x write (examples from their own Redis).

use jobs::{Payload, Retry, Timestamp};
use serde_json::json;

/// A queue entry as Sidekiq 6.4.1 writes it: float-second timestamps.
const SIDEKIQ_6_QUEUED: &str = r#"{"retry":true,"queue":"default","class":"ScoreGeneration","args":["2026-11-22"],"jid":"93defb239a1a90d4dbb26c44","created_at":1795369595.3622906,"enqueued_at":1795369595.3623605}"#;

/// The same job as Sidekiq 8 writes it: integer-millisecond timestamps.
const SIDEKIQ_8_QUEUED: &str = r#"{"retry":true,"queue":"default","class":"ScoreGeneration","args":["2026-11-22"],"jid":"93defb239a1a90d4dbb26c44","created_at":1795369595362,"enqueued_at":1795369595362}"#;

/// A retry-set member of Sidekiq 6.4: error fields and a newline-wrapped base64 backtrace.
const SIDEKIQ_6_RETRY: &str = r#"{"retry":true,"queue":"default","class":"OkJob","args":[1],"jid":"0b5a9d1c3e7f24680b5a9d1c","created_at":1795369595.363013,"enqueued_at":1795369595.3631,"error_message":"boom","error_class":"ArgumentError","failed_at":1795369595.37,"retry_count":0,"backtrace":true,"error_backtrace":"eJy1zVEKgCAQBNC/TuEBNqJ1t5+IIBZ1gFBQ\nQ7hFQ==\n"}"#;

/// An ActiveJob job on Sidekiq 8: `wrapped`, a hash argument, tags and a batch id.
const SIDEKIQ_8_ACTIVE_JOB: &str = r#"{"class":"Sidekiq::ActiveJob::Wrapper","wrapped":"ScoreJob","queue":"default","args":[{"job_class":"ScoreJob","job_id":"4c3b","arguments":[7],"_aj_symbol_keys":[]}],"retry":5,"jid":"c1d2e3f4a5b6c7d8e9f0a1b2","tags":["scores"],"bid":"Fm2pC8vIhLQ7aw","created_at":1795369595362,"enqueued_at":1795369595400}"#;

#[test]
fn reads_sidekiq_6_float_seconds() {
    let payload = Payload::from_json(SIDEKIQ_6_QUEUED).unwrap();
    assert_eq!(payload.class, "ScoreGeneration");
    assert_eq!(payload.args, [json!("2026-11-22")]);
    assert_eq!(payload.jid, "93defb239a1a90d4dbb26c44");
    assert_eq!(payload.retry, Some(Retry::Default));
    assert_eq!(
        payload.created_at,
        Some(Timestamp::from_epoch_seconds(1795369595.3622906))
    );
}

#[test]
fn reads_sidekiq_8_integer_milliseconds_as_the_same_instant() {
    let six = Payload::from_json(SIDEKIQ_6_QUEUED).unwrap();
    let eight = Payload::from_json(SIDEKIQ_8_QUEUED).unwrap();
    let seconds = |stamp: Option<Timestamp>| stamp.unwrap().as_epoch_seconds();
    assert!((seconds(six.created_at) - seconds(eight.created_at)).abs() < 0.001);
    assert_eq!(seconds(eight.enqueued_at), 1795369595.362);
}

#[test]
fn reads_the_error_fields_of_a_retry() {
    let payload = Payload::from_json(SIDEKIQ_6_RETRY).unwrap();
    assert_eq!(payload.error_message.as_deref(), Some("boom"));
    assert_eq!(payload.error_class.as_deref(), Some("ArgumentError"));
    assert_eq!(payload.retry_count, Some(0));
    assert!(payload.error_backtrace.unwrap().contains('\n'));
    assert_eq!(payload.backtrace, Some(jobs::Backtrace::All));
}

#[test]
fn keeps_what_it_does_not_know_when_written_back() {
    let payload = Payload::from_json(SIDEKIQ_8_ACTIVE_JOB).unwrap();
    assert_eq!(payload.extra["wrapped"], "ScoreJob");
    assert_eq!(payload.extra["bid"], "Fm2pC8vIhLQ7aw");
    assert_eq!(payload.retry, Some(Retry::Times(5)));
    assert_eq!(payload.tags.as_deref(), Some(&["scores".to_owned()][..]));

    let written: serde_json::Value = serde_json::from_str(&payload.to_json().unwrap()).unwrap();
    let original: serde_json::Value = serde_json::from_str(SIDEKIQ_8_ACTIVE_JOB).unwrap();
    for key in [
        "class", "wrapped", "queue", "args", "retry", "jid", "tags", "bid",
    ] {
        assert_eq!(written[key], original[key], "{key} changed");
    }
    // Timestamps are rewritten as float seconds, which Sidekiq 8 reads as the same instant.
    assert_eq!(written["created_at"], json!(1795369595.362));
}

#[test]
fn a_payload_without_a_class_is_an_error_saying_so() {
    // Only `class` is required: Sidekiq runs a job with no jid (its poller adds one).
    let error = Payload::from_json(r#"{"args":[],"queue":"q","jid":"j"}"#).unwrap_err();
    assert!(error.to_string().contains("no `class`"), "{error}");
    let error = Payload::from_json(r#"{"class":5,"args":[]}"#).unwrap_err();
    assert!(error.to_string().contains("`class` is a number"), "{error}");
    let job = Payload::from_json(r#"{"class":"A"}"#).unwrap();
    assert_eq!((job.jid.as_str(), job.queue.as_str()), ("", "default"));
    assert!(job.args.is_empty());
}

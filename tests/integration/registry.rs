//! Every `#[job]` in the binary is registered, with its options, and runs from JSON.

use std::time::Duration;

use jobs::{JobContext, JobState, Payload, Registry, Retry};
use serde_json::json;

use crate::support::jobs::CallLog;

#[test]
fn every_job_is_registered_under_its_wire_name() {
    let registry = Registry::from_inventory().unwrap();
    let names: Vec<&str> = registry.iter().map(|job| job.name()).collect();
    for name in [
        "Average",
        "Explode",
        "Mailer::Deliver",
        "NightlyCleanup",
        "PanicNow",
        "ParseCount",
        "RecordCall",
        "ScoreGeneration",
        "SendEmail",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(jobs::registered_jobs().count(), registry.len());
}

#[test]
fn a_job_says_whether_it_reads_its_context() {
    // The worker builds a job's context (its jid, class, queue and tags copied from the
    // payload) only for a job that says it reads one: those with a `#[context]` parameter.
    let registry = Registry::from_inventory().unwrap();
    assert!(registry.get("RecordCall").unwrap().reads_context());
    assert!(!registry.get("ScoreGeneration").unwrap().reads_context());
}

#[test]
fn a_registration_carries_the_declared_options_and_where_it_is() {
    let registry = Registry::from_inventory().unwrap();
    let score = registry.get("ScoreGeneration").unwrap();
    assert_eq!(score.options().queue, "default");
    assert_eq!(score.options().retry, Retry::Times(25));
    assert!(score.rust_type().ends_with("jobs::ScoreGeneration"));
    assert!(
        score.location().contains("jobs.rs:"),
        "{}",
        score.location()
    );

    let deliver = registry.get("Mailer::Deliver").unwrap();
    assert_eq!(deliver.options().timeout, Some(Duration::from_secs(30)));
    assert_eq!(deliver.options().retry, Retry::Disabled);
    assert!(!deliver.options().dead);

    let record = registry.get("RecordCall").unwrap();
    let state: Vec<&str> = record.state().iter().map(|ty| ty.name()).collect();
    assert_eq!(state.len(), 1);
    assert!(state[0].ends_with("CallLog"), "{state:?}");
}

#[tokio::test]
async fn a_registration_runs_the_job_from_its_json_arguments() {
    let registry = Registry::from_inventory().unwrap();
    let record = registry.get("RecordCall").unwrap();
    let log = CallLog::default();
    let payload = Payload::new("RecordCall", vec![json!("from json")]).queue("low");
    let context = JobContext::from_payload(&payload);
    let state = JobState::new().with(log.clone());
    record
        .run(payload.args.clone(), context, &state)
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        log.entries(),
        [format!("from json jid={} queue=low", payload.jid)]
    );
}

#[test]
fn arguments_that_do_not_decode_say_which_and_why() {
    let registry = Registry::from_inventory().unwrap();
    let record = registry.get("SendEmail").unwrap();
    let payload = Payload::new("SendEmail", vec![json!("ann@example.com"), json!(5)]);
    let run = |args| record.run(args, JobContext::from_payload(&payload), &JobState::new());
    let error = run(payload.args.clone()).err().expect("5 is not a subject");
    assert!(
        error
            .to_string()
            .starts_with("argument `subject` (#2) is not a `alloc::string::String`"),
        "{error}"
    );
    let error = run(vec![json!("a")]).err().expect("one argument short");
    assert_eq!(
        error.to_string(),
        "the job takes 2 arguments, but its payload has 1"
    );
}

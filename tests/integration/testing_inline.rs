//! `jobs::testing::inline`: a push runs its job at once, in the test, without Redis.

use std::time::Duration;

use jobs::{Error, testing};

use crate::support::jobs::{CallLog, Explode, Record, RecordCall};

/// Pushes a `Record` job for each label.
#[jobs::job]
async fn record_each(labels: Vec<String>) -> Result<(), Error> {
    for label in labels {
        Record::perform_async(label).await?;
    }
    Ok(())
}

#[tokio::test]
async fn perform_async_runs_the_job_before_returning() {
    let log = CallLog::default();
    let _inline = testing::inline().state(log.clone());
    let jid = RecordCall::perform_async("now".to_owned()).await.unwrap();
    assert_eq!(log.entries(), [format!("now jid={jid} queue=default")]);
}

#[tokio::test]
async fn scheduled_pushes_and_the_jobs_a_job_pushes_run_too() {
    let log = CallLog::default();
    let _inline = testing::inline().state(log.clone());
    Record::perform_in(Duration::from_secs(3600), "later".to_owned())
        .await
        .unwrap();
    RecordEach::perform_async(vec!["a".to_owned(), "b".to_owned()])
        .await
        .unwrap();
    assert_eq!(log.entries(), ["later", "a", "b"]);
}

#[tokio::test]
async fn a_failing_job_fails_the_push() {
    let _inline = testing::inline();
    let error = Explode::perform_async("boom".to_owned()).await.unwrap_err();
    let Error::Failed { class, error, .. } = &error else {
        panic!("expected Failed, got {error:?}");
    };
    assert_eq!(class, "Explode");
    assert_eq!(error.to_string(), "boom");
}

#[tokio::test]
async fn a_unique_job_holds_its_lock_while_it_runs_inline() {
    use crate::support::jobs::PushMyself;
    let log = CallLog::default();
    let _inline = testing::inline().state(log.clone());
    let pushed = PushMyself::perform_async("a".to_owned()).await.unwrap();
    assert!(!pushed.is_duplicate());
    // The push from inside the running job was refused; once it ended, the lock was released.
    assert_eq!(log.entries(), ["a: duplicate"]);
    let again = PushMyself::perform_async("a".to_owned()).await.unwrap();
    assert!(!again.is_duplicate());
    assert_eq!(log.entries(), ["a: duplicate", "a: duplicate"]);
}

//! Batches in `jobs::testing::fake`: a batch's jobs are recorded with their `bid`, never
//! written to Redis, and `drain()` runs them and then the callbacks their outcomes fire, each
//! once. No Redis: the client points where nothing listens. The jobs share the test jobs'
//! `CallLog` state, which every test worker has (a state of their own would stop them).

use std::time::Duration;

use jobs::testing;
use jobs::{Batch, Client, JobContext, JobError, job};

use crate::support::free_port;
use crate::support::jobs::CallLog;

/// A client pointing where nothing listens: with a fake on, it must never be used.
fn nowhere() -> Client {
    Client::builder()
        .url(format!("redis://127.0.0.1:{}/0", free_port()))
        .connect_timeout(Duration::from_millis(200))
        .reconnect_attempts(0)
        .build()
        .expect("a client")
}

/// Scores a user; user 0 has no data, and fails.
#[job(name = "TestingBatches::Score")]
async fn testing_batches_score(#[state] journal: CallLog, user: u64) -> Result<(), JobError> {
    if user == 0 {
        return Err(JobError::msg("no data for user 0"));
    }
    journal
        .0
        .lock()
        .expect("journal")
        .push(format!("score {user}"));
    Ok(())
}

/// Scores a user with up to 25 retries; user 0 fails with an error of its own class.
#[job(name = "TestingBatches::Retried", retry = 25)]
async fn testing_batches_retried(#[state] journal: CallLog, user: u64) -> Result<(), JobError> {
    if user == 0 {
        return Err(JobError::msg("no data for user 0").with_class("NoData"));
    }
    journal
        .0
        .lock()
        .expect("journal")
        .push(format!("retried {user}"));
    Ok(())
}

/// Scores a user with no retries (`retry = 0`): a failure is a death.
#[job(name = "TestingBatches::Once", retry = 0)]
async fn testing_batches_once(#[state] journal: CallLog, user: u64) -> Result<(), JobError> {
    if user == 0 {
        return Err(JobError::msg("no data for user 0"));
    }
    journal
        .0
        .lock()
        .expect("journal")
        .push(format!("score {user}"));
    Ok(())
}

/// The success callback: publishes the scores.
#[job(name = "TestingBatches::Publish")]
async fn testing_batches_publish(#[state] journal: CallLog, date: String) {
    journal
        .0
        .lock()
        .expect("journal")
        .push(format!("publish {date}"));
}

/// The death callback.
#[job(name = "TestingBatches::Alert")]
async fn testing_batches_alert(#[state] journal: CallLog, what: String) {
    journal
        .0
        .lock()
        .expect("journal")
        .push(format!("alert {what}"));
}

/// A batch job that fans out: adds two more scores to its own batch.
#[job(name = "TestingBatches::FanOut")]
async fn testing_batches_fan_out(
    #[context] ctx: JobContext,
    #[state] journal: CallLog,
) -> Result<(), JobError> {
    journal
        .0
        .lock()
        .expect("journal")
        .push("fan out".to_owned());
    let batch = ctx.batch().expect("a batch job");
    batch
        .push_all([
            TestingBatchesScore { user: 8 },
            TestingBatchesScore { user: 9 },
        ])
        .await
        .map_err(JobError::from)?;
    Ok(())
}

#[tokio::test]
async fn testing_batches_drain_runs_the_jobs_then_the_success_callback_once() {
    let journal = CallLog::default();
    let fake = testing::fake().state(journal.clone());
    let bid = Batch::new()
        .client(&nowhere())
        .description("nightly scores")
        .on_success(TestingBatchesPublish {
            date: "2026-12-06".into(),
        })
        .on_death(TestingBatchesAlert {
            what: "scores".into(),
        })
        .push_all((1..=3).map(|user| TestingBatchesScore { user }))
        .await
        .unwrap();

    // Recorded with their bid, the callback not yet.
    let recorded = fake.enqueued_of::<TestingBatchesScore>();
    assert_eq!(recorded.len(), 3);
    for job in &recorded {
        assert_eq!(
            job.payload().extra.get("bid").and_then(|bid| bid.as_str()),
            Some(bid.as_str())
        );
    }
    fake.assert_not_enqueued::<TestingBatchesPublish>();
    let status = fake.batch(&bid).unwrap();
    assert_eq!((status.total, status.pending), (3, 3));
    assert_eq!(status.description.as_deref(), Some("nightly scores"));

    assert_eq!(
        fake.drain().await.unwrap(),
        4,
        "three scores and the callback"
    );
    assert_eq!(
        journal.entries(),
        ["score 1", "score 2", "score 3", "publish 2026-12-06"]
    );
    let status = fake.batch(&bid).unwrap();
    assert_eq!(status.pending, 0);
    assert!(status.complete_at.is_some() && status.success_at.is_some());
    assert!(status.death_at.is_none());
    // Nothing left: the callback ran once.
    assert_eq!(fake.drain().await.unwrap(), 0);
}

#[tokio::test]
async fn testing_batches_a_job_without_retries_that_fails_fires_death_not_success() {
    let journal = CallLog::default();
    let fake = testing::fake().state(journal.clone());
    let bid = Batch::new()
        .client(&nowhere())
        .on_success(TestingBatchesPublish {
            date: "2026-12-06".into(),
        })
        .on_death(TestingBatchesAlert {
            what: "scores".into(),
        })
        .push_all([0, 1, 2].map(|user| TestingBatchesOnce { user }))
        .await
        .unwrap();

    // The first job fails: drain stops there, as for any failure, with the batch updated.
    let error = fake.drain().await.unwrap_err();
    assert!(error.to_string().contains("no data for user 0"), "{error}");
    let status = fake.batch(&bid).unwrap();
    assert_eq!((status.failures, status.dead), (1, 1));
    assert!(status.death_at.is_some());
    assert_eq!(status.failed[0].error_message, "no data for user 0");
    assert_eq!(status.failed[0].error_class, "JobError");

    // The rest run, then the death callback; success never fires.
    assert_eq!(fake.drain().await.unwrap(), 3);
    assert_eq!(journal.entries(), ["score 1", "score 2", "alert scores"]);
    let status = fake.batch(&bid).unwrap();
    assert!(status.complete_at.is_some() && status.success_at.is_none());
    fake.assert_not_enqueued::<TestingBatchesPublish>();
}

/// As in production, where only `complete` fires on a retryable job's first failure: the fake
/// retries nothing, so the batch stays pending; death and success never fire.
#[tokio::test]
async fn testing_batches_a_retryable_job_that_fails_fires_complete_only() {
    let journal = CallLog::default();
    let fake = testing::fake().state(journal.clone());
    let bid = Batch::new()
        .client(&nowhere())
        .on_complete(TestingBatchesPublish {
            date: "complete".into(),
        })
        .on_death(TestingBatchesAlert {
            what: "scores".into(),
        })
        .push_all([0, 1].map(|user| TestingBatchesRetried { user }))
        .await
        .unwrap();

    let error = fake.drain().await.unwrap_err();
    assert!(error.to_string().contains("no data for user 0"), "{error}");
    let status = fake.batch(&bid).unwrap();
    assert_eq!((status.failures, status.dead), (1, 0));
    assert!(!status.failed[0].dead);
    assert_eq!(status.failed[0].error_class, "NoData");

    assert_eq!(
        fake.drain().await.unwrap(),
        2,
        "user 1, then the complete callback"
    );
    assert_eq!(journal.entries(), ["retried 1", "publish complete"]);
    let status = fake.batch(&bid).unwrap();
    assert_eq!(status.pending, 1);
    assert!(status.complete_at.is_some());
    assert!(status.death_at.is_none() && status.success_at.is_none());
    fake.assert_not_enqueued::<TestingBatchesAlert>();
}

#[tokio::test]
async fn testing_batches_jobs_added_by_a_running_job_hold_the_batch_open() {
    let journal = CallLog::default();
    let fake = testing::fake().state(journal.clone());
    let bid = Batch::new()
        .client(&nowhere())
        .on_success(TestingBatchesPublish { date: "fan".into() })
        .push(TestingBatchesFanOut {})
        .commit()
        .await
        .unwrap();
    assert_eq!(fake.drain().await.unwrap(), 4);
    assert_eq!(
        journal.entries(),
        ["fan out", "score 8", "score 9", "publish fan"]
    );
    assert_eq!(fake.batch(&bid).unwrap().total, 3);
}

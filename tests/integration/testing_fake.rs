//! `jobs::testing::fake`: pushes are recorded, not written, and run when the test says so. No
//! Redis: every client here points where nothing listens.

use std::time::Duration;

use chrono::NaiveDate;
use jobs::testing::{self, EnqueuedJob};
use jobs::{Client, Error, Payload, job};

use crate::support::free_port;
use crate::support::jobs::{CallLog, Explode, Record, RecordCall, ScoreGeneration, SendEmail};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date")
}

/// A client pointing where nothing listens: with a fake on, it must never be used.
fn nowhere() -> Client {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    Client::builder()
        .url(url)
        .connect_timeout(Duration::from_millis(200))
        .reconnect_attempts(0)
        .build()
        .expect("a client")
}

/// Pushes `count` `Record` jobs now and one in a minute.
#[job]
async fn fan_out(count: u32) -> Result<(), Error> {
    for n in 0..count {
        Record::perform_async(format!("record {n}")).await?;
    }
    Record::perform_in(Duration::from_secs(60), "later".to_owned()).await?;
    Ok(())
}

#[tokio::test]
async fn records_the_push_as_a_worker_would_receive_it() {
    let fake = testing::fake();
    let before = chrono::Utc::now();
    let jid = ScoreGeneration::perform_async(today()).await.unwrap();

    let [job]: [EnqueuedJob; 1] = fake.enqueued().try_into().expect("one job");
    assert_eq!(job.jid(), &jid);
    assert_eq!(job.class(), "ScoreGeneration");
    assert_eq!(job.queue(), "default");
    assert_eq!(job.payload().args, [serde_json::json!("2026-11-22")]);
    let enqueued_at = job
        .payload()
        .enqueued_at
        .expect("enqueued_at")
        .to_datetime();
    assert!(enqueued_at >= before - chrono::TimeDelta::milliseconds(1));
    assert!(job.payload().created_at.is_some());
    assert_eq!(job.at(), None);

    let calls = fake.jobs::<ScoreGeneration>();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].date, today());
    fake.assert_enqueued::<ScoreGeneration>();
    fake.assert_enqueued_with::<ScoreGeneration>(|job| job.date == today());
    fake.assert_enqueued_count::<ScoreGeneration>(1);
    fake.assert_not_enqueued::<SendEmail>();
}

#[tokio::test]
async fn counts_per_queue_and_class_for_every_kind_of_push() {
    let fake = testing::fake();
    let client = nowhere();
    ScoreGeneration::set()
        .queue("critical")
        .perform_async(today())
        .await
        .unwrap();
    let jids = ScoreGeneration::perform_bulk((1..=3).map(|day| ScoreGeneration {
        date: NaiveDate::from_ymd_opt(2026, 11, day).expect("a date"),
    }))
    .await
    .unwrap();
    assert_eq!(jids.len(), 3);
    client
        .perform_async(SendEmail {
            to: "a@example.com".to_owned(),
            subject: "hi".to_owned(),
        })
        .await
        .unwrap();
    client
        .push(Payload::new("RubyOnly", vec![1.into()]).queue("ruby"))
        .await
        .unwrap();

    let sizes = fake.queue_sizes();
    assert_eq!(sizes["critical"], 1);
    assert_eq!(sizes["default"], 4);
    assert_eq!(sizes["ruby"], 1);
    assert_eq!(fake.len(), 6);
    assert_eq!(fake.enqueued_of::<ScoreGeneration>().len(), 4);
    assert_eq!(fake.queue("ruby")[0].class(), "RubyOnly");

    fake.clear_jobs::<ScoreGeneration>();
    assert_eq!(fake.len(), 2);
    fake.clear();
    fake.assert_nothing_enqueued();
}

#[tokio::test]
async fn drain_runs_jobs_and_the_jobs_they_push_with_the_tests_state() {
    let log = CallLog::default();
    let fake = testing::fake().state(log.clone());
    FanOut::perform_async(2).await.unwrap();
    assert!(log.entries().is_empty(), "nothing runs before drain");

    assert_eq!(fake.drain().await.unwrap(), 3);
    assert_eq!(log.entries(), ["record 0", "record 1"]);
    let [later]: [EnqueuedJob; 1] = fake.scheduled().try_into().expect("one scheduled job");
    assert!(later.payload().enqueued_at.is_none());
    let wait = later.at().expect("a time") - fake.now();
    assert!(wait > chrono::TimeDelta::seconds(58), "{wait}");

    assert_eq!(fake.drain_all().await.unwrap(), 1);
    assert_eq!(log.entries(), ["record 0", "record 1", "later"]);
    assert!(fake.is_empty());
}

#[tokio::test]
async fn the_fake_clock_decides_which_scheduled_jobs_are_due() {
    let log = CallLog::default();
    let fake = testing::fake().state(log.clone());
    Record::perform_in(Duration::from_secs(300), "in 5 min".to_owned())
        .await
        .unwrap();
    Record::perform_at(
        fake.now() + chrono::TimeDelta::hours(1),
        "in 1 h".to_owned(),
    )
    .await
    .unwrap();

    assert_eq!(fake.drain().await.unwrap(), 0);
    fake.advance(Duration::from_secs(301));
    assert_eq!(fake.drain().await.unwrap(), 1);
    assert_eq!(log.entries(), ["in 5 min"]);
    assert_eq!(fake.scheduled().len(), 1);

    // Counted from the fake clock: due 10 s after it, not after the real time.
    Record::perform_in(Duration::from_secs(10), "soon".to_owned())
        .await
        .unwrap();
    fake.advance(Duration::from_secs(11));
    assert!(fake.perform_one().await.unwrap().is_some());
    assert_eq!(log.entries(), ["in 5 min", "soon"]);

    // Moved as far as it goes, the clock stops at the end of time and everything is due.
    fake.advance(Duration::MAX);
    fake.advance(Duration::MAX);
    assert!(fake.now() > chrono::Utc::now() + chrono::TimeDelta::days(365 * 1_000));
    assert_eq!(fake.drain().await.unwrap(), 1);
    assert_eq!(log.entries(), ["in 5 min", "soon", "in 1 h"]);
}

#[tokio::test]
async fn perform_one_runs_through_the_worker_path_and_reports_failures() {
    let log = CallLog::default();
    let fake = testing::fake().state(log.clone());
    assert_eq!(fake.perform_one().await.unwrap(), None);

    let jid = RecordCall::perform_async("hello".to_owned()).await.unwrap();
    Explode::perform_async("boom".to_owned()).await.unwrap();
    assert_eq!(fake.perform_one().await.unwrap(), Some(jid.clone()));
    assert_eq!(log.entries(), [format!("hello jid={jid} queue=default")]);

    let error = fake.perform_one().await.unwrap_err();
    let Error::Failed { class, error, .. } = &error else {
        panic!("expected Failed, got {error:?}");
    };
    assert_eq!(class, "Explode");
    assert_eq!(error.to_string(), "boom");
    assert!(fake.is_empty(), "a failed job leaves the record");
}

#[tokio::test]
async fn drain_fails_on_an_unknown_class_or_a_missing_state() {
    let fake = testing::fake();
    nowhere()
        .push(Payload::new("RubyOnly", vec![]))
        .await
        .unwrap();
    Record::perform_async("x".to_owned()).await.unwrap();

    let Error::Failed { error, .. } = fake.drain().await.unwrap_err() else {
        panic!("expected Failed");
    };
    assert_eq!(error.class(), "jobs::UnknownJob");
    let Error::Failed { error, .. } = fake.drain().await.unwrap_err() else {
        panic!("expected Failed");
    };
    assert_eq!(error.class(), "jobs::MissingState");
}

#[tokio::test]
async fn drain_jobs_runs_one_type_only() {
    let log = CallLog::default();
    let fake = testing::fake().state(log.clone());
    Record::perform_async("a".to_owned()).await.unwrap();
    Explode::perform_async("not now".to_owned()).await.unwrap();
    assert_eq!(fake.drain_jobs::<Record>().await.unwrap(), 1);
    assert_eq!(log.entries(), ["a"]);
    fake.assert_enqueued_count::<Explode>(1);
}

#[test]
fn tests_on_parallel_threads_see_only_their_own_jobs() {
    // Every thread's fake is on before any pushes, and stays on until all have pushed: the
    // four modes overlap for certain.
    let all_on = std::sync::Arc::new(std::sync::Barrier::new(4));
    let all_pushed = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (1..=4)
        .map(|count| {
            let (all_on, all_pushed) = (all_on.clone(), all_pushed.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async {
                    let fake = testing::fake();
                    all_on.wait();
                    for _ in 0..count {
                        ScoreGeneration::perform_async(today()).await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    all_pushed.wait();
                    fake.len()
                })
            })
        })
        .collect();
    let seen: Vec<usize> = threads
        .into_iter()
        .map(|thread| thread.join().expect("a thread"))
        .collect();
    assert_eq!(seen, [1, 2, 3, 4]);
}

#[tokio::test]
async fn spawned_tasks_of_a_current_thread_runtime_are_covered() {
    let fake = testing::fake();
    tokio::spawn(async { ScoreGeneration::perform_async(today()).await })
        .await
        .unwrap()
        .unwrap();
    fake.assert_enqueued_count::<ScoreGeneration>(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_follows_a_task_onto_a_multi_thread_runtime() {
    let fake = testing::fake();
    let client = nowhere();
    let task = fake.scope(async move {
        client
            .perform_async(ScoreGeneration { date: today() })
            .await
    });
    tokio::spawn(task).await.unwrap().unwrap();
    fake.assert_enqueued_count::<ScoreGeneration>(1);
}

#[tokio::test]
async fn the_mode_ends_with_its_guard() {
    {
        let fake = testing::fake();
        nowhere()
            .perform_async(ScoreGeneration { date: today() })
            .await
            .unwrap();
        assert_eq!(fake.len(), 1);
    }
    let error = nowhere()
        .perform_async(ScoreGeneration { date: today() })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
}

#[tokio::test]
#[should_panic(
    expected = "expected a SendEmail job to be enqueued, but none was; enqueued: [ScoreGeneration on default]"
)]
async fn a_failed_assertion_lists_what_was_enqueued() {
    let fake = testing::fake();
    ScoreGeneration::perform_async(today()).await.unwrap();
    fake.assert_enqueued::<SendEmail>();
}

#[tokio::test]
async fn guards_dropped_out_of_order_leave_the_newest_on_and_then_none() {
    let client = nowhere();
    let first = testing::fake();
    let second = testing::fake();
    drop(first);
    client
        .push(Payload::new("HardJob", vec![]))
        .await
        .expect("recorded by the guard still alive");
    assert_eq!(second.enqueued().len(), 1);
    drop(second);
    let error = client.push(Payload::new("HardJob", vec![])).await;
    assert!(
        matches!(error, Err(Error::Connect { .. })),
        "with no guard left the push goes to Redis (none listens here): {error:?}"
    );
}

#[tokio::test]
async fn jobs_a_drained_job_pushes_come_back_to_its_fake_under_a_newer_mode() {
    let fake = testing::fake();
    FanOut::set()
        .client(&nowhere())
        .perform_async(2)
        .await
        .unwrap();
    let _inline = testing::inline();
    // The job pushes two `Record`s and one for later: recorded by the fake that ran it, not
    // run by the newer inline mode (which would fail them: no `CallLog` state).
    fake.perform_one().await.unwrap();
    assert_eq!(fake.enqueued().len(), 3);
}

//! `jobs::testing::fake`: pushes are recorded, not written, and run when the test says so. No
//! Redis: every client here points where nothing listens.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use jobs::periodic::{Periodic, Tz};
use jobs::testing::{self, EnqueuedJob};
use jobs::{BoxError, Client, ClientMiddleware, Error, Flow, Payload, job};
use serde_json::json;

use crate::support::free_port;
use crate::support::jobs::{
    CallLog, Explode, NewYearReport, Record, RecordCall, ScoreGeneration, SendEmail,
};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date")
}

/// A client pointing where nothing listens: with a fake on, it must never be used.
fn nowhere() -> Client {
    nowhere_builder().build().expect("a client")
}

fn nowhere_builder() -> jobs::ClientBuilder {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    Client::builder()
        .url(url)
        .connect_timeout(Duration::from_millis(200))
        .reconnect_attempts(0)
}

/// A time of day in Berlin, as UTC (the first of two, on the night clocks go back).
fn berlin(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Tz::Europe__Berlin
        .with_ymd_and_hms(year, month, day, hour, minute, 0)
        .earliest()
        .expect("a Berlin time")
        .with_timezone(&Utc)
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 time")
}

/// A recorded job's tick, in Berlin time.
fn berlin_tick(job: &EnqueuedJob) -> String {
    let tick = job.tick().expect("a periodic job");
    tick.with_timezone(&Tz::Europe__Berlin).to_rfc3339()
}

/// The app's worker as its `main` builds it: each day's scores, computed at 03:00 Berlin time.
fn app_worker() -> jobs::Worker {
    jobs::Worker::new().periodic_entry(
        Periodic::new("nightly_scores", "0 3 * * *", |tick| ScoreGeneration {
            date: tick.date_naive(),
        })
        .timezone("Europe/Berlin"),
    )
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
    // (`set_now` first: advancing from today would push `NewYearReport` for every New Year on
    // the way.)
    fake.set_now(DateTime::<Utc>::MAX_UTC - TimeDelta::days(1));
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
    assert_eq!(fake.perform_one().await.unwrap(), Some(jid.jid().clone()));
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

#[tokio::test]
async fn the_nightly_job_is_queued_at_03_00_berlin_time() {
    let fake = testing::fake().periodic_entries(app_worker().periodic_entries());
    fake.set_now(berlin(2026, 11, 22, 2, 0));
    fake.advance(Duration::from_secs(59 * 60));
    fake.assert_nothing_enqueued();

    fake.advance_to(berlin(2026, 11, 22, 4, 0));
    let [job]: [EnqueuedJob; 1] = fake.enqueued().try_into().expect("one job");
    let three = berlin(2026, 11, 22, 3, 0);
    assert_eq!(job.decode::<ScoreGeneration>().unwrap().date, today());
    assert_eq!(job.queue(), "default");
    assert_eq!(job.periodic_entry(), Some("nightly_scores"));
    assert_eq!(job.tick(), Some(three));
    assert_eq!(berlin_tick(&job), "2026-11-22T03:00:00+01:00");
    assert_eq!(
        job.payload().extra["jobs_tick"],
        json!(three.timestamp() as f64)
    );
    // Pushed as a worker pushes it at 03:00: to run now, stamped with the tick's time.
    assert_eq!(job.at(), None);
    let enqueued_at = job
        .payload()
        .enqueued_at
        .expect("enqueued_at")
        .to_datetime();
    assert!(
        enqueued_at >= three && enqueued_at - three < TimeDelta::seconds(1),
        "{enqueued_at}"
    );
    assert!(fake.now() >= berlin(2026, 11, 22, 4, 0));

    // The next one waits for the next night.
    fake.advance_to(berlin(2026, 11, 23, 2, 59));
    fake.assert_enqueued_count::<ScoreGeneration>(1);
    fake.advance(Duration::from_secs(2 * 60));
    fake.assert_enqueued_count::<ScoreGeneration>(2);
    let tomorrow = today().succ_opt().expect("a date");
    fake.assert_enqueued_with::<ScoreGeneration>(|job| job.date == tomorrow);
    assert_eq!(fake.drain().await.unwrap(), 2);
}

#[tokio::test]
async fn the_nightly_job_runs_once_a_night_when_the_clocks_change() {
    let fake = testing::fake().periodic_entries(app_worker().periodic_entries());
    // 25 October 2026: 03:00 summer time becomes 02:00 winter time, so 02:00 to 04:00 takes
    // three hours; 03:00 comes once.
    fake.set_now(berlin(2026, 10, 25, 2, 0));
    fake.advance(Duration::from_secs(3 * 3600));
    let night: Vec<String> = fake.enqueued().iter().map(berlin_tick).collect();
    assert_eq!(night, ["2026-10-25T03:00:00+01:00"]);
    let dates: Vec<NaiveDate> = fake
        .jobs::<ScoreGeneration>()
        .iter()
        .map(|job| job.date)
        .collect();
    assert_eq!(dates, [NaiveDate::from_ymd_opt(2026, 10, 25).unwrap()]);

    // 28 March 2027: 02:00 winter time becomes 03:00 summer time; two days across it.
    fake.clear();
    fake.set_now(berlin(2027, 3, 27, 12, 0));
    fake.advance(Duration::from_secs(2 * 86_400));
    let nights: Vec<String> = fake.enqueued().iter().map(berlin_tick).collect();
    assert_eq!(
        nights,
        ["2027-03-28T03:00:00+02:00", "2027-03-29T03:00:00+02:00"]
    );
    let dates: Vec<String> = fake
        .jobs::<ScoreGeneration>()
        .iter()
        .map(|job| job.date.to_string())
        .collect();
    assert_eq!(dates, ["2027-03-28", "2027-03-29"]);
}

#[tokio::test]
async fn a_cron_job_of_the_binary_is_pushed_when_the_clock_passes_its_tick_and_not_before() {
    let fake = testing::fake();
    fake.set_now(utc("2026-12-31T23:00:00Z"));
    fake.advance(Duration::from_secs(59 * 60));
    fake.assert_not_enqueued::<NewYearReport>();

    fake.advance(Duration::from_secs(2 * 60));
    let [job]: [EnqueuedJob; 1] = fake.enqueued().try_into().expect("one job");
    assert!(job.is::<NewYearReport>());
    assert_eq!(job.queue(), "yearly");
    assert!(job.payload().args.is_empty());
    // The options the job declares, as `perform_async` would push it.
    assert_eq!(job.payload().retry, Some(jobs::Retry::Times(2)));
    assert_eq!(
        job.payload().tags.as_deref(),
        Some(&["report".to_owned()][..])
    );
    assert_eq!(job.periodic_entry(), Some("NewYearReport"));
    assert_eq!(job.tick(), Some(utc("2027-01-01T00:00:00Z")));
    assert_eq!(fake.drain().await.unwrap(), 1);

    // Jumps of the clock do not run the schedule: `set_now`, and `drain_all`'s jump to a job
    // scheduled past the next New Year.
    fake.set_now(utc("2027-12-31T23:59:00Z"));
    SendEmail::perform_in(
        Duration::from_secs(3600),
        "ops@example.com".to_owned(),
        "reminder".to_owned(),
    )
    .await
    .unwrap();
    assert_eq!(fake.drain_all().await.unwrap(), 1);
    fake.set_now(utc("2029-01-01T00:00:01Z"));
    fake.advance(Duration::from_secs(1));
    fake.assert_nothing_enqueued();
}

/// Tags every job it lets through, and stops the `Skipped` ones.
struct TagOrSkip;

impl ClientMiddleware for TagOrSkip {
    async fn call(&self, job: &mut Payload) -> Result<Flow, BoxError> {
        if job.class == "Skipped" {
            return Ok(Flow::Stop);
        }
        job.tags
            .get_or_insert_with(Vec::new)
            .push("scheduled".into());
        Ok(Flow::Continue)
    }
}

#[tokio::test]
async fn fixed_entries_push_their_job_every_tick_through_the_client_middleware() {
    let client = nowhere_builder()
        .middleware(TagOrSkip)
        .build()
        .expect("a client");
    let email = SendEmail {
        to: "ops@example.com".to_owned(),
        subject: "hourly".to_owned(),
    };
    let digest = Periodic::class(
        "ruby_digest",
        "*/20 * * * *",
        "DigestMailer",
        vec![json!("daily"), json!(3)],
    );
    let fake = testing::fake()
        .periodic_entries(&[digest.queue("mailers")])
        .periodic_entry(Periodic::job("hourly_email", "0 * * * *", email))
        .periodic_entry(Periodic::class("skipped", "*/5 * * * *", "Skipped", vec![]))
        .periodic_entry(Periodic::class("paused", "* * * * *", "Paused", vec![]).enabled(false))
        .periodic_client(&client);
    fake.set_now(utc("2026-11-22T10:00:00Z"));
    fake.advance(Duration::from_secs(3600));

    let pushed: Vec<String> = fake
        .enqueued()
        .iter()
        .map(|job| {
            let tick = job.tick().expect("a periodic job").format("%H:%M");
            format!("{tick} {} on {}", job.class(), job.queue())
        })
        .collect();
    assert_eq!(
        pushed,
        [
            "10:20 DigestMailer on mailers",
            "10:40 DigestMailer on mailers",
            "11:00 DigestMailer on mailers",
            "11:00 SendEmail on default",
        ]
    );
    let digests = fake.queue("mailers");
    assert!(
        digests
            .iter()
            .all(|job| job.payload().args == [json!("daily"), json!(3)])
    );
    assert_ne!(digests[0].jid(), digests[1].jid(), "a fresh jid each tick");
    assert!(
        fake.enqueued()
            .iter()
            .all(|job| job.payload().tags == Some(vec!["scheduled".to_owned()]))
    );
    fake.assert_enqueued_with::<SendEmail>(|job| job.subject == "hourly");
}

#[tokio::test]
#[should_panic(
    expected = "spans more than 10000 ticks of the periodic entry `every_second` \
                           (`* * * * * *` in UTC); advance it in smaller steps"
)]
async fn advancing_across_too_many_ticks_of_an_entry_is_refused() {
    let fake = testing::fake().periodic_entry(Periodic::class(
        "every_second",
        "* * * * * *",
        "Ping",
        vec![],
    ));
    fake.set_now(utc("2026-11-22T10:00:00Z"));
    // To an instant, not by a span: the fake clock keeps running between the two calls.
    fake.advance_to(utc("2026-11-22T10:10:00Z"));
    assert_eq!(fake.len(), 600);
    fake.advance(Duration::from_secs(86_400));
}

#[test]
#[should_panic(
    expected = "a fake cannot follow these periodic entries: Worker::periodic \
                           (periodic entry `digest`): `0 3 * *` has 4 fields"
)]
fn a_bad_periodic_entry_fails_the_test_with_the_workers_error() {
    let _fake =
        testing::fake().periodic_entry(Periodic::class("digest", "0 3 * *", "Digest", vec![]));
}

#[test]
#[should_panic(expected = "two periodic entries are named `NewYearReport`")]
fn an_entry_named_like_a_cron_job_of_the_binary_is_refused() {
    let _fake = testing::fake().periodic_entry(Periodic::class(
        "NewYearReport",
        "@daily",
        "NewYearReport",
        vec![],
    ));
}

#[tokio::test]
async fn a_fake_refuses_a_duplicate_unique_push_and_records_it() {
    use crate::support::jobs::{ChargeCustomer, PushMyself};
    use jobs::Pushed;
    let log = CallLog::default();
    let fake = testing::fake().state(log.clone());
    let first = ChargeCustomer::perform_async(7, 100).await.unwrap();
    let second = ChargeCustomer::perform_async(7, 250).await.unwrap();
    assert_eq!(second, Pushed::Duplicate(first.jid().clone()));
    fake.assert_enqueued_count::<ChargeCustomer>(1);
    let refused = fake.refused();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].decode::<ChargeCustomer>().unwrap().cents, 250);

    // Run, it releases the lock: the next push is recorded.
    fake.drain().await.unwrap();
    let third = ChargeCustomer::perform_async(7, 300).await.unwrap();
    assert!(!third.is_duplicate());

    // A job that pushes itself while it runs is refused; the drain ends.
    fake.clear();
    assert!(fake.refused().is_empty());
    PushMyself::perform_async("loop".to_owned()).await.unwrap();
    assert_eq!(fake.drain().await.unwrap(), 1);
    assert_eq!(log.entries().last().unwrap(), "loop: duplicate");
    assert_eq!(fake.refused().len(), 1);

    // The lock runs out on the fake clock, as it would in Redis.
    let held = ChargeCustomer::perform_in(Duration::from_secs(10), 8, 1)
        .await
        .unwrap();
    assert!(
        ChargeCustomer::perform_async(8, 2)
            .await
            .unwrap()
            .is_duplicate()
    );
    fake.advance(Duration::from_secs(10 + 601));
    let later = ChargeCustomer::perform_async(8, 3).await.unwrap();
    assert!(!later.is_duplicate(), "{held:?} ran out");
}

//! The `#[job]` expansion under clippy's pedantic lints, and the stricter rustc lints a user
//! may turn on.
//!
//! trybuild compiles the cases in `tests/pass/` with rustc alone, so no clippy lint ever sees
//! them. This file is an ordinary test target, which CI's
//! `cargo clippy --workspace --all-targets -- -D warnings` lints with everything below denied:
//! each job here is one shape of expansion, and a lint that fires on generated code fails CI.
//! Clippy skips most lints on tokens the macro made up; what it checks is what users see too:
//! lints on their own tokens (the function, its types) and on generated code placed there.

#![deny(warnings, missing_docs, unused_qualifications, unused_results)]
#![deny(single_use_lifetimes, unused_lifetimes, trivial_casts)]
#![deny(clippy::all, clippy::pedantic)]
// Restriction lints that the expansion's own `#[allow(...)]`s could trip.
#![deny(clippy::allow_attributes, clippy::allow_attributes_without_reason)]
#![forbid(unsafe_code)]

use std::time::Duration;

use chrono::NaiveDate;
use jobs::{Job, JobContext, JobError, job};
use serde::{Deserialize, Serialize};

/// What a worker shares with every job, by clone.
#[derive(Debug, Clone)]
pub struct Db;

/// A user-defined argument type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Shown in the report's header.
    pub title: String,
}

/// No arguments, no return value, private.
#[job]
async fn cleanup() {}

/// One argument and a `Result`, public.
///
/// # Errors
///
/// When the date is the first one `NaiveDate` knows.
#[job(queue = "scores", retry = 3)]
pub async fn score_generation(date: NaiveDate) -> Result<(), JobError> {
    if date == NaiveDate::MIN {
        return Err("no scores before the first day".into());
    }
    Ok(())
}

/// Several arguments, two of them named like the parameters of `perform_in`/`perform_at`.
#[job]
pub async fn build_report(
    date: NaiveDate,
    user_ids: Vec<u64>,
    report: Report,
    delay: Duration,
    time: u64,
) {
    let _ = (date, user_ids, report, delay, time);
}

/// `#[context]` and `#[state]` beside an argument.
#[job]
async fn sync_user(#[context] ctx: JobContext, #[state] db: Db, user_id: u64) {
    let _ = (ctx, db, user_id);
}

/// Every option at once.
#[job(
    queue = "critical",
    retry = false,
    name = "Billing::ChargeJob",
    backtrace = 10,
    retry_queue = "slow",
    dead = false,
    tags = ["billing"],
    timeout = 2.5,
    crate = jobs
)]
async fn charge(invoice_id: u64) -> Result<(), std::io::Error> {
    let _ = invoice_id;
    Ok(())
}

/// A failure's delay: ten seconds per retry so far, for the first five; then Sidekiq's.
fn ten_seconds_a_retry(count: u32, _error: &JobError) -> Option<jobs::RetryOverride> {
    (count < 5).then(|| jobs::RetryOverride::In(Duration::from_secs(u64::from(count) * 10)))
}

/// Keeps the job when its retries run out.
fn keep(_job: &jobs::Payload, _error: &JobError) -> jobs::worker::Exhausted {
    jobs::worker::Exhausted::Bury
}

/// Per-class retry behaviour.
#[job(retry_in = ten_seconds_a_retry, retries_exhausted = keep, retry_for = 600)]
async fn flaky() -> Result<(), JobError> {
    Ok(())
}

/// Keyword arguments for Ruby, one of them a date.
#[derive(Debug, Serialize, Deserialize)]
pub struct Notify {
    /// Whether to notify.
    pub notify: bool,
    /// The day, a Ruby `Date`.
    #[serde(with = "jobs::active_job::typed")]
    pub on: NaiveDate,
}

/// An `ActiveJob` job for Rails: typed and serde arguments, keywords, and state after them.
#[job(name = "NotifyUserJob", active_job)]
async fn notify_user(
    user: jobs::GlobalId,
    day: NaiveDate,
    note: String,
    #[keywords] keywords: Notify,
    #[state] db: Db,
) {
    let _ = (user, day, note, keywords, db);
}

/// An `ActiveJob` job whose arguments all take the same path (no serde one).
#[job(active_job)]
async fn touch_day(day: NaiveDate) {
    let _ = day;
}

#[test]
fn each_shape_expands_to_a_job() {
    assert_eq!(Cleanup::NAME, "Cleanup");
    assert_eq!(ScoreGeneration::OPTIONS.queue, "scores");
    assert_eq!(SyncUser::STATE.len(), 1);
    assert_eq!(Charge::NAME, "Billing::ChargeJob");

    let report = BuildReport {
        date: NaiveDate::MIN,
        user_ids: vec![1, 2],
        report: Report {
            title: "daily".to_owned(),
        },
        delay: Duration::from_secs(1),
        time: 3,
    };
    let args = report.encode_args().expect("the arguments are JSON");
    assert_eq!(args.len(), 5);

    // Pushes are built and dropped, never awaited: nothing here needs Redis.
    let _pushes = (
        Cleanup::perform_async(),
        ScoreGeneration::perform_in(Duration::from_secs(30), NaiveDate::MIN),
        SyncUser::set().queue("users").perform_async(7),
        Charge::perform_bulk([Charge { invoice_id: 1 }]),
        Flaky::perform_async(),
        TouchDay::perform_async(NaiveDate::MIN),
    );
    let notify = NotifyUser {
        user: jobs::GlobalId::new("shop", "User", "1"),
        day: NaiveDate::MIN,
        note: String::new(),
        keywords: Notify {
            notify: true,
            on: NaiveDate::MIN,
        },
    };
    let args = notify.encode_args().expect("the arguments are JSON");
    assert_eq!(args.len(), 4);
}

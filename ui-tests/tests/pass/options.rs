//! Every `#[job]` option at once, read back from `Job::OPTIONS` and `Job::NAME`.

use std::time::Duration;

use jobs::{Backtrace, Job, Retry, job};

#[job(
    queue = "critical",
    retry = false,
    name = "Billing::ChargeJob",
    backtrace = 10,
    retry_queue = "slow",
    dead = false,
    tags = ["billing", "nightly"],
    timeout = 2.5,
    crate = jobs
)]
async fn charge(invoice_id: u64) {
    let _ = invoice_id;
}

#[job(retry = 0, backtrace = true)]
async fn no_retries() {}

#[job(unique_for = 600, unique_until = "start", unique_key = customer, expires_in = 3600)]
async fn once_per_customer(customer: u64, cents: u64) {
    let _ = (customer, cents);
}

/// What makes a `PerDay` job unique: its day, whatever its note.
fn day_of(job: &PerDay) -> String {
    job.day.clone()
}

#[job(unique_for = 60, unique_key = day_of)]
async fn per_day(day: String, note: String) {
    let _ = (day, note);
}

#[job(retry = true, backtrace = false, timeout = 30)]
async fn defaults_spelled_out() {}

#[job(retry_for = 3600)]
async fn for_an_hour() {}

fn main() {
    let options = <Charge as Job>::OPTIONS;
    assert_eq!(<Charge as Job>::NAME, "Billing::ChargeJob");
    assert_eq!(options.queue, "critical");
    assert_eq!(options.retry, Retry::Disabled);
    assert_eq!(options.backtrace, Backtrace::Lines(10));
    assert_eq!(options.retry_queue, Some("slow"));
    assert!(!options.dead);
    assert_eq!(options.tags, ["billing", "nightly"]);
    assert_eq!(options.timeout, Some(Duration::from_millis(2500)));

    assert_eq!(
        <ForAnHour as Job>::OPTIONS.retry_for,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(options.retry_for, None);

    let unique = <OncePerCustomer as Job>::OPTIONS;
    assert_eq!(unique.unique_for, Some(Duration::from_secs(600)));
    assert_eq!(unique.unique_until, jobs::UniqueUntil::Start);
    assert_eq!(unique.expires_in, Some(Duration::from_secs(3600)));
    let one = OncePerCustomer {
        customer: 7,
        cents: 100,
    };
    assert_eq!(one.unique_key().unwrap().unwrap().to_string(), "7");
    let day = PerDay {
        day: "2026-12-06".into(),
        note: "x".into(),
    };
    assert_eq!(
        day.unique_key().unwrap().unwrap().to_string(),
        "\"2026-12-06\""
    );
    assert_eq!(<NoRetries as Job>::OPTIONS.unique_for, None);

    assert_eq!(NoRetries::OPTIONS.retry, Retry::Times(0));
    assert_eq!(NoRetries::OPTIONS.backtrace, Backtrace::All);
    assert_eq!(NoRetries::OPTIONS.queue, "default");

    let defaults = DefaultsSpelledOut::OPTIONS;
    assert_eq!(defaults.retry, Retry::Default);
    assert_eq!(defaults.backtrace, Backtrace::Off);
    assert_eq!(defaults.timeout, Some(Duration::from_secs(30)));
    assert!(defaults.dead);

    let _ = Charge::perform_async(1);
}

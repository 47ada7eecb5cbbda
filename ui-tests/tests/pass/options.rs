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

#[job(retry = true, backtrace = false, timeout = 30)]
async fn defaults_spelled_out() {}

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

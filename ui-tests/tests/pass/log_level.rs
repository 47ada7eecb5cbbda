//! `log_level`: each of Sidekiq's level names, read back from `Job::OPTIONS`, and a push's own.

use jobs::{Job, LogLevel, job};

#[job(log_level = "debug")]
async fn verbose() {}

#[job(log_level = "info")]
async fn ordinary() {}

#[job(queue = "metrics", log_level = "warn")]
async fn frequent() {}

#[job(log_level = "error")]
async fn silent() {}

#[job]
async fn unset() {}

fn main() {
    assert_eq!(Verbose::OPTIONS.log_level, Some(LogLevel::Debug));
    assert_eq!(Ordinary::OPTIONS.log_level, Some(LogLevel::Info));
    assert_eq!(Frequent::OPTIONS.log_level, Some(LogLevel::Warn));
    assert_eq!(Frequent::OPTIONS.queue, "metrics");
    assert_eq!(Silent::OPTIONS.log_level, Some(LogLevel::Error));
    assert_eq!(<Unset as Job>::OPTIONS.log_level, None);
    let _ = Unset::set().log_level(LogLevel::Warn).perform_async(());
}

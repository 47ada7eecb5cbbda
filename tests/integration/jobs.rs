//! The jobs the tests push and run.

use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use jobs::{JobContext, JobError, job};

/// The README's job.
#[job(queue = "default", retry = 25)]
pub async fn score_generation(date: NaiveDate) -> Result<(), JobError> {
    let _ = date;
    Ok(())
}

/// A job with every default: queue `default`, `retry: true`.
#[job]
pub async fn send_email(to: String, subject: String) -> Result<(), std::io::Error> {
    let _ = (to, subject);
    Ok(())
}

/// A job with every option that reaches the payload.
#[job(
    queue = "critical",
    retry = false,
    name = "Mailer::Deliver",
    backtrace = true,
    retry_queue = "slow",
    dead = false,
    tags = ["mail", "urgent"],
    timeout = 30
)]
pub async fn deliver(message_id: u64) {
    let _ = message_id;
}

/// A job with no arguments.
#[job(queue = "maintenance")]
pub async fn nightly_cleanup() {}

/// What `record_call` saw, shared with the test through `#[state]`.
#[derive(Clone, Default)]
pub struct CallLog(pub Arc<Mutex<Vec<String>>>);

impl CallLog {
    /// Every entry so far.
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().expect("call log").clone()
    }
}

/// Records its label, jid and queue in the shared [`CallLog`].
#[job]
pub async fn record_call(#[context] ctx: JobContext, #[state] log: CallLog, label: String) {
    let entry = format!("{label} jid={} queue={}", ctx.jid(), ctx.queue());
    log.0.lock().expect("call log").push(entry);
}

/// Takes a float, which JSON cannot carry when it is NaN.
#[job]
pub async fn average(value: f64) {
    let _ = value;
}

/// Always fails with its message.
#[job]
pub async fn explode(message: String) -> Result<(), JobError> {
    Err(JobError::msg(message))
}

/// Always panics.
#[job]
pub async fn panic_now(message: String) {
    panic!("{message}");
}

/// Fails through `anyhow`, as many apps do.
#[job]
pub async fn parse_count(text: String) -> anyhow::Result<()> {
    let count: u32 = text.parse()?;
    anyhow::ensure!(count < 10, "count {count} is too large");
    Ok(())
}

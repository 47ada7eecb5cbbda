//! The jobs the tests push and run.

use chrono::NaiveDate;
use jobs::{JobContext, JobError, job};

/// The README's job.
#[job(queue = "default", retry = 25)]
pub async fn score_generation(date: NaiveDate) -> Result<(), JobError> {
    let _ = date;
    Ok(())
}

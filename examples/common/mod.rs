//! The jobs the examples share: what a todo app hands to its workers.

use chrono::NaiveDate;
use jobs::{JobContext, JobError, job};

/// Recomputes every user's score for `date`: the slow work a todo app's handlers hand off
/// instead of doing it inline.
#[job(queue = "default", retry = 25)]
pub(crate) async fn score_generation(
    #[context] ctx: JobContext,
    date: NaiveDate,
) -> Result<(), JobError> {
    tracing::info!(jid = %ctx.jid(), %date, "recomputing scores");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    Ok(())
}

/// Sends the welcome email to a new user.
#[job(queue = "mailers", retry = 5, tags = ["email"])]
pub(crate) async fn send_welcome_email(user_id: u64, address: String) -> Result<(), JobError> {
    if !address.contains('@') {
        return Err(JobError::msg(format!(
            "user {user_id} has no valid address: {address:?}"
        )));
    }
    tracing::info!(user_id, %address, "sending welcome email");
    Ok(())
}

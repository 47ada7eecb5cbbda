//! The jobs the examples share: what a todo app hands to its workers.

// Each example uses part of the store: the web app writes todos, the worker writes scores.
#[allow(dead_code)]
pub(crate) mod store;
// The store in PostgreSQL, with `--features postgres` and `DATABASE_URL` set.
#[cfg(feature = "postgres")]
#[allow(dead_code)]
pub(crate) mod postgres;

use chrono::NaiveDate;
use jobs::{JobContext, JobError, job};
use store::TodoStore;

/// Recomputes every user's score for `date` from the todos: the slow work the todo app's
/// handlers hand off instead of doing it inline.
///
/// Unique until it starts: ten edits while a recomputation waits queue one, not ten, and an edit
/// made while it runs queues the next one, so no edit is left out of the scores.
#[job(
    queue = "default",
    retry = 25,
    unique_for = 600,
    unique_until = "start"
)]
pub(crate) async fn score_generation(
    #[context] ctx: JobContext,
    #[state] store: TodoStore,
    date: NaiveDate,
) -> Result<(), JobError> {
    let scores = store.recompute_scores(date).await?;
    tracing::info!(jid = %ctx.jid(), %date, users = scores.by_user.len(), "scores recomputed");
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

//! [`Workflow::status`]: a workflow's hash and sets, and the batch of each step under way.

use super::graph::StepDef;
use super::status::{StepState, StepStatus, WorkflowState, WorkflowStatus};
use super::store::{self, Stored};
use super::{Workflow, WorkflowId, step};
use crate::batch::Batch;
use crate::client::Client;
use crate::error::Error;

impl Workflow {
    /// The state of workflow `wid` and of each of its steps, or `None` when there is no such
    /// workflow (never pushed, or its retention ran out). Reads the workflow in one round trip,
    /// then the batch of each step that has started and not finished.
    pub async fn status(
        client: &Client,
        wid: &WorkflowId,
    ) -> Result<Option<WorkflowStatus>, Error> {
        let Some(stored) = store::read(client, wid).await? else {
            return Ok(None);
        };
        let mut steps = Vec::with_capacity(stored.steps.len());
        for step in &stored.steps {
            steps.push(step_status(client, wid, &stored, step).await?);
        }
        let hash = &stored.hash;
        let meta = store::meta(hash);
        Ok(Some(WorkflowStatus {
            id: wid.clone(),
            description: meta.description,
            created_at: store::time_field(hash, "created_at").unwrap_or_default(),
            state: WorkflowState::parse(hash.get("state").map_or("", String::as_str)),
            succeeded_at: store::time_field(hash, "succeeded_at"),
            dead_at: store::time_field(hash, "dead_at"),
            queue: meta.queue,
            steps,
        }))
    }
}

/// One step's status: from the workflow's sets when it succeeded, died or waits, else from its
/// batch.
async fn step_status(
    client: &Client,
    wid: &WorkflowId,
    stored: &Stored,
    step: &StepDef,
) -> Result<StepStatus, Error> {
    let text = |field: &str| {
        step.job
            .get(field)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let bid = step::bid(wid, &step.name)?;
    let mut state = if stored.done.contains(&step.name) {
        StepState::Succeeded
    } else if stored.dead.contains(&step.name) {
        StepState::Dead
    } else if step.deps.iter().any(|dep| !stored.done.contains(dep)) {
        StepState::Waiting
    } else {
        StepState::Pending
    };
    // Why the step could not start at all (stopped by client middleware, refused as a
    // batch's job), when it could not.
    let mut last_error = stored.hash.get(&format!("error:{}", step.name)).cloned();
    let batch = if matches!(state, StepState::Pending | StepState::Dead) {
        Batch::status(client, &bid).await?
    } else {
        None
    };
    if let Some(batch) = batch {
        let last_failure = batch.failed.iter().max_by_key(|failure| failure.failed_at);
        if let Some(failure) = last_failure {
            last_error = Some(format!(
                "{}: {}",
                failure.error_class, failure.error_message
            ));
        }
        state = from_batch(
            state,
            last_failure.map(|failure| failure.dead),
            batch.success_at.is_some(),
        );
    }
    Ok(StepStatus {
        name: step.name.clone(),
        depends_on: step.deps.clone(),
        class: text("class"),
        jid: text("jid"),
        bid: bid.to_string(),
        state,
        last_error,
    })
}

/// A step's state as its sets say (`pending` or `dead`), refined by its batch: the dead flag of
/// its job's last failure, if it failed, and whether the batch succeeded.
fn from_batch(state: StepState, last_failure_dead: Option<bool>, succeeded: bool) -> StepState {
    match (state, last_failure_dead) {
        (StepState::Pending, Some(true)) => StepState::Dead,
        // A dead step retried by hand that failed again waits for its retry: its last failure
        // wins over the dead set, which keeps it until it succeeds.
        (StepState::Pending | StepState::Dead, Some(false)) => StepState::Retrying,
        // Succeeded; its advance job has not run yet.
        (StepState::Pending, None) if succeeded => StepState::Succeeded,
        _ => state,
    }
}

#[cfg(test)]
mod tests {
    use super::from_batch;
    use crate::workflow::StepState;

    #[test]
    fn a_dead_step_retried_by_hand_that_fails_again_shows_retrying() {
        assert_eq!(
            from_batch(StepState::Dead, Some(false), false),
            StepState::Retrying
        );
        assert_eq!(
            from_batch(StepState::Dead, Some(true), false),
            StepState::Dead
        );
        assert_eq!(from_batch(StepState::Dead, None, false), StepState::Dead);
        assert_eq!(
            from_batch(StepState::Pending, Some(false), false),
            StepState::Retrying
        );
        assert_eq!(
            from_batch(StepState::Pending, Some(true), false),
            StepState::Dead
        );
        assert_eq!(
            from_batch(StepState::Pending, None, true),
            StepState::Succeeded
        );
        assert_eq!(
            from_batch(StepState::Pending, None, false),
            StepState::Pending
        );
    }
}

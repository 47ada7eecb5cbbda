//! Workflows: named steps, each a job that runs once every step it depends on has succeeded
//! (a chain, a fan-in, a small DAG), built on batches.
//!
//! - [`Workflow`]: the builder; [`push`](Workflow::push) checks the steps and starts those
//!   that depend on nothing.
//! - [`Workflow::status`] and [`api::Workflows`](crate::api::Workflows): what the admin API
//!   and the dashboard show ([`WorkflowStatus`]).
//!
//! Each step runs as a one-job batch whose bid is derived from the workflow's id and the step's
//! name, so creating it twice creates it once. The batch's `success` and `death` callbacks are
//! the runtime's own job `Jobs::Workflow::Advance`, which records the event in the workflow
//! (`workflow_advance.lua`) and creates the batches of the steps it made ready. See
//! `docs/batches.md`, "Workflows".

mod advance;
mod builder;
mod graph;
mod id;
mod status;
mod step;
mod store;

pub use builder::{DEFAULT_RETENTION, Workflow};
pub use id::WorkflowId;
pub use status::{StepState, StepStatus, WorkflowState, WorkflowStatus};

use crate::batch::Batch;
use crate::client::Client;
use crate::error::Error;
use graph::StepDef;
use store::Stored;

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
    let mut last_error = None;
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
            if state == StepState::Pending {
                state = if failure.dead {
                    StepState::Dead
                } else {
                    StepState::Retrying
                };
            }
        } else if batch.success_at.is_some() && state == StepState::Pending {
            // Succeeded; its advance job has not run yet.
            state = StepState::Succeeded;
        }
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

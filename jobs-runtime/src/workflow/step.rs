//! A workflow step as a batch: one job, a bid derived from the workflow and the step, and the
//! advance job as its `success` and `death` callbacks.

use std::time::Duration;

use super::advance;
use super::graph::StepDef;
use super::id::{WorkflowId, step_bid_text};
use super::store::Event;
use crate::batch::{Batch, Bid};
use crate::client::Client;
use crate::error::Error;
use crate::payload::Payload;

/// The bid of `step`'s batch in `wid`.
pub(crate) fn bid(wid: &WorkflowId, step: &str) -> Result<Bid, Error> {
    step_bid_text(wid, step)
        .parse()
        .map_err(|error: crate::batch::InvalidBid| Error::Worker {
            reason: format!("a workflow step's bid is malformed: {error}"),
        })
}

/// `step`'s job, as stored in the workflow.
pub(crate) fn job(wid: &WorkflowId, step: &StepDef) -> Result<Payload, Error> {
    serde_json::from_value(step.job.clone()).map_err(|error| Error::Decode {
        class: format!("the step `{}` of the workflow {wid}", step.name),
        jid: crate::jid::Jid::from(""),
        reason: error.to_string(),
    })
}

/// Creates `step`'s batch, which pushes its job; nothing when it exists already (a second
/// advance, or one repeated after a crash).
pub(crate) async fn start(
    client: &Client,
    wid: &WorkflowId,
    description: &str,
    queue: &str,
    retention: Duration,
    step: &StepDef,
) -> Result<(), Error> {
    let job = job(wid, step)?;
    Batch::new()
        .client(client)
        .bid(bid(wid, &step.name)?)
        .description(format!("{description}: {}", step.name))
        .retention(retention)
        .workflow_step(wid.as_str(), step.name.as_str())
        .on_success_payload(advance::payload(queue, wid, &step.name, Event::Success))
        .on_death_payload(advance::payload(queue, wid, &step.name, Event::Death))
        .push_payload(job)
        .commit()
        .await?;
    Ok(())
}

//! A workflow step as a batch: one job, a bid derived from the workflow and the step, and the
//! advance job as its `success` and `death` callbacks.

use std::time::Duration;

use super::advance;
use super::graph::StepDef;
use super::id::{WorkflowId, step_bid_text};
use super::store::{self, Event};
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

/// Why `job` cannot be a step's job beyond a batch's own checks: it can expire unrun
/// (`expires_in`), which a batch counts as a success, so the step would succeed without running.
pub(crate) fn refusal(job: &Payload) -> Option<String> {
    (job.extra.contains_key(crate::expiry::EXPIRES_IN)
        || job.extra.contains_key(crate::expiry::EXPIRES_AT))
    .then(|| {
        "its job has `expires_in`: a batch counts a job that expired unrun as succeeded, so the \
         step would succeed without running; give it no expires_in"
            .to_owned()
    })
}

/// Creates `step`'s batch, which pushes its job; nothing when it exists already (a second
/// advance, or one repeated after a crash). The client middleware runs here, once, over the
/// step's job (so at an advance, the worker's client's middleware); when one stops the job, or
/// the job cannot be a batch's job, no batch is created and the step is recorded dead with the
/// reason: its dependents never run and the workflow is dead. The batch itself is created
/// through `client` without its middleware (it ran already), so its callbacks, the advance
/// jobs, do not pass through it.
pub(crate) async fn start(
    client: &Client,
    wid: &WorkflowId,
    description: &str,
    queue: &str,
    retention: Duration,
    step: &StepDef,
) -> Result<(), Error> {
    let mut job = job(wid, step)?;
    job.extra.insert(
        "bid".to_owned(),
        bid(wid, &step.name)?.as_str().to_owned().into(),
    );
    let reason = match client.run_middleware(&mut job).await {
        Ok(()) => match refusal(&job) {
            Some(reason) => reason,
            None => match create(client, wid, description, queue, retention, step, job).await {
                Ok(()) => return Ok(()),
                Err(
                    error @ (Error::InvalidJob { .. }
                    | Error::Encode { .. }
                    | Error::Decode { .. }
                    | Error::PayloadTooLarge { .. }),
                ) => format!("its job cannot be a batch's job: {error}"),
                Err(error) => return Err(error),
            },
        },
        Err(Error::Stopped { middleware, .. }) => {
            format!("the client middleware `{middleware}` stopped its job: it never ran")
        }
        Err(error) => return Err(error),
    };
    tracing::warn!(workflow = %wid, step = %step.name, %reason, "a workflow step cannot start: recorded dead");
    store::advance(client, wid, &step.name, Event::Death, Some(&reason)).await?;
    Ok(())
}

/// Creates `step`'s batch with `job`, through `client` without its middleware.
async fn create(
    client: &Client,
    wid: &WorkflowId,
    description: &str,
    queue: &str,
    retention: Duration,
    step: &StepDef,
    job: Payload,
) -> Result<(), Error> {
    Batch::new()
        .client(&client.without_middleware())
        .bid(bid(wid, &step.name)?)
        .description(format!("{description}: {}", step.name))
        // At least the default: a step's batch must outlive the wait for its job and its
        // runs, whatever the workflow's own retention.
        .retention(retention.max(super::DEFAULT_RETENTION))
        .workflow_step(wid.as_str(), step.name.as_str())
        .on_success_payload(advance::payload(queue, wid, &step.name, Event::Success))
        .on_death_payload(advance::payload(queue, wid, &step.name, Event::Death))
        .push_payload(job)
        .commit()
        .await?;
    Ok(())
}

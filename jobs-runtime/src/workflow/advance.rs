//! `Jobs::Workflow::Advance`: the job a step's batch pushes when it succeeds or its job dies.
//! It records the event in the workflow and starts the steps that event made ready. It is
//! registered here, so every Rust worker runs it whatever jobs its program defines.

use serde_json::Value;

use super::graph;
use super::id::WorkflowId;
use super::status::WorkflowState;
use super::step;
use super::store::{self, Event};
use crate::client::Client;
use crate::context::JobContext;
use crate::error::Error;
use crate::job::{ArgsDecoder, ArgsError, Job, JobFuture, codec};
use crate::job_error::JobError;
use crate::options::JobOptions;
use crate::payload::Payload;
use crate::registry::Registration;
use crate::state::JobState;

/// The wire name of the advance job.
pub(crate) const CLASS: &str = "Jobs::Workflow::Advance";

/// One advance: step `step` of workflow `wid` had `event` (`success` or `death`).
pub(crate) struct Advance {
    wid: String,
    step: String,
    event: String,
}

/// The advance job for `event` of `step` in `wid`, pushed to `queue`, as a step's batch stores
/// it for its callback.
pub(crate) fn payload(queue: &str, wid: &WorkflowId, step: &str, event: Event) -> Payload {
    Payload::new(
        CLASS,
        vec![wid.as_str().into(), step.into(), event.as_str().into()],
    )
    .queue(queue)
}

impl Job for Advance {
    const NAME: &'static str = CLASS;
    const OPTIONS: JobOptions = JobOptions::DEFAULT;

    fn encode_args(&self) -> Result<Vec<Value>, serde_json::Error> {
        Ok(vec![
            self.wid.clone().into(),
            self.step.clone().into(),
            self.event.clone().into(),
        ])
    }

    fn decode_args(args: Vec<Value>) -> Result<Self, ArgsError> {
        let mut args = ArgsDecoder::new(args, 3)?;
        Ok(Self {
            wid: args.next(codec::<String>(), "wid")?,
            step: args.next(codec::<String>(), "step")?,
            event: args.next(codec::<String>(), "event")?,
        })
    }

    fn perform(self, context: JobContext, _state: &JobState) -> JobFuture {
        // The client of the worker running it; the default one outside a worker.
        let client = context.worker_client().cloned();
        Box::pin(async move {
            let client = match client {
                Some(client) => client,
                None => Client::global().map_err(JobError::msg)?,
            };
            let Some(event) = Event::parse(&self.event) else {
                return Err(JobError::msg(format!(
                    "{CLASS}: `{}` is no workflow event (success or death)",
                    self.event
                ))
                .kill());
            };
            let wid = WorkflowId::parse(&self.wid).map_err(|error| JobError::msg(error).kill())?;
            run(&client, &wid, &self.step, event)
                .await
                .map_err(JobError::msg)
        })
    }
}

inventory::submit! {
    Registration::of::<Advance>(concat!(file!(), ":", line!()))
}

/// Records `event` of `step` and, for a success, starts each step it made ready. Safe to run
/// again: the record is idempotent and a step's batch is created once whoever creates it.
pub(crate) async fn run(
    client: &Client,
    wid: &WorkflowId,
    step: &str,
    event: Event,
) -> Result<(), Error> {
    let Some(advanced) = store::advance(client, wid, step, event, None).await? else {
        tracing::warn!(
            workflow = %wid,
            step,
            event = event.as_str(),
            "the workflow is gone (never created, or its retention ran out); nothing to advance"
        );
        return Ok(());
    };
    if event == Event::Death {
        tracing::warn!(workflow = %wid, step, "a workflow step died: the steps after it will not run");
        return Ok(());
    }
    if advanced.state == WorkflowState::Succeeded {
        tracing::info!(workflow = %wid, "every step of the workflow succeeded");
    }
    let meta = &advanced.meta;
    for next in graph::ready_after(&advanced.steps, step, &advanced.done) {
        step::start(
            client,
            wid,
            &meta.description,
            &meta.queue,
            meta.retention,
            next,
        )
        .await?;
    }
    Ok(())
}

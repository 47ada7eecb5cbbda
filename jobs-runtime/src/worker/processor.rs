//! Running one job: decode it, run it through the middleware with its time limit, catch a
//! panic, log the outcome as Sidekiq's job logger does, and settle it.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::Shared;
use super::fetch::Fetched;
use super::middleware::{DynServerMiddleware, Next};
use crate::context::JobContext;
use crate::job_error::JobError;
use crate::panic::{catch_panic, catch_panic_now};
use crate::payload::Payload;
use crate::registry::Registry;
use crate::state::JobState;

/// How a job run ended, for its task.
pub(crate) enum Processed {
    /// It succeeded: the caller queues its acknowledgement (batched, see `ack.rs`).
    Succeeded(Fetched),
    /// It failed or was not a job, and is already settled (retried, buried, dropped).
    Settled,
}

/// Runs a job taken from a queue and settles it, except for the acknowledgement of a success,
/// which it leaves to the caller. Never fails: every outcome, including JSON that is not a job,
/// ends with the job acknowledged, retried, buried or left for recovery.
pub(crate) async fn process(shared: &Shared, fetched: Fetched) -> Processed {
    let payload = match Payload::from_json(&fetched.json) {
        Ok(payload) => payload,
        Err(error) => {
            let reason = format!(
                "the entry taken from queue `{}` is not a job ({error}); it was moved to the \
                 dead set as it was",
                fetched.queue
            );
            tracing::error!(queue = %fetched.queue, %reason, "invalid job JSON");
            shared.counters.record(true);
            // Boxed, as the failure path below: rare paths stay out of every job's future.
            Box::pin(shared.bury_invalid(&fetched, &reason)).await;
            return Processed::Settled;
        }
    };
    let span = tracing::info_span!(
        "job",
        jid = %payload.jid,
        class = %payload.class,
        queue = %fetched.queue,
    );
    run_and_settle(shared, fetched, payload)
        .instrument(span)
        .await
}

async fn run_and_settle(shared: &Shared, fetched: Fetched, payload: Payload) -> Processed {
    tracing::info!("start");
    let started = Instant::now();
    let result = execute(shared, &payload).await;
    let elapsed = started.elapsed().as_secs_f64();
    shared.counters.record(result.is_err());
    match result {
        Ok(()) => {
            tracing::info!(elapsed = format_args!("{elapsed:.3}"), "done");
            Processed::Succeeded(fetched)
        }
        Err(error) => {
            tracing::warn!(
                elapsed = format_args!("{elapsed:.3}"),
                error_class = error.class(),
                error = %error,
                "fail"
            );
            shared.hooks.failed(&error, &payload);
            Box::pin(shared.fail(&fetched, payload, error)).await;
            Processed::Settled
        }
    }
}

/// Finds the job type, decodes the arguments and runs the job through the middleware, with
/// its timeout; a panic anywhere in there is a failure of class `Panic`.
async fn execute(shared: &Shared, payload: &Payload) -> Result<(), JobError> {
    execute_with(&shared.registry, &shared.state, &shared.middleware, payload).await
}

/// [`execute`] with its parts given one by one, so that `jobs::testing` runs jobs exactly as
/// a worker does.
pub(crate) async fn execute_with(
    registry: &Registry,
    state: &JobState,
    middleware: &[Arc<dyn DynServerMiddleware>],
    payload: &Payload,
) -> Result<(), JobError> {
    let Some(registration) = registry.get(&payload.class) else {
        return Err(unknown_job(registry, &payload.class));
    };
    let context = JobContext::from_payload(payload);
    // Decoding runs user `Deserialize` code, which may panic too.
    let decoded = catch_panic_now(|| registration.run(payload.args.clone(), context, state))?;
    let job = decoded.map_err(|error| {
        JobError::msg(format!(
            "cannot decode the arguments of {} (jid {}): {error}",
            payload.class, payload.jid
        ))
        .with_class("jobs::ArgumentError")
    })?;
    let guarded = catch_panic(Next::new(middleware, payload, job).run());
    match registration.options().timeout {
        None => guarded.await,
        Some(limit) => tokio::time::timeout(limit, guarded)
            .await
            .unwrap_or_else(|_| {
                Err(JobError::msg(format!(
                    "{} ran longer than its timeout of {limit:?} and was cancelled",
                    payload.class
                ))
                .with_class("jobs::Timeout"))
            }),
    }
}

fn unknown_job(registry: &Registry, class: &str) -> JobError {
    let known: Vec<&str> = registry.iter().map(|job| job.name()).collect();
    JobError::msg(format!(
        "no job named `{class}` is registered in this worker (it runs: {}); define it with \
         #[job] in the worker's binary (or set #[job(name = \"{class}\")] on the matching job), \
         or keep this queue for the processes that define it",
        if known.is_empty() {
            "nothing".to_owned()
        } else {
            known.join(", ")
        }
    ))
    .with_class("jobs::UnknownJob")
}

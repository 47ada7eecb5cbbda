//! Running one job's code exactly as a worker does: find its type, decode its arguments, run
//! it through the server middleware with its time limit, and catch a panic anywhere in there.
//! `processor.rs` calls it for every job it takes; `jobs::testing` calls it for the jobs a test
//! performs, so a test runs a job the way production does.

use std::sync::Arc;

use super::middleware::{DynServerMiddleware, Next};
use crate::active_job;
use crate::context::JobContext;
use crate::error_class;
use crate::job::ArgsError;
use crate::job_error::JobError;
use crate::panic::{catch_panic, catch_panic_now};
use crate::payload::Payload;
use crate::registry::Registry;
use crate::state::JobState;

/// Finds the job type of `payload` in `registry`, decodes its arguments and runs it through
/// `middleware`, with its timeout; a panic anywhere in there is a failure of class `Panic`.
/// `client` is the worker's, which the job's context pushes through (its batch's jobs).
pub(crate) async fn execute(
    registry: &Registry,
    state: &JobState,
    middleware: &[Arc<dyn DynServerMiddleware>],
    payload: &Payload,
    client: Option<&crate::client::Client>,
) -> Result<(), JobError> {
    // An ActiveJob job runs the job it wraps, with the arguments of its envelope.
    let name = active_job::job_name(payload);
    let Some(registration) = registry.get(name) else {
        return Err(unknown_job(registry, name));
    };
    let argument_error = |error: ArgsError| {
        JobError::msg(format!(
            "cannot decode the arguments of {name} (jid {}): {error}{}",
            payload.jid,
            active_job::argument_hint(payload)
        ))
        .with_class(error_class::ARGUMENT_ERROR)
    };
    let args = active_job::job_args(payload).map_err(argument_error)?;
    // Built only for a job that reads it: three strings copied, and more, for each job.
    let context = if registration.reads_context() {
        let context = JobContext::from_payload(payload);
        match client {
            Some(client) => context.with_client(client.clone()),
            None => context,
        }
    } else {
        JobContext::unread()
    };
    // Decoding runs user `Deserialize` code, which may panic too.
    let decoded = catch_panic_now(|| registration.run(args, context, state))?;
    let job = decoded.map_err(argument_error)?;
    let guarded = catch_panic(Next::new(middleware, payload, job).run());
    match registration.options().timeout {
        None => guarded.await,
        Some(limit) => tokio::time::timeout(limit, guarded)
            .await
            .unwrap_or_else(|_| {
                Err(JobError::msg(format!(
                    "{name} ran longer than its timeout of {limit:?} and was cancelled"
                ))
                .with_class(error_class::TIMEOUT))
            }),
    }
}

/// The failure of a job whose class this worker does not run, naming the ones it does.
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
    .with_class(error_class::UNKNOWN_JOB)
}

//! Server middleware: code around every job a worker runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::job::JobFuture;
use crate::job_error::JobError;
use crate::payload::Payload;

/// The rest of the chain: the middleware after this one, then the job.
pub struct Next<'a> {
    rest: &'a [Arc<dyn DynServerMiddleware>],
    job: &'a Payload,
    run: JobFuture,
}

impl<'a> Next<'a> {
    pub(crate) fn new(
        chain: &'a [Arc<dyn DynServerMiddleware>],
        job: &'a Payload,
        run: JobFuture,
    ) -> Self {
        Self {
            rest: chain,
            job,
            run,
        }
    }

    /// Runs the rest of the chain and the job; returns the job's result.
    pub fn run(self) -> Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>> {
        Box::pin(async move {
            match self.rest.split_first() {
                Some((first, rest)) => {
                    let next = Next {
                        rest,
                        job: self.job,
                        run: self.run,
                    };
                    first.call(self.job, next).await
                }
                None => self.run.await,
            }
        })
    }
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &self.rest.len())
            .field("jid", &self.job.jid)
            .finish()
    }
}

/// Runs around every job, in the order added, like Sidekiq's server middleware: it sees the
/// job, may time it or observe its error, and may skip it by not calling `next.run()`.
///
/// ```
/// use jobs_runtime::{JobError, Payload};
/// use jobs_runtime::worker::{Next, ServerMiddleware};
///
/// /// Logs how long each job took.
/// struct Timing;
///
/// impl ServerMiddleware for Timing {
///     async fn call(&self, job: &Payload, next: Next<'_>) -> Result<(), JobError> {
///         let started = std::time::Instant::now();
///         let result = next.run().await;
///         tracing::info!(class = %job.class, elapsed = ?started.elapsed(), "timed");
///         result
///     }
/// }
/// ```
pub trait ServerMiddleware: Send + Sync + 'static {
    /// Wraps one job: call `next.run().await` to run it.
    fn call<'a>(
        &'a self,
        job: &'a Payload,
        next: Next<'a>,
    ) -> impl Future<Output = Result<(), JobError>> + Send + 'a;
}

/// An object-safe view of [`ServerMiddleware`], so a chain can hold different types.
pub(crate) trait DynServerMiddleware: Send + Sync {
    fn call<'a>(
        &'a self,
        job: &'a Payload,
        next: Next<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;
}

impl<M: ServerMiddleware> DynServerMiddleware for M {
    fn call<'a>(
        &'a self,
        job: &'a Payload,
        next: Next<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>> {
        Box::pin(ServerMiddleware::call(self, job, next))
    }
}

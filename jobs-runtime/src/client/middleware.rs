//! Client middleware: code that sees, changes or stops every job before it is pushed.

use std::future::Future;
use std::pin::Pin;

use crate::job_error::BoxError;
use crate::payload::Payload;

/// What a client middleware decides about a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Push the job (as the middleware may have changed it).
    Continue,
    /// Do not push the job; the caller gets [`Error::Stopped`](crate::Error::Stopped).
    Stop,
}

/// Runs before every push of a client, in the order added, like Sidekiq's client middleware.
///
/// ```
/// use jobs_runtime::{BoxError, ClientMiddleware, Flow, Payload};
///
/// /// Tags every job with the app's name.
/// struct TagWithApp;
///
/// impl ClientMiddleware for TagWithApp {
///     async fn call(&self, job: &mut Payload) -> Result<Flow, BoxError> {
///         job.tags.get_or_insert_with(Vec::new).push("todos".into());
///         Ok(Flow::Continue)
///     }
/// }
/// ```
pub trait ClientMiddleware: Send + Sync + 'static {
    /// Sees, and may change, `job` before it is pushed; decides whether it is pushed at all.
    fn call(&self, job: &mut Payload) -> impl Future<Output = Result<Flow, BoxError>> + Send;
}

/// An object-safe view of [`ClientMiddleware`], so a chain can hold different types.
pub(crate) trait DynClientMiddleware: Send + Sync {
    fn call<'a>(
        &'a self,
        job: &'a mut Payload,
    ) -> Pin<Box<dyn Future<Output = Result<Flow, BoxError>> + Send + 'a>>;

    fn name(&self) -> &'static str;
}

impl<M: ClientMiddleware> DynClientMiddleware for M {
    fn call<'a>(
        &'a self,
        job: &'a mut Payload,
    ) -> Pin<Box<dyn Future<Output = Result<Flow, BoxError>> + Send + 'a>> {
        Box::pin(ClientMiddleware::call(self, job))
    }

    fn name(&self) -> &'static str {
        std::any::type_name::<M>()
    }
}

//! Turning a panic inside a job into a failure.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error_class;
use crate::job_error::JobError;

/// Runs `job`; a panic becomes a [`JobError`] of class [`error_class::PANIC`] carrying the panic
/// message.
pub(crate) async fn catch_panic<F>(job: Pin<Box<F>>) -> Result<(), JobError>
where
    F: Future<Output = Result<(), JobError>> + ?Sized,
{
    CatchPanic(job).await
}

struct CatchPanic<F: ?Sized>(Pin<Box<F>>);

impl<F> Future for CatchPanic<F>
where
    F: Future<Output = Result<(), JobError>> + ?Sized,
{
    type Output = Result<(), JobError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A job that panicked is dropped right after, never polled again, so no broken
        // invariant inside it can be observed.
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(Err(panic_error(panic.as_ref()))),
        }
    }
}

/// Runs `work`; a panic becomes a [`JobError`] of class [`error_class::PANIC`].
pub(crate) fn catch_panic_now<R>(work: impl FnOnce() -> R) -> Result<R, JobError> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|panic| panic_error(panic.as_ref()))
}

fn panic_error(panic: &(dyn Any + Send)) -> JobError {
    let message = if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "the job panicked with a value that is not a string".to_owned()
    };
    JobError::msg(message).with_class(error_class::PANIC)
}

#[cfg(test)]
mod tests {
    use super::catch_panic_now;
    use crate::error_class;

    #[test]
    fn a_panic_is_a_failure_of_the_panic_class_with_its_message() {
        let error = catch_panic_now::<()>(|| panic!("score table is locked")).unwrap_err();
        assert_eq!(error.class(), error_class::PANIC);
        assert_eq!(error.to_string(), "score table is locked");
    }
}

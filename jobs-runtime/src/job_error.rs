//! What a job returns when it fails.

use std::borrow::Cow;
use std::fmt;

use crate::error_class;

/// A boxed error from user code: what a [`JobError`] holds, and what a client middleware
/// returns (kept in [`Error::Middleware`](crate::Error::Middleware)).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error a job returns when it fails; the worker records it and retries the job.
///
/// Any error converts into it with `?`: an [`std::io::Error`], a `thiserror` type, an
/// `anyhow::Error`, a `String` or a `&str`. The worker stores its message as Sidekiq's
/// `error_message` and the Rust type it came from as `error_class`.
///
/// It holds a `Box<dyn Error>` rather than being one so that the blanket `From` above can exist
/// (the same trade `anyhow::Error` makes); [`JobError::into_inner`] gives the box back.
pub struct JobError {
    inner: BoxError,
    class: Cow<'static, str>,
    retry: Option<RetryOverride>,
}

/// What a failing job asks the worker to do instead of its usual retry schedule: Sidekiq's
/// `sidekiq_retry_in` answers, given per failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOverride {
    /// Retry after this delay (plus Sidekiq's jitter) instead of the backoff formula.
    In(std::time::Duration),
    /// Send the job to the dead set now, whatever retries it has left.
    Kill,
    /// Drop the job now: no more retries, not kept in the dead set.
    Discard,
}

impl JobError {
    /// A failure with a message and no underlying error.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            inner: message.to_string().into(),
            class: Cow::Borrowed(error_class::JOB_ERROR),
            retry: None,
        }
    }

    /// Retries this failure after `delay` (plus jitter) rather than on the backoff schedule.
    pub fn retry_in(mut self, delay: std::time::Duration) -> Self {
        self.retry = Some(RetryOverride::In(delay));
        self
    }

    /// Sends the job to the dead set at once, with no more retries.
    pub fn kill(mut self) -> Self {
        self.retry = Some(RetryOverride::Kill);
        self
    }

    /// Drops the job at once: no more retries, and not kept in the dead set.
    pub fn discard(mut self) -> Self {
        self.retry = Some(RetryOverride::Discard);
        self
    }

    /// What the job asked for instead of the usual retry schedule, if anything.
    pub fn retry_override(&self) -> Option<RetryOverride> {
        self.retry
    }

    /// A failure whose `error_class` is `class` rather than the Rust type of its cause.
    pub fn with_class(mut self, class: impl Into<Cow<'static, str>>) -> Self {
        self.class = class.into();
        self
    }

    /// The name stored as `error_class`: the Rust type of the error it was made from.
    pub fn class(&self) -> &str {
        &self.class
    }

    /// The underlying error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }

    /// The underlying error, boxed.
    pub fn into_inner(self) -> BoxError {
        self.inner
    }

    /// `true` when it was made from a limiter's [`Error::OverLimit`](crate::Error::OverLimit)
    /// (found along the chain of causes too): the worker reschedules such a job rather than
    /// failing it.
    pub fn is_over_limit(&self) -> bool {
        crate::limit::over_limit_of(self).is_some()
    }
}

impl<E> From<E> for JobError
where
    E: Into<BoxError>,
{
    fn from(error: E) -> Self {
        let class = short_type_name(std::any::type_name::<E>());
        Self {
            inner: error.into(),
            class: Cow::Borrowed(class),
            retry: None,
        }
    }
}

/// `std::io::error::Error` stays as it is, but plain strings read better as `JobError`.
fn short_type_name(name: &'static str) -> &'static str {
    match name {
        "alloc::string::String" | "&str" | "alloc::borrow::Cow<str>" => error_class::JOB_ERROR,
        other => other,
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("class", &self.class)
            .field("inner", &self.inner)
            .field("retry", &self.retry)
            .finish()
    }
}

/// What a job function may return: `()` or `Result<(), E>` where `E` converts into
/// [`JobError`].
#[diagnostic::on_unimplemented(
    message = "a job must return `()` or `Result<(), E>`, not `{Self}`",
    label = "this return type",
    note = "`E` may be any error type: `jobs::JobError`, `std::io::Error`, `anyhow::Error`, a `thiserror` enum, or `String`"
)]
pub trait IntoJobResult {
    /// The outcome as the worker sees it.
    fn into_job_result(self) -> Result<(), JobError>;
}

impl IntoJobResult for () {
    fn into_job_result(self) -> Result<(), JobError> {
        Ok(())
    }
}

impl<E> IntoJobResult for Result<(), E>
where
    E: Into<JobError>,
{
    fn into_job_result(self) -> Result<(), JobError> {
        self.map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::{IntoJobResult, JobError};
    use crate::error_class;

    #[derive(Debug, thiserror::Error)]
    #[error("score table is locked")]
    struct Locked;

    #[test]
    fn records_the_rust_type_of_the_cause() {
        let error = JobError::from(Locked);
        assert!(error.class().ends_with("Locked"), "{}", error.class());
        assert_eq!(error.to_string(), "score table is locked");

        let io = JobError::from(std::io::Error::other("disk full"));
        assert_eq!(io.class(), "std::io::error::Error");
    }

    #[test]
    fn strings_and_messages_are_plain_job_errors() {
        assert_eq!(JobError::from("nope").class(), error_class::JOB_ERROR);
        assert_eq!(
            JobError::from(String::from("nope")).class(),
            error_class::JOB_ERROR
        );
        assert_eq!(JobError::msg("nope").class(), error_class::JOB_ERROR);
        assert_eq!(JobError::msg("nope").to_string(), "nope");
    }

    #[test]
    fn unit_and_results_convert() {
        assert!(().into_job_result().is_ok());
        let failed: Result<(), std::io::Error> = Err(std::io::Error::other("x"));
        assert_eq!(failed.into_job_result().unwrap_err().to_string(), "x");
        let same: Result<(), JobError> = Err(JobError::msg("y"));
        assert_eq!(same.into_job_result().unwrap_err().to_string(), "y");
    }
}

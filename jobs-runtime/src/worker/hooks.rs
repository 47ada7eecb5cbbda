//! Lifecycle hooks and error, death and retries-exhausted handlers, as Sidekiq has them.

use std::sync::Arc;

use crate::job_error::JobError;
use crate::panic::catch_panic_now;
use crate::payload::Payload;

/// A moment in a worker's life that hooks can run at (`config.on(:startup)` in Sidekiq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Lifecycle {
    /// Once, when the worker has connected and is about to take jobs.
    Startup,
    /// Once, when the worker stops taking jobs (the start of shutdown).
    Quiet,
    /// Once, before the worker waits for running jobs to finish.
    Shutdown,
    /// Every few seconds, when counters are flushed.
    Beat,
}

/// What happens to a job whose retries ran out, as a retries-exhausted handler decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// Keep it in the dead set (unless it says `dead: false`).
    Bury,
    /// Drop it.
    Discard,
}

type Hook = Arc<dyn Fn() + Send + Sync>;
type ErrorHandler = Arc<dyn Fn(&JobError, &Payload) + Send + Sync>;
type DeathHandler = Arc<dyn Fn(&Payload, &JobError) + Send + Sync>;
type ExhaustedHandler = Arc<dyn Fn(&Payload, &JobError) -> Exhausted + Send + Sync>;

/// Every hook and handler of one worker.
#[derive(Default, Clone)]
pub(crate) struct Hooks {
    lifecycle: Vec<(Lifecycle, Hook)>,
    errors: Vec<ErrorHandler>,
    deaths: Vec<DeathHandler>,
    exhausted: Vec<ExhaustedHandler>,
}

impl Hooks {
    pub(crate) fn on(&mut self, moment: Lifecycle, hook: impl Fn() + Send + Sync + 'static) {
        self.lifecycle.push((moment, Arc::new(hook)));
    }

    pub(crate) fn on_error(
        &mut self,
        handler: impl Fn(&JobError, &Payload) + Send + Sync + 'static,
    ) {
        self.errors.push(Arc::new(handler));
    }

    pub(crate) fn on_death(
        &mut self,
        handler: impl Fn(&Payload, &JobError) + Send + Sync + 'static,
    ) {
        self.deaths.push(Arc::new(handler));
    }

    pub(crate) fn on_exhausted(
        &mut self,
        handler: impl Fn(&Payload, &JobError) -> Exhausted + Send + Sync + 'static,
    ) {
        self.exhausted.push(Arc::new(handler));
    }

    /// Runs the hooks for `moment`, in the order added. A hook that panics is logged; the
    /// others still run, and so does the worker.
    pub(crate) fn fire(&self, moment: Lifecycle) {
        for (when, hook) in &self.lifecycle {
            if *when == moment {
                contain("lifecycle hook", || hook());
            }
        }
    }

    /// Tells every error handler about a failure.
    pub(crate) fn failed(&self, error: &JobError, job: &Payload) {
        for handler in &self.errors {
            contain("error handler", || handler(error, job));
        }
    }

    /// Tells every death handler that a job is gone for good (dead or dropped).
    pub(crate) fn died(&self, job: &Payload, error: &JobError) {
        for handler in &self.deaths {
            contain("death handler", || handler(job, error));
        }
    }

    /// Asks the retries-exhausted handlers; any `Discard` wins (a handler that panics counts as
    /// `Bury`).
    pub(crate) fn exhausted(&self, job: &Payload, error: &JobError) -> Exhausted {
        let mut outcome = Exhausted::Bury;
        for handler in &self.exhausted {
            if contain("retries-exhausted handler", || handler(job, error))
                == Some(Exhausted::Discard)
            {
                outcome = Exhausted::Discard;
            }
        }
        outcome
    }
}

/// Runs user code, logging a panic instead of letting it take the worker down.
fn contain<R>(what: &str, work: impl FnOnce() -> R) -> Option<R> {
    match catch_panic_now(work) {
        Ok(result) => Some(result),
        Err(panic) => {
            tracing::error!(error = %panic, "a {what} panicked");
            None
        }
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("lifecycle", &self.lifecycle.len())
            .field("errors", &self.errors.len())
            .field("deaths", &self.deaths.len())
            .field("exhausted", &self.exhausted.len())
            .finish()
    }
}

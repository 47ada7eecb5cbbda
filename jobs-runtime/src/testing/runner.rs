//! Running a recorded or inline job as a worker would: registry, state, middleware, timeout.

use std::sync::{Arc, PoisonError, RwLock};

use super::locks::Locks;
use crate::error::Error;
use crate::limit::MemoryLimits;
use crate::payload::Payload;
use crate::registry::Registry;
use crate::state::JobState;
use crate::worker::execute::execute;
use crate::worker::middleware::DynServerMiddleware;

/// What a test gives the jobs it runs: `#[state]` values and server middleware.
#[derive(Clone, Default)]
pub(crate) struct Runner {
    pub(crate) state: JobState,
    pub(crate) middleware: Vec<Arc<dyn DynServerMiddleware>>,
}

impl Runner {
    /// Runs `payload`'s job through the worker's own path: look the class up among the jobs
    /// linked into the binary, decode the arguments, run the middleware and the job (with its
    /// timeout), catch a panic. A failure is [`Error::Failed`].
    pub(crate) async fn run(&self, payload: &Payload) -> Result<(), Error> {
        let registry = Registry::from_inventory()?;
        execute(&registry, &self.state, &self.middleware, payload, None)
            .await
            .map_err(|error| Error::Failed {
                class: payload.class.clone(),
                jid: payload.jid.clone(),
                error,
            })
    }
}

/// A mode's runner, changeable while the mode is on, and its unique locks.
#[derive(Default)]
pub(crate) struct Settings {
    runner: RwLock<Runner>,
    locks: Locks,
    /// The limiters the mode's code calls, in memory.
    limits: Arc<MemoryLimits>,
}

impl Settings {
    /// The unique locks the mode's pushes take.
    pub(crate) fn locks(&self) -> &Locks {
        &self.locks
    }

    /// The limiters the mode's code calls.
    pub(crate) fn limits(&self) -> &Arc<MemoryLimits> {
        &self.limits
    }

    /// A copy of the runner, to run jobs with no lock held.
    pub(crate) fn runner(&self) -> Runner {
        self.runner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes the runner.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Runner)) {
        change(&mut self.runner.write().unwrap_or_else(PoisonError::into_inner));
    }
}

//! Inline mode: a push runs its job at once, in the test's task.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::Active;
use super::runner::Settings;
use super::scope::{self, ThreadGuard};
use crate::worker::ServerMiddleware;

/// Inline mode, on until this is dropped: every push on this thread (and inside
/// [`scope`](Inline::scope)) runs its job before returning, after the JSON round trip, as a
/// worker would run it; nothing is written to Redis. Made by
/// [`testing::inline`](super::inline()).
///
/// A job that fails makes the push fail with [`Error::Failed`](crate::Error::Failed). Scheduled
/// pushes (`perform_in`, `perform_at`) run at once too, as in Sidekiq's inline mode.
#[must_use = "inline mode ends when this is dropped"]
pub struct Inline {
    settings: Arc<Settings>,
    _guard: ThreadGuard,
}

impl Inline {
    /// Turns inline mode on for this thread.
    pub(super) fn install() -> Self {
        let settings = Arc::new(Settings::default());
        Self {
            _guard: ThreadGuard::install(Active::Inline(Arc::clone(&settings))),
            settings,
        }
    }

    /// Gives the jobs run inline a `#[state]` value, as `Worker::state` does.
    pub fn state<T: Clone + Send + Sync + 'static>(self, value: T) -> Self {
        self.settings.update(|runner| runner.state.insert(value));
        self
    }

    /// Runs the jobs through a server middleware, as `Worker::middleware` does.
    pub fn middleware(self, middleware: impl ServerMiddleware) -> Self {
        self.settings
            .update(|runner| runner.middleware.push(Arc::new(middleware)));
        self
    }

    /// Makes every call of the limiter `name` over its limit, as
    /// [`Fake::force_over_limit`](super::Fake::force_over_limit) does.
    pub fn force_over_limit(&self, name: &str) -> &Self {
        self.settings.limits().force(name);
        self
    }

    /// Ends [`force_over_limit`](Inline::force_over_limit) for `name`.
    pub fn lift_over_limit(&self, name: &str) -> &Self {
        self.settings.limits().lift(name);
        self
    }

    /// Keeps inline mode on for `future` wherever it runs, as [`Fake::scope`](super::Fake::scope)
    /// does.
    pub fn scope<F: Future>(&self, future: F) -> impl Future<Output = F::Output> + use<F> {
        scope::scope(Active::Inline(Arc::clone(&self.settings)), future)
    }
}

impl fmt::Debug for Inline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inline").finish_non_exhaustive()
    }
}

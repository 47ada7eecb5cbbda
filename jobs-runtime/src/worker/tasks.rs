//! The one shape of a background loop, and the one way to wait inside one.
//!
//! Every loop of the worker is a struct with `async fn run(self, shutdown: CancellationToken)`
//! (the fetcher's returns what shutdown must still wait on), given the token of the phase that
//! ends it ([`Control`](super::control::Control)), and a method that runs one round, for tests
//! and for the launcher. The launcher holds each as a [`Running`], which stops it in the order
//! shutdown needs, and on an early return stops it by being dropped.
//!
//! | loop | file | one round | ends at |
//! |---|---|---|---|
//! | fetcher | `fetch/mod.rs` | `Worker::drain` | quiet |
//! | scheduler | `scheduler.rs` | `Scheduler::poll` | quiet |
//! | periodic | `periodic/mod.rs` | `PeriodicLoop::pass` | quiet |
//! | outbox relay (feature `postgres`) | `../outbox/relay.rs` | `Relay::run_once` | quiet |
//! | crash recovery | `recovery.rs` | `Recovery::sweep` | stop |
//! | dashboard | `dashboard.rs` | — (an axum server) | stop |
//! | health endpoint | `health.rs` | `Probes::live`, `Probes::ready` | exit |
//! | acker | `ack.rs` | `Acker::flush` | after the wait for running jobs |
//! | heartbeat | `heartbeat.rs` | `Heartbeat::beat` | after the hand-back, before the heartbeat is cleared |
//! | liveness (a thread of its own) | `liveness.rs` | `Liveness::renew` | with the heartbeat |
//! | systemd watchdog | `systemd.rs` | `Watchdog::ping` | after the heartbeat is cleared |
//! | signal listener | `control.rs` | — | last |

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Sleeps for `duration` unless `shutdown` comes first; `true` when it did.
pub(crate) async fn sleep_or(shutdown: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}

/// A loop running on a task of its own, with a token of its own: a child of its phase's, so
/// the phase ends it, [`stop`](Self::stop) ends it alone, and dropping the handle (an early
/// return of the launcher) ends it too.
#[derive(Debug)]
pub(crate) struct Running<T> {
    /// Cancels the loop's token when dropped.
    shutdown: DropGuard,
    /// The loop's task.
    task: JoinHandle<T>,
}

impl<T: Send + 'static> Running<T> {
    /// Spawns `run` with a child token of `phase`.
    pub(crate) fn spawn<F>(
        phase: &CancellationToken,
        run: impl FnOnce(CancellationToken) -> F,
    ) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        let shutdown = phase.child_token();
        let task = tokio::spawn(run(shutdown.clone()));
        Self {
            shutdown: shutdown.drop_guard(),
            task,
        }
    }

    /// Ends the loop and waits for it; `None` when its task panicked.
    pub(crate) async fn stop(self) -> Option<T> {
        self.shutdown.disarm().cancel();
        self.task.await.ok()
    }

    /// Waits for the loop to end by its phase.
    pub(crate) async fn join(self) -> Result<T, tokio::task::JoinError> {
        let Self { shutdown, task } = self;
        let result = task.await;
        drop(shutdown);
        result
    }

    /// The loop's task, to wait on in a `select!` (with [`join`](Self::join)'s result).
    pub(crate) fn task(&mut self) -> &mut JoinHandle<T> {
        &mut self.task
    }
}

impl Running<()> {
    /// Spawns `run` with a child token of `phase` on a thread of its own, named `name`, with a
    /// runtime of its own: for a loop that must go on while jobs keep the worker's runtime
    /// busy or block its threads.
    pub(crate) fn spawn_thread<F>(
        phase: &CancellationToken,
        name: &str,
        run: impl FnOnce(CancellationToken) -> F + Send + 'static,
    ) -> Self
    where
        F: Future<Output = ()> + 'static,
    {
        let shutdown = phase.child_token();
        let token = shutdown.clone();
        let (done, finished) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        runtime.block_on(run(token));
                        let _ = done.send(());
                    }
                    Err(error) => tracing::error!(%error, "cannot start a runtime for a loop"),
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a thread for a loop");
        }
        // The task ends when the thread does, or at once when it could not start.
        let task = tokio::spawn(async move {
            let _ = finished.await;
        });
        Self {
            shutdown: shutdown.drop_guard(),
            task,
        }
    }
}

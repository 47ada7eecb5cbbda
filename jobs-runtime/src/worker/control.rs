//! How a worker is told to quiet down or stop: by OS signals, by its dashboard's signals list,
//! or by the code that runs it. [`Control`] is the one place the phase signals come from; every
//! background loop is handed a token of the phase that ends it (`tasks.rs`).

use tokio_util::sync::CancellationToken;

/// The phases of a worker's shutdown, in order; each implies the ones before it.
///
/// | phase | set by | what ends there |
/// |---|---|---|
/// | quiet | TSTP, a dashboard's Quiet, the start of any stop | the fetcher, the scheduler |
/// | stop | TERM, INT, the caller's stop future, a dashboard's Stop | the steady loop, crash recovery, the dashboard |
/// | now | a second INT | the wait for running jobs |
/// | exit | the end of shutdown | the acker, the heartbeat, the liveness thread, the watchdog, the signal listener (each stopped in order before) |
#[derive(Debug, Clone, Default)]
pub(crate) struct Control {
    /// Take no more jobs (TSTP); running jobs finish, the heartbeat goes on, `quiet: "true"`.
    quiet: CancellationToken,
    /// Shut down (TERM, INT): quiet, wait up to the timeout, hand back the rest, exit.
    stop: CancellationToken,
    /// Shut down without waiting (a second INT): hand running jobs back at once.
    now: CancellationToken,
    /// Shutdown is over: the loops that ran through it have nothing left to do.
    exit: CancellationToken,
}

impl Control {
    /// Enters the quiet phase.
    pub(crate) fn quiet(&self) {
        self.quiet.cancel();
    }

    /// Enters the stop phase (and quiet).
    pub(crate) fn stop(&self) {
        self.quiet.cancel();
        self.stop.cancel();
    }

    /// Enters the stop phase without waiting for running jobs.
    pub(crate) fn stop_now(&self) {
        self.stop();
        self.now.cancel();
    }

    /// Ends every phase: the worker has stopped.
    pub(crate) fn exit(&self) {
        self.stop_now();
        self.exit.cancel();
    }

    /// Whether the worker takes no more jobs.
    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet.is_cancelled()
    }

    /// Whether the worker is shutting down.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// The token of the quiet phase, for loops that stop taking work then.
    pub(crate) fn quiet_phase(&self) -> &CancellationToken {
        &self.quiet
    }

    /// The token of the stop phase, for loops that end when shutdown begins.
    pub(crate) fn stop_phase(&self) -> &CancellationToken {
        &self.stop
    }

    /// The token of the exit phase, for loops that run through shutdown.
    pub(crate) fn exit_phase(&self) -> &CancellationToken {
        &self.exit
    }

    /// Resolves at quiet.
    pub(crate) async fn quieted(&self) {
        self.quiet.cancelled().await;
    }

    /// Resolves at stop.
    pub(crate) async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    /// Resolves at a stop that does not wait.
    pub(crate) async fn stopped_now(&self) {
        self.now.cancelled().await;
    }

    /// Obeys a signal by name, as Sidekiq's heartbeat obeys `<identity>-signals`; `false` for a
    /// name it does not know (`TTIN` is handled by the caller, which can list the jobs).
    pub(crate) fn obey(&self, signal: &str) -> bool {
        match signal {
            "TSTP" => self.quiet(),
            "TERM" => self.stop(),
            "INT" if self.is_stopping() => self.stop_now(),
            "INT" => self.stop(),
            _ => return false,
        }
        true
    }
}

/// The loop that listens for SIGINT, SIGTERM, SIGTSTP and SIGTTIN: TSTP quiets, TERM and INT
/// stop, a second INT stops at once, TTIN runs `dump`.
pub(crate) struct Signals<D> {
    /// Where the signals go.
    control: Control,
    /// What TTIN runs: it logs the running jobs.
    dump: D,
}

impl<D: Fn() + Send + 'static> Signals<D> {
    /// A listener that obeys signals through `control`.
    pub(crate) fn new(control: Control, dump: D) -> Self {
        Self { control, dump }
    }

    /// Listens until `shutdown`, which comes last of all: a second INT must reach the worker
    /// while it waits for its jobs. Cancellation-safe.
    #[cfg(unix)]
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        use tokio::signal::unix::{SignalKind, signal};
        let control = self.control;
        let (Ok(mut int), Ok(mut term), Ok(mut tstp), Ok(mut ttin)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::from_raw(libc::SIGTSTP)),
            signal(SignalKind::from_raw(libc::SIGTTIN)),
        ) else {
            tracing::warn!("cannot listen for signals; stop the worker another way");
            return;
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = int.recv() => {
                    if control.is_stopping() {
                        tracing::warn!("second interrupt: handing running jobs back now");
                    }
                    control.obey("INT");
                }
                _ = term.recv() => { control.obey("TERM"); }
                _ = tstp.recv() => {
                    tracing::info!("TSTP: quiet, taking no more jobs");
                    control.obey("TSTP");
                }
                _ = ttin.recv() => (self.dump)(),
            }
        }
    }

    /// Without Unix signals, Ctrl-C stops (twice: at once).
    #[cfg(not(unix))]
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                interrupted = tokio::signal::ctrl_c() => {
                    if interrupted.is_err() {
                        return;
                    }
                    self.control.obey("INT");
                }
            }
        }
    }
}

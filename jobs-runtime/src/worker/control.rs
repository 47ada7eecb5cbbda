//! How a worker is told to quiet down or stop: by OS signals, by its dashboard's signals list,
//! or by the code that runs it.

use tokio_util::sync::CancellationToken;

/// The worker's three stop levels; each implies the ones before it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Control {
    /// Take no more jobs (TSTP); running jobs finish, the heartbeat goes on, `quiet: "true"`.
    quiet: CancellationToken,
    /// Shut down (TERM, INT): quiet, wait up to the timeout, hand back the rest, exit.
    stop: CancellationToken,
    /// Shut down without waiting (a second INT): hand running jobs back at once.
    now: CancellationToken,
}

impl Control {
    pub(crate) fn quiet(&self) {
        self.quiet.cancel();
    }

    pub(crate) fn stop(&self) {
        self.quiet.cancel();
        self.stop.cancel();
    }

    pub(crate) fn stop_now(&self) {
        self.stop();
        self.now.cancel();
    }

    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet.is_cancelled()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// The token that is cancelled at quiet, for loops that stop taking work then.
    pub(crate) fn quiet_token(&self) -> CancellationToken {
        self.quiet.clone()
    }

    pub(crate) async fn quieted(&self) {
        self.quiet.cancelled().await;
    }

    pub(crate) async fn stopped(&self) {
        self.stop.cancelled().await;
    }

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

/// Listens for SIGINT, SIGTERM, SIGTSTP and SIGTTIN until the worker stops: TSTP quiets, TERM
/// and INT stop, a second INT stops at once, TTIN runs `dump`.
#[cfg(unix)]
pub(crate) async fn listen(control: Control, dump: impl Fn() + Send + 'static) {
    use tokio::signal::unix::{SignalKind, signal};
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
            () = control.stopped_now() => return,
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
            _ = ttin.recv() => dump(),
        }
    }
}

/// Without Unix signals, Ctrl-C stops (twice: at once).
#[cfg(not(unix))]
pub(crate) async fn listen(control: Control, _dump: impl Fn() + Send + 'static) {
    loop {
        tokio::select! {
            () = control.stopped_now() => return,
            interrupted = tokio::signal::ctrl_c() => {
                if interrupted.is_err() {
                    return;
                }
                control.obey("INT");
            }
        }
    }
}

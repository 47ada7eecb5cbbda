//! Telling systemd how the worker is doing, through its notify protocol (`Type=notify`): only
//! when the service manager set `NOTIFY_SOCKET`, so elsewhere this does nothing.
//!
//! - `READY=1` once the first heartbeat is written and the fetcher starts taking jobs;
//! - `WATCHDOG=1` every half of `WATCHDOG_USEC` (set by `WatchdogSec=`), from a task of its
//!   own, from start to exit: a worker waiting out a Redis outage is alive and keeps pinging,
//!   while one whose runtime no longer runs tasks misses the pings and is restarted;
//! - `STOPPING=1` when shutdown begins, so systemd shows the process as deactivating while
//!   running jobs finish (within `TimeoutStopSec=`, which must exceed the shutdown timeout).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Sends the worker's notifications, if a service manager asked for them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// A notifier for this process: on when `NOTIFY_SOCKET` is set.
    pub(crate) fn from_env() -> Self {
        Self {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    /// `READY=1`.
    pub(crate) fn ready(self) {
        self.send(&[NotifyState::Ready, NotifyState::Status("taking jobs")]);
    }

    /// `STOPPING=1`.
    pub(crate) fn stopping(self) {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status("shutting down: finishing running jobs"),
        ]);
    }

    /// Pings the watchdog at half its interval until `until` is cancelled; returns at once
    /// when no watchdog is set. Cancellation-safe.
    pub(crate) async fn run_watchdog(self, until: CancellationToken) {
        let Some(interval) = self.watchdog_interval() else {
            return;
        };
        loop {
            self.send(&[NotifyState::Watchdog]);
            tokio::select! {
                () = until.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Half the watchdog's timeout, if systemd set one for this process.
    fn watchdog_interval(self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        sd_notify::watchdog_enabled()
            .filter(|timeout| !timeout.is_zero())
            .map(|timeout| timeout / 2)
    }

    fn send(self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(error) = sd_notify::notify(states) {
            tracing::warn!(%error, "cannot notify systemd (NOTIFY_SOCKET)");
        }
    }
}

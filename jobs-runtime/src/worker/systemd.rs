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

use super::tasks::sleep_or;

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

    /// The watchdog loop, if systemd set a watchdog for this process.
    pub(crate) fn watchdog(self) -> Option<Watchdog> {
        self.watchdog_interval().map(|interval| Watchdog {
            notifier: self,
            interval,
        })
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

    /// Sends `states`, if a service manager asked for them.
    fn send(self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(error) = sd_notify::notify(states) {
            tracing::warn!(%error, "cannot notify systemd (NOTIFY_SOCKET)");
        }
    }
}

/// The loop that pings systemd's watchdog.
#[derive(Debug)]
pub(crate) struct Watchdog {
    /// Where the pings go.
    notifier: Notifier,
    /// Half the watchdog's timeout.
    interval: Duration,
}

impl Watchdog {
    /// Pings at half the watchdog's timeout until `shutdown`, which comes after the heartbeat
    /// is cleared: a worker shutting down is alive until it exits. Cancellation-safe.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        loop {
            self.ping();
            if sleep_or(&shutdown, self.interval).await {
                return;
            }
        }
    }

    /// One round: `WATCHDOG=1`.
    pub(crate) fn ping(&self) {
        self.notifier.send(&[NotifyState::Watchdog]);
    }
}

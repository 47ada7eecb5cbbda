//! A process's own liveness, finer than Sidekiq's heartbeat: `jobs:alive:<identity>`, renewed
//! every [`liveness_interval`](super::WorkerConfig::liveness_interval) (2 s) and expiring after
//! [`liveness_ttl`](super::WorkerConfig::liveness_ttl) (10 s). Crash recovery presumes a process
//! dead when the key is gone, so a killed worker's jobs run again within about 16 s rather
//! than the 60 s of Sidekiq's process hash plus a sweep.
//!
//! The key is renewed from a thread of its own, with its own runtime and connection: a runtime
//! kept busy by jobs, or jobs blocking every one of its threads, do not make a live process
//! look dead. What it cannot tell apart from death is a process stopped as a whole (`SIGSTOP`,
//! a paused VM, a partition), and such a process's jobs are recovered elsewhere. The fetcher
//! therefore asks [`Pulse`] before it starts a job it took earlier: when no renewal has landed
//! for half the TTL it takes nothing, and when the key may have expired (or did: `SET … GET`
//! found it gone) it forgets the jobs it took ahead and sweeps its working list, so that it
//! runs only those still its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::tasks::sleep_or;
use crate::client::Client;
use crate::error::Error;

/// What the liveness loop tells the rest of the worker.
#[derive(Debug)]
pub(crate) struct Pulse {
    /// The moment the durations below count from.
    origin: Instant,
    /// When the last renewal that landed was sent, in milliseconds since `origin`, plus one
    /// (0: none yet). The key lives at least `ttl` from then.
    last_sent: AtomicU64,
    /// When the last heartbeat that landed was sent, counted as `last_sent` (0: none yet):
    /// what the health endpoint's liveness reads (`health.rs`).
    last_beat: AtomicU64,
    /// How many lapses were seen (a renewal found the key gone, or came a TTL after the one
    /// before): the process may have been presumed dead meanwhile. A count rather than a flag,
    /// so that each capsule's fetcher sees every lapse ([`LapsesSeen`]).
    lapses: AtomicU64,
    /// How long the key lives.
    ttl: Duration,
}

impl Pulse {
    /// A pulse for a key living `ttl`, with no renewal yet.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            origin: Instant::now(),
            last_sent: AtomicU64::new(0),
            last_beat: AtomicU64::new(0),
            lapses: AtomicU64::new(0),
            ttl,
        }
    }

    /// How long since the last renewal that landed was sent; `None` before the first.
    pub(crate) fn age(&self) -> Option<Duration> {
        self.since(&self.last_sent)
    }

    /// How long since the last heartbeat that landed was sent; `None` before the first.
    pub(crate) fn beat_age(&self) -> Option<Duration> {
        self.since(&self.last_beat)
    }

    /// How long since the moment `sent` holds (milliseconds since `origin`, plus one).
    fn since(&self, sent: &AtomicU64) -> Option<Duration> {
        let sent = sent.load(Ordering::SeqCst).checked_sub(1)?;
        Some(
            self.origin
                .elapsed()
                .saturating_sub(Duration::from_millis(sent)),
        )
    }

    /// Whether renewals have been failing for half the TTL: the process should take no jobs
    /// until one lands.
    pub(crate) fn is_faltering(&self) -> bool {
        self.age().is_some_and(|age| age >= self.ttl / 2)
    }

    /// Whether the process may have been presumed dead since `seen` last asked: the key may
    /// have expired (no renewal landed for the TTL, or two landed a TTL apart), or a renewal
    /// found it gone. Each reader keeps its own `seen`, so every reader learns of every lapse.
    pub(crate) fn take_lapse(&self, seen: &mut LapsesSeen) -> bool {
        let stale = self.age().is_some_and(|age| age >= self.ttl);
        let lapses = self.lapses.load(Ordering::SeqCst);
        let new = lapses != seen.0;
        seen.0 = lapses;
        new || stale
    }

    /// Notes a renewal sent at `sent` by the heartbeat, which does not ask whether the key
    /// still existed.
    pub(crate) fn renewed_at(&self, sent: Instant) {
        self.landed(sent, true);
        self.last_beat
            .fetch_max(self.millis(sent), Ordering::SeqCst);
    }

    /// `sent` in milliseconds since `origin`, plus one (0 means never).
    fn millis(&self, sent: Instant) -> u64 {
        u64::try_from(sent.duration_since(self.origin).as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// Notes a renewal sent at `sent` that landed; `found` says whether the key still existed.
    /// A renewal sent a TTL or more after the one before it is a lapse too, whatever it found:
    /// the key may have expired in between and been renewed by the other writer (the
    /// heartbeat renews it as well, without asking).
    fn landed(&self, sent: Instant, found: bool) {
        let millis = self.millis(sent);
        // The newest send wins: a renewal sent before a pause may land after a later one.
        let previous = self.last_sent.fetch_max(millis, Ordering::SeqCst);
        let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let gap = previous != 0 && millis.saturating_sub(previous) >= ttl;
        if previous != 0 && (!found || gap) {
            self.lapses.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The lapses one reader of a [`Pulse`] (a capsule's fetcher) has seen.
#[derive(Debug, Default)]
pub(crate) struct LapsesSeen(u64);

/// The loop that renews the liveness key.
pub(crate) struct Liveness {
    /// The Redis of the key.
    client: Client,
    /// A connection of the loop's own, opened on its own thread (the shared one is driven by
    /// the worker's runtime, which jobs may keep busy).
    connection: Option<crate::redis::Link>,
    /// The key.
    key: String,
    /// The time between renewals.
    interval: Duration,
    /// Where the loop reports.
    pulse: Arc<Pulse>,
}

impl Liveness {
    /// Renews `key` every `interval`, reporting to `pulse` (whose TTL the key gets).
    pub(crate) fn new(client: Client, key: String, interval: Duration, pulse: Arc<Pulse>) -> Self {
        Self {
            client,
            connection: None,
            key,
            interval,
            pulse,
        }
    }

    /// Renews the key until `shutdown`, which comes when the last job is handed back (the
    /// launcher then deletes the key). Meant for a thread of its own (`tasks::Running::
    /// spawn_thread`). Cancellation-safe: each renewal is one command.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        loop {
            if let Err(error) = self.renew().await {
                tracing::warn!(%error, "cannot renew this process's liveness; will try again");
            }
            if sleep_or(&shutdown, self.interval).await {
                return;
            }
        }
    }

    /// One round: `SET jobs:alive:<identity> 1 PX <ttl> GET`, on the loop's own connection
    /// (opened again after a failure).
    pub(crate) async fn renew(&mut self) -> Result<(), Error> {
        let server = self.client.redis();
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            // Not through the shared connection, whose driver runs on the worker's runtime.
            None => server.own_connection(Duration::ZERO).await?,
        };
        let ttl = u64::try_from(self.pulse.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let sent = Instant::now();
        let previous: Option<String> = redis::cmd("SET")
            .arg(&self.key)
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .arg("GET")
            .query_async(&mut connection)
            .await
            .map_err(|error| server.error(error))?;
        self.connection = Some(connection);
        self.pulse.landed(sent, previous.is_some());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{LapsesSeen, Pulse};

    #[test]
    fn a_renewal_that_finds_the_key_gone_is_a_lapse() {
        let pulse = Pulse::new(Duration::from_secs(10));
        assert_eq!(pulse.age(), None);
        assert!(!pulse.is_faltering());
        let mut seen = LapsesSeen::default();
        pulse.landed(Instant::now(), false);
        assert!(
            !pulse.take_lapse(&mut seen),
            "the first renewal finds no key, as it should"
        );
        pulse.landed(Instant::now(), false);
        assert!(pulse.take_lapse(&mut seen));
        assert!(
            !pulse.take_lapse(&mut seen),
            "a lapse is reported once to each reader"
        );
    }

    #[test]
    fn every_reader_sees_every_lapse() {
        let pulse = Pulse::new(Duration::from_secs(10));
        let (mut first, mut second) = (LapsesSeen::default(), LapsesSeen::default());
        pulse.landed(Instant::now(), true);
        pulse.landed(Instant::now(), false);
        assert!(pulse.take_lapse(&mut first));
        assert!(
            pulse.take_lapse(&mut second),
            "the first reader's look does not hide the lapse from the second"
        );
        assert!(!pulse.take_lapse(&mut first) && !pulse.take_lapse(&mut second));
    }

    #[test]
    fn renewals_a_ttl_apart_are_a_lapse_even_when_the_key_was_found() {
        let pulse = Pulse::new(Duration::from_millis(30));
        let before = Instant::now();
        pulse.landed(before, true);
        std::thread::sleep(Duration::from_millis(35));
        let after = Instant::now();
        // The heartbeat renewed first, so the liveness thread finds the key: still a lapse.
        pulse.renewed_at(after);
        pulse.landed(after, true);
        assert!(pulse.take_lapse(&mut LapsesSeen::default()));
        // A renewal sent before the pause that lands late does not turn the clock back.
        pulse.landed(before, true);
        assert!(pulse.age().unwrap() < Duration::from_millis(30));
    }

    #[test]
    fn only_the_heartbeat_counts_as_a_beat() {
        let pulse = Pulse::new(Duration::from_secs(10));
        pulse.landed(Instant::now(), true);
        assert!(pulse.age().is_some());
        assert_eq!(
            pulse.beat_age(),
            None,
            "the liveness thread is no heartbeat"
        );
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        pulse.renewed_at(Instant::now());
        // A beat sent earlier that lands late does not turn the clock back.
        pulse.renewed_at(before);
        let age = pulse.beat_age().unwrap();
        // (Ages count whole milliseconds, so allow one.)
        assert!(age + Duration::from_millis(10) <= before.elapsed());
    }

    #[test]
    fn an_old_renewal_falters_then_lapses() {
        let pulse = Pulse::new(Duration::from_millis(40));
        pulse.landed(Instant::now(), true);
        assert!(!pulse.is_faltering());
        std::thread::sleep(Duration::from_millis(25));
        assert!(pulse.is_faltering());
        let mut seen = LapsesSeen::default();
        assert!(!pulse.take_lapse(&mut seen));
        std::thread::sleep(Duration::from_millis(20));
        assert!(pulse.take_lapse(&mut seen));
    }
}

//! The periodic loop: every worker process claims the ticks of its periodic entries as they
//! fall due, and the first claim of a tick pushes its job (`scripts/periodic_claim.lua`), so a
//! tick runs once however many processes race for it and whichever of them dies. No leader.
//!
//! At start a process declares its entries (`scripts/periodic_register.lua`): the declaration
//! of the process started last is in force, and a process holding another definition of it (an
//! older deploy) claims nothing for it, unless the one in force goes undeclared for 75 s. It
//! declares them again every 30 s, so the dashboard knows which entries live processes still
//! hold; an entry no process declared for a day is removed. See `docs/periodic.md`.
//!
//! `declare.rs` writes the definitions, `claim.rs` claims ticks; this file is the loop.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

mod claim;
mod declare;

use claim::{Outcome, claim};
use declare::{Declared, register};

use super::config::WorkerConfig;
use super::tasks::sleep_or;
use crate::client::Client;
use crate::error::Error;
use crate::periodic::{Entry, Periodic};
use crate::registry::Registry;

/// Ticks missed for less than this since an entry's last claim were missed by a live process
/// (a pause, a Redis failover) and are each pushed; a longer gap means every worker was down,
/// and the entry catches up at most once.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// The most ticks of one entry one claim carries (the newest, when more are due).
const MAX_TICKS: usize = 32;

/// How often a process declares its entries again.
const DECLARE_EVERY: Duration = Duration::from_secs(30);

/// How long the definition in force may go undeclared before a running process holding
/// another one takes over: its processes are gone (a rollback, an old process that restarted
/// during a deploy and then stopped).
const STALE_AFTER: Duration = Duration::from_secs(75);

/// An entry no process declared for this long is removed from Redis.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest the loop sleeps, so that a paused or stalled pass never waits long.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// How many claims are in flight at once on the shared connection.
const CLAIMS_IN_FLIGHT: usize = 64;

/// Every periodic entry of a worker, checked: those of its jobs' `#[job(cron)]`, of its config
/// file, and of its builder, in that order. A bad expression or zone, or two entries of one
/// name, is an error naming the entry and where it was declared.
pub(crate) fn entries_of(
    registry: &Registry,
    config: &WorkerConfig,
    built: &[Periodic],
) -> Result<Vec<Entry>, Error> {
    let from_jobs = registry.iter().filter_map(crate::periodic::of_job);
    let from_file = config.periodic.iter().map(|entry| entry.to_periodic());
    crate::periodic::check_all(from_jobs.chain(from_file).chain(built.iter().cloned()))
}

/// One entry as this process follows it.
struct Followed {
    /// The entry.
    entry: Entry,
    /// The newest tick claimed, by any process, as last seen here.
    last: DateTime<Utc>,
    /// When the entry next falls due, after `last`.
    next: Option<DateTime<Utc>>,
    /// Another process's definition of it is in force (logged once).
    superseded: bool,
    /// Not claimed again before this: its due ticks were still in Redis's future (this
    /// process's clock runs ahead), or its queue refused the job.
    not_before: Option<DateTime<Utc>>,
}

impl Followed {
    fn new(entry: Entry, last: DateTime<Utc>) -> Self {
        let next = entry
            .schedule
            .next_after(last)
            .map(|tick| tick.with_timezone(&Utc));
        Self {
            entry,
            last,
            next,
            superseded: false,
            not_before: None,
        }
    }

    /// When it is next worth a claim: at its next tick, or later if told to wait.
    fn due_at(&self) -> Option<DateTime<Utc>> {
        if !self.entry.enabled || self.superseded {
            return None;
        }
        self.next
            .map(|next| self.not_before.map_or(next, |wait| wait.max(next)))
    }

    /// After a claim that left the next tick unclaimed because Redis's clock had not reached
    /// it (this process's runs `ahead`): waits until it has, at least 20 ms and at most 10 s.
    fn wait_for_redis(&mut self, ahead: chrono::TimeDelta) {
        let now = Utc::now();
        self.not_before = self.next.filter(|next| *next <= now).map(|next| {
            let due_here = next + ahead.max(chrono::TimeDelta::zero());
            let soonest = now + chrono::TimeDelta::milliseconds(20);
            let latest = now + chrono::TimeDelta::seconds(10);
            due_here.clamp(soonest, latest)
        });
    }

    /// Waits `pause` before the next claim if the last one left its tick unclaimed.
    fn back_off_if_still_due(&mut self, pause: Duration) {
        let now = Utc::now();
        self.not_before = self.next.filter(|next| *next <= now).map(|_| now + pause);
    }

    /// Records `last` as the newest tick claimed.
    fn claimed_up_to(&mut self, last: DateTime<Utc>) {
        if last > self.last {
            self.restart_from(last);
        }
    }

    /// Follows the entry from `last`, the newest tick claimed as Redis says.
    fn restart_from(&mut self, last: DateTime<Utc>) {
        self.last = last;
        self.next = self
            .entry
            .schedule
            .next_after(self.last)
            .map(|tick| tick.with_timezone(&Utc));
    }
}

/// The loop that claims this process's periodic entries' ticks.
pub(crate) struct PeriodicLoop {
    /// Where the jobs go.
    client: Client,
    /// The entries, as followed.
    entries: Vec<Followed>,
}

impl PeriodicLoop {
    /// A loop over `entries` (checked), pushing through `client`.
    pub(crate) fn new(client: Client, entries: Vec<Entry>) -> Self {
        let now = Utc::now();
        let entries = entries
            .into_iter()
            .map(|entry| Followed::new(entry, now))
            .collect();
        Self { client, entries }
    }

    /// Declares the entries until `shutdown` (the quiet phase), then claims their ticks as
    /// they fall due. Cancellation-safe between passes; a claim cut short ran whole or not at
    /// all.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        while let Err(error) = self.declare(true).await {
            failures += 1;
            if failures == 1 {
                tracing::warn!(%error, "cannot declare the periodic entries; will try again");
            }
            if sleep_or(&shutdown, Duration::from_secs(1)).await {
                return;
            }
        }
        let mut declared = tokio::time::Instant::now();
        loop {
            let wait = self.until_next(Utc::now());
            if sleep_or(&shutdown, wait).await {
                return;
            }
            if declared.elapsed() >= DECLARE_EVERY {
                match self.declare(false).await {
                    Ok(()) => declared = tokio::time::Instant::now(),
                    Err(error) => {
                        tracing::warn!(%error, "cannot declare the periodic entries; will try again");
                    }
                }
            }
            if let Err(error) = self.pass(Utc::now()).await {
                tracing::warn!(%error, "cannot claim periodic ticks; will try again");
                if sleep_or(&shutdown, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    }

    /// How long until the next entry falls due, at most [`MAX_SLEEP`].
    fn until_next(&self, now: DateTime<Utc>) -> Duration {
        self.entries
            .iter()
            .filter_map(Followed::due_at)
            .min()
            .map_or(MAX_SLEEP, |next| {
                (next - now)
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_SLEEP)
            })
    }

    /// Writes every entry's definition to Redis and learns each one's last tick, a few dozen
    /// at a time. `take_over` (at start) puts this process's definitions in force; otherwise a
    /// different one in force stays, unless no process has declared it for [`STALE_AFTER`].
    /// An entry that cannot be declared (its key holds another type) is logged and not
    /// claimed until a later declaration succeeds; the others go on. Then removes entries no
    /// process declared for a day. An error when no entry could be declared (Redis is away).
    pub(crate) async fn declare(&mut self, take_over: bool) -> Result<(), Error> {
        let specs: Vec<(usize, String, String)> = self
            .entries
            .iter()
            .enumerate()
            .map(|(index, followed)| {
                let entry = &followed.entry;
                (index, entry.name.clone(), entry.definition().to_owned())
            })
            .collect();
        let mut registrations = JoinSet::new();
        let mut failures = Vec::new();
        for (index, name, definition) in specs {
            let client = self.client.clone();
            registrations.spawn(async move {
                let declared = register(&client, &name, &definition, take_over).await;
                (index, declared)
            });
            if registrations.len() >= CLAIMS_IN_FLIGHT
                && let Some(done) = registrations.join_next().await
            {
                self.land_declaration(done, &mut failures);
            }
        }
        while let Some(done) = registrations.join_next().await {
            self.land_declaration(done, &mut failures);
        }
        if !self.entries.is_empty() && failures.len() == self.entries.len() {
            return Err(failures.remove(0));
        }
        declare::forget_stale(&self.client).await
    }

    /// Records one entry's declaration.
    fn land_declaration(
        &mut self,
        done: Result<(usize, Result<Declared, Error>), tokio::task::JoinError>,
        failures: &mut Vec<Error>,
    ) {
        let Ok((index, declared)) = done else {
            return;
        };
        let followed = &mut self.entries[index];
        match declared {
            Ok(Declared { in_force, last }) => {
                followed.superseded = !in_force;
                if let Some(last) = last {
                    // Older than now after downtime: the pass then catches up.
                    followed.restart_from(last);
                }
            }
            Err(error) => {
                tracing::warn!(entry = %followed.entry.name, %error, "cannot declare a periodic entry; it waits for the next declaration");
                followed.superseded = true;
                failures.push(error);
            }
        }
    }

    /// One pass: claims the due ticks of every entry due at `now`.
    pub(crate) async fn pass(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        let mut claims = JoinSet::new();
        let mut first_error = None;
        let due: Vec<_> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, followed)| followed.due_at().is_some_and(|due| due <= now))
            .map(|(index, followed)| {
                let ticks = followed
                    .entry
                    .schedule
                    .ticks_between(followed.last, now, MAX_TICKS);
                (index, followed.entry.clone(), ticks)
            })
            .filter(|(_, _, ticks)| !ticks.is_empty())
            .collect();
        for (index, entry, ticks) in due {
            let client = self.client.clone();
            claims.spawn(async move { (index, claim(&client, &entry, &ticks).await) });
            if claims.len() >= CLAIMS_IN_FLIGHT
                && let Some(done) = claims.join_next().await
            {
                self.land(done, &mut first_error);
            }
        }
        while let Some(done) = claims.join_next().await {
            self.land(done, &mut first_error);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Records one claim's outcome.
    fn land(
        &mut self,
        done: Result<(usize, Result<Outcome, Error>), tokio::task::JoinError>,
        first_error: &mut Option<Error>,
    ) {
        let (index, outcome) = match done {
            Ok(done) => done,
            Err(error) => {
                first_error.get_or_insert(Error::Worker {
                    reason: format!("a periodic claim's task failed: {error}"),
                });
                return;
            }
        };
        let followed = &mut self.entries[index];
        match outcome {
            Ok(Outcome::Ran {
                last,
                pushed,
                ahead,
            }) => {
                followed.superseded = false;
                followed.claimed_up_to(last);
                // Still due: the tick is in Redis's future, as this clock runs ahead; it falls
                // due when Redis's clock reaches it.
                followed.wait_for_redis(ahead);
                if !pushed.is_empty() {
                    tracing::debug!(entry = %followed.entry.name, ticks = pushed.len(), "pushed periodic jobs");
                }
            }
            Ok(Outcome::Paused { last }) => followed.claimed_up_to(last),
            Ok(Outcome::Superseded) => {
                if !followed.superseded {
                    tracing::warn!(
                        entry = %followed.entry.name,
                        "another definition of this periodic entry is in force (declared by a \
                         process started later); this process leaves it to that one"
                    );
                }
                followed.superseded = true;
            }
            Ok(Outcome::QueueRefused { reason }) => {
                followed.back_off_if_still_due(Duration::from_secs(5));
                tracing::error!(
                    entry = %followed.entry.name,
                    queue = %followed.entry.queue,
                    %reason,
                    "cannot push a periodic job: its queue's key holds another type; the tick waits"
                );
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
}

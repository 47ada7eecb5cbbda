//! The periodic entries a fake follows, and which of their ticks a move of its clock spans.
//!
//! The entries are those a worker of the test binary would follow from its jobs
//! (`#[job(cron)]`), then those the test gives. The fake is one process that is never down: it
//! claims nothing in Redis and has no catch-up rule; every tick a move of its clock spans is
//! pushed, in tick order.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Utc};

use crate::client::Client;
use crate::error::Error;
use crate::periodic::{Entry, Periodic, Tz};
use crate::registry::registered_jobs;

/// The most ticks of one entry one move of the fake clock pushes: a longer span (a day of an
/// entry that runs every second) is refused rather than pushed.
pub(super) const MAX_TICKS: usize = 10_000;

/// The periodic entries of one fake, and the client their jobs go through.
#[derive(Default)]
pub(super) struct Entries {
    /// The entries the test gave, in order.
    given: Vec<Periodic>,
    /// Every entry, checked: those of `#[job(cron)]` first. `None` until first needed.
    checked: Option<Vec<Entry>>,
    /// The client the jobs are pushed through; `None` for the default client.
    client: Option<Client>,
}

impl Entries {
    /// Adds entries the test gave. The error is the worker's for the first bad entry, or for a
    /// name two entries share; the entries are then left as they were.
    pub(super) fn add(&mut self, entries: impl IntoIterator<Item = Periodic>) -> Result<(), Error> {
        let mut given = self.given.clone();
        given.extend(entries);
        self.checked = Some(check(&given)?);
        self.given = given;
        Ok(())
    }

    /// Pushes the jobs through `client` from now on.
    pub(super) fn set_client(&mut self, client: Client) {
        self.client = Some(client);
    }

    /// Every entry, checked, those of `#[job(cron)]` first; the error is the worker's.
    pub(super) fn checked(&mut self) -> Result<&[Entry], Error> {
        let checked = match self.checked.take() {
            Some(checked) => checked,
            None => check(&self.given)?,
        };
        Ok(self.checked.insert(checked))
    }

    /// The client to push through: the one given, else the default client.
    pub(super) fn client(&self) -> Result<Client, Error> {
        match &self.client {
            Some(client) => Ok(client.clone()),
            None => Client::global(),
        }
    }
}

/// Checks the entries of the jobs linked into the binary, then `given`, as a worker does at
/// start: each entry's expression, zone and job, and that no two share a name.
fn check(given: &[Periodic]) -> Result<Vec<Entry>, Error> {
    let mut jobs: Vec<_> = registered_jobs()
        .filter_map(crate::periodic::of_job)
        .collect();
    jobs.sort_by(|a, b| a.name().cmp(b.name()));
    crate::periodic::check_all(jobs.into_iter().chain(given.iter().cloned()))
}

/// The ticks of the enabled `entries` after `after` up to and including `until`, each with its
/// entry's index: oldest first, entries in order within one instant. The error names the first
/// entry with more than [`MAX_TICKS`] of them and says what to do instead.
pub(super) fn due(
    entries: &[Entry],
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<(DateTime<Tz>, usize)>, String> {
    let mut due = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if !entry.enabled {
            continue;
        }
        let ticks = entry.schedule.ticks_between(after, until, MAX_TICKS + 1);
        if ticks.len() > MAX_TICKS {
            return Err(format!(
                "moving the fake clock from {after} to {until} spans more than {MAX_TICKS} ticks \
                 of the periodic entry `{}` (`{}` in {}); advance it in smaller steps, or move \
                 it without running the schedule with `Fake::set_now`",
                entry.name,
                entry.schedule.expression(),
                entry.schedule.zone().name(),
            ));
        }
        due.extend(ticks.into_iter().map(|tick| (tick, index)));
    }
    due.sort_by_key(|(tick, index)| (tick.with_timezone(&Utc), *index));
    Ok(due)
}

/// Runs `future` to its end within this call, with no executor: a push in fake mode finishes
/// at its first poll unless a client middleware waits (on I/O, a timer), and then this is
/// `None`.
pub(super) fn finish_now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::periodic::utc;

    fn entry(name: &str, cron: &str) -> Periodic {
        Periodic::class(name, cron, "Nightly", vec![])
    }

    /// The due ticks as `name@RFC 3339 in the entry's zone`.
    fn shown(entries: &[Entry], after: &str, until: &str) -> Vec<String> {
        due(entries, utc(after), utc(until))
            .unwrap()
            .iter()
            .map(|(tick, index)| format!("{}@{}", entries[*index].name, tick.to_rfc3339()))
            .collect()
    }

    #[test]
    fn ticks_of_every_entry_in_tick_order_excluding_the_start() {
        let mut entries = Entries::default();
        entries
            .add([
                entry("hourly", "0 * * * *"),
                entry("half_past", "30 * * * *").timezone("Europe/Berlin"),
                entry("off", "* * * * *").enabled(false),
            ])
            .unwrap();
        let checked = entries.checked().unwrap().to_vec();
        assert_eq!(
            shown(&checked, "2026-01-01T01:00:00Z", "2026-01-01T03:00:00Z"),
            [
                "half_past@2026-01-01T02:30:00+01:00",
                "hourly@2026-01-01T02:00:00+00:00",
                "half_past@2026-01-01T03:30:00+01:00",
                "hourly@2026-01-01T03:00:00+00:00",
            ]
        );
        // Two entries due at one instant come in the order given.
        let mut same = Entries::default();
        same.add([entry("b", "0 3 * * *"), entry("a", "0 3 * * *")])
            .unwrap();
        let checked = same.checked().unwrap().to_vec();
        let names: Vec<String> = shown(&checked, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
            .into_iter()
            .map(|shown| shown.split('@').next().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn a_span_of_too_many_ticks_is_refused_naming_the_entry() {
        let mut entries = Entries::default();
        entries.add([entry("every_second", "* * * * * *")]).unwrap();
        let checked = entries.checked().unwrap().to_vec();
        let start = utc("2026-01-01T00:00:00Z");
        let limit = chrono::TimeDelta::seconds(MAX_TICKS as i64);
        let at_the_limit = due(&checked, start, start + limit).unwrap();
        assert_eq!(at_the_limit.len(), MAX_TICKS);
        let error = due(&checked, start, start + chrono::TimeDelta::days(1)).unwrap_err();
        assert!(error.contains("`every_second`"), "{error}");
        assert!(error.contains("more than 10000 ticks"), "{error}");
        assert!(error.contains("Fake::set_now"), "{error}");
    }

    #[test]
    fn a_bad_entry_or_a_name_twice_is_the_workers_error_and_changes_nothing() {
        let mut entries = Entries::default();
        entries.add([entry("nightly", "0 3 * * *")]).unwrap();
        let error = entries
            .add([entry("digest", "0 3 * *")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("`digest`"), "{error}");
        assert!(error.contains("has 4 fields"), "{error}");
        let error = entries
            .add([entry("nightly", "0 4 * * *")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("two periodic entries are named `nightly`"),
            "{error}"
        );
        let names: Vec<String> = entries
            .checked()
            .unwrap()
            .iter()
            .map(|entry| entry.name.clone())
            .collect();
        assert_eq!(names, ["nightly"]);
    }

    #[test]
    fn finish_now_finishes_what_does_not_wait() {
        assert_eq!(finish_now(async { 7 }), Some(7));
        assert_eq!(finish_now(std::future::pending::<()>()), None);
    }
}

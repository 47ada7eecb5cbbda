//! Counting runs in memory: per class and minute until the next flush (Sidekiq's keys), and per
//! class and queue since the process started (Prometheus). One short lock per run, no Redis.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::histogram::{BUCKETS, Histogram};

/// The most classes counted; runs of further classes count under [`OTHER`], so that no stream
/// of odd names (ActiveJob's `wrapped`) can grow the memory, the Redis hashes or the labels.
pub const MAX_CLASSES: usize = 1_000;

/// The class runs count under once [`MAX_CLASSES`] are counted: a name no Ruby or Rust class
/// can have, so it never merges with a real one.
pub const OTHER: &str = "(other)";

/// The upper bounds of the Prometheus histogram, in seconds: Sidekiq's buckets.
pub(crate) const SECONDS_BOUNDS: [f64; BUCKETS - 1] = [
    0.02, 0.03, 0.045, 0.065, 0.1, 0.15, 0.225, 0.335, 0.5, 0.75, 1.1, 1.7, 2.5, 3.8, 5.75, 8.5,
    13.0, 20.0, 30.0, 45.0, 65.0, 100.0, 150.0, 225.0, 335.0,
];

/// One class's runs in one minute, not yet written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Runs, failed or not (`|p`).
    pub(crate) processed: u64,
    /// Failed runs (`|f`).
    pub(crate) failed: u64,
    /// Milliseconds of successful runs (`|ms`); `None` when none succeeded.
    pub(crate) ms: Option<u64>,
    /// Successful runs by time.
    pub(crate) histogram: Histogram,
}

/// One class's runs from one queue since the process started.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueTotals {
    /// The class (ActiveJob's `wrapped` when set), or [`OTHER`].
    pub class: String,
    /// The queue the runs were taken from.
    pub queue: String,
    /// Runs, failed or not.
    pub processed: u64,
    /// Failed runs.
    pub failed: u64,
    /// Seconds spent in every run, failed or not.
    pub seconds: f64,
    /// Runs per bucket of the Prometheus histogram (not cumulative; the last is `+Inf`).
    pub buckets: [u64; BUCKETS],
}

/// One class's counts.
#[derive(Debug, Default)]
struct ClassCounts {
    /// Per minute (epoch seconds / 60) since the last flush: usually one or two.
    pending: Vec<(i64, Tally)>,
    /// Per queue since start, by queue name: as many as the worker's queues (a run looks its
    /// queue up by name, not through a list, which cost a worker on 1,000 queues a few hundred
    /// comparisons a job).
    queues: HashMap<String, QueueTotals>,
}

/// Every class's counts: an index by name into a list, so that a run costs one lookup.
#[derive(Debug, Default)]
struct Classes {
    /// Where each class is in `counts`.
    index: HashMap<String, usize>,
    /// Each class's name and counts.
    counts: Vec<(String, ClassCounts)>,
}

/// Every class's counts, behind one short lock.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    classes: Mutex<Classes>,
}

/// One run to count.
pub(crate) struct Run<'a> {
    /// The class (ActiveJob's `wrapped` when set).
    pub(crate) class: &'a str,
    /// The queue it was taken from.
    pub(crate) queue: &'a str,
    /// The minute it ended (epoch seconds / 60).
    pub(crate) minute: i64,
    /// How long it ran, in milliseconds, as Sidekiq measures it (whole ms).
    pub(crate) ms: u64,
    /// How long it ran, in seconds.
    pub(crate) seconds: f64,
    /// Whether it failed.
    pub(crate) failed: bool,
}

impl Classes {
    /// The index of `class`, added when new.
    fn slot(&mut self, class: &str) -> usize {
        if let Some(&index) = self.index.get(class) {
            return index;
        }
        self.counts.push((class.to_owned(), ClassCounts::default()));
        self.index.insert(class.to_owned(), self.counts.len() - 1);
        self.counts.len() - 1
    }
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, Classes> {
        self.classes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one run: a failure counts as processed and failed, without time (as Sidekiq
    /// does); in the Prometheus totals every run counts its time.
    pub(crate) fn record(&self, run: &Run<'_>) {
        let mut classes = self.lock();
        let index = match classes.index.get(run.class) {
            Some(&index) => index,
            None => {
                let class = if classes.counts.len() < MAX_CLASSES {
                    run.class
                } else {
                    OTHER
                };
                classes.slot(class)
            }
        };
        let (class, counts) = &mut classes.counts[index];
        let class = class.as_str();
        let tally = match counts
            .pending
            .iter()
            .position(|(minute, _)| *minute == run.minute)
        {
            Some(index) => &mut counts.pending[index].1,
            None => {
                counts.pending.push((run.minute, Tally::default()));
                let last = counts.pending.len() - 1;
                &mut counts.pending[last].1
            }
        };
        tally.processed += 1;
        if run.failed {
            tally.failed += 1;
        } else {
            *tally.ms.get_or_insert(0) += run.ms;
            tally.histogram.record(run.ms);
        }
        let totals = match counts.queues.get_mut(run.queue) {
            Some(totals) => totals,
            None => counts
                .queues
                .entry(run.queue.to_owned())
                .or_insert_with(|| QueueTotals {
                    class: class.to_owned(),
                    queue: run.queue.to_owned(),
                    processed: 0,
                    failed: 0,
                    seconds: 0.0,
                    buckets: [0; BUCKETS],
                }),
        };
        totals.processed += 1;
        totals.failed += u64::from(run.failed);
        totals.seconds += run.seconds;
        totals.buckets[SECONDS_BOUNDS.partition_point(|&bound| bound < run.seconds)] += 1;
    }

    /// Takes what is not yet written: `(class, minute, tally)`.
    pub(crate) fn take_pending(&self) -> Vec<(String, i64, Tally)> {
        let mut classes = self.lock();
        let mut taken = Vec::new();
        for (class, counts) in &mut classes.counts {
            for (minute, tally) in counts.pending.drain(..) {
                taken.push((class.clone(), minute, tally));
            }
        }
        taken
    }

    /// Every class's totals per queue since start, sorted by class and queue.
    pub(crate) fn totals(&self) -> Vec<QueueTotals> {
        let classes = self.lock();
        let mut totals: Vec<QueueTotals> = classes
            .counts
            .iter()
            .flat_map(|(_, counts)| counts.queues.values().cloned())
            .collect();
        drop(classes);
        totals.sort_by(|a, b| (&a.class, &a.queue).cmp(&(&b.class, &b.queue)));
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(class: &str, minute: i64, ms: u64, failed: bool) -> Run<'_> {
        Run {
            class,
            queue: "default",
            minute,
            ms,
            seconds: ms as f64 / 1000.0,
            failed,
        }
    }

    #[test]
    fn runs_count_per_class_and_minute_until_taken() {
        let tracker = Tracker::default();
        tracker.record(&run("A", 1, 10, false));
        tracker.record(&run("A", 1, 25, false));
        tracker.record(&run("A", 1, 500, true));
        tracker.record(&run("A", 2, 40, false));
        let mut pending = tracker.take_pending();
        pending.sort_by_key(|(_, minute, _)| *minute);
        assert_eq!(pending.len(), 2);
        let (class, minute, tally) = &pending[0];
        assert_eq!((class.as_str(), *minute), ("A", 1));
        assert_eq!((tally.processed, tally.failed, tally.ms), (3, 1, Some(35)));
        assert_eq!(tally.histogram.counts[0], 1);
        assert_eq!(tally.histogram.counts[1], 1);
        assert_eq!(tally.histogram.total(), 2, "a failure has no time");
        assert!(tracker.take_pending().is_empty(), "taken once");
        let totals = tracker.totals();
        assert_eq!(totals.len(), 1);
        assert_eq!((totals[0].processed, totals[0].failed), (4, 1));
        assert!((totals[0].seconds - 0.575).abs() < 1e-9);
        assert_eq!(totals[0].buckets.iter().sum::<u64>(), 4);
    }

    #[test]
    fn classes_past_the_cap_count_as_other() {
        let tracker = Tracker::default();
        for index in 0..MAX_CLASSES + 5 {
            tracker.record(&run(&format!("C{index}"), 1, 1, false));
        }
        let totals = tracker.totals();
        assert_eq!(totals.len(), MAX_CLASSES + 1);
        let other = totals.iter().find(|t| t.class == OTHER).unwrap();
        assert_eq!(other.processed, 5);
    }
}

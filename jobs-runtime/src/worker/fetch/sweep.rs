//! Which entries of the working list a capsule's sweep takes up (the fetcher's `sweep`, after a
//! lost reply or a lapse of liveness): those of its own queues, by the queue their JSON names,
//! and those it had pending itself, that nothing else in the process holds. Held means running,
//! finished and waiting for its acknowledgement, or taken and pending in any capsule's fetcher
//! ([`InFlight`]): a job whose JSON names this capsule's queue but that another capsule took
//! from its own queue (a hand-made push) is that capsule's, never this one's to start too.
//!
//! What is held is read twice, before and after the list. Before: a job that settles while the
//! list is read only makes the list shorter, never makes a held job look orphaned. After: a job
//! another capsule took and holds by then is skipped, though it was not held before. Only a job
//! whose JSON names one of this capsule's queues, taken by another capsule whose reply was still
//! on its way when the list came back, can be taken up by both and run twice.

use std::collections::HashMap;
use std::sync::Arc;

use crate::worker::in_flight::{InFlight, Taken};
use crate::worker::unit::Fetched;

/// How many jobs something else in the process holds, for each JSON: every held job, less the
/// sweeping capsule's own pending ones (`own`).
pub(super) fn held_by_others<'a>(
    in_flight: &InFlight,
    own: impl IntoIterator<Item = &'a Taken>,
) -> HashMap<bytes::Bytes, usize> {
    let mut held = in_flight.held();
    for taken in own {
        if let Some(count) = held.get_mut(&taken.json) {
            *count = count.saturating_sub(1);
        }
    }
    held
}

/// The larger count of each JSON in `before` and `after`: a job held at either moment.
pub(super) fn either(
    mut before: HashMap<bytes::Bytes, usize>,
    after: HashMap<bytes::Bytes, usize>,
) -> HashMap<bytes::Bytes, usize> {
    for (json, count) in after {
        let known = before.entry(json).or_insert(0);
        *known = (*known).max(count);
    }
    before
}

/// The jobs a capsule takes up from `listed` (its working list, newest first, as `LRANGE`
/// returns it), oldest first: the entries of the queues it `owns` and those of its `known`
/// pending jobs, less one entry per job `held` elsewhere. Its known jobs found stay held as
/// they were; a job found that it did not know is held from now on (a reply that was lost);
/// the known ones not found (recovered elsewhere, or held elsewhere) are let go. `capsule`
/// names the capsule in logs.
pub(super) fn take_up(
    capsule: &str,
    in_flight: &Arc<InFlight>,
    listed: Vec<Fetched>,
    known: impl IntoIterator<Item = Taken>,
    mut held: HashMap<bytes::Bytes, usize>,
    owns: impl Fn(&str) -> bool,
) -> Vec<Taken> {
    let mut known: HashMap<bytes::Bytes, Vec<Taken>> =
        known.into_iter().fold(HashMap::new(), |mut known, taken| {
            known.entry(taken.json.clone()).or_default().push(taken);
            known
        });
    let mut found = Vec::new();
    // Oldest first: the list's tail is where jobs taken first sit.
    for job in listed.into_iter().rev() {
        let mine = known.get(&job.json).is_some_and(|taken| !taken.is_empty());
        // Its own pending jobs stay its own even if their JSON names another queue.
        if !owns(&job.queue) && !mine {
            continue;
        }
        if let Some(count) = held.get_mut(&job.json).filter(|count| **count > 0) {
            *count -= 1;
            continue;
        }
        match known.get_mut(&job.json).and_then(Vec::pop) {
            Some(taken) => found.push(taken),
            None => {
                tracing::info!(
                    %capsule,
                    queue = %job.queue,
                    "recovered a job whose fetch reply was lost"
                );
                found.push(in_flight.take(job));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::{either, held_by_others, take_up};
    use crate::worker::in_flight::InFlight;
    use crate::worker::unit::Fetched;

    /// A job pushed by hand to queue `b` whose JSON names queue `a`: the working list tells
    /// its queue by its JSON, so it reads as `a`'s.
    const ELSEWHERE: &str = r#"{"class":"A","queue":"a","jid":"elsewhere"}"#;

    #[test]
    fn a_job_another_capsule_holds_pending_is_not_taken_up() {
        let in_flight = Arc::new(InFlight::default());
        // Capsule `b` took it from its queue `b`, ahead of its free slots.
        let pending_in_b = in_flight.take(Fetched::new("b", ELSEWHERE));
        let lost = r#"{"class":"A","queue":"a","jid":"lost"}"#;
        let listed = vec![Fetched::new("a", lost), Fetched::new("a", ELSEWHERE)];
        // Capsule `a` sweeps after a lost reply: it knows of no pending job of its own.
        let held = held_by_others(&in_flight, []);
        let found = take_up("a", &in_flight, listed.clone(), [], held, |queue| {
            queue == "a"
        });
        let found: Vec<String> = found
            .iter()
            .map(|taken| taken.text().into_owned())
            .collect();
        assert_eq!(found, [lost], "only the job no one holds");
        // Capsule `b`'s own sweep keeps it, as its own.
        let held = held_by_others(&in_flight, [&pending_in_b]);
        let found = take_up("b", &in_flight, listed, [pending_in_b], held, |queue| {
            queue == "b"
        });
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].json, ELSEWHERE.as_bytes());
    }

    #[test]
    fn a_job_held_before_or_after_the_list_is_skipped_once() {
        let before = [(Bytes::from("x"), 1), (Bytes::from("y"), 0)].into();
        let after = [(Bytes::from("y"), 2)].into();
        let held = either(before, after);
        assert_eq!((held[&b"x"[..]], held[&b"y"[..]]), (1, 2));
        let in_flight = Arc::new(InFlight::default());
        let listed = vec![Fetched::new("a", "x"), Fetched::new("a", "x")];
        let found = take_up("a", &in_flight, listed, [], held, |_| true);
        assert_eq!(found.len(), 1, "two entries, one held");
        assert_eq!(in_flight.held()[&b"x"[..]], 1, "the one found is held now");
    }

    #[test]
    fn known_jobs_not_found_are_let_go() {
        let in_flight = Arc::new(InFlight::default());
        let gone = in_flight.take(Fetched::new("a", "recovered elsewhere"));
        let held = held_by_others(&in_flight, [&gone]);
        assert!(take_up("a", &in_flight, Vec::new(), [gone], held, |_| true).is_empty());
        assert!(in_flight.held().is_empty());
    }
}

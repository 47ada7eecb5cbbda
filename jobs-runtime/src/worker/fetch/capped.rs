//! Capped queues, as the fetcher last saw them.
//!
//! A queue is capped while `jobs:cap:queue:<name>` holds a number (see [`crate::cap`]). Every
//! fetch round says which of this worker's queues are capped and how much room each has left,
//! at no extra round trip ([`super::round`]), and the fetcher keeps the newest answer here. The
//! idle wait takes no job from a queue that is full (no `BLMOVE` on it), and while one is, it
//! waits at most [`CAPPED_WAIT`], so that room freed by another process is seen within that.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::round::Capped;

/// The longest idle wait while one of the worker's queues is capped and full: room freed
/// anywhere is seen within this, with one fetch round per wait (no busy loop).
pub(crate) const CAPPED_WAIT: Duration = Duration::from_secs(1);

/// This worker's capped queues, from the newest fetch round.
#[derive(Debug, Default)]
pub(crate) struct CappedQueues {
    /// Each capped queue's room left and jobs waiting, by name, as the newest round found it.
    room: HashMap<String, (u64, u64)>,
    /// When the newest round was sent; `None` before the first.
    seen_at: Option<Instant>,
}

impl CappedQueues {
    /// Nothing known yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Keeps what a round sent at `asked_at` found, unless a newer round is already kept.
    pub(crate) fn record(&mut self, asked_at: Instant, capped: Vec<Capped>) {
        if self.seen_at.is_some_and(|seen| seen > asked_at) {
            return;
        }
        self.room = capped
            .into_iter()
            .map(|capped| (capped.queue, (capped.room, capped.waiting)))
            .collect();
        self.seen_at = Some(asked_at);
    }

    /// Keeps what a round sent at `asked_at` that asked about `asked` alone (a round's first
    /// look) found of them, unless a round that asked about all of them was sent
    /// later (a refill may land after it); the others keep what earlier rounds found.
    pub(crate) fn record_some<'a>(
        &mut self,
        asked_at: Instant,
        asked: impl IntoIterator<Item = &'a str>,
        capped: Vec<Capped>,
    ) {
        if self.seen_at.is_some_and(|seen| seen > asked_at) {
            return;
        }
        for name in asked {
            self.room.remove(name);
        }
        self.room.extend(
            capped
                .into_iter()
                .map(|capped| (capped.queue, (capped.room, capped.waiting))),
        );
    }

    /// Whether the newest round found `queue` capped with no room left and jobs waiting in it
    /// for room. A queue with no room and no job is not full: nothing waits, so a drain may end
    /// and an idle wait is not cut short for it; a `BLMOVE` on it hands back what it brings
    /// while there is no room (`scripts/cap_claim.lua`).
    pub(crate) fn is_full(&self, queue: &str) -> bool {
        self.room
            .get(queue)
            .is_some_and(|&(room, waiting)| room == 0 && waiting > 0)
    }

    /// Whether the newest round found `queue` capped (whatever its room).
    pub(crate) fn is_capped(&self, queue: &str) -> bool {
        self.room.contains_key(queue)
    }

    /// Whether the newest rounds found any queue capped.
    pub(crate) fn any(&self) -> bool {
        !self.room.is_empty()
    }

    /// The queues of `names` that are not full, in their order.
    pub(crate) fn with_room(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|name| !self.is_full(name))
            .cloned()
            .collect()
    }

    /// Whether any queue of `names` is full: its jobs may be waiting for room.
    pub(crate) fn any_full(&self, names: &[String]) -> bool {
        names.iter().any(|name| self.is_full(name))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::super::round::Capped;
    use super::CappedQueues;

    fn capped(queue: &str, room: u64) -> Capped {
        Capped {
            queue: queue.to_owned(),
            cap: 2,
            room,
            waiting: 3,
        }
    }

    #[test]
    fn a_round_that_asked_about_some_queues_changes_only_theirs() {
        let capped = |queue: &str, room, waiting| Capped {
            queue: queue.to_owned(),
            cap: 5,
            room,
            waiting,
        };
        let mut queues = CappedQueues::new();
        let first = Instant::now();
        queues.record(first, vec![capped("a", 0, 3), capped("b", 0, 3)]);
        assert!(queues.any());
        // Asked about b and c: b has room now, c is full; a, not asked, stays full.
        let later = first + Duration::from_millis(1);
        queues.record_some(
            later,
            ["b", "c"],
            vec![capped("b", 2, 3), capped("c", 0, 1)],
        );
        assert!(queues.is_full("a") && !queues.is_full("b") && queues.is_full("c"));
        // b's cap was removed: a round that asked about it and found no cap forgets it.
        queues.record_some(later, ["b"], vec![]);
        assert!(!queues.is_full("b") && queues.is_full("a"));
        // A round that asked about every queue, then a first look sent before it landing late
        // (a refill): the later full round's answer stands.
        queues.record(later + Duration::from_millis(2), vec![]);
        assert!(!queues.any());
        queues.record_some(
            later + Duration::from_millis(1),
            ["a"],
            vec![capped("a", 0, 3)],
        );
        assert!(!queues.is_full("a") && !queues.any());
    }

    #[test]
    fn a_queue_with_no_room_and_no_job_waiting_is_not_full() {
        let names: Vec<String> = ["a", "b"].iter().map(|n| (*n).to_owned()).collect();
        let mut caps = CappedQueues::new();
        let empty = Capped {
            waiting: 0,
            ..capped("a", 0)
        };
        caps.record(Instant::now(), vec![empty, capped("b", 1)]);
        assert!(!caps.is_full("a") && caps.is_capped("a"));
        assert!(!caps.any_full(&names), "a drain of empty queues ends");
        assert_eq!(caps.with_room(&names), ["a", "b"]);
    }

    #[test]
    fn a_full_queue_is_not_waited_on_and_the_newest_round_wins() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|n| (*n).to_owned()).collect();
        let mut caps = CappedQueues::new();
        assert!(!caps.any_full(&names));
        let first = Instant::now();
        caps.record(first, vec![capped("a", 0), capped("b", 1)]);
        assert!(caps.is_full("a") && !caps.is_full("b") && !caps.is_full("c"));
        assert_eq!(caps.with_room(&names), ["b", "c"]);
        assert!(caps.any_full(&names));
        // An older round landing late changes nothing; a newer one without caps clears them.
        caps.record(first - Duration::from_millis(1), Vec::new());
        assert!(caps.is_full("a"));
        caps.record(first + Duration::from_millis(1), Vec::new());
        assert!(!caps.any_full(&names));
    }
}

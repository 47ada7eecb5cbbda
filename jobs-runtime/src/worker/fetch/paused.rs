//! Paused queues, as the fetcher last saw them.
//!
//! A queue is paused while its name is in the `paused` set (Sidekiq Pro's). Every fetch round
//! says which of the queues it asked about are paused, at no extra round trip
//! ([`super::round`]), and the fetcher keeps the newest answer here: every queue's from a round
//! that asked about all of them, and from a round's first look (`look`) its
//! queues' alone, which does not make the answer fresher (a stale answer makes the next round
//! ask about all of them). A job taken ahead of the free slots starts
//! only while that answer is at most [`FRESH_FOR`] old and does not name its queue; an older
//! answer is refreshed by a round first (one that asks for no job when no slot lacks one), so a
//! pause stops a worker within a round, and a second at most. A job an idle `BLMOVE` brings
//! comes with its queue's state right after the move (see [`super::idle`]).

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

/// How old the last answer may be when a job taken earlier starts.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);

/// How long a worker whose queues are all paused waits before it asks again (Sidekiq's 2 s):
/// no `BLMOVE`, one round per wait.
pub(crate) const ALL_PAUSED_WAIT: Duration = Duration::from_secs(2);

/// This worker's paused queues, from the newest fetch round.
#[derive(Debug)]
pub(crate) struct PausedQueues {
    /// The names the newest round found paused.
    names: HashSet<String>,
    /// When the newest round was sent; `None` before the first.
    seen_at: Option<Instant>,
}

impl PausedQueues {
    /// Nothing known yet: the first round must come before a job starts.
    pub(crate) fn new() -> Self {
        Self {
            names: HashSet::new(),
            seen_at: None,
        }
    }

    /// Keeps what a round sent at `asked_at` found paused, unless a newer round is already
    /// kept (a refill may land after a later round). Returns the queues newly paused.
    pub(crate) fn record(&mut self, asked_at: Instant, paused: HashSet<String>) -> Vec<String> {
        if self.seen_at.is_some_and(|seen| seen > asked_at) {
            return Vec::new();
        }
        let newly = paused.difference(&self.names).cloned().collect();
        self.names = paused;
        self.seen_at = Some(asked_at);
        newly
    }

    /// Keeps what a round sent at `asked_at` that asked about `asked` alone (a round's first
    /// look) found paused among them, unless a round that asked about all of them
    /// was sent later (a refill may land after it); the others keep what earlier rounds found,
    /// and the answer's age is still the newest full round's. Returns the queues newly paused.
    pub(crate) fn record_some<'a>(
        &mut self,
        asked_at: Instant,
        asked: impl IntoIterator<Item = &'a str>,
        paused: HashSet<String>,
    ) -> Vec<String> {
        if self.seen_at.is_some_and(|seen| seen > asked_at) {
            return Vec::new();
        }
        for name in asked {
            if !paused.contains(name) {
                self.names.remove(name);
            }
        }
        let newly = paused.difference(&self.names).cloned().collect();
        self.names.extend(paused);
        newly
    }

    /// Whether the newest round found `queue` paused.
    pub(crate) fn contains(&self, queue: &str) -> bool {
        self.names.contains(queue)
    }

    /// Whether a round must come before a job taken earlier starts: none came yet, or the
    /// newest is older than [`FRESH_FOR`].
    pub(crate) fn is_stale(&self) -> bool {
        self.seen_at.is_none_or(|seen| seen.elapsed() > FRESH_FOR)
    }

    /// The queues of `names` not known to be paused, in their order.
    pub(crate) fn unpaused(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|name| !self.names.contains(*name))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{FRESH_FOR, PausedQueues};

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn the_newest_round_wins_and_reports_what_it_newly_paused() {
        let mut paused = PausedQueues::new();
        assert!(paused.is_stale(), "no round yet");
        let first = Instant::now();
        assert_eq!(paused.record(first, set(&["a"])), ["a"]);
        assert!(paused.contains("a") && !paused.is_stale());
        let later = first + Duration::from_millis(5);
        assert_eq!(paused.record(later, set(&["a", "b"])), ["b"]);
        // An older round landing late changes nothing.
        assert!(paused.record(first, set(&[])).is_empty());
        assert!(paused.contains("b"));
        assert_eq!(paused.unpaused(&names(&["a", "c", "b"])), ["c"]);
        // Resumed: nothing newly paused, and the queue is taken from again.
        assert!(
            paused
                .record(later + Duration::from_millis(1), set(&[]))
                .is_empty()
        );
        assert_eq!(paused.unpaused(&names(&["a", "b"])), ["a", "b"]);
    }

    #[test]
    fn a_round_that_asked_about_some_queues_changes_only_theirs() {
        let mut paused = PausedQueues::new();
        let first = Instant::now().checked_sub(FRESH_FOR * 2).unwrap();
        paused.record(first, set(&["a", "b"]));
        // Asked about b and c: b resumed, c paused; a, not asked, stays paused.
        let second = first + Duration::from_millis(1);
        assert_eq!(paused.record_some(second, ["b", "c"], set(&["c"])), ["c"]);
        assert_eq!(paused.unpaused(&names(&["a", "b", "c", "d"])), ["b", "d"]);
        // Its answer is not about every queue: the newest full round's age still counts.
        assert!(paused.is_stale());
        // A full round finds d paused; a first look sent before it (a refill) landing late
        // does not resume d.
        let third = second + Duration::from_millis(2);
        assert_eq!(paused.record(third, set(&["d"])), ["d"]);
        let late = second + Duration::from_millis(1);
        assert!(paused.record_some(late, ["d"], set(&[])).is_empty());
        assert_eq!(
            paused.unpaused(&names(&["a", "b", "c", "d"])),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn an_answer_older_than_fresh_for_is_stale() {
        let mut paused = PausedQueues::new();
        let long_ago = Instant::now().checked_sub(FRESH_FOR * 2).unwrap();
        paused.record(long_ago, set(&[]));
        assert!(paused.is_stale());
        paused.record(Instant::now(), set(&[]));
        assert!(!paused.is_stale());
    }
}

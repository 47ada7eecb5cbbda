//! Limiters in memory, for the testing modes: the rules of `scripts/limit_acquire.lua` on the
//! mode's clock (the fake clock in fake mode), and limiters a test forces over their limit.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Answer, Kind, Limiter};

/// The limiters of one testing mode.
#[derive(Debug, Default)]
pub(crate) struct MemoryLimits {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each limiter's state, by name.
    limiters: HashMap<String, State>,
    /// Names every call of which is over limit, as the test said.
    forced: HashSet<String>,
}

/// One limiter's state.
#[derive(Debug)]
struct State {
    kind: Kind,
    /// Concurrent: lease id and when it runs out; window: call id and when it was made (ms).
    held: Vec<(String, f64)>,
    /// Bucket: the window the count is for, and the count.
    window: f64,
    used: u64,
    /// Leaky and points: the level and when it was last drained (ms).
    level: f64,
    at: f64,
}

impl MemoryLimits {
    /// Makes every call of the limiter `name` over its limit, until [`lift`](Self::lift).
    pub(crate) fn force(&self, name: &str) {
        self.inner().forced.insert(name.to_owned());
    }

    /// Ends [`force`](Self::force) for `name`.
    pub(crate) fn lift(&self, name: &str) {
        self.inner().forced.remove(name);
    }

    /// One attempt to take a slot, as `limit_acquire.lua` does, now by the mode's clock.
    pub(crate) fn acquire(&self, limiter: &Limiter, cost: u64, id: &str, left: Duration) -> Answer {
        let now = crate::testing::now().as_epoch_seconds() * 1_000.0;
        let mut inner = self.inner();
        if inner.forced.contains(&limiter.name) {
            return Answer::Over(None);
        }
        let state = inner
            .limiters
            .entry(limiter.name.clone())
            .or_insert_with(|| State::new(limiter.kind, now));
        if state.kind != limiter.kind {
            *state = State::new(limiter.kind, now);
        }
        let units = cost;
        #[allow(clippy::cast_precision_loss)]
        let (size, cost) = (limiter.size as f64, cost as f64);
        let interval = limiter.interval.as_secs_f64() * 1_000.0;
        let mut wait = None;
        let granted = match limiter.kind {
            Kind::Concurrent => {
                state.held.retain(|(_, until)| *until > now);
                let room = (state.held.len() as f64) < size;
                if room {
                    state.held.push((id.to_owned(), now + interval));
                }
                room
            }
            Kind::Window => {
                state.held.retain(|(_, at)| *at > now - interval);
                let room = (state.held.len() as f64) < size;
                if room {
                    state.held.push((id.to_owned(), now));
                } else if let Some((_, oldest)) = state.held.first() {
                    wait = Some(oldest + interval - now);
                }
                room
            }
            Kind::Bucket => {
                let window = (now / interval).floor();
                if state.window != window {
                    state.window = window;
                    state.used = 0;
                }
                #[allow(clippy::cast_precision_loss)]
                let room = state.used as f64 + cost <= size;
                if room {
                    state.used += units;
                } else {
                    wait = Some((window + 1.0) * interval - now);
                }
                room
            }
            Kind::Leaky | Kind::Points => {
                let level = (state.level - (now - state.at).max(0.0) * size / interval).max(0.0);
                state.at = now;
                let room = level + cost <= size;
                if room {
                    state.level = level + cost;
                } else {
                    state.level = level;
                    wait = Some(((level + cost - size) * interval / size).ceil());
                }
                room
            }
        };
        if granted {
            return Answer::Granted;
        }
        let wait = wait.map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1_000.0));
        match wait {
            Some(wait) if wait <= left => Answer::Wait(Some(wait)),
            None if !left.is_zero() => Answer::Wait(None),
            _ => Answer::Over(wait),
        }
    }

    /// Gives the concurrent lease `id` of `name` back.
    pub(crate) fn release(&self, name: &str, id: &str) {
        if let Some(state) = self.inner().limiters.get_mut(name) {
            state.held.retain(|(held, _)| held != id);
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn new(kind: Kind, now: f64) -> Self {
        Self {
            kind,
            held: Vec::new(),
            window: f64::NAN,
            used: 0,
            level: 0.0,
            at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Answer, MemoryLimits};
    use crate::limit::{Limiter, Per};

    #[test]
    fn concurrent_slots_are_held_until_given_back() {
        let limits = MemoryLimits::default();
        let stripe = Limiter::concurrent("stripe", 2);
        let none = Duration::ZERO;
        assert_eq!(limits.acquire(&stripe, 1, "a", none), Answer::Granted);
        assert_eq!(limits.acquire(&stripe, 1, "b", none), Answer::Granted);
        assert_eq!(limits.acquire(&stripe, 1, "c", none), Answer::Over(None));
        limits.release("stripe", "a");
        assert_eq!(limits.acquire(&stripe, 1, "c", none), Answer::Granted);
    }

    #[test]
    fn a_bucket_refuses_past_its_size_and_says_when_the_window_ends() {
        let limits = MemoryLimits::default();
        let bucket = Limiter::bucket("b", 2, Per::Day);
        let none = Duration::ZERO;
        assert_eq!(limits.acquire(&bucket, 1, "1", none), Answer::Granted);
        assert_eq!(limits.acquire(&bucket, 1, "2", none), Answer::Granted);
        match limits.acquire(&bucket, 1, "3", none) {
            Answer::Over(Some(wait)) => assert!(wait <= Duration::from_secs(86_400)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn points_spend_their_cost_and_forced_limiters_are_over() {
        let limits = MemoryLimits::default();
        let points = Limiter::points("p", 10, Duration::from_secs(3_600));
        let none = Duration::ZERO;
        assert_eq!(limits.acquire(&points, 7, "1", none), Answer::Granted);
        assert!(matches!(
            limits.acquire(&points, 7, "2", none),
            Answer::Over(Some(_))
        ));
        assert_eq!(limits.acquire(&points, 3, "3", none), Answer::Granted);
        limits.force("p");
        assert_eq!(limits.acquire(&points, 0, "4", none), Answer::Over(None));
        limits.lift("p");
        assert_eq!(limits.acquire(&points, 0, "4", none), Answer::Granted);
    }

    #[test]
    fn a_bucket_counts_a_calls_cost_as_the_script_does() {
        let limits = MemoryLimits::default();
        let bucket = Limiter::bucket("b", 3, Per::Day);
        let none = Duration::ZERO;
        assert_eq!(limits.acquire(&bucket, 2, "1", none), Answer::Granted);
        assert!(matches!(
            limits.acquire(&bucket, 2, "2", none),
            Answer::Over(Some(_))
        ));
    }

    #[test]
    fn a_clock_going_backwards_does_not_fill_a_leaky_bucket() {
        let limits = MemoryLimits::default();
        let leaky = Limiter::leaky("l", 3, Duration::from_secs(3));
        let none = Duration::ZERO;
        assert_eq!(limits.acquire(&leaky, 1, "1", none), Answer::Granted);
        // The last call a minute ahead of the clock now.
        limits.inner().limiters.get_mut("l").unwrap().at += 60_000.0;
        assert_eq!(limits.acquire(&leaky, 1, "2", none), Answer::Granted);
    }
}

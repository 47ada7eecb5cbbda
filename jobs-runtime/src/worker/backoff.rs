//! Waiting between attempts: the one exponential backoff of the worker, and the one way to
//! retry an idempotent Redis step until a deadline.
//!
//! A leaf: it imports nothing from the rest of the worker.

use std::time::Duration;

use crate::error::Error;

/// Delays that double from `first` up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// The delay [`next`](Self::next) gives next.
    delay: Duration,
    /// The longest delay.
    max: Duration,
}

impl Backoff {
    /// Waiting for Redis at start: 200 ms, doubling up to 5 s.
    pub(crate) const fn connecting() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// Retrying a step that settles a job: 50 ms, doubling up to 2 s.
    pub(crate) const fn settling() -> Self {
        Self::new(Duration::from_millis(50), Duration::from_secs(2))
    }

    /// Delays from `first`, doubling up to `max`.
    pub(crate) const fn new(first: Duration, max: Duration) -> Self {
        Self { delay: first, max }
    }

    /// The delay the next wait would take, without taking it.
    pub(crate) fn peek(&self) -> Duration {
        self.delay
    }

    /// The next delay; the one after is twice as long, up to the maximum.
    pub(crate) fn next(&mut self) -> Duration {
        let delay = self.delay;
        self.delay = (delay * 2).min(self.max);
        delay
    }
}

/// How long a step that settles a job keeps trying.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// Until it succeeds, however long Redis stays away or refuses: for a job this process
    /// holds, which stays held (never stranded untracked) until its step lands or shutdown
    /// hands it back.
    Done,
    /// Until this moment (at least once): shutdown's hand-back, another process's jobs.
    Deadline(tokio::time::Instant),
}

/// Runs an idempotent Redis step until it succeeds or `until` says to stop, waiting
/// [`Backoff::settling`] between attempts (up to 5 s apart when trying [`Until::Done`]);
/// `None` when it never succeeded. `what` names the step in the log ("cannot acknowledge the
/// job yet").
pub(crate) async fn persist<T, F, Fut>(what: &str, until: Until, step: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut backoff = match until {
        Until::Done => Backoff::new(Backoff::settling().peek(), Duration::from_secs(5)),
        Until::Deadline(_) => Backoff::settling(),
    };
    loop {
        let next = tokio::time::Instant::now() + backoff.peek();
        match step().await {
            Ok(done) => return Some(done),
            Err(error) if matches!(until, Until::Deadline(deadline) if next >= deadline) => {
                tracing::error!(
                    %error,
                    "cannot {what} the job; it stays in the working list for recovery"
                );
                return None;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot {what} the job yet; trying again");
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Backoff;

    #[test]
    fn doubles_up_to_the_maximum() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        let delays: Vec<u128> = (0..5).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1000, 1000]);
        assert_eq!(Backoff::connecting().next(), Duration::from_millis(200));
        assert_eq!(Backoff::settling().peek(), Duration::from_millis(50));
    }
}

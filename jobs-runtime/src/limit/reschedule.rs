//! A job over a limit: rescheduled with backoff rather than failed, as Sidekiq Enterprise does.

use std::time::Duration;

use rand::Rng;

use crate::error::Error;
use crate::job_error::JobError;

/// The payload key counting how many times a job was rescheduled over a limit (Sidekiq
/// Enterprise's).
pub(crate) const OVERRATED: &str = "overrated";

/// How a job whose limiter is over its limit is rescheduled: to the `schedule` set, after
/// `backoff × overrated` plus a random part up to `backoff` (Sidekiq Enterprise's
/// `300 × overrated + rand(300)` seconds by default), where `overrated` counts its reschedules
/// so far. That is not a failure: no retry is used, `stat:failed` is not counted,
/// `jobs:stat:overrated` is. After `times` reschedules (20 by default) the next one is an
/// ordinary failure, retried as any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reschedule {
    /// The most reschedules before an over-limit error fails the job.
    pub times: u32,
    /// The step of the linear backoff.
    pub backoff: Duration,
}

impl Default for Reschedule {
    fn default() -> Self {
        Self {
            times: 20,
            backoff: Duration::from_secs(300),
        }
    }
}

impl Reschedule {
    /// The delay before the reschedule of a job rescheduled `overrated` times before.
    pub(crate) fn delay(&self, overrated: u32, rng: &mut impl Rng) -> Duration {
        let random = self.backoff.mul_f64(rng.random::<f64>());
        self.backoff
            .saturating_mul(overrated)
            .saturating_add(random)
    }
}

/// The limiter's name and reschedule rule when `error` was made from an over-limit error
/// (looked for along its chain of causes).
pub(crate) fn over_limit_of(error: &JobError) -> Option<(&str, Reschedule)> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error.inner());
    while let Some(error) = cause {
        if let Some(Error::OverLimit {
            limiter,
            reschedule,
            ..
        }) = error.downcast_ref::<Error>()
        {
            return Some((limiter, *reschedule));
        }
        cause = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::{Reschedule, over_limit_of};
    use crate::error::Error;
    use crate::job_error::JobError;

    #[test]
    fn the_backoff_grows_linearly() {
        let rule = Reschedule::default();
        let mut rng = StdRng::seed_from_u64(3);
        let first = rule.delay(0, &mut rng);
        assert!(first < Duration::from_secs(300), "{first:?}");
        let third = rule.delay(2, &mut rng);
        assert!(
            (Duration::from_secs(600)..Duration::from_secs(900)).contains(&third),
            "{third:?}"
        );
    }

    #[test]
    fn an_over_limit_error_is_found_through_question_mark() {
        fn job() -> Result<(), JobError> {
            Err(Error::OverLimit {
                limiter: "stripe".to_owned(),
                limit: "3 at once".to_owned(),
                retry_after: None,
                reschedule: Reschedule::default(),
            })?;
            Ok(())
        }
        let error = job().unwrap_err();
        assert_eq!(over_limit_of(&error).map(|(name, _)| name), Some("stripe"));
        assert!(error.is_over_limit());
        assert!(!JobError::msg("x").is_over_limit());
    }
}

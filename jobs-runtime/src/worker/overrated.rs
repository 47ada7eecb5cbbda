//! A job that returned a limiter's over-limit error: rescheduled with backoff to the `schedule`
//! set, counting its reschedules in `overrated` (every other field of its text kept byte for
//! byte), up to its limiter's [`Reschedule::times`](crate::limit::Reschedule); after that, the
//! error is an ordinary failure.

use super::retry::describe_delay;
use super::settle::Outcome;
use super::shared::Shared;
use super::unit::{Fetched, RECOVERIES, UNSEEN_RECOVERIES};
use crate::job_error::JobError;
use crate::limit::{OVERRATED, over_limit_of};
use crate::payload::Payload;
use crate::raw_job::RawJob;
use crate::timestamp::Timestamp;

/// A reschedule decided on.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The limiter that was over its limit.
    limiter: String,
    /// The job's reschedules, this one included.
    overrated: u32,
    /// When it runs again.
    at: Timestamp,
}

/// The reschedule of `payload`, failed with `error`, when `error` is a limiter's over-limit
/// error and the job has reschedules left.
pub(crate) fn plan(payload: &Payload, error: &JobError) -> Option<Plan> {
    let (limiter, rule) = over_limit_of(error)?;
    let before = payload
        .extra
        .get(OVERRATED)
        .and_then(serde_json::Value::as_u64)
        .map_or(0, |count| u32::try_from(count).unwrap_or(u32::MAX));
    if before >= rule.times {
        return None;
    }
    let now = Timestamp::now();
    let delay = rule.delay(before, &mut rand::rng());
    Some(Plan {
        limiter: limiter.to_owned(),
        overrated: before + 1,
        at: Timestamp::from_epoch_seconds(now.as_epoch_seconds() + delay.as_secs_f64()),
    })
}

/// Moves the job to the `schedule` set as `plan` says, counts it (`jobs:stat:overrated`) and
/// logs it with the limiter's name.
pub(crate) async fn reschedule(shared: &Shared, fetched: &Fetched, plan: Plan) {
    // The worker parsed this very text into the payload, so it is a JSON object.
    let Ok(mut stored) = RawJob::parse(&fetched.json) else {
        return shared
            .settler
            .bury_invalid(fetched, "not a JSON object")
            .await;
    };
    // It ran to the end, so it did not kill its process: its recovery counts start over.
    for count in [RECOVERIES, UNSEEN_RECOVERIES] {
        stored.remove(count);
    }
    stored.set(OVERRATED, plan.overrated);
    let json = stored.to_json();
    tracing::info!(
        limiter = %plan.limiter,
        overrated = plan.overrated,
        next_attempt = %describe_delay(plan.at, Timestamp::now()),
        "over limit; rescheduled"
    );
    shared
        .settler
        .settle(
            fetched,
            Outcome::Reschedule {
                json: &json,
                at: plan.at,
            },
        )
        .await;
    shared.counters.record_overrated();
}

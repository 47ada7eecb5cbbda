//! Expiring jobs: a job declared with `expires_in` that has not started within that time of
//! being due is not run. It is dropped (Sidekiq Pro's semantics, not sent to the dead set),
//! counted in `jobs:stat:expired`, logged with its jid, and its unique lock is released.
//!
//! The push stamps the deadline into the payload (`jobs_expires_at`, epoch seconds): the time
//! the job is due (now, or its scheduled time) plus `expires_in`. The worker checks it when it
//! takes the job, before running it. A job that has started once is never dropped for its age:
//! a retry, a job recovered from a process that died, or one rescheduled over a limit, runs
//! whatever the time.

use std::time::Duration;

use crate::options::{check_period, period_json, period_of};
use crate::payload::Payload;
use crate::timestamp::Timestamp;

/// The payload key of the option, in seconds (Sidekiq Pro's).
pub(crate) const EXPIRES_IN: &str = "expires_in";

/// The payload key of the deadline, in epoch seconds (`jobs`'s own).
pub(crate) const EXPIRES_AT: &str = "jobs_expires_at";

/// Payload keys that say a job has started before: its failures' fields, the counts crash
/// recovery writes (`worker/unit.rs`), and its reschedules over a limit (`overrated`: a run
/// that met a limiter ran; the reschedule removes the recovery counts, as a failure does).
const STARTED_MARKS: [&str; 6] = [
    "retry_count",
    "failed_at",
    "error_class",
    "jobs_recoveries",
    "jobs_recovered_unseen",
    crate::limit::OVERRATED,
];

/// Writes `expires_in` into a payload being built.
pub(crate) fn set_option(payload: &mut Payload, period: Duration) -> Result<(), String> {
    check_period(EXPIRES_IN, period)?;
    payload
        .extra
        .insert(EXPIRES_IN.to_owned(), period_json(period));
    Ok(())
}

/// Stamps the deadline of a job due at `due` into `payload`, when it has an `expires_in`; the
/// error says what is wrong with the option.
pub(crate) fn stamp(payload: &mut Payload, due: Timestamp) -> Result<(), String> {
    let Some(value) = payload.extra.get(EXPIRES_IN) else {
        return Ok(());
    };
    let period = period_of(EXPIRES_IN, value)?;
    let deadline = due.as_epoch_seconds() + period.as_secs_f64();
    payload
        .extra
        .insert(EXPIRES_AT.to_owned(), serde_json::Value::from(deadline));
    Ok(())
}

/// Whether `payload` is past its deadline at the time `now` reads and has never started: then
/// it is dropped, not run. The clock is read only for a job with a deadline.
pub(crate) fn has_expired(payload: &Payload, now: impl FnOnce() -> Timestamp) -> bool {
    let Some(deadline) = payload
        .extra
        .get(EXPIRES_AT)
        .and_then(|value| value.as_f64())
    else {
        return false;
    };
    let started = payload.retry_count.is_some()
        || payload.failed_at.is_some()
        || payload.error_class.is_some()
        || STARTED_MARKS
            .iter()
            .any(|key| payload.extra.contains_key(*key));
    !started && now().as_epoch_seconds() > deadline
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{has_expired, set_option, stamp};
    use crate::payload::Payload;
    use crate::timestamp::Timestamp;

    fn at(seconds: f64) -> Timestamp {
        Timestamp::from_epoch_seconds(seconds)
    }

    #[test]
    fn a_job_expires_after_its_period_from_when_it_is_due() {
        let mut payload = Payload::new("Report", vec![]);
        set_option(&mut payload, Duration::from_secs(60)).unwrap();
        stamp(&mut payload, at(1_000.0)).unwrap();
        assert!(!has_expired(&payload, || at(1_059.0)));
        assert!(has_expired(&payload, || at(1_061.0)));
    }

    #[test]
    fn a_job_that_started_never_expires() {
        let mut payload = Payload::new("Report", vec![]);
        set_option(&mut payload, Duration::from_secs(60)).unwrap();
        stamp(&mut payload, at(1_000.0)).unwrap();
        let mut retried = payload.clone();
        retried.retry_count = Some(0);
        assert!(!has_expired(&retried, || at(5_000.0)));
        let mut recovered = payload.clone();
        recovered
            .extra
            .insert("jobs_recoveries".into(), serde_json::json!(1));
        assert!(!has_expired(&recovered, || at(5_000.0)));
        let mut overrated = payload.clone();
        overrated
            .extra
            .insert("overrated".into(), serde_json::json!(2));
        assert!(!has_expired(&overrated, || at(5_000.0)));
    }

    #[test]
    fn a_bad_period_is_refused() {
        let mut payload = Payload::new("Report", vec![]);
        assert!(set_option(&mut payload, Duration::ZERO).is_err());
        payload
            .extra
            .insert("expires_in".into(), serde_json::json!(-3));
        assert!(stamp(&mut payload, at(0.0)).is_err());
    }
}

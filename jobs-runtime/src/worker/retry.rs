//! What a failure does to a job: Sidekiq's retry rules, as pure functions.
//!
//! On failure the job gets Sidekiq's error fields (`error_message` cut at 10,000 characters,
//! `error_class`, `retry_count` 0 on the first failure, `failed_at` then `retried_at`, the
//! backtrace when asked), moves to its `retry_queue` if it has one, and then:
//!
//! - `retry: false`: dropped (not kept in the dead set);
//! - a [`RetryOverride`]: retried after the given delay, killed, or discarded;
//! - retries left (`retry_count < retry`, 25 for `true`; or within `retry_for` seconds of the
//!   first failure): retried after `count⁴ + 15 + rand(10)·(count + 1)` seconds;
//! - otherwise exhausted: the dead set, unless the job says `dead: false`.
//!
//! The fields are set twice: on the [`Payload`] the hooks see, and on the job's stored text
//! ([`RawJob`]), which is what goes to the retry or dead set, every other field as it was.

use std::time::Duration;

use rand::Rng;

use crate::backtrace;
use crate::job_error::{JobError, RetryOverride};
use crate::options::{Backtrace, Retry};
use crate::payload::Payload;
use crate::raw_job::RawJob;
use crate::timestamp::Timestamp;

/// The longest `error_message` stored, in characters.
pub(crate) const MAX_ERROR_MESSAGE: usize = 10_000;

/// What happens to a failed job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Back to the `retry` set, to run at this time.
    Retry { at: Timestamp },
    /// Retries ran out (or the job asked to be killed): the dead set, unless it says
    /// `dead: false` or the exhausted hook discards it.
    Exhausted { killed: bool },
    /// Dropped: `retry: false`, or the job asked to be discarded.
    Discard,
}

/// The worker-wide retry settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// What `retry: true` means (Sidekiq's `max_retries`, 25).
    pub(crate) max_retries: u32,
}

impl RetryPolicy {
    /// Records `error` on `payload` and on `stored` (the job's text as it was taken) and decides
    /// what happens to the job next.
    #[cfg(test)]
    pub(crate) fn on_failure(
        &self,
        payload: &mut Payload,
        stored: &mut RawJob,
        error: &JobError,
        now: Timestamp,
        rng: &mut impl Rng,
    ) -> Decision {
        self.on_failure_with(payload, stored, error, |_, _| None, now, rng)
    }

    /// [`on_failure`](Self::on_failure), with the job class's own answer to a failure
    /// (Sidekiq's `sidekiq_retry_in`: the new retry count and the error in), asked when the
    /// error carries no override of its own. A class answer that panics is logged, and the
    /// usual schedule applies, as Sidekiq does when the block raises.
    pub(crate) fn on_failure_with(
        &self,
        payload: &mut Payload,
        stored: &mut RawJob,
        error: &JobError,
        class_retry_in: impl FnOnce(u32, &JobError) -> Option<RetryOverride>,
        now: Timestamp,
        rng: &mut impl Rng,
    ) -> Decision {
        let retry = payload.retry.unwrap_or_default();
        if retry == Retry::Disabled {
            return Decision::Discard;
        }
        let count = record_error(payload, stored, error, now);
        let answer = error.retry_override().or_else(|| {
            let count = u32::try_from(count.max(0)).unwrap_or(u32::MAX);
            match crate::panic::catch_panic_now(|| class_retry_in(count, error)) {
                Ok(answer) => answer,
                Err(panic) => {
                    tracing::error!(error = %panic, "the job's retry_in panicked");
                    None
                }
            }
        });
        match answer {
            Some(RetryOverride::Discard) => return Decision::Discard,
            Some(RetryOverride::Kill) => return Decision::Exhausted { killed: true },
            _ => {}
        }
        if self.exhausted(payload, retry, count, now) {
            return Decision::Exhausted { killed: false };
        }
        let base = match answer {
            Some(RetryOverride::In(delay)) if !delay.is_zero() => delay.as_secs_f64(),
            _ => backoff_seconds(count),
        };
        let jitter = f64::from(rng.random_range(0..10_u32)) * (count as f64 + 1.0);
        Decision::Retry {
            at: Timestamp::from_epoch_seconds(now.as_epoch_seconds() + base + jitter),
        }
    }

    fn exhausted(&self, payload: &Payload, retry: Retry, count: i64, now: Timestamp) -> bool {
        if let Some(window) = payload.retry_for {
            let first = payload.failed_at.unwrap_or(now).as_epoch_seconds();
            return first + (window as f64) < now.as_epoch_seconds();
        }
        let max = match retry {
            Retry::Times(times) => times,
            Retry::Default | Retry::Disabled => self.max_retries,
        };
        count >= i64::from(max)
    }
}

/// Sidekiq's base delay before the next attempt: `count⁴ + 15` seconds.
pub(crate) fn backoff_seconds(count: i64) -> f64 {
    (count as f64).powi(4) + 15.0
}

/// The stored `retry_count` as Sidekiq's `if msg["retry_count"]` takes it: a number (of any
/// size, or a float such as `3.0`, by its whole part) means the job failed before, even the -1
/// a "Retry now" leaves; absent, or a value that is not a number, means this is its first
/// failure.
fn stored_retry_count(stored: &RawJob) -> Option<i64> {
    let text = stored.get("retry_count")?.get();
    match text.parse::<i64>() {
        Ok(count) => Some(count),
        // Beyond 64 bits, or a float: `as` saturates, and every limit is long passed.
        Err(_) => text.parse::<f64>().ok().map(|count| count as i64),
    }
}

/// Sidekiq's error fields, set on the payload and on the stored job; returns the new count.
fn record_error(
    payload: &mut Payload,
    stored: &mut RawJob,
    error: &JobError,
    now: Timestamp,
) -> i64 {
    if let Some(queue) = payload.retry_queue.clone() {
        stored.set("queue", &queue);
        payload.queue = queue;
    }
    let message = truncate(&error.to_string(), MAX_ERROR_MESSAGE);
    stored.set("error_message", &message);
    payload.error_message = Some(message);
    stored.set("error_class", error.class());
    payload.error_class = Some(error.class().to_owned());
    let count = match stored_retry_count(stored) {
        Some(count) => {
            stored.set("retried_at", now);
            payload.retried_at = Some(now);
            count.saturating_add(1)
        }
        None => {
            stored.set("failed_at", now);
            payload.failed_at = Some(now);
            0
        }
    };
    stored.set("retry_count", count);
    payload.retry_count = Some(u32::try_from(count.max(0)).unwrap_or(u32::MAX));
    let lines = match payload.backtrace.unwrap_or_default() {
        Backtrace::Off => None,
        Backtrace::All => Some(backtrace::lines_of(error.inner())),
        Backtrace::Lines(count) => {
            let mut lines = backtrace::lines_of(error.inner());
            lines.truncate(count as usize);
            Some(lines)
        }
    };
    if let Some(lines) = lines {
        let encoded = backtrace::encode(&lines);
        stored.set("error_backtrace", &encoded);
        payload.error_backtrace = Some(encoded);
    }
    count
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// When a retried job was last scheduled to run, for logs: `in 16s`.
pub(crate) fn describe_delay(at: Timestamp, now: Timestamp) -> String {
    let seconds = (at.as_epoch_seconds() - now.as_epoch_seconds()).max(0.0);
    format!("{:?}", Duration::from_secs(seconds.round() as u64))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::{Decision, MAX_ERROR_MESSAGE, RetryPolicy, backoff_seconds};
    use crate::job_error::JobError;
    use crate::options::{Backtrace, Retry};
    use crate::payload::Payload;
    use crate::raw_job::RawJob;
    use crate::timestamp::Timestamp;

    const POLICY: RetryPolicy = RetryPolicy { max_retries: 25 };

    fn now() -> Timestamp {
        Timestamp::from_epoch_seconds(1_800_000_000.0)
    }

    fn fail(payload: &mut Payload, error: &JobError) -> Decision {
        let mut stored = RawJob::parse(payload.to_json().unwrap()).unwrap();
        POLICY.on_failure(
            payload,
            &mut stored,
            error,
            now(),
            &mut StdRng::seed_from_u64(7),
        )
    }

    /// Fails the job stored as `json`; returns the decision and the text that is written back.
    fn fail_stored(json: &str) -> (Decision, Payload, String) {
        let mut payload = Payload::from_json(json).unwrap();
        let mut stored = RawJob::parse(json).unwrap();
        let decision = POLICY.on_failure(
            &mut payload,
            &mut stored,
            &JobError::msg("again"),
            now(),
            &mut StdRng::seed_from_u64(7),
        );
        (decision, payload, stored.to_json())
    }

    fn retry_delay(decision: &Decision) -> f64 {
        match decision {
            Decision::Retry { at } => at.as_epoch_seconds() - now().as_epoch_seconds(),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn the_first_failure_sets_failed_at_and_retry_count_zero() {
        let mut payload = Payload::new("A", vec![]);
        let decision = fail(&mut payload, &JobError::msg("boom"));
        assert_eq!(payload.retry_count, Some(0));
        assert_eq!(payload.failed_at, Some(now()));
        assert_eq!(payload.retried_at, None);
        assert_eq!(payload.error_message.as_deref(), Some("boom"));
        assert_eq!(
            payload.error_class.as_deref(),
            Some(crate::error_class::JOB_ERROR)
        );
        let delay = retry_delay(&decision);
        assert!((15.0..=24.0).contains(&delay), "{delay}");
    }

    #[test]
    fn later_failures_count_up_and_set_retried_at() {
        let mut payload = Payload::new("A", vec![]);
        payload.retry_count = Some(2);
        payload.failed_at = Some(Timestamp::from_epoch_seconds(1.0));
        let decision = fail(&mut payload, &JobError::msg("boom"));
        assert_eq!(payload.retry_count, Some(3));
        assert_eq!(payload.retried_at, Some(now()));
        assert_eq!(payload.failed_at, Some(Timestamp::from_epoch_seconds(1.0)));
        let delay = retry_delay(&decision);
        assert!((96.0..=96.0 + 9.0 * 4.0).contains(&delay), "{delay}");
    }

    #[test]
    fn backoff_follows_sidekiqs_formula() {
        let bases: Vec<f64> = (0..6).map(backoff_seconds).collect();
        assert_eq!(bases, [15.0, 16.0, 31.0, 96.0, 271.0, 640.0]);
    }

    #[test]
    fn retries_run_out_at_the_declared_count() {
        let mut payload = Payload::new("A", vec![]).retry(2);
        payload.retry_count = Some(1);
        assert_eq!(
            fail(&mut payload, &JobError::msg("x")),
            Decision::Exhausted { killed: false }
        );
        let mut fresh = Payload::new("A", vec![]).retry(true);
        fresh.retry_count = Some(24);
        assert_eq!(
            fail(&mut fresh, &JobError::msg("x")),
            Decision::Exhausted { killed: false }
        );
    }

    #[test]
    fn retry_zero_is_exhausted_on_the_first_failure() {
        let mut payload = Payload::new("A", vec![]).retry(0);
        assert_eq!(
            fail(&mut payload, &JobError::msg("x")),
            Decision::Exhausted { killed: false }
        );
        assert_eq!(payload.retry_count, Some(0));
    }

    #[test]
    fn retry_false_is_dropped_without_error_fields() {
        let mut payload = Payload::new("A", vec![]).retry(Retry::Disabled);
        assert_eq!(fail(&mut payload, &JobError::msg("x")), Decision::Discard);
        assert_eq!(payload.error_message, None);
    }

    #[test]
    fn overrides_set_the_delay_or_kill_or_discard() {
        let mut payload = Payload::new("A", vec![]);
        let decision = fail(
            &mut payload,
            &JobError::msg("x").retry_in(Duration::from_secs(600)),
        );
        let delay = retry_delay(&decision);
        assert!((600.0..610.0).contains(&delay), "{delay}");
        let mut payload = Payload::new("A", vec![]);
        assert_eq!(
            fail(&mut payload, &JobError::msg("x").kill()),
            Decision::Exhausted { killed: true }
        );
        let mut payload = Payload::new("A", vec![]);
        assert_eq!(
            fail(&mut payload, &JobError::msg("x").discard()),
            Decision::Discard
        );
    }

    #[test]
    fn retry_queue_moves_the_job() {
        let mut payload = Payload::new("A", vec![]).queue("default");
        payload.retry_queue = Some("slow".into());
        fail(&mut payload, &JobError::msg("x"));
        assert_eq!(payload.queue, "slow");
    }

    #[test]
    fn retry_for_is_a_time_window_from_the_first_failure() {
        let mut payload = Payload::new("A", vec![]);
        payload.retry_for = Some(3600);
        payload.retry_count = Some(40);
        payload.failed_at = Some(Timestamp::from_epoch_seconds(
            now().as_epoch_seconds() - 60.0,
        ));
        assert!(matches!(
            fail(&mut payload, &JobError::msg("x")),
            Decision::Retry { .. }
        ));
        payload.failed_at = Some(Timestamp::from_epoch_seconds(
            now().as_epoch_seconds() - 7200.0,
        ));
        assert_eq!(
            fail(&mut payload, &JobError::msg("x")),
            Decision::Exhausted { killed: false }
        );
    }

    #[test]
    fn a_negative_retry_count_keeps_failed_at_and_sets_retried_at() {
        // Sidekiq's "Retry now" leaves -1 on a job that failed once (`retry_count -= 1`).
        let (decision, payload, written) = fail_stored(
            r#"{"class":"A","args":[],"jid":"j","queue":"q","retry_count":-1,"failed_at":1.5}"#,
        );
        assert_eq!(
            written,
            r#"{"class":"A","args":[],"jid":"j","queue":"q","retry_count":0,"failed_at":1.5,"error_message":"again","error_class":"JobError","retried_at":1800000000.0}"#
        );
        assert_eq!(payload.retry_count, Some(0));
        assert_eq!(payload.failed_at, Some(Timestamp::from_epoch_seconds(1.5)));
        assert_eq!(payload.retried_at, Some(now()));
        let delay = retry_delay(&decision);
        assert!((15.0..=24.0).contains(&delay), "{delay}");
    }

    #[test]
    fn retry_now_does_not_restart_a_retry_for_window() {
        let two_hours_ago = now().as_epoch_seconds() - 7200.0;
        let (decision, _, _) = fail_stored(&format!(
            r#"{{"class":"A","args":[],"jid":"j","queue":"q","retry_for":3600,"retry_count":-1,"failed_at":{two_hours_ago:?}}}"#
        ));
        assert_eq!(decision, Decision::Exhausted { killed: false });
    }

    #[test]
    fn a_retry_count_beyond_u32_counts_on() {
        let (decision, payload, written) = fail_stored(
            r#"{"class":"A","args":[],"jid":"j","queue":"q","retry_count":5000000000,"failed_at":1.5}"#,
        );
        assert_eq!(decision, Decision::Exhausted { killed: false });
        assert!(
            written.contains(r#""retry_count":5000000001,"failed_at":1.5,"#),
            "{written}"
        );
        assert_eq!(payload.retry_count, Some(u32::MAX));
    }

    #[test]
    fn a_float_retry_count_counts_on_and_a_string_one_is_a_first_failure() {
        let (_, _, written) = fail_stored(
            r#"{"class":"A","args":[],"jid":"j","queue":"q","retry_count":3.0,"failed_at":1.5}"#,
        );
        assert!(
            written.contains(r#""retry_count":4,"failed_at":1.5,"#),
            "{written}"
        );
        let (_, _, written) =
            fail_stored(r#"{"class":"A","args":[],"jid":"j","queue":"q","retry_count":"3"}"#);
        assert!(written.contains(r#""retry_count":0,"#), "{written}");
        assert!(written.contains(r#""failed_at":1800000000.0"#), "{written}");
    }

    #[test]
    fn long_messages_are_cut_and_backtraces_stored_only_when_asked() {
        let mut payload = Payload::new("A", vec![]);
        fail(
            &mut payload,
            &JobError::msg("é".repeat(MAX_ERROR_MESSAGE + 5)),
        );
        assert_eq!(
            payload.error_message.unwrap().chars().count(),
            MAX_ERROR_MESSAGE
        );
        assert_eq!(payload.error_backtrace, None);

        let mut payload = Payload::new("A", vec![]);
        payload.backtrace = Some(Backtrace::All);
        let io = std::io::Error::other("disk full");
        fail(&mut payload, &JobError::from(io));
        let lines = crate::backtrace::decode(&payload.error_backtrace.unwrap()).unwrap();
        assert_eq!(lines, ["disk full"]);
    }
}

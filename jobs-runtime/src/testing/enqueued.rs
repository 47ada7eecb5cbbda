//! One job a fake push recorded.

use chrono::{DateTime, Utc};

use crate::jid::Jid;
use crate::job::{ArgsError, Job};
use crate::payload::Payload;
use crate::periodic::{PERIODIC_FIELD, TICK_FIELD};
use crate::timestamp::Timestamp;

/// A job pushed while [`fake`](super::fake) mode was on: its payload exactly as it would have
/// been written to Redis (after the JSON round trip, with its jid and times), and when it is
/// due if it was scheduled.
#[derive(Debug, Clone, PartialEq)]
pub struct EnqueuedJob {
    pub(super) payload: Payload,
    pub(super) at: Option<Timestamp>,
}

impl EnqueuedJob {
    /// The job JSON as it would have been pushed.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The job id `perform_async` returned.
    pub fn jid(&self) -> &Jid {
        &self.payload.jid
    }

    /// The wire name (Sidekiq's `class`): for an ActiveJob job, Rails's wrapper class; its own
    /// name is [`job_name`](Self::job_name).
    pub fn class(&self) -> &str {
        &self.payload.class
    }

    /// The name of the job it runs: its `class`, or for an ActiveJob job the class it wraps
    /// (see [`active_job::job_name`](crate::active_job::job_name)).
    pub fn job_name(&self) -> &str {
        crate::active_job::job_name(&self.payload)
    }

    /// The queue it was pushed to.
    pub fn queue(&self) -> &str {
        &self.payload.queue
    }

    /// When it is due, for a job pushed with `perform_in` or `perform_at` (on the fake clock);
    /// `None` for a job to run now.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        self.at.map(Timestamp::to_datetime)
    }

    /// The name of the periodic entry it was pushed for (`jobs_periodic`), if it was.
    pub fn periodic_entry(&self) -> Option<&str> {
        self.payload.extra.get(PERIODIC_FIELD)?.as_str()
    }

    /// The tick of the periodic entry it was pushed for (`jobs_tick`), if it was.
    pub fn tick(&self) -> Option<DateTime<Utc>> {
        let tick = self.payload.extra.get(TICK_FIELD)?;
        let tick: Timestamp = serde_json::from_value(tick.clone()).ok()?;
        Some(tick.to_datetime())
    }

    /// Whether this is a job of type `J`.
    pub fn is<J: Job>(&self) -> bool {
        self.job_name() == J::NAME
    }

    /// The call, decoded as job type `J` from the JSON arguments (an ActiveJob job's from its
    /// envelope), as a worker would.
    pub fn decode<J: Job>(&self) -> Result<J, ArgsError> {
        if !self.is::<J>() {
            return Err(ArgsError::new(format!(
                "the job is a `{}`, not a `{}`",
                self.job_name(),
                J::NAME
            )));
        }
        crate::active_job::job_args(&self.payload).and_then(J::decode_args)
    }

    /// Whether it is due at `now`.
    pub(super) fn is_due(&self, now: Timestamp) -> bool {
        self.at.is_none_or(|at| at <= now)
    }
}

//! Per-call options: `ScoreGeneration::set().queue("critical").perform_async(today)`.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Client, Pushed};
use crate::context::JobContext;
use crate::error::Error;
use crate::jid::Jid;
use crate::job::Job;
use crate::job_error::JobError;
use crate::options::{LogLevel, Retry, UniqueUntil};
use crate::panic::catch_panic;
use crate::payload::Payload;
use crate::state::JobState;
use crate::timestamp::Timestamp;

/// Options for one push of job type `J`, then the push itself: Sidekiq's `set(...)`.
///
/// Every `perform_*` method takes the job's arguments: the one argument itself for a
/// one-argument job (`perform_async(today)`), a tuple for several (`perform_async((user, day))`),
/// `()` for none, or the job value (`perform_async(ScoreGeneration { date })`).
///
/// ```no_run
/// # use jobs_runtime::{Job, Setter};
/// # async fn example<J: Job>(job: J) -> Result<(), jobs_runtime::Error> {
/// Setter::<J>::new()
///     .queue("critical")
///     .retry(3)
///     .wait(std::time::Duration::from_secs(60))
///     .perform_async(job)
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a setter does nothing until one of its perform methods is awaited"]
pub struct Setter<J> {
    client: Option<Client>,
    queue: Option<String>,
    retry: Option<Retry>,
    tags: Option<Vec<String>>,
    at: Option<Timestamp>,
    unique_for: Option<Duration>,
    unique_until: Option<UniqueUntil>,
    expires_in: Option<Duration>,
    log_level: Option<LogLevel>,
    extra: serde_json::Map<String, Value>,
    state: JobState,
    job: PhantomData<fn() -> J>,
}

impl<J: Job> Setter<J> {
    /// No overrides: the job's own options and the default client.
    pub fn new() -> Self {
        Self {
            client: None,
            queue: None,
            retry: None,
            tags: None,
            at: None,
            unique_for: None,
            unique_until: None,
            expires_in: None,
            log_level: None,
            extra: serde_json::Map::new(),
            state: JobState::new(),
            job: PhantomData,
        }
    }

    /// Pushes through `client` instead of the default one.
    pub fn client(mut self, client: &Client) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// Pushes to `queue` instead of the job's queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Retries `true` (25), `false` (never) or `n` times, instead of the job's setting.
    pub fn retry(mut self, retry: impl Into<Retry>) -> Self {
        self.retry = Some(retry.into());
        self
    }

    /// Tags the job with these instead of the job's tags.
    pub fn tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// Runs the job after `delay` (Sidekiq's `wait:`).
    pub fn wait(mut self, delay: Duration) -> Self {
        self.at = Some(in_from_now(delay));
        self
    }

    /// Runs the job at `time` (Sidekiq's `wait_until:`).
    pub fn wait_until(mut self, time: DateTime<Utc>) -> Self {
        self.at = Some(time.into());
        self
    }

    /// Makes this push unique for `period` (at least a second, at most a year), as
    /// `#[job(unique_for = …)]` does: refused as a duplicate while a job of the same class,
    /// queue and arguments holds the lock. See [`unique`](crate::unique).
    pub fn unique_for(mut self, period: Duration) -> Self {
        self.unique_for = Some(period);
        self
    }

    /// Releases this push's unique lock at `until` instead of the job's setting.
    pub fn unique_until(mut self, until: UniqueUntil) -> Self {
        self.unique_until = Some(until);
        self
    }

    /// Drops the job unrun if it has not started within `period` (at least a second, at most
    /// a year) of being due, as `#[job(expires_in = …)]` does.
    pub fn expires_in(mut self, period: Duration) -> Self {
        self.expires_in = Some(period);
        self
    }

    /// Sets this push's `log_level` instead of the job's, as `#[job(log_level = …)]` does:
    /// with [`LogLevel::Warn`] or [`LogLevel::Error`] the worker writes no `start` or `done`
    /// line for it.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = Some(level);
        self
    }

    /// Sets any key of the job JSON, as Sidekiq copies `set` options into it: a key `jobs`
    /// knows (`queue`, `retry`, …) must have its type, any other is copied as it is.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The shared state `perform_inline` hands to a job that takes `#[state]` parameters.
    pub fn state(mut self, state: JobState) -> Self {
        self.state = state;
        self
    }

    /// Pushes the job (to run at the time set with `wait`, if any); returns its jid, or for a
    /// unique job refused as a duplicate, the jid of the job holding the lock ([`Pushed`]).
    pub async fn perform_async(self, args: impl Into<J>) -> Result<Pushed, Error> {
        let job = args.into();
        let payload = self.payload(&job)?;
        let at = self.at;
        self.resolve_client()?.push_one(payload, at).await
    }

    /// Pushes the job to run after `delay`.
    pub async fn perform_in(self, delay: Duration, args: impl Into<J>) -> Result<Pushed, Error> {
        self.wait(delay).perform_async(args).await
    }

    /// Pushes the job to run at `time`; a time not in the future pushes it to run now.
    pub async fn perform_at(
        self,
        time: DateTime<Utc>,
        args: impl Into<J>,
    ) -> Result<Pushed, Error> {
        self.wait_until(time).perform_async(args).await
    }

    /// Pushes many jobs, 1,000 to a round trip; returns what became of each (a client
    /// middleware may stop some, which are left out).
    pub async fn perform_bulk(
        self,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<Pushed>, Error> {
        let payloads = jobs
            .into_iter()
            .map(|job| self.payload(&job))
            .collect::<Result<Vec<_>, _>>()?;
        self.resolve_client()?.push_many(payloads, self.at).await
    }

    /// Runs the job here and now, after the same client middleware and JSON round trip as a push,
    /// so an argument that does not survive JSON fails here rather than in a worker. Nothing is
    /// written to Redis. The job's `timeout` applies as in a worker: a run that outlasts it is
    /// cancelled and fails. A panic in the job becomes [`Error::Failed`].
    ///
    /// No server middleware runs: there is no worker here to hold any. To run a job through
    /// server middleware without a worker, use [`testing::inline`](crate::testing::inline)
    /// with its middleware.
    pub async fn perform_inline(self, args: impl Into<J>) -> Result<Jid, Error> {
        let job = args.into();
        let payload = self.payload(&job)?;
        let client = self.resolve_client()?;
        let prepared = client.prepare(payload, None, Timestamp::now()).await?;
        let payload = Payload::from_json(&prepared.json).map_err(|error| Error::Encode {
            class: J::NAME.to_owned(),
            reason: error.to_string(),
        })?;
        let context = JobContext::from_payload(&payload);
        let decoded = crate::active_job::job_args(&payload)
            .and_then(J::decode_args)
            .map_err(|error| Error::Decode {
                class: J::NAME.to_owned(),
                jid: prepared.jid.clone(),
                reason: error.to_string(),
            })?;
        let guarded = catch_panic(decoded.perform(context, &self.state));
        let result = match J::OPTIONS.timeout {
            None => guarded.await,
            Some(limit) => tokio::time::timeout(limit, guarded)
                .await
                .unwrap_or_else(|_| {
                    Err(JobError::msg(format!(
                        "{} ran longer than its timeout of {limit:?} and was cancelled",
                        J::NAME
                    ))
                    .with_class(crate::error_class::TIMEOUT))
                }),
        };
        match result {
            Ok(()) => Ok(prepared.jid),
            Err(error) => Err(Error::Failed {
                class: J::NAME.to_owned(),
                jid: prepared.jid,
                error,
            }),
        }
    }

    /// The payload for `job` with the job's options and these overrides; for an `active_job`
    /// job, wrapped as Rails's Sidekiq adapter pushes it, its envelope's `queue_name` the queue
    /// it is pushed to (its unique lock is over its arguments, not the envelope's ids).
    pub(crate) fn payload(&self, job: &J) -> Result<Payload, Error> {
        let args = job.encode_args().map_err(|error| Error::Encode {
            class: J::NAME.to_owned(),
            reason: error.to_string(),
        })?;
        let mut payload = Payload::with_options(J::NAME, args, &J::OPTIONS);
        if let Some(queue) = &self.queue {
            payload.queue.clone_from(queue);
        }
        if let Some(retry) = self.retry {
            payload.retry = Some(retry);
        }
        if let Some(tags) = &self.tags {
            payload.tags = Some(tags.clone());
        }
        if let Some(level) = self.log_level {
            payload
                .extra
                .insert(crate::payload::LOG_LEVEL.to_owned(), level.as_str().into());
        }
        for (key, value) in &self.extra {
            payload
                .set(key, value.clone())
                .map_err(|error| Error::InvalidJob {
                    class: J::NAME.to_owned(),
                    reason: format!("the option `{key}` does not fit: {error}"),
                })?;
        }
        self.once_and_on_time(job, &mut payload)
            .map_err(|reason| Error::InvalidJob {
                class: J::NAME.to_owned(),
                reason,
            })?;
        if J::OPTIONS.active_job {
            crate::active_job::envelope::wrap(&mut payload, crate::testing::now().to_datetime());
        }
        Ok(payload)
    }

    /// Writes the unique and expiry options (the job's, or this push's) into `payload`; the
    /// lock's digest is over the queue the job is pushed to and its arguments, or its
    /// `unique_key`.
    fn once_and_on_time(&self, job: &J, payload: &mut Payload) -> Result<(), String> {
        if let Some(period) = self.expires_in {
            crate::expiry::set_option(payload, period)?;
        }
        let until = self.unique_until.unwrap_or(J::OPTIONS.unique_until);
        let Some(period) = self.unique_for.or(J::OPTIONS.unique_for) else {
            if self.unique_until.is_some() {
                return Err("`unique_until` needs `unique_for`".to_owned());
            }
            return Ok(());
        };
        let key = match job.unique_key() {
            Some(key) => key.map_err(|error| format!("cannot encode its unique key: {error}"))?,
            None => Value::Array(payload.args.clone()),
        };
        crate::unique::set_options(payload, period, until, &key)
    }

    fn resolve_client(&self) -> Result<Client, Error> {
        match &self.client {
            Some(client) => Ok(client.clone()),
            None => Client::global(),
        }
    }

    /// What a push of `args` hands to its client, without pushing it: the payload with these
    /// options, the time set with `wait` (if any) and the client set with `client` (if any).
    /// For a push that another step writes (`jobs::outbox`).
    #[cfg(feature = "postgres")]
    pub(crate) fn into_push(
        self,
        args: impl Into<J>,
    ) -> Result<(Payload, Option<Timestamp>, Option<Client>), Error> {
        let payload = self.payload(&args.into())?;
        Ok((payload, self.at, self.client))
    }
}

impl<J: Job> Default for Setter<J> {
    fn default() -> Self {
        Self::new()
    }
}

impl<J> fmt::Debug for Setter<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setter")
            .field("job", &std::any::type_name::<J>())
            .field("client", &self.client)
            .field("queue", &self.queue)
            .field("retry", &self.retry)
            .field("tags", &self.tags)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

fn in_from_now(delay: Duration) -> Timestamp {
    Timestamp::from_epoch_seconds(crate::testing::now().as_epoch_seconds() + delay.as_secs_f64())
}

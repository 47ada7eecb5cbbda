//! Periodic jobs: a job pushed on a cron schedule, exactly once per tick, by whichever worker
//! process claims the tick first, with no leader.
//!
//! Three ways to declare one, all ending as a [`Periodic`] entry of the worker:
//! - `#[job(cron = "0 3 * * *")]` on a job without arguments: an entry named after the job's
//!   wire name, in every worker the job is linked into;
//! - [`Worker::periodic`](crate::Worker::periodic) (a job computed from the tick's time) and
//!   [`Worker::periodic_entry`](crate::Worker::periodic_entry) (any [`Periodic`]);
//! - the config file's `periodic:` section (a class and fixed arguments, for jobs of any
//!   language).
//!
//! How a tick is claimed and pushed in one atomic step, how definitions live in Redis, and what
//! happens after downtime and around daylight saving: `docs/periodic.md`.

mod definition;
mod ending;
mod file;
mod schedule;

use std::fmt;
use std::sync::Arc;

use chrono::DateTime;
use serde_json::Value;

pub use chrono_tz::Tz;
pub(crate) use definition::Entry;
pub(crate) use ending::{Ending, record_ending};
pub use file::FileEntry;
pub(crate) use file::read_section;
pub use schedule::Schedule;
pub(crate) use schedule::{parse_cron, parse_zone};

use crate::error::Error;
use crate::job::Job;
use crate::payload::Payload;

/// A time an entry's hash or a periodic script holds as epoch milliseconds, in text; `None`
/// when it is not one (or is 0, "never").
pub(crate) fn from_millis(text: &str) -> Option<DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    let millis: i64 = text.trim().parse().ok().filter(|ms| *ms > 0)?;
    chrono::Utc.timestamp_millis_opt(millis).single()
}

/// An RFC 3339 time, for the tests of the periodic modules.
#[cfg(test)]
pub(crate) fn utc(text: &str) -> DateTime<chrono::Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 time")
        .with_timezone(&chrono::Utc)
}

/// The payload key naming the periodic entry a job was pushed for.
pub const PERIODIC_FIELD: &str = "jobs_periodic";

/// The payload key holding the tick a periodic job was pushed for, in epoch seconds.
pub const TICK_FIELD: &str = "jobs_tick";

/// What an entry does after every worker was down across some of its ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CatchUp {
    /// Run once for the ticks missed (for the latest of them), then on schedule (`"one"`, the
    /// default): the nightly job still runs after a deploy that spanned 03:00.
    #[default]
    One,
    /// Skip the ticks missed and wait for the next (`"none"`).
    None,
}

impl CatchUp {
    /// The name used in config files and in Redis: `one` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::One => "one",
            Self::None => "none",
        }
    }

    /// Reads `one` or `none`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "one" => Some(Self::One),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// Makes the payload of one tick's job.
type MakePayload = Arc<dyn Fn(DateTime<Tz>) -> Result<Payload, Error> + Send + Sync>;

/// Where an entry's job comes from.
#[derive(Clone)]
enum JobSource {
    /// A job computed from the tick's time, of the class named.
    Computed {
        /// The job's wire name.
        class: &'static str,
        /// The job's default queue.
        queue: &'static str,
        /// Builds the job for a tick.
        make: MakePayload,
    },
    /// The same job every tick, or why it could not be encoded.
    Fixed(Box<Result<Payload, String>>),
}

/// One periodic entry: a name, a cron schedule, options, and the job it pushes.
///
/// ```
/// use jobs_runtime::periodic::{CatchUp, Periodic};
///
/// let entry = Periodic::class("nightly_scores", "0 3 * * *", "ScoreGeneration", vec![])
///     .queue("default")
///     .timezone("Europe/Berlin")
///     .catch_up(CatchUp::None);
/// assert_eq!(entry.name(), "nightly_scores");
/// ```
#[derive(Clone)]
pub struct Periodic {
    /// The entry's name, unique among the entries of one Redis.
    name: String,
    /// The cron expression, as written.
    cron: String,
    /// The IANA zone its times of day are in.
    timezone: String,
    /// The queue, if not the job's own.
    queue: Option<String>,
    /// What to do after downtime.
    catch_up: CatchUp,
    /// Whether it runs; a disabled entry is shown but never pushed.
    enabled: bool,
    /// The job it pushes.
    job: JobSource,
    /// Where it was declared, for errors: `Worker::periodic`, a config file, or a job.
    origin: String,
}

impl Periodic {
    /// An entry pushing the job `make` computes from each tick's time (in the entry's zone).
    pub fn new<J: Job>(
        name: impl Into<String>,
        cron: impl Into<String>,
        make: impl Fn(DateTime<Tz>) -> J + Send + Sync + 'static,
    ) -> Self {
        let make: MakePayload = Arc::new(move |tick| crate::client::payload_of(&make(tick)));
        Self::with_source(
            name,
            cron,
            JobSource::Computed {
                class: J::NAME,
                queue: J::OPTIONS.queue,
                make,
            },
        )
    }

    /// An entry pushing `job`, the same every tick.
    pub fn job<J: Job>(name: impl Into<String>, cron: impl Into<String>, job: J) -> Self {
        let payload = crate::client::payload_of(&job).map_err(|error| error.to_string());
        Self::with_source(name, cron, JobSource::Fixed(Box::new(payload)))
    }

    /// An entry pushing a job of `class` with `args`, for a job of any language (a Ruby class
    /// here is pushed for Ruby Sidekiq to run).
    pub fn class(
        name: impl Into<String>,
        cron: impl Into<String>,
        class: impl Into<String>,
        args: Vec<Value>,
    ) -> Self {
        let payload = Payload::new(class, args);
        Self::with_source(name, cron, JobSource::Fixed(Box::new(Ok(payload))))
    }

    /// An entry of `job`, with the defaults: UTC, the job's queue, catch up once, enabled.
    fn with_source(name: impl Into<String>, cron: impl Into<String>, job: JobSource) -> Self {
        Self {
            name: name.into(),
            cron: cron.into(),
            timezone: "UTC".to_owned(),
            queue: None,
            catch_up: CatchUp::One,
            enabled: true,
            job,
            origin: "Worker::periodic".to_owned(),
        }
    }

    /// Pushes to `queue` rather than the job's own.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Reads the schedule's times of day in `zone`, an IANA name (default `UTC`).
    pub fn timezone(mut self, zone: impl Into<String>) -> Self {
        self.timezone = zone.into();
        self
    }

    /// What to do after every worker was down across some ticks (default [`CatchUp::One`]).
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Whether the entry runs (default `true`); a disabled one is listed but never pushed.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// The entry's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Says where the entry was declared, for its errors (a config file's path, a job's name).
    pub(crate) fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// Checks the entry: its name, expression, zone and job. The error names the entry and
    /// where it was declared, and says what is wrong.
    pub(crate) fn validate(&self) -> Result<Entry, Error> {
        let fail = |reason: String| Error::Config {
            origin: format!("{} (periodic entry `{}`)", self.origin, self.name),
            reason,
        };
        if self.name.trim().is_empty() || self.name.chars().any(char::is_control) {
            return Err(fail(
                "the entry needs a name without control characters".to_owned(),
            ));
        }
        let schedule = Schedule::read(&self.cron, &self.timezone).map_err(fail)?;
        if schedule.next_after(chrono::Utc::now()).is_none() {
            return Err(fail(format!(
                "`{}` never falls due (a date that does not exist, such as 30 February)",
                schedule.expression()
            )));
        }
        let (class, queue, args, options, make) = match &self.job {
            JobSource::Computed { class, queue, make } => (
                (*class).to_owned(),
                (*queue).to_owned(),
                None,
                None,
                Arc::clone(make),
            ),
            JobSource::Fixed(fixed) => match fixed.as_ref() {
                Err(reason) => {
                    return Err(fail(format!("its job cannot be encoded: {reason}")));
                }
                Ok(payload) if payload.class.trim().is_empty() => {
                    return Err(fail("its job has no class".to_owned()));
                }
                Ok(payload) => {
                    // What every process builds alike: an ActiveJob job's envelope without
                    // the ids of this build's push, which each push renews.
                    let mut template = payload.clone();
                    if let Some(queue) = &self.queue {
                        template.queue.clone_from(queue);
                    }
                    crate::active_job::envelope::template(&mut template);
                    let args = Some(template.args.clone());
                    let make: MakePayload = Arc::new(move |_| {
                        let mut payload = template.clone();
                        payload.jid = crate::jid::Jid::generate();
                        Ok(payload)
                    });
                    (
                        payload.class.clone(),
                        payload.queue.clone(),
                        args,
                        Some(options_of(payload)),
                        make,
                    )
                }
            },
        };
        let queue = self.queue.clone().unwrap_or(queue);
        if queue.trim().is_empty() {
            return Err(fail("its queue name is empty".to_owned()));
        }
        Ok(Entry::new(
            self.name.clone(),
            schedule,
            class,
            queue,
            args,
            options,
            self.catch_up,
            self.enabled,
            make,
        ))
    }
}

/// A fixed job's fields beyond its class, arguments, jid and queue (`retry`, `tags` …), for
/// the shared definition: what "enqueue now" pushes with the job.
fn options_of(payload: &Payload) -> Value {
    let mut fields = match serde_json::to_value(payload) {
        Ok(Value::Object(fields)) => fields,
        _ => return Value::Null,
    };
    for own in ["class", "args", "jid", "queue", "created_at", "enqueued_at"] {
        fields.remove(own);
    }
    Value::Object(fields)
}

/// The entry `#[job(cron = "…")]` declares on `job`, if any: named after the job, pushing it
/// with no arguments and with the options the job declares, in UTC; an `active_job` job as
/// Rails pushes it (its envelope made a template by `validate`, renewed each tick).
pub(crate) fn of_job(job: &crate::registry::Registration) -> Option<Periodic> {
    let options = job.options();
    let cron = options.cron?;
    let mut payload = Payload::with_options(job.name(), Vec::new(), options);
    if options.active_job {
        crate::active_job::envelope::wrap(&mut payload, chrono::Utc::now());
    }
    Some(
        Periodic::with_source(job.name(), cron, JobSource::Fixed(Box::new(Ok(payload)))).origin(
            format!("#[job(cron)] on {} ({})", job.rust_type(), job.location()),
        ),
    )
}

/// Checks `entries` as a worker does at start: each one (see [`Periodic::validate`]), and that
/// no two share a name; the error names the entry and where each was declared.
pub(crate) fn check_all(entries: impl IntoIterator<Item = Periodic>) -> Result<Vec<Entry>, Error> {
    let mut checked: Vec<(Entry, String)> = Vec::new();
    for periodic in entries {
        let entry = periodic.validate()?;
        if let Some((_, first)) = checked.iter().find(|(known, _)| known.name == entry.name) {
            return Err(Error::Config {
                origin: periodic.origin.clone(),
                reason: format!(
                    "two periodic entries are named `{}` (the other from {first}); give one \
                     another name",
                    entry.name
                ),
            });
        }
        checked.push((entry, periodic.origin));
    }
    Ok(checked.into_iter().map(|(entry, _)| entry).collect())
}

impl fmt::Debug for Periodic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Periodic")
            .field("name", &self.name)
            .field("cron", &self.cron)
            .field("timezone", &self.timezone)
            .field("queue", &self.queue)
            .field("catch_up", &self.catch_up)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

//! The options a job type declares with `#[job(...)]`, and the values they take on the wire.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// How often a failed job is retried: Sidekiq's `retry` option.
///
/// On the wire it is `true`, `false` or an integer, exactly as Sidekiq writes it, and that is
/// what deserializing it accepts. A job read from Redis whose `retry` is any other value
/// (`"5"`, `5.0`) reads as [`Default`](Self::Default), as Sidekiq's Ruby takes a truthy value
/// that is not an Integer (see [`Payload`](crate::Payload)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// `true`: the worker's maximum, 25 unless configured otherwise.
    #[default]
    Default,
    /// An integer: at most this many retries; `0` sends the job to the dead set on its first
    /// failure.
    Times(u32),
    /// `false`: never retried, and not kept in the dead set either.
    Disabled,
}

impl From<bool> for Retry {
    fn from(enabled: bool) -> Self {
        if enabled {
            Self::Default
        } else {
            Self::Disabled
        }
    }
}

impl From<u32> for Retry {
    fn from(times: u32) -> Self {
        Self::Times(times)
    }
}

impl Serialize for Retry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Default => serializer.serialize_bool(true),
            Self::Times(times) => serializer.serialize_u32(times),
            Self::Disabled => serializer.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for Retry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RetryVisitor;

        impl Visitor<'_> for RetryVisitor {
            type Value = Retry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or a whole number of retries")
            }

            fn visit_bool<E: de::Error>(self, enabled: bool) -> Result<Retry, E> {
                Ok(Retry::from(enabled))
            }

            fn visit_u64<E: de::Error>(self, times: u64) -> Result<Retry, E> {
                Ok(Retry::Times(u32::try_from(times).unwrap_or(u32::MAX)))
            }

            // Ruby treats a negative count like 0: the first failure exhausts the job.
            fn visit_i64<E: de::Error>(self, times: i64) -> Result<Retry, E> {
                Ok(Retry::Times(
                    u32::try_from(times.max(0)).unwrap_or(u32::MAX),
                ))
            }
        }

        deserializer.deserialize_any(RetryVisitor)
    }
}

/// Whether a failure records the error's backtrace: Sidekiq's `backtrace` option.
///
/// On the wire it is `true` (every line) or an integer (the first N lines); it is left out when
/// off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backtrace {
    /// No backtrace is stored.
    #[default]
    Off,
    /// Every line is stored.
    All,
    /// At most this many lines are stored.
    Lines(u32),
}

impl Backtrace {
    /// `true` unless the backtrace is off.
    pub fn is_on(self) -> bool {
        self != Self::Off
    }
}

impl Serialize for Backtrace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Off => serializer.serialize_bool(false),
            Self::All => serializer.serialize_bool(true),
            Self::Lines(lines) => serializer.serialize_u32(lines),
        }
    }
}

impl<'de> Deserialize<'de> for Backtrace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BacktraceVisitor;

        impl Visitor<'_> for BacktraceVisitor {
            type Value = Backtrace;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or a number of lines")
            }

            fn visit_bool<E: de::Error>(self, on: bool) -> Result<Backtrace, E> {
                Ok(if on { Backtrace::All } else { Backtrace::Off })
            }

            fn visit_u64<E: de::Error>(self, lines: u64) -> Result<Backtrace, E> {
                Ok(Backtrace::Lines(u32::try_from(lines).unwrap_or(u32::MAX)))
            }

            fn visit_i64<E: de::Error>(self, lines: i64) -> Result<Backtrace, E> {
                Ok(Backtrace::Lines(u32::try_from(lines.max(0)).unwrap_or(0)))
            }
        }

        deserializer.deserialize_any(BacktraceVisitor)
    }
}

/// When a unique job's lock is released: Sidekiq Enterprise's `unique_until`.
///
/// Whatever it says, a job that dies, is discarded, expires, or is deleted or killed from the
/// dashboard releases its lock too, and the lock runs out after `unique_for` in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UniqueUntil {
    /// When the job succeeds (the default): a job waiting to retry still holds it.
    #[default]
    Success,
    /// When the job starts: a job like it can be pushed while it runs.
    Start,
}

impl UniqueUntil {
    /// Its name on the wire and in `#[job(unique_until = "…")]`: `success` or `start`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Start => "start",
        }
    }

    /// The setting named `name` (`success` or `start`), or `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "success" => Some(Self::Success),
            "start" => Some(Self::Start),
            _ => None,
        }
    }
}

/// The least severe level at which a job's own lines are logged: Sidekiq's per-job `log_level`.
///
/// On the wire it is the level's name, as Sidekiq writes it (`"warn"`). The worker writes a
/// job's `start` and `done` lines (level info) only when its `log_level` is `info` or below, so
/// `warn` or `error` quiets a frequent job; its failures are logged whatever the level. See
/// "Log lines" in `docs/worker.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `"debug"`: everything.
    Debug,
    /// `"info"`: the default.
    Info,
    /// `"warn"`: no `start` or `done` lines.
    Warn,
    /// `"error"`: no `start` or `done` lines.
    Error,
}

impl LogLevel {
    /// Its name on the wire and in `#[job(log_level = "…")]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    /// The level a payload's `log_level` names, read as Ruby's `Logger` reads it: a name in
    /// any case (`fatal` is taken for `error`), or a severity number (0 debug … 4 fatal).
    /// `None` for anything else, which the worker ignores.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        if let Some(severity) = value.as_u64() {
            return match severity {
                0 => Some(Self::Debug),
                1 => Some(Self::Info),
                2 => Some(Self::Warn),
                3 | 4 => Some(Self::Error),
                _ => None,
            };
        }
        match value.as_str()?.to_ascii_lowercase().as_str() {
            "debug" => Some(Self::Debug),
            "info" => Some(Self::Info),
            "warn" => Some(Self::Warn),
            "error" | "fatal" => Some(Self::Error),
            _ => None,
        }
    }
}

/// The longest a `unique_for` or an `expires_in` may be: a year. A longer one is taken for a
/// mistake (milliseconds written for seconds, say).
pub(crate) const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Checks a period option (`unique_for`, `expires_in`): at least a second, at most
/// [`MAX_PERIOD`]; the error says which and why.
pub(crate) fn check_period(key: &str, period: Duration) -> Result<(), String> {
    if period < Duration::from_secs(1) {
        Err(format!(
            "`{key}` must be at least 1 second, not {period:?}; leave it out to turn it off"
        ))
    } else if period > MAX_PERIOD {
        Err(format!(
            "`{key}` must be at most a year (31536000 seconds), not {} seconds",
            period.as_secs()
        ))
    } else {
        Ok(())
    }
}

/// A period option as a payload holds it: a number of seconds, checked by [`check_period`].
pub(crate) fn period_of(key: &str, value: &serde_json::Value) -> Result<Duration, String> {
    let seconds = value.as_f64().ok_or_else(|| {
        format!("`{key}` must be a number of seconds, like `{key}: 600`, not `{value}`")
    })?;
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(format!(
            "`{key}` must be a positive number of seconds, not `{value}`"
        ));
    }
    let period = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX);
    check_period(key, period)?;
    Ok(period)
}

/// A period as a payload stores it: whole seconds as an integer, else a float.
pub(crate) fn period_json(period: Duration) -> serde_json::Value {
    if period.subsec_nanos() == 0 {
        serde_json::Value::from(period.as_secs())
    } else {
        serde_json::Value::from(period.as_secs_f64())
    }
}

/// Everything `#[job(...)]` declares about a job type besides its name.
///
/// Built in const context by the macro; each `with_*` method returns a changed copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOptions {
    /// The queue jobs are pushed to (`queue`, default `"default"`).
    pub queue: &'static str,
    /// How often a failure is retried (`retry`, default `true` = 25).
    pub retry: Retry,
    /// Whether failures record a backtrace (`backtrace`, default off).
    pub backtrace: Backtrace,
    /// The queue retries go to instead of `queue` (`retry_queue`).
    pub retry_queue: Option<&'static str>,
    /// Whether an exhausted job is kept in the dead set (`dead`, default `true`).
    pub dead: bool,
    /// Tags shown by dashboards and logged with the job (`tags`).
    pub tags: &'static [&'static str],
    /// How long one run may take before the worker cancels it and counts a failure (`timeout`).
    pub timeout: Option<Duration>,
    /// A cron expression: every worker this job is linked into pushes it on that schedule,
    /// once per tick (`cron`; see [`periodic`](crate::periodic)). Only for jobs without
    /// arguments.
    pub cron: Option<&'static str>,
    /// How long a job holds its unique lock at most (`unique_for`): while it holds it, a push of
    /// the same class, queue and arguments is refused as a duplicate (see [`unique`](crate::unique)).
    pub unique_for: Option<Duration>,
    /// When the unique lock is released (`unique_until`, default on success).
    pub unique_until: UniqueUntil,
    /// How long after it is due a job that has not started is dropped rather than run
    /// (`expires_in`; see `docs/unique-jobs.md`).
    pub expires_in: Option<Duration>,
    /// The least severe level logged for the job (`log_level`; see [`LogLevel`]).
    pub log_level: Option<LogLevel>,
    /// A time-based retry window, Sidekiq 7.1's `retry_for` (`retry_for`, whole seconds): a
    /// failing job is retried until this long after its first failure, then it is exhausted,
    /// whatever `retry` says.
    pub retry_for: Option<Duration>,
    /// Whether the job is pushed as Rails's ActiveJob pushes it (`active_job`): wrapped in
    /// ActiveJob's envelope under Rails's Sidekiq adapter class, its arguments serialized as
    /// ActiveJob serializes them, so a Rails process runs it (`docs/active-job.md`).
    pub active_job: bool,
    /// A class cap (`concurrency`): at most this many jobs of the class run at once, across
    /// every process sharing the Redis; the jobs beyond it wait, parked, until a slot frees
    /// (`docs/limits.md`, "Class caps"). Never 0.
    pub concurrency: Option<u32>,
}

impl JobOptions {
    /// Sidekiq's defaults: queue `default`, 25 retries, no backtrace, kept when dead.
    pub const DEFAULT: Self = Self {
        queue: "default",
        retry: Retry::Default,
        backtrace: Backtrace::Off,
        retry_queue: None,
        dead: true,
        tags: &[],
        timeout: None,
        cron: None,
        unique_for: None,
        unique_until: UniqueUntil::Success,
        expires_in: None,
        log_level: None,
        retry_for: None,
        active_job: false,
        concurrency: None,
    };

    /// These options with a class cap: at most `cap` jobs of the class running at once, across
    /// every process (`concurrency`). A cap of 0 is refused when the worker starts.
    pub const fn with_concurrency(mut self, cap: u32) -> Self {
        self.concurrency = Some(cap);
        self
    }

    /// These options with another queue.
    pub const fn with_queue(mut self, queue: &'static str) -> Self {
        self.queue = queue;
        self
    }

    /// These options with another retry setting.
    pub const fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// These options with another backtrace setting.
    pub const fn with_backtrace(mut self, backtrace: Backtrace) -> Self {
        self.backtrace = backtrace;
        self
    }

    /// These options with retries sent to `queue`.
    pub const fn with_retry_queue(mut self, queue: &'static str) -> Self {
        self.retry_queue = Some(queue);
        self
    }

    /// These options with exhausted jobs kept in the dead set (`true`) or dropped (`false`).
    pub const fn with_dead(mut self, dead: bool) -> Self {
        self.dead = dead;
        self
    }

    /// These options with tags.
    pub const fn with_tags(mut self, tags: &'static [&'static str]) -> Self {
        self.tags = tags;
        self
    }

    /// These options with a time limit per run.
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// These options with a cron schedule (the job runs periodically, in UTC).
    pub const fn with_cron(mut self, cron: &'static str) -> Self {
        self.cron = Some(cron);
        self
    }

    /// These options with a unique lock held at most `period`.
    pub const fn with_unique_for(mut self, period: Duration) -> Self {
        self.unique_for = Some(period);
        self
    }

    /// These options with the unique lock released at `until`.
    pub const fn with_unique_until(mut self, until: UniqueUntil) -> Self {
        self.unique_until = until;
        self
    }

    /// These options with jobs dropped when they have not started within `period` of being due.
    pub const fn with_expires_in(mut self, period: Duration) -> Self {
        self.expires_in = Some(period);
        self
    }

    /// These options with failures retried until `window` after the first one (whole seconds;
    /// a fraction is dropped).
    pub const fn with_retry_for(mut self, window: Duration) -> Self {
        self.retry_for = Some(window);
        self
    }

    /// These options with jobs pushed as ActiveJob jobs, for Rails to run: the payload is
    /// wrapped in Rails's Sidekiq adapter wrapper and envelope (`docs/active-job.md`).
    ///
    /// Only the wrapping: `#[job(active_job)]` also serializes each argument as ActiveJob
    /// does (Dates, Times and records in their forms, hashes marked `_aj_symbol_keys`, reserved
    /// keys refused). On a hand-written `impl Job`, `encode_args`'s values become the
    /// envelope's `arguments` as they are, so it must write ActiveJob's forms itself.
    ///
    /// A Rust worker that reads the job's queue runs the Rust job rather than Rails: push such
    /// jobs to a queue only Rails's Sidekiq reads.
    pub const fn with_active_job(mut self) -> Self {
        self.active_job = true;
        self
    }

    /// These options with another log level for the job's lines.
    pub const fn with_log_level(mut self, level: LogLevel) -> Self {
        self.log_level = Some(level);
        self
    }
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::{Backtrace, LogLevel, Retry, check_period, period_of};

    #[test]
    fn a_period_is_a_second_to_a_year() {
        assert!(check_period("unique_for", Duration::from_secs(1)).is_ok());
        let zero = check_period("unique_for", Duration::ZERO).unwrap_err();
        assert!(
            zero.contains("`unique_for` must be at least 1 second"),
            "{zero}"
        );
        let long = check_period("expires_in", Duration::from_secs(400 * 86_400)).unwrap_err();
        assert!(long.contains("at most a year"), "{long}");
        assert_eq!(
            period_of("x", &json!(600)).unwrap(),
            Duration::from_secs(600)
        );
        assert!(period_of("x", &json!(-5)).unwrap_err().contains("positive"));
        assert!(
            period_of("x", &json!("600"))
                .unwrap_err()
                .contains("number of seconds")
        );
        assert!(
            period_of("x", &json!(1e300))
                .unwrap_err()
                .contains("at most a year")
        );
    }

    #[test]
    fn retry_reads_and_writes_sidekiq_values() {
        for (json, retry) in [
            ("true", Retry::Default),
            ("false", Retry::Disabled),
            ("3", Retry::Times(3)),
            ("0", Retry::Times(0)),
        ] {
            assert_eq!(serde_json::from_str::<Retry>(json).unwrap(), retry);
            assert_eq!(serde_json::to_string(&retry).unwrap(), json);
        }
        assert_eq!(
            serde_json::from_str::<Retry>("-1").unwrap(),
            Retry::Times(0)
        );
        assert!(serde_json::from_str::<Retry>("\"yes\"").is_err());
    }

    #[test]
    fn backtrace_reads_true_or_a_line_count() {
        assert_eq!(
            serde_json::from_str::<Backtrace>("true").unwrap(),
            Backtrace::All
        );
        assert_eq!(
            serde_json::from_str::<Backtrace>("20").unwrap(),
            Backtrace::Lines(20)
        );
        assert_eq!(
            serde_json::from_str::<Backtrace>("false").unwrap(),
            Backtrace::Off
        );
    }

    #[test]
    fn log_level_reads_ruby_names_and_severities() {
        assert_eq!(LogLevel::from_json(&json!("warn")), Some(LogLevel::Warn));
        assert_eq!(LogLevel::from_json(&json!("DEBUG")), Some(LogLevel::Debug));
        assert_eq!(LogLevel::from_json(&json!("fatal")), Some(LogLevel::Error));
        assert_eq!(LogLevel::from_json(&json!(2)), Some(LogLevel::Warn));
        assert_eq!(LogLevel::from_json(&json!("loud")), None);
        assert_eq!(LogLevel::from_json(&json!(9)), None);
        assert!(LogLevel::Warn > LogLevel::Info);
    }
}

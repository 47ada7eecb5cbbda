//! The one error type of `jobs`.

use crate::jid::Jid;
use crate::job_error::{BoxError, JobError};

/// Everything that can go wrong when pushing, reading or running jobs.
///
/// Messages say what to check. A failure *inside* a job is a [`JobError`], not an `Error`; it
/// reaches an `Error` only through [`Error::Failed`] when a job runs inline.
///
/// # Causes
///
/// Every variant says its cause in its message, and none returns it from
/// [`source`](std::error::Error::source), which is `None` throughout. The message is what gets
/// logged (`tracing::warn!(%error, …)`) and shown, so it must carry the cause ("…: connection
/// refused"); returning the cause from `source` as well would print it twice wherever the chain
/// is printed (anyhow's `{:#}`, eyre's reports, the worker's `error_backtrace`).
///
/// A cause from a dependency (the Redis driver, `serde_json`) is kept as its text, in a `reason`
/// field, so that those crates' versions are not part of this API. A cause from your own code is
/// kept as it is, in an `error` field: a client middleware's [`BoxError`] (downcast it to your
/// type) or a job's [`JobError`]; its own causes, if any, are reachable from there.
///
/// `Debug` shows the same message as `Display`, so a `main` returning `Result<(), jobs::Error>`
/// (or a boxed error) ends with a sentence a person can act on, cause included, not a struct
/// dump.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis could not be reached, or the connection broke and did not come back.
    #[error(
        "cannot reach Redis at {url}: {reason}; check that redis-server is running there and \
         that REDIS_URL (or the variable REDIS_PROVIDER names) points to it"
    )]
    Connect {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// What went wrong, in a few words ("connection refused", "timed out"), or the driver's
        /// message.
        reason: String,
    },

    /// The Redis server is too old for reliable fetch.
    #[error(
        "the Redis at {url} is version {version}, and jobs needs Redis 6.2 or newer (reliable \
         fetch moves jobs with LMOVE and BLMOVE); upgrade Redis"
    )]
    UnsupportedRedis {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The version the server reported.
        version: String,
    },

    /// A process embedded in another app was asked to stop; only that app can stop it.
    #[error(
        "process {identity} runs embedded in another app, which must stop it; quiet it instead"
    )]
    EmbeddedProcess {
        /// The process's identity.
        identity: String,
    },

    /// Redis answered a command with an error.
    #[error("Redis at {url} refused a command: {reason}")]
    Redis {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The driver's message, with the server's error code and text (`OOM …`, `WRONGTYPE …`).
        reason: String,
    },

    /// A Redis URL that cannot be used.
    #[error("invalid Redis URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// A namespace that cannot prefix keys.
    #[error(
        "the namespace `{namespace}` must be non-empty and without spaces (on a Redis Cluster, \
         without `{{` or `}}` too, as it becomes the keys' hash tag, and not `jobs`, the tag of \
         no namespace), like `shop`"
    )]
    InvalidNamespace {
        /// The namespace given.
        namespace: String,
    },

    /// `REDIS_PROVIDER` is set but does not lead to a URL.
    #[error("REDIS_PROVIDER is set to `{value}`, but {reason}")]
    RedisProvider {
        /// The value of `REDIS_PROVIDER` (a URL in it is shown without its password).
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A job's arguments could not be turned into JSON.
    #[error("cannot encode the arguments of {class} as JSON: {reason}")]
    Encode {
        /// The job's wire name.
        class: String,
        /// serde's message.
        reason: String,
    },

    /// A job's JSON arguments do not match its Rust argument types.
    #[error("cannot decode the arguments of {class} (jid {jid}): {reason}")]
    Decode {
        /// The job's wire name.
        class: String,
        /// The job's id.
        jid: Jid,
        /// Which argument, and what was wrong with it.
        reason: String,
    },

    /// A job's JSON is over the client's size limit; it was not pushed.
    #[error(
        "the {class} job is {size} bytes of JSON, over the limit of {limit} bytes; pass ids \
         rather than whole records, or raise the limit with Client::builder().max_payload_bytes(..)"
    )]
    PayloadTooLarge {
        /// The job's wire name.
        class: String,
        /// The JSON's size in bytes.
        size: usize,
        /// The client's limit in bytes.
        limit: usize,
    },

    /// A job that cannot be pushed as it is (an empty queue name, say).
    #[error("cannot push {class}: {reason}")]
    InvalidJob {
        /// The job's wire name.
        class: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A client middleware decided not to push this job.
    #[error("client middleware {middleware} stopped {class} (jid {jid}) before it was pushed")]
    Stopped {
        /// The job's wire name.
        class: String,
        /// The id the job would have had.
        jid: Jid,
        /// The middleware's Rust type.
        middleware: &'static str,
    },

    /// A client middleware failed.
    #[error("client middleware {middleware} failed on {class}: {error}")]
    Middleware {
        /// The job's wire name.
        class: String,
        /// The middleware's Rust type.
        middleware: &'static str,
        /// What the middleware returned.
        error: BoxError,
    },

    /// A job run inline (`perform_inline`) returned an error or panicked.
    #[error("{class} (jid {jid}) failed: {error}")]
    Failed {
        /// The job's wire name.
        class: String,
        /// The job's id.
        jid: Jid,
        /// What the job returned.
        error: JobError,
    },

    /// A worker setting that cannot be used, from a config file or the code.
    #[error("{origin}: {reason}")]
    Config {
        /// Where the setting came from: the config file's path.
        origin: String,
        /// What is wrong, naming the key and what is allowed.
        reason: String,
    },

    /// Command-line flags that cannot be used (or `--help`, through `Worker::from_args`).
    #[error("{message}")]
    Cli {
        /// clap's message, with usage.
        message: String,
    },

    /// A job asks for a `#[state]` type the worker was not given.
    #[error(
        "job {job} ({location}) takes a #[state] of type `{type_name}`, but the worker has none; \
         give it one with `.state(value)` on the Worker"
    )]
    MissingState {
        /// The job's wire name.
        job: String,
        /// The Rust type it asks for.
        type_name: String,
        /// Where the job is defined.
        location: String,
    },

    /// A periodic entry's job cannot be pushed from outside the worker that declares it: its
    /// arguments are computed from each tick, or its definition in Redis cannot be read.
    #[error("cannot enqueue the periodic entry `{name}` now: {reason}")]
    PeriodicEnqueue {
        /// The entry's name.
        name: String,
        /// Why, and what to do instead.
        reason: String,
    },

    /// PostgreSQL, where the outbox keeps the jobs of a transaction (`jobs::outbox`, feature
    /// `postgres`), could not be reached or refused a statement.
    #[error("cannot {action} in PostgreSQL: {reason}")]
    Postgres {
        /// What `jobs` was doing ("commit the transaction", "read the outbox").
        action: String,
        /// What went wrong, with what to do when it is known (a missing table names the
        /// migration), or the driver's message.
        reason: String,
    },

    /// A [`Limiter`](crate::Limiter) was over its limit and stayed so for its `wait_timeout`.
    /// Inside a job, `?` on it reschedules the job with backoff instead of failing it (see
    /// [`limit`](crate::limit)).
    #[error(
        "limiter `{limiter}` is over its limit ({limit}); inside a job, `?` on this error \
         reschedules the job with backoff, elsewhere try again later"
    )]
    OverLimit {
        /// The limiter's name.
        limiter: String,
        /// Its limit, in words (`3 at once`, `10 per second`).
        limit: String,
        /// When it may have room again, when it can tell (not for a concurrent limiter, whose
        /// holders may end at any time).
        retry_after: Option<std::time::Duration>,
        /// How a job that meets this error is rescheduled.
        reschedule: crate::limit::Reschedule,
    },

    /// A [`Limiter`](crate::Limiter) that cannot be used: a name or size it cannot take.
    #[error("cannot use the limiter `{name}`: {reason}")]
    InvalidLimiter {
        /// The limiter's name.
        name: String,
        /// What is wrong, and what is allowed.
        reason: String,
    },

    /// A global cap that cannot be set: a cap of 0, or a queue with no name (see
    /// [`Caps`](crate::api::Caps)).
    #[error("cannot cap the queue `{name}`: {reason}")]
    InvalidCap {
        /// The queue's name.
        name: String,
        /// What is wrong, and what to do instead.
        reason: String,
    },

    /// A batch could not be created, added to or read (`jobs::Batch`): the batch is gone, its
    /// success already fired, or its parent is.
    #[error("cannot {action} batch {bid}: {reason}")]
    Batch {
        /// What was asked: "add jobs to", "create", "read".
        action: &'static str,
        /// The batch's id.
        bid: String,
        /// What is wrong, and what to do instead.
        reason: String,
    },

    /// The worker itself failed (a bug: please report it).
    #[error("the worker failed: {reason}")]
    Worker {
        /// What failed.
        reason: String,
    },

    /// Fewer replicas acknowledged a push than `ClientBuilder::wait_replicas` asks for: the job
    /// is on the master, but a failover now could lose it.
    #[error(
        "the master at {url} took the write, but only {acknowledged} of the {wanted} replicas \
         wanted acknowledged it within {timeout:?}; it may be lost if the master fails now \
         (pushing again may run it twice); check the replicas' health and lag (INFO \
         replication)"
    )]
    NotReplicated {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The replicas wanted.
        wanted: u32,
        /// The replicas that acknowledged the write.
        acknowledged: u32,
        /// How long it waited for them.
        timeout: std::time::Duration,
    },

    /// Two job types linked into one binary share a wire name.
    #[error(
        "two jobs share the wire name `{name}`: {first} and {second}; give one of them another \
         name with #[job(name = \"...\")]"
    )]
    DuplicateJobName {
        /// The shared name.
        name: String,
        /// The first job type and where it is defined.
        first: String,
        /// The second job type and where it is defined.
        second: String,
    },

    /// A [`Workflow`](crate::Workflow) that cannot be pushed: no step, a step name used twice,
    /// a dependency on no step, or a cycle. Nothing was written.
    #[error("cannot push the workflow `{description}`: {reason}")]
    InvalidWorkflow {
        /// The workflow's description.
        description: String,
        /// What is wrong, naming the step, and what to change.
        reason: String,
    },
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// `true` when a client middleware stopped the job on purpose.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Stopped { .. })
    }

    /// `true` when a limiter was over its limit: this error is [`Error::OverLimit`], or a job
    /// run in a testing mode failed with one ([`Error::Failed`]).
    pub fn is_over_limit(&self) -> bool {
        match self {
            Self::OverLimit { .. } => true,
            Self::Failed { error, .. } => error.is_over_limit(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::Error;
    use crate::job_error::JobError;

    /// One error of each variant, with the text of its cause when it has one.
    fn every_variant() -> Vec<(Error, Option<&'static str>)> {
        let url = || "redis://cache:6379/0".to_owned();
        let class = || "ScoreGeneration".to_owned();
        let jid = || crate::Jid::from("93defb239a1a90d4dbb26c44");
        vec![
            (
                Error::Connect {
                    url: url(),
                    reason: "connection refused".to_owned(),
                },
                Some("connection refused"),
            ),
            (
                Error::UnsupportedRedis {
                    url: url(),
                    version: "6.0.16".to_owned(),
                },
                None,
            ),
            (
                Error::EmbeddedProcess {
                    identity: "web.1:4021:0b5a9d1c3e7f".to_owned(),
                },
                None,
            ),
            (
                Error::Redis {
                    url: url(),
                    reason: "OOM command not allowed when used memory > 'maxmemory'".to_owned(),
                },
                Some("OOM command not allowed when used memory > 'maxmemory'"),
            ),
            (
                Error::InvalidUrl {
                    url: "http://cache".to_owned(),
                    reason: "not a redis:// URL".to_owned(),
                },
                Some("not a redis:// URL"),
            ),
            (
                Error::InvalidNamespace {
                    namespace: "my shop".to_owned(),
                },
                None,
            ),
            (
                Error::RedisProvider {
                    value: "MISSING_URL".to_owned(),
                    reason: "no variable MISSING_URL is set".to_owned(),
                },
                Some("no variable MISSING_URL is set"),
            ),
            (
                Error::Encode {
                    class: class(),
                    reason: "key must be a string".to_owned(),
                },
                Some("key must be a string"),
            ),
            (
                Error::Decode {
                    class: class(),
                    jid: jid(),
                    reason: "argument `date`: premature end of input".to_owned(),
                },
                Some("argument `date`: premature end of input"),
            ),
            (
                Error::PayloadTooLarge {
                    class: class(),
                    size: 2_000_000,
                    limit: 1_000_000,
                },
                None,
            ),
            (
                Error::InvalidJob {
                    class: class(),
                    reason: "the queue name is empty".to_owned(),
                },
                Some("the queue name is empty"),
            ),
            (
                Error::Stopped {
                    class: class(),
                    jid: jid(),
                    middleware: "UniqueJobs",
                },
                None,
            ),
            (
                Error::Middleware {
                    class: class(),
                    middleware: "UniqueJobs",
                    error: "the lock is unavailable".into(),
                },
                Some("the lock is unavailable"),
            ),
            (
                Error::Failed {
                    class: class(),
                    jid: jid(),
                    error: JobError::msg("the score table is locked"),
                },
                Some("the score table is locked"),
            ),
            (
                Error::Config {
                    origin: "config/jobs.yml".to_owned(),
                    reason: "`concurrency` must be a number, like 10".to_owned(),
                },
                Some("`concurrency` must be a number, like 10"),
            ),
            (
                Error::Cli {
                    message: "unexpected argument '--concurency'".to_owned(),
                },
                Some("unexpected argument '--concurency'"),
            ),
            (
                Error::MissingState {
                    job: "MeasureConcurrency".to_owned(),
                    type_name: "app::Gauge".to_owned(),
                    location: "src/jobs.rs:12".to_owned(),
                },
                None,
            ),
            (
                Error::PeriodicEnqueue {
                    name: "nightly_scores".to_owned(),
                    reason: "its arguments are computed from each tick".to_owned(),
                },
                Some("its arguments are computed from each tick"),
            ),
            (
                Error::Postgres {
                    action: "commit the transaction".to_owned(),
                    reason: "connection refused".to_owned(),
                },
                Some("connection refused"),
            ),
            (
                Error::Worker {
                    reason: "the fetch task is gone".to_owned(),
                },
                Some("the fetch task is gone"),
            ),
            (
                Error::DuplicateJobName {
                    name: "Report".to_owned(),
                    first: "a::Report (src/a.rs:3)".to_owned(),
                    second: "b::Report (src/b.rs:9)".to_owned(),
                },
                None,
            ),
            (
                Error::OverLimit {
                    limiter: "stripe".to_owned(),
                    limit: "3 at once".to_owned(),
                    retry_after: None,
                    reschedule: crate::limit::Reschedule::default(),
                },
                None,
            ),
            (
                Error::InvalidLimiter {
                    name: "a b".to_owned(),
                    reason: "a name has no spaces".to_owned(),
                },
                Some("a name has no spaces"),
            ),
            (
                Error::InvalidCap {
                    name: "imports".to_owned(),
                    reason: "a cap must be 1 or more".to_owned(),
                },
                Some("a cap must be 1 or more"),
            ),
            (
                Error::NotReplicated {
                    url: url(),
                    wanted: 1,
                    acknowledged: 0,
                    timeout: std::time::Duration::from_millis(500),
                },
                None,
            ),
            (
                Error::Batch {
                    action: "add jobs to",
                    bid: "b-Zx_09azAZ1-2".to_owned(),
                    reason: "its success already fired; start a new batch".to_owned(),
                },
                Some("its success already fired; start a new batch"),
            ),
            (
                Error::InvalidWorkflow {
                    description: "nightly".to_owned(),
                    reason: "the step `b` depends on itself".to_owned(),
                },
                Some("the step `b` depends on itself"),
            ),
        ]
    }

    /// Which variant `error` is; a new variant fails to compile here until it is added to
    /// [`every_variant`] too.
    fn variant(error: &Error) -> usize {
        match error {
            Error::Connect { .. } => 0,
            Error::UnsupportedRedis { .. } => 1,
            Error::EmbeddedProcess { .. } => 2,
            Error::Redis { .. } => 3,
            Error::InvalidUrl { .. } => 4,
            Error::InvalidNamespace { .. } => 5,
            Error::RedisProvider { .. } => 6,
            Error::Encode { .. } => 7,
            Error::Decode { .. } => 8,
            Error::PayloadTooLarge { .. } => 9,
            Error::InvalidJob { .. } => 10,
            Error::Stopped { .. } => 11,
            Error::Middleware { .. } => 12,
            Error::Failed { .. } => 13,
            Error::Config { .. } => 14,
            Error::Cli { .. } => 15,
            Error::MissingState { .. } => 16,
            Error::Worker { .. } => 17,
            Error::DuplicateJobName { .. } => 18,
            Error::PeriodicEnqueue { .. } => 19,
            Error::Postgres { .. } => 20,
            Error::OverLimit { .. } => 21,
            Error::InvalidLimiter { .. } => 22,
            Error::InvalidCap { .. } => 23,
            Error::NotReplicated { .. } => 24,
            Error::Batch { .. } => 25,
            Error::InvalidWorkflow { .. } => 26,
        }
    }

    /// The message and every cause after it, as anyhow's `{:#}` prints them.
    fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(next) = cause {
            text.push_str(": ");
            text.push_str(&next.to_string());
            cause = next.source();
        }
        text
    }

    #[test]
    fn the_examples_cover_every_variant() {
        let covered: BTreeSet<usize> = every_variant()
            .iter()
            .map(|(error, _)| variant(error))
            .collect();
        assert_eq!(covered, (0..27).collect::<BTreeSet<_>>());
    }

    #[test]
    fn no_message_has_two_spaces_in_a_row() {
        for (error, _) in every_variant() {
            let message = error.to_string();
            assert!(!message.contains("  "), "{message:?}");
        }
    }

    #[test]
    fn a_cause_is_printed_once_with_the_whole_chain() {
        for (error, cause) in every_variant() {
            assert!(
                std::error::Error::source(&error).is_none(),
                "{error} returns a source; its message already says it"
            );
            let printed = with_causes(&error);
            if let Some(cause) = cause {
                assert_eq!(printed.matches(cause).count(), 1, "{printed}");
            }
        }
    }

    #[test]
    fn errors_cross_threads() {
        fn is_send_sync_static<T: Send + Sync + 'static>() {}
        is_send_sync_static::<Error>();
    }

    #[test]
    fn debug_reads_as_the_message_for_a_main_that_returns_it() {
        let error = Error::UnsupportedRedis {
            url: "redis://cache:6379/0".to_owned(),
            version: "6.0.16".to_owned(),
        };
        let boxed: Box<dyn std::error::Error> = Box::new(Error::UnsupportedRedis {
            url: "redis://cache:6379/0".to_owned(),
            version: "6.0.16".to_owned(),
        });
        assert_eq!(format!("{error:?}"), error.to_string());
        assert_eq!(format!("{boxed:?}"), error.to_string());
        assert!(
            error
                .to_string()
                .starts_with("the Redis at redis://cache:6379/0 is version 6.0.16")
        );
        for (error, _) in every_variant() {
            assert_eq!(format!("{error:?}"), error.to_string());
        }
    }
}

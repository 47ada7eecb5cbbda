//! The one error type of `jobs`.

use crate::jid::Jid;
use crate::job_error::JobError;

/// A boxed error from user code (a middleware), kept as the source of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong when pushing, reading or running jobs.
///
/// Messages say what to check. A failure *inside* a job is a [`JobError`], not an `Error`; it
/// reaches an `Error` only through [`Error::Failed`] when a job runs inline.
///
/// `Debug` shows the same message as `Display`, so a `main` returning `Result<(), jobs::Error>`
/// (or a boxed error) ends with a sentence a person can act on, not a struct dump.
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
        /// What went wrong, in a few words.
        reason: String,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
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
    #[error("Redis at {url} refused a command: {source}")]
    Redis {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The driver's error, with the server's message.
        #[source]
        source: redis::RedisError,
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
    #[error("the namespace `{namespace}` must be non-empty and without spaces, like `shop`")]
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
    #[error("cannot encode the arguments of {class} as JSON: {source}")]
    Encode {
        /// The job's wire name.
        class: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
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
    #[error("client middleware {middleware} failed on {class}")]
    Middleware {
        /// The job's wire name.
        class: String,
        /// The middleware's Rust type.
        middleware: &'static str,
        /// The middleware's error.
        #[source]
        source: BoxError,
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
        "job {job} ({location}) takes a #[state] of type `{type_name}`, but the worker has none;          give it one with `.state(value)` on the Worker"
    )]
    MissingState {
        /// The job's wire name.
        job: String,
        /// The Rust type it asks for.
        type_name: String,
        /// Where the job is defined.
        location: String,
    },

    /// The worker itself failed (a bug: please report it).
    #[error("the worker failed: {reason}")]
    Worker {
        /// What failed.
        reason: String,
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
}

#[cfg(test)]
mod tests {
    use super::Error;

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
    }
}

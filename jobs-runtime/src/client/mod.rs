//! The client: puts jobs into Redis in Sidekiq's format.

mod builder;
mod global;
mod middleware;
mod push;
mod pushed;
mod setter;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use builder::{ClientBuilder, DEFAULT_MAX_PAYLOAD_BYTES};
pub use middleware::{ClientMiddleware, Flow};
pub use pushed::Pushed;
pub use setter::Setter;

use crate::error::Error;
use crate::job::Job;
use crate::payload::Payload;
use crate::redis::Connection;
use crate::redis::keys::Keys;
use middleware::DynClientMiddleware;

/// The payload `perform_async` would push for `job`: its class, arguments and options.
pub(crate) fn payload_of<J: Job>(job: &J) -> Result<Payload, Error> {
    Setter::<J>::new().payload(job)
}

/// A handle to one Redis for pushing jobs; cheap to clone and share between tasks.
///
/// Most code never names a client: `ScoreGeneration::perform_async(today)` uses the process-wide
/// default, made on first use from `REDIS_URL` (see [`Client::global`]). Build one yourself for
/// a second Redis, a namespace, or middleware:
///
/// ```no_run
/// # async fn example() -> Result<(), jobs_runtime::Error> {
/// let client = jobs_runtime::Client::builder()
///     .url("redis://127.0.0.1:6379/3")
///     .namespace("shop")
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    /// What every clone shares.
    inner: Arc<Inner>,
}

/// What a client and its clones share.
struct Inner {
    /// The connection to Redis (shared with a copy made without middleware).
    redis: Arc<Connection>,
    /// The key names, for its namespace.
    keys: Keys,
    /// The client middleware, in the order they run.
    middleware: Vec<Arc<dyn DynClientMiddleware>>,
    /// The largest job JSON a push accepts.
    max_payload_bytes: usize,
}

impl Client {
    /// A builder for a client with its own URL, namespace, timeouts or middleware.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A client for the Redis the environment names: the variable `REDIS_PROVIDER` names, else
    /// `REDIS_URL`, else `redis://127.0.0.1:6379/0`. It connects on first use.
    pub fn from_env() -> Result<Self, Error> {
        ClientBuilder::new().build()
    }

    /// The process-wide default client that `perform_async` and friends use: the one last
    /// [installed](ClientBuilder::install), or else one made once from the environment as
    /// [`Client::from_env`] does.
    pub fn global() -> Result<Self, Error> {
        global::get()
    }

    /// The Redis URL, with any password replaced by `***`.
    pub fn url(&self) -> &str {
        self.inner.redis.url()
    }

    /// The namespace every key is prefixed with, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.inner.keys.namespace()
    }

    /// Pushes `job` to run as soon as a worker takes it; returns its jid (or, for a unique job
    /// whose lock another job holds, that job's: see [`Pushed`]).
    pub async fn perform_async<J: Job>(&self, job: J) -> Result<Pushed, Error> {
        Setter::<J>::new().client(self).perform_async(job).await
    }

    /// Pushes `job` to run after `delay`.
    pub async fn perform_in<J: Job>(&self, delay: Duration, job: J) -> Result<Pushed, Error> {
        Setter::<J>::new().client(self).perform_in(delay, job).await
    }

    /// Pushes `job` to run at `time`; a time not in the future pushes it to run now.
    pub async fn perform_at<J: Job>(&self, time: DateTime<Utc>, job: J) -> Result<Pushed, Error> {
        Setter::<J>::new().client(self).perform_at(time, job).await
    }

    /// Pushes many jobs of one type, 1,000 to a round trip; returns what became of each (a
    /// client middleware may stop some, which are left out).
    pub async fn perform_bulk<J: Job>(
        &self,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<Pushed>, Error> {
        Setter::<J>::new().client(self).perform_bulk(jobs).await
    }

    /// Pushes a job given as a payload (for a class Ruby defines, say): Sidekiq's
    /// `Sidekiq::Client.push`.
    ///
    /// ```no_run
    /// # async fn example(client: jobs_runtime::Client) -> Result<(), jobs_runtime::Error> {
    /// use jobs_runtime::Payload;
    /// let jid = client.push(Payload::new("HardJob", vec!["bob".into(), 5.into()])).await?;
    /// # Ok(()) }
    /// ```
    /// A payload carrying `unique_for` (set with [`Payload::set`]) is a unique job, its lock
    /// taken over its class, queue and arguments.
    pub async fn push(&self, payload: Payload) -> Result<Pushed, Error> {
        self.push_one(payload, None).await
    }

    /// Pushes a payload to run at `time`.
    pub async fn push_at(&self, time: DateTime<Utc>, payload: Payload) -> Result<Pushed, Error> {
        self.push_one(payload, Some(time.into())).await
    }

    /// Pushes many payloads, 1,000 to a round trip; returns what became of each (a client
    /// middleware may stop some, which are left out).
    pub async fn push_bulk(
        &self,
        payloads: impl IntoIterator<Item = Payload>,
    ) -> Result<Vec<Pushed>, Error> {
        self.push_many(payloads, None).await
    }
}

impl Client {
    /// The connection, for the worker.
    /// The same client (its connection shared) without its middleware: for a job whose
    /// middleware already ran, so it does not run twice.
    pub(crate) fn without_middleware(&self) -> Client {
        Client {
            inner: Arc::new(Inner {
                redis: Arc::clone(&self.inner.redis),
                keys: self.inner.keys.clone(),
                middleware: Vec::new(),
                max_payload_bytes: self.inner.max_payload_bytes,
            }),
        }
    }

    pub(crate) fn redis(&self) -> &Connection {
        &self.inner.redis
    }

    /// The key names, for the worker.
    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url())
            .field("namespace", &self.namespace())
            .field("middleware", &self.inner.middleware.len())
            .field("max_payload_bytes", &self.inner.max_payload_bytes)
            .finish()
    }
}

//! Building a client.

use std::sync::Arc;
use std::time::Duration;

use super::middleware::{ClientMiddleware, DynClientMiddleware};
use super::{Client, Inner, global};
use crate::error::Error;
use crate::redis::keys::Keys;
use crate::redis::{Connection, Replicas, Timeouts, cluster, sentinel, url};

/// The largest job JSON a client pushes unless told otherwise: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Configures a [`Client`]. Every setting has a default; `Client::builder().build()` is
/// [`Client::from_env`].
#[must_use]
pub struct ClientBuilder {
    /// The Redis URL, if set (else `REDIS_URL`, else the local default).
    url: Option<String>,
    /// The namespace every key is prefixed with, if any.
    namespace: Option<String>,
    /// How long to wait for Redis.
    timeouts: Timeouts,
    /// How many replicas must acknowledge a write (`wait_replicas`), if any.
    replicas: Option<Replicas>,
    /// The largest job JSON a push accepts.
    max_payload_bytes: usize,
    /// The client middleware, in the order they run.
    middleware: Vec<Arc<dyn DynClientMiddleware>>,
}

impl ClientBuilder {
    pub(super) fn new() -> Self {
        Self {
            url: None,
            namespace: None,
            timeouts: Timeouts {
                connect: Duration::from_secs(2),
                response: Duration::from_secs(5),
                reconnect_attempts: 2,
            },
            replicas: None,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            middleware: Vec::new(),
        }
    }

    /// The Redis to use: `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS
    /// (append `#insecure` to skip certificate checks), or, through Redis Sentinel,
    /// `redis+sentinel://[[user]:password@]host1[:port1][,host2[:port2]…]/<master-name>[/db]`
    /// (see `docs/sentinel.md`), or a Redis Cluster, `redis+cluster://[[user]:password@]host1[:port1][,host2…]`
    /// (see `docs/cluster.md`). Default: from the environment, as [`Client::from_env`].
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Uses the Redis Cluster these nodes (`host:port` each; the port defaults to 6379) belong
    /// to: the same as the URL `redis+cluster://host1:port1,host2:port2`, which to use for a
    /// password (see `docs/cluster.md`). Every key then carries the hash tag `{jobs}` (or
    /// `{<namespace>}`), so all of them live in one slot.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), jobs_runtime::Error> {
    /// let client = jobs_runtime::Client::builder()
    ///     .cluster(["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"])
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn cluster<S: Into<String>>(self, nodes: impl IntoIterator<Item = S>) -> Self {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        self.url(cluster::url_for(&nodes))
    }

    /// Uses the master that these sentinels (`host:port` each; the port defaults to 26379)
    /// know as `master`, and follows it through failovers: the same as the URL
    /// `redis+sentinel://host1:port1,host2:port2/<master>`, which to use for a password or a
    /// database other than 0.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), jobs_runtime::Error> {
    /// let client = jobs_runtime::Client::builder()
    ///     .sentinel(["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"], "mymaster")
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn sentinel<S: Into<String>>(
        self,
        sentinels: impl IntoIterator<Item = S>,
        master: impl AsRef<str>,
    ) -> Self {
        let sentinels: Vec<String> = sentinels.into_iter().map(Into::into).collect();
        self.url(sentinel::url_for(&sentinels, master.as_ref()))
    }

    /// Makes every push, and a worker's settling of every job, wait until `replicas` replicas
    /// hold it (Redis's `WAIT`, sent in the same round trip), for up to `timeout`: what was
    /// acknowledged then survives a failover. A push that fewer replicas acknowledged in time
    /// fails with [`Error::NotReplicated`] (the job is on the master, and may be lost if it
    /// fails now); a settle logs a warning (lost, it would run the job again, never lose it).
    /// Keep `timeout` below the response timeout (5 s by default). Off by default: its cost
    /// is in `BENCHMARKS.md`.
    pub fn wait_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = (replicas > 0).then_some(Replicas {
            count: replicas,
            timeout,
        });
        self
    }

    /// Prefixes every key with `<namespace>:`, so several apps can share one Redis database.
    /// Sidekiq 7+ has no namespaces: a Ruby process sees these jobs only through
    /// `redis-namespace` on Sidekiq 6.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How long one attempt to connect may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self
    }

    /// How long a reply may take before the command fails (default 5 s).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.response = timeout;
        self
    }

    /// How often a broken connection is reopened, with backoff, before a push fails (default 2).
    pub fn reconnect_attempts(mut self, attempts: usize) -> Self {
        self.timeouts.reconnect_attempts = attempts;
        self
    }

    /// Refuses, before it reaches Redis, any job whose JSON is larger (default 1 MiB).
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// Adds a middleware that runs before every push, after those added before it.
    pub fn middleware(mut self, middleware: impl ClientMiddleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// The client. It connects on first use, so this fails only for a bad URL or environment.
    pub fn build(self) -> Result<Client, Error> {
        let url = match self.url {
            Some(url) => url,
            None => url::url_from_env()?,
        };
        let on_cluster = cluster::is_cluster_url(&url);
        if let Some(namespace) = &self.namespace
            && (namespace.is_empty()
                || namespace.contains(char::is_whitespace)
                || (on_cluster && (namespace.contains(['{', '}']) || namespace == cluster::TAG)))
        {
            return Err(Error::InvalidNamespace {
                namespace: namespace.clone(),
            });
        }
        let keys = if on_cluster {
            Keys::cluster(self.namespace.as_deref())
        } else {
            Keys::new(self.namespace.as_deref())
        };
        Ok(Client {
            inner: Arc::new(Inner {
                redis: Arc::new(Connection::open(
                    &url,
                    self.timeouts,
                    self.replicas,
                    keys.prefix(),
                )?),
                keys,
                middleware: self.middleware,
                max_payload_bytes: self.max_payload_bytes,
            }),
        })
    }

    /// Builds the client and makes it the process-wide default that `perform_async` and friends
    /// use from then on.
    pub fn install(self) -> Result<Client, Error> {
        let client = self.build()?;
        global::set(client.clone());
        Ok(client)
    }
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url.as_deref().map(url::redact))
            .field("namespace", &self.namespace)
            .field("timeouts", &self.timeouts)
            .field("replicas", &self.replicas)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("middleware", &self.middleware.len())
            .finish()
    }
}

//! The connection to Redis: one multiplexed, self-reconnecting connection per client.
//!
//! Commands from every task share the one connection and are pipelined on it, so there is no
//! pool to size. The connection is opened on first use; a command that finds it broken is sent
//! once more after the reconnect, as Sidekiq's client does, and a second failure becomes an
//! [`Error::Connect`] that names the URL. A command whose reply timed out is not sent again
//! (Redis may have run it), except the scripts that check before they act.
//!
//! Through Redis Sentinel (`redis+sentinel://`, [`sentinel`]), the server is the master the
//! sentinels name: a command that finds it gone or demoted (`READONLY`) marks the connection
//! stale, and the next one (the resend included) asks the sentinels again. With
//! [`Replicas`] set, pushes and settles wait for replicas ([`replicas`]).
//!
//! Through Redis Cluster (`redis+cluster://`, [`cluster`]), every command goes to the master of
//! the one slot that holds `jobs`' keys, through the redis crate's cluster connection, which
//! follows the slot to a promoted replica after a failover ([`Link`]).

pub(crate) mod cluster;
mod hosts;
pub(crate) mod keys;
mod link;
pub(crate) mod replicas;
pub(crate) mod scripts;
pub(crate) mod sentinel;
pub(crate) mod url;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_routing::Route;
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisError, ScriptInvocation};

use crate::error::Error;
pub(crate) use link::Link;
pub(crate) use replicas::{Replicas, Shortfall};

/// How long to wait for Redis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// One attempt to open a connection.
    pub(crate) connect: Duration,
    /// One command's reply (never used for blocking commands).
    pub(crate) response: Duration,
    /// Reconnect attempts, with exponential backoff, before a command gives up.
    pub(crate) reconnect_attempts: usize,
}

/// A lazily opened, self-reconnecting connection to one Redis: the one a `redis://` URL names,
/// the master the sentinels of a `redis+sentinel://` URL name (see `docs/sentinel.md`), or the
/// cluster a `redis+cluster://` URL names (see `docs/cluster.md`).
pub(crate) struct Connection {
    /// How the server is found; held while a connection is opened, so that one task opens it
    /// (or asks the sentinels) while the others wait for it.
    finder: tokio::sync::Mutex<Finder>,
    /// Whether the server is found through sentinels.
    sentinel: bool,
    /// Whether the server is a cluster.
    cluster: bool,
    /// The connection in use, once opened.
    current: Mutex<Option<Arc<Current>>>,
    /// How long to wait for Redis.
    timeouts: Timeouts,
    /// How many replicas must acknowledge a write, if any.
    replicas: Option<Replicas>,
    /// The URL with its password redacted.
    url: String,
}

/// How the server is found.
enum Finder {
    /// At a fixed address.
    Direct(redis::Client),
    /// As the master the sentinels name.
    Sentinel(SentinelClient),
    /// Through a cluster, at the master of `route`'s slot.
    Cluster {
        /// The nodes and credentials.
        url: cluster::ClusterUrl,
        /// The slot of `jobs`' hash tag, where every command goes.
        route: Route,
        /// The keys' prefix, whose hash tag names that slot.
        prefix: String,
    },
}

/// Where connections of their own are opened.
#[derive(Clone)]
enum Source {
    /// One server.
    Server(redis::Client),
    /// A cluster: the shared connection is a cluster connection routed to `route`; a blocking
    /// one is a connection to the master of `prefix`'s slot alone.
    Cluster {
        /// The nodes and credentials.
        url: cluster::ClusterUrl,
        /// Where every command goes.
        route: Route,
        /// The keys' prefix, whose hash tag names that slot.
        prefix: String,
    },
}

/// An open connection to the server (the master, through sentinels).
struct Current {
    /// Where connections of their own (blocking ones) are opened.
    source: Source,
    /// The shared connection.
    link: Link,
    /// Set when a command found this server gone or no longer master: the next command asks
    /// the sentinels again.
    stale: AtomicBool,
}

impl Connection {
    /// Checks `url` without connecting. `prefix` is what every key starts with: through a
    /// cluster, every command goes to the master of its hash tag's slot.
    pub(crate) fn open(
        url: &str,
        timeouts: Timeouts,
        replicas: Option<Replicas>,
        prefix: &str,
    ) -> Result<Self, Error> {
        let redacted = url::redact(url);
        let invalid = |reason: String| Error::InvalidUrl {
            url: redacted.clone(),
            reason,
        };
        let (finder, sentinel) = if sentinel::is_sentinel_url(url) {
            let parsed = sentinel::parse(url).map_err(invalid)?;
            let client = sentinel::client(&parsed).map_err(|error| invalid(error.to_string()))?;
            (Finder::Sentinel(client), true)
        } else if cluster::is_cluster_url(url) {
            let parsed = cluster::parse(url).map_err(invalid)?;
            // Checked here, so that a bad URL fails at build, not at first use.
            cluster::client(&parsed, timeouts, timeouts.response)
                .map_err(|error| invalid(error.to_string()))?;
            let route = cluster::route(prefix);
            (
                Finder::Cluster {
                    url: parsed,
                    route,
                    prefix: prefix.to_owned(),
                },
                false,
            )
        } else {
            let client = redis::Client::open(url).map_err(|error| {
                invalid(match error.to_string() {
                    reason if reason.contains("TLS") => format!(
                        "{reason}; rediss:// URLs need the `tls` feature of jobs (on by default)"
                    ),
                    reason => reason,
                })
            })?;
            (Finder::Direct(client), false)
        };
        let cluster = matches!(finder, Finder::Cluster { .. });
        Ok(Self {
            finder: tokio::sync::Mutex::new(finder),
            sentinel,
            cluster,
            current: Mutex::new(None),
            timeouts,
            replicas,
            url: redacted,
        })
    }

    /// The URL, with any password redacted.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// How many replicas must acknowledge a write, if any.
    pub(crate) fn replicas(&self) -> Option<Replicas> {
        self.replicas
    }

    /// The shared connection, opened on first use.
    pub(crate) async fn link(&self) -> Result<Link, Error> {
        Ok(self.current().await?.link.clone())
    }

    /// The connection in use; opened on first use, and again (after asking the sentinels)
    /// once a command found the master gone or demoted.
    async fn current(&self) -> Result<Arc<Current>, Error> {
        if let Some(current) = self.usable() {
            return Ok(current);
        }
        let mut finder = self.finder.lock().await;
        // Another task may have opened it while this one waited.
        if let Some(current) = self.usable() {
            return Ok(current);
        }
        let client = match &mut *finder {
            Finder::Direct(client) => client.clone(),
            Finder::Sentinel(sentinels) => self.ask_sentinels(sentinels).await?,
            Finder::Cluster { url, route, prefix } => {
                let source = Source::Cluster {
                    url: url.clone(),
                    route: *route,
                    prefix: prefix.clone(),
                };
                let link = self.open_own(&source, self.timeouts.response).await?;
                let current = Arc::new(Current {
                    source,
                    link,
                    stale: AtomicBool::new(false),
                });
                *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(Arc::clone(&current));
                return Ok(current);
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(self.timeouts.response))
            .set_number_of_retries(self.timeouts.reconnect_attempts)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|error| self.error(error))?;
        if self.sentinel {
            tracing::info!(
                url = %self.url,
                master = %client.get_connection_info().addr(),
                "connected to the master the sentinels name"
            );
        }
        let current = Arc::new(Current {
            source: Source::Server(client),
            link: Link::Shared(manager),
            stale: AtomicBool::new(false),
        });
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&current));
        Ok(current)
    }

    /// The connection in use, unless there is none yet or it is stale.
    fn usable(&self) -> Option<Arc<Current>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|current| !current.stale.load(Ordering::Relaxed))
    }

    /// A client for the master the sentinels name now (they check it says it is master).
    async fn ask_sentinels(&self, sentinels: &mut SentinelClient) -> Result<redis::Client, Error> {
        let limit = self.timeouts.connect + self.timeouts.response;
        let no_master = |reason: String| Error::Connect {
            url: self.url.clone(),
            reason: format!(
                "no sentinel named a master that answers as master ({reason}); during a \
                 failover this lasts until the sentinels promote a replica"
            ),
        };
        match tokio::time::timeout(limit, sentinels.async_get_client()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => Err(no_master(describe(&error))),
            Err(_) => Err(no_master(format!("no answer within {limit:?}"))),
        }
    }

    /// Marks the connection in use stale after `error`, when it says the master is gone or was
    /// demoted; only through sentinels (a fixed address has nowhere else to go).
    fn note(&self, error: &RedisError) {
        if self.sentinel
            && needs_new_master(error)
            && let Some(current) = &*self.current.lock().unwrap_or_else(PoisonError::into_inner)
        {
            current.stale.store(true, Ordering::Relaxed);
        }
    }

    /// Sends `pipeline` in one round trip, once more if the connection had broken before it
    /// could be sent; not after a timeout, when Redis may have run it (a push or an `INCRBY`
    /// sent twice would apply twice), nor after a cluster's redirection, which may have come
    /// after some of its commands ran.
    pub(crate) async fn query<T: FromRedisValue>(&self, pipeline: &Pipeline) -> Result<T, Error> {
        self.retry_once(Resend::UnlessTimedOut, false, |mut connection| async move {
            pipeline.query_async(&mut connection).await
        })
        .await
    }

    /// Sends one command, once more if the connection had broken before it could be sent; not
    /// after a timeout (see [`query`](Self::query)).
    pub(crate) async fn command<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, Error> {
        self.retry_once(Resend::UnlessTimedOut, true, |mut connection| async move {
            command.query_async(&mut connection).await
        })
        .await
    }

    /// Runs a Lua script (loading it on `NOSCRIPT`) exactly once: for a script that must not
    /// run twice (a fetch: a second run would take more jobs while the first run's reply is
    /// lost). On any error the caller must assume it may have run.
    pub(crate) async fn script_once<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        let mut connection = self.link().await?;
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|error| self.error(error))
    }

    /// [`script_once`](Self::script_once) for a call built with [`evalsha`]: its keys and
    /// arguments written into the command's one buffer as they are given, where a
    /// [`ScriptInvocation`] keeps each in an allocation of its own and copies them all again to
    /// send them (a fetch for 1,000 queues passes 4,000).
    pub(crate) async fn evalsha_once<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        command: &Cmd,
    ) -> Result<T, Error> {
        let mut connection = self.link().await?;
        let reply = match command.query_async(&mut connection).await {
            Err(error)
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                // Nothing ran: loaded, then sent again, as the redis crate's own invocation does.
                match script.load_async(&mut connection).await {
                    Ok(_) => command.query_async(&mut connection).await,
                    Err(error) => Err(error),
                }
            }
            other => other,
        };
        reply.map_err(|error| self.error(error))
    }

    /// Runs a Lua script (loading it on `NOSCRIPT`), once more if the connection had broken.
    /// Only for scripts that are safe to repeat (settle and promote check before they move).
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        self.retry_once(
            Resend::OnAnyConnectionError,
            true,
            |mut connection| async move { invocation.invoke_async(&mut connection).await },
        )
        .await
    }

    /// Runs `send` on the shared connection; when the connection had broken, runs it once more
    /// on the reconnected one, as Sidekiq's client does. Through sentinels, "reconnected" means
    /// to the master they name now, and a `READONLY` or `NOREPLICAS` refusal (the master was
    /// demoted or lost its replicas; nothing ran) is sent once more too. Through a cluster, a
    /// single command or script that met a redirection (`MOVED`, `ASK`, `TRYAGAIN`,
    /// `CLUSTERDOWN`: nothing ran) is sent once more after a short pause, once the cluster
    /// connection has refreshed its slots (`redirectable`); the redis crate re-sends nothing
    /// itself (see [`cluster`]).
    async fn retry_once<T, F, Fut>(
        &self,
        resend: Resend,
        redirectable: bool,
        send: F,
    ) -> Result<T, Error>
    where
        F: Fn(Link) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let current = self.current().await?;
        match send(current.link.clone()).await {
            Err(error) if self.sentinel && needs_new_master(&error) => {
                current.stale.store(true, Ordering::Relaxed);
                if resend.after(&error) || is_readonly(&error) {
                    let fresh = self.current().await?;
                    send(fresh.link.clone())
                        .await
                        .map_err(|error| self.error(error))
                } else {
                    Err(self.error(error))
                }
            }
            Err(error) if redirectable && self.cluster && is_redirection(&error) => {
                tokio::time::sleep(REDIRECTION_PAUSE).await;
                send(current.link.clone())
                    .await
                    .map_err(|error| self.error(error))
            }
            Err(error) if resend.after(&error) => send(current.link.clone())
                .await
                .map_err(|error| self.error(error)),
            result => result.map_err(|error| self.error(error)),
        }
    }

    /// A connection of its own for blocking commands that wait up to `block` on the server: its
    /// reply timeout is longer than the block, so a reply is never abandoned while the server
    /// may still act on the command (see `docs/worker.md`). Through sentinels, to the master
    /// they name; through a cluster, to the master of the keys' slot alone, found through the
    /// shared connection (a cluster connection of its own when that master gives no address).
    pub(crate) async fn blocking_connection(&self, block: Duration) -> Result<Link, Error> {
        let response = block + self.timeouts.response;
        let current = self.current().await?;
        if let Source::Cluster { url, prefix, .. } = &current.source {
            // One node, not the whole cluster: a cluster connection of its own would connect to
            // every node, for each idle queue.
            let found = cluster::master_connection(
                url,
                prefix,
                current.link.clone(),
                self.timeouts.connect,
                response,
            )
            .await
            .map_err(|error| self.error(error))?;
            if let Some(connection) = found {
                return Ok(Link::Own(connection));
            }
        }
        self.independent_connection(&current, response).await
    }

    /// A connection of its own whose commands do not go through the shared connection (whose
    /// driver runs on the runtime that opened it): for the liveness thread, which must renew
    /// while jobs keep the worker's runtime busy. Its replies are awaited `block` plus the
    /// reply timeout. Through sentinels, to the master they name; through a cluster, a cluster
    /// connection of its own (where a blocking one goes to the slot's master alone, found by
    /// asking through the shared connection).
    pub(crate) async fn own_connection(&self, block: Duration) -> Result<Link, Error> {
        let current = self.current().await?;
        self.independent_connection(&current, block + self.timeouts.response)
            .await
    }

    /// [`own_connection`](Self::own_connection) from `current`.
    async fn independent_connection(
        &self,
        current: &Current,
        response: Duration,
    ) -> Result<Link, Error> {
        match self.open_own(&current.source, response).await {
            Err(Error::Connect { .. }) if self.sentinel => {
                current.stale.store(true, Ordering::Relaxed);
                let fresh = self.current().await?;
                self.open_own(&fresh.source, response).await
            }
            result => result,
        }
    }

    /// Opens a connection of its own to `source`, whose replies are awaited `response`.
    async fn open_own(&self, source: &Source, response: Duration) -> Result<Link, Error> {
        match source {
            Source::Server(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeouts.connect))
                    .set_response_timeout(Some(response));
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Link::Own)
                    .map_err(|error| self.error(error))
            }
            Source::Cluster { url, route, .. } => {
                let client = cluster::client(url, self.timeouts, response)
                    .map_err(|error| self.error(error))?;
                client
                    .get_async_connection()
                    .await
                    .map(|connection| Link::Cluster {
                        connection,
                        route: *route,
                    })
                    .map_err(|error| self.error(error))
            }
        }
    }

    /// Turns a driver error into ours, naming the URL; the driver's error is kept as its text
    /// (see "Causes" on [`Error`]).
    pub(crate) fn error(&self, error: RedisError) -> Error {
        self.note(&error);
        if is_connection_error(&error) || error.kind() == redis::ErrorKind::AuthenticationFailed {
            Error::Connect {
                url: self.url.clone(),
                reason: describe(&error),
            }
        } else {
            Error::Redis {
                url: self.url.clone(),
                reason: error.to_string(),
            }
        }
    }
}

/// An `EVALSHA` of `script` with `keys` keys, its keys then its `args` arguments to be added
/// with [`Cmd::arg`], and sent with [`Connection::evalsha_once`]. `capacity` is about how many
/// bytes they take, so that the command's buffer is allocated once.
pub(crate) fn evalsha(script: &redis::Script, keys: usize, args: usize, capacity: usize) -> Cmd {
    let mut command = Cmd::with_capacity(keys + args + 3, capacity + 64);
    command.arg("EVALSHA").arg(script.get_hash()).arg(keys);
    command
}

/// When a command that failed is sent once more.
#[derive(Debug, Clone, Copy)]
enum Resend {
    /// After any connection error, a timeout included: for steps that check before they act,
    /// so running twice changes nothing.
    OnAnyConnectionError,
    /// After a connection error other than a timeout: a command whose reply timed out may have
    /// run, and running it again could apply it twice.
    UnlessTimedOut,
}

impl Resend {
    /// Whether `error` calls for sending once more.
    fn after(self, error: &RedisError) -> bool {
        match self {
            Self::OnAnyConnectionError => is_connection_error(error),
            Self::UnlessTimedOut => is_connection_error(error) && !error.is_timeout(),
        }
    }
}

/// How long a command that met a cluster's redirection waits before it is sent once more.
const REDIRECTION_PAUSE: Duration = Duration::from_millis(100);

/// Whether a cluster refused the command without running it: its slot moved (`MOVED`, `ASK`),
/// is being moved (`TRYAGAIN`), or has no master (`CLUSTERDOWN`).
pub(crate) fn is_redirection(error: &RedisError) -> bool {
    use redis::ServerErrorKind::{Ask, ClusterDown, Moved, TryAgain};
    matches!(
        error.kind(),
        redis::ErrorKind::Server(Moved | Ask | TryAgain | ClusterDown)
    )
}

/// Whether the error means the connection, not the command, failed.
pub(crate) fn is_connection_error(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
}

/// Whether the error means the connection broke or the server may no longer be master (a
/// `READONLY` or `NOREPLICAS` refusal): a blocking connection is opened again, and through
/// sentinels the master is looked up again.
pub(crate) fn needs_new_master(error: &RedisError) -> bool {
    is_connection_error(error) || is_readonly(error)
}

/// Whether the server refused a write for its role, so nothing ran: `READONLY`, it is a replica
/// now (a failover demoted it); `NOREPLICAS`, it has too few replicas for its
/// `min-replicas-to-write` (as an old master has once its replica was promoted away).
fn is_readonly(error: &RedisError) -> bool {
    let text = error.to_string();
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        || text.contains("READONLY")
        || text.contains("NOREPLICAS")
}

/// A few words on what went wrong.
fn describe(error: &RedisError) -> String {
    if error.kind() == redis::ErrorKind::AuthenticationFailed {
        "it refused the credentials (check the user and password in the URL)".to_owned()
    } else if error.is_connection_refusal() {
        "connection refused".to_owned()
    } else if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    use super::needs_new_master;

    #[test]
    fn a_broken_connection_or_a_demoted_master_calls_for_a_new_master() {
        let readonly = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        assert!(needs_new_master(&readonly));
        let no_replicas = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "NOREPLICAS Not enough good replicas to write.",
        ));
        assert!(needs_new_master(&no_replicas));
        let dropped = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(needs_new_master(&dropped));
        let refused = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ));
        assert!(!needs_new_master(&refused));
    }
}

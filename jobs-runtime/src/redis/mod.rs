//! The connection to Redis: one multiplexed, self-reconnecting connection per client.
//!
//! Commands from every task share the one connection and are pipelined on it, so there is no
//! pool to size. The connection is opened on first use; a command that finds it broken is sent
//! once more after the reconnect, as Sidekiq's client does, and a second failure becomes an
//! [`Error::Connect`] that names the URL. A command whose reply timed out is not sent again
//! (Redis may have run it), except the scripts that check before they act.

pub(crate) mod keys;
pub(crate) mod scripts;
pub(crate) mod url;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisError, ScriptInvocation};
use tokio::sync::OnceCell;

use crate::error::Error;

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

/// A lazily opened, self-reconnecting connection to one Redis.
pub(crate) struct Connection {
    client: redis::Client,
    timeouts: Timeouts,
    manager: OnceCell<ConnectionManager>,
    /// The URL with its password redacted.
    url: String,
}

impl Connection {
    /// Checks `url` without connecting.
    pub(crate) fn open(url: &str, timeouts: Timeouts) -> Result<Self, Error> {
        let redacted = url::redact(url);
        let client = redis::Client::open(url).map_err(|error| Error::InvalidUrl {
            url: redacted.clone(),
            reason: match error.to_string() {
                reason if reason.contains("TLS") => format!(
                    "{reason}; rediss:// URLs need the `tls` feature of jobs (on by default)"
                ),
                reason => reason,
            },
        })?;
        Ok(Self {
            client,
            timeouts,
            manager: OnceCell::new(),
            url: redacted,
        })
    }

    /// The URL, with any password redacted.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The shared connection, opened on first use.
    pub(crate) async fn manager(&self) -> Result<ConnectionManager, Error> {
        let manager = self
            .manager
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeouts.connect))
                    .set_response_timeout(Some(self.timeouts.response))
                    .set_number_of_retries(self.timeouts.reconnect_attempts)
                    .set_max_delay(Duration::from_secs(1));
                ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(|error| self.error(error))
            })
            .await?;
        Ok(manager.clone())
    }

    /// Sends `pipeline` in one round trip, once more if the connection had broken before it
    /// could be sent; not after a timeout, when Redis may have run it (a push or an `INCRBY`
    /// sent twice would apply twice).
    pub(crate) async fn query<T: FromRedisValue>(&self, pipeline: &Pipeline) -> Result<T, Error> {
        self.retry_once(Resend::UnlessTimedOut, |mut connection| async move {
            pipeline.query_async(&mut connection).await
        })
        .await
    }

    /// Sends one command, once more if the connection had broken before it could be sent; not
    /// after a timeout (see [`query`](Self::query)).
    pub(crate) async fn command<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, Error> {
        self.retry_once(Resend::UnlessTimedOut, |mut connection| async move {
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
        let mut connection = self.manager().await?;
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|error| self.error(error))
    }

    /// Runs a Lua script (loading it on `NOSCRIPT`), once more if the connection had broken.
    /// Only for scripts that are safe to repeat (settle and promote check before they move).
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        self.retry_once(Resend::OnAnyConnectionError, |mut connection| async move {
            invocation.invoke_async(&mut connection).await
        })
        .await
    }

    /// Runs `send` on the shared connection; when the connection had broken, runs it once more
    /// on the reconnected one, as Sidekiq's client does.
    async fn retry_once<T, F, Fut>(&self, resend: Resend, send: F) -> Result<T, Error>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.manager().await?;
        match send(connection.clone()).await {
            Err(error) if resend.after(&error) => {
                send(connection).await.map_err(|error| self.error(error))
            }
            result => result.map_err(|error| self.error(error)),
        }
    }

    /// A connection of its own for blocking commands that wait up to `block` on the server: its
    /// reply timeout is longer than the block, so a reply is never abandoned while the server
    /// may still act on the command (see `docs/worker.md`).
    pub(crate) async fn blocking_connection(
        &self,
        block: Duration,
    ) -> Result<MultiplexedConnection, Error> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(block + self.timeouts.response));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| self.error(error))
    }

    /// Turns a driver error into ours, naming the URL; the driver's error is kept as its text
    /// (see "Causes" on [`Error`]).
    pub(crate) fn error(&self, error: RedisError) -> Error {
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

/// Whether the error means the connection, not the command, failed.
pub(crate) fn is_connection_error(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
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

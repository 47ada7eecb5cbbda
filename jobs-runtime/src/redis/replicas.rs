//! Waiting for replicas: `WAIT n timeout` after a write, so that what a push or settle
//! acknowledged is on `n` replicas too and survives a failover (see `docs/sentinel.md`).
//!
//! Redis replicates asynchronously: a master that dies loses what it acknowledged but had not
//! sent to a replica yet. With [`Replicas`] set, the writes that matter carry a `WAIT` in the
//! same round trip (appended to their pipeline), so they return only once `n` replicas hold
//! them, or the timeout passed.

use std::time::Duration;

use redis::{FromRedisValue, Pipeline, Value};

use super::Connection;
use crate::error::Error;

/// How many replicas must acknowledge a write, and how long to wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replicas {
    /// The number of replicas.
    pub(crate) count: u32,
    /// The longest wait.
    pub(crate) timeout: Duration,
}

/// What to do when fewer replicas acknowledged a write than wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shortfall {
    /// Fail with [`Error::NotReplicated`]: for a push, whose caller can decide (the job is on
    /// the master, so pushing it again may run it twice).
    Fail,
    /// Log a warning and carry on: for a settle, which has landed on the master and whose loss
    /// in a failover would run the job again, never lose it.
    Warn,
}

impl Connection {
    /// Sends `pipeline` as [`query`](Self::query) does; with [`Replicas`] set, with a `WAIT`
    /// appended in the same round trip, and `shortfall` deciding what fewer replicas mean.
    pub(crate) async fn query_replicated<T: FromRedisValue>(
        &self,
        pipeline: &Pipeline,
        shortfall: Shortfall,
    ) -> Result<T, Error> {
        let Some(replicas) = self.replicas() else {
            return self.query(pipeline).await;
        };
        let mut waiting = pipeline.clone();
        waiting
            .cmd("WAIT")
            .arg(replicas.count)
            .arg(millis(replicas.timeout));
        let mut replies: Vec<Value> = self.query(&waiting).await?;
        let acknowledged = replies
            .pop()
            .and_then(|reply| i64::from_redis_value(reply).ok())
            .unwrap_or(0);
        self.check(replicas, acknowledged, shortfall)?;
        T::from_redis_value(Value::Array(replies)).map_err(|error| Error::Redis {
            url: self.url().to_owned(),
            reason: error.to_string(),
        })
    }

    /// With [`Replicas`] set, sends `WAIT` on its own, after a write sent alone (a script):
    /// one more round trip, for the rare steps that are not pipelines.
    pub(crate) async fn wait_replicas(&self, shortfall: Shortfall) -> Result<(), Error> {
        let Some(replicas) = self.replicas() else {
            return Ok(());
        };
        let acknowledged: i64 = self
            .command(
                redis::cmd("WAIT")
                    .arg(replicas.count)
                    .arg(millis(replicas.timeout)),
            )
            .await?;
        self.check(replicas, acknowledged, shortfall)
    }

    /// What `acknowledged` replicas out of the wanted ones mean.
    fn check(
        &self,
        replicas: Replicas,
        acknowledged: i64,
        shortfall: Shortfall,
    ) -> Result<(), Error> {
        if acknowledged >= i64::from(replicas.count) {
            return Ok(());
        }
        let error = Error::NotReplicated {
            url: self.url().to_owned(),
            wanted: replicas.count,
            acknowledged: u32::try_from(acknowledged.max(0)).unwrap_or(0),
            timeout: replicas.timeout,
        };
        match shortfall {
            Shortfall::Fail => Err(error),
            Shortfall::Warn => {
                tracing::warn!(%error, "a settled job may run again after a failover");
                Ok(())
            }
        }
    }
}

/// `duration` in whole milliseconds, at least 1 (`WAIT n 0` would wait forever).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

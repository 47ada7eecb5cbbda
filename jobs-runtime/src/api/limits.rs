//! Limiters: each one's kind, size and use, and resetting one by hand.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::scan::scan_names;
use crate::client::Client;
use crate::error::Error;
use crate::limit::{self, Kind};
use crate::redis::scripts;

/// The most limiters one [`Limits::list`] returns.
pub const MAX_LIMITERS_LISTED: usize = 1_000;

/// How many `SCAN` steps one [`Limits::scan`] takes at most: about 50,000 keys looked at, so a
/// view of a big keyspace costs Redis a bounded amount of work and says it is partial.
pub const MAX_SCAN_STEPS: usize = 50;

/// The limiters one [`Limits::scan`] found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LimiterListing {
    /// The limiters found, by name.
    pub limiters: Vec<LimiterInfo>,
    /// `true` when the `SCAN` stopped before the end of the keyspace (at its limit of names,
    /// or after [`MAX_SCAN_STEPS`] steps): other limiters may exist.
    pub partial: bool,
}

/// One limiter as its last call left it (`jobs:limit:{<name>}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LimiterInfo {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Holders, calls, drops or points.
    pub size: u64,
    /// A concurrent lease's length, a bucket's window, the sliding window, the leaky bucket's
    /// drain time or the points' refill time.
    pub interval: Duration,
    /// What is in use now: holders (concurrent), calls in this window (bucket, window), the
    /// level (leaky, points; it may have a fraction).
    pub in_use: f64,
    /// Calls that got a slot, since it was made or reset.
    pub calls: u64,
    /// Calls that gave up over limit, since it was made or reset.
    pub over_limit: u64,
    /// When a call last gave up over limit.
    pub last_over_limit: Option<DateTime<Utc>>,
    /// When it was last called.
    pub last_used: Option<DateTime<Utc>>,
    /// How long until its keys expire, unless it is called again.
    pub expires_in: Option<Duration>,
}

impl LimiterInfo {
    /// The limit in words: `3 at once`, `10 per second`.
    pub fn describe(&self) -> String {
        limit::describe(self.kind, self.size, self.interval)
    }
}

/// The limiters in one Redis, as the dashboard shows them.
#[derive(Debug, Clone)]
pub struct Limits {
    client: Client,
}

impl Limits {
    /// The limiters in the Redis `client` uses.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// Up to `limit` limiters (at most [`MAX_LIMITERS_LISTED`]) used within their time to
    /// live, found with `SCAN`, by name; [`scan`](Self::scan) also says whether the list is
    /// partial.
    pub async fn list(&self, limit: usize) -> Result<Vec<LimiterInfo>, Error> {
        Ok(self.scan(limit).await?.limiters)
    }

    /// Up to `limit` limiters (at most [`MAX_LIMITERS_LISTED`]) used within their time to
    /// live, found with at most [`MAX_SCAN_STEPS`] `SCAN` steps (about 50,000 keys looked at),
    /// by name, and whether the `SCAN` stopped before the end of the keyspace.
    pub async fn scan(&self, limit: usize) -> Result<LimiterListing, Error> {
        self.scan_steps(limit, MAX_SCAN_STEPS).await
    }

    /// [`scan`](Self::scan), in at most `steps` `SCAN` steps.
    async fn scan_steps(&self, limit: usize, steps: usize) -> Result<LimiterListing, Error> {
        let limit = limit.min(MAX_LIMITERS_LISTED);
        let keys = self.client.keys();
        let pattern = keys.limit_pattern();
        let prefix_len = keys.limit("").len() - 1;
        let (mut names, unfinished) = scan_names(&self.client, &pattern, limit, steps, |key| {
            key.get(prefix_len..)?.strip_suffix('}').map(str::to_owned)
        })
        .await?;
        names.sort();
        names.dedup();
        let partial = unfinished || names.len() > limit;
        names.truncate(limit);
        Ok(LimiterListing {
            limiters: self.read(names).await?,
            partial,
        })
    }

    /// The limiter `name`, if it was used within its time to live.
    pub async fn get(&self, name: &str) -> Result<Option<LimiterInfo>, Error> {
        if limit::check_name(name).is_err() {
            return Ok(None);
        }
        Ok(self.read(vec![name.to_owned()]).await?.pop())
    }

    /// Resets the limiter `name`: its holders, calls, level and over-limit counts cleared.
    /// Every lease is forgotten: until the holders running now end, a concurrent limiter may
    /// have up to twice its size of holders.
    /// `false` when there is no such limiter.
    pub async fn reset(&self, name: &str) -> Result<bool, Error> {
        if limit::check_name(name).is_err() {
            return Ok(false);
        }
        let keys = self.client.keys();
        let mut invocation = scripts::LIMIT_RESET.prepare_invoke();
        invocation.key(keys.limit(name)).key(keys.limit_held(name));
        let reset: i64 = self.client.redis().script(&invocation).await?;
        Ok(reset == 1)
    }

    /// Reads each limiter in one round trip.
    async fn read(&self, names: Vec<String>) -> Result<Vec<LimiterInfo>, Error> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.client.keys();
        let mut pipeline = redis::pipe();
        for name in &names {
            pipeline
                .cmd("EVAL")
                .arg(scripts::LIMIT_READ_SOURCE.as_str())
                .arg(2)
                .arg(keys.limit(name))
                .arg(keys.limit_held(name));
        }
        let read: Vec<Option<Vec<String>>> = self.client.redis().query(&pipeline).await?;
        Ok(names
            .into_iter()
            .zip(read)
            .filter_map(|(name, fields)| parse(name, &fields?))
            .collect())
    }
}

/// A limiter from what `limit_read.lua` returns.
fn parse(name: String, fields: &[String]) -> Option<LimiterInfo> {
    let [
        kind,
        size,
        interval,
        in_use,
        calls,
        over,
        last_over,
        last_used,
        ttl,
    ] = fields
    else {
        return None;
    };
    let number = |text: &String| text.parse::<u64>().unwrap_or(0);
    let time = |text: &String| {
        text.parse::<i64>()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
    };
    Some(LimiterInfo {
        name,
        kind: Kind::from_name(kind)?,
        size: number(size),
        interval: Duration::from_millis(number(interval)),
        in_use: in_use.parse().unwrap_or(0.0),
        calls: number(calls),
        over_limit: number(over),
        last_over_limit: time(last_over),
        last_used: time(last_used),
        expires_in: ttl.parse::<u64>().ok().map(Duration::from_millis),
    })
}

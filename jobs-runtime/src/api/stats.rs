//! The numbers on the dashboard: totals, sizes, daily history and Redis's own figures.

use chrono::{Days, NaiveDate, Utc};

use super::names::utf8_only;
use super::queue::Queue;
use super::record::JobRecord;
use crate::client::Client;
use crate::error::Error;
use crate::redis::keys::Counter;

/// The most days of history one read returns.
pub const MAX_HISTORY_DAYS: u64 = 366;

/// A snapshot of everything at once, as Sidekiq's `Sidekiq::Stats`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Jobs run since the counters began, failed or not.
    pub processed: u64,
    /// Runs that failed.
    pub failed: u64,
    /// Jobs waiting in every queue.
    pub enqueued: u64,
    /// Jobs in the `schedule` set.
    pub scheduled_size: u64,
    /// Jobs in the `retry` set.
    pub retry_size: u64,
    /// Jobs in the `dead` set.
    pub dead_size: u64,
    /// Live processes.
    pub processes_size: u64,
    /// Jobs running now, as the processes last reported.
    pub workers_size: u64,
    /// How long the next job of the `default` queue has waited, in seconds.
    pub default_queue_latency: f64,
    /// Jobs dropped unrun because they had not started within their `expires_in`
    /// (`jobs:stat:expired`).
    pub expired: u64,
    /// Times a job was rescheduled because a limiter was over its limit
    /// (`jobs:stat:overrated`; Sidekiq Enterprise's "overrated").
    pub overrated: u64,
}

impl Stats {
    /// Reads every figure in two round trips: the counters and set sizes, then each process's
    /// busy count and each queue's size.
    pub async fn fetch(client: &Client) -> Result<Self, Error> {
        let keys = client.keys();
        let mut pipeline = redis::pipe();
        pipeline
            .get(keys.stat(Counter::Processed))
            .get(keys.stat(Counter::Failed))
            .zcard(keys.schedule())
            .zcard(keys.retry())
            .zcard(keys.dead())
            .cmd("LINDEX")
            .arg(keys.queue("default"))
            .arg(-1)
            .smembers(keys.processes())
            .smembers(keys.queues())
            .get(keys.expired())
            .get(keys.overrated());
        // Entries and names are read as bytes: one that is not UTF-8 must not fail every page.
        #[allow(clippy::type_complexity)]
        let (
            processed,
            failed,
            scheduled,
            retries,
            dead,
            oldest,
            identities,
            queues,
            expired,
            overrated,
        ): (
            Option<u64>,
            Option<u64>,
            u64,
            u64,
            u64,
            Option<Vec<u8>>,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
            Option<u64>,
            Option<u64>,
        ) = client.redis().query(&pipeline).await?;
        let (identities, queues) = (utf8_only(identities), utf8_only(queues));

        let mut sizes = redis::pipe();
        for identity in &identities {
            sizes.hget(keys.process(identity), "busy");
        }
        for queue in &queues {
            sizes.llen(keys.queue(queue));
        }
        let counts: Vec<Option<u64>> = if identities.is_empty() && queues.is_empty() {
            Vec::new()
        } else {
            client.redis().query(&sizes).await?
        };
        let (busy, waiting) = counts.split_at(identities.len().min(counts.len()));
        Ok(Self {
            processed: processed.unwrap_or(0),
            failed: failed.unwrap_or(0),
            enqueued: waiting.iter().flatten().sum(),
            scheduled_size: scheduled,
            retry_size: retries,
            dead_size: dead,
            processes_size: identities.len() as u64,
            workers_size: busy.iter().flatten().sum(),
            default_queue_latency: oldest
                .map_or(0.0, |raw| JobRecord::from_bytes(raw).latency(Utc::now())),
            expired: expired.unwrap_or(0),
            overrated: overrated.unwrap_or(0),
        })
    }

    /// Processed and failed counts for each of the `days` days up to and including `last`
    /// (UTC dates), newest first, at most [`MAX_HISTORY_DAYS`].
    pub async fn history(
        client: &Client,
        days: u64,
        last: NaiveDate,
    ) -> Result<Vec<DayStats>, Error> {
        let days = days.clamp(1, MAX_HISTORY_DAYS);
        let dates: Vec<NaiveDate> = (0..days)
            .filter_map(|back| last.checked_sub_days(Days::new(back)))
            .collect();
        let keys = client.keys();
        let mut pipeline = redis::pipe();
        let processed: Vec<String> = dates
            .iter()
            .map(|date| keys.daily_stat(Counter::Processed, *date))
            .collect();
        let failed: Vec<String> = dates
            .iter()
            .map(|date| keys.daily_stat(Counter::Failed, *date))
            .collect();
        pipeline.mget(&processed).mget(&failed);
        let (processed, failed): (Vec<Option<u64>>, Vec<Option<u64>>) =
            client.redis().query(&pipeline).await?;
        Ok(dates
            .into_iter()
            .zip(processed.into_iter().zip(failed))
            .map(|(date, (processed, failed))| DayStats {
                date,
                processed: processed.unwrap_or(0),
                failed: failed.unwrap_or(0),
            })
            .collect())
    }

    /// The size and latency of every queue, sorted by name, in one round trip after the list.
    /// With thousands of queues, read [`Queue::all`] and give a page of it to
    /// [`queue_sizes`](Self::queue_sizes) instead.
    pub async fn queues(client: &Client) -> Result<Vec<(Queue, usize, f64)>, Error> {
        let queues = Queue::all(client).await?;
        Self::queue_sizes(client, queues).await
    }

    /// The size and latency of each of `queues`, in their order, in one round trip.
    pub async fn queue_sizes(
        client: &Client,
        queues: Vec<Queue>,
    ) -> Result<Vec<(Queue, usize, f64)>, Error> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let keys = client.keys();
        let mut pipeline = redis::pipe();
        for queue in &queues {
            let key = keys.queue(queue.name());
            pipeline.llen(&key).cmd("LINDEX").arg(&key).arg(-1);
        }
        let replies: Vec<(usize, Option<Vec<u8>>)> = client.redis().query(&pipeline).await?;
        let now = Utc::now();
        Ok(queues
            .into_iter()
            .zip(replies)
            .map(|(queue, (size, oldest))| {
                let latency = oldest.map_or(0.0, |raw| JobRecord::from_bytes(raw).latency(now));
                (queue, size, latency)
            })
            .collect())
    }
}

/// One day's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DayStats {
    /// The UTC date.
    pub date: NaiveDate,
    /// Jobs run that day.
    pub processed: u64,
    /// Runs that failed that day.
    pub failed: u64,
}

/// The Redis figures the dashboard shows, from `INFO`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RedisInfo {
    /// `redis_version`.
    pub version: String,
    /// `uptime_in_days`.
    pub uptime_in_days: String,
    /// `connected_clients`.
    pub connected_clients: String,
    /// `used_memory_human`.
    pub used_memory_human: String,
    /// `used_memory_peak_human`.
    pub used_memory_peak_human: String,
    /// `maxmemory_policy`: jobs need `noeviction`.
    pub maxmemory_policy: String,
}

impl RedisInfo {
    /// Reads `INFO`.
    pub async fn fetch(client: &Client) -> Result<Self, Error> {
        let info: String = client.redis().command(&redis::cmd("INFO")).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|value| value.trim().to_owned())
                .unwrap_or_default()
        };
        Ok(Self {
            version: field("redis_version"),
            uptime_in_days: field("uptime_in_days"),
            connected_clients: field("connected_clients"),
            used_memory_human: field("used_memory_human"),
            used_memory_peak_human: field("used_memory_peak_human"),
            maxmemory_policy: field("maxmemory_policy"),
        })
    }
}

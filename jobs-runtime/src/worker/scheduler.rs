//! The poller that moves due jobs from `retry` and `schedule` to their queues.
//!
//! Each round reads up to [`BATCH`] due members, gives each a fresh `enqueued_at`, and moves them
//! with `scripts/promote.lua`: one atomic step in which a member is pushed only if this poller's
//! `ZREM` removed it, so pollers racing each other (Rust or Ruby) never move a job twice and a
//! crash never loses one. A full batch means a backlog: the next round starts at once.
//!
//! Between rounds it sleeps a random time around an average that grows with the number of live
//! processes (`SCARD processes` × 5 s by default), as Sidekiq's poller does, so a fleet checks
//! about every 5 s in all and processes don't poll in step.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::tasks::sleep_or;
use crate::client::Client;
use crate::error::Error;
use crate::payload::{Payload, invalid_entry};
use crate::redis::scripts;
use crate::timestamp::Timestamp;

/// Due members moved per round trip.
pub(crate) const BATCH: usize = 1_000;

/// Moves every due scheduled and retried job to its queue now, as a worker's poller does each
/// round; returns how many moved. Safe to run beside workers and Ruby processes: each job moves
/// once.
pub async fn enqueue_due(client: &Client) -> Result<usize, Error> {
    Scheduler::new(client.clone(), None, Duration::from_secs(5))
        .poll()
        .await
}

/// The poller of one worker.
pub(crate) struct Scheduler {
    /// The Redis and namespace of the sets and queues.
    client: Client,
    /// A fixed average pause, when configured.
    fixed_average: Option<Duration>,
    /// The average pause per live process.
    per_process: Duration,
}

impl Scheduler {
    /// A poller pausing `fixed_average` between rounds, or else `per_process` times the number
    /// of live processes.
    pub(crate) fn new(
        client: Client,
        fixed_average: Option<Duration>,
        per_process: Duration,
    ) -> Self {
        Self {
            client,
            fixed_average,
            per_process,
        }
    }

    /// Polls until `shutdown` (the quiet phase). Cancellation-safe: a round either moved a
    /// member atomically or did not.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let first = self
            .fixed_average
            .unwrap_or(Duration::from_secs(1))
            .mul_f64(rand::rng().random::<f64>());
        if sleep_or(&shutdown, first).await {
            return;
        }
        loop {
            if let Err(error) = self.poll().await {
                tracing::warn!(%error, "cannot move due scheduled jobs; will try again");
            }
            let pause = self.pause().await;
            if sleep_or(&shutdown, pause).await {
                return;
            }
        }
    }

    /// One round: moves every due member of `retry` and then `schedule`; returns how many.
    pub(crate) async fn poll(&self) -> Result<usize, Error> {
        let keys = self.client.keys();
        let mut moved = 0;
        for set in [keys.retry(), keys.schedule()] {
            loop {
                let now = Timestamp::now();
                let due: Vec<String> = self
                    .client
                    .redis()
                    .command(
                        redis::cmd("ZRANGEBYSCORE")
                            .arg(&set)
                            .arg("-inf")
                            .arg(now.as_epoch_seconds())
                            .arg("LIMIT")
                            .arg(0)
                            .arg(BATCH),
                    )
                    .await?;
                if due.is_empty() {
                    break;
                }
                moved += self.promote(&set, &due, now).await?;
                if due.len() < BATCH {
                    break;
                }
            }
        }
        Ok(moved)
    }

    /// Moves the members `due` of `set` to their queues (or, for an entry that is not a job,
    /// to the dead set) in one script call; returns how many moved.
    async fn promote(&self, set: &str, due: &[String], now: Timestamp) -> Result<usize, Error> {
        let keys = self.client.keys();
        let mut queue_keys: Vec<String> = Vec::new();
        let mut rewritten = Vec::with_capacity(due.len());
        for member in due {
            match Payload::from_json(member) {
                Ok(mut payload) => {
                    payload.enqueued_at = Some(now);
                    let queue_key = keys.queue(&payload.queue);
                    let position = match queue_keys.iter().position(|key| *key == queue_key) {
                        Some(position) => position,
                        None => {
                            queue_keys.push(queue_key);
                            queue_keys.len() - 1
                        }
                    };
                    // KEYS[4] is the first queue list.
                    let json = payload.to_json().unwrap_or_else(|_| member.clone());
                    rewritten.push((payload.queue, position + 4, json));
                }
                Err(error) => {
                    tracing::error!(%set, %error, "a scheduled entry is not a job; moved to the dead set");
                    let reason = format!("the entry in `{set}` is not a job ({error})");
                    let entry = invalid_entry(member, "default", &reason, now);
                    rewritten.push((String::new(), 0, entry));
                }
            }
        }
        let mut invocation = scripts::PROMOTE.prepare_invoke();
        invocation.key(set).key(keys.queues()).key(keys.dead());
        for key in &queue_keys {
            invocation.key(key);
        }
        invocation.arg(now.as_epoch_seconds());
        for (member, (queue, target, json)) in due.iter().zip(&rewritten) {
            invocation.arg(member).arg(queue).arg(target).arg(json);
        }
        let moved: usize = self.client.redis().script(&invocation).await?;
        Ok(moved)
    }

    /// A random pause around the average: `avg × rand + avg / 2` below 10 processes,
    /// `avg × rand × 2` from 10 on (Sidekiq 8).
    async fn pause(&self) -> Duration {
        let (average, processes) = match self.fixed_average {
            Some(average) => (average, 1),
            None => {
                let processes: u64 = self
                    .client
                    .redis()
                    .command(redis::cmd("SCARD").arg(self.client.keys().processes()))
                    .await
                    .unwrap_or(1)
                    .max(1);
                (self.per_process.mul_f64(processes as f64), processes)
            }
        };
        let random = rand::rng().random::<f64>();
        if processes < 10 {
            average.mul_f64(random) + average / 2
        } else {
            average.mul_f64(random * 2.0)
        }
    }
}

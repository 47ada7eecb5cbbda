//! Settling a job in Redis: acknowledge, retry, bury, discard or hand back, each one atomic
//! step that removes the job from the working list only if it is still there.
//!
//! A step that cannot reach Redis is tried again with backoff for a while; if Redis stays
//! away, the job stays in the working list, where recovery finds it: never lost, at worst run
//! again.

use std::time::Duration;

use serde_json::json;

use super::Shared;
use super::fetch::Fetched;
use super::hooks::Exhausted;
use super::retry::{Decision, describe_delay};
use crate::error::Error;
use crate::jid::Jid;
use crate::job_error::JobError;
use crate::payload::Payload;
use crate::redis::scripts;
use crate::timestamp::Timestamp;

/// How long a settling step keeps trying while Redis is unreachable.
pub(crate) const PERSIST_FOR: Duration = Duration::from_secs(30);

/// How long shutdown keeps trying, in all, to hand jobs back while Redis is unreachable.
pub(crate) const HAND_BACK_FOR: Duration = Duration::from_secs(5);

/// Where a job goes when it leaves the working list.
pub(crate) enum Outcome<'a> {
    /// Back to the right end of its queue, unchanged.
    Requeue,
    /// Back to the right end of its queue, as this JSON (a recovered job).
    Move { json: &'a str },
    /// Into the retry set, as this JSON, at this time.
    Retry { json: &'a str, at: Timestamp },
    /// Into the dead set, as this JSON.
    Dead { json: &'a str },
}

impl Shared {
    /// The job succeeded: take it off the working list.
    pub(crate) async fn acknowledge(&self, fetched: &Fetched) {
        let command = redis::cmd("LREM")
            .arg(self.working())
            .arg(1)
            .arg(&fetched.json)
            .to_owned();
        let deadline = tokio::time::Instant::now() + PERSIST_FOR;
        self.persist("acknowledge", deadline, || {
            self.redis().command::<i64>(&command)
        })
        .await;
    }

    /// Hands the job back to the front of its queue, unchanged (shutdown), trying until
    /// `deadline` while Redis is unreachable.
    /// Returns whether Redis took the step (`false`: it stayed unreachable).
    pub(crate) async fn requeue(&self, fetched: &Fetched, deadline: tokio::time::Instant) -> bool {
        self.settle_in(self.working(), fetched, Outcome::Requeue, deadline, None)
            .await
    }

    /// The job failed: retry it, bury it or drop it, by Sidekiq's rules.
    pub(crate) async fn fail(&self, fetched: &Fetched, mut payload: Payload, error: JobError) {
        // It ran to the end, so it did not kill its process: its recovery count starts over.
        payload.extra.remove(super::recovery::RECOVERIES);
        let now = Timestamp::now();
        let decision = self
            .policy
            .on_failure(&mut payload, &error, now, &mut rand::rng());
        match decision {
            Decision::Retry { at } => match payload.to_json() {
                Ok(json) => {
                    tracing::info!(
                        retry_count = payload.retry_count,
                        next_attempt = %describe_delay(at, now),
                        "retrying"
                    );
                    self.settle(fetched, Outcome::Retry { json: &json, at })
                        .await;
                }
                Err(encode) => self.bury_invalid(fetched, &encode.to_string()).await,
            },
            Decision::Exhausted { killed } => {
                let discard = self.hooks.exhausted(&payload, &error) == Exhausted::Discard
                    || payload.dead == Some(false);
                if discard {
                    tracing::warn!(killed, "retries exhausted; discarded");
                    self.acknowledge(fetched).await;
                } else {
                    tracing::warn!(killed, "retries exhausted; moved to the dead set");
                    match payload.to_json() {
                        Ok(json) => self.settle(fetched, Outcome::Dead { json: &json }).await,
                        Err(encode) => self.bury_invalid(fetched, &encode.to_string()).await,
                    }
                }
                self.hooks.died(&payload, &error);
            }
            Decision::Discard => {
                tracing::warn!("not retried (retry: false or discarded); dropped");
                self.acknowledge(fetched).await;
                self.hooks.died(&payload, &error);
            }
        }
    }

    /// Puts an entry that is not a job into the dead set, wrapped so dashboards can show it:
    /// class `jobs::InvalidPayload`, the entry as it was as the one argument, and the reason as
    /// the error message.
    pub(crate) async fn bury_invalid(&self, fetched: &Fetched, reason: &str) {
        self.bury_invalid_in(self.working(), fetched, reason).await;
    }

    /// [`bury_invalid`](Self::bury_invalid) for an entry of any process's working list.
    pub(crate) async fn bury_invalid_in(&self, list: &str, fetched: &Fetched, reason: &str) {
        let json = invalid_entry(&fetched.json, &fetched.queue, reason, Timestamp::now());
        let deadline = tokio::time::Instant::now() + PERSIST_FOR;
        self.settle_in(list, fetched, Outcome::Dead { json: &json }, deadline, None)
            .await;
    }

    async fn settle(&self, fetched: &Fetched, outcome: Outcome<'_>) {
        let deadline = tokio::time::Instant::now() + PERSIST_FOR;
        self.settle_until(fetched, outcome, deadline).await;
    }

    async fn settle_until(
        &self,
        fetched: &Fetched,
        outcome: Outcome<'_>,
        deadline: tokio::time::Instant,
    ) {
        self.settle_in(self.working(), fetched, outcome, deadline, None)
            .await;
    }

    /// Moves `fetched` out of `list` (any process's working list) to where `outcome` says;
    /// with `alive_guard` (a heartbeat key), only while that key does not exist. Returns
    /// whether Redis took the step.
    pub(crate) async fn settle_in(
        &self,
        list: &str,
        fetched: &Fetched,
        outcome: Outcome<'_>,
        deadline: tokio::time::Instant,
        alive_guard: Option<&str>,
    ) -> bool {
        let keys = self.keys();
        let mut invocation = scripts::SETTLE.prepare_invoke();
        invocation.key(list);
        match outcome {
            Outcome::Requeue => {
                invocation
                    .key(keys.queue(&fetched.queue))
                    .arg(&fetched.json)
                    .arg("requeue");
            }
            Outcome::Move { json } => {
                invocation
                    .key(keys.queue(&fetched.queue))
                    .arg(&fetched.json)
                    .arg("move")
                    .arg(json);
            }
            Outcome::Retry { json, at } => {
                invocation
                    .key(keys.retry())
                    .arg(&fetched.json)
                    .arg("retry")
                    .arg(json)
                    .arg(at.as_epoch_seconds());
            }
            Outcome::Dead { json } => {
                let now = Timestamp::now().as_epoch_seconds();
                invocation
                    .key(keys.dead())
                    .arg(&fetched.json)
                    .arg("dead")
                    .arg(json)
                    .arg(now)
                    .arg(now - self.dead_timeout.as_secs_f64())
                    .arg(self.dead_max_jobs);
            }
        }
        if let Some(guard) = alive_guard {
            invocation.key(guard);
        }
        let settled = self
            .persist("settle", deadline, || {
                self.redis().script::<i64>(&invocation)
            })
            .await;
        if settled == Some(0) && alive_guard.is_none() {
            tracing::warn!(
                "the job was no longer in this worker's working list (handed back or recovered \
                 elsewhere); left as it is"
            );
        }
        settled.is_some()
    }

    /// Runs an idempotent Redis step until it succeeds or `deadline` has passed (at least
    /// once); `None` when it never succeeded.
    pub(crate) async fn persist<T, F, Fut>(
        &self,
        what: &str,
        deadline: tokio::time::Instant,
        step: F,
    ) -> Option<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut delay = Duration::from_millis(50);
        loop {
            match step().await {
                Ok(done) => return Some(done),
                Err(error) if tokio::time::Instant::now() + delay < deadline => {
                    tracing::warn!(%error, "cannot {what} the job yet; trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(error) => {
                    tracing::error!(
                        %error,
                        "cannot {what} the job; it stays in the working list for recovery"
                    );
                    return None;
                }
            }
        }
    }
}

/// The dead-set entry for `raw`, found in `queue` (or a sorted set), that is not a job: class
/// `jobs::InvalidPayload`, the entry as its one argument, `reason` as the error message.
pub(crate) fn invalid_entry(raw: &str, queue: &str, reason: &str, now: Timestamp) -> String {
    let jid = serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|value| value.get("jid").and_then(|jid| jid.as_str()).map(Jid::from))
        .unwrap_or_else(Jid::generate);
    json!({
        "class": "jobs::InvalidPayload",
        "args": [raw],
        "jid": jid,
        "queue": queue,
        "retry": false,
        "created_at": now,
        "failed_at": now,
        "error_class": "jobs::InvalidPayload",
        "error_message": reason,
    })
    .to_string()
}

//! Settling a job in Redis: acknowledge, retry, bury, discard or hand back, each one atomic
//! step that removes the job from the working list only if it is still there.
//!
//! A step that cannot reach Redis is tried again with backoff for a while; if Redis stays
//! away, the job stays in the working list, where recovery finds it: never lost, at worst run
//! again.

use std::sync::Arc;
use std::time::Duration;

use super::backoff::{Until, persist};
use super::unit::Fetched;
use crate::api::DeadLimits;
use crate::batch::member::{self, MemberOutcome, MemberUpdate};
use crate::cap::Leases;
use crate::client::Client;
use crate::payload::invalid_entry;
use crate::raw_job::RawJob;
use crate::redis::{Shortfall, scripts};
use crate::timestamp::Timestamp;
use crate::unique::Release;

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
    /// Into the schedule set, as this JSON, at this time (a job over a limiter's limit).
    Reschedule { json: &'a str, at: Timestamp },
    /// Into the dead set, as this JSON, releasing the unique lock it holds, if any.
    Dead {
        /// The job as stored in the dead set.
        json: &'a str,
        /// The job's unique lock, released in the same step.
        release: Option<&'a Release>,
    },
}

/// Moves jobs out of working lists (`scripts/settle.lua`).
#[derive(Debug)]
pub(crate) struct Settler {
    /// The Redis and namespace the jobs live in.
    client: Client,
    /// This process's working list, where its own jobs are settled from.
    working: String,
    /// How the dead set is trimmed when a job is buried.
    dead: DeadLimits,
    /// This process's leases on capped queues: a settle that released one says so there.
    leases: Arc<Leases>,
}

impl Settler {
    /// Settles jobs of the working list `working`, trimming the dead set by `dead`, and tells
    /// `leases` of each lease released.
    pub(crate) fn new(
        client: Client,
        working: String,
        dead: DeadLimits,
        leases: Arc<Leases>,
    ) -> Self {
        Self {
            client,
            working,
            dead,
            leases,
        }
    }

    /// Notes that the step settling `fetched` landed: its lease, if any, is released.
    fn released(&self, fetched: &Fetched) {
        if let Some(lease) = &fetched.lease {
            self.leases.let_go(&fetched.json, lease);
            // A fetcher waiting for room may go on.
            self.leases.freed();
        }
    }

    /// The job is done with (dropped): take it off the working list and, if it was still
    /// there, release its unique lock if it holds one still, in one step, trying until Redis
    /// takes it. A batch job's drop is its death (`error`: the error's class and message),
    /// counted first in the same round trip.
    pub(crate) async fn acknowledge(
        &self,
        fetched: &Fetched,
        release: Option<&Release>,
        error: (&str, &str),
    ) {
        let mut pipeline = redis::pipe();
        if let Some(update) =
            MemberUpdate::of_job(&fetched.json, MemberOutcome::Death, None, Some(error))
        {
            member::add_script_to(&mut pipeline);
            update.add_to(
                &mut pipeline,
                self.client.keys(),
                &self.working,
                &fetched.json,
            );
        }
        match release {
            Some(release) => {
                release.add_ack_to(
                    &mut pipeline,
                    self.client.keys(),
                    &self.working,
                    &fetched.json,
                    1,
                );
            }
            None => {
                pipeline
                    .cmd("LREM")
                    .arg(&self.working)
                    .arg(1)
                    .arg(&fetched.json[..])
                    .ignore();
            }
        }
        if let Some(lease) = &fetched.lease {
            // In the same round trip; the member is this job's own (see `crate::cap::Lease`).
            lease.add_release_to(&mut pipeline, self.client.keys());
        }
        let replies = persist("acknowledge", Until::Done, || {
            // The replies kept are the batch update's (everything else is ignored).
            self.client
                .redis()
                .query_replicated::<Vec<redis::Value>>(&pipeline, Shortfall::Warn)
        })
        .await;
        if let Some(replies) = &replies {
            member::log_errors(replies);
        }
        self.released(fetched);
    }

    /// Hands the job back to the front of its queue, unchanged (shutdown), trying until
    /// `deadline` while Redis is unreachable. Returns whether Redis took the step (`false`: it
    /// stayed unreachable).
    pub(crate) async fn requeue(&self, fetched: &Fetched, deadline: tokio::time::Instant) -> bool {
        let until = Until::Deadline(deadline);
        self.settle_in(&self.working, fetched, Outcome::Requeue, until, &[])
            .await
    }

    /// Hands back a job that started (shutdown cut it short) to the front of its queue, as
    /// [`requeue`](Self::requeue) does, except that an expiring job loses its deadline
    /// (`jobs_expires_at`, every other byte kept): a job that started is never dropped for its
    /// age.
    pub(crate) async fn requeue_started(
        &self,
        fetched: &Fetched,
        deadline: tokio::time::Instant,
    ) -> bool {
        let marker = crate::expiry::EXPIRES_AT.as_bytes();
        if fetched
            .json
            .windows(marker.len())
            .any(|window| window == marker)
            && let Ok(mut stored) = RawJob::parse(&fetched.json)
        {
            stored.remove(crate::expiry::EXPIRES_AT);
            let json = stored.to_json();
            let until = Until::Deadline(deadline);
            return self
                .settle_in(
                    &self.working,
                    fetched,
                    Outcome::Move { json: &json },
                    until,
                    &[],
                )
                .await;
        }
        self.requeue(fetched, deadline).await
    }

    /// Moves the job out of this process's working list to where `outcome` says, trying until
    /// Redis takes the step: meanwhile the job stays held, so no sweep runs it again.
    pub(crate) async fn settle(&self, fetched: &Fetched, outcome: Outcome<'_>) {
        self.settle_in(&self.working, fetched, outcome, Until::Done, &[])
            .await;
    }

    /// Puts an entry that is not a job into the dead set, wrapped so dashboards can show it:
    /// class `jobs::InvalidPayload`, the entry as it was as the one argument, and the reason as
    /// the error message.
    pub(crate) async fn bury_invalid(&self, fetched: &Fetched, reason: &str) {
        self.bury_invalid_in(&self.working, fetched, reason, Until::Done, &[])
            .await;
    }

    /// [`bury_invalid`](Self::bury_invalid) for an entry of any process's working list, with
    /// `alive_guard` as in [`settle_in`](Self::settle_in).
    pub(crate) async fn bury_invalid_in(
        &self,
        list: &str,
        fetched: &Fetched,
        reason: &str,
        until: Until,
        alive_guard: &[String],
    ) {
        let json = invalid_entry(&fetched.json, &fetched.queue, reason, Timestamp::now());
        // JSON that is not a job may still name a unique lock (a field of a type a job cannot
        // have): buried, it releases it.
        let release = crate::api::JobRecord::from_bytes(fetched.json.clone()).unique_release();
        let outcome = Outcome::Dead {
            json: &json,
            release: release.as_ref(),
        };
        self.settle_in(list, fetched, outcome, until, alive_guard)
            .await;
    }

    /// Moves `fetched` out of `list` (any process's working list) to where `outcome` says;
    /// with `alive_guard` (a dead owner's liveness keys), only while none of them exists.
    /// Returns whether Redis took the step.
    pub(crate) async fn settle_in(
        &self,
        list: &str,
        fetched: &Fetched,
        outcome: Outcome<'_>,
        until: Until,
        alive_guard: &[String],
    ) -> bool {
        let keys = self.client.keys();
        let mut call = Call::default();
        call.key(list);
        let taken = &fetched.json[..];
        let release = match outcome {
            Outcome::Dead { release, .. } => release,
            _ => None,
        };
        // A batch job's retry is a failure of its member, its burial a death; the update goes
        // before the settle, in the same round trip (`docs/batches.md`).
        let update = match outcome {
            Outcome::Retry { json, .. } => {
                MemberUpdate::of_job(taken, MemberOutcome::Failure, Some(json), None)
            }
            Outcome::Dead { json, .. } => {
                MemberUpdate::of_job(taken, MemberOutcome::Death, Some(json), None)
            }
            _ => None,
        };
        call.arg(release.map_or("", |release| release.jid.as_str()));
        // How many arguments the outcome passes: a lease (ARGV[8]) comes after blanks.
        let used = match outcome {
            Outcome::Requeue => 4,
            Outcome::Move { .. } | Outcome::Retry { .. } | Outcome::Reschedule { .. } => 5,
            Outcome::Dead { .. } => 7,
        };
        match outcome {
            Outcome::Requeue => {
                call.key(keys.queue(&fetched.queue))
                    .arg(taken)
                    .arg("requeue")
                    .arg(&*fetched.queue);
            }
            Outcome::Move { json } => {
                call.key(keys.queue(&fetched.queue))
                    .arg(taken)
                    .arg("move")
                    .arg(&*fetched.queue)
                    .arg(json);
            }
            Outcome::Retry { json, at } => {
                call.key(keys.retry())
                    .arg(taken)
                    .arg("retry")
                    .arg(at.as_epoch_seconds())
                    .arg(json);
            }
            Outcome::Reschedule { json, at } => {
                // The retry step's ZADD, into the schedule set.
                call.key(keys.schedule())
                    .arg(taken)
                    .arg("retry")
                    .arg(at.as_epoch_seconds())
                    .arg(json);
            }
            Outcome::Dead { json, .. } => {
                let now = Timestamp::now().as_epoch_seconds();
                call.key(keys.dead())
                    .arg(taken)
                    .arg("dead")
                    .arg(now)
                    .arg(json)
                    .arg(now - self.dead.timeout.as_secs_f64())
                    .arg(trim_rank(self.dead.max_jobs));
            }
        }
        call.key(keys.queues());
        if let Some(release) = release {
            call.key(keys.unique(&release.digest));
        }
        if let Some(lease) = &fetched.lease {
            // Released in this very step (`scripts/settle.lua`, ARGV[8]).
            for _ in used..7 {
                call.arg("");
            }
            call.arg(&lease.member).key(lease.key(keys));
        }
        for guard in alive_guard {
            call.key(guard);
        }
        let settled = match &update {
            None => {
                let invocation = call.invocation();
                persist("settle", until, || {
                    self.client.redis().script::<i64>(&invocation)
                })
                .await
            }
            Some(update) => {
                // Two steps, one round trip: the batch's update, then the settle, whose reply
                // is the one read.
                let mut pipeline = redis::pipe();
                member::add_script_to(&mut pipeline);
                update.add_guarded_to(&mut pipeline, keys, list, taken, alive_guard);
                call.add_eval_to(&mut pipeline);
                persist("settle", until, || {
                    self.client.redis().query::<(redis::Value, i64)>(&pipeline)
                })
                .await
                .map(|(update, settled)| {
                    member::log_errors(std::slice::from_ref(&update));
                    settled
                })
            }
        };
        // Retries and deaths are rare: their `WAIT` goes in a round trip of its own.
        if settled.is_some()
            && let Err(error) = self.client.redis().wait_replicas(Shortfall::Warn).await
        {
            tracing::warn!(%error, "cannot wait for replicas to take the settled job");
        }
        if settled == Some(0) && alive_guard.is_empty() {
            tracing::warn!(
                "the job was no longer in this worker's working list (handed back or recovered \
                 elsewhere); left as it is"
            );
        }
        if settled.is_some() {
            self.released(fetched);
        }
        settled.is_some()
    }
}

/// One call of `scripts/settle.lua` being put together: its keys and arguments, for a script
/// invocation or for an `EVAL` in a pipeline.
#[derive(Default)]
struct Call {
    /// `KEYS`, in order.
    keys: Vec<String>,
    /// `ARGV`, in order, as Redis receives them.
    args: Vec<Vec<u8>>,
}

impl Call {
    fn key(&mut self, key: impl Into<String>) -> &mut Self {
        self.keys.push(key.into());
        self
    }

    fn arg(&mut self, arg: impl redis::ToRedisArgs) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    /// The call as a script invocation (loading the script on `NOSCRIPT`).
    fn invocation(&self) -> redis::ScriptInvocation<'static> {
        let mut invocation = scripts::SETTLE.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        for arg in &self.args {
            invocation.arg(arg);
        }
        invocation
    }

    /// Adds the call to `pipeline` as an `EVAL` of the script's text, its reply kept.
    fn add_eval_to(&self, pipeline: &mut redis::Pipeline) {
        let command = pipeline
            .cmd("EVAL")
            .arg(scripts::SETTLE_SOURCE)
            .arg(self.keys.len());
        for key in &self.keys {
            command.arg(key);
        }
        for arg in &self.args {
            command.arg(arg);
        }
    }
}

/// The rank `ZREMRANGEBYRANK` trims the dead set to, keeping `max_jobs` members: `-(max + 1)`,
/// computed here (a `usize::MAX` meant as "no limit" would turn into a float in Lua and fail
/// after the job was added, leaving it in two places).
fn trim_rank(max_jobs: usize) -> i64 {
    let kept = i64::try_from(max_jobs)
        .unwrap_or(i64::MAX - 1)
        .min(i64::MAX - 1);
    -(kept + 1)
}

#[cfg(test)]
mod tests {
    use super::trim_rank;

    #[test]
    fn the_trim_rank_is_an_integer_whatever_the_limit() {
        assert_eq!(trim_rank(0), -1);
        assert_eq!(trim_rank(10_000), -10_001);
        assert_eq!(trim_rank(usize::MAX), i64::MIN + 1);
    }
}

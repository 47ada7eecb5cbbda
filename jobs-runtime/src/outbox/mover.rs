//! The move of outbox rows into Redis: the one step both the committing process and the relay
//! take, safe to repeat.
//!
//! Each row goes through `scripts/outbox_push.lua`, which pushes the job and marks its jid as
//! moved (`jobs:outbox:<jid>`) in one atomic step, or pushes nothing when the mark is there. A
//! mover that crashes after the push and before the row's `DELETE` commits leaves the row and
//! the mark; whoever moves the row next finds the mark, pushes nothing, and deletes the row.
//! Once the row is deleted the mark is deleted too (it expires after a day if that never
//! happens).
//!
//! Rows go in one pipeline per [`CALL_ROWS`] rows or about [`CALL_BYTES`] (the script loaded
//! first in the same pipeline), in the order given: rows of one queue are pushed in that order.
//!
//! What a row becomes:
//! - due now (no `run_at`, or it has passed): pushed to its queue with `enqueued_at` set to the
//!   moment of the move (the JSON's other bytes kept, `raw_job.rs`), so `enqueued_at` is when
//!   it reached Redis, as for a scheduled job the poller moves;
//! - due later: added to `schedule` as it was written, scored by `run_at`;
//! - a unique job: pushed only if its lock is free (taken in the same step); else a duplicate,
//!   dropped and logged;
//! - not a job (not a JSON object with a `class` string): to the dead set with the reason, as
//!   the scheduler buries a bad entry;
//! - its target's key holds another type: left in the table, logged; the rows after it move.

use std::time::Duration;

use redis::Value;

use super::table::Row;
use crate::client::Client;
use crate::error::Error;
use crate::payload::invalid_entry;
use crate::raw_job::RawJob;
use crate::redis::scripts;
use crate::timestamp::Timestamp;
use crate::unique;

/// How long the mark of a move lives when nobody deletes it: longer than any outage that could
/// keep a moved row from being deleted.
pub(crate) const MARK_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The most rows one pipeline carries.
pub(crate) const CALL_ROWS: usize = 1_000;

/// About the most bytes of jobs one pipeline carries (a bigger row goes alone).
pub(crate) const CALL_BYTES: usize = 4 << 20;

/// What the move did with a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The job is now in its queue, or in `schedule`.
    Pushed,
    /// It had been moved before (the mark was there): nothing pushed.
    MovedBefore,
    /// A unique job whose lock the job `holder` holds: dropped.
    Duplicate {
        /// The jid of the job holding the lock.
        holder: String,
    },
    /// Not a job: in the dead set with the reason.
    Buried,
    /// Redis could not take it (its target's key holds another type, or Redis refused the
    /// push): the row stays for a later move.
    Refused {
        /// Redis's error.
        error: String,
    },
}

impl Outcome {
    /// Whether the row is done with and can be deleted.
    pub(crate) fn is_done(&self) -> bool {
        !matches!(self, Self::Refused { .. })
    }
}

/// The rows of `rows` whose outcome (`outcomes` holds one a row, in order, for the first rows)
/// says they are done with and can be deleted.
pub(crate) fn done_rows<'a>(rows: &'a [Row], outcomes: &[Outcome]) -> Vec<&'a Row> {
    rows.iter()
        .zip(outcomes)
        .filter(|(_, outcome)| outcome.is_done())
        .map(|(row, _)| row)
        .collect()
}

/// Where one row goes, and how.
struct Target {
    /// The list or sorted set it goes to.
    key: String,
    /// The JSON pushed (the job, or its dead-set entry).
    json: String,
    /// To a queue list: the queue's name, for `queues`.
    queue: Option<String>,
    /// To a sorted set: the score.
    score: Option<f64>,
    /// A unique job's lock: its digest and how long it lives, in milliseconds.
    lock: Option<unique::Request>,
    /// When it is due, if later (for a testing mode).
    at: Option<Timestamp>,
    /// It is a dead-set entry for a row that is not a job.
    buried: bool,
}

/// A move cut short: Redis could not be reached for a pipeline.
#[derive(Debug)]
pub(crate) struct Partial {
    /// What became of the rows of the pipelines before it, in order (fewer than the rows).
    pub(crate) outcomes: Vec<Outcome>,
    /// Why the next pipeline failed.
    pub(crate) error: Error,
}

/// Moves `rows` into the Redis of `client`, in their order; returns what became of each, in
/// the same order. An error means Redis could not be reached for a pipeline: it carries the
/// outcomes of the pipelines before; the rows of the failed one and after may have moved (their
/// marks say so) and are to be moved again.
pub(crate) async fn push(client: &Client, rows: &[Row]) -> Result<Vec<Outcome>, Partial> {
    let now = crate::testing::now();
    let targets: Vec<Target> = rows.iter().map(|row| target(client, row, now)).collect();
    if let Some(mode) = crate::testing::active() {
        let mut outcomes = Vec::with_capacity(rows.len());
        for target in &targets {
            if target.buried {
                outcomes.push(Outcome::Buried);
                continue;
            }
            let pushed =
                match crate::testing::deliver(&mode, &target.json, target.at, target.lock.as_ref())
                    .await
                {
                    Ok(pushed) => pushed,
                    Err(error) => return Err(Partial { outcomes, error }),
                };
            outcomes.push(match pushed {
                crate::Pushed::Duplicate(holder) => Outcome::Duplicate {
                    holder: holder.as_str().to_owned(),
                },
                crate::Pushed::Queued(_) => Outcome::Pushed,
            });
        }
        return Ok(outcomes);
    }
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        let mut bytes = targets[start].json.len();
        while end < rows.len() && end - start < CALL_ROWS {
            bytes += targets[end].json.len();
            if bytes > CALL_BYTES {
                break;
            }
            end += 1;
        }
        match call(client, &rows[start..end], &targets[start..end]).await {
            Ok(called) => outcomes.extend(called),
            Err(error) => return Err(Partial { outcomes, error }),
        }
        start = end;
    }
    for (row, outcome) in rows.iter().zip(&outcomes) {
        match outcome {
            Outcome::Duplicate { holder } => tracing::info!(
                jid = %row.jid,
                %holder,
                "a unique job from the outbox is a duplicate of one holding its lock; dropped"
            ),
            Outcome::Refused { error } => tracing::warn!(
                jid = %row.jid,
                queue = %row.queue,
                %error,
                "Redis refused a job of the outbox; it stays there and is tried again"
            ),
            Outcome::Pushed | Outcome::MovedBefore | Outcome::Buried => {}
        }
    }
    Ok(outcomes)
}

/// Deletes the marks of rows that are gone from the table: they can no longer be moved again.
/// Best effort: a mark left behind expires after [`MARK_TTL`].
pub(crate) async fn forget_marks<'a>(client: &Client, jids: impl IntoIterator<Item = &'a str>) {
    let keys: Vec<String> = jids
        .into_iter()
        .map(|jid| client.keys().outbox_moved(jid))
        .collect();
    if keys.is_empty() || crate::testing::active().is_some() {
        return;
    }
    let unlink = redis::cmd("UNLINK").arg(&keys).clone();
    if let Err(error) = client.redis().command::<()>(&unlink).await {
        tracing::debug!(%error, "cannot delete the marks of moved outbox jobs; they expire");
    }
}

/// One pipeline: the script loaded, then run once per row.
async fn call(client: &Client, rows: &[Row], targets: &[Target]) -> Result<Vec<Outcome>, Error> {
    let keys = client.keys();
    let mut pipeline = redis::pipe();
    pipeline.ignore_errors();
    // Loaded in the same round trip, before its first use, so the EVALSHAs never meet NOSCRIPT.
    pipeline
        .cmd("SCRIPT")
        .arg("LOAD")
        .arg(scripts::OUTBOX_PUSH_SOURCE)
        .ignore();
    let mark_ms = MARK_TTL.as_millis().to_string();
    for (row, target) in rows.iter().zip(targets) {
        let command = pipeline
            .cmd("EVALSHA")
            .arg(scripts::OUTBOX_PUSH.get_hash())
            .arg(if target.lock.is_some() { 4 } else { 3 })
            .arg(keys.outbox_moved(&row.jid))
            .arg(&target.key)
            .arg(keys.queues());
        if let Some(lock) = &target.lock {
            command.arg(keys.unique(&lock.digest));
        }
        command
            .arg(&row.jid)
            .arg(&mark_ms)
            .arg(&target.json)
            .arg(target.queue.as_deref().unwrap_or(""))
            .arg(
                target
                    .score
                    .map(|score| score.to_string())
                    .unwrap_or_default(),
            );
        if let Some(lock) = &target.lock {
            command.arg(lock.ttl_ms);
        }
    }
    let replies: Vec<redis::RedisResult<Value>> = client.redis().query(&pipeline).await?;
    Ok(replies.into_iter().map(outcome).collect())
}

/// What one run of the script answered.
fn outcome(reply: redis::RedisResult<Value>) -> Outcome {
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => {
            return Outcome::Refused {
                error: error.to_string(),
            };
        }
    };
    let text = |value: Option<&Value>| match value {
        Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(Value::SimpleString(text)) => text.clone(),
        _ => String::new(),
    };
    match &reply {
        Value::Array(parts) => match parts.first() {
            Some(Value::Int(0)) => Outcome::Pushed,
            Some(Value::Int(1)) => Outcome::MovedBefore,
            Some(Value::Int(2)) => Outcome::Duplicate {
                holder: text(parts.get(1)),
            },
            _ => Outcome::Refused {
                error: text(parts.get(1)),
            },
        },
        other => Outcome::Refused {
            error: format!("unexpected reply {other:?}"),
        },
    }
}

/// Where `row` goes at `now`, and as what.
fn target(client: &Client, row: &Row, now: Timestamp) -> Target {
    let keys = client.keys();
    let reason = match RawJob::parse(&row.payload) {
        Ok(mut job) if job.get_as::<String>("class").is_some() => {
            let later = row
                .run_at
                .filter(|at| *at > now.as_epoch_seconds())
                .map(Timestamp::from_epoch_seconds);
            let lock = lock_of(&job, later.unwrap_or(now), now);
            return match later {
                Some(at) => Target {
                    key: keys.schedule(),
                    json: row.payload.clone(),
                    queue: None,
                    score: Some(at.as_epoch_seconds()),
                    lock,
                    at: Some(at),
                    buried: false,
                },
                None => {
                    let queue = job.prepare_push(now);
                    Target {
                        key: keys.queue(&queue),
                        json: job.to_json(),
                        queue: Some(queue),
                        score: None,
                        lock,
                        at: None,
                        buried: false,
                    }
                }
            };
        }
        Ok(_) => "the row is not a job (it has no `class` string)".to_owned(),
        Err(error) => format!("the row is not a job ({error})"),
    };
    let reason = format!("{reason}; it was row {} of the outbox", row.id);
    tracing::error!(jid = %row.jid, %reason, "a row of the outbox is not a job; moved to the dead set");
    Target {
        key: keys.dead(),
        json: invalid_entry(&row.payload, &row.queue, &reason, now),
        queue: None,
        score: Some(now.as_epoch_seconds()),
        lock: None,
        at: None,
        buried: true,
    }
}

/// The lock a unique job takes when it reaches Redis: its digest (`jobs_unique`), living its
/// `unique_for` from when it is `due`. `None` for other jobs, and for a job whose options do not
/// read (it is pushed as a plain job, as a worker would run it).
fn lock_of(job: &RawJob, due: Timestamp, now: Timestamp) -> Option<unique::Request> {
    let digest = job
        .get_as::<String>(unique::LOCK)
        .filter(|digest| !digest.is_empty())?;
    let period = job
        .get_as::<serde_json::Value>(unique::UNIQUE_FOR)
        .and_then(|value| crate::options::period_of(unique::UNIQUE_FOR, &value).ok())?;
    Some(unique::Request::new(digest, period, now, due))
}

#[cfg(test)]
mod tests {
    use super::{Outcome, lock_of, outcome};
    use crate::raw_job::RawJob;
    use crate::timestamp::Timestamp;
    use redis::Value;

    #[test]
    fn the_scripts_answers_read_as_outcomes() {
        let reply = |code, text: &str| {
            Ok(Value::Array(vec![
                Value::Int(code),
                Value::BulkString(text.into()),
            ]))
        };
        assert_eq!(outcome(reply(0, "")), Outcome::Pushed);
        assert_eq!(outcome(reply(1, "")), Outcome::MovedBefore);
        assert_eq!(
            outcome(reply(2, "abc")),
            Outcome::Duplicate {
                holder: "abc".to_owned()
            }
        );
        assert!(!outcome(reply(3, "WRONGTYPE")).is_done());
        assert!(outcome(reply(2, "abc")).is_done());
    }

    #[test]
    fn a_unique_job_locks_for_its_period_after_it_is_due() {
        let job = RawJob::parse(br#"{"class":"A","unique_for":60,"jobs_unique":"ab"}"#).unwrap();
        let now = Timestamp::from_epoch_seconds(1_000.0);
        let lock = lock_of(&job, Timestamp::from_epoch_seconds(1_030.0), now).unwrap();
        assert_eq!((lock.digest.as_str(), lock.ttl_ms), ("ab", 90_000));
        let plain = RawJob::parse(br#"{"class":"A"}"#).unwrap();
        assert_eq!(lock_of(&plain, now, now), None);
    }
}

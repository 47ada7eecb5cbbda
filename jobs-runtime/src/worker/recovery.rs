//! Crash recovery: a live process hands back the jobs of processes that died holding them.
//!
//! Every `jobs` process adds itself to `jobs:workers` with its heartbeat. Every
//! `recovery_interval`, each live process reads that set (no keyspace scan) and, for every
//! member whose liveness key (`jobs:alive:<identity>`, `liveness.rs`) has expired, takes a short
//! lock (`SET jobs:recovering:<identity> NX`) so only one process recovers it, then moves each
//! job of the dead process's working list back to the right end of its queue, one atomic
//! `settle.lua` step each, guarded by the liveness key. The steps are not awaited one by one:
//! up to [`STEPS_IN_FLIGHT`] share the connection at once, started in the list's order, as a
//! pipeline would send them, and up to [`PROCESSES_IN_FLIGHT`] dead processes are recovered at
//! once, so a sweep waits for a round trip per hundred jobs rather than per job. Each step is
//! still atomic and moves its job only if it is still there, so a kill at any moment leaves
//! every job in the list or in its queue, once. A job records how often it was recovered
//! (`jobs_recoveries`); past `max_recoveries` it is presumed to be what kills its processes and
//! goes to the dead set instead.
//!
//! Only a job the dead process was seen running counts: one its last heartbeat listed in
//! `<identity>:work`. A job not listed was taken ahead and never started, or started after that
//! beat; the two look the same here, so the first such recovery of a job is spared (counted in
//! `jobs_recovered_unseen` only) and any later one counts. A job taken ahead is thus never
//! counted for a neighbour's crash, and a job that kills its process before a beat can list it
//! still reaches the dead set, one crash later. Knowing exactly which jobs had started would
//! cost a Redis write per job.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::backoff::Until;
use super::settle::{HAND_BACK_FOR, Outcome};
use super::shared::{Shared, queue_of};
use super::tasks::sleep_or;
use super::unit::{Fetched, RECOVERIES, UNSEEN_RECOVERIES};
use crate::error::Error;
use crate::error_class;
use crate::payload::Payload;
use crate::redis::scripts;
use crate::timestamp::Timestamp;
use crate::unique::Release;

/// How long the recovery lock lasts: recovering one list takes milliseconds, and a recovery
/// cut short (Redis died under it) must not block the next attempt for long.
const LOCK_SECONDS: u64 = 10;

/// How many hand-back steps of one dead process are sent before the first reply is awaited.
/// Each step is atomic and checks the job is still there, so their number in flight changes
/// what they do in no way, only how many round trips they wait for.
const STEPS_IN_FLIGHT: usize = 100;

/// How many dead processes one sweep recovers at once (each under its own lock).
const PROCESSES_IN_FLIGHT: usize = 4;

/// The loop that looks for dead processes' jobs.
pub(crate) struct Recovery {
    /// The live process that recovers.
    shared: Arc<Shared>,
    /// The average time between sweeps.
    interval: Duration,
}

impl Recovery {
    /// Sweeps about every `interval`, burying a job recovered more than the process's
    /// `max_recoveries`.
    pub(crate) fn new(shared: Arc<Shared>, interval: Duration) -> Self {
        Self { shared, interval }
    }

    /// Sweeps until `shutdown` (the stop phase). Cancellation-safe between sweeps; a sweep cut
    /// short leaves each job either moved or where it was, and its lock expires by itself.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        loop {
            // ±20 % so that processes started together do not sweep together.
            let pause = self.interval.mul_f64(rand::rng().random_range(0.8..1.2));
            if sleep_or(&shutdown, pause).await {
                return;
            }
            if let Err(error) = self.sweep().await {
                tracing::warn!(%error, "cannot look for dead processes' jobs; will try again");
            }
        }
    }

    /// One round: hands back the jobs of every dead process this one can lock; returns how
    /// many.
    pub(crate) async fn sweep(&self) -> Result<usize, Error> {
        recover_dead(&self.shared, self.shared.max_recoveries).await
    }
}

/// Hands back the jobs of every dead process `shared` can lock; returns how many. A process
/// whose recovery fails (a wrong-typed key, Redis going away) is logged and left for the next
/// sweep; the others are recovered all the same.
async fn recover_dead(shared: &Shared, max_recoveries: u32) -> Result<usize, Error> {
    let members: Vec<String> = shared
        .redis()
        .command(redis::cmd("SMEMBERS").arg(shared.keys().workers()))
        .await?;
    // Collected before they run: a lazy iterator held across the awaits is not `Send` for
    // every lifetime, as the worker's tasks must be.
    let recoveries: Vec<_> = members
        .iter()
        .filter(|id| **id != shared.identity)
        .map(|identity| async move {
            match recover_if_dead(shared, identity, max_recoveries).await {
                Ok(count) => count,
                Err(error) => {
                    tracing::warn!(process = %identity, %error, "cannot recover a dead process's jobs; will try again");
                    0
                }
            }
        })
        .collect();
    Ok(windowed(recoveries, PROCESSES_IN_FLIGHT)
        .await
        .into_iter()
        .sum())
}

/// Runs `steps` with up to `window` of them in flight, each started in their order, so the
/// commands they send first share the connection as a pipeline's would, in about that order (a
/// step that has to try again goes behind); returns their outputs in the order they ended.
async fn windowed<F: Future>(steps: Vec<F>, window: usize) -> Vec<F::Output> {
    stream::iter(steps)
        .buffer_unordered(window.max(1))
        .collect()
        .await
}

/// Hands back the jobs of `identity` if it is dead and this process gets its lock; returns how
/// many.
async fn recover_if_dead(shared: &Shared, identity: &str, max: u32) -> Result<usize, Error> {
    let keys = shared.keys();
    let Some(guard) = dead_guard(shared, identity).await? else {
        return Ok(0);
    };
    let locked: Option<String> = shared
        .redis()
        .command(
            redis::cmd("SET")
                .arg(keys.recovering(identity))
                .arg(&shared.identity)
                .arg("NX")
                .arg("EX")
                .arg(LOCK_SECONDS),
        )
        .await?;
    if locked.is_none() {
        return Ok(0);
    }
    let count = match recover_one(shared, identity, &guard, max).await {
        Ok(count) => count,
        Err(error) => {
            // Let the next sweep (this process's or another's) try again at once.
            let _ = shared
                .redis()
                .command::<i64>(redis::cmd("DEL").arg(keys.recovering(identity)))
                .await;
            return Err(error);
        }
    };
    if count > 0 {
        tracing::warn!(process = %identity, jobs = count, "handed back the jobs of a dead process");
    }
    Ok(count)
}

/// Whether `identity` is dead, and if so the keys whose return means it is alive after all:
/// its liveness key (`jobs:alive:<identity>`), and its Sidekiq hash when that is gone too (a
/// process of an older `jobs` beats only the hash). `None`: alive.
async fn dead_guard(shared: &Shared, identity: &str) -> Result<Option<Vec<String>>, Error> {
    let keys = shared.keys();
    let (alive, beating, keeps_liveness): (bool, bool, bool) = shared
        .redis()
        .query(
            redis::pipe()
                .exists(keys.alive(identity))
                .exists(keys.process(identity))
                .hexists(keys.process(identity), "jobs_liveness"),
        )
        .await?;
    Ok(if alive || (beating && !keeps_liveness) {
        // Alive: by its liveness key, or, for an older process, by Sidekiq's hash.
        None
    } else if beating {
        // Its liveness lapsed; its hash outlives it by up to 50 s.
        Some(vec![keys.alive(identity)])
    } else {
        Some(vec![keys.alive(identity), keys.process(identity)])
    })
}

/// Hands back one dead process's jobs, then forgets the process if its list is empty. An entry
/// that is no job (not UTF-8, not JSON) is buried with a reason; the others go back.
async fn recover_one(
    shared: &Shared,
    identity: &str,
    guard: &[String],
    max: u32,
) -> Result<usize, Error> {
    let keys = shared.keys();
    let list = keys.working(identity);
    // What its last beat listed; a `:work` key of another type lists nothing, and recovery
    // goes on (each job is then spared once, as one not seen running).
    let work: Vec<Vec<u8>> = shared
        .redis()
        .command(redis::cmd("HVALS").arg(keys.process_work(identity)))
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(process = %identity, %error, "cannot read a dead process's work");
            Vec::new()
        });
    let jobs: Vec<Vec<u8>> = shared
        .redis()
        .command(redis::cmd("LRANGE").arg(&list).arg(0).arg(-1))
        .await?;
    let seen = seen_running(&work);
    // Bounded: what is not moved now, the next sweep moves.
    let until = Until::Deadline(tokio::time::Instant::now() + HAND_BACK_FOR);
    // Only while the owner is still dead: a beat since means the jobs are its own. The steps
    // are made a chunk at a time, so a long list never holds a step per job in memory.
    for chunk in jobs.chunks(STEPS_IN_FLIGHT * 10) {
        let steps: Vec<_> = chunk
            .iter()
            .map(|json| async {
                let fetched = Fetched::new(queue_of(json), json.clone());
                let parsed = std::str::from_utf8(json)
                    .map_err(|error| format!("it is not UTF-8 text: {error}"))
                    .and_then(|text| {
                        Payload::from_json(text)
                            .map(|payload| (payload, text))
                            .map_err(|error| error.to_string())
                    });
                match parsed {
                    Ok((payload, text)) => {
                        let seen = seen.contains(json.as_slice());
                        // A job buried for killing processes releases its unique lock; one handed
                        // back keeps it, so no duplicate slips in while it waits to run again.
                        let release = Release::of_payload(&payload);
                        let (outcome_json, dead) = recovered(payload, text, identity, max, seen);
                        let outcome = if dead {
                            Outcome::Dead {
                                json: &outcome_json,
                                release: release.as_ref(),
                            }
                        } else {
                            Outcome::Move {
                                json: &outcome_json,
                            }
                        };
                        shared
                            .settler
                            .settle_in(&list, &fetched, outcome, until, guard)
                            .await;
                    }
                    Err(error) => {
                        let reason =
                            format!("a dead process held an entry that is not a job ({error})");
                        shared
                            .settler
                            .bury_invalid_in(&list, &fetched, &reason, until, guard)
                            .await;
                    }
                }
            })
            .collect();
        windowed(steps, STEPS_IN_FLIGHT).await;
    }
    let mut forget = scripts::FORGET.prepare_invoke();
    forget
        .key(keys.workers())
        .key(keys.processes())
        .key(&list)
        .key(keys.recovering(identity));
    for key in guard {
        forget.key(key);
    }
    forget.arg(identity);
    let forgotten = shared.redis().script::<i64>(&forget).await?;
    if forgotten == 1 {
        // Dead for sure and its jobs handed back: its slots on capped queues come back now
        // rather than when its leases run out.
        match crate::cap::forget(&shared.client, identity).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::info!(process = %identity, leases = count, "released the leases of a dead process")
            }
            Err(error) => {
                tracing::warn!(process = %identity, %error, "cannot release a dead process's leases; they run out by themselves")
            }
        }
    }
    Ok(jobs.len())
}

/// The jobs a dead process's last heartbeat listed as running, as their exact bytes: the
/// `payload` of each value of its `<identity>:work` hash. A value that is not ours to read
/// lists nothing.
fn seen_running(work: &[Vec<u8>]) -> HashSet<Vec<u8>> {
    /// The one field read of a work hash's value.
    #[derive(serde::Deserialize)]
    struct Work {
        /// The job's JSON, as text.
        payload: String,
    }
    work.iter()
        .filter_map(|value| serde_json::from_slice::<Work>(value).ok())
        .map(|work| work.payload.into_bytes())
        .collect()
}

/// The job as it goes back: its recovery count raised, or, past the limit, the error fields of
/// a job presumed to kill its processes; for a job the dead process was not `seen` running, on
/// its first such recovery, only its unseen count raised. Returns the JSON and whether it goes
/// to the dead set. The JSON is `original` with those fields set, every other field as it was
/// (the typed `_payload` is not needed: the job may be Ruby's, and a rewrite through it would
/// respell it).
fn recovered(
    _payload: Payload,
    original: &str,
    identity: &str,
    max: u32,
    seen: bool,
) -> (String, bool) {
    let Ok(mut job) = crate::raw_job::RawJob::parse(original) else {
        // Cannot happen for text that was just read as a job; never push an empty entry.
        return (original.to_owned(), false);
    };
    if !seen {
        let unseen = job.get_as::<u64>(UNSEEN_RECOVERIES).unwrap_or(0);
        job.set(UNSEEN_RECOVERIES, unseen.saturating_add(1));
        if unseen == 0 {
            // Taken ahead and never started, most likely: not this job's crash.
            return (job.to_json(), false);
        }
    }
    let count = job.get_as::<u64>(RECOVERIES).unwrap_or(0).saturating_add(1);
    job.set(RECOVERIES, count);
    let dead = count > u64::from(max);
    if dead {
        job.set("error_class", error_class::ABANDONED);
        job.set(
            "error_message",
            format!(
                "the process running this job ({identity}) stopped without finishing it, \
                 {count} times in a row; the job may be what stops it (a crash, an abort, \
                 running out of memory), so it was moved to the dead set"
            ),
        );
        if job.get("failed_at").is_none() {
            job.set("failed_at", Timestamp::now());
        }
    }
    (job.to_json(), dead)
}

#[cfg(test)]
mod tests {
    use super::{recovered, seen_running};
    use crate::payload::Payload;
    use crate::worker::unit::{RECOVERIES, UNSEEN_RECOVERIES};

    /// `recovered` of the job stored as `json`, seen running by the dead process.
    fn recover(json: &str, max: u32) -> (String, bool) {
        recovered(Payload::from_json(json).unwrap(), json, "h:1:a", max, true)
    }

    /// `recovered` of the job stored as `json`, not listed by the dead process's last beat.
    fn recover_unseen(json: &str, max: u32) -> (String, bool) {
        recovered(Payload::from_json(json).unwrap(), json, "h:1:a", max, false)
    }

    #[test]
    fn a_job_not_seen_running_is_spared_once_then_counted() {
        let job = Payload::new("Taken", vec![]).to_json().unwrap();
        let (once, dead) = recover_unseen(&job, 0);
        assert!(!dead, "spared even with no recovery allowed");
        let spared = Payload::from_json(&once).unwrap();
        assert_eq!(spared.extra[UNSEEN_RECOVERIES], 1);
        assert!(!spared.extra.contains_key(RECOVERIES));
        let (twice, dead) = recover_unseen(&once, 1);
        assert!(!dead);
        let counted = Payload::from_json(&twice).unwrap();
        assert_eq!(counted.extra[UNSEEN_RECOVERIES], 2);
        assert_eq!(counted.extra[RECOVERIES], 1);
        assert!(recover_unseen(&twice, 1).1, "a third recovery buries it");
    }

    #[test]
    fn the_work_hash_lists_the_payloads_it_holds() {
        let work = [
            br#"{"queue":"a","payload":"{\"class\":\"A\"}","run_at":1}"#.to_vec(),
            b"not json".to_vec(),
            br#"{"queue":"b","payload":{"class":"B"},"run_at":1}"#.to_vec(),
        ];
        let seen = seen_running(&work);
        assert_eq!(seen.len(), 1);
        assert!(seen.contains(br#"{"class":"A"}"#.as_slice()));
    }

    #[test]
    fn counts_recoveries_and_buries_past_the_limit() {
        let (json, dead) = recover(&Payload::new("Crash", vec![]).to_json().unwrap(), 2);
        assert!(!dead);
        let once = Payload::from_json(&json).unwrap();
        assert_eq!(once.extra[RECOVERIES], 1);
        let (json, dead) = recover(&json, 2);
        assert!(!dead);
        let (json, dead) = recover(&json, 2);
        assert!(dead);
        let buried = Payload::from_json(&json).unwrap();
        assert_eq!(
            buried.error_class.as_deref(),
            Some(crate::error_class::ABANDONED)
        );
        assert!(buried.error_message.unwrap().contains("3 times"));
        assert!(buried.failed_at.is_some());
    }

    #[test]
    fn sets_only_its_own_fields() {
        let ruby = r#"{"class":"R","args":[123456789012345678901234567890,1.4119146844623421e-61],"retry":"5","tags":[1],"failed_at":1.5}"#;
        let (json, dead) = recover(ruby, 3);
        assert!(!dead);
        assert_eq!(json, ruby.replace(":1.5}", r#":1.5,"jobs_recoveries":1}"#));
        let (json, dead) = recover(&json.replace(":1}", ":3}"), 3);
        assert!(dead);
        assert!(json.starts_with(&ruby[..ruby.len() - 1]), "{json}");
        assert!(
            json.contains(r#""failed_at":1.5,"jobs_recoveries":4,"error_class":"jobs::Abandoned""#),
            "{json}"
        );
    }
}

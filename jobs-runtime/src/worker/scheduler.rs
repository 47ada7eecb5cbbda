//! The poller that moves due jobs from `retry` and `schedule` to their queues.
//!
//! Each round reads the due members of each set, oldest first, gives each a fresh
//! `enqueued_at` (and a `jid` or `queue` when it has none, as Sidekiq's poller does), and moves
//! them with `scripts/promote.lua`: one atomic step per member, in which a member is pushed only
//! if it is still in the set, so pollers racing each other (Rust or Ruby) never move a job
//! twice and a crash never loses one. The rewrite edits the stored text (`raw_job.rs`): every
//! other field keeps its exact bytes, so a job meant for Ruby reaches Ruby as it was written.
//!
//! A round never stops at one bad entry. An entry that is not a job (not JSON, not UTF-8, no
//! `class` string) goes to the dead set with the reason. A member whose queue key holds another
//! type stays where it is, unchanged, until someone fixes the key (the queue is logged once),
//! and the members after it move. `retry` and `schedule` are polled apart: an error in one
//! (Redis refusing a write, a set of the wrong type) does not keep the other from moving.
//!
//! Calls are kept small whatever the size of the jobs: a call carries each member once, with
//! its edit as a splice (the bytes that change), at most 1,000 members and about 4 MiB of them
//! ([`Promotion`]); a bigger member moves alone. Reads follow the same budget: the first read of
//! a round takes [`FIRST_READ`] members, later ones as many as 4 MiB holds at the sizes seen
//! (1,000 at most). A backlog drains in one round. Pollers that start on the same backlog at
//! once read the same oldest members, and all but one would find each call's members gone: a
//! poller whose call finds most of its members already moved ends its round for that set, and
//! the one moving them goes on alone (otherwise each racing poller repeats every read and call
//! for nothing, and two drain a backlog at half the speed of one).
//!
//! Between rounds it sleeps a random time around an average that grows with the number of live
//! processes (`SCARD processes` × 5 s by default), as Sidekiq's poller does, so a fleet checks
//! about every 5 s in all and processes don't poll in step.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::tasks::sleep_or;
use crate::client::Client;
use crate::error::Error;
use crate::payload::invalid_entry;
use crate::raw_job::RawJob;
use crate::redis::scripts::{Promoted, Promotion};
use crate::timestamp::Timestamp;

/// The most due members one read takes.
const BATCH: usize = Promotion::MAX_MEMBERS;

/// About the most bytes of members one read takes once their sizes are known, as one script
/// call carries.
const CALL_BYTES: usize = Promotion::MAX_BYTES;

/// How many members the first read of a round takes, before their sizes are known.
const FIRST_READ: usize = 100;

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
    /// The queues whose key held another type last round, so each is logged once.
    unusable: Mutex<HashSet<String>>,
}

/// A due member, ready to move: its queue and the JSON it becomes, or its dead-set entry.
enum Move {
    /// To `queue` as `json`.
    Push { queue: String, json: String },
    /// To the dead set as `entry`.
    Bury { entry: String },
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
            unusable: Mutex::new(HashSet::new()),
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

    /// One round: moves every due member of `retry` and of `schedule`; returns how many, or
    /// the first error, once both sets were tried.
    pub(crate) async fn poll(&self) -> Result<usize, Error> {
        let keys = self.client.keys();
        let mut moved = 0;
        let mut failure = None;
        let mut unusable = HashSet::new();
        for set in [keys.retry(), keys.schedule()] {
            match self.drain(&set, &mut unusable).await {
                Ok(count) => moved += count,
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        self.report(unusable);
        match failure {
            Some(error) => Err(error),
            None => Ok(moved),
        }
    }

    /// Moves the due members of `set`; returns how many moved. Queues whose key holds
    /// another type are added to `unusable`.
    async fn drain(&self, set: &str, unusable: &mut HashSet<String>) -> Result<usize, Error> {
        let mut moved = 0;
        // Members this round leaves where they are, at the front of the due range.
        let mut left = 0;
        let mut want = FIRST_READ;
        loop {
            let now = Timestamp::now();
            let due: Vec<Vec<u8>> = self
                .client
                .redis()
                .command(
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(set)
                        .arg("-inf")
                        .arg(now.as_epoch_seconds())
                        .arg("LIMIT")
                        .arg(left)
                        .arg(want),
                )
                .await?;
            if due.is_empty() {
                break;
            }
            let promoted = self.promote(set, &due, now).await?;
            moved += promoted.moved;
            left += promoted.left;
            // Members neither moved nor left were gone: another poller moved them first.
            let taken_elsewhere = due.len().saturating_sub(promoted.moved + promoted.left);
            unusable.extend(promoted.unusable.into_iter().map(|(queue, error)| {
                tracing::debug!(%set, %queue, %error, "a due job's queue cannot take it");
                queue
            }));
            if due.len() < want {
                break;
            }
            if taken_elsewhere * 2 > due.len() {
                // Another poller is draining this backlog from the same end: chasing it would
                // only repeat its reads. It goes on; this one looks again next round.
                tracing::debug!(%set, moved, "another poller is moving the due jobs; leaving them to it");
                break;
            }
            let average = due.iter().map(Vec::len).sum::<usize>() / due.len();
            want = (CALL_BYTES / average.max(1)).clamp(1, BATCH);
        }
        Ok(moved)
    }

    /// Moves the members `due` of `set` to their queues (an entry that is not a job to the
    /// dead set), in calls of about [`CALL_BYTES`] at most.
    async fn promote(&self, set: &str, due: &[Vec<u8>], now: Timestamp) -> Result<Promoted, Error> {
        let keys = self.client.keys();
        let moves: Vec<Move> = due.iter().map(|member| prepare(set, member, now)).collect();
        let mut total = Promoted::default();
        let mut call = Promotion::new(keys, set);
        for (member, next) in due.iter().zip(&moves) {
            if !call.has_room_for(member.len()) {
                self.call(set, &call, now, &mut total).await?;
                call = Promotion::new(keys, set);
            }
            match next {
                Move::Push { queue, json } => {
                    call.push(member, queue, keys.queue(queue), json.as_bytes());
                }
                Move::Bury { entry } => call.bury(member, entry.as_bytes()),
            }
        }
        self.call(set, &call, now, &mut total).await?;
        Ok(total)
    }

    /// Runs one call and adds what it did to `total`. When the call of a member bigger than a
    /// call's budget fails (it may be too big to send within the reply timeout), the member is
    /// left for the next round and the rest still move; any other error is returned.
    async fn call(
        &self,
        set: &str,
        call: &Promotion<'_>,
        now: Timestamp,
        total: &mut Promoted,
    ) -> Result<(), Error> {
        match call.run(self.client.redis(), now).await {
            Ok(promoted) => {
                total.moved += promoted.moved;
                total.left += promoted.left;
                total.unusable.extend(promoted.unusable);
                Ok(())
            }
            Err(error) if call.bytes() > Promotion::MAX_BYTES => {
                tracing::warn!(
                    %set,
                    bytes = call.bytes(),
                    %error,
                    "cannot move a big due job; it is left for the next round"
                );
                total.left += 1;
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Logs each queue that newly holds back due jobs; forgets the ones that no longer do.
    fn report(&self, unusable: HashSet<String>) {
        let Ok(mut known) = self.unusable.lock() else {
            return;
        };
        for queue in unusable.difference(&known) {
            tracing::warn!(
                %queue,
                "the key of queue `{queue}` holds another type than a list; its due jobs stay \
                 in the retry and scheduled sets until the key is deleted"
            );
        }
        *known = unusable;
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

/// What `member`, read from `set`, becomes: pushed to its queue with a fresh `enqueued_at`, or,
/// when it is not a job, its dead-set entry.
fn prepare(set: &str, member: &[u8], now: Timestamp) -> Move {
    let reason = match RawJob::parse(member) {
        Ok(mut job) if job.get_as::<String>("class").is_some() => {
            let queue = job.prepare_push(now);
            return Move::Push {
                queue,
                json: job.to_json(),
            };
        }
        Ok(_) => format!("the entry in `{set}` is not a job (it has no `class` string)"),
        Err(_) if std::str::from_utf8(member).is_err() => format!(
            "the entry in `{set}` is not a job (it is not UTF-8 text; its one argument is the \
             entry in base64)"
        ),
        Err(error) => format!("the entry in `{set}` is not a job ({error})"),
    };
    tracing::error!(%set, %reason, "a due entry is not a job; moved to the dead set");
    Move::Bury {
        entry: invalid_entry(member, "default", &reason, now),
    }
}

//! The idle way in: when every queue is empty, one `BLMOVE` per queue waits on a connection no
//! other command uses, so a push wakes the worker within a round trip, with no polling. At most
//! [`MAX_WAITS`] wait at once: past that many queues, the first ones (by
//! [`QueueOrder::preferred`](crate::worker::order::QueueOrder::preferred)) are waited on, and
//! the fetch script looks at them all every [`POLL`], so that a worker on a thousand queues
//! holds a few connections, not a thousand. The connections are not a queue's own: a wait takes
//! any one that is free.
//!
//! A `BLMOVE` still waiting when another returns is left to finish; the job it may bring is
//! already in the working list, and is run (or handed back at shutdown) when it arrives. Going
//! quiet cuts the waits short with `CLIENT UNBLOCK` where Redis allows it, so quiet and stop
//! take milliseconds, not up to [`BLOCK`]. The jobs taken ahead by the busy way in wait here
//! too ([`IdleFetch::pending`]), so that every job in the working list that no task holds yet
//! is in one place; each is held in the process's [`InFlight`] as pending while it waits
//! ([`Taken`]), so that no other capsule's sweep takes it up. Only unpaused queues are waited on. Each `BLMOVE` has a `SISMEMBER paused
//! <q>` pipelined behind it, which Redis runs right after the move, so a job taken from a queue
//! paused meanwhile (by a `BLMOVE` sent before the pause) is known as such at no extra round
//! trip, and handed back by the fetcher instead of run ([`IdleFetch::take_paused`]). A `GET` of
//! the queue's cap rides behind it too: a job brought from a capped queue gets its lease before
//! it is reported (`scripts/cap_claim.lua`), or goes back to the front of its queue when the cap
//! filled meanwhile; the fetcher never waits on a queue it knows to be full.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use redis::{FromRedisValue, RedisResult, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::redis::{is_redirection, needs_new_master};
use crate::worker::in_flight::{InFlight, Taken};
use crate::worker::shared::Shared;
use crate::worker::tasks::sleep_or;
use crate::worker::unit::Fetched;

/// How long an idle `BLMOVE` blocks on the server before it returns empty (Sidekiq's 2 s).
pub(crate) const BLOCK: Duration = Duration::from_secs(2);

/// The most `BLMOVE`s one fetcher has waiting at once, and so the most connections it holds
/// for them.
pub(crate) const MAX_WAITS: usize = 16;

/// How often an idle fetcher with more queues than [`MAX_WAITS`] looks at all of them (one run
/// of the fetch script), for the jobs pushed to the queues it does not wait on.
pub(crate) const POLL: Duration = Duration::from_millis(500);

/// What one `BLMOVE` brought back.
struct Reply {
    /// The queue it waited on.
    queue: String,
    /// Its connection, for the next wait; `None` when the connection broke.
    connection: Option<BlockingConnection>,
    /// The job it moved, if any.
    result: Result<Option<Vec<u8>>, Error>,
    /// Whether the queue was paused right after the move.
    paused: bool,
    /// The lease the job holds on its queue's cap, if the queue is capped.
    lease: Option<crate::cap::Lease>,
}

/// A connection for one `BLMOVE` at a time.
struct BlockingConnection {
    /// A connection whose reply timeout outlasts [`BLOCK`].
    connection: crate::redis::Link,
    /// Its `CLIENT ID`, for `CLIENT UNBLOCK`; `None` when Redis would not say.
    id: Option<i64>,
}

impl BlockingConnection {
    async fn open(shared: &Shared) -> Result<Self, Error> {
        let mut connection = shared.redis().blocking_connection(BLOCK).await?;
        let id = redis::cmd("CLIENT")
            .arg("ID")
            .query_async::<i64>(&mut connection)
            .await
            .ok();
        Ok(Self { connection, id })
    }
}

/// The idle `BLMOVE`s, at most [`MAX_WAITS`], each on a connection with no other command
/// waiting; and the jobs taken but not started yet.
pub(crate) struct IdleFetch {
    /// The connections with no command waiting.
    idle: Vec<BlockingConnection>,
    /// The queues with a `BLMOVE` waiting, and the client id of its connection.
    busy: HashMap<String, Option<i64>>,
    /// Jobs in the working list that no task runs yet: brought by a `BLMOVE`, taken ahead by a
    /// fetch, or found by a sweep.
    pub(crate) pending: VecDeque<Taken>,
    /// Jobs that were pending when this process may have been presumed dead: never started
    /// from memory, still held (so no other capsule takes them up) until the next sweep finds
    /// which are still in the working list.
    pub(crate) forgotten: Vec<Taken>,
    /// Jobs a `BLMOVE` brought from a queue that was paused by then: never started, handed
    /// back by the fetcher.
    brought_paused: Vec<Taken>,
    /// Where the jobs taken are held as pending.
    in_flight: Arc<InFlight>,
    /// Where each `BLMOVE`'s task reports.
    sender: mpsc::UnboundedSender<Reply>,
    /// What the `BLMOVE`s reported.
    receiver: mpsc::UnboundedReceiver<Reply>,
    /// A reply may have been lost (a broken connection, a failed fetch): the working list must
    /// be swept for jobs no one holds.
    pub(crate) sweep: bool,
}

impl IdleFetch {
    /// No `BLMOVE` waiting, and nothing pending; the jobs taken are held in `in_flight`.
    pub(crate) fn new(in_flight: Arc<InFlight>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            idle: Vec::new(),
            busy: HashMap::new(),
            pending: VecDeque::new(),
            forgotten: Vec::new(),
            brought_paused: Vec::new(),
            in_flight,
            sender,
            receiver,
            sweep: false,
        }
    }

    /// How many `BLMOVE`s are waiting.
    pub(crate) fn outstanding(&self) -> usize {
        self.busy.len()
    }

    /// Whether the working list should be swept now: a reply was lost, and no `BLMOVE` that
    /// could still bring a job is waiting.
    pub(crate) fn needs_sweep(&self) -> bool {
        self.sweep && self.busy.is_empty()
    }

    /// Files every reply the `BLMOVE`s sent so far.
    pub(crate) fn receive_all(&mut self) {
        while let Ok(reply) = self.receiver.try_recv() {
            self.receive(reply);
        }
    }

    /// Files what a `BLMOVE` brought back; `true` when it failed.
    fn receive(&mut self, reply: Reply) -> bool {
        self.busy.remove(&reply.queue);
        if let Some(connection) = reply.connection {
            self.idle.push(connection);
        }
        match reply.result {
            Ok(Some(json)) if reply.paused => {
                let taken = self.take(Fetched::new(reply.queue, json).with_lease(reply.lease));
                self.brought_paused.push(taken);
                false
            }
            Ok(Some(json)) => {
                let taken = self.take(Fetched::new(reply.queue, json).with_lease(reply.lease));
                self.pending.push_back(taken);
                false
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(queue = %reply.queue, %error, "waiting for jobs failed");
                self.sweep = true;
                true
            }
        }
    }

    /// Holds `job`, just moved into the working list, as pending.
    pub(crate) fn take(&self, job: Fetched) -> Taken {
        self.in_flight.take(job)
    }

    /// Up to `max` of the jobs pending, oldest first (replies not yet
    /// [received](Self::receive_all) are left for later).
    pub(crate) fn ready(&mut self, max: usize) -> Vec<Taken> {
        let count = max.min(self.pending.len());
        self.pending.drain(..count).collect()
    }

    /// Takes out the jobs to hand back for a pause: those a `BLMOVE` brought from a queue
    /// paused by then, and the pending jobs `paused` chooses; oldest first (the pending ones
    /// keep their order).
    pub(crate) fn take_paused(&mut self, paused: impl Fn(&Fetched) -> bool) -> Vec<Taken> {
        let mut back: Vec<Taken> = self.brought_paused.drain(..).collect();
        // Most passes find nothing to take out: the list is left as it is.
        if self.pending.iter().any(|job| paused(job)) {
            let (picked, kept): (VecDeque<Taken>, VecDeque<Taken>) =
                self.pending.drain(..).partition(|job| paused(job));
            self.pending = kept;
            back.extend(picked);
        }
        back
    }

    /// Waits on the queues of `queues`, the first [`MAX_WAITS`] of them in their order, until
    /// one brings a job (left in [`pending`](Self::pending), or to hand back when its queue was
    /// paused), all time out, `bound` (when given) passes, or `quiet` is cancelled. When some
    /// queues are left without a wait, `bound` is at most [`POLL`], for the fetch script to
    /// look at them. The `BLMOVE`s still waiting when `bound` passes are left to finish, as when
    /// another one returns.
    pub(crate) async fn wait(
        &mut self,
        shared: &Arc<Shared>,
        queues: &[String],
        quiet: &CancellationToken,
        bound: Option<Duration>,
    ) {
        // A BLMOVE puts jobs in the working list without the fetch script. The fetcher comes
        // here only after the script found every queue empty, in the same pass, and the script
        // registers this process for crash recovery (`jobs:workers`), so recovery knows whose
        // working list the job enters even if Redis restarted empty.
        // While a sweep is owed no new `BLMOVE` starts, so those waiting end within `BLOCK` and
        // the sweep runs (past 16 queues, waits restarted every pass would keep some always
        // waiting, and it never would). A sweep that failed is tried again after a pause.
        if self.sweep && self.busy.is_empty() {
            sleep_or(quiet, Duration::from_secs(1)).await;
            return;
        }
        let mut unwatched = false;
        for queue in queues {
            if self.busy.contains_key(queue) {
                continue;
            }
            if self.sweep || self.busy.len() >= MAX_WAITS {
                unwatched = true;
                continue;
            }
            let connection = match self.idle.pop() {
                Some(connection) => connection,
                None => match BlockingConnection::open(shared).await {
                    Ok(connection) => connection,
                    Err(error) => {
                        tracing::warn!(%error, "cannot open a connection to wait for jobs; trying again in 1 s");
                        sleep_or(quiet, Duration::from_secs(1)).await;
                        return;
                    }
                },
            };
            self.busy.insert(queue.clone(), connection.id);
            tokio::spawn(blocking_move(
                Arc::clone(shared),
                queue.clone(),
                connection,
                self.sender.clone(),
            ));
        }
        let bound = match bound {
            _ if !unwatched => bound,
            Some(bound) => Some(bound.min(POLL)),
            None => Some(POLL),
        };
        let deadline = bound.map(|bound| tokio::time::Instant::now() + bound);
        loop {
            if !self.pending.is_empty() || !self.brought_paused.is_empty() || self.busy.is_empty() {
                return;
            }
            // A full capped queue may get room: after `bound`, or as soon as this process
            // releases a lease.
            let bounded = async {
                match deadline {
                    Some(deadline) => tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = shared.leases.wait_freed() => {}
                    },
                    None => std::future::pending().await,
                }
            };
            let failed = tokio::select! {
                () = quiet.cancelled() => return,
                () = bounded => return,
                reply = self.receiver.recv() => match reply {
                    Some(reply) => self.receive(reply),
                    None => return,
                },
            };
            if failed {
                // An error that comes back at once (a refused command) must not spin.
                sleep_or(quiet, Duration::from_secs(1)).await;
            }
        }
    }

    /// Waits for every outstanding `BLMOVE` (at most [`BLOCK`] plus a reply timeout) and
    /// returns every pending job, those they brought included (the forgotten ones stay).
    pub(crate) async fn collect(&mut self) -> Vec<Taken> {
        while !self.busy.is_empty() {
            match self.receiver.recv().await {
                Some(reply) => {
                    self.receive(reply);
                }
                None => break,
            }
        }
        let mut jobs: Vec<Taken> = self.brought_paused.drain(..).collect();
        jobs.extend(self.pending.drain(..));
        jobs
    }

    /// [`collect`](Self::collect) once every capsule's fetcher has stopped (no sweep runs any
    /// more), for the caller to hand the jobs back. The waiting `BLMOVE`s are unblocked first,
    /// so this takes a round trip rather than up to [`BLOCK`]; where Redis refuses
    /// `CLIENT UNBLOCK` (a managed service, an ACL), they are waited out. The forgotten jobs
    /// still in the working list are handed back from there.
    pub(crate) async fn finish(mut self, shared: &Shared) -> Vec<Fetched> {
        self.unblock(shared).await;
        self.collect()
            .await
            .into_iter()
            .map(Taken::release)
            .collect()
    }

    /// Ends the waiting `BLMOVE`s as if their block had run out. One that has already taken a
    /// job is not affected, and its job arrives as usual.
    pub(crate) async fn unblock(&self, shared: &Shared) {
        self.unblock_ids(shared, self.busy.values().flatten().copied())
            .await;
    }

    /// [`unblock`](Self::unblock) for the `BLMOVE`s waiting on `queues` only (queues just
    /// found paused).
    pub(crate) async fn unblock_queues(&self, shared: &Shared, queues: &[String]) {
        let ids = queues
            .iter()
            .filter_map(|queue| self.busy.get(queue).copied().flatten());
        self.unblock_ids(shared, ids).await;
    }

    async fn unblock_ids(&self, shared: &Shared, ids: impl Iterator<Item = i64>) {
        let mut pipeline = redis::pipe();
        for id in ids {
            pipeline.cmd("CLIENT").arg("UNBLOCK").arg(id).ignore();
        }
        if pipeline.is_empty() {
            return;
        }
        if let Err(error) = shared.redis().query::<()>(&pipeline).await {
            tracing::debug!(%error, "cannot unblock the idle fetches; waiting them out");
        }
    }
}

/// One `BLMOVE queue:<q> <working> RIGHT LEFT <block>`, with `SISMEMBER paused <q>` pipelined
/// behind it (Redis runs it right after the move, on the same connection), reported back
/// through `sender`.
async fn blocking_move(
    shared: Arc<Shared>,
    queue: String,
    mut blocking: BlockingConnection,
    sender: mpsc::UnboundedSender<Reply>,
) {
    let mut pipeline = redis::pipe();
    pipeline
        .ignore_errors()
        .cmd("BLMOVE")
        .arg(shared.keys().queue(&queue))
        .arg(&shared.working)
        .arg("RIGHT")
        .arg("LEFT")
        .arg(BLOCK.as_secs_f64())
        .cmd("SISMEMBER")
        .arg(shared.keys().paused())
        .arg(&queue)
        .cmd("GET")
        .arg(shared.keys().cap_queue(&queue));
    let replies = pipeline
        .query_async::<Vec<RedisResult<Value>>>(&mut blocking.connection)
        .await;
    let (result, paused, capped) = match replies {
        Ok(replies) => {
            let mut replies = replies.into_iter();
            let moved = replies.next().unwrap_or(Ok(Value::Nil)).and_then(|value| {
                Option::<Vec<u8>>::from_redis_value(value).map_err(redis::RedisError::from)
            });
            // A `paused` key of the wrong type counts as no queue paused, as in the fetch script.
            let paused = replies
                .next()
                .and_then(|reply| reply.ok())
                .and_then(|value| bool::from_redis_value(value).ok())
                .unwrap_or(false);
            // Any value counts as a cap: the claim script reads it again, atomically.
            let capped = replies
                .next()
                .and_then(|reply| reply.ok())
                .is_some_and(|value| value != Value::Nil);
            (moved, paused, capped)
        }
        Err(error) => (Err(error), false, false),
    };
    // A refused command leaves the connection usable; a broken one is replaced, and so is one
    // to a server demoted to replica (`READONLY`: through sentinels, the new one goes to the
    // new master) or no longer serving the slot (`MOVED`: on a cluster, the new one goes to
    // its new master).
    let connection = match &result {
        // On a cluster, a connection to the slot's old master answers `MOVED` after a failover.
        Err(error) if needs_new_master(error) || is_redirection(error) => None,
        _ => Some(blocking),
    };
    let result = result.map_err(|error| shared.redis().error(error));
    // A job of a capped queue needs a lease before it starts (one that was paused meanwhile
    // is handed back unstarted, and needs none).
    let (result, lease) = match result {
        Ok(Some(json)) if capped && !paused => match claim(&shared, &queue, &json, None).await {
            Ok(Claimed::Leased(lease)) => (Ok(Some(json)), Some(lease)),
            Ok(Claimed::Uncapped) => (Ok(Some(json)), None),
            Ok(Claimed::HandedBack) => (Ok(None), None),
            // The job is in the working list, its lease unknown (noted as held): the sweep
            // finds it and claims again with the same lease before it starts.
            Err(error) => (Err(error), None),
        },
        other => (other, None),
    };
    let reply = Reply {
        queue,
        connection,
        result,
        paused,
        lease,
    };
    // The receiver is gone only when the worker has stopped; a job brought now stays in the
    // working list, which shutdown hands back.
    let _ = sender.send(reply);
}

/// What [`claim`] did with a job of a capped queue found without a lease.
pub(super) enum Claimed {
    /// It holds this lease.
    Leased(crate::cap::Lease),
    /// The queue's cap was removed meanwhile: it runs without a lease.
    Uncapped,
    /// The cap was full: it went back to the front of its queue (or was no longer ours).
    HandedBack,
}

/// Gives `json`, in the working list without a lease, of the capped `queue`, a lease, or hands
/// it back to the front of its queue when the cap is full, in one atomic step
/// (`scripts/cap_claim.lua`). `member` is the lease asked for: a new one, or one noted for this
/// job whose claim's reply was lost (the script is idempotent by it). The lease is noted as held
/// before the script is sent, so that a lost reply leaves it known: renewed, then re-attached
/// or released by the sweep.
pub(super) async fn claim(
    shared: &Shared,
    queue: &str,
    json: &[u8],
    member: Option<String>,
) -> Result<Claimed, Error> {
    let keys = shared.keys();
    let member = member
        .unwrap_or_else(|| crate::cap::Leases::member(&shared.identity, shared.leases.reserve(1)));
    let lease = crate::cap::Lease::new(queue, member);
    shared.leases.hold(json, &lease);
    let mut invocation = crate::redis::scripts::CAP_CLAIM.prepare_invoke();
    invocation
        .key(&shared.working)
        .key(keys.queue(queue))
        .key(keys.cap_queue(queue))
        .key(keys.cap_queue_leases(queue))
        .arg(json)
        .arg(&lease.member)
        .arg(shared.leases.lifetime_ms());
    let claimed: i64 = shared.redis().script_once(&invocation).await?;
    if claimed != 1 {
        shared.leases.let_go(json, &lease);
    }
    Ok(match claimed {
        1 => Claimed::Leased(lease),
        2 => Claimed::Uncapped,
        _ => Claimed::HandedBack,
    })
}

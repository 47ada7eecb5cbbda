//! Reliable fetch: taking jobs from the queues into this process's working list, and starting
//! a task for each.
//!
//! A job taken is moved, in one atomic Redis step, from `queue:<q>` to `jobs:working:<identity>`,
//! and stays there until it is settled (acknowledged, retried, buried or handed back), so a
//! process killed at any moment loses no job. Two ways in:
//!
//! - **busy** (here): one Lua script takes as many jobs as there are free slots, and more, in
//!   this fetch's queue order (`scripts/fetch.lua`), weighted with each job drawn a queue of
//!   its own; on many queues, a first call looks at some of them alone (weighted, the first
//!   [`look::FIRST_LOOK`] of the round's order, those drawn jobs and those known to hold jobs;
//!   strict, those up to where the last fetch found jobs and [`look::FIRST_LOOK`] more), and a
//!   second at all only when it falls short ([`look`]);
//! - **idle** ([`idle`]): when every queue is empty, one `BLMOVE` per queue waits on its own
//!   connection, for at most [`idle::MAX_WAITS`] queues; past that many, the fetch script
//!   looks at them all every [`idle::POLL`].
//!
//! A paused queue ([`paused`]) is skipped by both: each fetch round says which queues are
//! paused, the jobs of a paused queue taken ahead go back to the front of their queue, and a
//! worker whose queues are all paused asks again every [`ALL_PAUSED_WAIT`] instead of waiting
//! on any queue.
//!
//! A capped queue ([`capped`], [`crate::cap`]) gives each round at most its free room, each job
//! with a lease, and only as many as start at once (never taken ahead); the idle wait takes
//! nothing from a full one and, while one is full, lasts at most [`CAPPED_WAIT`]. A job with a
//! lease that an idle `BLMOVE` brought while every slot was taken goes back to its queue if no
//! slot frees within [`CAPPED_WAIT`]; a hand-back always releases the job's lease; a sweep gives
//! each job it finds again its lease (`scripts/cap_claim.lua`) before it starts.

mod capped;
mod idle;
mod look;
mod paused;
mod round;
mod sweep;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use capped::{CAPPED_WAIT, CappedQueues};
use idle::Claimed;
pub(crate) use idle::{BLOCK, IdleFetch};
use look::{Asked, Holders, Looked, Span};
use paused::{ALL_PAUSED_WAIT, PausedQueues};
use round::{QueueKeys, Round};

use super::ack::Finished;
use super::capsule::Scope;
use super::in_flight::Taken;
use super::liveness::LapsesSeen;
use super::order::QueueOrder;
use super::processor::{Processed, process};
use super::settle::HAND_BACK_FOR;
use super::shared::Shared;
use super::tasks::sleep_or;
use super::unit::Fetched;
use crate::cap::Lease;
use crate::error::Error;
use crate::redis::scripts;

/// The most jobs one fetch takes.
const MAX_BATCH: usize = 100;

/// How long a job that would run alone waits for the acknowledgements before it.
const FLUSH_FOR: Duration = Duration::from_secs(30);

/// The fewest jobs a fetch asks for when it asks for more than the free slots.
const PREFETCH_MIN: usize = 20;

/// A fetch running on a task of its own.
type Refill = tokio::task::JoinHandle<Looked>;

/// Takes jobs and starts a task for each: the main loop of one capsule while it takes jobs.
pub(crate) struct Fetcher {
    /// What every job's task is given.
    shared: Arc<Shared>,
    /// The capsule it takes for: its concurrency, and which working-list entries are its own.
    capsule: Scope,
    /// The lapses of this process's liveness this fetcher has seen.
    lapses: LapsesSeen,
    /// The queues, and the order to take from them in.
    order: QueueOrder,
    /// The queues' keys, in the order of [`QueueOrder::names`]; shared with the refills.
    queue_keys: Arc<[QueueKeys]>,
    /// The concurrency slots: a job's task holds one until the job is settled.
    slots: Arc<Semaphore>,
    /// Stop when the queues are empty and no job runs (`Worker::drain`), rather than wait.
    until_idle: bool,
    /// How long a job one crash from the dead set waits for the running jobs to end before it
    /// runs beside them (the shutdown timeout: how long jobs are expected to take).
    suspect_wait: Duration,
    /// A job one crash from the dead set, handed back as it was taken ahead, to run alone.
    suspect: Option<Fetched>,
    /// A lapse of this process's liveness was seen: no job starts until a sweep has rebuilt,
    /// from the working list itself, the jobs still this process's.
    resync: bool,
    /// The idle `BLMOVE`s and the jobs taken but not started.
    idle: IdleFetch,
    /// A fetch taking the next batch while the last one runs, and how many jobs it asked for.
    refill: Option<(usize, Refill)>,
    /// Whether the last fetch came back full: the queues hold more, so a refill pays off. An
    /// idle worker (whose last fetch came back short) never refills.
    backlog: bool,
    /// Whether a round on many queues should look at some of them first ([`look`]): the last
    /// first look filled its request, or the last look at all of them took its jobs from the
    /// queues a first look would have asked alone. Where first looks miss the queues holding
    /// jobs (strict ones far down the order, weighted ones among more than
    /// [`look::FIRST_LOOK`] others), they would mostly fall short and cost a round trip each.
    look_first: bool,
    /// Strict order: how many of the queues, in order, the last fetch that took jobs reached
    /// (1 + the position of the furthest one it took from). A first look asks these and
    /// [`look::FIRST_LOOK`] more ([`Span::Strict`]).
    reach: usize,
    /// Weighted: the queues known to hold jobs, which a first look asks too.
    holders: Holders,
    /// Which of the queues are paused, as the newest fetch round said.
    paused: PausedQueues,
    /// Which of the queues are capped, and full, as the newest fetch round said.
    capped: CappedQueues,
}

impl Fetcher {
    /// A fetcher for `capsule`, taking from `order`'s queues while `slots` has room; with
    /// `until_idle`, it stops once every capsule's queues are empty and no job runs. A job one
    /// crash from the dead set waits at most `suspect_wait` to run alone.
    pub(crate) fn new(
        shared: Arc<Shared>,
        capsule: Scope,
        order: QueueOrder,
        slots: Arc<Semaphore>,
        until_idle: bool,
        suspect_wait: Duration,
    ) -> Self {
        let queue_keys = order
            .names()
            .iter()
            .map(|queue| QueueKeys::new(&shared, queue))
            .collect();
        let idle = IdleFetch::new(Arc::clone(&shared.in_flight));
        Self {
            shared,
            capsule,
            lapses: LapsesSeen::default(),
            order,
            queue_keys,
            slots,
            until_idle,
            suspect_wait,
            suspect: None,
            resync: false,
            idle,
            refill: None,
            backlog: false,
            look_first: false,
            reach: 0,
            holders: Holders::default(),
            paused: PausedQueues::new(),
            capped: CappedQueues::new(),
        }
    }

    /// Takes jobs while slots are free and starts one task per job, until `shutdown` (the
    /// quiet phase) or, with `until_idle`, until every capsule's queues are empty and no job
    /// runs. Returns
    /// the running tasks and the idle fetch, for shutdown to wait on and hand back.
    /// Cancellation-safe only through `shutdown`: dropping the future could drop jobs already
    /// taken.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) -> (JoinSet<()>, IdleFetch) {
        let quiet = shutdown;
        let slots = Arc::clone(&self.slots);
        let mut tasks = JoinSet::new();
        loop {
            while let Some(finished) = tasks.try_join_next() {
                log_task_end(finished);
            }
            if self.wait_while_faltering(&quiet).await {
                break;
            }
            if self.wait_at_gate(&quiet).await {
                break;
            }
            if self.resync && !self.resync().await {
                if sleep_or(&quiet, Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
            // A job holding a lease that waits for a slot wastes one of its cap's: if no slot
            // frees within `CAPPED_WAIT`, it goes back to its queue for any process with room.
            // A `BLMOVE` still out may bring such a job while every slot is taken: looked at
            // after the same wait.
            self.idle.receive_all();
            let leased_waiting = self.idle.outstanding() > 0
                || self.idle.pending.iter().any(|job| job.lease.is_some());
            let first = tokio::select! {
                biased;
                () = quiet.cancelled() => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = tokio::time::sleep(CAPPED_WAIT), if leased_waiting => {
                    self.idle.receive_all();
                    self.hand_back_leased_pending().await;
                    continue;
                }
            };
            let mut permits = vec![first];
            while permits.len() < MAX_BATCH {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }

            if self.idle.needs_sweep() {
                self.land_refill().await;
                self.sweep().await;
            }
            self.idle.receive_all();
            if self.idle.pending.len() < permits.len() && self.refill.is_some() {
                self.land_refill().await;
            }
            // Before the look at the queues: a job started or ended since means looking again.
            let looked_at = self.shared.in_flight.changes();
            let short = permits.len().saturating_sub(self.idle.pending.len());
            if short > 0 || self.paused.is_stale() {
                // A fetch round: takes what the free slots lack, and more, and says which
                // queues are paused; with no slot short, it only says which are paused.
                let wanted = if short == 0 {
                    0
                } else {
                    short.max(self.prefetch())
                };
                match self.take(wanted, short).await {
                    Ok(taken) => {
                        if wanted > 0 {
                            self.backlog = taken.len() >= wanted;
                        }
                        // Those beyond the free slots wait in the working list already,
                        // started as slots free up (and handed back at shutdown like any
                        // pending job).
                        self.take_ahead(taken).await;
                    }
                    Err(error) => {
                        // The script may have moved jobs whose reply never came: look for them.
                        self.idle.sweep = true;
                        tracing::warn!(capsule = %self.capsule.name, %error, "cannot fetch jobs; trying again in 1 s");
                        if self.idle.pending.is_empty() {
                            drop(permits);
                            sleep_or(&quiet, Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
            }
            self.hand_back_paused().await;
            let jobs = self.idle.ready(permits.len());
            if jobs.is_empty() && self.suspect.is_none() {
                // Keep one slot for the job the idle wait may bring; free the others.
                permits.truncate(1);
                let unpaused = self.paused.unpaused(self.order.preferred());
                let capped_full = self.capped.any_full(&unpaused);
                if self.until_idle {
                    // Drained: the unpaused queues are empty (a paused queue's jobs wait for
                    // its resume, not for this worker) and no job runs. A full capped queue's
                    // jobs wait for room held elsewhere: asked again after a short wait.
                    drop(permits);
                    if tasks.is_empty() && self.idle.outstanding() == 0 {
                        if capped_full {
                            self.wait_for_room(&quiet).await;
                            continue;
                        }
                        // This capsule is idle; the drain ends once every capsule is.
                        let drain = &self.capsule.drain;
                        let index = self.capsule.index;
                        if drain
                            .idle(index, looked_at, &self.shared.in_flight, &quiet)
                            .await
                        {
                            break;
                        }
                        continue;
                    }
                    if let Some(finished) = tasks.join_next().await {
                        log_task_end(finished);
                    }
                    continue;
                }
                if unpaused.is_empty() {
                    // Every queue paused: no `BLMOVE`, one round per wait, as Sidekiq sleeps.
                    drop(permits);
                    sleep_or(&quiet, ALL_PAUSED_WAIT).await;
                    continue;
                }
                // No `BLMOVE` on a full capped queue: its jobs wait in it for room.
                let queues = self.capped.with_room(&unpaused);
                if queues.is_empty() {
                    drop(permits);
                    self.wait_for_room(&quiet).await;
                    continue;
                }
                let bound = capped_full.then_some(CAPPED_WAIT);
                self.idle.wait(&self.shared, &queues, &quiet, bound).await;
                // Its queue was not paused right after the move (one that was is handed back on
                // the next pass): it starts now, as a job taken before a pause would.
                if let Some(job) = self.idle.pending.pop_front() {
                    if self.shared.pulse.take_lapse(&mut self.lapses) {
                        // Brought while this process may have been presumed dead: it starts
                        // only if the sweep finds it still in the working list.
                        self.idle.pending.push_front(job);
                        self.forget_taken_ahead();
                    } else if self.is_suspect(&job) {
                        drop(permits);
                        self.hand_back(&job).await;
                        self.run_alone(&mut tasks, handed_back(job), &slots, &quiet)
                            .await;
                    } else if let Ok(gate) = Arc::clone(&self.shared.gate).try_read_owned() {
                        self.start(&mut tasks, job, permits.pop(), gate);
                    } else {
                        // A job waits to run alone in the process (or runs): this one waits.
                        self.idle.pending.push_front(job);
                    }
                }
                continue;
            }
            if self.shared.pulse.take_lapse(&mut self.lapses) {
                // Presumed dead while this pass ran (a pause): these jobs may be another
                // process's by now. Those still in the working list come back by the sweep.
                self.forget_taken_ahead();
                continue;
            }
            let mut suspect = self.suspect.take();
            // Jobs that wait because a job of another capsule waits to run alone in the
            // process (or runs): the first that finds the gate closed, and every one after it.
            let mut held_back = Vec::new();
            for (job, permit) in jobs.into_iter().zip(permits) {
                if !held_back.is_empty() {
                    held_back.push(job);
                } else if self.is_suspect(&job) {
                    drop(permit);
                    self.hand_back(&job).await;
                    suspect.get_or_insert(handed_back(job));
                } else if let Ok(gate) = Arc::clone(&self.shared.gate).try_read_owned() {
                    self.start(&mut tasks, job, Some(permit), gate);
                } else {
                    held_back.push(job);
                }
            }
            let gated = !held_back.is_empty();
            // Back in front of the pending jobs, in their order, for the gate to open.
            for job in held_back.into_iter().rev() {
                self.idle.pending.push_front(job);
            }
            match suspect {
                Some(job) => self.run_alone(&mut tasks, job, &slots, &quiet).await,
                None if gated => {}
                None => self.start_refill(),
            }
        }
        // Jobs a refill brought are pending, to be handed back with the others.
        self.land_refill().await;
        (tasks, self.idle)
    }

    /// The name of its capsule, for logs and errors.
    pub(crate) fn capsule_name(&self) -> &str {
        &self.capsule.name
    }

    /// Waits, while every queue with jobs may be a full capped one, until this process releases
    /// a lease, [`CAPPED_WAIT`] passes (room freed by another process), or `quiet`.
    async fn wait_for_room(&self, quiet: &CancellationToken) {
        tokio::select! {
            () = quiet.cancelled() => {}
            () = tokio::time::sleep(CAPPED_WAIT) => {}
            () = self.shared.leases.wait_freed() => {}
        }
    }

    /// Starts taking the next batch while this one runs, when few jobs wait: the round trip
    /// then overlaps the work instead of stalling it.
    fn start_refill(&mut self) {
        let prefetch = self.prefetch();
        if !self.backlog
            || self.refill.is_some()
            || prefetch == 0
            || self.idle.pending.len() > prefetch / 2
        {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let keys = Arc::clone(&self.queue_keys);
        // Drawn, and looked with, as any fetch is.
        let draw = self.order.draw(prefetch, &mut rand::rng());
        let span = self.span();
        let first = self.first_look();
        let refill = tokio::spawn(async move {
            // Free slots 0: a refill takes no capped queue's job (it would wait to start).
            look::look(&shared, &keys, &span, &draw, prefetch, 0, first).await
        });
        self.refill = Some((prefetch, refill));
    }

    /// Waits for the refill in flight, if any, and adds what it took to the pending jobs.
    async fn land_refill(&mut self) {
        let Some((wanted, refill)) = self.refill.take() else {
            return;
        };
        self.backlog = false;
        match refill.await {
            Ok(looked) => match self.learn_looked(looked).await {
                Ok(taken) => {
                    self.backlog = taken.len() >= wanted;
                    self.take_ahead(taken).await;
                }
                Err(error) => {
                    // The script may have moved jobs whose reply never came: look for them.
                    self.idle.sweep = true;
                    tracing::warn!(capsule = %self.capsule.name, %error, "cannot fetch jobs; will look in the working list");
                }
            },
            Err(error) => {
                self.idle.sweep = true;
                tracing::warn!(capsule = %self.capsule.name, %error, "the fetch task failed; will look in the working list");
            }
        }
    }

    /// How many jobs one fetch takes when any slot is free: more than the free slots, so that
    /// a busy worker pays one round trip per batch rather than per freed slot. The surplus
    /// waits in the working list, as safe there as a running job. Weighted queues take as
    /// many (each job of a round is drawn a queue of its own, so a batch keeps their weights).
    /// While the newest rounds found one of the queues capped: 0, only what the free slots
    /// need (the round that first finds a cap takes only those too: `round::run`). A capped
    /// queue's job is never taken ahead (it would wait to start holding a lease), so a worker
    /// busy with jobs taken ahead would run next to none of a capped queue's, in strict order
    /// even when it comes first.
    fn prefetch(&self) -> usize {
        if self.capped.any() {
            return 0;
        }
        (self.capsule.concurrency * 4).clamp(PREFETCH_MIN, MAX_BATCH)
    }

    /// Whether a job is one crash away from the dead set: recovered from dead processes so
    /// often that the next recovery buries it. Such a job runs alone, so that a job is only
    /// buried for crashing processes by itself, never for being beside one that did.
    fn is_suspect(&self, job: &Fetched) -> bool {
        job.recoveries() >= self.shared.max_recoveries.max(1)
    }

    /// Hands a job back to the front of its queue, releasing its lease in the same step; if
    /// that fails, the working list is swept later so the job still runs (with its lease, which
    /// stays noted in `shared.leases`). Either way the job holds no lease any more: taken again,
    /// it needs a new one ([`handed_back`]).
    async fn hand_back(&mut self, job: &Fetched) {
        let deadline = tokio::time::Instant::now() + HAND_BACK_FOR;
        if !self.shared.settler.requeue(job, deadline).await {
            self.idle.sweep = true;
        }
    }

    /// Hands back the pending jobs that hold a lease (brought by idle `BLMOVE`s while every
    /// slot was taken), newest first, so that their slots on the cap go to a process that can
    /// run them now.
    async fn hand_back_leased_pending(&mut self) {
        let back = self.idle.take_paused(|job| job.lease.is_some());
        if back.is_empty() {
            return;
        }
        tracing::info!(
            count = back.len(),
            "handing back jobs of capped queues that got no slot in time"
        );
        for job in back.iter().rev() {
            self.hand_back(job).await;
        }
    }

    /// Runs `suspect` (a job one crash from the dead set, handed back a moment ago) alone in
    /// the whole process, every capsule included: takes the process's gate
    /// ([`Shared::gate`]) for writing, which waits until no job of any capsule runs and, from
    /// the moment it is asked for, keeps every other capsule's fetcher from starting one (they
    /// hold their jobs pending); then every slot of its own capsule; hands back whatever its
    /// idle `BLMOVE`s still bring, takes that very job back (by its bytes, whatever was handed
    /// back in front of it) and holds the gate and the slots while it runs. If it kills this
    /// process too, it is the only job recovered that was seen running: the other capsules'
    /// jobs taken ahead (or brought by their `BLMOVE`s) stay in the working list, but crash
    /// recovery does not count a job the dead process was never seen running, the first time
    /// (`recovery.rs`). On quiet it stays in its queue. Waiting is bounded by `suspect_wait`;
    /// after that it runs beside the running jobs, and the other capsules start jobs again.
    async fn run_alone(
        &mut self,
        tasks: &mut JoinSet<()>,
        suspect: Fetched,
        slots: &Arc<Semaphore>,
        quiet: &CancellationToken,
    ) {
        let queue = &suspect.queue;
        let all = u32::try_from(self.capsule.concurrency).unwrap_or(u32::MAX);
        let gate = Arc::clone(&self.shared.gate);
        let alone = async {
            let gate = gate.write_owned().await;
            let permits = Arc::clone(slots).acquire_many_owned(all).await;
            permits.map(|permits| (gate, permits))
        };
        let alone = tokio::select! {
            () = quiet.cancelled() => return,
            alone = tokio::time::timeout(self.suspect_wait, alone) => alone,
        };
        let admitted = match alone {
            Ok(Ok((gate, permits))) => Ok((gate, permits)),
            Ok(Err(_)) => return,
            Err(_) => {
                // Bounded: hour-long neighbours must not stall the process. Beside them, a
                // crash counts for them too, but none is one crash from the dead set.
                tracing::warn!(
                    capsule = %self.capsule.name,
                    %queue,
                    waited = ?self.suspect_wait,
                    "a job recovered from dead processes could not run alone; running it beside the running jobs"
                );
                let beside = async {
                    let permit = Arc::clone(slots).acquire_many_owned(1).await;
                    let gate = Arc::clone(&self.shared.gate).read_owned().await;
                    permit.map(|permit| (gate, permit))
                };
                let beside = tokio::select! {
                    () = quiet.cancelled() => return,
                    beside = beside => beside,
                };
                let Ok(beside) = beside else { return };
                Err(beside)
            }
        };
        // Nothing else of its capsule stays in the working list beside the suspect (a crash
        // would count it as recovered too): not the jobs that finished but wait for their
        // acknowledgement, nor those taken ahead, nor what the idle `BLMOVE`s bring.
        let flushed = tokio::time::timeout(FLUSH_FOR, self.shared.acker.flush());
        tokio::select! {
            () = quiet.cancelled() => return,
            _ = flushed => {}
        }
        self.land_refill().await;
        self.idle.unblock(&self.shared).await;
        for job in self.idle.collect().await {
            self.hand_back(&job).await;
        }
        if self.paused.contains(queue) {
            // Paused meanwhile: it waits in its queue for the resume, like its neighbours.
            return;
        }
        match self.claim(&suspect).await {
            Ok(Some(lease)) => {
                if admitted.is_ok() {
                    tracing::info!(
                        capsule = %self.capsule.name,
                        %queue,
                        "running a job recovered from dead processes alone"
                    );
                }
                let suspect = self.idle.take(suspect.with_lease(lease));
                match admitted {
                    Ok((gate, permits)) => self.start(tasks, suspect, Some(permits), gate),
                    Err((gate, permit)) => self.start(tasks, suspect, Some(permit), gate),
                }
            }
            Ok(None) => {}
            Err(error) => {
                self.idle.sweep = true;
                tracing::warn!(capsule = %self.capsule.name, %error, "cannot take a recovered job; trying again later");
            }
        }
    }

    /// Waits while a job of any capsule waits to run alone in the process, or runs alone
    /// ([`run_alone`](Self::run_alone)): no job starts meanwhile, and none is taken ahead.
    /// Returns `true` when `quiet` came meanwhile. One atomic step when the gate is open.
    async fn wait_at_gate(&self, quiet: &CancellationToken) -> bool {
        if self.shared.gate.try_read().is_ok() {
            return false;
        }
        tokio::select! {
            biased;
            () = quiet.cancelled() => true,
            // Fair: granted once the job waiting before it has run; let go at once.
            _open = self.shared.gate.read() => false,
        }
    }

    /// Starts the task that runs `job`, holding its concurrency slot until it is settled (or,
    /// for a success, until its acknowledgement is queued), and `gate`, its hold on the
    /// process's gate ([`Shared::gate`]: read for a job beside others, write for one alone),
    /// as long.
    fn start(
        &self,
        tasks: &mut JoinSet<()>,
        job: Taken,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        gate: impl Send + 'static,
    ) {
        let shared = Arc::clone(&self.shared);
        // Pending until now, running from now: no sweep sees it unheld in between.
        let (ticket, job) = shared.in_flight.start(job);
        // Boxed: a job's future is about 2 KB, and tokio moves a task's future by value as it
        // spawns it, and its whole stage again when it ends; behind a box each move is a pointer
        // (a tenth of a no-op job's CPU before).
        tasks.spawn(Box::pin(async move {
            match process(&shared, job).await {
                Processed::Succeeded(job, release, ending, marks) => {
                    // Held until the acknowledgement lands; the slot is free once it is queued.
                    shared.in_flight.finished(ticket);
                    let finished = Finished {
                        ticket,
                        json: job.json,
                        lease: job.lease,
                        release,
                        ending,
                        marks,
                    };
                    shared.acker.ack(finished).await;
                }
                // Its settle released its lease, if any, and said so (`Settler`).
                Processed::Settled => shared.in_flight.untrack(ticket),
                // Parked by its class's cap (its queue lease released with it), or gone.
                Processed::Parked => shared.in_flight.untrack(ticket),
            }
            drop(gate);
            drop(permit);
        }));
    }

    /// Moves up to `wanted` jobs into the working list (of a capped queue, only while fewer
    /// than `free` were taken, so that they start at once), and learns which queues are paused
    /// and which capped: one atomic step, or, on many queues, a first look at some and a second
    /// at all only when it falls short ([`look`]).
    async fn take(&mut self, wanted: usize, free: usize) -> Result<Vec<Fetched>, Error> {
        let draw = self.order.draw(wanted, &mut rand::rng());
        let looked = look::look(
            &self.shared,
            &self.queue_keys,
            &self.span(),
            &draw,
            wanted,
            free,
            self.first_look(),
        )
        .await;
        self.learn_looked(looked).await
    }

    /// Whether a round on many queues may look at some first. Not when the pauses
    /// known are stale (what a first look says of its queues alone leaves the others' as old as
    /// they were), when the last round came back short (the queues are mostly empty, and a
    /// first look would fall short too), nor when first looks have stopped paying.
    fn first_look(&self) -> bool {
        !self.paused.is_stale() && self.backlog && self.look_first
    }

    /// Which queues a first look would ask, by the order.
    fn span(&self) -> Span {
        if self.order.is_strict() {
            Span::Strict { reach: self.reach }
        } else {
            self.holders.span()
        }
    }

    /// Keeps what a fetch's rounds say of the queues, and returns the jobs they took; the
    /// error of a failed round when they took none (a drain must not take it for empty
    /// queues). When some were taken, the jobs of the failed round may be in the working list
    /// unheld: the working list is swept.
    async fn learn_looked(&mut self, looked: Looked) -> Result<Vec<Fetched>, Error> {
        if let Some(pay) = looked.first_looks_pay {
            self.look_first = pay;
        }
        if let Some(reach) = looked.reach {
            self.reach = reach;
        }
        if let Some(seen) = looked.seen {
            self.holders.learn(seen);
        }
        let mut taken = Vec::new();
        let keys = Arc::clone(&self.queue_keys);
        for (asked, round) in looked.rounds {
            taken.extend(match asked {
                Asked::All => self.learn(round).await,
                Asked::Some(positions) => {
                    let names = positions.iter().map(|&position| &*keys[position].name);
                    self.learn_some(names, round).await
                }
            });
        }
        match looked.error {
            None => Ok(taken),
            Some(error) if taken.is_empty() => Err(error),
            Some(error) => {
                self.idle.sweep = true;
                tracing::warn!(capsule = %self.capsule.name, %error, "cannot fetch jobs; will look in the working list");
                Ok(taken)
            }
        }
    }

    /// [`learn`](Self::learn) for a round that asked about the queues `asked` alone: what it
    /// says of them replaces what earlier rounds said, the rest is kept.
    async fn learn_some<'a>(
        &mut self,
        asked: impl IntoIterator<Item = &'a str> + Clone,
        round: Round,
    ) -> Vec<Fetched> {
        self.capped
            .record_some(round.asked_at, asked.clone(), round.capped);
        let newly = self.paused.record_some(round.asked_at, asked, round.paused);
        if !newly.is_empty() {
            tracing::info!(capsule = %self.capsule.name, queues = ?newly, "paused: taking no more of their jobs");
            self.idle.unblock_queues(&self.shared, &newly).await;
        }
        round.jobs
    }

    /// Keeps what `round` says of the paused queues, and returns the jobs it took. A `BLMOVE`
    /// waiting on a queue newly paused is ended, so it brings no more of its jobs.
    async fn learn(&mut self, round: Round) -> Vec<Fetched> {
        self.capped.record(round.asked_at, round.capped);
        let newly = self.paused.record(round.asked_at, round.paused);
        if !newly.is_empty() {
            tracing::info!(capsule = %self.capsule.name, queues = ?newly, "paused: taking no more of their jobs");
            self.idle.unblock_queues(&self.shared, &newly).await;
        }
        round.jobs
    }

    /// Hands back, to the front of their queues, the pending jobs (taken ahead, or brought by
    /// a `BLMOVE`) of the queues known to be paused, and those a `BLMOVE` brought from a queue
    /// paused by then; newest first, so that each queue gets its jobs back in their order.
    async fn hand_back_paused(&mut self) {
        let paused = &self.paused;
        let back = self.idle.take_paused(|job| paused.contains(&job.queue));
        if back.is_empty() {
            return;
        }
        tracing::info!(
            capsule = %self.capsule.name,
            count = back.len(),
            "handing back jobs taken ahead from paused queues"
        );
        for job in back.iter().rev() {
            self.hand_back(job).await;
        }
    }

    /// Moves `job` from its queue into the working list by its exact bytes (`scripts/
    /// claim.lua`), with a new lease if its queue is capped and has room; `None` when it was no
    /// longer there or its cap is full (it stays in its queue), `Some(lease)` when taken.
    async fn claim(&self, job: &Fetched) -> Result<Option<Option<crate::cap::Lease>>, Error> {
        let keys = self.shared.keys();
        let lease = crate::cap::Lease::new(
            job.queue.to_string(),
            crate::cap::Leases::member(&self.shared.identity, self.shared.leases.reserve(1)),
        );
        let mut invocation = scripts::CLAIM.prepare_invoke();
        invocation
            .key(keys.queue(&job.queue))
            .key(&self.shared.working)
            .key(keys.workers())
            .key(keys.cap_queue(&job.queue))
            .key(keys.cap_queue_leases(&job.queue))
            .arg(&job.json[..])
            .arg(&self.shared.identity)
            .arg(&lease.member)
            .arg(self.shared.leases.lifetime_ms());
        // Noted before it is sent: a lost reply leaves it known (renewed, and released or
        // re-attached by the sweep).
        self.shared.leases.hold(&job.json, &lease);
        let taken: i64 = self.shared.redis().script_once(&invocation).await?;
        if taken != 3 {
            self.shared.leases.let_go(&job.json, &lease);
        }
        Ok(match taken {
            1 => Some(None),
            3 => Some(Some(lease)),
            2 => {
                tracing::info!(queue = %job.queue, "a job recovered from dead processes waits for room under its queue's cap");
                None
            }
            _ => None,
        })
    }

    /// Rebuilds the jobs waiting to start from the working list itself: every entry of this
    /// capsule's queues, and of the jobs it had pending, that nothing else in the process holds
    /// (`sweep.rs`). Needed after a reply was lost (a `BLMOVE` or a fetch moved a job without
    /// our knowing) and after a lapse of this process's liveness (jobs taken ahead may have been
    /// recovered elsewhere: only those still in the list are ours). The entries of other
    /// capsules' queues are theirs, taken ahead or just moved by their fetchers, never this
    /// one's to start; so is a job another capsule holds pending whose JSON names one of this
    /// capsule's queues.
    ///
    /// The leases this process holds ([`crate::cap::Leases`]) follow their jobs: a job taken
    /// up that holds a lease, has one noted for its bytes, or is of a capped queue goes through
    /// `scripts/cap_claim.lua` before it may start ([`confirm_leases`](Self::confirm_leases)).
    /// A noted lease whose job is no longer in the list at all is released.
    async fn sweep(&mut self) -> bool {
        // Only this loop starts tasks of this capsule's queues, and no BLMOVE of its own is
        // outstanding, so nothing of its queues enters the list meanwhile but what other
        // capsules' fetchers take (of their own queues, whatever their JSON names).
        let own = || self.idle.pending.iter().chain(&self.idle.forgotten);
        let before = sweep::held_by_others(&self.shared.in_flight, own());
        // Read after what is held: a task that settles in between lets its lease go before it
        // is untracked, so no held job's lease looks orphaned. Every held job (pending ones
        // included) carries its own lease; the others noted are of jobs found again, or gone.
        let held_leases = self.shared.in_flight.leases();
        let mut noted = self.shared.leases.snapshot();
        // Queue leases only: a class lease is held by a running task, never by a job the sweep
        // may find (`crate::cap::LeaseKind`); its task releases it. Seen here, it would be
        // re-attached to a job as a queue's, or released as an orphan under its running job.
        crate::cap::queue_leases_only(&mut noted);
        for leases in noted.values_mut() {
            leases.retain(|lease| !held_leases.contains(&lease.member));
        }
        let listed = match self.shared.working_list().await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(capsule = %self.capsule.name, %error, "cannot read the working list; will try again");
                return false;
            }
        };
        let after = sweep::held_by_others(&self.shared.in_flight, own());
        let known: Vec<Taken> = self
            .idle
            .pending
            .drain(..)
            .chain(self.idle.forgotten.drain(..))
            .collect();
        let in_list: std::collections::HashSet<bytes::Bytes> =
            listed.iter().map(|job| job.json.clone()).collect();
        let capsule = &self.capsule;
        let found = sweep::take_up(
            &capsule.name,
            &self.shared.in_flight,
            listed,
            known,
            sweep::either(before, after),
            |queue| capsule.owns(queue),
        );
        let (found, claims_failed) = self.confirm_leases(found, &mut noted).await;
        // Noted leases of jobs no longer in the list (settled, or recovered elsewhere after a
        // lapse): released, so their slots come back now. Those of jobs still listed are left
        // to whichever capsule holds them.
        noted.retain(|json, _| !in_list.contains(json.as_slice()));
        self.release_orphans(noted).await;
        self.idle.sweep = claims_failed;
        self.keep_pending(found).await;
        true
    }

    /// Gives each job a sweep took up the lease it must hold before it starts. One that holds a
    /// lease, has one noted for its bytes (a claim whose reply was lost), or is of a capped
    /// queue goes through `scripts/cap_claim.lua` (one round trip each, on this rare path): its
    /// lease is confirmed, or given anew when it ran out and there is room; when the cap is full
    /// the job goes back to its queue. Returns the jobs to keep, and whether a claim failed: the
    /// capped jobs after it are let go, left in the list (their leases still noted) for the
    /// next sweep.
    async fn confirm_leases(
        &mut self,
        found: Vec<Taken>,
        noted: &mut HashMap<Vec<u8>, Vec<Lease>>,
    ) -> (Vec<Taken>, bool) {
        let mut kept = Vec::with_capacity(found.len());
        let mut claims_failed = false;
        for mut job in found {
            let lease = job
                .lease
                .clone()
                .or_else(|| noted.get_mut(&job.json[..]).and_then(Vec::pop));
            if lease.is_none() && !self.capped.is_capped(&job.queue) {
                kept.push(job);
                continue;
            }
            if claims_failed {
                continue;
            }
            // A queue's lease: `noted` holds no other kind (see `sweep`).
            let queue = lease
                .as_ref()
                .map_or(&*job.queue, |lease| lease.name.as_str())
                .to_owned();
            let member = lease.map(|lease| lease.member);
            match idle::claim(&self.shared, &queue, &job.json, member).await {
                Ok(Claimed::Leased(lease)) => {
                    job.set_lease(Some(lease));
                    kept.push(job);
                }
                Ok(Claimed::Uncapped) => {
                    job.set_lease(None);
                    kept.push(job);
                }
                Ok(Claimed::HandedBack) => {
                    tracing::info!(capsule = %self.capsule.name, %queue, "a job found again went back to its queue: its cap is full");
                }
                Err(error) => {
                    tracing::warn!(capsule = %self.capsule.name, %error, "cannot give a job found again its lease; will try again");
                    claims_failed = true;
                }
            }
        }
        (kept, claims_failed)
    }

    /// Releases `orphans`, noted queue leases of jobs no longer in the working list (settled, or
    /// recovered elsewhere after a lapse), so their slots come back now; if that fails they run
    /// out by themselves. Never a class lease: those are their running tasks' to release.
    async fn release_orphans(&self, orphans: HashMap<Vec<u8>, Vec<Lease>>) {
        let mut releases = redis::pipe();
        let mut released = Vec::new();
        for (json, leases) in orphans {
            for lease in leases.into_iter().filter(crate::cap::Lease::is_queue) {
                lease.add_release_to(&mut releases, self.shared.keys());
                released.push((json.clone(), lease));
            }
        }
        if released.is_empty() {
            return;
        }
        match self.shared.redis().query::<()>(&releases).await {
            Ok(()) => {
                for (json, lease) in &released {
                    self.shared.leases.let_go(json, lease);
                }
                self.shared.leases.freed();
            }
            Err(error) => {
                tracing::warn!(%error, "cannot release leases of jobs no longer ours; they run out");
            }
        }
    }

    /// After a lapse of liveness: ends the idle `BLMOVE`s and waits for a refill in flight, so
    /// that nothing is on its way, then rebuilds the jobs to start from the working list.
    /// `false` when the list could not be read (tried again on the next pass).
    async fn resync(&mut self) -> bool {
        self.land_refill().await;
        self.idle.unblock(&self.shared).await;
        // What they brought is in the working list, where the sweep finds it if still ours.
        let brought = self.idle.collect().await;
        self.idle.forgotten.extend(brought);
        let swept = self.sweep().await;
        self.resync = !swept;
        swept
    }

    /// Keeps jobs taken beyond the free slots, to start as slots free up; a job one crash from
    /// the dead set among them goes back to its queue at once instead (taken ahead, it would
    /// share this process's fate with every job beside it), and its queue's next job runs
    /// alone.
    async fn take_ahead(&mut self, jobs: Vec<Fetched>) {
        // Held as pending at once, so that no other capsule's sweep takes them up.
        let taken = jobs.into_iter().map(|job| self.idle.take(job)).collect();
        self.keep_pending(taken).await;
    }

    /// [`take_ahead`](Self::take_ahead) for jobs held already.
    async fn keep_pending(&mut self, jobs: Vec<Taken>) {
        for job in jobs {
            if self.is_suspect(&job) {
                self.hand_back(&job).await;
                self.suspect.get_or_insert(handed_back(job));
            } else {
                self.idle.pending.push_back(job);
            }
        }
    }

    /// Waits while this process's liveness renewals falter, taking no job (a process that
    /// cannot say it is alive may be presumed dead, and its jobs run elsewhere); after a lapse,
    /// forgets the jobs it took ahead. Returns `true` when `quiet` came meanwhile.
    async fn wait_while_faltering(&mut self, quiet: &CancellationToken) -> bool {
        let mut told = false;
        loop {
            if self.shared.pulse.take_lapse(&mut self.lapses) {
                self.forget_taken_ahead();
            }
            if !self.shared.pulse.is_faltering() {
                return false;
            }
            if !told {
                tracing::warn!(
                    capsule = %self.capsule.name,
                    "this process's liveness is not being renewed; taking no jobs until it is"
                );
                told = true;
            }
            if sleep_or(quiet, Duration::from_millis(100)).await {
                return true;
            }
        }
    }

    /// After a lapse of liveness: the jobs taken ahead may have been recovered by another
    /// process, so none starts from memory; a sweep finds those still in the working list
    /// (held as this capsule's meanwhile, so that no other capsule takes them up).
    fn forget_taken_ahead(&mut self) {
        if !self.idle.pending.is_empty() {
            tracing::warn!(
                capsule = %self.capsule.name,
                count = self.idle.pending.len(),
                "this process may have been presumed dead; its jobs taken ahead start only if still in its working list"
            );
        }
        let forgotten = self.idle.pending.drain(..);
        self.idle.forgotten.extend(forgotten);
        self.idle.sweep = true;
        self.resync = true;
    }
}

/// A job [handed back](Fetcher::hand_back) while held pending, let go: its lease was released
/// with the hand-back, so it holds none.
fn handed_back(job: Taken) -> Fetched {
    let mut job = job.release();
    job.lease = None;
    job
}

fn log_task_end(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        tracing::error!(%error, "a job task panicked outside the job");
    }
}

//! Reliable fetch: taking jobs from the queues into this process's working list, and starting
//! a task for each.
//!
//! A job taken is moved, in one atomic Redis step, from `queue:<q>` to `jobs:working:<identity>`,
//! and stays there until it is settled (acknowledged, retried, buried or handed back), so a
//! process killed at any moment loses no job. Two ways in:
//!
//! - **busy** (here): one Lua script takes as many jobs as there are free slots, and more, in
//!   this fetch's queue order (`scripts/fetch.lua`);
//! - **idle** ([`idle`]): when every queue is empty, one `BLMOVE` per queue waits on its own
//!   connection.
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
mod paused;
mod round;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use capped::{CAPPED_WAIT, CappedQueues};
use idle::Claimed;
pub(crate) use idle::{BLOCK, IdleFetch};
use paused::{ALL_PAUSED_WAIT, PausedQueues};
use round::Round;

use super::ack::Finished;
use super::order::QueueOrder;
use super::processor::{Processed, process};
use super::settle::HAND_BACK_FOR;
use super::shared::Shared;
use super::tasks::sleep_or;
use super::unit::Fetched;
use crate::error::Error;
use crate::redis::scripts;

/// The most jobs one fetch takes.
const MAX_BATCH: usize = 100;

/// How long a job that would run alone waits for the acknowledgements before it.
const FLUSH_FOR: Duration = Duration::from_secs(30);

/// The fewest jobs a fetch asks for when it asks for more than the free slots.
const PREFETCH_MIN: usize = 20;

/// A fetch running on a task of its own.
type Refill = tokio::task::JoinHandle<Result<Round, Error>>;

/// Takes jobs and starts a task for each: the worker's main loop while it takes jobs.
pub(crate) struct Fetcher {
    /// What every job's task is given.
    shared: Arc<Shared>,
    /// The queues, and the order to take from them in.
    order: QueueOrder,
    /// The queues' keys, in the order of [`QueueOrder::names`].
    queue_keys: Vec<String>,
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
    /// A fetch taking the next batch while the last one runs (strict order only), and how
    /// many jobs it asked for.
    refill: Option<(usize, Refill)>,
    /// Whether the last fetch came back full: the queues hold more, so a refill pays off. An
    /// idle worker (whose last fetch came back short) never refills.
    backlog: bool,
    /// Which of the queues are paused, as the newest fetch round said.
    paused: PausedQueues,
    /// Which of the queues are capped, and full, as the newest fetch round said.
    capped: CappedQueues,
}

impl Fetcher {
    /// A fetcher taking from `order`'s queues while `slots` has room; with `until_idle`, it
    /// stops once the queues are empty and no job runs. A job one crash from the dead set waits
    /// at most `suspect_wait` to run alone.
    pub(crate) fn new(
        shared: Arc<Shared>,
        order: QueueOrder,
        slots: Arc<Semaphore>,
        until_idle: bool,
        suspect_wait: Duration,
    ) -> Self {
        let queue_keys = order
            .names()
            .iter()
            .map(|queue| shared.keys().queue(queue))
            .collect();
        Self {
            shared,
            order,
            queue_keys,
            slots,
            until_idle,
            suspect_wait,
            suspect: None,
            resync: false,
            idle: IdleFetch::new(),
            refill: None,
            backlog: false,
            paused: PausedQueues::new(),
            capped: CappedQueues::new(),
        }
    }

    /// Takes jobs while slots are free and starts one task per job, until `shutdown` (the
    /// quiet phase) or, with `until_idle`, until the queues are empty and no job runs. Returns
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
                        tracing::warn!(%error, "cannot fetch jobs; trying again in 1 s");
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
                let unpaused = self.paused.unpaused(self.order.names());
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
                        break;
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
                    if self.shared.pulse.take_lapse() {
                        // Brought while this process may have been presumed dead: it starts
                        // only if the sweep finds it still in the working list.
                        self.forget_taken_ahead();
                    } else if self.is_suspect(&job) {
                        drop(permits);
                        let mut job = job;
                        self.hand_back(&mut job).await;
                        self.run_alone(&mut tasks, job, &slots, &quiet).await;
                    } else {
                        self.start(&mut tasks, job, permits.pop());
                    }
                }
                continue;
            }
            if self.shared.pulse.take_lapse() {
                // Presumed dead while this pass ran (a pause): these jobs may be another
                // process's by now. Those still in the working list come back by the sweep.
                self.forget_taken_ahead();
                continue;
            }
            let mut suspect = self.suspect.take();
            for (mut job, permit) in jobs.into_iter().zip(permits) {
                if self.is_suspect(&job) {
                    drop(permit);
                    self.hand_back(&mut job).await;
                    suspect.get_or_insert(job);
                } else {
                    self.start(&mut tasks, job, Some(permit));
                }
            }
            match suspect {
                Some(job) => self.run_alone(&mut tasks, job, &slots, &quiet).await,
                None => self.start_refill(),
            }
        }
        // Jobs a refill brought are pending, to be handed back with the others.
        self.land_refill().await;
        (tasks, self.idle)
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
        let keys = self.queue_keys.clone();
        let names = self.order.names().to_vec();
        let refill =
            // Free slots 0: a refill takes no capped queue's job (it would wait to start).
            tokio::spawn(async move { round::run(&shared, &keys, &names, prefetch, 0).await });
        self.refill = Some((prefetch, refill));
    }

    /// Waits for the refill in flight, if any, and adds what it took to the pending jobs.
    async fn land_refill(&mut self) {
        let Some((wanted, refill)) = self.refill.take() else {
            return;
        };
        self.backlog = false;
        match refill.await {
            Ok(Ok(round)) => {
                let taken = self.learn(round).await;
                self.backlog = taken.len() >= wanted;
                self.take_ahead(taken).await;
            }
            Ok(Err(error)) => {
                // The script may have moved jobs whose reply never came: look for them.
                self.idle.sweep = true;
                tracing::warn!(%error, "cannot fetch jobs; will look in the working list");
            }
            Err(error) => {
                self.idle.sweep = true;
                tracing::warn!(%error, "the fetch task failed; will look in the working list");
            }
        }
    }

    /// How many jobs one fetch takes when any slot is free: more than the free slots, so that
    /// a busy worker pays one round trip per batch rather than per freed slot. The surplus
    /// waits in the working list, as safe there as a running job. Weighted queues take only
    /// what the free slots need: their weights apply per fetch, and a batch from one queue
    /// would skew them.
    fn prefetch(&self) -> usize {
        if self.order.is_strict() {
            (self.shared.concurrency * 4).clamp(PREFETCH_MIN, MAX_BATCH)
        } else {
            0
        }
    }

    /// Whether a job is one crash away from the dead set: recovered from dead processes so
    /// often that the next recovery buries it. Such a job runs alone, so that a job is only
    /// buried for crashing processes by itself, never for being beside one that did.
    fn is_suspect(&self, job: &Fetched) -> bool {
        job.recoveries() >= self.shared.max_recoveries.max(1)
    }

    /// Hands a job back to the front of its queue, releasing its lease in the same step; if
    /// that fails, the working list is swept later so the job still runs (with its lease, which
    /// stays noted in `shared.leases`). Either way `job` holds no lease any more: taken again, it
    /// needs a new one.
    async fn hand_back(&mut self, job: &mut Fetched) {
        let deadline = tokio::time::Instant::now() + HAND_BACK_FOR;
        if !self.shared.settler.requeue(job, deadline).await {
            self.idle.sweep = true;
        }
        job.lease = None;
    }

    /// Hands back the pending jobs that hold a lease (brought by idle `BLMOVE`s while every
    /// slot was taken), newest first, so that their slots on the cap go to a process that can
    /// run them now.
    async fn hand_back_leased_pending(&mut self) {
        let mut back = self.idle.take_paused(|job| job.lease.is_some());
        if back.is_empty() {
            return;
        }
        tracing::info!(
            count = back.len(),
            "handing back jobs of capped queues that got no slot in time"
        );
        for job in back.iter_mut().rev() {
            self.hand_back(job).await;
        }
    }

    /// Runs `suspect` (a job one crash from the dead set, handed back a moment ago) with no
    /// other job in this process: waits until every slot is free, hands back whatever the idle
    /// `BLMOVE`s still bring, then takes that very job back (by its bytes, whatever was handed
    /// back in front of it) and holds every slot while it runs. If it kills this process too,
    /// it is the only job recovered. On quiet it stays in its queue. Waiting is bounded by
    /// `suspect_wait`; after that it runs beside the running jobs.
    async fn run_alone(
        &mut self,
        tasks: &mut JoinSet<()>,
        suspect: Fetched,
        slots: &Arc<Semaphore>,
        quiet: &CancellationToken,
    ) {
        let queue = &suspect.queue;
        let all = u32::try_from(self.shared.concurrency).unwrap_or(u32::MAX);
        let every_slot =
            tokio::time::timeout(self.suspect_wait, Arc::clone(slots).acquire_many_owned(all));
        let permits = tokio::select! {
            () = quiet.cancelled() => return,
            permits = every_slot => permits,
        };
        let permits = match permits {
            Ok(Ok(permits)) => permits,
            Ok(Err(_)) => return,
            Err(_) => {
                // Bounded: hour-long neighbours must not stall the process. Beside them, a
                // crash counts for them too, but none is one crash from the dead set.
                tracing::warn!(
                    %queue,
                    waited = ?self.suspect_wait,
                    "a job recovered from dead processes could not run alone; running it beside the running jobs"
                );
                let one = tokio::select! {
                    () = quiet.cancelled() => return,
                    permit = Arc::clone(slots).acquire_many_owned(1) => permit,
                };
                let Ok(one) = one else { return };
                one
            }
        };
        // Nothing else stays in the working list beside the suspect (a crash would count it as
        // recovered too): not the jobs that finished but wait for their acknowledgement, nor
        // those taken ahead, nor what the idle `BLMOVE`s bring.
        let flushed = tokio::time::timeout(FLUSH_FOR, self.shared.acker.flush());
        tokio::select! {
            () = quiet.cancelled() => return,
            _ = flushed => {}
        }
        self.land_refill().await;
        self.idle.unblock(&self.shared).await;
        for mut job in self.idle.collect().await {
            self.hand_back(&mut job).await;
        }
        if self.paused.contains(queue) {
            // Paused meanwhile: it waits in its queue for the resume, like its neighbours.
            return;
        }
        match self.claim(&suspect).await {
            Ok(Some(lease)) => {
                tracing::info!(%queue, "running a job recovered from dead processes alone");
                self.start(tasks, suspect.with_lease(lease), Some(permits));
            }
            Ok(None) => {}
            Err(error) => {
                self.idle.sweep = true;
                tracing::warn!(%error, "cannot take a recovered job; trying again later");
            }
        }
    }

    /// Starts the task that runs `job`, holding its concurrency slot until it is settled (or,
    /// for a success, until its acknowledgement is queued).
    fn start(
        &self,
        tasks: &mut JoinSet<()>,
        job: Fetched,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let shared = Arc::clone(&self.shared);
        let ticket = shared.in_flight.track(job.clone());
        tasks.spawn(async move {
            match process(&shared, job).await {
                Processed::Succeeded(job, release, ending) => {
                    // Held until the acknowledgement lands; the slot is free once it is queued.
                    shared.in_flight.finished(ticket);
                    let finished = Finished {
                        ticket,
                        json: job.json,
                        lease: job.lease,
                        release,
                        ending,
                    };
                    shared.acker.ack(finished).await;
                }
                // Its settle released its lease, if any, and said so (`Settler`).
                Processed::Settled => shared.in_flight.untrack(ticket),
            }
            drop(permit);
        });
    }

    /// Moves up to `wanted` jobs into the working list in one atomic step (of a capped queue,
    /// only while fewer than `free` were taken, so that they start at once), and learns which
    /// queues are paused and which capped.
    async fn take(&mut self, wanted: usize, free: usize) -> Result<Vec<Fetched>, Error> {
        let order = self.order.next(&mut rand::rng());
        let keys: Vec<String> = order
            .iter()
            .map(|&position| self.queue_keys[position].clone())
            .collect();
        let names: Vec<String> = order
            .iter()
            .map(|&position| self.order.names()[position].clone())
            .collect();
        let round = round::run(&self.shared, &keys, &names, wanted, free).await?;
        Ok(self.learn(round).await)
    }

    /// Keeps what `round` says of the paused queues, and returns the jobs it took. A `BLMOVE`
    /// waiting on a queue newly paused is ended, so it brings no more of its jobs.
    async fn learn(&mut self, round: Round) -> Vec<Fetched> {
        self.capped.record(round.asked_at, round.capped);
        let newly = self.paused.record(round.asked_at, round.paused);
        if !newly.is_empty() {
            tracing::info!(queues = ?newly, "paused: taking no more of their jobs");
            self.idle.unblock_queues(&self.shared, &newly).await;
        }
        round.jobs
    }

    /// Hands back, to the front of their queues, the pending jobs (taken ahead, or brought by
    /// a `BLMOVE`) of the queues known to be paused, and those a `BLMOVE` brought from a queue
    /// paused by then; newest first, so that each queue gets its jobs back in their order.
    async fn hand_back_paused(&mut self) {
        let paused = &self.paused;
        let mut back = self.idle.take_paused(|job| paused.contains(&job.queue));
        if back.is_empty() {
            return;
        }
        tracing::info!(
            count = back.len(),
            "handing back jobs taken ahead from paused queues"
        );
        for job in back.iter_mut().rev() {
            self.hand_back(job).await;
        }
    }

    /// Moves `job` from its queue into the working list by its exact bytes (`scripts/
    /// claim.lua`), with a new lease if its queue is capped and has room; `None` when it was no
    /// longer there or its cap is full (it stays in its queue), `Some(lease)` when taken.
    async fn claim(&self, job: &Fetched) -> Result<Option<Option<crate::cap::Lease>>, Error> {
        let keys = self.shared.keys();
        let lease = crate::cap::Lease::new(
            job.queue.clone(),
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

    /// Rebuilds the jobs waiting to start from the working list itself: every entry no task
    /// holds. Needed after a reply was lost (a `BLMOVE` or a fetch moved a job without our
    /// knowing) and after a lapse of this process's liveness (jobs taken ahead may have been
    /// recovered elsewhere: only those still in the list are ours).
    ///
    /// The leases this process holds ([`crate::cap::Leases`]) follow their jobs: a job of a
    /// capped queue found again (or one holding a noted lease) goes through
    /// `scripts/cap_claim.lua` with its lease, if one is noted for its bytes, before it may start:
    /// the lease is confirmed (or given anew when it ran out and there is room), or the job goes
    /// back to its queue when the cap is full. One round trip per such job, on this rare path
    /// only. A noted lease whose job is no longer in the list is released.
    async fn sweep(&mut self) -> bool {
        // What tasks hold is read before the leases and the list: a task that settles in
        // between only makes them shorter (its lease is let go before it is untracked), never
        // makes a held job or lease look orphaned. Only this loop starts tasks, and no BLMOVE
        // or refill is outstanding, so nothing new enters the list meanwhile.
        let mut held = self.shared.in_flight.held();
        let held_leases = self.shared.in_flight.leases();
        let mut noted = self.shared.leases.snapshot();
        for leases in noted.values_mut() {
            leases.retain(|lease| !held_leases.contains(&lease.member));
        }
        let listed = match self.shared.working_list().await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(%error, "cannot read the working list; will try again");
                return false;
            }
        };
        let known: std::collections::HashSet<Vec<u8>> =
            self.idle.pending.drain(..).map(|job| job.json).collect();
        let mut unheld = Vec::new();
        let mut claims_failed = false;
        // Oldest first: the list's tail is where jobs taken first sit.
        for mut job in listed.into_iter().rev() {
            if let Some(count) = held.get_mut(&job.json).filter(|count| **count > 0) {
                *count -= 1;
                continue;
            }
            if !known.contains(&job.json) {
                tracing::info!(queue = %job.queue, "recovered a job whose fetch reply was lost");
            }
            let lease = noted.get_mut(&job.json).and_then(Vec::pop);
            if lease.is_some() || self.capped.is_capped(&job.queue) {
                if claims_failed {
                    // Left in the list for the next sweep, its lease still noted.
                    continue;
                }
                let queue = lease
                    .as_ref()
                    .map_or(&job.queue, |lease| &lease.queue)
                    .clone();
                let member = lease.map(|lease| lease.member);
                match idle::claim(&self.shared, &queue, &job.json, member).await {
                    Ok(Claimed::Leased(lease)) => job.lease = Some(lease),
                    Ok(Claimed::Uncapped) => {}
                    Ok(Claimed::HandedBack) => {
                        tracing::info!(%queue, "a job found again went back to its queue: its cap is full");
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot give a job found again its lease; will try again");
                        claims_failed = true;
                        continue;
                    }
                }
            }
            unheld.push(job);
        }
        // Noted leases of jobs no longer in the list (settled, or recovered elsewhere after a
        // lapse): released, so their slots come back now.
        let mut releases = redis::pipe();
        let mut orphans = Vec::new();
        for (json, leases) in noted {
            for lease in leases {
                lease.add_release_to(&mut releases, self.shared.keys());
                orphans.push((json.clone(), lease));
            }
        }
        if !orphans.is_empty() {
            match self.shared.redis().query::<()>(&releases).await {
                Ok(()) => {
                    for (json, lease) in &orphans {
                        self.shared.leases.let_go(json, lease);
                    }
                    self.shared.leases.freed();
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot release leases of jobs no longer ours; they run out");
                }
            }
        }
        self.idle.sweep = claims_failed;
        self.take_ahead(unheld).await;
        true
    }

    /// After a lapse of liveness: ends the idle `BLMOVE`s and waits for a refill in flight, so
    /// that nothing is on its way, then rebuilds the jobs to start from the working list.
    /// `false` when the list could not be read (tried again on the next pass).
    async fn resync(&mut self) -> bool {
        self.land_refill().await;
        self.idle.unblock(&self.shared).await;
        // What they brought is in the working list, where the sweep finds it if still ours.
        let _ = self.idle.collect().await;
        let swept = self.sweep().await;
        self.resync = !swept;
        swept
    }

    /// Keeps jobs taken beyond the free slots, to start as slots free up; a job one crash from
    /// the dead set among them goes back to its queue at once instead (taken ahead, it would
    /// share this process's fate with every job beside it), and its queue's next job runs
    /// alone.
    async fn take_ahead(&mut self, jobs: Vec<Fetched>) {
        for mut job in jobs {
            if self.is_suspect(&job) {
                self.hand_back(&mut job).await;
                self.suspect.get_or_insert(job);
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
            if self.shared.pulse.take_lapse() {
                self.forget_taken_ahead();
            }
            if !self.shared.pulse.is_faltering() {
                return false;
            }
            if !told {
                tracing::warn!(
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
    /// process, so none starts from memory; a sweep finds those still in the working list.
    fn forget_taken_ahead(&mut self) {
        if !self.idle.pending.is_empty() {
            tracing::warn!(
                count = self.idle.pending.len(),
                "this process may have been presumed dead; its jobs taken ahead start only if still in its working list"
            );
        }
        self.idle.pending.clear();
        self.idle.sweep = true;
        self.resync = true;
    }
}

fn log_task_end(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        tracing::error!(%error, "a job task panicked outside the job");
    }
}

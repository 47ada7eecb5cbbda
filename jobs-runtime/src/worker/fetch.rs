//! Reliable fetch: taking jobs from the queues into this process's working list.
//!
//! A job taken is moved, in one atomic Redis step, from `queue:<q>` to `jobs:working:<identity>`,
//! and stays there until it is settled (acknowledged, retried, buried or handed back), so a
//! process killed at any moment loses no job. Two ways in:
//!
//! - **busy**: one Lua script takes as many jobs as there are free slots, in this fetch's queue
//!   order (`scripts/fetch.lua`);
//! - **idle**: when every queue is empty, one `BLMOVE` per queue waits on its own connection,
//!   so a push wakes the worker within a round trip, with no polling. A `BLMOVE` still waiting
//!   when another returns is left to finish; the job it may bring is already in the working
//!   list, and is run (or handed back at shutdown) when it arrives. Going quiet cuts the waits
//!   short with `CLIENT UNBLOCK` where Redis allows it, so quiet and stop take milliseconds,
//!   not up to [`BLOCK`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::order::QueueOrder;
use super::processor::{Processed, process};
use crate::error::Error;
use crate::redis::{is_connection_error, scripts};

/// The most jobs one fetch takes.
const MAX_BATCH: usize = 100;

/// The fewest jobs a fetch asks for when it asks for more than the free slots.
const PREFETCH_MIN: usize = 20;

/// How long an idle `BLMOVE` blocks on the server before it returns empty (Sidekiq's 2 s).
pub(crate) const BLOCK: Duration = Duration::from_secs(2);

/// A job taken from a queue, exactly as it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fetched {
    /// The queue it was taken from (`<q>` of `queue:<q>`).
    pub(crate) queue: String,
    /// Its JSON, byte for byte: the key for removing it from the working list.
    pub(crate) json: String,
}

/// A fetch running on a task of its own.
type Refill = tokio::task::JoinHandle<Result<Vec<Fetched>, Error>>;

/// Takes jobs and starts a task for each.
pub(crate) struct Fetcher {
    shared: Arc<Shared>,
    order: QueueOrder,
    queue_keys: Vec<String>,
    watchers: Watchers,
    /// A fetch taking the next batch while the last one runs (strict order only), and how
    /// many jobs it asked for.
    refill: Option<(usize, Refill)>,
    /// Whether the last fetch came back full: the queues hold more, so a refill pays off. An
    /// idle worker (whose last fetch came back short) never refills.
    backlog: bool,
}

impl Fetcher {
    pub(crate) fn new(shared: Arc<Shared>, order: QueueOrder) -> Self {
        let queue_keys = order
            .names()
            .iter()
            .map(|queue| shared.keys().queue(queue))
            .collect();
        Self {
            shared,
            order,
            queue_keys,
            watchers: Watchers::new(),
            refill: None,
            backlog: false,
        }
    }

    /// Takes jobs while slots are free and starts one task per job, until `quiet` is cancelled
    /// (or, with `until_idle`, until the queues are empty and no job runs). Returns the running
    /// tasks and the idle watchers, for shutdown to wait on. Cancellation-safe only through
    /// `quiet`: dropping the future could drop jobs already taken.
    pub(crate) async fn run(
        mut self,
        quiet: CancellationToken,
        slots: Arc<Semaphore>,
        until_idle: bool,
    ) -> (JoinSet<()>, Watchers) {
        let mut tasks = JoinSet::new();
        loop {
            while let Some(finished) = tasks.try_join_next() {
                log_task_end(finished);
            }
            let first = tokio::select! {
                biased;
                () = quiet.cancelled() => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let mut permits = vec![first];
            while permits.len() < MAX_BATCH {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }

            if self.watchers.needs_sweep() {
                self.land_refill().await;
                self.sweep().await;
            }
            let mut jobs = self.watchers.ready(permits.len());
            if jobs.len() < permits.len() && self.refill.is_some() {
                self.land_refill().await;
                jobs.extend(self.watchers.ready(permits.len() - jobs.len()));
            }
            if jobs.len() < permits.len() {
                let short = permits.len() - jobs.len();
                let wanted = short.max(self.prefetch());
                match self.take(wanted).await {
                    Ok(mut taken) => {
                        self.backlog = taken.len() >= wanted;
                        // Taken beyond the free slots: in the working list already, started
                        // as slots free up (and handed back at shutdown like any pending job).
                        if taken.len() > short {
                            self.watchers.pending.extend(taken.split_off(short));
                        }
                        jobs.extend(taken);
                    }
                    Err(error) => {
                        // The script may have moved jobs whose reply never came: look for them.
                        self.watchers.sweep = true;
                        tracing::warn!(%error, "cannot fetch jobs; trying again in 1 s");
                        if jobs.is_empty() {
                            drop(permits);
                            pause(&quiet, Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
            }
            if jobs.is_empty() {
                // Keep one slot for the job the idle wait may bring; free the others.
                permits.truncate(1);
                if until_idle {
                    drop(permits);
                    if tasks.is_empty() && self.watchers.outstanding() == 0 {
                        break;
                    }
                    if let Some(finished) = tasks.join_next().await {
                        log_task_end(finished);
                    }
                    continue;
                }
                let names = self.order.names().to_vec();
                if let Some(job) = self.watchers.wait(&self.shared, &names, &quiet).await {
                    if self.is_suspect(&job.json) {
                        drop(permits);
                        let queue = job.queue.clone();
                        self.hand_back(&job).await;
                        self.run_alone(&mut tasks, &queue, &slots, &quiet).await;
                    } else {
                        self.start(&mut tasks, job, permits.pop());
                    }
                }
                continue;
            }
            let mut suspect_queue = None;
            for (job, permit) in jobs.into_iter().zip(permits) {
                if self.is_suspect(&job.json) {
                    drop(permit);
                    suspect_queue.get_or_insert_with(|| job.queue.clone());
                    self.hand_back(&job).await;
                } else {
                    self.start(&mut tasks, job, Some(permit));
                }
            }
            match suspect_queue {
                Some(queue) => self.run_alone(&mut tasks, &queue, &slots, &quiet).await,
                None => self.start_refill(),
            }
        }
        // Jobs a refill brought are pending, to be handed back with the others.
        self.land_refill().await;
        (tasks, self.watchers)
    }

    /// Starts taking the next batch while this one runs, when few jobs wait: the round trip
    /// then overlaps the work instead of stalling it.
    fn start_refill(&mut self) {
        let prefetch = self.prefetch();
        if !self.backlog
            || self.refill.is_some()
            || prefetch == 0
            || self.watchers.pending.len() > prefetch / 2
        {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let keys = self.queue_keys.clone();
        let names = self.order.names().to_vec();
        let refill =
            tokio::spawn(async move { take_in_order(&shared, &keys, &names, prefetch).await });
        self.refill = Some((prefetch, refill));
    }

    /// Waits for the refill in flight, if any, and adds what it took to the pending jobs.
    async fn land_refill(&mut self) {
        let Some((wanted, refill)) = self.refill.take() else {
            return;
        };
        self.backlog = false;
        match refill.await {
            Ok(Ok(taken)) => {
                self.backlog = taken.len() >= wanted;
                self.watchers.pending.extend(taken);
            }
            Ok(Err(error)) => {
                // The script may have moved jobs whose reply never came: look for them.
                self.watchers.sweep = true;
                tracing::warn!(%error, "cannot fetch jobs; will look in the working list");
            }
            Err(error) => {
                self.watchers.sweep = true;
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
    fn is_suspect(&self, json: &str) -> bool {
        recoveries(json) >= self.shared.max_recoveries.max(1)
    }

    /// Hands a job back to the front of its queue; if that fails, the working list is swept
    /// later so the job still runs.
    async fn hand_back(&mut self, job: &Fetched) {
        if !self.shared.requeue(job, settle_deadline()).await {
            self.watchers.sweep = true;
        }
    }

    /// Runs the next job of `queue` (a suspect, handed back a moment ago) with no other job in
    /// this process: waits until every slot is free, hands back whatever the idle `BLMOVE`s
    /// still bring, then takes one job and holds every slot while it runs. If it kills this
    /// process too, it is the only job recovered. On quiet it stays in its queue.
    async fn run_alone(
        &mut self,
        tasks: &mut JoinSet<()>,
        queue: &str,
        slots: &Arc<Semaphore>,
        quiet: &CancellationToken,
    ) {
        let all = u32::try_from(self.shared.concurrency).unwrap_or(u32::MAX);
        let permits = tokio::select! {
            () = quiet.cancelled() => return,
            permits = Arc::clone(slots).acquire_many_owned(all) => permits,
        };
        let Ok(permits) = permits else { return };
        // Nothing else stays in the working list beside the suspect (a crash would count it as
        // recovered too): not the jobs that finished but wait for their acknowledgement, nor
        // those taken ahead, nor what the idle `BLMOVE`s bring.
        self.shared.acker.flush().await;
        self.land_refill().await;
        self.watchers.unblock(&self.shared).await;
        for job in self.watchers.settle().await {
            self.hand_back(&job).await;
        }
        match self.take_one_from(queue).await {
            Ok(Some(job)) => {
                tracing::info!(%queue, "running a job recovered from dead processes alone");
                self.start(tasks, job, Some(permits));
            }
            Ok(None) => {}
            Err(error) => {
                self.watchers.sweep = true;
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
        let ticket = shared.track(job.clone());
        tasks.spawn(async move {
            match process(&shared, job).await {
                Processed::Succeeded(job) => {
                    // Held until the acknowledgement lands; the slot is free once it is queued.
                    shared.finished(ticket);
                    shared.acker.ack(ticket, job.json).await;
                }
                Processed::Settled => shared.untrack(ticket),
            }
            drop(permit);
        });
    }

    /// Moves up to `wanted` jobs into the working list in one atomic step.
    async fn take(&self, wanted: usize) -> Result<Vec<Fetched>, Error> {
        let order = self.order.next(&mut rand::rng());
        let keys: Vec<String> = order
            .iter()
            .map(|&position| self.queue_keys[position].clone())
            .collect();
        let names: Vec<String> = order
            .iter()
            .map(|&position| self.order.names()[position].clone())
            .collect();
        take_in_order(&self.shared, &keys, &names, wanted).await
    }

    /// Moves one job from `queue` alone into the working list.
    async fn take_one_from(&self, queue: &str) -> Result<Option<Fetched>, Error> {
        let mut invocation = scripts::FETCH.prepare_invoke();
        invocation
            .key(self.shared.working())
            .key(self.shared.keys().workers())
            .key(self.shared.keys().queue(queue))
            .arg(1)
            .arg(&self.shared.identity);
        let taken: Vec<(usize, String)> = self.shared.redis().script_once(&invocation).await?;
        Ok(taken
            .into_iter()
            .find(|(position, _)| *position == 1)
            .map(|(_, json)| Fetched {
                queue: queue.to_owned(),
                json,
            }))
    }

    /// After a watcher's connection broke, a `BLMOVE` may have moved a job into the working
    /// list without its reply reaching us. With no fetch in flight, every working-list entry
    /// that no task holds is such a job: run it.
    async fn sweep(&mut self) {
        // What tasks hold is read before the list: a task that settles in between only makes
        // the list shorter, never makes a held job look orphaned. Only this loop starts tasks,
        // and no BLMOVE is outstanding, so nothing new enters the list meanwhile.
        let mut held = self.shared.held();
        for job in &self.watchers.pending {
            *held.entry(job.json.clone()).or_insert(0) += 1;
        }
        let listed = match self.shared.working_list().await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(%error, "cannot read the working list; will try again");
                return;
            }
        };
        for job in listed {
            if let Some(count) = held.get_mut(&job.json).filter(|count| **count > 0) {
                *count -= 1;
                continue;
            }
            tracing::info!(queue = %job.queue, "recovered a job whose fetch reply was lost");
            self.watchers.pending.push_back(job);
        }
        self.watchers.swept();
    }
}

/// Moves up to `wanted` jobs from the queues `keys` (named `names`), in that order, into the
/// working list in one atomic step (`scripts/fetch.lua`).
async fn take_in_order(
    shared: &Shared,
    keys: &[String],
    names: &[String],
    wanted: usize,
) -> Result<Vec<Fetched>, Error> {
    let mut invocation = scripts::FETCH.prepare_invoke();
    invocation
        .key(shared.working())
        .key(shared.keys().workers());
    for key in keys {
        invocation.key(key);
    }
    invocation.arg(wanted).arg(&shared.identity);
    let taken: Vec<(usize, String)> = shared.redis().script_once(&invocation).await?;
    let mut jobs = Vec::with_capacity(taken.len());
    for (position, json) in taken {
        match position.checked_sub(1).and_then(|index| names.get(index)) {
            Some(queue) => jobs.push(Fetched {
                queue: queue.clone(),
                json,
            }),
            // `json` is the error message of a queue the script skipped.
            None => tracing::error!(error = %json, "cannot take jobs from a queue"),
        }
    }
    Ok(jobs)
}

/// How often a job was recovered from a dead process (see `recovery.rs`); 0 for most jobs,
/// read without parsing the whole JSON.
fn recoveries(json: &str) -> u32 {
    let key = format!("\"{}\":", super::recovery::RECOVERIES);
    json.split_once(&key)
        .map(|(_, rest)| {
            rest.trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

fn settle_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + super::settle::HAND_BACK_FOR
}

fn log_task_end(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        tracing::error!(%error, "a job task panicked outside the job");
    }
}

async fn pause(quiet: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = quiet.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}

/// What one idle `BLMOVE` brought back.
struct Watched {
    queue: String,
    connection: Option<WatchConnection>,
    result: Result<Option<String>, Error>,
}

/// A connection of a queue's own for its idle `BLMOVE`.
struct WatchConnection {
    connection: MultiplexedConnection,
    /// Its `CLIENT ID`, for `CLIENT UNBLOCK`; `None` when Redis would not say.
    id: Option<i64>,
}

impl WatchConnection {
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

/// The idle `BLMOVE`s: one connection per queue, each with at most one command waiting.
pub(crate) struct Watchers {
    idle: HashMap<String, WatchConnection>,
    /// The queues with a `BLMOVE` waiting, and the client id of its connection.
    busy: HashMap<String, Option<i64>>,
    pending: VecDeque<Fetched>,
    sender: mpsc::UnboundedSender<Watched>,
    receiver: mpsc::UnboundedReceiver<Watched>,
    sweep: bool,
}

impl Watchers {
    /// No watcher, and nothing pending.
    fn new() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            idle: HashMap::new(),
            busy: HashMap::new(),
            pending: VecDeque::new(),
            sender,
            receiver,
            sweep: false,
        }
    }

    fn outstanding(&self) -> usize {
        self.busy.len()
    }

    fn needs_sweep(&self) -> bool {
        self.sweep && self.busy.is_empty()
    }

    fn swept(&mut self) {
        self.sweep = false;
    }

    /// Files what a watcher brought back; `true` when it failed.
    fn receive(&mut self, watched: Watched) -> bool {
        self.busy.remove(&watched.queue);
        if let Some(connection) = watched.connection {
            self.idle.insert(watched.queue.clone(), connection);
        }
        match watched.result {
            Ok(Some(json)) => {
                self.pending.push_back(Fetched {
                    queue: watched.queue,
                    json,
                });
                false
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(queue = %watched.queue, %error, "waiting for jobs failed");
                self.sweep = true;
                true
            }
        }
    }

    /// Up to `max` jobs the watchers have brought back so far.
    fn ready(&mut self, max: usize) -> Vec<Fetched> {
        while let Ok(watched) = self.receiver.try_recv() {
            self.receive(watched);
        }
        let count = max.min(self.pending.len());
        self.pending.drain(..count).collect()
    }

    /// Waits on every queue until one brings a job, all time out, or `quiet` is cancelled.
    async fn wait(
        &mut self,
        shared: &Arc<Shared>,
        queues: &[String],
        quiet: &CancellationToken,
    ) -> Option<Fetched> {
        // A BLMOVE puts jobs in the working list without the fetch script. The fetcher comes
        // here only after the script found every queue empty, in the same pass, and the script
        // registers this process for crash recovery (`jobs:workers`), so recovery knows whose
        // working list the job enters even if Redis restarted empty.
        for queue in queues {
            if self.busy.contains_key(queue) {
                continue;
            }
            let connection = match self.idle.remove(queue) {
                Some(connection) => connection,
                None => match WatchConnection::open(shared).await {
                    Ok(connection) => connection,
                    Err(error) => {
                        tracing::warn!(%error, "cannot open a connection to wait for jobs; trying again in 1 s");
                        pause(quiet, Duration::from_secs(1)).await;
                        return None;
                    }
                },
            };
            self.busy.insert(queue.clone(), connection.id);
            tokio::spawn(watch(
                Arc::clone(shared),
                queue.clone(),
                connection,
                self.sender.clone(),
            ));
        }
        loop {
            if let Some(job) = self.pending.pop_front() {
                return Some(job);
            }
            if self.busy.is_empty() {
                return None;
            }
            let failed = tokio::select! {
                () = quiet.cancelled() => return None,
                watched = self.receiver.recv() => match watched {
                    Some(watched) => self.receive(watched),
                    None => return None,
                },
            };
            if failed {
                // An error that comes back at once (a refused command) must not spin.
                pause(quiet, Duration::from_secs(1)).await;
            }
        }
    }

    /// Waits for every outstanding `BLMOVE` (at most [`BLOCK`] plus a reply timeout) and
    /// returns the jobs they brought that were not run.
    async fn settle(&mut self) -> Vec<Fetched> {
        while !self.busy.is_empty() {
            match self.receiver.recv().await {
                Some(watched) => {
                    self.receive(watched);
                }
                None => break,
            }
        }
        self.pending.drain(..).collect()
    }

    /// [`settle`](Self::settle) once the fetcher has stopped, for the caller to hand the jobs
    /// back. The waiting `BLMOVE`s are unblocked first, so this takes a round trip rather than
    /// up to [`BLOCK`]; where Redis refuses `CLIENT UNBLOCK` (a managed service, an ACL), they
    /// are waited out.
    pub(crate) async fn drain(mut self, shared: &Shared) -> Vec<Fetched> {
        self.unblock(shared).await;
        self.settle().await
    }

    /// Ends the waiting `BLMOVE`s as if their block had run out. One that has already taken a
    /// job is not affected, and its job arrives as usual.
    async fn unblock(&self, shared: &Shared) {
        let mut pipeline = redis::pipe();
        for id in self.busy.values().flatten() {
            pipeline.cmd("CLIENT").arg("UNBLOCK").arg(*id).ignore();
        }
        if pipeline.is_empty() {
            return;
        }
        if let Err(error) = shared.redis().query::<()>(&pipeline).await {
            tracing::debug!(%error, "cannot unblock the idle fetches; waiting them out");
        }
    }
}

/// One `BLMOVE queue:<q> <working> RIGHT LEFT <block>`, reported back through `sender`.
async fn watch(
    shared: Arc<Shared>,
    queue: String,
    mut watching: WatchConnection,
    sender: mpsc::UnboundedSender<Watched>,
) {
    let command = redis::cmd("BLMOVE")
        .arg(shared.keys().queue(&queue))
        .arg(shared.working())
        .arg("RIGHT")
        .arg("LEFT")
        .arg(BLOCK.as_secs_f64())
        .to_owned();
    let reply = command
        .query_async::<Option<String>>(&mut watching.connection)
        .await;
    let watched = match reply {
        Ok(job) => Watched {
            queue,
            connection: Some(watching),
            result: Ok(job),
        },
        Err(error) => Watched {
            queue,
            // A refused command leaves the connection usable; a broken one is replaced.
            connection: (!is_connection_error(&error)).then_some(watching),
            result: Err(shared.redis().error(error)),
        },
    };
    // The receiver is gone only when the worker has stopped; a job brought now stays in the
    // working list, which shutdown hands back.
    let _ = sender.send(watched);
}

#[cfg(test)]
mod tests {
    use super::recoveries;

    #[test]
    fn reads_the_recovery_count_from_the_json() {
        assert_eq!(recoveries(r#"{"class":"A","jobs_recoveries":2}"#), 2);
        assert_eq!(
            recoveries(r#"{"class":"A","jobs_recoveries": 12,"x":1}"#),
            12
        );
        assert_eq!(recoveries(r#"{"class":"A"}"#), 0);
    }
}

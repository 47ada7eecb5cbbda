//! Acknowledging finished jobs in batches: one round trip takes every job that finished since
//! the last one off the working list.
//!
//! A job's slot is free as soon as its body returns; its acknowledgement waits here for at
//! most one round trip, which takes a round's jobs off the working list's tail with one trim
//! (`scripts/ack.lua`; see [`SCRIPT_FROM`]). Until it lands, the job stays in the working list
//! and counts as held (so a sweep never runs it again); a crash in between runs it again,
//! exactly as a crash between a job's end and a one-at-a-time acknowledgement would. Shutdown
//! [flushes](Acker::flush) the acknowledgements before it hands back what is left in the
//! working list.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use std::time::Duration;

use super::backoff::{Until, persist};
use super::in_flight::InFlight;
use crate::batch::member::{self, MemberOutcome, MemberUpdate};
use crate::client::Client;
use crate::periodic::{Ending, record_ending};
use crate::redis::{Shortfall, scripts};
use crate::unique::Release;

/// The most acknowledgements one round trip carries.
const MAX_BATCH: usize = 1_000;

/// The fewest plain jobs a round acknowledges with `scripts/ack.lua` (the script, its read of
/// the tail and its trim are three commands); fewer are taken off one `LREM` each.
const SCRIPT_FROM: usize = 4;

/// The size from which a plain job is taken off one `LREM` of its own, never by the script:
/// every value that enters a Lua script is a Lua string, and Redis's Lua hashes every byte of
/// each new string. `scripts/ack.lua` makes two of each job (its argument, and its entry read
/// back), which on a 10 KB job cost Redis more than an `LREM`'s round of the command loop, and
/// on a 1 MB job several milliseconds. An `LREM` compares the bytes instead (lengths first).
const SCRIPT_UP_TO: usize = 1_024;

/// How many finished jobs may wait for their acknowledgement before a finishing job waits.
const QUEUE: usize = 8_192;

/// How long one batch keeps trying while Redis is unreachable, so a flush waits at most this.
const TRY_FOR: Duration = Duration::from_secs(30);

/// How soon a batch that could not be sent is tried again when no other job finishes.
const TRY_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// What the acker is asked.
enum Message {
    /// Acknowledge the job held under `ticket`, stored as `json`, releasing its unique lock.
    Ack(Finished),
    /// Release the unique lock of a job that starts (`unique_until: "start"`).
    Release(Release),
    /// Say when every acknowledgement asked before has landed.
    Flush(oneshot::Sender<()>),
}

/// A finished job waiting for its acknowledgement.
pub(crate) struct Finished {
    /// Its ticket in [`InFlight`].
    pub(crate) ticket: u64,
    /// The job as stored.
    pub(crate) json: bytes::Bytes,
    /// Its unique lock, if it still holds one.
    pub(crate) release: Option<Release>,
    /// Its lease on its queue's global cap, if it holds one: released in the same round trip.
    pub(crate) lease: Option<crate::cap::Lease>,
    /// How it ended, for a periodic job's entry: it succeeded, or expired unrun.
    pub(crate) ending: Ending,
    /// Which of the acker's extra steps its payload asks for.
    pub(crate) marks: Marks,
}

/// What the payload of a finished job asks of its acknowledgement beyond the `LREM`, read from
/// its top-level fields once it is parsed. Without it the acker would look for the fields in
/// the job's bytes, one scan each per job, which on large payloads cost more than the rest of
/// the acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    /// It has a `bid`: its batch counts its success (`batch::member`).
    pub(crate) batch: bool,
    /// It has a `jobs_periodic`: its entry records how it ended (`periodic::record_ending`).
    pub(crate) periodic: bool,
}

impl Marks {
    /// The marks of a job whose payload is `payload`.
    pub(crate) fn of(payload: &crate::payload::Payload) -> Self {
        Self {
            batch: payload.extra.contains_key("bid"),
            periodic: payload.extra.contains_key(crate::periodic::PERIODIC_FIELD),
        }
    }
}

/// The sending side, held by the worker's shared state.
#[derive(Debug)]
pub(crate) struct Acker {
    /// Where acknowledgements go.
    sender: mpsc::Sender<Message>,
}

/// The loop that sends the acknowledgements, a batch per round trip.
pub(crate) struct AckLoop {
    /// What the [`Acker`] sends.
    receiver: mpsc::Receiver<Message>,
    /// The Redis and namespace of the working list.
    client: Client,
    /// This process's working list.
    working: String,
    /// The held jobs, which an acknowledgement releases.
    in_flight: Arc<InFlight>,
    /// Told when a batch released leases on capped queues (the fetcher may be waiting for room).
    leases: Arc<crate::cap::Leases>,
}

impl Acker {
    /// An acker and the loop that serves it, acknowledging jobs of `working` held in
    /// `in_flight`, and telling `leases` when a batch released some.
    pub(crate) fn new(
        client: Client,
        working: String,
        in_flight: Arc<InFlight>,
        leases: Arc<crate::cap::Leases>,
    ) -> (Self, AckLoop) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let ack_loop = AckLoop {
            receiver,
            client,
            working,
            in_flight,
            leases,
        };
        (Self { sender }, ack_loop)
    }

    /// Queues the acknowledgement of a finished job, and the release of the unique lock it
    /// still holds, if any (in the same step).
    pub(crate) async fn ack(&self, finished: Finished) {
        // The loop lives until the worker has stopped taking and running jobs, so a send
        // fails only after that, when the job stays in the working list for the next start
        // (or the hand-back) to find.
        let _ = self.sender.send(Message::Ack(finished)).await;
    }

    /// Queues the release of the unique lock of a job that starts (`unique_until: "start"`):
    /// sent with the next batch of acknowledgements, in their round trip, so the job need not
    /// wait for it. Lost if the worker stops first; the lock then runs out.
    pub(crate) async fn release(&self, release: Release) {
        let _ = self.sender.send(Message::Release(release)).await;
    }

    /// Waits until every acknowledgement queued so far was sent (it landed, or Redis would not
    /// take it and it stays held for the next round): one round of the loop, which can take up
    /// to 30 s per batch while Redis is unreachable, so callers bound it.
    pub(crate) async fn flush(&self) {
        let (done, landed) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = landed.await;
        }
    }
}

impl AckLoop {
    /// Sends the queued acknowledgements until `shutdown`, which shutdown gives it right after
    /// its last [`flush`](Acker::flush), before the working list's leftovers are handed back.
    /// Cancellation-safe between batches; a batch in flight is finished first.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut batch: Vec<Finished> = Vec::with_capacity(MAX_BATCH);
        let mut releases: Vec<Release> = Vec::new();
        let mut flushes = Vec::new();
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                message = self.receiver.recv() => match message {
                    Some(message) => Some(message),
                    None => return,
                },
                () = tokio::time::sleep(TRY_AGAIN_AFTER), if !batch.is_empty() || !releases.is_empty() => None,
            };
            let mut next = first;
            while let Some(message) = next {
                match message {
                    Message::Ack(finished) => batch.push(finished),
                    Message::Release(release) => releases.push(release),
                    Message::Flush(done) => flushes.push(done),
                }
                next = if batch.len() + releases.len() < MAX_BATCH {
                    self.receiver.try_recv().ok()
                } else {
                    None
                };
            }
            if !batch.is_empty() || !releases.is_empty() {
                self.send(&mut batch, &mut releases).await;
            }
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Takes a batch of finished jobs off the working list in one round trip and releases them,
    /// with the unique locks of the jobs that started since (`releases`). A batch Redis would
    /// not take stays in `batch` and `releases`, its jobs still held (so no sweep runs them
    /// again), to be sent again with the next.
    async fn send(&self, batch: &mut Vec<Finished>, releases: &mut Vec<Release>) {
        let mut pipeline = redis::pipe();
        // The batch jobs' successes (or expiries unrun) are counted first, in this round trip
        // (`docs/batches.md`): a crash before the acknowledgements land runs the jobs again,
        // and their next settle repeats the (idempotent) updates. One update per batch, for
        // all of its jobs in this round trip.
        let mut by_batch: Vec<Vec<(MemberUpdate, &[u8])>> = Vec::new();
        for finished in batch.iter().filter(|finished| finished.marks.batch) {
            let Some(update) =
                MemberUpdate::of_job(&finished.json, MemberOutcome::Success, None, None)
            else {
                continue;
            };
            match by_batch
                .iter_mut()
                .find(|group| group[0].0.bid() == update.bid())
            {
                Some(group) => group.push((update, &finished.json)),
                None => by_batch.push(vec![(update, &finished.json)]),
            }
        }
        if !by_batch.is_empty() {
            member::add_script_to(&mut pipeline);
        }
        for group in &by_batch {
            member::add_successes_to(&mut pipeline, self.client.keys(), &self.working, group);
        }
        // The plain jobs under `SCRIPT_UP_TO` bytes all at once (`scripts/ack.lua`), when
        // there are `SCRIPT_FROM` of them: finished jobs were mostly taken before the ones
        // still waiting or running, so they sit together at the working list's tail, and one
        // trim takes them off; the script takes the rest off one `LREM` each, from the tail, as
        // one `LREM` per job would. The script never fails, so it cannot hold the rest of the
        // round trip back. Every other plain job gets an `LREM` of its own, before the script,
        // so that its trim then finds the small ones together at the tail.
        let plain = |finished: &&Finished| finished.release.is_none();
        let small = |finished: &&Finished| finished.json.len() < SCRIPT_UP_TO;
        let scripted = batch.iter().filter(plain).filter(small).count() >= SCRIPT_FROM;
        for finished in batch.iter().filter(plain) {
            if !(scripted && small(&finished)) {
                pipeline
                    .cmd("LREM")
                    .arg(&self.working)
                    .arg(-1)
                    .arg(&finished.json[..])
                    .ignore();
            }
        }
        if scripted {
            let command = pipeline
                .cmd("EVAL")
                .arg(scripts::ACK.as_str())
                .arg(1)
                .arg(&self.working);
            for finished in batch.iter().filter(plain).filter(small) {
                command.arg(&finished.json[..]);
            }
            command.ignore();
        }
        for finished in batch.iter() {
            // A unique job's lock is released in the same step as its acknowledgement, only if
            // the job was still there (from the tail, as above).
            if let Some(release) = &finished.release {
                release.add_ack_to(
                    &mut pipeline,
                    self.client.keys(),
                    &self.working,
                    &finished.json,
                    -1,
                );
            }
            // A capped queue's slot, freed in the same round trip (the member is this job's
            // own: releasing it never frees another job's slot).
            if let Some(lease) = &finished.lease {
                lease.add_release_to(&mut pipeline, self.client.keys());
            }
        }
        for release in releases.iter() {
            release.add_to(&mut pipeline, self.client.keys());
        }
        let until = Until::Deadline(tokio::time::Instant::now() + TRY_FOR);
        let sent = persist("acknowledge", until, || {
            // The replies kept are the batch updates' (everything else is ignored).
            self.client
                .redis()
                .query_replicated::<Vec<redis::Value>>(&pipeline, Shortfall::Warn)
        })
        .await;
        if let Some(replies) = &sent {
            member::log_errors(replies);
        }
        if sent.is_none() {
            // At shutdown, what is still unsent is handed back from the working list and runs
            // again: at least once, never lost.
            return;
        }
        // Periodic jobs' endings, for their entries' page: after the acknowledgements and
        // apart from them, so that an entry's key of another type never holds them back.
        releases.clear();
        let mut freed = false;
        for finished in batch.iter() {
            if let Some(lease) = &finished.lease {
                // Before the job is untracked: a sweep never sees it unheld with its lease.
                self.leases.let_go(&finished.json, lease);
                freed = true;
            }
        }
        if freed {
            self.leases.freed();
        }
        let mut endings = redis::pipe();
        let mut any = false;
        for finished in batch.drain(..) {
            if finished.marks.periodic {
                any |= record_ending(
                    &mut endings,
                    self.client.keys(),
                    &finished.json,
                    finished.ending,
                );
            }
            self.in_flight.untrack(finished.ticket);
        }
        if any && let Err(error) = self.client.redis().query::<()>(&endings).await {
            tracing::warn!(%error, "cannot record how periodic jobs ended");
        }
    }
}

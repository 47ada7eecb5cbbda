//! Acknowledging finished jobs in batches: one round trip takes every job that finished since
//! the last one off the working list.
//!
//! A job's slot is free as soon as its body returns; its acknowledgement waits here for at
//! most one round trip. Until the `LREM` lands, the job stays in the working list and counts as
//! held (so a sweep never runs it again); a crash in between runs it again, exactly as a crash
//! between a job's end and a one-at-a-time acknowledgement would. Shutdown [flushes](Acker::flush)
//! the acknowledgements before it hands back what is left in the working list.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::settle::PERSIST_FOR;

/// The most acknowledgements one round trip carries.
const MAX_BATCH: usize = 1_000;

/// How many finished jobs may wait for their acknowledgement before a finishing job waits.
const QUEUE: usize = 8_192;

enum Message {
    Ack { ticket: u64, json: String },
    Flush(oneshot::Sender<()>),
}

/// The sending side, held by [`Shared`].
pub(crate) struct Acker {
    sender: mpsc::Sender<Message>,
}

/// The receiving side, for [`run`].
pub(crate) struct Acks {
    receiver: mpsc::Receiver<Message>,
}

impl Acker {
    pub(crate) fn new() -> (Self, Acks) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (Self { sender }, Acks { receiver })
    }

    /// Queues the acknowledgement of the job tracked as `ticket`, stored as `json`.
    pub(crate) async fn ack(&self, ticket: u64, json: String) {
        // The receiver lives until the worker has stopped, so a send fails only after that,
        // when the job stays in the working list for the next start to find.
        let _ = self.sender.send(Message::Ack { ticket, json }).await;
    }

    /// Waits until every acknowledgement queued so far has landed (or was given up on).
    pub(crate) async fn flush(&self) {
        let (done, landed) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = landed.await;
        }
    }
}

/// The task running [`run`], aborted when dropped (after a flush, or on an early return).
pub(crate) struct AckTask(tokio::task::JoinHandle<()>);

impl AckTask {
    pub(crate) fn spawn(shared: Arc<Shared>, acks: Acks) -> Self {
        Self(tokio::spawn(run(shared, acks)))
    }
}

impl Drop for AckTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends the queued acknowledgements, a batch per round trip, until the worker aborts it.
async fn run(shared: Arc<Shared>, mut acks: Acks) {
    let mut batch: Vec<(u64, String)> = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = acks.receiver.recv().await {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Ack { ticket, json } => batch.push((ticket, json)),
                Message::Flush(done) => flushes.push(done),
            }
            next = if batch.len() < MAX_BATCH {
                acks.receiver.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            let mut pipeline = redis::pipe();
            for (_, json) in &batch {
                // From the tail: jobs enter the working list at its head, so a finished job,
                // taken before the ones still waiting, is found within a few entries.
                pipeline
                    .cmd("LREM")
                    .arg(shared.working())
                    .arg(-1)
                    .arg(json)
                    .ignore();
            }
            // Redis unreachable past the deadline: the jobs stay in the working list, no longer
            // held, so the fetcher's sweep or shutdown's hand-back runs them again (at least
            // once, never lost).
            let deadline = tokio::time::Instant::now() + PERSIST_FOR;
            shared
                .persist("acknowledge", deadline, || {
                    shared.redis().query::<()>(&pipeline)
                })
                .await;
            for (ticket, _) in batch.drain(..) {
                shared.untrack(ticket);
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

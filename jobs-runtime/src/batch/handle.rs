//! Adding to a batch from one of its running jobs: [`BatchHandle`].

use crate::client::{Client, payload_of};
use crate::error::Error;
use crate::jid::Jid;
use crate::job::Job;
use crate::payload::Payload;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::push::{self, CHUNK, Member, Mode};
use super::{Batch, Bid};

/// The batch of a running job, from [`JobContext::batch`](crate::JobContext::batch): adds jobs
/// to it (a job that fans out), or makes a child batch of it.
///
/// The running job is a pending member until it settles, so the batch cannot complete before
/// the jobs it adds are registered. Adding to a batch whose `success` already fired is refused
/// ([`Error::Batch`]).
///
/// ```no_run
/// # use jobs_runtime::{Job, JobContext, JobError};
/// # async fn example<M: Job>(ctx: JobContext, more: Vec<M>) -> Result<(), JobError> {
/// if let Some(batch) = ctx.batch() {
///     batch.push_all(more).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct BatchHandle {
    /// The batch's id.
    bid: Bid,
    /// The worker's client, or `None` for the global one.
    client: Option<Client>,
    /// The running job's jid.
    adder: Jid,
    /// The adds its run made so far (shared by the run's handles).
    calls: Arc<AtomicU64>,
}

impl BatchHandle {
    /// The handle of batch `bid`, pushing through `client` (the global client when `None`), for
    /// the running job `adder`, whose adds so far `calls` counts.
    pub(crate) fn new(bid: Bid, client: Option<Client>, adder: Jid, calls: Arc<AtomicU64>) -> Self {
        Self {
            bid,
            client,
            adder,
            calls,
        }
    }

    /// The batch's id.
    pub fn bid(&self) -> &Bid {
        &self.bid
    }

    /// Adds `job` to the batch and pushes it; returns its jid (`None`: a client middleware
    /// stopped it).
    pub async fn push<J: Job>(&self, job: J) -> Result<Option<Jid>, Error> {
        let mut jids = self.add(std::iter::once(payload_of(&job))).await?;
        Ok(jids.pop())
    }

    /// Adds a job given as a payload to the batch and pushes it; returns its jid (`None`: a
    /// client middleware stopped it).
    pub async fn push_payload(&self, payload: Payload) -> Result<Option<Jid>, Error> {
        let mut jids = self.add(std::iter::once(Ok(payload))).await?;
        Ok(jids.pop())
    }

    /// Adds `jobs` to the batch and pushes them, 1,000 to a round trip (each chunk registered
    /// and pushed in one atomic step); returns their jids (less any a middleware stopped).
    pub async fn push_all<J: Job>(
        &self,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<Jid>, Error> {
        self.add(jobs.into_iter().map(|job| payload_of(&job))).await
    }

    /// A new batch nested in this one (its [`parent`](Batch::parent)), through the same
    /// client: it counts as one member of this batch, registered when it is created.
    pub fn child(&self) -> Batch {
        let batch = Batch::new().parent(&self.bid);
        match &self.client {
            Some(client) => batch.client(client),
            None => batch,
        }
    }

    async fn add(
        &self,
        payloads: impl Iterator<Item = Result<Payload, Error>>,
    ) -> Result<Vec<Jid>, Error> {
        push::refuse_in_testing_mode("add jobs to", &self.bid)?;
        let client = match &self.client {
            Some(client) => client.clone(),
            None => Client::global()?,
        };
        let now = crate::testing::now();
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let mut jids = Vec::new();
        let mut payloads = payloads.enumerate().peekable();
        while payloads.peek().is_some() {
            let mut chunk: Vec<Member> = Vec::with_capacity(CHUNK);
            while chunk.len() < CHUNK {
                let Some((index, payload)) = payloads.next() else {
                    break;
                };
                let mut payload = payload?;
                payload.jid = added_jid(&self.bid, &self.adder, call, index);
                if let Some(member) = push::prepare(&client, &self.bid, payload, now).await? {
                    chunk.push(member);
                }
            }
            if chunk.is_empty() {
                continue;
            }
            match push::send(&client, &self.bid, (Mode::Add, 0, false), None, &chunk).await? {
                1 => jids.extend(chunk.into_iter().map(|(jid, _, _)| jid)),
                code => return Err(push::refusal(code, "add jobs to", &self.bid, None)),
            }
        }
        Ok(jids)
    }
}

/// The jid of the `index`th job (from 0) of the `call`th add (from 0) made by the run of job
/// `adder` to batch `bid`: the same when the add is made again (a resend, or the job run
/// again), so the batch's `added` set pushes it once (`batch_push.lua`, mode `add`). 24
/// lowercase hex characters, as any jid.
fn added_jid(bid: &Bid, adder: &Jid, call: u64, index: usize) -> Jid {
    use sha2::{Digest, Sha256};
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hasher = Sha256::new();
    hasher.update(bid.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(adder.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(call.to_be_bytes());
    hasher.update((index as u64).to_be_bytes());
    let digest = hasher.finalize();
    let mut text = String::with_capacity(24);
    for byte in &digest[..12] {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    Jid::from(text)
}

#[cfg(test)]
mod tests {
    use super::{Bid, Jid, added_jid};

    #[test]
    fn an_added_jid_is_derived_from_the_batch_the_adder_the_call_and_the_index() {
        let bid = Bid::generate();
        let adder = Jid::from("0123456789abcdef01234567");
        let jid = added_jid(&bid, &adder, 0, 0);
        assert_eq!(jid, added_jid(&bid, &adder, 0, 0));
        assert_eq!(jid.as_str().len(), 24);
        assert!(jid.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(jid, added_jid(&bid, &adder, 0, 1));
        assert_ne!(jid, added_jid(&bid, &adder, 1, 0));
        assert_ne!(jid, added_jid(&bid, &Jid::from("other"), 0, 0));
        assert_ne!(jid, added_jid(&Bid::generate(), &adder, 0, 0));
    }
}

//! Adding to a batch from one of its running jobs: [`BatchHandle`].

use crate::client::{Client, payload_of};
use crate::error::Error;
use crate::jid::Jid;
use crate::job::Job;
use crate::payload::Payload;

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
}

impl BatchHandle {
    /// The handle of batch `bid`, pushing through `client` (the global client when `None`).
    pub(crate) fn new(bid: Bid, client: Option<Client>) -> Self {
        Self { bid, client }
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
        let mut jids = Vec::new();
        let mut payloads = payloads.peekable();
        while payloads.peek().is_some() {
            let mut chunk: Vec<Member> = Vec::with_capacity(CHUNK);
            while chunk.len() < CHUNK {
                let Some(payload) = payloads.next() else {
                    break;
                };
                if let Some(member) = push::prepare(&client, &self.bid, payload?, now).await? {
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

//! Creating a batch: [`Batch`], the builder.

use std::time::Duration;

use crate::client::{Client, payload_of};
use crate::error::Error;
use crate::job::Job;
use crate::payload::Payload;
use crate::raw_job::RawJob;
use crate::timestamp::Timestamp;

use super::push::{self, CHUNK, Creation, Member, Mode};
use super::{BatchEvent, Bid};

/// How long a batch's keys live after its last change, unless [`Batch::retention`] says.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// A set of jobs pushed together under one id, with callbacks: ordinary jobs pushed once when
/// the batch reaches a moment ([`BatchEvent`]). See `docs/batches.md`.
///
/// ```no_run
/// # use jobs_runtime::{Batch, Job};
/// # async fn example<S: Job, P: Job, D: Job>(
/// #     users: Vec<S>, tallied: P, page: D,
/// # ) -> Result<(), jobs_runtime::Error> {
/// let bid = Batch::new()
///     .description("nightly scores")
///     .on_complete(tallied)
///     .on_death(page)
///     .push_all(users)
///     .await?;
/// # Ok(()) }
/// ```
///
/// Errors in what was added (a job whose arguments do not encode, a unique job) are reported
/// by the call that pushes ([`push_all`](Self::push_all) or [`commit`](Self::commit)), before
/// anything is written.
#[must_use = "a batch does nothing until push_all or commit is awaited"]
#[derive(Debug, Default)]
pub struct Batch {
    /// The client set with [`client`](Self::client); the global one otherwise.
    client: Option<Client>,
    /// The id set with [`bid`](Self::bid); a new one otherwise.
    bid: Option<Bid>,
    /// The description.
    description: Option<String>,
    /// Each callback's job, by event.
    callbacks: Vec<(BatchEvent, Result<Payload, Error>)>,
    /// The parent batch, if nested.
    parent: Option<Bid>,
    /// How long its keys live after its last change.
    retention: Option<Duration>,
    /// The workflow and step this batch is, if any (written by `jobs::workflow`).
    workflow_step: Option<(String, String)>,
    /// Jobs added with [`push`](Self::push) and [`push_payload`](Self::push_payload).
    jobs: Vec<Result<Payload, Error>>,
}

impl Batch {
    /// An empty batch: a new id, no description, no callbacks, the global client.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pushes through `client` instead of the global one.
    pub fn client(mut self, client: &Client) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// Uses `bid` as the batch's id instead of a new one. Creating a batch whose id exists
    /// already (sealed) pushes nothing and returns `Ok(bid)`: a creation repeated (say after a
    /// crash, or by a workflow step that runs again) creates the batch once. A creation that
    /// failed half-way (its batch unsealed) is resumed by the next creation with the same id:
    /// the chunks pushed already are skipped by number, the rest pushed and the batch sealed,
    /// so the jobs must come in the same order.
    pub fn bid(mut self, bid: Bid) -> Self {
        self.bid = Some(bid);
        self
    }

    /// Describes the batch, for people (the dashboard shows it).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Pushes `job` once every job of the batch ran at least once.
    pub fn on_complete<J: Job>(self, job: J) -> Self {
        self.on(BatchEvent::Complete, payload_of(&job))
    }

    /// Pushes `job` once every job of the batch succeeded (retries included).
    pub fn on_success<J: Job>(self, job: J) -> Self {
        self.on(BatchEvent::Success, payload_of(&job))
    }

    /// Pushes `job` the first time a job of the batch dies.
    pub fn on_death<J: Job>(self, job: J) -> Self {
        self.on(BatchEvent::Death, payload_of(&job))
    }

    /// [`on_complete`](Self::on_complete) with a job given as a payload (a class another
    /// process defines).
    pub fn on_complete_payload(self, payload: Payload) -> Self {
        self.on(BatchEvent::Complete, Ok(payload))
    }

    /// [`on_success`](Self::on_success) with a job given as a payload.
    pub fn on_success_payload(self, payload: Payload) -> Self {
        self.on(BatchEvent::Success, Ok(payload))
    }

    /// [`on_death`](Self::on_death) with a job given as a payload.
    pub fn on_death_payload(self, payload: Payload) -> Self {
        self.on(BatchEvent::Death, Ok(payload))
    }

    fn on(mut self, event: BatchEvent, payload: Result<Payload, Error>) -> Self {
        self.callbacks.retain(|(known, _)| *known != event);
        self.callbacks.push((event, payload));
        self
    }

    /// Makes this batch a child of `parent`: it counts as one job of the parent, which
    /// succeeds only after this one succeeds (see `docs/batches.md`, nested batches).
    pub fn parent(mut self, parent: &Bid) -> Self {
        self.parent = Some(parent.clone());
        self
    }

    /// Keeps the batch's keys this long after its last change (30 days unless set).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Marks the batch as step `step` of workflow `workflow` (the batch hash's `workflow` and
    /// `step` fields), for `jobs::workflow`.
    #[allow(dead_code)]
    pub(crate) fn workflow_step(
        mut self,
        workflow: impl Into<String>,
        step: impl Into<String>,
    ) -> Self {
        self.workflow_step = Some((workflow.into(), step.into()));
        self
    }

    /// Adds `job` (of any type) to the jobs [`commit`](Self::commit) pushes.
    pub fn push<J: Job>(mut self, job: J) -> Self {
        self.jobs.push(payload_of(&job));
        self
    }

    /// Adds a job given as a payload to the jobs [`commit`](Self::commit) pushes.
    pub fn push_payload(mut self, payload: Payload) -> Self {
        self.jobs.push(Ok(payload));
        self
    }

    /// Creates the batch with the jobs added so far and `jobs`, 1,000 to a round trip (each
    /// chunk registered and pushed in one atomic step; the last seals the batch, and no
    /// callback fires before). Returns its id.
    pub async fn push_all<J: Job>(self, jobs: impl IntoIterator<Item = J>) -> Result<Bid, Error> {
        let jobs = jobs.into_iter().map(|job| payload_of(&job));
        self.create(jobs).await
    }

    /// Creates the batch with the jobs added with [`push`](Self::push) and
    /// [`push_payload`](Self::push_payload) (none makes an empty batch, whose `complete` and
    /// `success` fire at once). Returns its id.
    pub async fn commit(self) -> Result<Bid, Error> {
        self.create(std::iter::empty()).await
    }

    /// Creates the batch: the jobs of the builder, then `more`.
    async fn create(
        mut self,
        more: impl Iterator<Item = Result<Payload, Error>>,
    ) -> Result<Bid, Error> {
        let client = match self.client.take() {
            Some(client) => client,
            None => Client::global()?,
        };
        let bid = self.bid.take().unwrap_or_else(Bid::generate);
        push::refuse_in_testing_mode("create", &bid)?;
        let creation = self.creation(&client, &bid).await?;
        let now = crate::testing::now();
        let jobs = std::mem::take(&mut self.jobs);
        let mut jobs = jobs.into_iter().chain(more).peekable();
        let mut mode = Mode::Create;
        let mut number = 0;
        loop {
            number += 1;
            let mut chunk: Vec<Member> = Vec::with_capacity(CHUNK);
            while chunk.len() < CHUNK {
                let Some(payload) = jobs.next() else { break };
                if let Some(member) = push::prepare(&client, &bid, payload?, now).await? {
                    chunk.push(member);
                }
            }
            let last = jobs.peek().is_none();
            let call = (mode, number, last);
            let answer = push::send(&client, &bid, call, Some(&creation), &chunk).await?;
            match answer {
                1 => {}
                // It existed already (created before, by a creation with this id), or a
                // creation with this id sealed it.
                0 => return Ok(bid),
                code => {
                    return Err(push::refusal(code, "create", &bid, self.parent.as_ref()));
                }
            }
            if last {
                return Ok(bid);
            }
            mode = Mode::Chunk;
        }
    }

    /// What the batch hash starts with: description, retention, callbacks (each through the
    /// client middleware, stored without `enqueued_at`, which their push stamps, nor an
    /// `expires_in` deadline), workflow.
    async fn creation(&mut self, client: &Client, bid: &Bid) -> Result<Creation, Error> {
        let retention = self.retention.unwrap_or(DEFAULT_RETENTION).as_secs().max(1);
        let mut fields = vec![("retention".to_owned(), retention.to_string())];
        if let Some(description) = &self.description {
            fields.push(("description".to_owned(), description.clone()));
        }
        if let Some((workflow, step)) = &self.workflow_step {
            fields.push(("workflow".to_owned(), workflow.clone()));
            fields.push(("step".to_owned(), step.clone()));
        }
        for (event, payload) in std::mem::take(&mut self.callbacks) {
            let mut payload = payload?;
            payload.extra.insert(
                "batch_callback".to_owned(),
                serde_json::json!({ "bid": bid.as_str(), "event": event.as_str() }),
            );
            let Some((_, _, json)) = client
                .prepare_batch_member(payload, Timestamp::now())
                .await?
            else {
                // A middleware stopped it: no callback.
                continue;
            };
            let mut stored = RawJob::parse(&json).map_err(|error| Error::Encode {
                class: "batch callback".to_owned(),
                reason: error.to_string(),
            })?;
            stored.remove("enqueued_at");
            // Its deadline would count from the batch's creation, not from when it fires: a
            // callback never expires.
            stored.remove(crate::expiry::EXPIRES_AT);
            fields.push((format!("cb:{}", event.as_str()), stored.to_json()));
        }
        Ok(Creation {
            token: creation_token(bid),
            parent: self.parent.clone(),
            fields,
        })
    }
}

/// The token of every creation of batch `bid` (its hash's `creator`): the same for a creation
/// run again with a fixed bid, which so resumes one that failed half-way; each chunk is pushed
/// once by its number, so two creations with the bid never push one twice.
fn creation_token(bid: &Bid) -> String {
    format!("creation:{bid}")
}

//! What a running job can know about itself.

use chrono::{DateTime, Utc};

use crate::batch::{BatchEvent, BatchHandle, Bid};
use crate::client::Client;
use crate::jid::Jid;
use crate::payload::Payload;

/// The running job's own facts: its id, queue, retry count and times.
///
/// A job asks for it with a `#[context]` parameter:
///
/// ```
/// use jobs_runtime::{JobContext, JobError};
/// # async fn example() {}
/// // #[job]
/// async fn send_digest(ctx: JobContext, user_id: u64) -> Result<(), JobError> {
///     tracing::info!(jid = %ctx.jid(), attempt = ctx.attempt(), user_id, "sending digest");
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JobContext {
    /// The batch the job belongs to (its payload's `bid`), if any.
    bid: Option<Bid>,
    /// For a batch's callback job: the batch and the moment that pushed it.
    batch_callback: Option<(Bid, BatchEvent)>,
    /// The client of the worker running the job, which its batch handles push through.
    client: WorkerClient,
    /// How many adds this run made through its batch handles.
    adds: AddCounter,
    /// The job's jid.
    jid: Jid,
    /// The job's class, as pushed.
    class: String,
    /// The queue it was taken from.
    queue: String,
    /// How many times it was retried, if it was.
    retry_count: Option<u32>,
    /// When it was last put in its queue.
    enqueued_at: Option<DateTime<Utc>>,
    /// When it was first pushed.
    created_at: Option<DateTime<Utc>>,
    /// Its tags.
    tags: Vec<String>,
}

impl JobContext {
    /// The context of the job `payload` describes.
    pub fn from_payload(payload: &Payload) -> Self {
        let bid = payload
            .extra
            .get("bid")
            .and_then(serde_json::Value::as_str)
            .and_then(|bid| bid.parse().ok());
        let batch_callback = payload.extra.get("batch_callback").and_then(|callback| {
            let bid = callback.get("bid")?.as_str()?.parse().ok()?;
            let event = callback.get("event")?.as_str()?.parse().ok()?;
            Some((bid, event))
        });
        // Only a batch's job counts its adds.
        let adds = AddCounter(bid.is_some().then(Default::default));
        Self {
            bid,
            batch_callback,
            client: WorkerClient(None),
            adds,
            jid: payload.jid.clone(),
            class: payload.class.clone(),
            queue: payload.queue.clone(),
            retry_count: payload.retry_count,
            enqueued_at: payload.enqueued_at.map(|at| at.to_datetime()),
            created_at: payload.created_at.map(|at| at.to_datetime()),
            tags: payload.tags.clone().unwrap_or_default(),
        }
    }

    /// A context with no facts in it (an empty jid, class and queue; no batch, client or
    /// times), which the worker passes to a job that does not read its context
    /// ([`Job::READS_CONTEXT`](crate::Job::READS_CONTEXT) false). It allocates nothing.
    pub(crate) fn unread() -> Self {
        Self {
            bid: None,
            batch_callback: None,
            client: WorkerClient(None),
            adds: AddCounter(None),
            jid: Jid::unread(),
            class: String::new(),
            queue: String::new(),
            retry_count: None,
            enqueued_at: None,
            created_at: None,
            tags: Vec::new(),
        }
    }

    /// The job id.
    pub fn jid(&self) -> &Jid {
        &self.jid
    }

    /// The wire name (Sidekiq's `class`).
    pub fn class(&self) -> &str {
        &self.class
    }

    /// The queue the job was taken from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Sidekiq's `retry_count`: `None` on the first run, `Some(0)` on the first retry.
    pub fn retry_count(&self) -> Option<u32> {
        self.retry_count
    }

    /// Which run this is: 1 for the first, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.retry_count.map_or(1, |count| count.saturating_add(2))
    }

    /// When the job was last put on its queue.
    pub fn enqueued_at(&self) -> Option<DateTime<Utc>> {
        self.enqueued_at
    }

    /// When the job was first pushed.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
    }

    /// The job's tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The job's batch, when it is a batch's job (its payload carries `"bid"`): to add jobs
    /// to it, or nest a batch in it. Pushes through the worker's client (the global client
    /// outside a worker).
    pub fn batch(&self) -> Option<BatchHandle> {
        let bid = self.bid.clone()?;
        Some(BatchHandle::new(
            bid,
            self.client.0.clone(),
            self.jid.clone(),
            // There whenever the bid is (`from_payload`).
            self.adds.0.clone().unwrap_or_default(),
        ))
    }

    /// For a batch's callback job (its payload carries `"batch_callback"`): the batch whose
    /// moment pushed it, and which moment.
    pub fn batch_callback(&self) -> Option<&(Bid, BatchEvent)> {
        self.batch_callback.as_ref()
    }

    /// The context with the client of the worker running the job, which [`batch`](Self::batch)
    /// pushes through.
    pub(crate) fn with_client(mut self, client: Client) -> Self {
        self.client = WorkerClient(Some(client));
        self
    }

    /// The client of the worker running the job, if any: what the runtime's own jobs (a
    /// workflow's advance) write through.
    pub(crate) fn worker_client(&self) -> Option<&Client> {
        self.client.0.as_ref()
    }
}

/// The client of the worker running a job, if any: not part of a context's equality (it is
/// how the job reaches Redis, not a fact about the job).
#[derive(Debug, Clone)]
struct WorkerClient(Option<Client>);

impl PartialEq for WorkerClient {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// How many adds this run of the job made through its batch handles (shared by every
/// handle and clone of the context): with the job's jid, what the added jobs' jids are derived
/// from, so a run made again adds the same jids. Not part of a context's equality. `None`
/// outside a batch: there is nothing to add to.
#[derive(Debug, Clone, Default)]
struct AddCounter(Option<std::sync::Arc<std::sync::atomic::AtomicU64>>);

impl PartialEq for AddCounter {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::JobContext;
    use crate::payload::Payload;

    #[test]
    fn a_batch_job_knows_its_batch_and_a_callback_its_moment() {
        let mut payload = Payload::new("A", vec![]);
        assert!(JobContext::from_payload(&payload).batch().is_none());
        payload
            .extra
            .insert("bid".to_owned(), "b-Zx_09azAZ1-2".into());
        let context = JobContext::from_payload(&payload);
        assert_eq!(context.batch().unwrap().bid().as_str(), "b-Zx_09azAZ1-2");
        assert_eq!(context.batch_callback(), None);
        let mut callback = Payload::new("C", vec![]);
        callback.extra.insert(
            "batch_callback".to_owned(),
            serde_json::json!({"bid": "b-Zx_09azAZ1-2", "event": "success"}),
        );
        let context = JobContext::from_payload(&callback);
        assert!(context.batch().is_none());
        let (bid, event) = context.batch_callback().unwrap();
        assert_eq!(
            (bid.as_str(), *event),
            ("b-Zx_09azAZ1-2", crate::BatchEvent::Success)
        );
    }

    #[test]
    fn attempt_counts_from_one() {
        let mut payload = Payload::new("A", vec![]);
        assert_eq!(JobContext::from_payload(&payload).attempt(), 1);
        payload.retry_count = Some(0);
        assert_eq!(JobContext::from_payload(&payload).attempt(), 2);
    }
}

//! What a running job can know about itself.

use chrono::{DateTime, Utc};

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
    jid: Jid,
    class: String,
    queue: String,
    retry_count: Option<u32>,
    enqueued_at: Option<DateTime<Utc>>,
    created_at: Option<DateTime<Utc>>,
    tags: Vec<String>,
}

impl JobContext {
    /// The context of the job `payload` describes.
    pub fn from_payload(payload: &Payload) -> Self {
        Self {
            jid: payload.jid.clone(),
            class: payload.class.clone(),
            queue: payload.queue.clone(),
            retry_count: payload.retry_count,
            enqueued_at: payload.enqueued_at.map(|at| at.to_datetime()),
            created_at: payload.created_at.map(|at| at.to_datetime()),
            tags: payload.tags.clone().unwrap_or_default(),
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
}

#[cfg(test)]
mod tests {
    use super::JobContext;
    use crate::payload::Payload;

    #[test]
    fn attempt_counts_from_one() {
        let mut payload = Payload::new("A", vec![]);
        assert_eq!(JobContext::from_payload(&payload).attempt(), 1);
        payload.retry_count = Some(0);
        assert_eq!(JobContext::from_payload(&payload).attempt(), 2);
    }
}

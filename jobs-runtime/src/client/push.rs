//! Turning payloads into Redis writes: Sidekiq's exact push commands.
//!
//! A job to run now: `SADD queues <q>` and `LPUSH queue:<q> <json>` in one round trip. A job
//! for later: `ZADD schedule <at> <json>`, its JSON without `enqueued_at`. Bulk pushes send
//! 1,000 jobs per round trip, one variadic `LPUSH` per queue.

use redis::Pipeline;

use super::Client;
use super::middleware::Flow;
use crate::error::Error;
use crate::jid::Jid;
use crate::payload::Payload;
use crate::timestamp::Timestamp;

/// How many jobs one bulk round trip carries, as Sidekiq's `push_bulk` batches them.
pub(super) const BULK_BATCH: usize = 1_000;

/// A job that passed middleware and checks, as it will be written.
pub(super) struct Prepared {
    pub(super) jid: Jid,
    queue: String,
    pub(super) json: String,
    /// When to run it, if that is in the future.
    at: Option<Timestamp>,
}

impl Client {
    /// Pushes one job to run now (`at` is `None` or not in the future) or later.
    pub(super) async fn push_one(
        &self,
        payload: Payload,
        at: Option<Timestamp>,
    ) -> Result<Jid, Error> {
        let prepared = self.prepare(payload, at, crate::testing::now()).await?;
        self.send(std::slice::from_ref(&prepared)).await?;
        Ok(prepared.jid)
    }

    /// Pushes many jobs, [`BULK_BATCH`] per round trip; jobs a middleware stops are skipped.
    /// All share one `created_at`/`enqueued_at`, as in Sidekiq.
    pub(super) async fn push_many(
        &self,
        payloads: impl IntoIterator<Item = Payload>,
        at: Option<Timestamp>,
    ) -> Result<Vec<Jid>, Error> {
        let now = crate::testing::now();
        let mut jids = Vec::new();
        let mut batch = Vec::with_capacity(BULK_BATCH);
        for payload in payloads {
            match self.prepare(payload, at, now).await {
                Ok(prepared) => batch.push(prepared),
                Err(Error::Stopped { .. }) => continue,
                Err(error) => return Err(error),
            }
            if batch.len() == BULK_BATCH {
                self.send(&batch).await?;
                jids.extend(batch.drain(..).map(|prepared| prepared.jid));
            }
        }
        if !batch.is_empty() {
            self.send(&batch).await?;
            jids.extend(batch.into_iter().map(|prepared| prepared.jid));
        }
        Ok(jids)
    }

    /// Runs the middleware, checks the job, stamps its times and encodes it, for a job to run
    /// now that another step writes (a periodic tick's claim): its jid and JSON. `None` when a
    /// middleware stopped it.
    pub(crate) async fn prepare_now(
        &self,
        payload: Payload,
    ) -> Result<Option<(Jid, String)>, Error> {
        match self.prepare(payload, None, crate::testing::now()).await {
            Ok(prepared) => Ok(Some((prepared.jid, prepared.json))),
            Err(Error::Stopped { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Runs the middleware, checks the job, stamps its times and encodes it.
    pub(super) async fn prepare(
        &self,
        mut payload: Payload,
        at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Prepared, Error> {
        for middleware in &self.inner.middleware {
            match middleware.call(&mut payload).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => {
                    return Err(Error::Stopped {
                        class: payload.class,
                        jid: payload.jid,
                        middleware: middleware.name(),
                    });
                }
                Err(error) => {
                    return Err(Error::Middleware {
                        class: payload.class,
                        middleware: middleware.name(),
                        error,
                    });
                }
            }
        }
        payload.validate()?;
        payload.created_at.get_or_insert(now);
        let at = at.filter(|at| *at > now);
        payload.enqueued_at = if at.is_some() { None } else { Some(now) };
        let json = payload.to_json().map_err(|error| Error::Encode {
            class: payload.class.clone(),
            reason: error.to_string(),
        })?;
        if json.len() > self.inner.max_payload_bytes {
            return Err(Error::PayloadTooLarge {
                class: payload.class,
                size: json.len(),
                limit: self.inner.max_payload_bytes,
            });
        }
        Ok(Prepared {
            jid: payload.jid,
            queue: payload.queue,
            json,
            at,
        })
    }

    /// Writes prepared jobs in one round trip; while a `jobs::testing` mode is on, hands them
    /// to it instead.
    async fn send(&self, batch: &[Prepared]) -> Result<(), Error> {
        if let Some(mode) = crate::testing::active() {
            for prepared in batch {
                crate::testing::deliver(&mode, &prepared.json, prepared.at).await?;
            }
            return Ok(());
        }
        self.inner.redis.query::<()>(&self.commands(batch)).await
    }

    fn commands(&self, batch: &[Prepared]) -> Pipeline {
        let keys = &self.inner.keys;
        let mut by_queue: Vec<(&str, Vec<&str>)> = Vec::new();
        let mut scheduled: Vec<(f64, &str)> = Vec::new();
        for prepared in batch {
            match prepared.at {
                Some(at) => scheduled.push((at.as_epoch_seconds(), &prepared.json)),
                None => match by_queue
                    .iter_mut()
                    .find(|(queue, _)| *queue == prepared.queue)
                {
                    Some((_, jobs)) => jobs.push(&prepared.json),
                    None => by_queue.push((&prepared.queue, vec![&prepared.json])),
                },
            }
        }
        let mut pipeline = redis::pipe();
        for (queue, jobs) in by_queue {
            pipeline.sadd(keys.queues(), queue).ignore();
            pipeline.lpush(keys.queue(queue), jobs).ignore();
        }
        if !scheduled.is_empty() {
            pipeline.zadd_multiple(keys.schedule(), &scheduled).ignore();
        }
        pipeline
    }
}

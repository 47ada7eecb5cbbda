//! Turning payloads into Redis writes: Sidekiq's exact push commands.
//!
//! A job to run now: `SADD queues <q>` and `LPUSH queue:<q> <json>` in one round trip. A job
//! for later: `ZADD schedule <at> <json>`, its JSON without `enqueued_at`. Bulk pushes send
//! 1,000 jobs per round trip, one variadic `LPUSH` per queue. A unique job is pushed by
//! `scripts/unique_push.lua` instead, which takes its lock in the same step (still one round
//! trip, for one job or a bulk batch).

use redis::{Pipeline, Value};

use super::Client;
use super::middleware::Flow;
use super::pushed::Pushed;
use crate::error::Error;
use crate::jid::Jid;
use crate::payload::Payload;
use crate::redis::{Shortfall, scripts};
use crate::timestamp::Timestamp;
use crate::unique;

/// How many jobs one bulk round trip carries, as Sidekiq's `push_bulk` batches them.
pub(super) const BULK_BATCH: usize = 1_000;

/// A job that passed middleware and checks, as it will be written.
pub(super) struct Prepared {
    pub(super) jid: Jid,
    queue: String,
    pub(super) json: String,
    /// When to run it, if that is in the future.
    at: Option<Timestamp>,
    /// The unique lock it takes, if it is a unique job.
    lock: Option<unique::Request>,
}

impl Client {
    /// Pushes one job to run now (`at` is `None` or not in the future) or later.
    pub(super) async fn push_one(
        &self,
        payload: Payload,
        at: Option<Timestamp>,
    ) -> Result<Pushed, Error> {
        let prepared = self.prepare(payload, at, crate::testing::now()).await?;
        let mut pushed = self.send(std::slice::from_ref(&prepared)).await?;
        Ok(pushed.pop().unwrap_or(Pushed::Queued(prepared.jid)))
    }

    /// Pushes many jobs, [`BULK_BATCH`] per round trip; jobs a middleware stops are skipped.
    /// All share one `created_at`/`enqueued_at`, as in Sidekiq.
    pub(super) async fn push_many(
        &self,
        payloads: impl IntoIterator<Item = Payload>,
        at: Option<Timestamp>,
    ) -> Result<Vec<Pushed>, Error> {
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
                jids.extend(self.send(&batch).await?);
                batch.clear();
            }
        }
        if !batch.is_empty() {
            jids.extend(self.send(&batch).await?);
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

    /// Runs the middleware, checks the job, stamps its times and encodes it, for a job that a
    /// batch's script pushes to run now (`jobs::Batch`): its jid, its queue and its JSON.
    /// `None` when a middleware stopped it. A unique job is refused: a batch's script pushes
    /// without taking locks.
    pub(crate) async fn prepare_batch_member(
        &self,
        payload: Payload,
        now: Timestamp,
    ) -> Result<Option<(Jid, String, String)>, Error> {
        match self.prepare(payload, None, now).await {
            Ok(prepared) if prepared.lock.is_some() => Err(Error::InvalidJob {
                class: Payload::from_json(&prepared.json)
                    .map(|payload| payload.class)
                    .unwrap_or_default(),
                reason: "a unique job (unique_for) cannot be a batch's job or callback; push it \
                         without unique_for, or outside the batch"
                    .to_owned(),
            }),
            Ok(prepared) => Ok(Some((prepared.jid, prepared.queue, prepared.json))),
            Err(Error::Stopped { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Runs the middleware, checks the job, stamps its times and encodes it; with the `otel`
    /// feature, inside a `publish` span whose trace context the job carries.
    pub(super) async fn prepare(
        &self,
        payload: Payload,
        at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Prepared, Error> {
        #[cfg(feature = "otel")]
        {
            use tracing::Instrument;
            let mut payload = payload;
            let span = crate::otel::publish_span(&mut payload);
            self.prepare_untraced(payload, at, now)
                .instrument(span)
                .await
        }
        #[cfg(not(feature = "otel"))]
        self.prepare_untraced(payload, at, now).await
    }

    /// [`prepare`](Self::prepare), without a span.
    async fn prepare_untraced(
        &self,
        mut payload: Payload,
        at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Prepared, Error> {
        self.run_middleware(&mut payload).await?;
        self.check_and_encode(payload, at, now)
    }

    /// Runs the client middleware over `payload`: [`Error::Stopped`] when one stops it.
    pub(crate) async fn run_middleware(&self, payload: &mut Payload) -> Result<(), Error> {
        for middleware in &self.inner.middleware {
            match middleware.call(payload).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => {
                    return Err(Error::Stopped {
                        class: payload.class.clone(),
                        jid: payload.jid.clone(),
                        middleware: middleware.name(),
                    });
                }
                Err(error) => {
                    return Err(Error::Middleware {
                        class: payload.class.clone(),
                        middleware: middleware.name(),
                        error,
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks a job as a batch's member, without its middleware (nothing else runs, nothing
    /// is written): what [`prepare_batch_member`](Self::prepare_batch_member) would refuse
    /// after the middleware (a job that does not validate or encode, a unique job, one too
    /// large). For a workflow's steps, checked at the push before anything is written.
    pub(crate) fn check_batch_member(
        &self,
        payload: &Payload,
        now: Timestamp,
    ) -> Result<(), Error> {
        let prepared = self.check_and_encode(payload.clone(), None, now)?;
        if prepared.lock.is_some() {
            return Err(Error::InvalidJob {
                class: payload.class.clone(),
                reason: "a unique job (unique_for) cannot be a batch's job or callback; push it \
                         without unique_for, or outside the batch"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// What [`prepare`](Self::prepare) does after the middleware: checks the job, stamps its
    /// times and encodes it.
    fn check_and_encode(
        &self,
        mut payload: Payload,
        at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Prepared, Error> {
        payload.validate()?;
        payload.created_at.get_or_insert(now);
        let at = at.filter(|at| *at > now);
        payload.enqueued_at = if at.is_some() { None } else { Some(now) };
        let due = at.unwrap_or(now);
        let invalid = |payload: &Payload, reason: String| Error::InvalidJob {
            class: payload.class.clone(),
            reason,
        };
        crate::expiry::stamp(&mut payload, due).map_err(|reason| invalid(&payload, reason))?;
        let lock =
            unique::request(&mut payload, now, due).map_err(|reason| invalid(&payload, reason))?;
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
            lock,
        })
    }

    /// Writes prepared jobs in one round trip and says what became of each; while a
    /// `jobs::testing` mode is on, hands them to it instead.
    async fn send(&self, batch: &[Prepared]) -> Result<Vec<Pushed>, Error> {
        if let Some(mode) = crate::testing::active() {
            let mut pushed = Vec::with_capacity(batch.len());
            for prepared in batch {
                let lock = prepared.lock.as_ref();
                pushed
                    .push(crate::testing::deliver(&mode, &prepared.json, prepared.at, lock).await?);
            }
            return Ok(pushed);
        }
        let redis = &self.inner.redis;
        if let [prepared] = batch
            && let Some(lock) = &prepared.lock
        {
            // Safe to send again after a broken connection: the script pushes nothing twice.
            let (keys, args) = self.unique_push(prepared, lock);
            let mut invocation = scripts::UNIQUE_PUSH.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            for arg in &args {
                invocation.arg(arg.as_ref());
            }
            let holder: Option<String> = redis.script(&invocation).await?;
            redis.wait_replicas(Shortfall::Fail).await?;
            return Ok(vec![answer(&prepared.jid, holder)]);
        }
        let pipeline = self.commands(batch);
        let replies: Vec<Value> = redis.query_replicated(&pipeline, Shortfall::Fail).await?;
        let mut replies = replies.into_iter();
        Ok(batch
            .iter()
            .map(|prepared| match prepared.lock {
                // One reply per unique push, in order; the other commands' are ignored.
                Some(_) => {
                    let holder = replies.next().and_then(|reply| match reply {
                        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
                        Value::SimpleString(text) => Some(text),
                        _ => None,
                    });
                    answer(&prepared.jid, holder)
                }
                None => Pushed::Queued(prepared.jid.clone()),
            })
            .collect())
    }

    /// The keys and arguments of `scripts/unique_push.lua` for `prepared`, taking `lock`.
    fn unique_push<'a>(
        &self,
        prepared: &'a Prepared,
        lock: &unique::Request,
    ) -> ([String; 3], [std::borrow::Cow<'a, str>; 5]) {
        let keys = &self.inner.keys;
        let (target, score) = match prepared.at {
            Some(at) => (keys.schedule(), at.as_epoch_seconds().to_string()),
            None => (keys.queue(&prepared.queue), String::new()),
        };
        (
            [keys.unique(&lock.digest), target, keys.queues()],
            [
                prepared.jid.as_str().into(),
                lock.ttl_ms.to_string().into(),
                prepared.json.as_str().into(),
                prepared.queue.as_str().into(),
                score.into(),
            ],
        )
    }

    fn commands(&self, batch: &[Prepared]) -> Pipeline {
        let keys = &self.inner.keys;
        let mut by_queue: Vec<(&str, Vec<&str>)> = Vec::new();
        let mut scheduled: Vec<(f64, &str)> = Vec::new();
        let mut pipeline = redis::pipe();
        let mut loaded = false;
        for prepared in batch {
            if let Some(lock) = &prepared.lock {
                if !loaded {
                    // Loaded in the same round trip, before its first use, so the EVALSHAs
                    // below never meet NOSCRIPT.
                    pipeline
                        .cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(scripts::UNIQUE_PUSH_SOURCE)
                        .ignore();
                    loaded = true;
                }
                let (keys, args) = self.unique_push(prepared, lock);
                let command = pipeline
                    .cmd("EVALSHA")
                    .arg(scripts::UNIQUE_PUSH.get_hash())
                    .arg(keys.len());
                for key in &keys {
                    command.arg(key);
                }
                for arg in &args {
                    command.arg(arg.as_ref());
                }
                continue;
            }
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
        for (queue, jobs) in by_queue {
            pipeline.sadd(keys.queues(), queue).ignore();
            pipeline.lpush(keys.queue(queue), jobs).ignore();
        }
        if !scheduled.is_empty() {
            pipeline.zadd_multiple(keys.schedule(), &scheduled).ignore();
        }
        pipeline
    }

    /// Runs the middleware, checks the job, stamps its times and encodes it as a push of
    /// `payload` to run at `at` does, without writing it (`jobs::outbox` writes it to its table
    /// instead): its jid, its queue, its JSON and when it is due (`None`: now). A middleware
    /// that stops the job gives [`Error::Stopped`], as for a push.
    #[cfg(feature = "postgres")]
    pub(crate) async fn prepare_unsent(
        &self,
        payload: Payload,
        at: Option<Timestamp>,
    ) -> Result<(Jid, String, String, Option<Timestamp>), Error> {
        let prepared = self.prepare(payload, at, crate::testing::now()).await?;
        Ok((prepared.jid, prepared.queue, prepared.json, prepared.at))
    }
}

/// What a unique push's script answered: nothing (pushed) or the holder's jid.
fn answer(jid: &Jid, holder: Option<String>) -> Pushed {
    match holder {
        Some(holder) => Pushed::Duplicate(Jid::from(holder)),
        None => Pushed::Queued(jid.clone()),
    }
}

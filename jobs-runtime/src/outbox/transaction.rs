//! The transaction a controller writes its data and pushes its jobs in.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres};

use super::mover;
use super::table::{self, Row, postgres};
use crate::client::{Client, Setter};
use crate::error::Error;
use crate::jid::Jid;
use crate::job::Job;
use crate::payload::Payload;
use crate::timestamp::Timestamp;

/// A PostgreSQL transaction whose job pushes commit with it: each push writes the job to the
/// table `jobs_outbox` inside the transaction, and [`commit`](Self::commit) moves them to Redis
/// once the transaction has committed. A rollback, or dropping it uncommitted, pushes nothing.
///
/// It dereferences to the connection, so the app's own statements run in it as in a
/// `sqlx::Transaction`, with `&mut *tx`:
///
/// ```no_run
/// # use jobs_runtime::{Job, outbox};
/// # use jobs_runtime::outbox::sqlx;
/// # async fn example<J: Job>(pool: sqlx::PgPool, job: J) -> Result<(), Box<dyn std::error::Error>> {
/// let mut tx = outbox::begin(&pool).await?;
/// sqlx::query("UPDATE todos SET done = true WHERE id = $1")
///     .bind(7_i64)
///     .execute(&mut *tx)
///     .await?;
/// tx.perform_async(job).await?;
/// tx.commit().await?; // the update is saved, and the job is in Redis
/// # Ok(()) }
/// ```
///
/// All of one transaction's jobs go through one client (one Redis and namespace): the one given
/// to [`begin_with`](super::begin_with), else the one a [`Setter`] names with `client(…)`, else
/// the default client.
pub struct Transaction {
    /// The database transaction.
    inner: sqlx::Transaction<'static, Postgres>,
    /// Where the rows are deleted from once they are in Redis.
    pool: PgPool,
    /// The client the jobs go through, once known.
    client: Option<Client>,
    /// The rows written, in push order (which is id order).
    rows: Vec<Row>,
    /// The transaction's id in PostgreSQL, once a row is written.
    xid: Option<i64>,
}

/// What [`Transaction::commit`] did with the transaction's jobs, once the transaction had
/// committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committed {
    /// Jobs that reached Redis (a unique job refused there as a duplicate counts too: it is
    /// settled).
    pub moved: usize,
    /// Jobs left to the relay in the workers: Redis could not be reached or refused them,
    /// PostgreSQL could not be reached right after the commit, or the relay was moving them
    /// already (it moves them, once). They are safe: the transaction committed them.
    pub left: usize,
}

impl Transaction {
    /// Starts a transaction on `pool`, pushing through `client` (or, when `None`, the client
    /// the first push names or the default one).
    pub(super) async fn begin(pool: &PgPool, client: Option<Client>) -> Result<Self, Error> {
        let inner = pool
            .begin()
            .await
            .map_err(postgres("begin a transaction"))?;
        Ok(Self {
            inner,
            pool: pool.clone(),
            client,
            rows: Vec::new(),
            xid: None,
        })
    }

    /// Pushes `job` to run as soon as a worker takes it, once the transaction commits; returns
    /// its jid. The job's options apply, and the client's middleware runs now, as for
    /// [`Client::perform_async`].
    pub async fn perform_async<J: Job>(&mut self, job: J) -> Result<Jid, Error> {
        self.push(Setter::<J>::new(), job).await
    }

    /// Pushes `job` to run after `delay`, counted from now, once the transaction commits.
    pub async fn perform_in<J: Job>(&mut self, delay: Duration, job: J) -> Result<Jid, Error> {
        self.push(Setter::<J>::new().wait(delay), job).await
    }

    /// Pushes `job` to run at `time`, once the transaction commits.
    pub async fn perform_at<J: Job>(&mut self, time: DateTime<Utc>, job: J) -> Result<Jid, Error> {
        self.push(Setter::<J>::new().wait_until(time), job).await
    }

    /// Pushes a job with per-push options, once the transaction commits:
    /// `tx.push(ScoreGeneration::set().queue("critical"), today)`. Takes the arguments as the
    /// setter's `perform_async` does. Returns the jid: a unique job whose lock another job
    /// holds when it reaches Redis is dropped then (see the module's docs).
    pub async fn push<J: Job>(
        &mut self,
        setter: Setter<J>,
        args: impl Into<J>,
    ) -> Result<Jid, Error> {
        let (payload, at, via) = setter.into_push(args)?;
        self.write(payload, at, via).await
    }

    /// Pushes a job given as a payload (for a class Ruby defines, say), once the transaction
    /// commits, as [`Client::push`] does.
    pub async fn push_payload(&mut self, payload: Payload) -> Result<Jid, Error> {
        self.write(payload, None, None).await
    }

    /// Pushes a payload to run at `time`, once the transaction commits.
    pub async fn push_payload_at(
        &mut self,
        time: DateTime<Utc>,
        payload: Payload,
    ) -> Result<Jid, Error> {
        self.write(payload, Some(time.into()), None).await
    }

    /// The jids pushed so far, in push order.
    pub fn jids(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|row| row.jid.as_str())
    }

    /// The sqlx transaction itself, for code that takes one
    /// (`&mut sqlx::Transaction<'_, Postgres>`).
    pub fn as_sqlx(&mut self) -> &mut sqlx::Transaction<'static, Postgres> {
        &mut self.inner
    }

    /// Commits the transaction, then moves its jobs to Redis at once and deletes them from the
    /// outbox: it locks its rows again in a short transaction of its own, as the relay does, so
    /// the two never both push a row. An error means the transaction did not commit (or, for a
    /// connection lost during the `COMMIT`, that PostgreSQL may have committed it: then the
    /// relay moves its jobs). That includes a transaction PostgreSQL rolled back at the `COMMIT`
    /// because a statement in it had failed and the app went on (sqlx reports no error then):
    /// once it has pushed a job, `commit()` finds that out and returns [`Error::Postgres`].
    /// Once it has committed, the jobs are safe whatever happens to Redis or to this process:
    /// what cannot move now is [`left`](Committed::left) for the relay, and logged.
    pub async fn commit(self) -> Result<Committed, Error> {
        let Self {
            inner,
            pool,
            client,
            rows,
            xid,
        } = self;
        inner
            .commit()
            .await
            .map_err(postgres("commit the transaction"))?;
        match (client, xid) {
            (Some(client), Some(xid)) if !rows.is_empty() => {
                move_committed(&client, &pool, &rows, xid).await
            }
            _ => Ok(Committed::default()),
        }
    }

    /// Rolls the transaction back: its data and its jobs are gone, and nothing reached Redis.
    /// Dropping the transaction uncommitted does the same.
    pub async fn rollback(self) -> Result<(), Error> {
        self.inner
            .rollback()
            .await
            .map_err(postgres("roll the transaction back"))
    }

    /// Prepares `payload` as a push through the transaction's client does, and writes it to the
    /// outbox in the transaction.
    async fn write(
        &mut self,
        payload: Payload,
        at: Option<Timestamp>,
        via: Option<Client>,
    ) -> Result<Jid, Error> {
        let class = payload.class.clone();
        let client = self.client_for(&class, via)?;
        let (jid, queue, json, at) = client.prepare_unsent(payload, at).await?;
        let run_at = at.map(Timestamp::as_epoch_seconds);
        let (id, xid) = table::insert(&mut self.inner, jid.as_str(), &queue, &json, run_at).await?;
        self.xid = Some(xid);
        self.rows.push(Row {
            id,
            jid: jid.as_str().to_owned(),
            queue,
            payload: json,
            run_at,
        });
        Ok(jid)
    }

    /// The client a push of `class` goes through: the transaction's, which the first push
    /// fixes; a setter naming another Redis or namespace is an error.
    fn client_for(&mut self, class: &str, via: Option<Client>) -> Result<Client, Error> {
        let client = match (self.client.take(), via) {
            (Some(own), Some(via))
                if own.url() != via.url() || own.namespace() != via.namespace() =>
            {
                let reason = format!(
                    "its setter names the Redis at {} (namespace {:?}), but this transaction's \
                     jobs go to the Redis at {} (namespace {:?}); all of one transaction's jobs \
                     go through one client, so push it in a transaction of its own",
                    via.url(),
                    via.namespace(),
                    own.url(),
                    own.namespace()
                );
                self.client = Some(own);
                return Err(Error::InvalidJob {
                    class: class.to_owned(),
                    reason,
                });
            }
            (Some(own), _) => own,
            (None, Some(via)) => via,
            (None, None) => Client::global()?,
        };
        self.client = Some(client.clone());
        Ok(client)
    }
}

/// Moves the rows of a committed transaction to Redis and deletes them; says how many moved.
/// It first locks the rows again (`FOR UPDATE SKIP LOCKED`, as the relay reads them) in a
/// transaction of its own, and moves only those: a row the relay holds or has deleted is the
/// relay's. None of them there means the relay has them all, or the transaction rolled back:
/// PostgreSQL's record of the transaction tells which. Whatever fails is logged and left to the
/// relay.
async fn move_committed(
    client: &Client,
    pool: &PgPool,
    rows: &[Row],
    xid: i64,
) -> Result<Committed, Error> {
    let all_left = Committed {
        moved: 0,
        left: rows.len(),
    };
    let unreachable = |error: &Error| {
        tracing::warn!(
            %error,
            jobs = rows.len(),
            "committed, but cannot read the transaction's jobs back from the outbox now; they \
             wait there for the relay"
        );
    };
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(error) => {
            unreachable(&postgres("begin a transaction")(error));
            return Ok(all_left);
        }
    };
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let own = match table::claim_own(&mut tx, &ids).await {
        Ok(own) => own,
        Err(error) => {
            unreachable(&error);
            return Ok(all_left);
        }
    };
    if own.is_empty() {
        return match table::rolled_back(&mut tx, xid).await {
            Ok(true) => Err(Error::Postgres {
                action: "commit the transaction".to_owned(),
                reason: "it was rolled back instead, because a statement in it had failed (an \
                         error ignored inside a transaction aborts it, and PostgreSQL then turns \
                         its COMMIT into a rollback); nothing of it was saved, and none of its \
                         jobs was pushed"
                    .to_owned(),
            }),
            // Committed, and the relay is moving them or has moved them.
            Ok(false) => Ok(all_left),
            Err(error) => {
                unreachable(&error);
                Ok(all_left)
            }
        };
    }
    let own: Cow<'_, [Row]> = if own.len() == rows.len() {
        Cow::Borrowed(rows)
    } else {
        Cow::Owned(
            rows.iter()
                .filter(|row| own.binary_search(&row.id).is_ok())
                .cloned()
                .collect(),
        )
    };
    let outcomes = match mover::push(client, &own).await {
        Ok(outcomes) => outcomes,
        Err(partial) => {
            tracing::warn!(
                error = %partial.error,
                jobs = own.len() - partial.outcomes.len(),
                "committed, but cannot move all of the transaction's jobs to Redis now; the \
                 rest wait in the outbox for the relay"
            );
            partial.outcomes
        }
    };
    let done = mover::done_rows(&own, &outcomes);
    let ids: Vec<i64> = done.iter().map(|row| row.id).collect();
    let deleted = match table::delete(&mut tx, &ids).await {
        Ok(()) => tx
            .commit()
            .await
            .map_err(postgres("delete the moved jobs from the outbox")),
        Err(error) => Err(error),
    };
    match deleted {
        Ok(()) => mover::forget_marks(client, done.iter().map(|row| row.jid.as_str())).await,
        Err(error) => tracing::warn!(
            %error,
            jobs = ids.len(),
            "the transaction's jobs are in Redis but still in the outbox; the relay deletes \
             them without pushing them again"
        ),
    }
    Ok(Committed {
        moved: done.len(),
        left: rows.len() - done.len(),
    })
}

impl Deref for Transaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.inner
    }
}

impl DerefMut for Transaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.inner
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("client", &self.client)
            .field("jids", &self.jids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

//! Jobs that commit with the database (feature `postgres`): a transactional outbox for sqlx and
//! PostgreSQL.
//!
//! A controller that changes a todo and pushes `ScoreGeneration` must not push a job for a
//! transaction that rolled back, nor lose the job when the process dies between its `COMMIT`
//! and its push. Inside a [`Transaction`], a push writes the job to the table `jobs_outbox` in
//! that transaction; [`Transaction::commit`] commits, then moves the transaction's jobs to Redis
//! at once and deletes their rows. The relay in the workers ([`Relay`], on with
//! [`Worker::outbox`](crate::Worker::outbox)) moves whatever a crash left behind, exactly once
//! by jid, in order.
//!
//! ```no_run
//! use jobs_runtime::outbox::{self, sqlx};
//! # async fn example<J: jobs_runtime::Job>(job: J) -> Result<(), Box<dyn std::error::Error>> {
//!
//! let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
//! outbox::migrate(&pool).await?; // creates `jobs_outbox` unless it exists
//!
//! // In a controller:
//! let mut tx = outbox::begin(&pool).await?;
//! sqlx::query("UPDATE todos SET done = true WHERE id = $1")
//!     .bind(7_i64)
//!     .execute(&mut *tx)
//!     .await?;
//! tx.perform_async(job).await?; // or tx.push(ScoreGeneration::set().queue("critical"), today)
//! tx.commit().await?;
//!
//! // In the worker binary: the relay runs beside the fetcher.
//! jobs_runtime::Worker::from_cli()?.outbox(pool).run().await?;
//! # Ok(()) }
//! ```
//!
//! `docs/outbox.md` has the whole story: the table, the guarantees and their limits, the order
//! of jobs, the failure cases and the Redis keys.
//!
//! # What a row holds
//!
//! The JSON a direct push would have written (the same client middleware, jid, `created_at`,
//! unique and expiry options, payload size check, all at the time of the push), its queue, and
//! for a scheduled job when it is due. `enqueued_at` is set again when the job reaches Redis, as
//! Sidekiq's poller does for a scheduled job: `created_at` is the push, `enqueued_at` its arrival
//! in the queue, and the gap between them the time it waited for the commit.
//!
//! # Exactly once, by jid
//!
//! Every move, by the committing process or a relay, holds the row's lock (`FOR UPDATE SKIP
//! LOCKED`) from before its push until its `DELETE` commits, so a relay racing the committing
//! process never moves the same row. The step that pushes a row's job also sets the mark
//! `jobs:outbox:<jid>`, atomically, and pushes nothing when the mark is already there; the mark
//! is deleted once the row is. So a process that dies after the push and before the row's
//! `DELETE` never has its job pushed twice either (within the mark's 24 hours).
//!
//! # Unique jobs
//!
//! A unique job's lock is taken when its row reaches Redis, not at the push: a duplicate is
//! found then, and dropped, with a log line naming the holder's jid (a push in a transaction
//! returns the new jid either way).
//!
//! # Order
//!
//! A transaction's jobs reach Redis in push order. The relay moves rows in id order, one relay
//! at a time across every worker. Between transactions, jobs arrive in the order of the moves
//! after their commits, not of their ids: a row a crash left behind arrives after rows committed
//! later, when the relay moves it.

mod mover;
mod relay;
mod table;
mod transaction;

pub use relay::Relay;
pub(crate) use relay::RelayLoop;
pub use table::{MIGRATION, TABLE, migrate};
pub use transaction::{Committed, Transaction};

/// The `sqlx` crate the outbox is built on (0.8, with its `postgres` and `runtime-tokio`
/// features), so an app names the same version: `jobs::outbox::sqlx::PgPool`. Turn on more of
/// its features (TLS, say) in the app's own `Cargo.toml`; Cargo unifies them.
pub use sqlx;

use sqlx::PgPool;

use crate::client::Client;
use crate::error::Error;

/// Starts a transaction on `pool` whose pushes go through the default client (or the client a
/// first push's setter names): see [`Transaction`].
pub async fn begin(pool: &PgPool) -> Result<Transaction, Error> {
    Transaction::begin(pool, None).await
}

/// Starts a transaction on `pool` whose pushes go through `client`.
pub async fn begin_with(pool: &PgPool, client: &Client) -> Result<Transaction, Error> {
    Transaction::begin(pool, Some(client.clone())).await
}

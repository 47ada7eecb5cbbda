//! The table `jobs_outbox`: its migration and every statement `jobs` runs on it.
//!
//! The table's name is fixed. To keep it apart from the app's own tables, put it in a schema of
//! its own and name that schema in the connection's `search_path`: every statement here names
//! the table unqualified, and the relay's lock is per table, so two apps sharing a database each
//! with a schema of their own do not wait on each other.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use crate::error::Error;

/// The table's name.
pub const TABLE: &str = "jobs_outbox";

/// The migration that creates the table: `jobs-runtime/migrations/20261210000000_jobs_outbox.sql`,
/// safe to run again. Copy that file into the app's own sqlx migrations, or let [`migrate`] run
/// it at start.
pub const MIGRATION: &str = include_str!("../../migrations/20261210000000_jobs_outbox.sql");

/// The advisory lock [`migrate`] takes, so processes starting together do not create the table
/// twice ("jobs" in ASCII, then 1).
const MIGRATE_LOCK: i64 = (0x6a6f_6273 << 32) | 1;

/// Creates the table `jobs_outbox` unless it exists ([`MIGRATION`]): call it once at start, from
/// the app and the worker alike; concurrent calls are safe. An app that runs its own sqlx
/// migrations can add the migration file to them instead.
pub async fn migrate(pool: &PgPool) -> Result<(), Error> {
    let action = "create the outbox's table";
    let mut tx = pool.begin().await.map_err(postgres(action))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATE_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(postgres(action))?;
    // One statement: `query`, whose future is `Send` where `raw_sql`'s is not (sqlx 0.8).
    sqlx::query(MIGRATION)
        .execute(&mut *tx)
        .await
        .map_err(postgres(action))?;
    tx.commit().await.map_err(postgres(action))
}

/// One job waiting in the outbox.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Its place in the table: rows move in this order.
    pub(crate) id: i64,
    /// Its jid (the mark of its move is `jobs:outbox:<jid>`).
    pub(crate) jid: String,
    /// Its queue, as its JSON says.
    pub(crate) queue: String,
    /// The job JSON.
    pub(crate) payload: String,
    /// When it is due, in epoch seconds, if it was pushed to run later.
    pub(crate) run_at: Option<f64>,
}

/// Writes a job to the outbox inside the caller's transaction; returns its row's id and the
/// transaction's id (`txid_current()`, to ask after the `COMMIT` whether it committed).
pub(crate) async fn insert(
    connection: &mut PgConnection,
    jid: &str,
    queue: &str,
    payload: &str,
    run_at: Option<f64>,
) -> Result<(i64, i64), Error> {
    sqlx::query_as(
        "INSERT INTO jobs_outbox (jid, queue, payload, run_at) VALUES ($1, $2, $3, $4) \
         RETURNING id, txid_current()",
    )
    .bind(jid)
    .bind(queue)
    .bind(payload)
    .bind(run_at)
    .fetch_one(connection)
    .await
    .map_err(postgres("write the job to the outbox"))
}

/// Takes the relay's lock on the table for the caller's transaction; `false` when another
/// relay holds it. One relay moves rows at a time, so rows of one queue reach Redis in the
/// table's order whatever the number of workers.
pub(crate) async fn lock_for_relay(connection: &mut PgConnection) -> Result<bool, Error> {
    // "jobs" in ASCII, then the table's oid: a lock per table, wherever `search_path` finds it.
    sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock((x'6a6f6273'::bigint << 32) | 'jobs_outbox'::regclass::oid::bigint)",
    )
    .fetch_one(connection)
    .await
    .map_err(postgres("lock the outbox for the relay"))
}

/// Locks and reads, oldest first, up to `limit` rows after the row `after` that were written at
/// least `grace` ago, skipping rows another transaction holds (a committing process deleting
/// the rows it just moved).
pub(crate) async fn claim(
    connection: &mut PgConnection,
    after: i64,
    grace: Duration,
    limit: usize,
) -> Result<Vec<Row>, Error> {
    let rows: Vec<(i64, String, String, String, Option<f64>)> = sqlx::query_as(
        "SELECT id, jid, queue, payload, run_at FROM jobs_outbox \
         WHERE id > $1 AND created_at <= clock_timestamp() - make_interval(secs => $2) \
         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(after)
    .bind(grace.as_secs_f64())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(connection)
    .await
    .map_err(postgres("read the outbox"))?;
    Ok(rows
        .into_iter()
        .map(|(id, jid, queue, payload, run_at)| Row {
            id,
            jid,
            queue,
            payload,
            run_at,
        })
        .collect())
}

/// Locks the rows `ids` that are there and that no other transaction holds (the relay moving
/// them), as [`claim`] does; returns their ids, in order. A committing process moves only these:
/// the rows the relay holds or has deleted are the relay's.
pub(crate) async fn claim_own(
    connection: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<i64>, Error> {
    sqlx::query_scalar(
        "SELECT id FROM jobs_outbox WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED",
    )
    .bind(ids)
    .fetch_all(connection)
    .await
    .map_err(postgres("read the transaction's jobs back from the outbox"))
}

/// Whether the transaction `xid` (from [`insert`]) was rolled back: a `COMMIT` of a transaction
/// in which a statement failed rolls it back, and the driver reports no error.
pub(crate) async fn rolled_back(connection: &mut PgConnection, xid: i64) -> Result<bool, Error> {
    let status: Option<String> = sqlx::query_scalar("SELECT txid_status($1)")
        .bind(xid)
        .fetch_one(connection)
        .await
        .map_err(postgres("ask whether the transaction committed"))?;
    Ok(status.as_deref() == Some("aborted"))
}

/// Deletes the rows `ids`.
pub(crate) async fn delete(connection: &mut PgConnection, ids: &[i64]) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM jobs_outbox WHERE id = ANY($1)")
        .bind(ids)
        .execute(connection)
        .await
        .map(drop)
        .map_err(postgres("delete the moved jobs from the outbox"))
}

/// Turns a driver error met while doing `action` into ours, saying what to do when that is
/// known.
pub(crate) fn postgres(action: &str) -> impl Fn(sqlx::Error) -> Error + '_ {
    move |error| Error::Postgres {
        action: action.to_owned(),
        reason: describe(&error),
    }
}

/// A few words on what went wrong.
fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(database) if database.code().as_deref() == Some("42P01") => format!(
            "{database}; create the table with `jobs::outbox::migrate(&pool)` at start, or add \
             the migration `jobs-runtime/migrations/20261210000000_jobs_outbox.sql` to yours"
        ),
        sqlx::Error::PoolTimedOut => "no connection of the pool was free in time; check that \
                                      PostgreSQL is up (DATABASE_URL) and the pool is big enough"
            .to_owned(),
        other => other.to_string(),
    }
}

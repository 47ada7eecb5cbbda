//! The relay: a worker's loop that moves what a crash left in the outbox.
//!
//! Normally the process that commits a transaction moves its rows at once, and the relay finds
//! nothing. A process killed between its `COMMIT` and that move (or one that could not reach
//! Redis, or PostgreSQL for the `DELETE`) leaves rows behind; the relay moves them, exactly
//! once by jid (see `mover.rs`), oldest first.
//!
//! Each round takes batches in transactions of their own: the relay's advisory lock on the
//! table (another relay holding it means it is already moving: this one skips the round), then
//! up to `batch` rows older than the grace period, `FOR UPDATE SKIP LOCKED`, in id order; the
//! move; their `DELETE`; `COMMIT`; then the marks of their moves are deleted. One relay at a
//! time, so rows of one queue reach Redis in the table's order whatever the number of workers.
//! The grace period (5 s) leaves a committing process the time to move its own rows, so the
//! two rarely reach the same rows; when they do, the row locks settle it: the committing process
//! also locks its rows (`FOR UPDATE SKIP LOCKED`) from before its push until its `DELETE`
//! commits, so whichever locks a row first moves it and the other skips it.
//!
//! A round that fails (Redis or PostgreSQL away) is logged and tried again after a pause that
//! doubles from the interval up to 30 s; its transaction rolls back, so its rows stay. A row
//! that is not a job goes to the dead set; a row Redis refuses stays and the rows after it move.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::mover;
use super::table::{self, postgres};
use crate::client::Client;
use crate::error::Error;
use crate::worker::sleep_or;

/// The longest pause after failed rounds.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// The relay's settings: the pool it reads the outbox from, how often it looks, and how old a
/// row must be for it to move it. Give it to [`Worker::outbox`](crate::Worker::outbox) (a
/// `PgPool` alone gives the defaults); [`run_once`](Self::run_once) moves what is there now.
#[derive(Debug, Clone)]
pub struct Relay {
    /// The database of the outbox.
    pool: PgPool,
    /// The pause between rounds.
    interval: Duration,
    /// How old a row must be to be moved.
    grace: Duration,
    /// The most rows one transaction moves.
    batch: usize,
}

impl Relay {
    /// A relay over the outbox in `pool`: a round every second, moving rows written at least
    /// 5 seconds ago, 500 to a transaction.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            interval: Duration::from_secs(1),
            grace: Duration::from_secs(5),
            batch: 500,
        }
    }

    /// Pauses `interval` between rounds (default 1 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Moves only rows written at least `grace` ago (default 5 s), leaving younger ones to the
    /// process that is committing them. A shorter grace moves a crash's jobs sooner, and makes
    /// the relay and a committing process more often move the same rows (once each, by jid).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Moves at most `rows` rows per transaction (default 500; at least 1).
    pub fn batch(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
        self
    }

    /// One round: moves every row older than the grace period into the Redis of `client`, in
    /// batches; returns how many rows left the outbox (pushed, duplicates dropped, bad rows
    /// buried). Returns 0 at once when another relay is moving rows. Safe to run beside
    /// workers and committing processes: a row is moved only under its lock, and a move
    /// repeated after a crash finds its mark, so each committed job is pushed into Redis once
    /// (unless its row stays for more than the mark's 24 hours after its push: see
    /// `docs/outbox.md`).
    pub async fn run_once(&self, client: &Client) -> Result<usize, Error> {
        let mut moved = 0;
        let mut after = 0;
        loop {
            let Some(batch) = self.batch_once(client, after).await? else {
                return Ok(moved);
            };
            moved += batch.moved;
            after = batch.last;
            if batch.read < self.batch {
                return Ok(moved);
            }
        }
    }

    /// One batch of rows after the row `after`, in a transaction of its own; `None` when
    /// another relay holds the lock.
    async fn batch_once(&self, client: &Client, after: i64) -> Result<Option<Batch>, Error> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(postgres("begin a transaction"))?;
        if !table::lock_for_relay(&mut tx).await? {
            return Ok(None);
        }
        let rows = table::claim(&mut tx, after, self.grace, self.batch).await?;
        let Some(last) = rows.last().map(|row| row.id) else {
            return Ok(Some(Batch {
                read: 0,
                moved: 0,
                last: after,
            }));
        };
        // A pipeline that failed rolls the batch back: the rows of those before are marked,
        // so the next round deletes them without pushing them again.
        let outcomes = mover::push(client, &rows)
            .await
            .map_err(|partial| partial.error)?;
        let done = mover::done_rows(&rows, &outcomes);
        let ids: Vec<i64> = done.iter().map(|row| row.id).collect();
        table::delete(&mut tx, &ids).await?;
        tx.commit()
            .await
            .map_err(postgres("commit the relay's transaction"))?;
        mover::forget_marks(client, done.iter().map(|row| row.jid.as_str())).await;
        if !done.is_empty() {
            tracing::info!(jobs = done.len(), "moved jobs left in the outbox to Redis");
        }
        Ok(Some(Batch {
            read: rows.len(),
            moved: done.len(),
            last,
        }))
    }
}

impl From<PgPool> for Relay {
    fn from(pool: PgPool) -> Self {
        Self::new(pool)
    }
}

/// What one batch did.
struct Batch {
    /// Rows read.
    read: usize,
    /// Rows that left the outbox.
    moved: usize,
    /// The id of the last row read.
    last: i64,
}

/// The relay as a worker's loop.
pub(crate) struct RelayLoop {
    /// The settings.
    relay: Relay,
    /// The Redis and namespace the rows go to.
    client: Client,
}

impl RelayLoop {
    /// The loop of `relay`, moving rows into the Redis of `client`.
    pub(crate) fn new(relay: Relay, client: Client) -> Self {
        Self { relay, client }
    }

    /// Runs a round every interval until `shutdown` (the quiet phase), which also cuts a round
    /// short (one waiting for a pool connection or a reconnect must not hold up shutdown). Safe:
    /// a batch cut short rolls back, and its rows (marked if they reached Redis) move next time.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let interval = self.relay.interval;
        let mut failures: u32 = 0;
        loop {
            let round = tokio::select! {
                round = self.relay.run_once(&self.client) => round,
                () = shutdown.cancelled() => return,
            };
            let pause = match round {
                Ok(_) => {
                    failures = 0;
                    interval
                }
                Err(error) => {
                    let pause = interval
                        .saturating_mul(1 << failures.min(16))
                        .clamp(interval, MAX_PAUSE.max(interval));
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        %error,
                        retry_in = ?pause,
                        "cannot move the jobs left in the outbox yet; will try again"
                    );
                    pause
                }
            };
            if sleep_or(&shutdown, pause).await {
                return;
            }
        }
    }
}

//! `bench outbox [N] [ROWS]` (feature `postgres`): what pushing through the outbox costs,
//! against a private Redis and the tests' private PostgreSQL cluster (or `DATABASE_URL`).
//!
//! - `N` transactions from one task, each one push and a commit (begin, `INSERT`, `COMMIT`, the
//!   move, the `DELETE`, the mark's `UNLINK`), beside `N` direct pushes and `N` empty
//!   transactions (begin, `COMMIT`) for scale;
//! - commit-to-Redis latency: from the call of `commit()` to the job's arrival in its queue, as
//!   a client blocked in `BRPOP` on another thread sees it (up to 1,000 samples, 2 ms apart);
//! - relay catch-up: `ROWS` rows left in the outbox (committed while Redis was unreachable, as a
//!   crash leaves them), moved by one `Relay::run_once`.

use std::time::{Duration, Instant};

use jobs::outbox::Relay;
use jobs::outbox::sqlx::PgPool;

use super::figures::{flush, rate};
use super::measure::{self, PrivateRedis};
use super::{ARGUMENT, NoOp};

// The tests' private PostgreSQL cluster: started on first use, stopped when this process exits.
#[allow(dead_code, unreachable_pub)]
#[path = "../../tests/integration/support/postgres.rs"]
mod private_postgres;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn no_op() -> NoOp {
    NoOp {
        date: ARGUMENT.to_owned(),
    }
}

/// Prints the outbox's figures: `n` transactions, and the catch-up of `rows` rows.
pub(crate) async fn figures(n: usize, rows: usize) -> Result {
    let redis = PrivateRedis::start()?;
    let url = redis.url();
    let client = jobs::Client::builder().url(&url).build()?;
    let db = private_postgres::TestDatabase::start().await;
    println!(
        "# bench outbox n={n} rows={rows} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    push_rate(&client, db.pool(), &url, n).await?;
    latency(&client, db.pool(), &url, n.min(1_000)).await?;
    catch_up(&client, db.pool(), &url, rows).await?;
    Ok(())
}

/// Transactions of one push each, beside direct pushes and empty transactions.
async fn push_rate(client: &jobs::Client, pool: &PgPool, url: &str, n: usize) -> Result {
    flush(url).await?;
    let started = Instant::now();
    for _ in 0..n {
        NoOp::set().client(client).perform_async(no_op()).await?;
    }
    let direct = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..n {
        pool.begin().await?.commit().await?;
    }
    let empty = started.elapsed().as_secs_f64();
    flush(url).await?;
    let (before, scripts_before) = measure::redis_commands(url).await;
    let started = Instant::now();
    for _ in 0..n {
        let mut tx = jobs::outbox::begin_with(pool, client).await?;
        tx.perform_async(no_op()).await?;
        let committed = tx.commit().await?;
        if committed.moved != 1 {
            return Err(format!("a commit moved {committed:?}").into());
        }
    }
    let outbox = started.elapsed().as_secs_f64();
    let (after, scripts_after) = measure::redis_commands(url).await;
    println!(
        "RESULT peer=jobs op=direct_push n={n} conc=1 jobs_per_s={:.0}",
        rate(n, direct)
    );
    println!(
        "RESULT peer=jobs op=pg_empty_tx n={n} conc=1 tx_per_s={:.0}",
        rate(n, empty)
    );
    println!(
        "RESULT peer=jobs op=outbox_push n={n} conc=1 tx_per_s={:.0} of_direct={:.2} \
         redis_cmds_per_job={:.2} redis_scripts_per_job={:.2}",
        rate(n, outbox),
        direct / outbox,
        (after - before) as f64 / n as f64,
        (scripts_after - scripts_before) as f64 / n as f64,
    );
    Ok(())
}

/// From `commit()` to the job's arrival in its queue, seen from another thread.
async fn latency(client: &jobs::Client, pool: &PgPool, url: &str, n: usize) -> Result {
    flush(url).await?;
    let observer_url = url.to_owned();
    let observer = std::thread::spawn(move || -> std::result::Result<Vec<Instant>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        runtime.block_on(async {
            let mut connection = redis::Client::open(observer_url)
                .and_then(|client| client.get_connection())
                .map_err(|error| error.to_string())?;
            let mut arrivals = Vec::with_capacity(n);
            for _ in 0..n {
                let popped: Option<(String, String)> = redis::cmd("BRPOP")
                    .arg("queue:bench")
                    .arg(10)
                    .query(&mut connection)
                    .map_err(|error| error.to_string())?;
                if popped.is_none() {
                    return Err("no job arrived within 10 s".to_owned());
                }
                arrivals.push(Instant::now());
            }
            Ok(arrivals)
        })
    });
    let mut committing = Vec::with_capacity(n);
    for _ in 0..n {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let mut tx = jobs::outbox::begin_with(pool, client).await?;
        tx.perform_async(no_op()).await?;
        committing.push(Instant::now());
        tx.commit().await?;
    }
    let arrivals = observer
        .join()
        .map_err(|_| "the observer thread panicked")??;
    let samples = measure::Samples::default();
    for (arrived, committed) in arrivals.iter().zip(&committing) {
        samples.add(chrono::TimeDelta::from_std(
            arrived.saturating_duration_since(*committed),
        )?);
    }
    let (p50, p99, max, _) = samples.summary();
    println!(
        "RESULT peer=jobs op=outbox_latency n={n} p50_ms={p50:.3} p99_ms={p99:.3} max_ms={max:.3}"
    );
    Ok(())
}

/// `rows` rows left behind, then one relay round.
async fn catch_up(client: &jobs::Client, pool: &PgPool, url: &str, rows: usize) -> Result {
    const PER_TX: usize = 1_000;
    flush(url).await?;
    let down_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let down = jobs::Client::builder()
        .url(format!("redis://127.0.0.1:{down_port}/0"))
        .connect_timeout(Duration::from_millis(100))
        .reconnect_attempts(0)
        .build()?;
    let mut left = 0;
    while left < rows {
        let mut tx = jobs::outbox::begin_with(pool, &down).await?;
        for _ in 0..PER_TX.min(rows - left) {
            tx.perform_async(no_op()).await?;
        }
        left += tx.commit().await?.left;
    }
    let (before, _) = measure::redis_commands(url).await;
    let started = Instant::now();
    let moved = Relay::new(pool.clone())
        .grace(Duration::ZERO)
        .run_once(client)
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let (after, _) = measure::redis_commands(url).await;
    let mut connection = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let queued: usize = redis::cmd("LLEN")
        .arg("queue:bench")
        .query_async(&mut connection)
        .await?;
    if moved != rows || queued != rows {
        return Err(format!("{rows} rows left, {moved} moved, {queued} queued").into());
    }
    println!(
        "RESULT peer=jobs op=outbox_catch_up rows={rows} batch=500 secs={secs:.3} \
         rows_per_s={:.0} redis_cmds_per_row={:.2}",
        rate(rows, secs),
        (after - before) as f64 / rows as f64,
    );
    Ok(())
}

//! The worker: runs the example jobs (`ScoreGeneration`, `SendWelcomeEmail`) from the Redis at
//! `REDIS_URL`, with Sidekiq's flags. `ScoreGeneration` recomputes the todo app's scores
//! (`cargo run --example todos`), in the same Redis.
//!
//! ```text
//! cargo run --example worker                        # queue `default`, concurrency 5
//! cargo run --example worker -- -q critical -q default,2 -q mailers -c 10
//! cargo run --example worker -- --log-format json   # or JOBS_LOG_FORMAT=json
//! cargo run --example worker -- --help
//! ```
//!
//! With `DATABASE_URL` set and `--features postgres`, the todos are read from PostgreSQL and the
//! worker runs the outbox's relay, which moves the jobs a crashed todo app committed but did not
//! push (see `examples/todos/main.rs`).
//!
//! Push some jobs with `cargo run --example enqueue`; stop with Ctrl-C (running jobs finish or
//! are handed back). Every night at 03:00 (Berlin time) one of the running workers, whichever
//! claims the tick first, pushes `ScoreGeneration` for that day: see the dashboard's Periodic
//! page.

mod common;

use common::ScoreGeneration;
use common::store::TodoStore;
use jobs::periodic::Periodic;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = TodoStore::from_env()?;
    store.prepare().await?;
    let worker = jobs::Worker::from_cli()?
        .state(store.clone())
        .periodic_entry(
            Periodic::new("nightly_scores", "0 3 * * *", |tick| ScoreGeneration {
                date: tick.date_naive(),
            })
            .timezone("Europe/Berlin"),
        );
    #[cfg(feature = "postgres")]
    let worker = match store.pool() {
        Some(pool) => worker.outbox(pool.clone()),
        None => worker,
    };
    worker.run().await?;
    Ok(())
}

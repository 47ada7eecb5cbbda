//! A todo web app that hands score computation to `jobs`: creating, changing or deleting a
//! todo queues `ScoreGeneration` instead of recomputing scores in the request. Todos and scores
//! live in the Redis at `REDIS_URL`, under `todos:`, so the worker sees them.
//!
//! With `DATABASE_URL` set and the feature `postgres`, they live in PostgreSQL instead, and each
//! handler writes the todo and pushes `ScoreGeneration` in one `jobs::outbox` transaction (the
//! tables are created at start); the worker, given the same `DATABASE_URL`, reads the todos
//! there and runs the outbox's relay:
//!
//! ```text
//! DATABASE_URL=postgres://localhost/todos cargo run --example todos --features postgres
//! DATABASE_URL=postgres://localhost/todos cargo run --example worker --features postgres
//! ```
//!
//! ```text
//! cargo run --example todos       # http://127.0.0.1:3000 (TODOS_ADDR changes the address)
//! cargo run --example worker      # in another terminal: the scores update
//! curl -X POST localhost:3000/todos -H 'content-type: application/json' \
//!      -d '{"user":"ana","title":"buy milk"}'
//! curl -X PATCH localhost:3000/todos/1 -H 'content-type: application/json' -d '{"done":true}'
//! curl localhost:3000/scores
//! open http://127.0.0.1:3000/jobs  # the dashboard: queues, retries, processes
//! ```

// An example talks to the person running it on standard output.
#![allow(clippy::print_stdout)]

mod app;
// The jobs every example shares.
#[path = "../common/mod.rs"]
mod common;

use common::store::TodoStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // RUST_LOG and JOBS_LOG_FORMAT, as for the worker.
    let format = std::env::var(jobs::worker::LOG_FORMAT_VAR)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(jobs::worker::LogFormat::Text);
    jobs::worker::init_logging(format, false);
    let store = TodoStore::from_env()?;
    store.prepare().await?;
    let address = std::env::var("TODOS_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("todos listening on http://{address} (run `cargo run --example worker` for scores)");
    let jobs = jobs::Client::global()?;
    println!("the jobs dashboard is at http://{address}/jobs");
    axum::serve(listener, app::router(store, &jobs)).await?;
    Ok(())
}

//! The worker: runs the example jobs (`ScoreGeneration`, `SendWelcomeEmail`) from the Redis at
//! `REDIS_URL`, with Sidekiq's flags.
//!
//! ```text
//! cargo run --example worker                        # queue `default`, concurrency 5
//! cargo run --example worker -- -q critical -q default,2 -q mailers -c 10
//! cargo run --example worker -- --help
//! ```
//!
//! Push some jobs with `cargo run --example enqueue`; stop with Ctrl-C (running jobs finish or
//! are handed back).

mod common;

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    jobs::Worker::from_cli()?.run().await
}

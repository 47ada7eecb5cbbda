//! Pushes a few jobs to the Redis at `REDIS_URL` (default `redis://127.0.0.1:6379/0`), the way
//! a web app's handlers would.
//!
//! ```text
//! cargo run --example enqueue
//! ```

// An example talks to the person running it on standard output.
#![allow(clippy::print_stdout)]

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{ScoreGeneration, SendWelcomeEmail};
use jobs::Pushed;

#[tokio::main]
async fn main() -> Result<(), jobs::Error> {
    let today = Utc::now().date_naive();

    // A unique job: a second push while the first waits is answered with the first's jid.
    match ScoreGeneration::perform_async(today).await? {
        Pushed::Queued(jid) => println!("ScoreGeneration({today}) queued as {jid}"),
        Pushed::Duplicate(jid) => println!("ScoreGeneration({today}) already queued as {jid}"),
    }
    let again = ScoreGeneration::perform_in(Duration::from_secs(60), today).await?;
    if again.is_duplicate() {
        println!("ScoreGeneration({today}) in 60 s: refused, {again} is waiting already");
    }

    let jid = SendWelcomeEmail::set()
        .queue("critical")
        .perform_async((42, "ann@example.com".to_owned()))
        .await?;
    println!("SendWelcomeEmail(42) queued on `critical` as {jid}");

    let jids = SendWelcomeEmail::perform_bulk((1..=3).map(|user_id| SendWelcomeEmail {
        user_id,
        address: format!("user{user_id}@example.com"),
    }))
    .await?;
    println!("{} welcome emails queued in one round trip", jids.len());

    println!(
        "Redis at {}: see them with `redis-cli LRANGE queue:default 0 -1`",
        jobs::Client::global()?.url()
    );
    // As with Sidekiq, a worker takes only `default` unless told which queues to take.
    println!("run them all with `cargo run --example worker -- -q critical -q default -q mailers`");
    Ok(())
}

//! A web app that hands slow work to `jobs` from an axum handler.
//!
//! ```text
//! cargo run --example web          # then: curl -X POST localhost:3000/todos -d 'title=milk'
//! ```
//!
//! The handler answers at once; a worker recomputes the scores later.

// An example talks to the person running it on standard output.
#![allow(clippy::print_stdout)]

mod common;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::Utc;
use common::ScoreGeneration;

/// Creating a todo changes today's scores: queue their recomputation instead of doing it here.
async fn create_todo(body: String) -> Result<String, (StatusCode, String)> {
    let today = Utc::now().date_naive();
    // A duplicate (a recomputation of today is already waiting) is no error: it will see
    // this todo too.
    let jid = ScoreGeneration::perform_async(today)
        .await
        .map_err(|error| (StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
    Ok(format!(
        "created {body:?}; scores for {today} queued as job {jid}\n"
    ))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new().route("/todos", post(create_todo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000 (POST /todos)");
    axum::serve(listener, app).await
}

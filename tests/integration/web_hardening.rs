//! The dashboard's hardening over HTTP, against a real Redis: one section per defence of
//! docs/dashboard.md ("What it does to stay safe") that the hardening review asked for.

use axum::http::StatusCode;
use jobs::web::Dashboard;

use crate::support::TestRedis;
use crate::web_http::{app, get};

// 3. An empty password is a mistake, not a password.

#[tokio::test]
#[should_panic(expected = "basic_auth was given an empty password")]
async fn an_empty_password_is_refused() {
    let redis = TestRedis::start();
    let _ = Dashboard::new(&redis.client()).basic_auth("admin", "");
}

// 7. The footer shows the Redis URL without a password typed in the user's place.

#[tokio::test]
async fn the_footer_hides_a_password_typed_as_the_user() {
    let redis = TestRedis::start();
    // redis-rs reads `secret` as a user name and sends no AUTH, so this server (no password)
    // still answers; Sidekiq's redis-client and redis-cli would send it as the password.
    let client = jobs::Client::builder()
        .url(format!("redis://s3cret@127.0.0.1:{}/0", redis.port()))
        .build()
        .unwrap();
    let page = get(&app(&client), "/jobs").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("s3cret"), "the footer leaks it");
    assert!(
        page.body.contains("redis://***@127.0.0.1:"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn redis_cli_reads_a_lone_user_as_the_password() {
    // Why a lone user name is redacted: Redis's own tool takes it as the password.
    let redis = TestRedis::start_with_password("s3cret");
    let output = std::process::Command::new("redis-cli")
        .arg("-u")
        .arg(format!("redis://s3cret@127.0.0.1:{}/0", redis.port()))
        .arg("PING")
        .output()
        .expect("redis-cli");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.trim(), "PONG", "{stdout}");
}

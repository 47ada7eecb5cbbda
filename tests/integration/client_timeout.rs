//! A command whose reply times out may still run on the server: the client must not send it
//! again as if the connection had broken, or a push would land twice.

use std::time::Duration;

use jobs::{Client, Payload};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::TestRedis;

#[tokio::test]
async fn a_push_whose_reply_timed_out_is_not_sent_again() {
    let redis = TestRedis::start_with(&["--enable-debug-command", "yes"], None);
    let client = Client::builder()
        .url(redis.url())
        .response_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    // A first command opens the connection before Redis is made slow.
    let _ = client
        .push(Payload::new("Warmup", vec![]).queue("warmup"))
        .await
        .unwrap();
    // Redis stops answering for a second; the push waits in its input buffer and runs after.
    let stalling = redis.raw().await;
    let sleeper = tokio::spawn(async move {
        let mut stalling = stalling;
        let _: redis::RedisResult<()> = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(1)
            .query_async(&mut stalling)
            .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pushed = client
        .push(Payload::new("Once", vec![json!(1)]).queue("once"))
        .await;
    assert!(pushed.is_err(), "the reply should have timed out");
    sleeper.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let queued: usize = redis.raw().await.llen("queue:once").await.unwrap();
    assert_eq!(queued, 1, "the push ran {queued} times");
}

//! Connections: passwords, database numbers, TLS, and surviving a Redis restart.

use chrono::NaiveDate;
use jobs::Client;
use redis::AsyncCommands;

use crate::support::jobs::ScoreGeneration;
use crate::support::{TestRedis, self_signed_certificate, tls_only};

fn job() -> ScoreGeneration {
    ScoreGeneration {
        date: NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date"),
    }
}

#[tokio::test]
async fn a_password_and_a_database_number_are_honoured() {
    let redis = TestRedis::start_with_password("s3cret");
    let client = Client::builder().url(redis.url_for_db(3)).build().unwrap();
    client.perform_async(job()).await.unwrap();

    let mut db3 = redis.raw_db(3).await;
    let mut db0 = redis.raw_db(0).await;
    assert_eq!(db3.llen::<_, u64>("queue:default").await.unwrap(), 1);
    assert_eq!(db0.llen::<_, u64>("queue:default").await.unwrap(), 0);
}

#[tokio::test]
async fn the_client_reconnects_after_redis_restarts() {
    let mut redis = TestRedis::start();
    let client = redis.client();
    client.perform_async(job()).await.unwrap();
    redis.restart();
    client.perform_async(job()).await.unwrap();
    assert_eq!(
        redis.queue("default").await.len(),
        1,
        "the new server got the push"
    );
}

#[tokio::test]
async fn a_push_while_redis_is_down_fails_then_works_once_it_is_back() {
    let mut redis = TestRedis::start();
    let client = redis.client();
    client.perform_async(job()).await.unwrap();
    redis.kill();
    let error = client.perform_async(job()).await.unwrap_err();
    assert!(matches!(error, jobs::Error::Connect { .. }), "{error:?}");
    redis.restart();
    let mut pushed = false;
    for _ in 0..50 {
        if client.perform_async(job()).await.is_ok() {
            pushed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(pushed, "the client never reconnected");
    assert_eq!(redis.queue("default").await.len(), 1);
}

#[tokio::test]
async fn rediss_urls_connect_over_tls() {
    let dir = std::env::temp_dir().join(format!("jobs-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = self_signed_certificate(&dir);
    let redis = TestRedis::start_with(&tls_only(&cert, &key), None);
    // `#insecure`: the certificate is self-signed.
    let url = format!("rediss://127.0.0.1:{}/0#insecure", redis.port());
    let client = Client::builder().url(&url).build().unwrap();
    let jid = client.perform_async(job()).await.unwrap();

    let mut raw = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Vec<String> = raw.lrange("queue:default", 0, -1).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].contains(jid.as_str()));
    let _ = std::fs::remove_dir_all(&dir);
}

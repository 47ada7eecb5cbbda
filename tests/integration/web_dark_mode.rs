//! The dashboard follows the system's dark mode (`prefers-color-scheme`), in a real Chromium
//! told to prefer dark; the screenshot `dashboard-dark.png`.

use std::time::Duration;

use jobs::Payload;
use redis::AsyncCommands;
use serde_json::json;

use crate::support::{TestRedis, now};
use crate::web_browser::{
    ChromeDriver, open_browser, open_browser_with, screenshot, serve_dashboard, text_of,
};

/// Counters, a month of history, queued, retried and dead jobs: a dashboard worth a look.
async fn seed(redis: &TestRedis) {
    let client = redis.client();
    for (class, queue) in [
        ("ScoreGeneration", "scores"),
        ("SendWelcomeEmail", "mailers"),
    ] {
        client
            .push(Payload::new(class, vec![json!("2026-11-20")]).queue(queue))
            .await
            .unwrap();
    }
    let mut raw = redis.raw().await;
    let failed = json!({"class": "ChargeCard", "args": [42], "jid": "retryme", "queue": "payments",
        "retry": true, "retry_count": 2, "created_at": now() - 900.0, "enqueued_at": now() - 300.0,
        "failed_at": now() - 800.0, "error_class": "JobError", "error_message": "card declined"});
    let _: () = raw
        .zadd("retry", failed.to_string(), now() + 600.0)
        .await
        .unwrap();
    let _: () = raw.set("stat:processed", 48_213).await.unwrap();
    let _: () = raw.set("stat:failed", 312).await.unwrap();
    let today = chrono::Utc::now().date_naive();
    for back in 0..30_u64 {
        let day = (today - chrono::Days::new(back)).format("%Y-%m-%d");
        let processed = 1_000 + (back * 379) % 900;
        let _: () = raw
            .set(format!("stat:processed:{day}"), processed)
            .await
            .unwrap();
        let _: () = raw
            .set(format!("stat:failed:{day}"), processed / 40)
            .await
            .unwrap();
    }
}

/// The page's background, the text's colour, and whether the browser prefers dark.
async fn colours(browser: &fantoccini::Client) -> serde_json::Value {
    browser
        .execute(
            "var body = getComputedStyle(document.body);
             return [body.backgroundColor, body.color,
                     matchMedia('(prefers-color-scheme: dark)').matches];",
            vec![],
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn the_dashboard_follows_the_systems_dark_mode() {
    let redis = TestRedis::start();
    seed(&redis).await;
    let (base, stop, server) = serve_dashboard(&redis.client()).await;
    let driver = ChromeDriver::start();

    let light = open_browser(&driver).await;
    light.goto(&format!("{base}?days=30")).await.unwrap();
    text_of(&light, "[data-stat=processed]").await;
    assert_eq!(
        colours(&light).await,
        json!(["rgb(246, 247, 249)", "rgb(29, 35, 48)", false]),
        "light by default"
    );
    light.close().await.unwrap();

    let dark = open_browser_with(&driver, &["--force-dark-mode"]).await;
    dark.goto(&format!("{base}?days=30")).await.unwrap();
    assert_eq!(text_of(&dark, "[data-stat=processed]").await, "48,213");
    assert_eq!(
        colours(&dark).await,
        json!(["rgb(17, 21, 29)", "rgb(227, 232, 241)", true]),
        "dark ground and light text when the system prefers dark"
    );
    let panel = dark
        .execute(
            "return [getComputedStyle(document.querySelector('.summary a')).backgroundColor,
                     getComputedStyle(document.querySelector('.tabs a:not(.active)')).backgroundColor];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        panel,
        json!(["rgb(26, 32, 43)", "rgb(20, 25, 35)"]),
        "cards and tabs are dark too"
    );
    // Let the live graph draw a few points before the picture.
    tokio::time::sleep(Duration::from_secs(2)).await;
    screenshot(&dark, "dashboard-dark").await;
    dark.goto(&format!("{base}/retries")).await.unwrap();
    assert!(text_of(&dark, "main table").await.contains("card declined"));
    screenshot(&dark, "retries-dark").await;
    dark.close().await.unwrap();

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

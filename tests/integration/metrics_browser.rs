//! The Metrics pages in Chromium: 8 hours of Sidekiq 8 keys for a few classes and a deploy
//! mark, the overview's chart and table, a class's page with its histogram, a hostile filter
//! typed into the form; screenshots `metrics.png` and `metrics-class.png`.

use std::time::Duration;

use chrono::{Duration as Span, Utc};
use fantoccini::Locator;
use serde_json::json;

use crate::metrics_web::write_like_sidekiq;
use crate::support::TestRedis;
use crate::web_browser::{ChromeDriver, click, open_browser, screenshot, serve_dashboard, text_of};

/// Classes with a typical time (bucket) and a rate, as a small app's jobs would run.
const CLASSES: [(&str, usize, u64); 6] = [
    ("ScoreGeneration", 9, 40),
    ("SendWelcomeEmail", 4, 120),
    ("ImportCsv", 13, 6),
    ("ChargeCard", 6, 60),
    ("Mailer::Deliver", 2, 200),
    ("NightlyReport", 17, 1),
];

#[tokio::test]
async fn the_metrics_pages_work_in_chromium() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let now = Utc::now();
    for back in 0..480_i64 {
        let at = now - Span::minutes(back);
        for (index, (class, bucket, rate)) in CLASSES.iter().enumerate() {
            let wave = 1 + (back as u64 * (index as u64 + 3)) % 7;
            let processed = rate * wave / 4 + 1;
            let failed = u64::from((back as usize + index).is_multiple_of(11));
            let ms = (processed - failed) * (20 << (bucket / 2));
            let buckets = [(*bucket, processed - failed), (bucket + 1, 1)];
            write_like_sidekiq(&mut raw, class, at, (processed, failed, ms), &buckets).await;
        }
    }
    let marked = now - Span::hours(3);
    let _: () = redis::cmd("HSET")
        .arg(marked.format("%Y%m%d-marks").to_string())
        .arg(marked.format("%Y-%m-%dT%H:%M:00Z").to_string())
        .arg("a1b2c3 Faster imports")
        .query_async(&mut raw)
        .await
        .unwrap();

    let (base, stop, server) = serve_dashboard(&redis.client()).await;
    let driver = ChromeDriver::start();
    let browser = open_browser(&driver).await;

    browser.goto(&base).await.unwrap();
    click(&browser, "header.top nav a[href$='/metrics/classes']").await;
    assert_eq!(browser.title().await.unwrap(), "Metrics · jobs");
    click(&browser, ".tabs a[href*='period=8h']").await;
    let table = text_of(&browser, "#metrics-table").await;
    for (class, _, _) in CLASSES {
        assert!(table.contains(class), "{class} in {table}");
    }
    let lines = browser
        .find_all(Locator::Css("#metrics-chart polyline"))
        .await
        .unwrap();
    assert_eq!(lines.len(), 5, "the five slowest classes drawn");
    let marks = browser
        .find_all(Locator::Css("#metrics-chart line[data-mark]"))
        .await
        .unwrap();
    assert_eq!(marks.len(), 1, "the deploy mark");
    screenshot(&browser, "metrics").await;

    // A hostile filter typed into the form: shown as text, never run.
    let filter = browser
        .find(Locator::Css("input[name=substr]"))
        .await
        .unwrap();
    filter
        .send_keys("\"><img src=x onerror=alert(1)>")
        .await
        .unwrap();
    click(&browser, "form.inline button[type=submit]").await;
    let value = browser
        .execute(
            "return document.querySelector('input[name=substr]').value;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(value, json!("\"><img src=x onerror=alert(1)>"));
    let images = browser.find_all(Locator::Css("main img")).await.unwrap();
    assert!(images.is_empty(), "the filter did not become markup");
    assert!(
        text_of(&browser, "#metrics-table")
            .await
            .contains("No data")
    );

    // One class: its histogram and series.
    browser
        .goto(&format!("{base}/metrics/classes?period=8h"))
        .await
        .unwrap();
    click(&browser, "#metrics-table a[href*='ImportCsv']").await;
    assert_eq!(text_of(&browser, "main h1").await, "ImportCsv");
    let bars = browser
        .find_all(Locator::Css("#class-histogram rect[data-bucket]"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 26);
    let summary = text_of(&browser, "#class-summary").await;
    assert!(
        summary.contains("P95") || summary.contains("p95"),
        "{summary}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    screenshot(&browser, "metrics-class").await;

    browser.close().await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

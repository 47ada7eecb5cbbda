//! Live poll on the list pages, in a real Chromium: with the toggle on, what lands in Redis
//! appears without a reload, ticked boxes stay ticked, and the choice outlives a reload.

use std::time::Duration;

use fantoccini::{Client as Browser, Locator};
use jobs::Payload;
use redis::AsyncCommands;
use serde_json::json;

use crate::support::{TestRedis, now};
use crate::web_browser::serve_dashboard;
use crate::web_browser::{ChromeDriver, click, open_browser, screenshot, text_of};

/// Runs `script` in the page and returns what it returns.
async fn run(browser: &Browser, script: &str) -> serde_json::Value {
    browser.execute(script, vec![]).await.unwrap()
}

/// Waits up to 15 s, without touching the page, until `main` shows `text`.
async fn until_shown(browser: &Browser, text: &str) {
    for _ in 0..75 {
        let shown = run(browser, "return document.querySelector('main').innerText;").await;
        if shown.as_str().is_some_and(|shown| shown.contains(text)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    screenshot(browser, "failure").await;
    panic!("`{text}` did not appear without a reload");
}

fn retry_entry(jid: &str, class: &str) -> String {
    json!({"class": class, "args": [1], "jid": jid, "queue": "default", "retry": true,
           "retry_count": 1, "created_at": now() - 60.0, "enqueued_at": now() - 60.0,
           "failed_at": now() - 30.0, "error_class": "JobError", "error_message": "boom"})
    .to_string()
}

#[tokio::test]
async fn list_pages_poll_live_when_asked() {
    let redis = TestRedis::start();
    let client = redis.client();
    client
        .push(Payload::new("ScoreGeneration", vec![json!("2026-11-20")]).queue("scores"))
        .await
        .unwrap();
    let (base, stop, server) = serve_dashboard(&client).await;
    let driver = ChromeDriver::start();
    let browser = open_browser(&driver).await;

    // Queues: off by default; on with a click, every 2 s as the dashboard's slider says.
    browser.goto(&format!("{base}/queues")).await.unwrap();
    run(&browser, "localStorage.setItem('jobs.poll', '2000');").await;
    let toggle = browser.find(Locator::Css("#live-poll")).await.unwrap();
    assert!(toggle.is_displayed().await.unwrap(), "the script shows it");
    assert_eq!(
        toggle.attr("aria-pressed").await.unwrap().as_deref(),
        Some("false")
    );
    click(&browser, "#live-poll").await;
    assert_eq!(
        toggle.attr("aria-pressed").await.unwrap().as_deref(),
        Some("true")
    );
    // A reload would forget this.
    run(&browser, "window.notReloaded = true;").await;
    client
        .push(Payload::new("SendWelcomeEmail", vec![json!("ada@example.com")]).queue("arrivals"))
        .await
        .unwrap();
    until_shown(&browser, "arrivals").await;
    assert_eq!(
        run(&browser, "return window.notReloaded === true;").await,
        json!(true)
    );
    assert_eq!(
        text_of(&browser, "header.top nav a.active .count").await,
        "2",
        "the header's counts follow"
    );
    screenshot(&browser, "queues-live").await;

    // Retries: the choice outlives the reload; a ticked box stays ticked as rows arrive.
    let mut raw = redis.raw().await;
    let _: () = raw
        .zadd("retry", retry_entry("first", "ChargeCard"), now() + 600.0)
        .await
        .unwrap();
    browser.goto(&format!("{base}/retries")).await.unwrap();
    let toggle = browser.find(Locator::Css("#live-poll")).await.unwrap();
    assert_eq!(
        toggle.attr("aria-pressed").await.unwrap().as_deref(),
        Some("true"),
        "kept in localStorage"
    );
    let first = browser
        .find(Locator::Css("main input[name=key]"))
        .await
        .unwrap();
    let key = first.attr("value").await.unwrap().unwrap();
    first.click().await.unwrap();
    let _: () = raw
        .zadd("retry", retry_entry("second", "RefundCard"), now() + 900.0)
        .await
        .unwrap();
    until_shown(&browser, "RefundCard").await;
    let ticked = run(
        &browser,
        "return Array.from(document.querySelectorAll('main input[name=key]:checked'), b => b.value);",
    )
    .await;
    assert_eq!(ticked, json!([key]), "the box ticked before the swap");

    // Off again: forgotten.
    click(&browser, "#live-poll").await;
    assert_eq!(
        run(&browser, "return localStorage.getItem('jobs.live');").await,
        json!(null)
    );
    browser.close().await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn pages_that_are_no_lists_have_no_toggle() {
    let redis = TestRedis::start();
    let client = redis.client();
    let (base, stop, server) = serve_dashboard(&client).await;
    let driver = ChromeDriver::start();
    let browser = open_browser(&driver).await;
    for (path, listed) in [
        ("", false),
        ("/periodic", false),
        ("/busy", true),
        ("/queues/default", true),
        ("/scheduled", true),
        ("/morgue", true),
    ] {
        browser.goto(&format!("{base}{path}")).await.unwrap();
        text_of(&browser, "main").await;
        let found = browser.find_all(Locator::Css("#live-poll")).await.unwrap();
        assert_eq!(found.len(), usize::from(listed), "{path}");
    }
    browser.close().await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

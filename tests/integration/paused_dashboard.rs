//! Pause and Resume on the dashboard's Queues pages: over HTTP (the forms, the CSRF check, the
//! badge, where each answer returns to) and in Chromium (clicking the buttons; the screenshot
//! `queues-paused.png`).

use std::time::Duration;

use axum::http::StatusCode;
use fantoccini::Locator;
use jobs::Payload;
use jobs::api::Queue;
use serde_json::json;

use crate::support::{TestRedis, eventually};
use crate::web_browser::{ChromeDriver, click, open_browser, screenshot, serve_dashboard, text_of};
use crate::web_http::{app, get, post, post_with};

/// Pushes `count` jobs to `queue`.
async fn push_to(client: &jobs::Client, queue: &str, class: &str, count: usize) {
    for n in 0..count {
        client
            .push(Payload::new(class, vec![json!(n)]).queue(queue))
            .await
            .unwrap();
    }
}

/// The row of `queue` in the Queues page's table.
fn row_of<'a>(body: &'a str, queue: &str) -> &'a str {
    let start = body
        .find(&format!("data-queue=\"{queue}\""))
        .unwrap_or_else(|| panic!("no row for {queue}:\n{body}"));
    let end = body[start..]
        .find("</tr>")
        .map_or(body.len(), |end| start + end);
    &body[start..end]
}

#[tokio::test]
async fn the_queues_pages_pause_and_resume_a_queue() {
    let redis = TestRedis::start();
    let client = redis.client();
    push_to(&client, "mailers", "SendWelcomeEmail", 2).await;
    push_to(&client, "reports", "NightlyReport", 1).await;
    let app = app(&client);
    let mailers = Queue::new(&client, "mailers");

    let page = get(&app, "/jobs/queues").await;
    assert_eq!(page.status, StatusCode::OK);
    let row = row_of(&page.body, "mailers");
    assert!(
        row.contains("action=\"/jobs/queues/mailers/pause\""),
        "{row}"
    );
    assert!(!row.contains(">paused<"), "{row}");

    // A POST from elsewhere pauses nothing.
    let cross = post_with(
        &app,
        "/jobs/queues/mailers/pause",
        &[],
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert!(!mailers.is_paused().await.unwrap());

    // Pause from the list: back to the list, which shows the badge and Resume.
    let paused = post(&app, "/jobs/queues/mailers/pause", &[]).await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER, "{}", paused.body);
    assert_eq!(paused.location(), "/jobs/queues");
    assert!(mailers.is_paused().await.unwrap());
    let page = get(&app, "/jobs/queues").await;
    let row = row_of(&page.body, "mailers");
    assert!(row.contains(">paused<"), "{row}");
    assert!(
        row.contains("action=\"/jobs/queues/mailers/unpause\""),
        "{row}"
    );
    assert!(
        row.contains(">Resume<") && !row.contains(">Pause<"),
        "{row}"
    );
    assert!(row.contains(">2<"), "its size is still shown: {row}");
    let other = row_of(&page.body, "reports");
    assert!(!other.contains(">paused<") && other.contains(">Pause<"));

    // The queue's own page: the badge, its jobs, and Resume, which returns there.
    let page = get(&app, "/jobs/queues/mailers").await;
    assert!(page.body.contains(">paused<"), "{}", page.body);
    assert!(page.body.contains("SendWelcomeEmail"));
    assert!(page.body.contains("name=\"back\" value=\"queue\""));
    let resumed = post(&app, "/jobs/queues/mailers/unpause", &[("back", "queue")]).await;
    assert_eq!(resumed.status, StatusCode::SEE_OTHER);
    assert_eq!(resumed.location(), "/jobs/queues/mailers");
    assert!(!mailers.is_paused().await.unwrap());
    assert_eq!(mailers.size().await.unwrap(), 2);
    let page = get(&app, "/jobs/queues/mailers").await;
    assert!(!page.body.contains(">paused<"));
    assert!(page.body.contains("action=\"/jobs/queues/mailers/pause\""));
}

#[tokio::test]
async fn pause_and_resume_work_in_chromium() {
    let redis = TestRedis::start();
    let client = redis.client();
    push_to(&client, "scores", "ScoreGeneration", 3).await;
    push_to(&client, "mailers", "SendWelcomeEmail", 1).await;
    let scores = Queue::new(&client, "scores");

    let (base, stop, server) = serve_dashboard(&client).await;
    let driver = ChromeDriver::start();
    let browser = open_browser(&driver).await;

    // Pause on the Queues page.
    browser.goto(&format!("{base}/queues")).await.unwrap();
    click(
        &browser,
        "tr[data-queue=scores] form[action$='/pause'] button",
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "Pause to pause the queue",
        async || scores.is_paused().await.unwrap(),
    )
    .await;
    let row = text_of(&browser, "tr[data-queue=scores]").await;
    assert!(
        row.contains("paused") && row.contains("Resume") && row.contains('3'),
        "{row}"
    );
    let other = text_of(&browser, "tr[data-queue=mailers]").await;
    assert!(!other.contains("paused") && other.contains("Pause"));
    screenshot(&browser, "queues-paused").await;

    // Resume on the queue's own page, which it returns to.
    browser
        .goto(&format!("{base}/queues/scores"))
        .await
        .unwrap();
    assert!(text_of(&browser, "h1").await.contains("paused"));
    click(&browser, "form[action$='/unpause'] button").await;
    eventually(
        Duration::from_secs(5),
        "Resume to resume the queue",
        async || !scores.is_paused().await.unwrap(),
    )
    .await;
    let pause_button = browser
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("form[action$='/pause'] button"))
        .await
        .unwrap();
    assert_eq!(pause_button.text().await.unwrap(), "Pause");
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/jobs/queues/scores")
    );

    browser.close().await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

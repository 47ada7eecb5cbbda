//! The Periodic page over HTTP, in-process, against a real Redis and entries declared by real
//! workers: what it lists, pause and resume with a worker ticking every second, "enqueue now",
//! the CSRF check, hostile entries, and reads that never write.

use std::time::Duration;

use axum::http::StatusCode;
use jobs::api::PeriodicSet;
use jobs::periodic::Periodic;
use redis::AsyncCommands;
use serde_json::json;

use crate::support::jobs::{CallLog, worker};
use crate::support::periodic::{declare_three, definition, hash_of, write_entry, write_hostile};
use crate::support::{RunningWorker, TestRedis, eventually};
use crate::web_http::{app, get, post, post_with};

/// The row of entry `name` in the page `body`.
fn row_of<'a>(body: &'a str, name: &str) -> &'a str {
    let start = body
        .find(&format!("<tr data-entry=\"{name}\""))
        .unwrap_or_else(|| panic!("no row for {name}:\n{body}"));
    let end = body[start..].find("</tr>").expect("the row ends") + start;
    &body[start..end]
}

#[tokio::test]
async fn the_periodic_page_lists_every_entry() {
    let redis = TestRedis::start();
    let client = redis.client();
    declare_three(&redis).await;
    let app = app(&client);

    let dashboard = get(&app, "/jobs").await;
    assert!(
        dashboard.body.contains("href=\"/jobs/periodic\">Periodic"),
        "the nav links the page"
    );
    let page = get(&app, "/jobs/periodic").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<title>Periodic · jobs</title>"));
    assert!(
        page.body
            .contains("class=\"active\" href=\"/jobs/periodic\""),
        "its tab is the active one"
    );
    let names: Vec<usize> = ["archive", "nightly_report", "scores"]
        .iter()
        .map(|name| page.body.find(&format!("data-entry=\"{name}\"")).unwrap())
        .collect();
    assert!(names.is_sorted(), "by name");

    let nightly = row_of(&page.body, "nightly_report");
    for shown in [
        "At 03:00 (Europe/Berlin)",
        "0 3 * * *",
        "NightlyReport",
        "{&quot;team&quot;:7}",
        "href=\"/jobs/queues/reports\"",
        "no catch-up",
        "never",
        "value=\"pause\"",
        "value=\"enqueue\"",
    ] {
        assert!(nightly.contains(shown), "{shown} in {nightly}");
    }
    let next = PeriodicSet::new(&client)
        .get("nightly_report")
        .await
        .unwrap()
        .unwrap()
        .next_run
        .unwrap();
    assert!(
        nightly.contains(&format!(
            "title=\"{}\"",
            next.format("%Y-%m-%d %H:%M:%S UTC")
        )),
        "the next run's exact time on hover: {nightly}"
    );
    assert!(nightly.contains("in "), "relative: {nightly}");

    let scores = row_of(&page.body, "scores");
    assert!(scores.contains("args computed per tick"), "{scores}");
    assert!(
        !scores.contains("value=\"enqueue\""),
        "no enqueue form for a computed entry"
    );
    assert!(scores.contains("disabled"), "{scores}");
    assert!(
        scores.contains("title=\"its arguments are computed from each tick"),
        "the disabled button says why on hover: {scores}"
    );

    let archive = row_of(&page.body, "archive");
    assert!(archive.contains(">disabled<"), "{archive}");
}

#[tokio::test]
async fn pausing_stops_the_ticks_and_resuming_starts_them_again() {
    let redis = TestRedis::start();
    let client = redis.client();
    let app = app(&client);
    let set = PeriodicSet::new(&client);
    let every_second =
        Periodic::class("heartbeat", "* * * * * *", "Heartbeat", vec![json!(1)]).queue("ticks");
    let running =
        RunningWorker::start(worker(&redis, &CallLog::default()).periodic_entry(every_second));
    eventually(Duration::from_secs(10), "a tick's job", async || {
        !redis.queue("ticks").await.is_empty()
    })
    .await;

    let paused = post(
        &app,
        "/jobs/periodic",
        &[("name", "heartbeat"), ("action", "pause")],
    )
    .await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER, "{}", paused.body);
    assert_eq!(paused.location(), "/jobs/periodic");
    let page = get(&app, "/jobs/periodic").await.body;
    let row = row_of(&page, "heartbeat");
    assert!(
        row.contains(">paused<") && row.contains("value=\"resume\""),
        "{row}"
    );
    assert!(!row.contains("value=\"pause\""), "{row}");

    let pushed = redis.queue("ticks").await.len();
    let claimed = |set: PeriodicSet| async move {
        set.get("heartbeat")
            .await
            .unwrap()
            .unwrap()
            .claimed_up_to
            .unwrap()
    };
    let paused_at = claimed(set.clone()).await;
    eventually(
        Duration::from_secs(10),
        "the worker to pass two ticks over",
        async || claimed(set.clone()).await >= paused_at + chrono::Duration::seconds(2),
    )
    .await;
    let passed_over = claimed(set.clone()).await;
    assert_eq!(
        redis.queue("ticks").await.len(),
        pushed,
        "no job for a tick while paused"
    );

    let resumed = post(
        &app,
        "/jobs/periodic",
        &[("name", "heartbeat"), ("action", "resume")],
    )
    .await;
    assert_eq!(resumed.status, StatusCode::SEE_OTHER, "{}", resumed.body);
    eventually(
        Duration::from_secs(10),
        "a tick's job after resuming",
        async || redis.queue("ticks").await.len() > pushed,
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
    for job in &redis.queue("ticks").await[pushed..] {
        let tick = job["jobs_tick"].as_f64().unwrap();
        assert!(
            tick * 1000.0 > passed_over.timestamp_millis() as f64,
            "a tick passed over while paused was not pushed later: {job}"
        );
        assert_eq!(job["jobs_periodic"], "heartbeat");
    }
    let entry = set.get("heartbeat").await.unwrap().unwrap();
    assert!(!entry.paused);
    let last = entry.last_run.unwrap();
    assert_eq!(
        redis.queue("ticks").await.last().unwrap()["jid"],
        last.jid.as_str(),
        "the last run is the newest job"
    );
}

#[tokio::test]
async fn enqueue_now_from_the_page_pushes_the_job() {
    let redis = TestRedis::start();
    let client = redis.client();
    declare_three(&redis).await;
    let app = app(&client);
    let before = hash_of(&redis, "nightly_report").await;

    let pushed = post(
        &app,
        "/jobs/periodic",
        &[("name", "nightly_report"), ("action", "enqueue")],
    )
    .await;
    assert_eq!(pushed.status, StatusCode::SEE_OTHER, "{}", pushed.body);
    assert_eq!(pushed.location(), "/jobs/periodic");
    let queued = redis.queue("reports").await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["class"], "NightlyReport");
    assert_eq!(queued[0]["args"], json!([{"team": 7}]));
    assert_eq!(queued[0]["jobs_periodic"], "nightly_report");
    assert_eq!(hash_of(&redis, "nightly_report").await, before);

    let computed = post(
        &app,
        "/jobs/periodic",
        &[("name", "scores"), ("action", "enqueue")],
    )
    .await;
    assert_eq!(computed.status, StatusCode::BAD_REQUEST);
    assert!(
        computed.body.contains("computed from each tick"),
        "{}",
        computed.body
    );
    assert!(redis.queue("default").await.is_empty());

    let unknown = post(
        &app,
        "/jobs/periodic",
        &[("name", "nightly"), ("action", "enqueue")],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let odd = post(
        &app,
        "/jobs/periodic",
        &[("name", "nightly_report"), ("action", "explode")],
    )
    .await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST);
    assert!(odd.body.contains("pause, resume or enqueue"));
    let nameless = post(&app, "/jobs/periodic", &[("action", "pause")]).await;
    assert_eq!(nameless.status, StatusCode::BAD_REQUEST);
    assert_eq!(redis.queue("reports").await.len(), 1, "only the one job");
}

#[tokio::test]
async fn posts_without_the_csrf_check_are_refused() {
    let redis = TestRedis::start();
    let client = redis.client();
    declare_three(&redis).await;
    let app = app(&client);
    let fields = [("name", "nightly_report"), ("action", "pause")];
    let enqueue = [("name", "nightly_report"), ("action", "enqueue")];

    let cross = post_with(
        &app,
        "/jobs/periodic",
        &fields,
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let bare = post_with(&app, "/jobs/periodic", &enqueue, &[]).await;
    assert_eq!(
        bare.status,
        StatusCode::FORBIDDEN,
        "no fetch metadata and no token"
    );
    let wrong = post_with(
        &app,
        "/jobs/periodic",
        &[
            ("name", "nightly_report"),
            ("action", "pause"),
            ("authenticity_token", &"0".repeat(64)),
        ],
        &[("cookie", &format!("jobs_csrf={}", "1".repeat(64)))],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(
        !hash_of(&redis, "nightly_report")
            .await
            .contains_key("paused")
    );
    assert!(redis.queue("reports").await.is_empty());

    // The page's own token (cookie and form field) lets the POST through.
    let page = get(&app, "/jobs/periodic").await;
    let cookie = page.headers["set-cookie"].to_str().unwrap().to_owned();
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    assert!(
        row_of(&page.body, "nightly_report")
            .contains(&format!("name=\"authenticity_token\" value=\"{token}\"")),
        "every button's form carries the token"
    );
    let right = post_with(
        &app,
        "/jobs/periodic",
        &[
            ("name", "nightly_report"),
            ("action", "pause"),
            ("authenticity_token", &token),
        ],
        &[("cookie", &format!("jobs_csrf={token}"))],
    )
    .await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert!(
        hash_of(&redis, "nightly_report")
            .await
            .contains_key("paused")
    );
}

#[tokio::test]
async fn hostile_entries_do_not_break_the_page() {
    let redis = TestRedis::start();
    let client = redis.client();
    let hostile = write_hostile(&redis).await;
    let attack = "<script>alert(1)</script>";
    let img = "\"><img src=x onerror=alert(1)>";
    let xss = json!({"args": [attack, {"k": img}], "catch_up": "one", "class": img,
                     "cron": attack, "enabled": true, "queue": "javascript:alert(1)",
                     "timezone": img});
    write_entry(
        &redis,
        attack,
        &[("definition", &xss.to_string()), ("last_jid", img)],
    )
    .await;
    write_entry(
        &redis,
        img,
        &[(
            "definition",
            &definition("@hourly", "UTC", img, "javascript:alert(1)"),
        )],
    )
    .await;
    let app = app(&client);

    let page = get(&app, "/jobs/periodic").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for danger in [
        "<script>alert",
        "<img src=x",
        "href=\"javascript:",
        "onerror=alert(1)>",
    ] {
        assert!(
            !page.body.contains(danger),
            "the page shows {danger} unescaped"
        );
    }
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    for (name, said) in &hostile {
        let row = row_of(&page.body, name);
        assert!(row.contains("class=\"error\""), "{name} has a note: {row}");
        assert!(row.contains(said), "{name}: {said} in {row}");
    }
    assert!(!row_of(&page.body, "good").contains("class=\"error\""));

    let missing = post(
        &app,
        "/jobs/periodic",
        &[("name", "wrong_type"), ("action", "pause")],
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let unusable = post(
        &app,
        "/jobs/periodic",
        &[("name", "not_json"), ("action", "enqueue")],
    )
    .await;
    assert_eq!(unusable.status, StatusCode::BAD_REQUEST);
    assert!(unusable.body.contains("not JSON"), "{}", unusable.body);
    let good = post(
        &app,
        "/jobs/periodic",
        &[("name", img), ("action", "enqueue")],
    )
    .await;
    assert_eq!(good.status, StatusCode::SEE_OTHER, "{}", good.body);
    let mut raw = redis.raw().await;
    let pushed: usize = raw.llen("queue:javascript:alert(1)").await.unwrap();
    assert_eq!(pushed, 1, "an odd name and queue still work");
    assert_eq!(get(&app, "/jobs/periodic").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_periodic_page_only_reads() {
    let redis = TestRedis::start();
    declare_three(&redis).await;
    let reader = redis.client_as("reader", "-@write").await;
    let app = app(&reader);

    let page = get(&app, "/jobs/periodic").await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the page needs a write: {}",
        page.body
    );
    assert!(page.body.contains("nightly_report"));
    // The same user cannot pause, so the read above proved something.
    let write = post(
        &app,
        "/jobs/periodic",
        &[("name", "nightly_report"), ("action", "pause")],
    )
    .await;
    assert_eq!(
        write.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        write.body
    );
    assert!(
        !hash_of(&redis, "nightly_report")
            .await
            .contains_key("paused")
    );
}

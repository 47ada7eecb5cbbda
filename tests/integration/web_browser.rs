//! The dashboard in a real browser: Debian's headless Chromium, driven through ChromeDriver.
//! It loads each page, checks what it shows, clicks "Retry now" and "Delete" on real jobs, and
//! "Pause", "Resume" and "Enqueue now" on periodic entries a worker declared, and checks Redis,
//! and saves a screenshot of each page (under `target/screenshots/`, and into
//! the folder `JOBS_SCREENSHOTS` names, for `docs/screenshots/`).

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use jobs::Payload;
use jobs::api::{DeadSet, PeriodicSet, RetrySet};
use jobs::periodic::{CatchUp, Periodic};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::jobs::{CallLog, ScoreGeneration, busy_worker, worker};
use crate::support::{RunningWorker, TestRedis, eventually, free_port, now};

/// A `chromedriver` child process in a process group of its own, which Chromium joins: the whole
/// group is killed when dropped, so a failing test leaves no browser behind.
pub struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start chromedriver ({error}); install it with `apt-get install \
                     chromium chromium-driver`, or run `scripts/test`, which does"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn open_browser(driver: &ChromeDriver) -> Browser {
    open_browser_with(driver, &[]).await
}

/// [`open_browser`] with more Chromium flags (`--force-dark-mode`, say).
pub async fn open_browser_with(driver: &ChromeDriver, extra: &[&str]) -> Browser {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--hide-scrollbars",
    ];
    args.extend_from_slice(extra);
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "binary": "/usr/bin/chromium", "args": args }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session through chromedriver")
}

/// Serves `client`'s dashboard under `/jobs` on a free port until the sender is used or
/// dropped; returns its address.
pub async fn serve_dashboard(
    client: &jobs::Client,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/jobs", listener.local_addr().unwrap());
    let app = axum::Router::new().nest("/jobs", jobs::web::router(client));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    (base, stop, server)
}

/// Saves what the browser shows as `<name>.png`.
pub async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let mut folders = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")];
    if let Some(folder) = std::env::var_os("JOBS_SCREENSHOTS") {
        folders.push(PathBuf::from(folder));
    }
    for folder in folders {
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{name}.png")), &png).unwrap();
    }
}

/// Clicks the first element `css` finds.
pub async fn click(browser: &Browser, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no {css} to click: {error}"))
        .click()
        .await
        .unwrap();
}

/// The text of the first element `css` finds; a screenshot `failure.png` and the page's source
/// when there is none.
pub async fn text_of(browser: &Browser, css: &str) -> String {
    let waiting = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await;
    match waiting {
        Ok(element) => element.text().await.unwrap(),
        Err(error) => {
            screenshot(browser, "failure").await;
            let url = browser.current_url().await.unwrap();
            let source = browser.source().await.unwrap_or_default();
            panic!("no {css} on {url} ({error}):\n{source}");
        }
    }
}

#[tokio::test]
async fn the_dashboard_works_in_chromium() {
    let redis = TestRedis::start();
    let client = redis.client();
    for n in 0..3 {
        client
            .push(
                Payload::new(
                    "ScoreGeneration",
                    vec![json!(format!("2026-11-{:02}", 20 + n))],
                )
                .queue("scores"),
            )
            .await
            .unwrap();
    }
    client
        .push(Payload::new("SendWelcomeEmail", vec![json!("ada@example.com")]).queue("mailers"))
        .await
        .unwrap();
    let later = chrono::Utc::now() + chrono::Duration::minutes(90);
    client
        .push_at(
            later,
            Payload::new("NightlyReport", vec![json!({"team": 7})]),
        )
        .await
        .unwrap();
    let failed = |jid: &str, class: &str, message: &str, count: u64| {
        json!({"class": class, "args": [42, "<b>bold</b>"], "jid": jid, "queue": "payments",
               "retry": true, "retry_count": count, "created_at": now() - 900.0,
               "enqueued_at": now() - 300.0, "failed_at": now() - 800.0,
               "error_class": "JobError", "error_message": message})
        .to_string()
    };
    let mut raw = redis.raw().await;
    let _: () = raw
        .zadd(
            "retry",
            failed("retryme", "ChargeCard", "card declined", 2),
            now() + 600.0,
        )
        .await
        .unwrap();
    let _: () = raw
        .zadd(
            "dead",
            failed("deleteme", "ImportCsv", "row 7: bad date", 25),
            now() - 3_600.0,
        )
        .await
        .unwrap();
    let _: () = raw.set("stat:processed", 48_213).await.unwrap();
    let _: () = raw.set("stat:failed", 312).await.unwrap();
    let today = chrono::Utc::now().date_naive();
    for back in 0..30_u64 {
        let day = today - chrono::Days::new(back);
        let processed = 1_000 + (back * 379) % 900;
        let _: () = raw
            .set(
                format!("stat:processed:{}", day.format("%Y-%m-%d")),
                processed,
            )
            .await
            .unwrap();
        let _: () = raw
            .set(
                format!("stat:failed:{}", day.format("%Y-%m-%d")),
                processed / 40,
            )
            .await
            .unwrap();
    }
    let running = busy_worker(&redis, &CallLog::default(), 4, 60_000).await;

    let (base, stop, server) = serve_dashboard(&client).await;

    let driver = ChromeDriver::start();
    let browser = open_browser(&driver).await;

    // The dashboard: the styles and the script load under the CSP, and the live graph polls.
    browser.goto(&format!("{base}?days=30")).await.unwrap();
    browser
        .execute("localStorage.setItem('jobs.poll', '2000');", vec![])
        .await
        .unwrap();
    browser.refresh().await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "Dashboard · jobs");
    assert_eq!(text_of(&browser, "[data-stat=processed]").await, "48,213");
    let header = browser
        .execute(
            "return getComputedStyle(document.querySelector('header.top')).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(header, json!("rgb(27, 34, 51)"), "the stylesheet applies");
    let mut drawn = false;
    for _ in 0..50 {
        let points = browser
            .find(Locator::Css("#live-graph polyline.processed"))
            .await
            .unwrap()
            .attr("points")
            .await
            .unwrap()
            .unwrap_or_default();
        if !points.is_empty() {
            drawn = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(drawn, "the script polled the stats and drew the live graph");
    screenshot(&browser, "dashboard").await;

    // Busy: our worker and its running job.
    browser.goto(&format!("{base}/busy")).await.unwrap();
    let busy = text_of(&browser, "main").await;
    assert!(busy.contains("Slow") && busy.contains("1 / 4"), "{busy}");
    screenshot(&browser, "busy").await;

    // Queues and one queue.
    browser.goto(&format!("{base}/queues")).await.unwrap();
    let queues = text_of(&browser, "main table").await;
    assert!(queues.contains("scores") && queues.contains("mailers"));
    screenshot(&browser, "queues").await;
    browser
        .goto(&format!("{base}/queues/scores"))
        .await
        .unwrap();
    assert!(
        text_of(&browser, "main table")
            .await
            .contains("ScoreGeneration")
    );
    screenshot(&browser, "queue").await;

    // Scheduled: relative times, with the exact time on hover.
    browser.goto(&format!("{base}/scheduled")).await.unwrap();
    let when = browser.find(Locator::Css("main table time")).await.unwrap();
    assert_eq!(when.text().await.unwrap(), "in 1 hour");
    assert!(when.attr("title").await.unwrap().unwrap().ends_with("UTC"));
    screenshot(&browser, "scheduled").await;

    // Retries: select the job and click "Retry now"; it is back in its queue.
    browser.goto(&format!("{base}/retries")).await.unwrap();
    let retries = text_of(&browser, "main table").await;
    assert!(retries.contains("ChargeCard") && retries.contains("card declined"));
    assert!(
        retries.contains("<b>bold</b>"),
        "markup in args shows as text"
    );
    screenshot(&browser, "retries").await;
    click(&browser, "input[name=key]").await;
    click(&browser, "button[value=retry]").await;
    eventually(
        Duration::from_secs(5),
        "Retry now to move the job",
        async || RetrySet::new(&client).size().await.unwrap() == 0,
    )
    .await;
    assert!(redis.queued_jids("payments").await.contains("retryme"));
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/jobs/retries")
    );

    // Dead: open the job, then click "Delete" on its page.
    browser.goto(&format!("{base}/morgue")).await.unwrap();
    screenshot(&browser, "dead").await;
    click(&browser, "main table td a").await;
    let detail = text_of(&browser, "main").await;
    assert!(detail.contains("ImportCsv") && detail.contains("row 7: bad date"));
    assert!(detail.contains("deleteme"));
    screenshot(&browser, "job").await;
    click(&browser, "button[value=delete]").await;
    eventually(
        Duration::from_secs(5),
        "Delete to remove the dead job",
        async || DeadSet::new(&client).size().await.unwrap() == 0,
    )
    .await;

    // Deleting a queue asks first; accepting the dialog deletes it.
    browser.goto(&format!("{base}/queues")).await.unwrap();
    let rows = browser
        .find_all(Locator::Css("main table tr"))
        .await
        .unwrap();
    let mut clicked = false;
    for row in rows {
        if row.text().await.unwrap().contains("mailers") {
            row.find(Locator::Css("button.danger"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            clicked = true;
            break;
        }
    }
    assert!(clicked, "the mailers queue has a Delete button");
    browser.accept_alert().await.unwrap();
    eventually(
        Duration::from_secs(5),
        "the queue to be deleted",
        async || redis.queue("mailers").await.is_empty(),
    )
    .await;

    // Periodic: entries a worker declares; pause one and resume it, enqueue another now.
    let ticking = RunningWorker::start(
        worker(&redis, &CallLog::default())
            .periodic_entry(
                Periodic::class(
                    "cache_warmup",
                    "*/2 * * * * *",
                    "CacheWarmup",
                    vec![json!("eu-west")],
                )
                .queue("maintenance"),
            )
            .periodic("nightly_scores", "0 3 * * *", |tick| ScoreGeneration {
                date: tick.date_naive(),
            })
            .periodic_entry(
                Periodic::class("hourly_digest", "@hourly", "DigestMailer", vec![json!(7)])
                    .queue("mailers"),
            )
            .periodic_entry(
                Periodic::class("weekly_cleanup", "30 4 * * SUN", "Cleanup", vec![])
                    .timezone("Europe/Berlin")
                    .catch_up(CatchUp::None),
            )
            .periodic_entry(
                Periodic::class("legacy_export", "0 0 1 * *", "LegacyExport", vec![])
                    .enabled(false),
            ),
    );
    let entries = PeriodicSet::new(&client);
    eventually(
        Duration::from_secs(10),
        "cache_warmup to push a tick's job",
        async || {
            entries
                .get("cache_warmup")
                .await
                .unwrap()
                .is_some_and(|entry| entry.last_run.is_some())
        },
    )
    .await;
    browser.goto(&format!("{base}/periodic")).await.unwrap();
    let periodic = text_of(&browser, "main table").await;
    assert!(
        periodic.contains("nightly_scores") && periodic.contains("At 03:00 (UTC)"),
        "{periodic}"
    );
    let computed = browser
        .find(Locator::Css("tr[data-entry=nightly_scores] .unavailable"))
        .await
        .unwrap();
    assert!(
        computed
            .attr("title")
            .await
            .unwrap()
            .unwrap()
            .contains("computed from each tick"),
        "a computed entry says why it cannot be enqueued now"
    );
    assert!(
        !computed
            .find(Locator::Css("button"))
            .await
            .unwrap()
            .is_enabled()
            .await
            .unwrap()
    );
    click(
        &browser,
        "tr[data-entry=hourly_digest] form:first-of-type button",
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "Pause to pause the entry",
        async || entries.get("hourly_digest").await.unwrap().unwrap().paused,
    )
    .await;
    let paused = text_of(&browser, "tr[data-entry=hourly_digest]").await;
    assert!(
        paused.contains("paused") && paused.contains("Resume"),
        "{paused}"
    );
    screenshot(&browser, "periodic").await;
    click(
        &browser,
        "tr[data-entry=hourly_digest] form:first-of-type button",
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "Resume to resume the entry",
        async || !entries.get("hourly_digest").await.unwrap().unwrap().paused,
    )
    .await;
    click(
        &browser,
        "tr[data-entry=hourly_digest] form:last-of-type button",
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "Enqueue now to push the job",
        async || {
            redis
                .queue("mailers")
                .await
                .iter()
                .any(|job| job["jobs_periodic"] == "hourly_digest")
        },
    )
    .await;
    ticking.stop(Duration::from_secs(10)).await;

    // On a phone-sized screen.
    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&base).await.unwrap();
    screenshot(&browser, "dashboard-phone").await;

    browser.close().await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    running.stop(Duration::from_secs(10)).await;
}

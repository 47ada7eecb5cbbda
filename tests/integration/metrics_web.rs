//! The Metrics pages and the Prometheus endpoint over HTTP: Ruby's keys shown, hostile inputs
//! refused or escaped, the endpoint's output checked by `promtool check metrics`, and a worker
//! started with `--web` scraped while it runs.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{Duration as Span, Utc};
use jobs::Payload;
use serde_json::json;

use crate::support::jobs::{CallLog, Explode, Slow, worker};
use crate::support::{RunningWorker, TestRedis, eventually, free_port};
use crate::web_http::{app, get};

/// Writes one class's minute as Sidekiq 8 does (`j|` hashes, `h|` histogram), with raw commands.
pub async fn write_like_sidekiq(
    raw: &mut redis::aio::MultiplexedConnection,
    class: &str,
    at: chrono::DateTime<Utc>,
    (processed, failed, ms): (u64, u64, u64),
    buckets: &[(usize, u64)],
) {
    let minute = at.format("%y%m%d|%-H:%M").to_string();
    let ten = &minute[..minute.len() - 1];
    for (key, ttl) in [
        (format!("j|{minute}"), 28_800),
        (format!("j|{ten}"), 259_200),
    ] {
        let _: () = redis::pipe()
            .hincr(&key, format!("{class}|p"), processed)
            .hincr(&key, format!("{class}|f"), failed)
            .hincr(&key, format!("{class}|ms"), ms)
            .expire(&key, ttl)
            .query_async(raw)
            .await
            .unwrap();
    }
    let key = format!("h|{class}-{}", at.format("%-d-%-H:%-M"));
    let mut command = redis::cmd("BITFIELD");
    command.arg(&key).arg("OVERFLOW").arg("SAT");
    for (index, count) in buckets {
        command
            .arg("INCRBY")
            .arg("u16")
            .arg(format!("#{index}"))
            .arg(*count);
    }
    let _: () = command.query_async(raw).await.unwrap();
    let _: () = redis::cmd("EXPIRE")
        .arg(&key)
        .arg(28_800)
        .query_async(raw)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_metrics_pages_show_what_ruby_wrote() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let now = Utc::now();
    write_like_sidekiq(&mut raw, "HardJob", now, (10, 2, 8_000), &[(9, 8)]).await;
    write_like_sidekiq(
        &mut raw,
        "HardJob",
        now - Span::minutes(5),
        (4, 0, 400),
        &[(4, 4)],
    )
    .await;
    write_like_sidekiq(&mut raw, "Mailer::Deliver", now, (3, 0, 30), &[(0, 3)]).await;
    let mark = now.format("%Y-%m-%dT%H:%M:00Z").to_string();
    let _: () = redis::cmd("HSET")
        .arg(now.format("%Y%m%d-marks").to_string())
        .arg(&mark)
        .arg("v2.1 deploy")
        .query_async(&mut raw)
        .await
        .unwrap();
    let app = app(&redis.client());

    let page = get(&app, "/jobs/metrics/classes").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(r#"data-class="HardJob""#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"data-class="Mailer::Deliver""#));
    assert!(
        page.body
            .contains("/jobs/metrics/classes/Mailer%3A%3ADeliver?period=1h")
    );
    assert!(page.body.contains(">12<"), "12 succeeded runs of HardJob");
    assert!(page.body.contains("8.40 s"), "total time");
    assert!(
        page.body.contains(r#"data-mark="v2.1 deploy""#),
        "the deploy mark"
    );
    let nav = r#"href="/jobs/metrics/classes""#;
    assert!(page.body.contains(nav), "the tab is in the nav");

    let filtered = get(&app, "/jobs/metrics/classes?period=8h&substr=mailer").await;
    assert!(filtered.body.contains("Mailer::Deliver"));
    assert!(!filtered.body.contains(r#"data-class="HardJob""#));
    let day = get(&app, "/jobs/metrics/classes?period=72h").await;
    assert_eq!(day.status, StatusCode::OK);
    assert!(
        day.body.contains(r#"data-class="HardJob""#),
        "from the 10-minute rollups"
    );
    assert!(day.body.contains("kept 8 hours"));

    let class = get(&app, "/jobs/metrics/classes/HardJob?period=1h").await;
    assert_eq!(class.status, StatusCode::OK, "{}", class.body);
    assert!(
        class.body.contains(r#"data-bucket="750ms" data-count="8""#),
        "{}",
        class.body
    );
    assert!(class.body.contains(r#"data-bucket="100ms" data-count="4""#));
    assert!(class.body.contains("v2.1 deploy"));
    let missing = get(&app, "/jobs/metrics/classes/NoSuchJob").await;
    assert_eq!(missing.status, StatusCode::OK);
    assert!(missing.body.contains("No run of this class"));
}

#[tokio::test]
async fn hostile_metrics_inputs_are_refused_or_escaped() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let evil = r#"<img src=x onerror=alert(1)>"#;
    write_like_sidekiq(&mut raw, evil, Utc::now(), (1, 0, 5), &[(0, 1)]).await;
    let _: () = redis::cmd("HSET")
        .arg(Utc::now().format("%Y%m%d-marks").to_string())
        .arg(Utc::now().format("%Y-%m-%dT%H:%M:00Z").to_string())
        .arg("</title><script>alert(2)</script>")
        .query_async(&mut raw)
        .await
        .unwrap();
    let app = app(&redis.client());

    // CVE-2023-1892 and CVE-2024-32887 came through the period and the filter.
    for path in [
        "/jobs/metrics/classes?period=%3Cscript%3Ealert(1)%3C/script%3E",
        "/jobs/metrics/classes?period=1h%22%3E%3Cscript%3E",
        "/jobs/metrics/classes?period=999999h",
        "/jobs/metrics/classes/HardJob?period=%3Cscript%3E",
    ] {
        let reply = get(&app, path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(!reply.body.contains("<script>"), "{path}: {}", reply.body);
    }
    let long = format!("/jobs/metrics/classes?substr={}", "a".repeat(101));
    assert_eq!(get(&app, &long).await.status, StatusCode::BAD_REQUEST);
    let long = format!("/jobs/metrics/classes/{}", "A".repeat(301));
    assert_eq!(get(&app, &long).await.status, StatusCode::BAD_REQUEST);

    let reply = get(
        &app,
        "/jobs/metrics/classes?substr=%22%3E%3Cscript%3Ealert(3)%3C%2Fscript%3E",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.body.contains("<script>alert(3)"), "{}", reply.body);
    assert!(reply.body.contains("&quot;&gt;&lt;script&gt;alert(3)"));

    let reply = get(&app, "/jobs/metrics/classes").await;
    assert!(
        !reply.body.contains(evil),
        "a class name from Redis is escaped"
    );
    assert!(reply.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(
        !reply.body.contains("<script>alert(2)"),
        "a deploy label is escaped"
    );
    assert!(
        reply
            .body
            .contains("/jobs/metrics/classes/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"),
        "its link is percent-encoded"
    );

    let reply = get(
        &app,
        "/jobs/metrics/classes/%3Cscript%3Ealert(4)%3C%2Fscript%3E",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.body.contains("<script>alert(4)"), "{}", reply.body);
    assert!(reply.body.contains("&lt;script&gt;alert(4)"));
}

/// Runs `promtool check metrics` on `text`; panics with its report unless it passes.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run promtool ({error}); install it with `apt-get install prometheus`, \
                 or run `scripts/setup`, which does"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The value of the sample `series` (name and labels exactly as written) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn the_prometheus_endpoint_passes_promtool() {
    let redis = TestRedis::start();
    let client = redis.client();
    for _ in 0..3 {
        client.perform_async(Slow { millis: 1 }).await.unwrap();
    }
    client
        .perform_async(Explode {
            message: "no".to_owned(),
        })
        .await
        .unwrap();
    let worker = worker(&redis, &CallLog::default());
    let metrics = worker.execution_metrics();
    worker.drain().await.unwrap();
    client
        .push(Payload::new("Waiting", vec![json!(1)]).queue("mailers \"quoted\""))
        .await
        .unwrap();

    let router = axum::Router::new().nest(
        "/jobs",
        jobs::web::Dashboard::new(&client)
            .process_metrics(&metrics)
            .router(),
    );
    let reply = get(&router, "/jobs/metrics").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = reply.body;
    promtool_check(&text);
    let slow = r#"{class="Slow",queue="default"}"#;
    assert_eq!(
        sample(&text, &format!("jobs_processed_total{slow}")),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, &format!("jobs_failed_total{slow}")),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"jobs_failed_total{class="Explode",queue="default"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"jobs_run_duration_seconds_count{class="Slow",queue="default"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"jobs_run_duration_seconds_bucket{le="+Inf",class="Slow",queue="default"}"#
        )
        .or_else(|| sample(
            &text,
            r#"jobs_run_duration_seconds_bucket{class="Slow",queue="default",le="+Inf"}"#
        )),
        Some(3.0),
        "{text}"
    );
    for le in ["0.02", "0.335", "45", "+Inf"] {
        let bucket = format!(
            r#"jobs_run_duration_seconds_bucket{{class="Explode",queue="default",le="{le}"}}"#
        );
        assert_eq!(sample(&text, &bucket), Some(1.0), "cumulative once: {text}");
    }
    assert_eq!(
        text.matches(r#"class="Explode",queue="default",le="#)
            .count(),
        26
    );
    assert_eq!(sample(&text, "jobs_stat_processed_total"), Some(4.0));
    assert_eq!(sample(&text, "jobs_retry_set_size"), Some(1.0));
    assert_eq!(
        sample(&text, r#"jobs_queue_size{queue="mailers \"quoted\""}"#),
        Some(1.0),
        "a label value escaped"
    );
    assert!(sample(&text, "jobs_process_concurrency").is_some());

    // Mounted on its own, and on a plain dashboard (no worker): Redis figures only.
    let alone = jobs::web::Dashboard::new(&client).prometheus_router();
    let reply = get(&alone, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    promtool_check(&reply.body);
    assert_eq!(sample(&reply.body, "jobs_stat_processed_total"), Some(4.0));
    assert!(
        !reply.body.contains("jobs_processed_total"),
        "no worker here"
    );
    assert_eq!(
        get(&alone, "/metrics/classes").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_worker_started_with_web_is_scraped() {
    let redis = TestRedis::start();
    let client = redis.client();
    let port = free_port();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let running = RunningWorker::start(worker(&redis, &CallLog::default()).web(address));
    for _ in 0..2 {
        client.perform_async(Slow { millis: 1 }).await.unwrap();
    }
    let mut text = String::new();
    eventually(
        Duration::from_secs(10),
        "the worker to export its runs",
        async || {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                return false;
            };
            let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.unwrap();
            text = reply
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_owned())
                .unwrap_or_default();
            reply.starts_with("HTTP/1.1 200")
                && sample(
                    &text,
                    r#"jobs_processed_total{class="Slow",queue="default"}"#,
                ) == Some(2.0)
        },
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
    promtool_check(&text);
    assert_eq!(sample(&text, "jobs_process_concurrency"), Some(5.0));
    assert_eq!(sample(&text, "jobs_processes"), Some(1.0));
}

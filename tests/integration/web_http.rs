//! The dashboard over HTTP, in-process: every route and action, the CSRF rejections, the
//! security headers, the XSS matrix, the input caps, basic auth, and reads that never write.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use jobs::Payload;
use jobs::api::{DeadSet, Page, RetrySet, ScheduledSet, SetKind};
use redis::AsyncCommands;
use serde_json::json;
use tower::ServiceExt;

use crate::support::jobs::{CallLog, Slow, busy_worker, worker};
use crate::support::{RunningWorker, TestRedis, eventually, first_entry, now};

/// The dashboard mounted as an app would mount it.
pub fn app(client: &jobs::Client) -> Router {
    Router::new().nest("/jobs", jobs::web::router(client))
}

/// An answer, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }
}

/// Sends `request` to `app` in-process.
pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub async fn get(app: &Router, path: &str) -> Reply {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

/// A POST as a browser sends it from the dashboard's own page.
pub async fn post(app: &Router, path: &str, fields: &[(&str, &str)]) -> Reply {
    post_with(app, path, fields, &[("sec-fetch-site", "same-origin")]).await
}

/// A POST of `fields` with these headers only.
pub async fn post_with(
    app: &Router,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Reply {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        body.append_pair(name, value);
    }
    let mut request =
        Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(app, request.body(Body::from(body.finish())).unwrap()).await
}

/// Every byte of `text` percent-encoded, as a browser may send a path segment.
fn percent_encoded(text: &str) -> String {
    text.bytes().map(|byte| format!("%{byte:02X}")).collect()
}

fn failed_job(jid: &str, class: &str, queue: &str, message: &str) -> String {
    json!({
        "class": class, "args": [jid, {"n": 1}], "jid": jid, "queue": queue, "retry": true,
        "created_at": now() - 60.0, "enqueued_at": now() - 30.0, "failed_at": now() - 30.0,
        "retry_count": 1, "error_class": "RuntimeError", "error_message": message,
    })
    .to_string()
}

/// One job in each place: queue `default`, schedule, retry and dead; counters set.
pub async fn seed(redis: &TestRedis) {
    let client = redis.client();
    client
        .push(Payload::new("QueuedJob", vec![json!("waiting")]))
        .await
        .unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    client
        .push_at(later, Payload::new("LaterJob", vec![json!("soon")]))
        .await
        .unwrap();
    redis
        .zadd(
            "retry",
            now() + 600.0,
            &failed_job("retry1", "FlakyJob", "default", "flaked"),
        )
        .await;
    redis
        .zadd(
            "dead",
            now() - 600.0,
            &failed_job("dead1", "DeadJob", "default", "gave up"),
        )
        .await;
    let mut raw = redis.raw().await;
    let _: () = raw.set("stat:processed", 1_234_567).await.unwrap();
    let _: () = raw.set("stat:failed", 89).await.unwrap();
}

#[tokio::test]
async fn every_page_shows_its_jobs() {
    let redis = TestRedis::start();
    seed(&redis).await;
    let client = redis.client();
    let app = app(&client);

    let dashboard = get(&app, "/jobs").await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.body);
    assert!(
        dashboard.body.contains("1,234,567"),
        "numbers have separators"
    );
    assert!(
        dashboard.body.contains("href=\"/jobs/retries\""),
        "links stay under the mount"
    );
    assert!(dashboard.body.contains("/jobs/assets/app.css"));
    let redis_info = jobs::api::RedisInfo::fetch(&client).await.unwrap();
    let server = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .expect("redis-server --version");
    assert!(
        String::from_utf8_lossy(&server.stdout).contains(&format!("v={} ", redis_info.version)),
        "INFO's version {} is the test server's",
        redis_info.version
    );
    assert!(
        dashboard
            .body
            .contains(&format!("<td>{}</td>", redis_info.version)),
        "the dashboard shows Redis's version"
    );
    assert_eq!(get(&app, "/jobs?days=7").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/jobs?days=90").await.status, StatusCode::OK);

    let stats: serde_json::Value =
        serde_json::from_str(&get(&app, "/jobs/stats").await.body).unwrap();
    assert_eq!(stats["processed"], 1_234_567);
    assert_eq!(stats["failed"], 89);
    assert_eq!(stats["enqueued"], 1);
    assert_eq!(stats["scheduled"], 1);
    assert_eq!(stats["retries"], 1);
    assert_eq!(stats["dead"], 1);

    let queues = get(&app, "/jobs/queues").await;
    assert!(queues.body.contains("href=\"/jobs/queues/default\""));
    let queue = get(&app, "/jobs/queues/default").await;
    assert!(queue.body.contains("QueuedJob") && queue.body.contains("&quot;waiting&quot;"));

    let retries = get(&app, "/jobs/retries").await;
    assert!(retries.body.contains("FlakyJob") && retries.body.contains("flaked"));
    let scheduled = get(&app, "/jobs/scheduled").await;
    assert!(scheduled.body.contains("LaterJob") && scheduled.body.contains("in 1 hour"));
    let dead = get(&app, "/jobs/morgue").await;
    assert!(dead.body.contains("DeadJob") && dead.body.contains("10 minutes ago"));
    assert!(
        dead.body.contains("title=\"20"),
        "the exact time is on hover"
    );

    let entry = first_entry(&client, SetKind::Retry).await;
    let detail = get(&app, &format!("/jobs/retries/{}", entry.key())).await;
    assert_eq!(detail.status, StatusCode::OK);
    for text in [
        "FlakyJob",
        "retry1",
        "RuntimeError",
        "flaked",
        "Retry now",
        "Kill",
    ] {
        assert!(detail.body.contains(text), "the detail page shows {text}");
    }
    let gone = get(&app, "/jobs/retries/1-nobody").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    for asset in ["/jobs/assets/app.css", "/jobs/assets/app.js"] {
        let reply = get(&app, asset).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body.len() > 1_000);
    }
    assert_eq!(
        get(&app, "/jobs/assets/other.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_busy_page_shows_processes_and_stops_them() {
    let redis = TestRedis::start();
    let client = redis.client();
    let running = busy_worker(&redis, &CallLog::default(), 2, 20_000).await;
    let app = app(&client);
    let busy = get(&app, "/jobs/busy").await;
    assert!(busy.body.contains("Slow"), "the running job is listed");
    assert!(busy.body.contains("1 / 2"), "busy of concurrency");
    let identity = jobs::api::ProcessSet::new(&client).list().await.unwrap()[0]
        .identity
        .clone();
    assert!(busy.body.contains(&identity));

    let reply = post(
        &app,
        "/jobs/busy",
        &[("identity", &identity), ("action", "quiet")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/jobs/busy");
    eventually(
        Duration::from_secs(5),
        "the process to go quiet",
        async || jobs::api::ProcessSet::new(&client).list().await.unwrap()[0].quiet,
    )
    .await;
    assert!(get(&app, "/jobs/busy").await.body.contains("quiet"));
    let unknown = post(
        &app,
        "/jobs/busy",
        &[("identity", "nobody"), ("action", "stop")],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    running.stop(Duration::from_secs(10)).await;

    // A process embedded in another app can be quieted, not stopped.
    redis.embedded_heartbeat("web-1:42:0123456789ab").await;
    let refused = post(
        &app,
        "/jobs/busy",
        &[("identity", "web-1:42:0123456789ab"), ("action", "stop")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("embedded in another app"),
        "{}",
        refused.body
    );
    assert!(get(&app, "/jobs/busy").await.body.contains("web-1"));
    let signals: Vec<String> = redis
        .raw()
        .await
        .lrange("web-1:42:0123456789ab-signals", 0, -1)
        .await
        .unwrap();
    assert!(signals.is_empty(), "{signals:?}");
}

#[tokio::test]
async fn actions_change_redis_and_redirect_inside_the_mount() {
    let redis = TestRedis::start();
    seed(&redis).await;
    let client = redis.client();
    let app = app(&client);

    // Retry now, on one entry.
    let entry = first_entry(&client, SetKind::Retry).await;
    let reply = post(
        &app,
        &format!("/jobs/retries/{}", entry.key()),
        &[("action", "retry")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), "/jobs/retries");
    assert_eq!(RetrySet::new(&client).size().await.unwrap(), 0);
    assert!(redis.queued_jids("default").await.contains("retry1"));

    // Add to queue, selected with a checkbox.
    let later = first_entry(&client, SetKind::Scheduled).await;
    let reply = post(
        &app,
        "/jobs/scheduled",
        &[("action", "add_to_queue"), ("key", &later.key())],
    )
    .await;
    assert_eq!(reply.location(), "/jobs/scheduled");
    assert_eq!(ScheduledSet::new(&client).size().await.unwrap(), 0);
    assert_eq!(redis.queue("default").await.len(), 3);

    // Kill is not offered for dead jobs; retry all is.
    let dead = first_entry(&client, SetKind::Dead).await;
    let refused = post(
        &app,
        &format!("/jobs/morgue/{}", dead.key()),
        &[("action", "kill")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let reply = post(&app, "/jobs/morgue/all/retry", &[]).await;
    assert_eq!(reply.location(), "/jobs/morgue");
    assert_eq!(DeadSet::new(&client).size().await.unwrap(), 0);
    assert_eq!(redis.queue("default").await.len(), 4);

    // Kill a retry, then delete all dead.
    redis
        .zadd(
            "retry",
            now() + 60.0,
            &failed_job("again", "FlakyJob", "default", "x"),
        )
        .await;
    let again = first_entry(&client, SetKind::Retry).await;
    post(
        &app,
        "/jobs/retries",
        &[("action", "kill"), ("key", &again.key())],
    )
    .await;
    assert_eq!(DeadSet::new(&client).size().await.unwrap(), 1);
    post(&app, "/jobs/morgue/all/delete", &[]).await;
    assert_eq!(DeadSet::new(&client).size().await.unwrap(), 0);

    // Delete one queued job, then the queue.
    let queued = jobs::api::Queue::new(&client, "default")
        .page(Page::first(1))
        .await
        .unwrap()
        .remove(0);
    let reply = post(
        &app,
        "/jobs/queues/default/delete",
        &[("key_val", queued.raw())],
    )
    .await;
    assert_eq!(reply.location(), "/jobs/queues/default");
    assert_eq!(redis.queue("default").await.len(), 3);
    let reply = post(&app, "/jobs/queues/default", &[]).await;
    assert_eq!(reply.location(), "/jobs/queues");
    assert!(redis.queue("default").await.is_empty());

    // A queue name that looks like another site still redirects inside the mount.
    client
        .push(Payload::new("A", vec![]).queue("/evil.example"))
        .await
        .unwrap();
    let reply = post(
        &app,
        "/jobs/queues/%2Fevil.example/delete",
        &[("key_val", "x")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(
        reply.location().starts_with("/jobs/queues/%2F"),
        "{}",
        reply.location()
    );
}

#[tokio::test]
async fn posts_from_elsewhere_are_refused() {
    let redis = TestRedis::start();
    seed(&redis).await;
    let client = redis.client();
    let app = app(&client);
    let path = "/jobs/retries/all/delete";

    let cross = post_with(&app, path, &[], &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let bare = post_with(&app, path, &[], &[]).await;
    assert_eq!(
        bare.status,
        StatusCode::FORBIDDEN,
        "no fetch metadata and no token"
    );
    let foreign = post_with(
        &app,
        path,
        &[],
        &[("origin", "https://evil.example"), ("host", "jobs.example")],
    )
    .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert_eq!(
        RetrySet::new(&client).size().await.unwrap(),
        1,
        "nothing was deleted"
    );

    // Without fetch metadata, the page's token (cookie and form field) lets the POST through.
    let page = get(&app, "/jobs/retries").await;
    let cookie = page
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(cookie.contains("Path=/jobs"));
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    assert!(
        page.body
            .contains(&format!("name=\"authenticity_token\" value=\"{token}\""))
    );
    let pair = format!("jobs_csrf={token}");
    let wrong = post_with(
        &app,
        path,
        &[("authenticity_token", &"0".repeat(64))],
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let right = post_with(
        &app,
        path,
        &[("authenticity_token", &token)],
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert_eq!(RetrySet::new(&client).size().await.unwrap(), 0);

    // Changes are POSTs only.
    assert_eq!(get(&app, path).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let redis = TestRedis::start();
    let app = app(&redis.client());
    for path in [
        "/jobs",
        "/jobs/queues",
        "/jobs/retries/1-x",
        "/jobs?days=5",
        "/jobs/assets/app.js",
    ] {
        let reply = get(&app, path).await;
        let header = |name: &str| {
            reply
                .headers
                .get(name)
                .unwrap_or_else(|| panic!("{path} has no {name}"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("referrer-policy"), "same-origin");
        if !path.contains("assets") {
            assert_eq!(header("cache-control"), "private, no-store", "{path}");
        }
    }
    let page = get(&app, "/jobs").await;
    assert!(!page.body.contains("<script>"), "no inline script");
    assert!(!page.body.contains("style=\""), "no inline style");
}

#[tokio::test]
async fn attacker_controlled_text_is_escaped_everywhere() {
    let redis = TestRedis::start();
    let client = redis.client();
    let attacks = [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "javascript:alert(1)",
    ];
    for (n, attack) in attacks.iter().enumerate() {
        let payload = json!({
            "class": attack, "args": [attack, {"k": attack}], "jid": format!("x{n}"),
            "queue": attack, "retry": true, "retry_count": 1, "error_class": attack,
            "error_message": attack, "tags": [attack], "failed_at": now(),
            "enqueued_at": now(), "created_at": now(), attack.to_string(): attack,
        })
        .to_string();
        let mut raw = redis.raw().await;
        let _: () = raw
            .lpush(format!("queue:{attack}"), &payload)
            .await
            .unwrap();
        let _: () = raw.sadd("queues", *attack).await.unwrap();
        redis.zadd("retry", now() + 60.0 + n as f64, &payload).await;
        redis.zadd("dead", now() - n as f64, &payload).await;
        redis
            .zadd("schedule", now() + 600.0 + n as f64, &payload)
            .await;
    }
    redis
        .zadd("dead", now() - 100.0, "<script>alert('raw')</script>")
        .await;
    let app = app(&client);

    let mut pages = vec![
        "/jobs".to_owned(),
        "/jobs/queues".to_owned(),
        "/jobs/retries".to_owned(),
        "/jobs/scheduled".to_owned(),
        "/jobs/morgue".to_owned(),
        "/jobs/morgue?substr=%3Cscript%3E".to_owned(),
    ];
    for attack in attacks {
        pages.push(format!("/jobs/queues/{}", percent_encoded(attack)));
    }
    let sets = [
        (
            "retries",
            RetrySet::new(&client).page(Page::first(10)).await.unwrap(),
        ),
        (
            "morgue",
            DeadSet::new(&client).page(Page::first(10)).await.unwrap(),
        ),
        (
            "scheduled",
            ScheduledSet::new(&client)
                .page(Page::first(10))
                .await
                .unwrap(),
        ),
    ];
    for (slug, entries) in sets {
        for entry in entries {
            pages.push(format!("/jobs/{slug}/{}", percent_encoded(&entry.key())));
        }
    }
    assert_eq!(pages.len(), 6 + 3 + 3 + 4 + 3, "every attack has its pages");
    for page in &pages {
        let reply = get(&app, page).await;
        assert_eq!(reply.status, StatusCode::OK, "{page}");
        for danger in [
            "<script>alert",
            "<img src=x",
            "href=\"javascript:",
            "onerror=alert(1)>",
        ] {
            assert!(
                !reply.body.contains(danger),
                "{page} shows {danger} unescaped"
            );
        }
    }
    let dead = get(&app, "/jobs/morgue").await.body;
    assert!(dead.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        dead.contains("&lt;script&gt;alert('raw')&lt;/script&gt;")
            || dead.contains("&lt;script&gt;alert(&#39;raw&#39;)")
    );
    assert!(
        dead.contains("not a job"),
        "an entry that is not JSON is still listed"
    );
}

#[tokio::test]
async fn inputs_are_capped_and_checked() {
    let redis = TestRedis::start();
    seed(&redis).await;
    let app = app(&redis.client());
    assert_eq!(
        get(&app, "/jobs?days=3650").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&app, "/jobs?days=abc").await.status,
        StatusCode::BAD_REQUEST
    );
    let long = "a".repeat(101);
    assert_eq!(
        get(&app, &format!("/jobs/retries?substr={long}"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&app, &format!("/jobs/retries?substr={}", &long[1..]))
            .await
            .status,
        StatusCode::OK
    );
    let far = get(&app, "/jobs/morgue?page=999999999999").await;
    assert_eq!(far.status, StatusCode::OK);
    assert!(far.body.contains("Nothing here"));
    let bad = post(&app, "/jobs/retries/all/explode", &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("retry, delete, kill"));
    let js = get(&app, "/jobs/assets/app.js").await.body;
    assert!(
        js.contains("Math.max(2000"),
        "the poll interval has a floor of 2 s"
    );
}

#[tokio::test]
async fn basic_auth_guards_every_route() {
    let redis = TestRedis::start();
    let client = redis.client();
    let app = Router::new().nest(
        "/jobs",
        jobs::web::Dashboard::new(&client)
            .basic_auth("admin", "s3cret")
            .router(),
    );
    let anonymous = get(&app, "/jobs").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers.get("www-authenticate").is_some());
    for path in ["/jobs/retries", "/jobs/assets/app.css", "/jobs/stats"] {
        assert_eq!(
            get(&app, path).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let with = |credentials: &str| {
        use base64::Engine;
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        );
        Request::get("/jobs")
            .header("authorization", value)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send(&app, with("admin:wrong")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, with("root:s3cret")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, with("admin:s3cret")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reading_pages_never_writes() {
    let redis = TestRedis::start();
    seed(&redis).await;
    let reader = redis.client_as("reader", "-@write").await;
    let app = app(&reader);
    let retry = first_entry(&reader, SetKind::Retry).await;
    let dead = first_entry(&reader, SetKind::Dead).await;
    let pages = [
        "/jobs".to_owned(),
        "/jobs?days=90".to_owned(),
        "/jobs/stats".to_owned(),
        "/jobs/busy".to_owned(),
        "/jobs/queues".to_owned(),
        "/jobs/queues/default".to_owned(),
        "/jobs/retries".to_owned(),
        "/jobs/retries?substr=Flaky".to_owned(),
        format!("/jobs/retries/{}", retry.key()),
        "/jobs/scheduled".to_owned(),
        "/jobs/morgue".to_owned(),
        format!("/jobs/morgue/{}", dead.key()),
    ];
    for page in &pages {
        let reply = get(&app, page).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{page} needs a write: {}",
            reply.body
        );
    }
    // The same user cannot change anything, so the reads above proved something.
    let write = post(&app, "/jobs/morgue/all/delete", &[]).await;
    assert_eq!(write.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        write.body.contains("NOPERM") || write.body.contains("permission"),
        "{}",
        write.body
    );
}

#[tokio::test]
async fn a_worker_serves_the_dashboard_with_web() {
    let redis = TestRedis::start();
    let client = redis.client();
    let port = crate::support::free_port();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let flags = jobs::Worker::from_args(["worker", "--web", &port.to_string()]).unwrap();
    assert_eq!(
        flags.config().web,
        Some(address),
        "--web PORT is on loopback"
    );
    let running = RunningWorker::start(worker(&redis, &CallLog::default()).web(address));
    let mut page = String::new();
    eventually(
        Duration::from_secs(10),
        "the dashboard to answer",
        async || {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                return false;
            };
            let request = "GET /busy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
            stream.write_all(request.as_bytes()).await.unwrap();
            page.clear();
            stream.read_to_string(&mut page).await.unwrap();
            page.starts_with("HTTP/1.1 200") && page.contains("Concurrency")
        },
    )
    .await;
    let identity = &jobs::api::ProcessSet::new(&client).list().await.unwrap()[0].identity;
    assert!(page.contains(identity.as_str()), "the worker lists itself");
    running.stop(Duration::from_secs(10)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the dashboard stops with the worker"
    );
}

#[tokio::test]
async fn a_taken_web_port_stops_the_worker_before_it_takes_a_job() {
    let redis = TestRedis::start();
    let client = redis.client();
    client.perform_async(Slow { millis: 10 }).await.unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let log = CallLog::default();
    let run = worker(&redis, &log)
        .web(address)
        .run_until(std::future::pending());
    let error = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the worker stops at start instead of running")
        .unwrap_err();
    assert!(
        error.to_string().contains("cannot serve the dashboard"),
        "{error}"
    );
    assert_eq!(
        redis.queue("default").await.len(),
        1,
        "the job is still queued"
    );
    assert!(log.entries().is_empty());
}

/// Counts the rows of a list: each carries `marker` (`data-queue="`, a process's identity…).
fn rows(body: &str, marker: &str) -> usize {
    body.matches(marker).count()
}

#[tokio::test]
async fn the_queues_page_pages_many_queues_and_shows_their_total() {
    let redis = TestRedis::start();
    let client = redis.client();
    // 230 queues of one job each, as a producer pushing to them leaves them.
    let mut pipeline = redis::pipe();
    for n in 0..230 {
        let name = format!("q{n:03}");
        pipeline.sadd("queues", &name).ignore();
        pipeline
            .lpush(
                format!("queue:{name}"),
                json!({"class": "Work", "args": [n], "jid": format!("j{n}"), "queue": name,
                    "enqueued_at": now()})
                .to_string(),
            )
            .ignore();
    }
    let _: () = pipeline.query_async(&mut redis.raw().await).await.unwrap();
    let app = app(&client);

    let first = get(&app, "/jobs/queues").await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.body.contains("230 queues"), "the total is shown");
    assert_eq!(rows(&first.body, "data-queue=\""), 100, "a page of 100");
    assert!(first.body.contains("data-queue=\"q000\""));
    assert!(!first.body.contains("data-queue=\"q100\""));
    assert!(
        first.body.contains("href=\"/jobs/queues?page=3\""),
        "the pager links the last page"
    );

    let last = get(&app, "/jobs/queues?page=3").await;
    assert_eq!(rows(&last.body, "data-queue=\""), 30);
    assert!(last.body.contains("data-queue=\"q229\""));

    // A filter on the name keeps its matches, counted, and pages them.
    let filtered = get(&app, "/jobs/queues?substr=q22").await;
    assert!(filtered.body.contains("10 matching"), "{}", filtered.body);
    assert_eq!(rows(&filtered.body, "data-queue=\""), 10);
    // The summary still counts every queue's jobs.
    let stats: serde_json::Value =
        serde_json::from_str(&get(&app, "/jobs/stats").await.body).unwrap();
    assert_eq!(stats["enqueued"], 230);
}

#[tokio::test]
async fn the_busy_page_pages_many_processes_and_counts_them_all() {
    let redis = TestRedis::start();
    let client = redis.client();
    // 120 processes, each running one job, as their heartbeats write them.
    let mut pipeline = redis::pipe();
    for n in 0..120 {
        let identity = format!("host-{n:03}:{n}:0123456789ab");
        let info = json!({"hostname": format!("host-{n:03}"), "pid": n, "identity": identity,
            "queues": ["default"], "concurrency": 2, "started_at": now()});
        pipeline.sadd("processes", &identity).ignore();
        pipeline
            .hset_multiple(
                &identity,
                &[
                    ("info", info.to_string()),
                    ("busy", "1".to_owned()),
                    ("beat", now().to_string()),
                    ("quiet", "false".to_owned()),
                ],
            )
            .ignore();
        let payload = json!({"class": format!("Job{n:03}"), "args": [], "jid": format!("j{n}"),
            "queue": "default"})
        .to_string();
        pipeline
            .hset(
                format!("{identity}:work"),
                "tid-1",
                json!({"queue": "default", "payload": payload, "run_at": now() - f64::from(n)})
                    .to_string(),
            )
            .ignore();
    }
    let _: () = pipeline.query_async(&mut redis.raw().await).await.unwrap();
    let app = app(&client);

    let first = get(&app, "/jobs/busy").await;
    assert_eq!(first.status, StatusCode::OK);
    // The cards count every process: 120 processes, 240 of concurrency, 120 busy.
    for card in ["120", "240", "50%"] {
        assert!(
            first
                .body
                .contains(&format!("<span class=\"value\">{card}</span>")),
            "the card {card}"
        );
    }
    assert_eq!(
        rows(&first.body, ":0123456789ab</span>"),
        50,
        "a page of 50"
    );
    assert!(first.body.contains("host-000:0:0123456789ab"));
    assert!(!first.body.contains("host-050:50:0123456789ab"));
    assert!(
        first.body.contains("on the processes of this page"),
        "the running jobs are those of the page's processes"
    );
    assert!(first.body.contains("Job049") && !first.body.contains("Job050"));

    let last = get(&app, "/jobs/busy?page=3").await;
    assert_eq!(rows(&last.body, ":0123456789ab</span>"), 20);
    assert!(last.body.contains("host-119:119:0123456789ab"));
    assert!(last.body.contains("Job119"));
}

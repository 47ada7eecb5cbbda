//! Hostile data in Redis against the admin API and the dashboard: entries that are not UTF-8,
//! sets too large to search whole, limits too large for Lua. Every entry is written with raw
//! Redis commands, as another producer (or an attacker with Redis access) could write it.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use jobs::Payload;
use jobs::api::{
    DeadLimits, DeadSet, JobSet, Order, Page, Queue, RetrySet, ScheduledSet, SetKind, Stats,
};
use redis::AsyncCommands;
use serde_json::json;
use tower::ServiceExt;

use crate::support::{TestRedis, now};

/// A job whose first byte is not UTF-8: redis-rs refuses to read it as a `String`.
const NOT_UTF8: &[u8] = b"\xff{\"class\":\"X\"}";

/// Where the tests put [`NOT_UTF8`] in each sorted set, and the dashboard key that names it
/// there (`<score>-<jid>`; an entry that is not a job has no jid).
const RETRY_AT: f64 = 1_900_000_000.5;
const SCHEDULED_AT: f64 = 1_900_000_100.25;

/// The dashboard mounted as an app would mount it.
fn app(client: &jobs::Client) -> Router {
    Router::new().nest("/jobs", jobs::web::router(client))
}

/// `GET path`: the status and the body.
async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// A POST as a browser sends it from the dashboard's own page: the status.
async fn post(app: &Router, path: &str, fields: &[(&str, &str)]) -> StatusCode {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        body.append_pair(name, value);
    }
    let request = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(body.finish()))
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

/// One good job in `default` with [`NOT_UTF8`] behind it as the oldest entry (the next a
/// worker takes, the one latency reads), and [`NOT_UTF8`] in `retry`, `schedule` and `dead`;
/// returns its score in `dead` (recent, so a kill's trim by age keeps it).
async fn plant_non_utf8(redis: &TestRedis) -> f64 {
    let dead_at = (now() - 60.0).floor();
    redis
        .client()
        .push(Payload::new("GoodJob", vec![json!("fine")]))
        .await
        .unwrap();
    let mut raw = redis.raw().await;
    let _: () = raw.rpush("queue:default", NOT_UTF8).await.unwrap();
    let _: () = raw.zadd("retry", NOT_UTF8, RETRY_AT).await.unwrap();
    let _: () = raw.zadd("schedule", NOT_UTF8, SCHEDULED_AT).await.unwrap();
    let _: () = raw.zadd("dead", NOT_UTF8, dead_at).await.unwrap();
    dead_at
}

/// The members of sorted set `key`, as bytes.
async fn members(redis: &TestRedis, key: &str) -> Vec<Vec<u8>> {
    redis.raw().await.zrange(key, 0, -1).await.unwrap()
}

#[tokio::test]
async fn a_non_utf8_entry_never_breaks_a_dashboard_page() {
    let redis = TestRedis::start();
    let dead_at = plant_non_utf8(&redis).await;
    let client = redis.client();
    let app = app(&client);

    let dead_key = format!("{dead_at}-");
    let mut pages = vec![
        "/jobs".to_owned(),
        "/jobs/stats".to_owned(),
        "/jobs/busy".to_owned(),
        "/jobs/queues".to_owned(),
        "/jobs/queues/default".to_owned(),
        "/jobs/queues/default?order=asc".to_owned(),
        format!("/jobs/retries/{RETRY_AT}-"),
        format!("/jobs/scheduled/{SCHEDULED_AT}-"),
        format!("/jobs/morgue/{dead_key}"),
    ];
    for slug in ["retries", "scheduled", "morgue"] {
        pages.push(format!("/jobs/{slug}"));
        pages.push(format!("/jobs/{slug}?order=asc"));
        pages.push(format!("/jobs/{slug}?substr=class"));
    }
    for page in &pages {
        let (status, body) = get(&app, page).await;
        assert_eq!(status, StatusCode::OK, "GET {page}: {body}");
    }

    // The entry shows as what it is: not a job, its bad byte replaced.
    for page in [
        "/jobs/queues/default",
        "/jobs/retries",
        "/jobs/morgue?substr=class",
    ] {
        let (_, body) = get(&app, page).await;
        assert!(body.contains("not a job"), "GET {page}: {body}");
        assert!(
            body.contains("\u{fffd}{&quot;class&quot;:&quot;X&quot;}"),
            "GET {page} shows the text: {body}"
        );
    }
    let (_, stats) = get(&app, "/jobs/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["enqueued"], 2);
    assert_eq!(
        stats["default_latency"], 0.0,
        "an entry with no time waits 0 s"
    );

    // Each can be deleted from its page, by the exact bytes stored.
    let status = post(
        &app,
        "/jobs/retries",
        &[("action", "delete"), ("key", &format!("{RETRY_AT}-"))],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(members(&redis, "retry").await.is_empty());
    let status = post(
        &app,
        &format!("/jobs/morgue/{dead_key}"),
        &[("action", "delete")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(members(&redis, "dead").await.is_empty());
    let (_, queue_page) = get(&app, "/jobs/queues/default").await;
    let field = "name=\"key_base64\" value=\"";
    let start = queue_page
        .find(field)
        .expect("a delete button for the entry")
        + field.len();
    let encoded = &queue_page[start..start + queue_page[start..].find('"').unwrap()];
    let status = post(
        &app,
        "/jobs/queues/default/delete",
        &[("key_base64", encoded)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let left: Vec<Vec<u8>> = redis
        .raw()
        .await
        .lrange("queue:default", 0, -1)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with(b"{"), "the good job stays");
}

#[tokio::test]
async fn the_admin_api_lists_and_deletes_a_non_utf8_entry() {
    let redis = TestRedis::start();
    plant_non_utf8(&redis).await;
    let client = redis.client();

    let stats = Stats::fetch(&client).await.unwrap();
    assert_eq!((stats.enqueued, stats.retry_size), (2, 1));
    assert_eq!(stats.default_queue_latency, 0.0);
    let queues = Stats::queues(&client).await.unwrap();
    assert_eq!((queues[0].1, queues[0].2), (2, 0.0));
    let queue = Queue::new(&client, "default");
    assert_eq!(queue.latency().await.unwrap(), 0.0);

    let page = queue
        .page(Page::numbered(1, 10, Order::OldestFirst))
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let bad = &page[0];
    assert!(!bad.is_job() && page[1].is_job());
    assert_eq!(bad.raw(), "\u{fffd}{\"class\":\"X\"}");
    assert_eq!(bad.raw_bytes(), NOT_UTF8);
    assert!(!bad.is_utf8());
    assert!(queue.find_job("nobody").await.unwrap().is_none());
    assert!(queue.delete(bad).await.unwrap(), "deleted by its bytes");
    assert_eq!(queue.size().await.unwrap(), 1);

    for kind in [SetKind::Retry, SetKind::Scheduled, SetKind::Dead] {
        let set = JobSet::new(&client, kind);
        let entries = set.page(Page::first(10)).await.unwrap();
        assert_eq!(entries.len(), 1, "{kind:?}");
        let entry = &entries[0];
        assert!(!entry.record.is_job());
        assert_eq!(entry.record.raw_bytes(), NOT_UTF8);
        let fetched = set.fetch_key(&entry.key()).await.unwrap();
        assert_eq!(fetched.as_ref(), Some(entry), "{kind:?} by key");
        let found = set.search("class", 10, Order::NewestFirst).await.unwrap();
        assert_eq!(found.entries, entries, "{kind:?}: a search reads it too");
        assert_eq!(
            set.retry(&entries).await.unwrap(),
            0,
            "not a job: left alone"
        );
        assert_eq!(set.add_to_queue(&entries).await.unwrap(), 0);
    }

    // Kill moves the exact bytes (the same member as the one in `dead`, which it rescores to
    // now); delete removes them.
    let retries = RetrySet::new(&client);
    let entries = retries.page(Page::first(10)).await.unwrap();
    assert_eq!(retries.kill(&entries).await.unwrap(), 1);
    assert!(members(&redis, "retry").await.is_empty());
    assert_eq!(members(&redis, "dead").await, [NOT_UTF8]);
    let dead = DeadSet::new(&client);
    let entries = dead.page(Page::first(10)).await.unwrap();
    assert!(entries[0].score > now() - 30.0, "killed just now");
    assert_eq!(dead.delete(&entries).await.unwrap(), 1);
    let scheduled = ScheduledSet::new(&client);
    let entries = scheduled.page(Page::first(10)).await.unwrap();
    assert_eq!(scheduled.delete(&entries).await.unwrap(), 1);
    for key in ["retry", "schedule", "dead"] {
        assert!(members(&redis, key).await.is_empty(), "{key} is empty");
    }
}

#[tokio::test]
async fn odd_names_and_running_jobs_never_break_a_page() {
    let redis = TestRedis::start();
    let client = redis.client();
    let identity = "web-1:42:0123456789ab";
    redis.embedded_heartbeat(identity).await;
    let mut raw = redis.raw().await;
    let _: () = raw.sadd("queues", b"\xffq".as_slice()).await.unwrap();
    let _: () = raw.sadd("processes", b"\xfe".as_slice()).await.unwrap();
    let running = [
        b"{\"queue\":\"default\",\"run_at\":1700000000,\"payload\":\"".as_slice(),
        b"\xff{\\\"class\\\":\\\"X\\\"}",
        b"\"}",
    ]
    .concat();
    let _: () = raw
        .hset(format!("{identity}:work"), "tid-1", running)
        .await
        .unwrap();
    let _: () = raw
        .hset(identity, "info", b"{\"hostname\":\"\xff\"}".as_slice())
        .await
        .unwrap();

    let app = app(&client);
    for page in ["/jobs", "/jobs/stats", "/jobs/busy", "/jobs/queues"] {
        let (status, body) = get(&app, page).await;
        assert_eq!(status, StatusCode::OK, "GET {page}: {body}");
    }
    let stats = Stats::fetch(&client).await.unwrap();
    assert_eq!(
        stats.processes_size, 1,
        "a name that is not UTF-8 is skipped"
    );
    let processes = jobs::api::ProcessSet::new(&client).list().await.unwrap();
    assert_eq!(processes.len(), 1);
    let work = jobs::api::WorkSet::new(&client).list().await.unwrap();
    assert_eq!(work.len(), 1);
    assert!(!work[0].record.is_job());
    assert!(Queue::all(&client).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_kill_with_no_dead_limit_moves_the_job_once() {
    let redis = TestRedis::start();
    let client = redis.client();
    let job = json!({"class": "A", "args": [], "jid": "k1", "queue": "default"}).to_string();
    redis.zadd("retry", now() + 60.0, &job).await;
    let unlimited = DeadLimits {
        max_jobs: usize::MAX,
        timeout: Duration::MAX,
    };
    let retries = RetrySet::new(&client).dead_limits(unlimited);
    let entries = retries.page(Page::first(10)).await.unwrap();
    assert_eq!(retries.kill(&entries).await.unwrap(), 1);
    let dead: Vec<String> = redis.raw().await.zrange("dead", 0, -1).await.unwrap();
    assert_eq!(dead, [job]);
    assert_eq!(retries.size().await.unwrap(), 0);

    // The dashboard, given the same limits, kills without a 503.
    let again = json!({"class": "A", "args": [], "jid": "k2", "queue": "default"}).to_string();
    redis.zadd("retry", now() + 60.0, &again).await;
    let app = Router::new().nest(
        "/jobs",
        jobs::web::Dashboard::new(&client)
            .dead_limits(unlimited)
            .router(),
    );
    let key = crate::support::first_entry(&client, SetKind::Retry)
        .await
        .key();
    let status = post(&app, "/jobs/retries", &[("action", "kill"), ("key", &key)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(DeadSet::new(&client).size().await.unwrap(), 2);
    assert_eq!(retries.size().await.unwrap(), 0);

    // Nor any limit at or past 1e17, where Redis 7.0 gets the rank as `-1e+17`: `i64::MAX - 1`
    // (9,223,372,036,854,775,806) is refused as `usize::MAX` is.
    for max_jobs in [
        usize::try_from(i64::MAX).unwrap() - 1,
        100_000_000_000_000_000,
    ] {
        let jid = format!("k{max_jobs}");
        let job = json!({"class": "A", "args": [], "jid": jid, "queue": "default"}).to_string();
        redis.zadd("retry", now() + 60.0, &job).await;
        let retries = RetrySet::new(&client).dead_limits(DeadLimits {
            max_jobs,
            ..DeadLimits::default()
        });
        let entries = retries.page(Page::first(10)).await.unwrap();
        assert_eq!(retries.kill(&entries).await.unwrap(), 1, "{max_jobs}");
    }
    assert_eq!(DeadSet::new(&client).size().await.unwrap(), 4);
}

#[tokio::test]
async fn a_search_of_a_huge_set_stops_and_says_so() {
    let redis = TestRedis::start();
    let client = redis.client();
    // 50,001 dead entries; only the oldest holds the needle.
    let mut raw = redis.raw().await;
    let mut zadd = redis::cmd("ZADD");
    zadd.arg("dead");
    zadd.arg(1_000.0)
        .arg(r#"{"jid":"oldest","args":["needle"]}"#);
    for n in 1..=50_000_u32 {
        zadd.arg(1_000.0 + f64::from(n))
            .arg(format!(r#"{{"jid":"j{n}","args":[]}}"#));
    }
    let _: () = zadd.query_async(&mut raw).await.unwrap();
    let app = app(&client);

    let (status, body) = get(&app, "/jobs/morgue?substr=needle").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("searched the newest 50,000 of 50,001 jobs"),
        "{body}"
    );
    assert!(
        body.contains("No job matches"),
        "the oldest was not searched"
    );
    let (_, body) = get(&app, "/jobs/morgue?substr=needle&order=asc").await;
    assert!(
        body.contains("&quot;needle&quot;"),
        "the oldest entry is found oldest first"
    );
    assert!(
        body.contains("searched the oldest 50,000 of 50,001 jobs"),
        "{body}"
    );
}

#[tokio::test]
async fn a_search_reads_at_most_what_it_is_allowed() {
    let redis = TestRedis::start();
    let client = redis.client();
    // 1,200 jobs at one score (a bulk push scheduled for one time), then 50 a second apart.
    let mut zadd = redis::cmd("ZADD");
    zadd.arg("retry");
    for n in 0..1_250_u32 {
        let score = if n < 1_200 { 100.0 } else { f64::from(n) };
        let job = json!({"class": "HardJob", "args": [n], "jid": format!("j{n}")});
        zadd.arg(score).arg(job.to_string());
    }
    let _: () = zadd.query_async(&mut redis.raw().await).await.unwrap();
    let retries = RetrySet::new(&client);
    let jids = |entries: &[jobs::api::SortedEntry]| {
        entries
            .iter()
            .map(|entry| entry.record.jid().to_owned())
            .collect::<std::collections::HashSet<_>>()
    };

    let before = redis.calls("zrevrangebyscore").await;
    let newest = retries
        .search_limited("HardJob", 10_000, Order::NewestFirst, 120)
        .await
        .unwrap();
    assert_eq!(
        redis.calls("zrevrangebyscore").await - before,
        1,
        "one read"
    );
    assert_eq!(
        (newest.scanned, newest.size, newest.partial),
        (120, 1_250, true)
    );
    assert_eq!(newest.entries.len(), 120);
    assert_eq!(newest.entries[0].record.jid(), "j1249");
    assert!(
        newest.entries[..50]
            .iter()
            .all(|entry| entry.score >= 1_200.0)
    );
    assert_eq!(jids(&newest.entries).len(), 120, "no entry twice");

    // Read whole, across windows that split the 1,200 equal scores: each entry once.
    let all = retries
        .search_limited("HardJob", 10_000, Order::OldestFirst, usize::MAX)
        .await
        .unwrap();
    assert_eq!((all.scanned, all.partial), (1_250, false));
    assert_eq!(jids(&all.entries).len(), 1_250);
    assert!(
        all.entries
            .windows(2)
            .all(|pair| pair[0].score <= pair[1].score)
    );

    // Stopping right at the end of the set is no stop.
    let exact = retries
        .search_limited("j12", 10_000, Order::NewestFirst, 1_250)
        .await
        .unwrap();
    assert!(!exact.partial);
    assert_eq!(
        exact.entries.len(),
        1 + 10 + 50,
        "j12, j120 to j129, j1200 to j1249"
    );

    // The match cap stops it too, and says so.
    let few = retries
        .search("HardJob", 10, Order::NewestFirst)
        .await
        .unwrap();
    assert_eq!(few.entries.len(), 10);
    assert!(few.partial);
}

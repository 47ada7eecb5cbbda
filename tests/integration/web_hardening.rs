//! The dashboard's hardening over HTTP, against a real Redis: one section per defence of
//! docs/dashboard.md ("What it does to stay safe") that the hardening review asked for.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::OriginalUri;
use axum::http::{Request, StatusCode};
use jobs::Payload;
use jobs::api::{Page, Queue, RetrySet, SetKind};
use jobs::web::Dashboard;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestRedis, first_entry};
use crate::web_http::{Reply, app, get, post, post_with, seed, send};

/// A GET of `path` sent to the host `host` (`None`: no `Host` header at all, as HTTP/1.0).
async fn get_for(app: &Router, host: Option<&str>, path: &str) -> Reply {
    let mut request = Request::get(path);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    send(app, request.body(Body::empty()).unwrap()).await
}

/// `credentials` (`user:password`) as basic auth sends them, in base64.
fn basic(credentials: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(credentials)
}

/// Fails the test unless `reply` carries every security header.
fn assert_security_headers(reply: &Reply, what: &str) {
    for name in [
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
    ] {
        assert!(reply.headers.contains_key(name), "{what} has no {name}");
    }
    assert_eq!(
        reply.headers["cache-control"], "private, no-store",
        "{what}"
    );
}

/// The `Set-Cookie` value of `reply`, which must set the CSRF cookie.
fn set_cookie(reply: &Reply) -> String {
    reply
        .headers
        .get("set-cookie")
        .expect("a CSRF cookie")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The token in a `Set-Cookie` value.
fn token_of(cookie: &str) -> String {
    cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

// 1. DNS rebinding: without a password, only requests for this machine's names are answered.

#[tokio::test]
async fn requests_for_other_host_names_are_refused_without_a_password() {
    let redis = TestRedis::start();
    seed(&redis).await;
    let client = redis.client();
    let app = app(&client);

    for host in [
        "localhost",
        "localhost:7433",
        "LocalHost:7433",
        "localhost.",
        "jobs.localhost:7433",
        "127.0.0.1",
        "127.0.0.1:7433",
        "127.4.5.6:80",
        "[::1]:7433",
        "[::1]",
        // No page can rebind an address, only a name: an address is always allowed, as
        // Rails' own development hosts allow every IPv4 and IPv6 address.
        "192.168.1.5:7433",
        "[fe80::1]:7433",
    ] {
        let reply = get_for(&app, Some(host), "/jobs/retries").await;
        assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.body);
    }

    for host in [
        "evil.example",
        "evil.example:7433",
        "127.0.0.1.evil.example",
        "localhost.evil.example:7433",
        "localhost:7433@evil.example",
    ] {
        let reply = get_for(&app, Some(host), "/jobs/retries").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{host}");
        assert!(
            !reply.body.contains("FlakyJob"),
            "{host} must not see the jobs"
        );
        assert!(reply.body.contains("allowed_hosts"), "{}", reply.body);
        assert_security_headers(&reply, host);
    }
    let refused = get_for(&app, Some("evil.example:7433"), "/jobs").await;
    assert!(
        refused.body.contains("evil.example:7433"),
        "the page names the host it refused: {}",
        refused.body
    );
    assert!(
        refused
            .body
            .contains("allowed_hosts([&quot;evil.example&quot;])"),
        "and says how to allow it: {}",
        refused.body
    );
    for path in ["/jobs/stats", "/jobs/assets/app.js"] {
        let reply = get_for(&app, Some("evil.example"), path).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
    }

    // The authority of an absolute-form request is the host it was sent to (RFC 9112 3.2.2).
    let absolute = send(
        &app,
        Request::get("http://evil.example/jobs/retries")
            .header("host", "localhost")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(absolute.status, StatusCode::FORBIDDEN);

    // A rebound page cannot post either.
    let post = post_with(
        &app,
        "/jobs/retries/all/delete",
        &[],
        &[("host", "evil.example"), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(post.status, StatusCode::FORBIDDEN);
    assert_eq!(RetrySet::new(&client).size().await.unwrap(), 1);

    // No Host at all (HTTP/1.0, a router called in-process): no browser sends that, so no
    // rebinding page can, and a client that leaves it out could as well say `localhost`.
    let bare = get_for(&app, None, "/jobs/retries").await;
    assert_eq!(bare.status, StatusCode::OK);
}

#[tokio::test]
async fn allowed_hosts_names_the_app_s_own_domains() {
    let redis = TestRedis::start();
    let client = redis.client();
    let app = Router::new().nest(
        "/jobs",
        Dashboard::new(&client)
            .allowed_hosts(["jobs.example.com", ".corp.example", "Upper.Example:8443"])
            .router(),
    );
    for host in [
        "jobs.example.com",
        "JOBS.example.com:443",
        "jobs.example.com.",
        "corp.example",
        "a.b.corp.example:8080",
        "upper.example",
        "localhost:3000",
        "127.0.0.1",
    ] {
        assert_eq!(
            get_for(&app, Some(host), "/jobs").await.status,
            StatusCode::OK,
            "{host}"
        );
    }
    for host in [
        "example.com",
        "evil-jobs.example.com",
        "xcorp.example",
        "corp.example.evil",
    ] {
        assert_eq!(
            get_for(&app, Some(host), "/jobs").await.status,
            StatusCode::FORBIDDEN,
            "{host}"
        );
    }

    let any = Router::new().nest(
        "/jobs",
        Dashboard::new(&client).allowed_hosts(["*"]).router(),
    );
    assert_eq!(
        get_for(&any, Some("whatever.example"), "/jobs")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn with_basic_auth_any_host_is_answered() {
    let redis = TestRedis::start();
    let client = redis.client();
    let app = Router::new().nest(
        "/jobs",
        Dashboard::new(&client)
            .basic_auth("admin", "s3cret")
            .router(),
    );
    let signed_in = send(
        &app,
        Request::get("/jobs")
            .header("host", "jobs.example.com")
            .header("authorization", format!("Basic {}", basic("admin:s3cret")))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(signed_in.status, StatusCode::OK);
    let anonymous = get_for(&app, Some("jobs.example.com"), "/jobs").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

// 2. Body floods: the CSRF check from headers runs first; forms are capped.

/// `app` served on a free loopback port until the test ends.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Sends `head` (request line and headers, up to the empty line) and then `body` from a task
/// of its own, and returns the answer's head and body as text; `None` when no answer came
/// within 5 s. A body announced but never sent in full keeps any server that reads it from
/// answering, so an answer proves the server did not wait for it.
async fn exchange(address: SocketAddr, head: &str, body: Vec<u8>) -> Option<String> {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = head.to_owned();
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        // Keep the connection open: the rest of the body never comes.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(writer);
    });
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        let mut answer = Vec::new();
        let mut buffer = [0_u8; 4096];
        loop {
            let read = reader.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .ok();
    sending.abort();
    answer
}

/// The head of a form POST to `path` announcing `length` bytes, with `extra` header lines.
fn form_head(path: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {length}\r\n{extra}\r\n"
    )
}

/// `a&a&a&…`, `bytes` long: the form that parses into the most fields per byte.
fn flood(bytes: usize) -> Vec<u8> {
    b"a&".iter().copied().cycle().take(bytes).collect()
}

#[tokio::test]
async fn a_cross_site_flood_is_refused_before_its_body_is_read() {
    let redis = TestRedis::start();
    let address = serve(app(&redis.client())).await;
    let four_mib = 4 * 1024 * 1024;
    // The first 64 KiB of a 4 MiB `a&a&…` body; the rest never comes.
    for extra in [
        "Sec-Fetch-Site: cross-site\r\n",
        "Sec-Fetch-Site: same-site\r\n",
        // A browser without fetch metadata still sends Origin on a cross-origin POST.
        "Origin: https://evil.example\r\n",
        // Nothing at all, and no CSRF cookie: the token cannot match, whatever the body says.
        "",
    ] {
        let answer = exchange(
            address,
            &form_head("/jobs/busy", four_mib, extra),
            flood(64 * 1024),
        )
        .await
        .unwrap_or_else(|| panic!("[{extra:?}] no answer: the server waited for the body"));
        assert!(answer.starts_with("HTTP/1.1 403"), "[{extra:?}] {answer}");
        assert!(answer.contains("content-security-policy"), "{answer}");
    }
}

#[tokio::test]
async fn an_oversized_form_is_refused_with_413_without_reading_the_rest() {
    let redis = TestRedis::start();
    let client = redis.client();
    let address = serve(app(&client)).await;
    let same_origin = "Sec-Fetch-Site: same-origin\r\n";

    // Announced too long: refused before a byte of it is read.
    let announced = exchange(
        address,
        &form_head("/jobs/busy", 64 * 1024 * 1024, same_origin),
        Vec::new(),
    )
    .await
    .expect("an answer without the body");
    assert!(announced.starts_with("HTTP/1.1 413"), "{announced}");
    assert!(announced.contains("bytes"), "{announced}");

    // The flood of the other test, from the dashboard's own origin: too long as announced.
    let four_mib = 4 * 1024 * 1024;
    let flooded = exchange(
        address,
        &form_head("/jobs/busy", four_mib, same_origin),
        flood(64 * 1024),
    )
    .await
    .expect("an answer without the rest of the body");
    assert!(flooded.starts_with("HTTP/1.1 413"), "{flooded}");

    // Chunked, so nothing announces the length: refused once the cap is passed, while the
    // body is still unfinished (no last chunk is ever sent).
    let chunk = vec![b'a'; 256 * 1024];
    let mut chunks = Vec::new();
    for _ in 0..16 {
        chunks.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunks.extend_from_slice(&chunk);
        chunks.extend_from_slice(b"\r\n");
    }
    let head = "POST /jobs/retries/all/delete HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/x-www-form-urlencoded\r\n\
                Transfer-Encoding: chunked\r\nSec-Fetch-Site: same-origin\r\n\r\n";
    let streamed = exchange(address, head, chunks)
        .await
        .expect("an answer before the body ends");
    assert!(streamed.starts_with("HTTP/1.1 413"), "{streamed}");

    // Small in bytes, but too many fields.
    let app = app(&client);
    let fields: Vec<(&str, &str)> = std::iter::repeat_n(("a", ""), 201).collect();
    let many = post(&app, "/jobs/busy", &fields).await;
    assert_eq!(many.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", many.body);
    assert!(many.body.contains("fields"), "{}", many.body);
}

#[tokio::test]
async fn the_largest_forms_the_pages_make_still_pass() {
    let redis = TestRedis::start();
    let client = redis.client();
    let app = app(&client);

    // A queue's Delete button posts the job as stored (`key_val`), and a form encodes each
    // byte outside letters, digits and `*-._` as three: a job near the client's 1 MiB cap is
    // a form of 3 MiB.
    let big = "{".repeat(jobs::DEFAULT_MAX_PAYLOAD_BYTES - 200);
    client
        .push(Payload::new("BigJob", vec![json!(big)]))
        .await
        .unwrap();
    let job = Queue::new(&client, "default")
        .page(Page::first(1))
        .await
        .unwrap()
        .remove(0);
    let encoded: usize = form_urlencoded::byte_serialize(job.raw().as_bytes())
        .map(str::len)
        .sum();
    assert!(encoded > 3 * 1024 * 1024 - 1024, "{encoded}");
    let deleted = post(
        &app,
        "/jobs/queues/default/delete",
        &[("key_val", job.raw())],
    )
    .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    assert!(redis.queue("default").await.is_empty());

    // A page of retries, every box ticked.
    for n in 0..25 {
        redis
            .zadd(
                "retry",
                crate::support::now() + 60.0 + f64::from(n),
                &json!({"class": "A", "args": [], "jid": format!("j{n}"), "queue": "q"})
                    .to_string(),
            )
            .await;
    }
    let keys: Vec<String> = RetrySet::new(&client)
        .page(Page::first(25))
        .await
        .unwrap()
        .iter()
        .map(jobs::api::SortedEntry::key)
        .collect();
    let mut fields = vec![("action", "delete")];
    fields.extend(keys.iter().map(|key| ("key", key.as_str())));
    let reply = post(&app, "/jobs/retries", &fields).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(RetrySet::new(&client).size().await.unwrap(), 0);
}

// 3. An empty password is a mistake, not a password.

#[tokio::test]
#[should_panic(expected = "basic_auth was given an empty password")]
async fn an_empty_password_is_refused() {
    let redis = TestRedis::start();
    let _ = Dashboard::new(&redis.client()).basic_auth("admin", "");
}

// 4. Basic auth's 401, its scheme, and the CSRF cookie's prefix.

#[tokio::test]
async fn the_sign_in_answer_carries_the_security_headers() {
    let redis = TestRedis::start();
    let app = Router::new().nest(
        "/jobs",
        Dashboard::new(&redis.client())
            .basic_auth("admin", "s3cret")
            .router(),
    );
    let reply = get(&app, "/jobs").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_security_headers(&reply, "the 401");
}

#[tokio::test]
async fn the_basic_scheme_is_matched_in_any_case() {
    let redis = TestRedis::start();
    let app = Router::new().nest(
        "/jobs",
        Dashboard::new(&redis.client())
            .basic_auth("admin", "s3cret")
            .router(),
    );
    for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
        let reply = send(
            &app,
            Request::get("/jobs")
                .header(
                    "authorization",
                    format!("{scheme} {}", basic("admin:s3cret")),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{scheme}");
    }
    let wrong = send(
        &app,
        Request::get("/jobs")
            .header("authorization", format!("Basicx {}", basic("admin:s3cret")))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_csrf_cookie_takes_the_host_prefix_over_https_at_the_root() {
    let redis = TestRedis::start();
    seed(&redis).await;
    let client = redis.client();
    let https = |path: &str| {
        Request::get(path)
            .header("x-forwarded-proto", "https")
            .body(Body::empty())
            .unwrap()
    };

    // At the root over HTTPS: `__Host-`, which a sibling subdomain cannot set.
    let root = jobs::web::router(&client);
    let cookie = set_cookie(&send(&root, https("/retries")).await);
    assert!(cookie.starts_with("__Host-jobs_csrf="), "{cookie}");
    assert!(
        cookie.contains("; Path=/;") && cookie.contains("Secure"),
        "{cookie}"
    );
    let token = token_of(&cookie);
    let form = [("authenticity_token", token.as_str())];
    let path = "/retries/all/delete";
    let plain = format!("jobs_csrf={token}");
    let refused = post_with(
        &root,
        path,
        &form,
        &[("cookie", &plain), ("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "the unprefixed name, which anyone on a sibling domain can set, is not read"
    );
    let prefixed = format!("__Host-jobs_csrf={token}");
    let accepted = post_with(
        &root,
        path,
        &form,
        &[("cookie", &prefixed), ("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    assert_eq!(RetrySet::new(&client).size().await.unwrap(), 0);

    // Under a path, or over plain HTTP, `__Host-` is not possible: the name stays.
    let nested = app(&client);
    let cookie = set_cookie(&send(&nested, https("/jobs/retries")).await);
    assert!(cookie.starts_with("jobs_csrf="), "{cookie}");
    assert!(
        cookie.contains("Path=/jobs;") && cookie.contains("Secure"),
        "{cookie}"
    );
    let cookie = set_cookie(&get(&root, "/retries").await);
    assert!(cookie.starts_with("jobs_csrf="), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

// 5. The mount path, taken from the request, is checked before it reaches a link, a
//    redirect or a cookie.

#[tokio::test]
async fn a_mount_path_unfit_for_links_and_cookies_is_refused() {
    let redis = TestRedis::start();
    seed(&redis).await;
    let client = redis.client();
    // An app that nests the dashboard under a path parameter: the client picks the mount.
    let tenants = Router::new().nest("/{tenant}", jobs::web::router(&client));
    let fine = get(&tenants, "/acme/retries").await;
    assert_eq!(fine.status, StatusCode::OK);
    assert!(fine.body.contains("href=\"/acme/scheduled\""));
    assert!(set_cookie(&fine).contains("Path=/acme;"));

    for path in [
        "/a;b/retries",
        "/a;%20Domain=evil.example/retries",
        "/a,b/retries",
        "/a\\b/retries",
        "/a\"b/retries",
    ] {
        let reply = get(&tenants, path).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.body
        );
        assert!(reply.headers.get("set-cookie").is_none(), "{path}");
        assert!(reply.body.contains("mount"), "{path}: {}", reply.body);
    }

    // An app that rewrites paths could hand the router a mount of `//host` (or `/\host`, which
    // browsers read the same way): a redirect there would leave the site.
    let dashboard = jobs::web::router(&client);
    let entry = first_entry(&client, SetKind::Retry).await;
    for original in ["//evil.example/retries", "/\\evil.example/retries"] {
        let mut request = Request::post("/retries")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .body(Body::from(format!(
                "action=delete&key={}",
                form_urlencoded::byte_serialize(entry.key().as_bytes()).collect::<String>()
            )))
            .unwrap();
        request
            .extensions_mut()
            .insert(OriginalUri(original.parse().unwrap()));
        let reply = send(&dashboard, request).await;
        assert!(
            !reply.location().starts_with("//") && !reply.location().starts_with("/\\"),
            "redirected off-site to {}",
            reply.location()
        );
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{original}");
    }
    assert_eq!(
        RetrySet::new(&client).size().await.unwrap(),
        1,
        "nothing was done"
    );
}

// 6. The mount path answers with and without a trailing slash.

#[tokio::test]
async fn nested_as_a_service_it_answers_with_and_without_a_slash() {
    let redis = TestRedis::start();
    seed(&redis).await;
    let client = redis.client();
    let app = Router::new().nest_service("/jobs", jobs::web::router(&client));
    for path in ["/jobs", "/jobs/", "/jobs/?days=7"] {
        let page = get(&app, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(page.body.contains("<h1>Dashboard</h1>"), "{path}");
        assert!(
            page.body.contains("href=\"/jobs/retries\""),
            "{path}: links stay under the mount"
        );
        assert!(set_cookie(&page).contains("Path=/jobs;"), "{path}");
    }
    assert_eq!(get(&app, "/jobs/retries").await.status, StatusCode::OK);
    let deleted = post(&app, "/jobs/retries/all/delete", &[]).await;
    assert_eq!(deleted.location(), "/jobs/retries");
    let missing = get(&app, "/jobs/nothing-here").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_security_headers(&missing, "the 404");

    // `nest` cannot do it, whatever the dashboard does: axum 0.8 routes the nested router's
    // `/` at `/jobs` only, and `/jobs/` to the app's own fallback (a fallback of the
    // dashboard's would not get it either, and would make `nest("/{tenant}", …)` panic).
    let nested = Router::new()
        .nest("/jobs", jobs::web::router(&client))
        .fallback(|| async { "the app's fallback" });
    assert_eq!(get(&nested, "/jobs").await.status, StatusCode::OK);
    assert_eq!(get(&nested, "/jobs/").await.body, "the app's fallback");
}

// 7. The footer shows the Redis URL without a password typed in the user's place.

#[tokio::test]
async fn the_footer_hides_a_password_typed_as_the_user() {
    let redis = TestRedis::start();
    // redis-rs reads `secret` as a user name and sends no AUTH, so this server (no password)
    // still answers; Sidekiq's redis-client and redis-cli would send it as the password.
    let client = jobs::Client::builder()
        .url(format!("redis://s3cret@127.0.0.1:{}/0", redis.port()))
        .build()
        .unwrap();
    let page = get(&app(&client), "/jobs").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("s3cret"), "the footer leaks it");
    assert!(
        page.body.contains("redis://***@127.0.0.1:"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn redis_cli_reads_a_lone_user_as_the_password() {
    // Why a lone user name is redacted: Redis's own tool takes it as the password.
    let redis = TestRedis::start_with_password("s3cret");
    let output = std::process::Command::new("redis-cli")
        .arg("-u")
        .arg(format!("redis://s3cret@127.0.0.1:{}/0", redis.port()))
        .arg("PING")
        .output()
        .expect("redis-cli");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.trim(), "PONG", "{stdout}");
}

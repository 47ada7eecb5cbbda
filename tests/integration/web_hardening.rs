//! The dashboard's hardening over HTTP, against a real Redis: one section per defence of
//! docs/dashboard.md ("What it does to stay safe") that the hardening review asked for.

use axum::Router;
use axum::body::Body;
use axum::extract::OriginalUri;
use axum::http::{Request, StatusCode};
use jobs::api::{RetrySet, SetKind};
use jobs::web::Dashboard;

use crate::support::{TestRedis, first_entry};
use crate::web_http::{Reply, app, get, post_with, seed, send};

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

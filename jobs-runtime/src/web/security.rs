//! The dashboard's defences: response headers, the `Host` check, the CSRF token (its cookie
//! and form field) and the check on POSTs, and basic auth.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, HOST, ORIGIN, REFERRER_POLICY,
    WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::failure::Failure;
use super::format;

/// The cookie that holds the CSRF token (double submit: each form carries it too).
pub(crate) const CSRF_COOKIE: &str = "jobs_csrf";

/// The CSRF cookie's name when the dashboard is served over HTTPS at the root of its site. A
/// browser keeps a `__Host-` cookie only if it is `Secure`, has `Path=/` and names no domain,
/// so a sibling subdomain cannot plant one (cookie tossing).
pub(crate) const CSRF_COOKIE_HOST_ONLY: &str = "__Host-jobs_csrf";

/// The form field that carries the CSRF token, named as in Sidekiq's forms.
pub(crate) const CSRF_FIELD: &str = "authenticity_token";

/// Scripts, styles and images from the dashboard itself only; no inline script or style, no
/// plugins, no framing, forms posting only to the dashboard's own origin.
pub(crate) const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// Adds the security headers to every response, and `Cache-Control: private, no-store` to
/// every response that sets no caching of its own.
pub(crate) async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("private, no-store"));
    response
}

/// The host a request was sent to, as it names it: the authority of its target when it has
/// one (HTTP/2's `:authority`, or an absolute-form HTTP/1.1 target, which wins over `Host` by
/// RFC 9112 §3.2.2), else its `Host` header.
pub(crate) fn request_host(parts: &Parts) -> Option<&str> {
    match parts.uri.authority() {
        Some(authority) => Some(authority.as_str()),
        None => parts.headers.get(HOST).and_then(|host| host.to_str().ok()),
    }
}

/// The host names a dashboard without a password answers for, beyond this machine's own.
///
/// A page on any site can have the browser send requests to a name of its own, then point that
/// name at 127.0.0.1 (DNS rebinding). The browser then counts the requests as same-origin, and
/// they reach the dashboard with the attacker's name in `Host`. So without a password the
/// dashboard answers only for what no one else can point here: `localhost` and `*.localhost`
/// (RFC 6761; browsers resolve them to loopback themselves), and IP addresses, which involve no
/// name at all (Rails' development hosts allow the same). Any other name must be listed.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedHosts {
    /// Names as given, lowercased, without port or final dot. One that starts with a dot allows
    /// the name after the dot and its subdomains.
    names: Vec<String>,
    /// `*` was listed: every host.
    any: bool,
}

impl AllowedHosts {
    /// Allows `entry`: a host name (`jobs.example.com`; a port is ignored), `.example.com` for
    /// that name and its subdomains, or `*` for any host.
    pub(crate) fn add(&mut self, entry: &str) {
        match entry.trim() {
            "*" => self.any = true,
            "" => {}
            entry => self.names.push(host_name(entry)),
        }
    }

    /// Whether a request sent to the authority `host` (`name[:port]`) is answered.
    fn allows(&self, host: &str) -> bool {
        let name = host_name(host);
        self.any
            || is_this_machine(&name)
            || self
                .names
                .iter()
                .any(|allowed| match allowed.strip_prefix('.') {
                    Some(domain) => {
                        name == domain
                            || name
                                .strip_suffix(domain)
                                .is_some_and(|sub| sub.ends_with('.'))
                    }
                    None => name == *allowed,
                })
    }
}

/// The name in an authority, lowercased, without its port, brackets or final dot:
/// `Jobs.Example.com.:443` is `jobs.example.com`, `[::1]:7433` is `::1`.
fn host_name(authority: &str) -> String {
    let authority = authority.trim();
    let name = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed
            .split_once(']')
            .map_or(authority, |(address, _)| address),
        None => match authority.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => name,
            _ => authority,
        },
    };
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// `localhost`, a `*.localhost` name or an IP address: nothing another site can point here.
fn is_this_machine(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost") || name.parse::<IpAddr>().is_ok()
}

/// Answers 403 unless the request was sent to a host `hosts` allows; used when the dashboard
/// has no password. The page says which host was refused and how to allow it.
///
/// A request that names no host at all (HTTP/1.0 without `Host`, or a router called
/// in-process) is answered: a browser always names one, so rebinding cannot produce such a
/// request, and a client that leaves it out could as well send `Host: localhost`.
pub(crate) async fn require_allowed_host(
    hosts: Arc<AllowedHosts>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let refused = match request_host(&parts) {
        Some(host) if !hosts.allows(host) => host,
        _ => return next.run(Request::from_parts(parts, body)).await,
    };
    let message = format!(
        "This dashboard has no password, so it answers only requests sent to localhost or to \
         an IP address, never to a name that another site could point at this machine (DNS \
         rebinding). This request was sent to {}. To open the dashboard under that name, allow \
         it in your app with Dashboard::allowed_hosts([\"{}\"]), or give the dashboard a \
         password (Dashboard::basic_auth, or JOBS_WEB_PASSWORD for --web and the dashboard \
         example).",
        format::truncate(refused, 100),
        format::truncate(&host_name(refused), 100),
    );
    Failure::forbidden(message).into_response()
}

/// A fresh CSRF token: 32 random bytes in hex.
pub(crate) fn new_token() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether `token` looks like one [`new_token`] made.
pub(crate) fn is_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// The CSRF token in the request's cookie `name`, if it has a well-formed one.
pub(crate) fn cookie_token(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value.to_owned())
        .filter(|token| is_token(token))
}

/// What a POST's headers let through, decided before its body is read.
#[derive(Debug)]
pub(crate) enum PostCheck {
    /// The browser says the form comes from the dashboard's own origin: nothing else is asked.
    SameOrigin,
    /// No fetch metadata: the form's token must match this one, from the CSRF cookie.
    Token(String),
}

/// Checks a POST's headers, so that a form from elsewhere is refused before a byte of its body
/// is read:
/// - a browser that sends `Sec-Fetch-Site` must say `same-origin` (then nothing else is asked,
///   as in Sidekiq 8.1);
/// - without fetch metadata (an older browser, a script), an `Origin`, when sent, must name
///   `host`, the host the request was sent to, and the CSRF cookie named `cookie` must hold a
///   token for the form's to match ([`PostCheck::check_form`]).
pub(crate) fn check_post_headers(
    headers: &HeaderMap,
    host: Option<&str>,
    cookie: &str,
) -> Result<PostCheck, Failure> {
    match headers.get("sec-fetch-site").map(HeaderValue::to_str) {
        Some(Ok("same-origin")) => return Ok(PostCheck::SameOrigin),
        Some(_) => {
            return Err(Failure::forbidden(
                "this request came from another site (Sec-Fetch-Site), so it was refused",
            ));
        }
        None => {}
    }
    if let (Some(origin), Some(host)) = (headers.get(ORIGIN), host) {
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|origin| origin.split_once("://"))
            .map(|(_, host)| host.to_ascii_lowercase());
        if origin_host != Some(host.to_ascii_lowercase()) {
            return Err(Failure::forbidden(
                "this request came from another origin, so it was refused",
            ));
        }
    }
    cookie_token(headers, cookie)
        .map(PostCheck::Token)
        .ok_or_else(stale_token)
}

impl PostCheck {
    /// Lets the form through if its token matches the cookie's (when one is asked for); the
    /// tokens are compared in constant time.
    pub(crate) fn check_form(&self, form_token: Option<&str>) -> Result<(), Failure> {
        match (self, form_token) {
            (Self::SameOrigin, _) => Ok(()),
            (Self::Token(cookie), Some(form))
                if bool::from(cookie.as_bytes().ct_eq(form.as_bytes())) =>
            {
                Ok(())
            }
            (Self::Token(_), _) => Err(stale_token()),
        }
    }
}

fn stale_token() -> Failure {
    Failure::forbidden(
        "the form's security token is missing or stale; reload the page and try again",
    )
}

/// A user name and password, kept as the SHA-256 digest of `user:password`.
#[derive(Clone)]
pub(crate) struct BasicAuth {
    digest: [u8; 32],
}

impl BasicAuth {
    pub(crate) fn new(user: &str, password: &str) -> Self {
        Self {
            digest: Sha256::digest(format!("{user}:{password}")).into(),
        }
    }

    /// Whether an `Authorization` header value carries these credentials. The scheme's name is
    /// matched in any case (RFC 7617: `basic` is `Basic`). The digests are compared in
    /// constant time, so the time taken says nothing about the password.
    fn accepts(&self, header: &str) -> bool {
        let Some((scheme, encoded)) = header.trim_start().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("Basic") {
            return false;
        }
        let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(&decoded).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BasicAuth(***)")
    }
}

/// Answers 401 unless the request carries `auth`'s credentials.
pub(crate) async fn require_basic_auth(auth: BasicAuth, request: Request, next: Next) -> Response {
    let allowed = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|header| auth.accepts(header));
    if allowed {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"jobs\", charset=\"UTF-8\""),
        )],
        "sign in to see the jobs dashboard",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::{
        AllowedHosts, BasicAuth, CSRF_COOKIE, CSRF_COOKIE_HOST_ONLY, Failure, check_post_headers,
        host_name, is_token, new_token,
    };

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// Both halves of the check on a POST: its headers, then its form's token.
    fn check_post(headers: &HeaderMap, form_token: Option<&str>) -> Result<(), Failure> {
        let host = headers.get("host").and_then(|host| host.to_str().ok());
        check_post_headers(headers, host, CSRF_COOKIE)?.check_form(form_token)
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token(), new_token());
        assert!(is_token(&a) && is_token(&b));
        assert_ne!(a, b);
        assert!(!is_token("abc"));
    }

    #[test]
    fn posts_need_same_origin_or_the_token() {
        let token = new_token();
        let cookie = format!("jobs_csrf={token}");
        assert!(check_post(&headers(&[("sec-fetch-site", "same-origin")]), None).is_ok());
        assert!(check_post(&headers(&[("sec-fetch-site", "cross-site")]), Some(&token)).is_err());
        assert!(check_post(&headers(&[("sec-fetch-site", "same-site")]), None).is_err());
        assert!(check_post(&headers(&[("cookie", &cookie)]), Some(&token)).is_ok());
        assert!(check_post(&headers(&[("cookie", &cookie)]), Some(&new_token())).is_err());
        assert!(check_post(&headers(&[("cookie", &cookie)]), None).is_err());
        assert!(check_post(&headers(&[]), None).is_err());
        let foreign = headers(&[
            ("cookie", &cookie),
            ("origin", "https://evil.example"),
            ("host", "jobs.example"),
        ]);
        assert!(check_post(&foreign, Some(&token)).is_err());
        let own = headers(&[
            ("cookie", &cookie),
            ("origin", "https://Jobs.example"),
            ("host", "jobs.example"),
        ]);
        assert!(check_post(&own, Some(&token)).is_ok());
    }

    #[test]
    fn the_headers_alone_refuse_what_no_form_could_save() {
        let cookie = format!("jobs_csrf={}", new_token());
        let cross = headers(&[("sec-fetch-site", "cross-site"), ("cookie", &cookie)]);
        assert!(check_post_headers(&cross, None, CSRF_COOKIE).is_err());
        let foreign = headers(&[("origin", "https://evil.example"), ("cookie", &cookie)]);
        assert!(check_post_headers(&foreign, Some("jobs.example"), CSRF_COOKIE).is_err());
        assert!(
            check_post_headers(&headers(&[]), None, CSRF_COOKIE).is_err(),
            "no cookie, so no form token can match"
        );
        let plain = headers(&[("cookie", &cookie)]);
        assert!(
            check_post_headers(&plain, None, CSRF_COOKIE_HOST_ONLY).is_err(),
            "only the cookie name in use is read"
        );
    }

    #[test]
    fn basic_auth_checks_user_and_password() {
        let auth = BasicAuth::new("admin", "s3cret");
        assert!(auth.accepts("Basic YWRtaW46czNjcmV0"));
        assert!(auth.accepts("basic YWRtaW46czNjcmV0"));
        assert!(auth.accepts("BASIC   YWRtaW46czNjcmV0"));
        assert!(!auth.accepts("Basic YWRtaW46d3Jvbmc="));
        assert!(!auth.accepts("Bearer YWRtaW46czNjcmV0"));
        assert!(!auth.accepts("BasicYWRtaW46czNjcmV0"));
        assert!(!auth.accepts("Basic !!!"));
    }

    #[test]
    fn host_names_lose_port_brackets_case_and_final_dot() {
        assert_eq!(host_name("Jobs.Example.com.:443"), "jobs.example.com");
        assert_eq!(host_name("[::1]:7433"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
        assert_eq!(host_name("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(host_name("localhost"), "localhost");
        assert_eq!(host_name("a:b@evil"), "a:b@evil");
    }

    #[test]
    fn hosts_are_this_machine_or_listed() {
        let mut hosts = AllowedHosts::default();
        for host in [
            "localhost:1",
            "a.localhost",
            "127.0.0.1",
            "[::1]:80",
            "10.1.2.3",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "localhost.evil",
            "127.0.0.1.nip.io",
            "",
            "[::1",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }
        hosts.add("jobs.example.com:8443");
        hosts.add(".corp.example");
        assert!(hosts.allows("JOBS.example.com"));
        assert!(hosts.allows("corp.example") && hosts.allows("a.corp.example:1"));
        assert!(!hosts.allows("xcorp.example") && !hosts.allows("example.com"));
        hosts.add("*");
        assert!(hosts.allows("anything.example"));
    }
}

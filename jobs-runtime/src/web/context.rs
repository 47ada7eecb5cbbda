//! What each request knows: where the dashboard is mounted, the CSRF token, the time; and the
//! checked form of a POST.

use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::header::{CONTENT_LENGTH, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::Markup;

use super::Mounted;
use super::failure::Failure;
use super::format;
use super::security::{self, CSRF_COOKIE, CSRF_COOKIE_HOST_ONLY, CSRF_FIELD};
use crate::client::{Client, DEFAULT_MAX_PAYLOAD_BYTES};

/// The most bytes a form may have. The largest form a page makes is a queue's Delete button,
/// which posts the job as stored (`key_val`, as in Sidekiq). A form encodes every byte other
/// than letters, digits and `*-._` as three, so a job at the client's 1 MiB cap needs up to
/// 3 MiB; the token and the field names fit in the rest.
const MAX_FORM_BYTES: usize = 3 * DEFAULT_MAX_PAYLOAD_BYTES + 16 * 1024;

/// The most fields a form may have. The largest a page makes has 27: a page of 25 ticked
/// boxes, the action and the CSRF token. A cap keeps a small body of `a&a&…` from becoming
/// millions of fields in memory.
const MAX_FORM_FIELDS: usize = 200;

/// The request's context, for a handler.
pub(crate) struct Ctx {
    /// Where the dashboard is mounted, and whether it was asked for over HTTPS.
    mount: Mount,
    /// This browser's CSRF token.
    pub(crate) token: String,
    /// Whether the token is new, to be set as a cookie.
    new_token: bool,
    /// Now, once for the whole page.
    pub(crate) now: DateTime<Utc>,
    state: Arc<Mounted>,
}

impl Ctx {
    /// The client the dashboard reads.
    pub(crate) fn client(&self) -> &Client {
        &self.state.client
    }

    /// The sorted set of `kind`, trimming the dead set as configured.
    pub(crate) fn job_set(&self, kind: crate::api::SetKind) -> crate::api::JobSet {
        crate::api::JobSet::new(&self.state.client, kind).dead_limits(self.state.dead_limits)
    }

    /// The address of a dashboard page: `path` starts with `/`. The dashboard's own page is
    /// the mount path itself (`/jobs`, which every way of mounting it routes; `/jobs/` only
    /// `nest_service` does).
    pub(crate) fn url(&self, path: &str) -> String {
        let base = &self.mount.base;
        match path.strip_prefix('/') {
            Some(rest) if !base.is_empty() && (rest.is_empty() || rest.starts_with('?')) => {
                format!("{base}{rest}")
            }
            _ => format!("{base}{path}"),
        }
    }

    /// A page, with the CSRF cookie when the browser has none yet.
    pub(crate) fn html(&self, markup: Markup) -> Response {
        let mut response = Html(markup.into_string()).into_response();
        if self.new_token {
            let path = if self.mount.base.is_empty() {
                "/"
            } else {
                &self.mount.base
            };
            let secure = if self.mount.secure { "; Secure" } else { "" };
            let cookie = format!(
                "{}={}; Path={path}; HttpOnly; SameSite=Strict{secure}",
                self.mount.cookie_name(),
                self.token
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(SET_COOKIE, value);
            }
        }
        response
    }

    /// A redirect to the dashboard page at `path` (never to an address from the request).
    pub(crate) fn redirect(&self, path: &str) -> Response {
        let target = self.url(path);
        let target = if target.is_empty() {
            "/".to_owned()
        } else {
            target
        };
        match HeaderValue::from_str(&target) {
            Ok(location) => (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
}

impl FromRequestParts<Arc<Mounted>> for Ctx {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Mounted>,
    ) -> Result<Self, Self::Rejection> {
        let mount = Mount::of(parts)?;
        let (token, new_token) = match security::cookie_token(&parts.headers, mount.cookie_name()) {
            Some(token) => (token, false),
            None => (security::new_token(), true),
        };
        Ok(Self {
            mount,
            token,
            new_token,
            now: Utc::now(),
            state: Arc::clone(state),
        })
    }
}

/// Where the dashboard is mounted and how it was reached, as a request says: what links,
/// redirects and the CSRF cookie are made from.
struct Mount {
    /// The path the dashboard is mounted at, without a trailing slash (`""` at the root);
    /// checked by [`fit_for_links`].
    base: String,
    /// Whether the page was asked for over HTTPS (directly or through a proxy that says so),
    /// so the cookie is marked `Secure`.
    secure: bool,
}

impl Mount {
    /// The request's mount, refused (400) when its path cannot go into a link, a `Location` or
    /// a cookie's `Path=` as it is: the path comes from the request, and when an app nests the
    /// dashboard under a path parameter (`/{tenant}`), the client picks it.
    fn of(parts: &Parts) -> Result<Self, Failure> {
        let base = mount_path(parts);
        if !fit_for_links(&base) {
            return Err(Failure::bad_request(format!(
                "the dashboard cannot be used at the mount path {}: a mount path may hold only \
                 letters, digits, single slashes and -._~!$&'()*+=:@%, so that its links, \
                 redirects and cookie stay on this site",
                format::truncate(&base, 100)
            )));
        }
        let secure = parts.uri.scheme_str() == Some("https")
            || parts
                .headers
                .get("x-forwarded-proto")
                .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
        Ok(Self { base, secure })
    }

    /// The CSRF cookie's name: `__Host-jobs_csrf` when the browser would keep it (over HTTPS,
    /// at the root of the site), else `jobs_csrf`. Only this name is read back, so a cookie
    /// planted under the other name by a sibling subdomain is never taken.
    fn cookie_name(&self) -> &'static str {
        if self.secure && self.base.is_empty() {
            CSRF_COOKIE_HOST_ONLY
        } else {
            CSRF_COOKIE
        }
    }
}

/// Whether `base` can go as it is into an `href`, a `Location` and a cookie's `Path=`: empty
/// (the root), or `/` then path characters with no empty segment. So never `//host` or `/\host`
/// (which browsers read as another site), and no `;` or `,` (which end a cookie attribute), no
/// quote, space or control character.
fn fit_for_links(base: &str) -> bool {
    base.is_empty()
        || (base.starts_with('/')
            && !base.contains("//")
            && base
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"/-._~!$&'()*+=:@%".contains(&byte)))
}

/// Where the router is nested: the original path minus the path the router sees.
fn mount_path(parts: &Parts) -> String {
    let inner = parts.uri.path();
    let original = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |original| original.0.clone());
    mount_of(original.path(), inner)
}

fn mount_of(original: &str, inner: &str) -> String {
    let base = original
        .strip_suffix(inner)
        .unwrap_or_else(|| if inner == "/" { original } else { "" });
    base.trim_end_matches('/').to_owned()
}

/// The fields of a POST that passed the CSRF check.
pub(crate) struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name` (checkboxes).
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

impl FromRequest<Arc<Mounted>> for Form {
    type Rejection = Failure;

    /// Checks the headers first, so a form from another site is refused before a byte of its
    /// body is read; then reads at most [`MAX_FORM_BYTES`] and [`MAX_FORM_FIELDS`]; then checks
    /// the form's CSRF token when the headers ask for it.
    async fn from_request(request: Request, _: &Arc<Mounted>) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let mount = Mount::of(&parts)?;
        let check = security::check_post_headers(
            &parts.headers,
            security::request_host(&parts),
            mount.cookie_name(),
        )?;
        let bytes = read_form(&parts.headers, body).await?;
        let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes)
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        let form = Self { fields };
        check.check_form(form.get(CSRF_FIELD))?;
        Ok(form)
    }
}

/// Reads a form's body, refusing it (413) as soon as it is known to pass [`MAX_FORM_BYTES`]
/// or [`MAX_FORM_FIELDS`]: from its `Content-Length` before reading anything, else once what
/// has come passes a cap. The rest is never read.
async fn read_form(headers: &HeaderMap, mut body: Body) -> Result<Vec<u8>, Failure> {
    let too_long = || {
        Failure::too_large(format!(
            "this form is over {} bytes, more than any of the dashboard's forms, so it was refused",
            format::number(MAX_FORM_BYTES as u64)
        ))
    };
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok())
        .and_then(|length| length.parse::<u64>().ok());
    if announced.is_some_and(|length| length > MAX_FORM_BYTES as u64) {
        return Err(too_long());
    }
    let mut bytes = Vec::new();
    let mut fields = FieldCount::default();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|error| {
            Failure::bad_request(format!("the form could not be read: {error}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > MAX_FORM_BYTES {
            return Err(too_long());
        }
        if fields.add(&data) > MAX_FORM_FIELDS {
            return Err(Failure::too_large(format!(
                "this form has more than {MAX_FORM_FIELDS} fields, more than any of the \
                 dashboard's forms, so it was refused"
            )));
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}

/// Counts a form's fields as its bytes come: the non-empty pieces between `&`s, as
/// `form_urlencoded::parse` reads them.
#[derive(Debug, Default)]
struct FieldCount {
    fields: usize,
    /// Whether the last byte seen was inside a field (a piece already counted).
    inside: bool,
}

impl FieldCount {
    /// Counts the fields `bytes` begins or holds; returns the count so far.
    fn add(&mut self, bytes: &[u8]) -> usize {
        for &byte in bytes {
            if byte == b'&' {
                self.inside = false;
            } else if !self.inside {
                self.inside = true;
                self.fields += 1;
            }
        }
        self.fields
    }
}

#[cfg(test)]
mod tests {
    use super::{FieldCount, fit_for_links, mount_of};

    #[test]
    fn mount_path_is_what_nesting_stripped() {
        assert_eq!(mount_of("/jobs/retries", "/retries"), "/jobs");
        assert_eq!(mount_of("/jobs", "/"), "/jobs");
        assert_eq!(mount_of("/jobs/", "/"), "/jobs");
        assert_eq!(mount_of("/retries", "/retries"), "");
        assert_eq!(mount_of("/", "/"), "");
        assert_eq!(mount_of("/admin/jobs/queues/a", "/queues/a"), "/admin/jobs");
    }

    #[test]
    fn only_plain_mount_paths_are_fit_for_links() {
        for fine in [
            "",
            "/jobs",
            "/admin/jobs",
            "/t-1/jobs",
            "/%E2%9C%93",
            "/a:b@c",
        ] {
            assert!(fit_for_links(fine), "{fine}");
        }
        for unfit in [
            "//evil.example",
            "/\\evil.example",
            "/a//b",
            "jobs",
            "/a;b",
            "/a; Domain=evil.example",
            "/a,b",
            "/a\"b",
            "/a b",
            "/a\tb",
            "/a\nb",
            "/j\u{f6}bs",
        ] {
            assert!(!fit_for_links(unfit), "{unfit:?}");
        }
    }

    #[test]
    fn fields_are_counted_as_they_come() {
        let mut count = FieldCount::default();
        assert_eq!(count.add(b"a=1&b"), 2);
        assert_eq!(
            count.add(b"=2&&"),
            2,
            "a field split across chunks counts once"
        );
        assert_eq!(count.add(b"c&d="), 4);
        let mut flood = FieldCount::default();
        assert_eq!(flood.add(&b"a&".repeat(1000)), 1000);
    }
}

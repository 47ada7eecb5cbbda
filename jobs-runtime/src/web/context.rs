//! What each request knows: where the dashboard is mounted, the CSRF token, the time; and the
//! checked form of a POST.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::Markup;

use super::Mounted;
use super::failure::Failure;
use super::security::{self, CSRF_COOKIE, CSRF_FIELD};
use crate::client::Client;

/// The most bytes a POST body may have.
const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

/// The request's context, for a handler.
pub(crate) struct Ctx {
    /// The path the dashboard is mounted at, without a trailing slash (`""` at the root).
    pub(crate) base: String,
    /// This browser's CSRF token.
    pub(crate) token: String,
    /// Whether the token is new, to be set as a cookie.
    new_token: bool,
    /// Whether the page was asked for over HTTPS (directly or through a proxy that says so),
    /// so the cookie is marked `Secure`.
    secure: bool,
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
    /// the mount path itself (`/jobs`, not `/jobs/`, which a nested router does not match).
    pub(crate) fn url(&self, path: &str) -> String {
        match path.strip_prefix('/') {
            Some(rest) if !self.base.is_empty() && (rest.is_empty() || rest.starts_with('?')) => {
                format!("{}{rest}", self.base)
            }
            _ => format!("{}{path}", self.base),
        }
    }

    /// A page, with the CSRF cookie when the browser has none yet.
    pub(crate) fn html(&self, markup: Markup) -> Response {
        let mut response = Html(markup.into_string()).into_response();
        if self.new_token {
            let path = if self.base.is_empty() {
                "/"
            } else {
                &self.base
            };
            let secure = if self.secure { "; Secure" } else { "" };
            let cookie = format!(
                "{CSRF_COOKIE}={}; Path={path}; HttpOnly; SameSite=Strict{secure}",
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
        let base = mount_path(parts);
        let (token, new_token) = match security::cookie_token(&parts.headers) {
            Some(token) => (token, false),
            None => (security::new_token(), true),
        };
        let secure = parts.uri.scheme_str() == Some("https")
            || parts
                .headers
                .get("x-forwarded-proto")
                .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
        Ok(Self {
            base,
            token,
            new_token,
            secure,
            now: Utc::now(),
            state: Arc::clone(state),
        })
    }
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

    async fn from_request(request: Request, _: &Arc<Mounted>) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| Failure::bad_request("the form is too large"))?;
        let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes)
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        let form = Self { fields };
        security::check_post(&parts.headers, form.get(CSRF_FIELD))?;
        Ok(form)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mount_path_is_what_nesting_stripped() {
        assert_eq!(super::mount_of("/jobs/retries", "/retries"), "/jobs");
        assert_eq!(super::mount_of("/jobs", "/"), "/jobs");
        assert_eq!(super::mount_of("/jobs/", "/"), "/jobs");
        assert_eq!(super::mount_of("/retries", "/retries"), "");
        assert_eq!(super::mount_of("/", "/"), "");
        assert_eq!(
            super::mount_of("/admin/jobs/queues/a", "/queues/a"),
            "/admin/jobs"
        );
    }
}

//! What a handler answers when it cannot: a short page with the status and what to do.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::html;

use crate::error::Error;

/// A failed request: its status and a message (escaped when shown).
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    /// 400: the request asks for something the dashboard doesn't offer.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 403: a POST that failed the CSRF check, or a request sent to a host not allowed.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    /// 413: a form larger than any the dashboard's pages make.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: message.into(),
        }
    }

    /// 409: the action would leave other data inconsistent.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    /// 404: no such queue or job.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        if let Error::EmbeddedProcess { .. } | Error::PeriodicEnqueue { .. } = error {
            return Self::bad_request(error.to_string());
        }
        tracing::warn!(%error, "the dashboard could not read Redis");
        let mut message = error.to_string();
        if let Error::Redis { reason, .. } = &error
            && reason.contains("WRONGTYPE")
        {
            message = format!(
                "a key this page reads holds another type of value than the one it expects                  (another program wrote it, or the Redis is shared with another app's data);                  Redis said: {message}"
            );
        }
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message,
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let page = html! {
            (maud::DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "jobs: " (self.status) } }
                body { h1 { (self.status) } p { (self.message) } }
            }
        };
        (self.status, Html(page.into_string())).into_response()
    }
}

//! The stylesheet and script, embedded in the binary: nothing is loaded from elsewhere.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

/// `assets/app.css`.
const STYLESHEET: &str = include_str!("assets/app.css");
/// `assets/app.js`: relative times, confirmations, select-all, the live graph and live poll.
const SCRIPT: &str = include_str!("assets/app.js");

/// Appended to asset addresses so a new release is never served a stale cached copy.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /assets/{file}`.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.css" => (STYLESHEET, "text/css; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

//! The limits tab: every limiter used within its time to live, with its kind, limit, use and
//! over-limit counts, and a button to reset it.

use axum::response::Response;
use maud::{Markup, html};

use crate::api::{LimiterInfo, Limits, MAX_SCAN_STEPS, Stats};
use crate::web::context::{Ctx, Form};
use crate::web::failure::Failure;
use crate::web::format;
use crate::web::layout::{self, Tab};

/// The most limiters the page lists.
const LISTED: usize = 500;

/// `GET /limits`.
pub(crate) async fn page(ctx: Ctx) -> Result<Response, Failure> {
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let listing = Limits::new(client).scan(LISTED).await?;
    let limiters = listing.limiters;
    let content = html! {
        h1 { "Limits" }
        p.muted {
            (format::number(stats.overrated)) " jobs rescheduled over a limit so far."
        }
        @if listing.partial {
            p.muted.partial-list {
                "Partial list: the search stopped after " (format::number(LISTED as u64)) " limiters or about "
                (format::number((MAX_SCAN_STEPS * 1_000) as u64)) " keys looked at; other limiters may exist "
                "(look one up by name with " code { "api::Limits::get" } ")."
            }
        }
        div.panel.scroll {
            @if limiters.is_empty() {
                p.empty {
                    "No limiter used lately: call one with " code { "Limiter::concurrent(\"stripe\", 10).within_limit(…)" }
                    " and it appears here until it has been idle for its time to live."
                }
            } @else {
                table {
                    tr {
                        th { "Name" } th { "Kind" } th { "Limit" } th.num { "In use" } th.num { "Calls" }
                        th.num { "Over limit" } th.hide-small { "Last over limit" } th.hide-small { "Last used" } th {}
                    }
                    @for limiter in &limiters {
                        (row(&ctx, limiter))
                    }
                }
            }
        }
    };
    Ok(ctx.html(layout::page(&ctx, &stats, Tab::Limits, "Limits", content)))
}

/// One limiter's row.
fn row(ctx: &Ctx, limiter: &LimiterInfo) -> Markup {
    html! {
        tr data-limiter=(limiter.name) {
            td { strong { (format::truncate(&limiter.name, 120)) } }
            td { (limiter.kind.as_str()) }
            td { (limiter.describe()) }
            td.num { (in_use(limiter.in_use)) }
            td.num { (format::number(limiter.calls)) }
            td.num { (format::number(limiter.over_limit)) }
            td.hide-small { (layout::time(ctx, limiter.last_over_limit)) }
            td.hide-small { (layout::time(ctx, limiter.last_used)) }
            td.num {
                (layout::post_button(ctx, "/limits", &[("name", limiter.name.as_str()), ("action", "reset")], "Reset", "", None))
            }
        }
    }
}

/// What is in use: a whole number, or a level with one decimal.
fn in_use(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// `POST /limits`: `action` is `reset`, for the limiter `name`.
pub(crate) async fn act(ctx: Ctx, form: Form) -> Result<Response, Failure> {
    let name = form
        .get("name")
        .ok_or_else(|| Failure::bad_request("which limiter? the form has no name"))?;
    if form.get("action") != Some("reset") {
        return Err(Failure::bad_request("the action must be reset"));
    }
    if !Limits::new(ctx.client()).reset(name).await? {
        return Err(Failure::not_found("no limiter has that name"));
    }
    Ok(ctx.redirect("/limits"))
}

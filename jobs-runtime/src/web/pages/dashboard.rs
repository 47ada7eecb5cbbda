//! The dashboard tab: counts, a live graph, the daily history and Redis's figures.

use axum::extract::Query;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::{DayStats, RedisInfo, Stats};
use crate::web::context::Ctx;
use crate::web::failure::Failure;
use crate::web::format;
use crate::web::layout::{self, Tab};

/// The history spans offered: a week, a month, three months.
const HISTORY_DAYS: [u64; 3] = [7, 30, 90];

/// How often the live graph polls by default, in milliseconds (the script allows 2 to 20 s).
const DEFAULT_POLL_MS: u64 = 5_000;

#[derive(Debug, Deserialize)]
pub(crate) struct DashboardQuery {
    days: Option<u64>,
}

/// `GET /`.
pub(crate) async fn page(
    ctx: Ctx,
    Query(query): Query<DashboardQuery>,
) -> Result<Response, Failure> {
    let days = query.days.unwrap_or(30);
    if !HISTORY_DAYS.contains(&days) {
        return Err(Failure::bad_request("days must be 7, 30 or 90"));
    }
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let history = Stats::history(client, days, ctx.now.date_naive()).await?;
    let redis = RedisInfo::fetch(client).await?;
    let content = html! {
        h1 { "Dashboard" }
        @if stats.expired > 0 {
            p.muted {
                (format::number(stats.expired))
                " jobs expired unrun: they had not started within their expires_in of being due."
            }
        }
        div.panel.graph id="live-graph" data-src=(ctx.url("/stats")) data-poll-ms=(DEFAULT_POLL_MS) {
            div.toolbar {
                h2.grow { "Now" }
                label for="poll-interval" { "Poll every " span id="poll-label" { "5 s" } }
                input type="range" id="poll-interval" min="2000" max="20000" step="1000" value=(DEFAULT_POLL_MS);
            }
            svg viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="jobs processed and failed per poll" {
                line.axis x1="0" y1="159" x2="600" y2="159" {}
                polyline.processed points="" {}
                polyline.failed points="" {}
            }
            div.legend {
                span.swatch-processed { "■ processed" }
                span.swatch-failed { "■ failed" }
                span { "per poll; peak " span id="graph-peak" { "0" } }
            }
        }
        (history_panel(&ctx, &history, days))
        h2 { "Redis" }
        div.panel.scroll {
            table {
                tr { th { "Version" } th { "Uptime (days)" } th { "Connections" } th { "Memory" } th { "Peak memory" } th { "Eviction" } }
                tr {
                    td { (redis.version) }
                    td { (redis.uptime_in_days) }
                    td { (redis.connected_clients) }
                    td { (redis.used_memory_human) }
                    td { (redis.used_memory_peak_human) }
                    td class=[(redis.maxmemory_policy != "noeviction").then_some("error")]
                       title="jobs need maxmemory-policy noeviction, or Redis may drop them" {
                        (redis.maxmemory_policy)
                    }
                }
            }
        }
    };
    Ok(ctx.html(layout::page(
        &ctx,
        &stats,
        Tab::Dashboard,
        "Dashboard",
        content,
    )))
}

/// The daily history as an SVG bar chart (no script needed).
fn history_panel(ctx: &Ctx, history: &[DayStats], days: u64) -> Markup {
    let width = 600.0;
    let height = 160.0;
    let max = history
        .iter()
        .map(|day| day.processed.max(day.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = |value: u64| (value as f64 / max as f64) * (height - 10.0);
    let slot = width / history.len().max(1) as f64;
    let processed: u64 = history.iter().map(|day| day.processed).sum();
    let failed: u64 = history.iter().map(|day| day.failed).sum();
    html! {
        div.panel.graph {
            div.toolbar {
                h2.grow { "History" }
                div.tabs {
                    @for span in HISTORY_DAYS {
                        a class=[(span == days).then_some("active")] href=(ctx.url(&format!("/?days={span}"))) {
                            @match span { 7 => "1 week", 30 => "1 month", _ => "3 months" }
                        }
                    }
                }
            }
            svg viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="jobs processed and failed per day" {
                line.axis x1="0" y1="159" x2="600" y2="159" {}
                // Oldest on the left.
                @for (index, day) in history.iter().rev().enumerate() {
                    @let x = index as f64 * slot;
                    rect.bar-processed x=(format!("{:.1}", x + slot * 0.1)) y=(format!("{:.1}", height - scale(day.processed)))
                        width=(format!("{:.1}", slot * 0.4)) height=(format!("{:.1}", scale(day.processed))) {
                        title { (day.date) ": " (format::number(day.processed)) " processed" }
                    }
                    rect.bar-failed x=(format!("{:.1}", x + slot * 0.5)) y=(format!("{:.1}", height - scale(day.failed)))
                        width=(format!("{:.1}", slot * 0.4)) height=(format!("{:.1}", scale(day.failed))) {
                        title { (day.date) ": " (format::number(day.failed)) " failed" }
                    }
                }
            }
            div.legend {
                span.swatch-processed { "■ " (format::number(processed)) " processed" }
                span.swatch-failed { "■ " (format::number(failed)) " failed" }
                span { "peak " (format::number(max)) " a day" }
            }
        }
    }
}

/// `GET /stats`: the live figures as JSON, which the dashboard's graph polls.
pub(crate) async fn stats(ctx: Ctx) -> Result<Response, Failure> {
    let stats = Stats::fetch(ctx.client()).await?;
    let body = serde_json::json!({
        "processed": stats.processed,
        "failed": stats.failed,
        "busy": stats.workers_size,
        "processes": stats.processes_size,
        "enqueued": stats.enqueued,
        "scheduled": stats.scheduled_size,
        "retries": stats.retry_size,
        "dead": stats.dead_size,
        "default_latency": stats.default_queue_latency,
        "expired": stats.expired,
    });
    Ok(([(CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

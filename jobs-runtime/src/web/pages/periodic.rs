//! The periodic tab: every periodic entry with its schedule, next and last run, and buttons to
//! pause, resume and enqueue it now.

use axum::response::Response;
use maud::{Markup, html};

use super::segment;
use crate::api::{PeriodicEntry, PeriodicSet, Stats};
use crate::periodic::CatchUp;
use crate::web::context::{Ctx, Form};
use crate::web::failure::Failure;
use crate::web::format;
use crate::web::layout::{self, Tab};

/// How late a tick may be before it is shown as overdue, or its job as pushed late: a worker's
/// periodic loop wakes at least every second, and runs a tick missed by a live process within
/// ten.
const LATE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// `GET /periodic`.
pub(crate) async fn page(ctx: Ctx) -> Result<Response, Failure> {
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let entries = PeriodicSet::new(client).list().await?;
    let content = html! {
        h1 { "Periodic jobs" }
        div.panel.scroll {
            @if entries.is_empty() {
                p.empty {
                    "No periodic entry yet: declare one with " code { "#[job(cron = \"0 3 * * *\")]" } ", "
                    code { "Worker::periodic" } " or the config file's " code { "periodic:" }
                    " section, and it appears when a worker starts."
                }
            } @else {
                table {
                    tr {
                        th { "Name" } th { "Schedule" } th { "Job" } th.hide-small { "Queue" } th { "Next run" }
                        th.hide-small { "Last run" } th {}
                    }
                    @for entry in &entries {
                        (row(&ctx, entry))
                    }
                }
            }
        }
    };
    Ok(ctx.html(layout::page(
        &ctx,
        &stats,
        Tab::Periodic,
        "Periodic",
        content,
    )))
}

/// One entry's row: its name and marks, schedule, job, queue, next and last run, buttons.
fn row(ctx: &Ctx, entry: &PeriodicEntry) -> Markup {
    let name = entry.name.as_str();
    html! {
        tr data-entry=(entry.name) {
            td {
                strong { (entry.name) }
                @if entry.paused { " " span.tag.quiet { "paused" } }
                @if !entry.enabled { " " span.tag { "disabled" } }
                @if entry.catch_up == CatchUp::None && entry.problem.is_none() {
                    " " span.tag title="ticks missed while every worker was down are skipped" { "no catch-up" }
                }
                br; span.muted { "declared " (layout::time(ctx, entry.declared_at)) }
                @if let Some(problem) = &entry.problem {
                    br; span.error { (format::truncate(problem, 300)) }
                }
            }
            td {
                @if entry.description.is_empty() { span.muted { "—" } } @else { (entry.description) }
                @if !entry.cron.is_empty() { br; code.muted { (format::truncate(&entry.cron, 100)) } }
            }
            td.job {
                code { (format::truncate(&entry.class, 120)) }
                br;
                @match &entry.args {
                    Some(args) => code.muted { "(" (format::args(args, 300)) ")" },
                    None => span.muted { "args computed per tick" },
                }
            }
            td.hide-small {
                @if !entry.queue.is_empty() {
                    a href=(ctx.url(&format!("/queues/{}", segment(&entry.queue)))) { (entry.queue) }
                }
            }
            td { (next_run(ctx, entry)) }
            td.hide-small {
                @match &entry.last_run {
                    Some(last) => {
                        (layout::time(ctx, last.tick))
                        // Pushed late: caught up after downtime.
                        @if let (Some(tick), Some(pushed)) = (last.tick, last.pushed_at) && pushed - tick > LATE_AFTER {
                            br; span.muted { "pushed " (layout::time(ctx, last.pushed_at)) }
                        }
                        @if !last.jid.is_empty() { br; span.mono.muted { (last.jid) } }
                        @if let Some(outcome) = &last.outcome { br; span.muted { (outcome) } }
                    },
                    None => span.muted { "never" },
                }
            }
            td.num {
                @if entry.paused {
                    (layout::post_button(ctx, "/periodic", &[("name", name), ("action", "resume")], "Resume", "", None))
                } @else {
                    (layout::post_button(ctx, "/periodic", &[("name", name), ("action", "pause")], "Pause", "", None))
                }
                " "
                @match entry.enqueue_refusal() {
                    None => (layout::post_button(ctx, "/periodic", &[("name", name), ("action", "enqueue")], "Enqueue now", "", None)),
                    // A disabled button shows no tooltip in every browser; its wrapper does.
                    Some(why) => span.unavailable title=(why) {
                        button type="button" disabled aria-label=(format!("Enqueue now: unavailable, {why}")) { "Enqueue now" }
                    },
                }
            }
        }
    }
}

/// When `entry` next runs, or why it does not.
fn next_run(ctx: &Ctx, entry: &PeriodicEntry) -> Markup {
    if entry.paused {
        return html! { span.muted { "paused " (layout::time(ctx, entry.paused_at)) } };
    }
    if !entry.enabled {
        return html! { span.muted { "disabled" } };
    }
    html! {
        (layout::time(ctx, entry.next_run))
        @if entry.next_run.is_some_and(|next| next < ctx.now - LATE_AFTER) {
            " " span.tag.quiet title="no worker process has run this tick yet: one holding this entry runs it when it starts" { "overdue" }
        }
    }
}

/// `POST /periodic`: `action` is `pause`, `resume` or `enqueue` (now), for the entry `name`.
pub(crate) async fn act(ctx: Ctx, form: Form) -> Result<Response, Failure> {
    let entries = PeriodicSet::new(ctx.client());
    let name = form
        .get("name")
        .ok_or_else(|| Failure::bad_request("which entry? the form has no name"))?;
    let found = match form.get("action").unwrap_or_default() {
        "pause" => entries.pause(name).await?,
        "resume" => entries.resume(name).await?,
        // An entry whose arguments are computed refuses: a 400 that says why.
        "enqueue" => entries.enqueue_now(name).await?.is_some(),
        _ => {
            return Err(Failure::bad_request(
                "the action must be pause, resume or enqueue",
            ));
        }
    };
    if !found {
        return Err(Failure::not_found("no periodic entry has that name"));
    }
    Ok(ctx.redirect("/periodic"))
}

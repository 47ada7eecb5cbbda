//! The busy tab: processes (each capsule of a process with its queues and its jobs running of
//! its concurrency, when it has several), with quiet and stop buttons, and the jobs running
//! now.

use axum::extract::Query;
use axum::response::Response;
use maud::html;

use super::ListQuery;
use crate::api::{ProcessSet, Stats, WorkSet};
use crate::web::context::{Ctx, Form};
use crate::web::failure::Failure;
use crate::web::format;
use crate::web::layout::{self, Tab};

/// Processes on one page of the list.
pub(crate) const PROCESSES_PAGE_SIZE: usize = 50;

/// The most running jobs listed on one page.
pub(crate) const MAX_RUNNING_SHOWN: usize = 100;

/// `GET /busy?page=2`: the totals of every process, then a page of processes by identity and
/// the jobs those processes run now. The `:work` hashes of the page's processes only are read.
pub(crate) async fn page(ctx: Ctx, Query(query): Query<ListQuery>) -> Result<Response, Failure> {
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let every = ProcessSet::new(client).list().await?;
    let threads: u64 = every
        .iter()
        .filter_map(|process| process.concurrency())
        .sum();
    let busy: u64 = every.iter().map(|process| process.busy).sum();
    let total = every.len();
    let page_number = query.page();
    let processes = query.slice(every, PROCESSES_PAGE_SIZE);
    let running = WorkSet::new(client).of(&processes).await?;
    let paged = total > processes.len();
    let content = html! {
        div.toolbar {
            h1.grow { "Processes" }
            @if total > 0 {
                (layout::post_button(&ctx, "/busy", &[("action", "quiet")], "Quiet all", "", Some("Stop every process from taking new jobs?")))
                (layout::post_button(&ctx, "/busy", &[("action", "stop")], "Stop all", "danger", Some("Shut down every process?")))
            }
        }
        div.summary {
            div.card { span.value { (format::number(total as u64)) } span.label { "Processes" } }
            div.card { span.value { (format::number(threads)) } span.label { "Concurrency" } }
            div.card { span.value { (format::number(busy)) } span.label { "Busy" } }
            div.card {
                span.value {
                    @if threads == 0 { "0%" } @else { (busy * 100 / threads) "%" }
                }
                span.label { "Utilization" }
            }
        }
        div.panel.scroll {
            @if total == 0 {
                p.empty { "No process is running. Start one with " code { "cargo run --example worker" } "." }
            } @else if processes.is_empty() {
                p.empty { "No process here." }
            } @else {
                table {
                    tr {
                        th { "Process" } th { "Queues" } th.num { "Busy" } th.num.hide-small { "RSS" }
                        th.hide-small { "Started" } th { "Last beat" } th {}
                    }
                    @for process in &processes {
                        tr {
                            td {
                                strong { (process.hostname()) ":" (process.pid().map(|pid| pid.to_string()).unwrap_or_default()) }
                                @if let Some(tag) = process.tag() { " " span.tag { (tag) } }
                                @for label in process.labels() { " " span.tag { (label) } }
                                @if process.quiet { " " span.tag.quiet { "quiet" } }
                                @if let Some(version) = process.version() { br; span.muted.mono { (version) } }
                                br; span.muted.mono { (process.identity) }
                            }
                            td {
                                @let capsules = process.capsules();
                                @if capsules.len() > 1 {
                                    // Each capsule: its name, its jobs running of its concurrency, its queues.
                                    @for capsule in &capsules {
                                        div.capsule {
                                            strong { (capsule.name) } " "
                                            span.muted.num { (capsule.running(&running)) " / " (capsule.concurrency.map(|c| c.to_string()).unwrap_or_else(|| "?".to_owned())) }
                                            " "
                                            @for queue in capsule.queues() { span.tag { (queue) } }
                                        }
                                    }
                                } @else {
                                    @for queue in process.queues() { span.tag { (queue) } }
                                }
                            }
                            td.num { (process.busy) " / " (process.concurrency().map(|c| c.to_string()).unwrap_or_else(|| "?".to_owned())) }
                            td.num.hide-small { (process.rss_kb.map(format::kilobytes).unwrap_or_default()) }
                            td.hide-small { (layout::time(&ctx, process.started_at())) }
                            td { (layout::time(&ctx, process.beat)) }
                            td {
                                @if !process.quiet {
                                    (layout::post_button(&ctx, "/busy", &[("identity", &process.identity), ("action", "quiet")], "Quiet", "", None))
                                    " "
                                }
                                @if !process.is_embedded() {
                                    (layout::post_button(&ctx, "/busy", &[("identity", &process.identity), ("action", "stop")], "Stop", "danger", Some("Shut this process down?")))
                                }
                            }
                        }
                    }
                }
            }
        }
        (layout::pager(&ctx, "/busy", page_number, PROCESSES_PAGE_SIZE, total, &[]))
        h2 {
            "Jobs running now"
            @if paged { " on the processes of this page" }
        }
        @if running.len() > MAX_RUNNING_SHOWN {
            p.muted {
                "Showing the " (MAX_RUNNING_SHOWN) " longest-running of "
                (format::number(running.len() as u64)) " jobs."
            }
        }
        div.panel.scroll {
            @if running.is_empty() {
                p.empty { "Nothing is running." }
            } @else {
                table {
                    tr { th { "Process" } th { "Queue" } th { "Job" } th { "Arguments" } th { "Started" } }
                    @for work in running.iter().take(MAX_RUNNING_SHOWN) {
                        tr {
                            td.mono { (work.process) br; span.muted { (work.thread) } }
                            td { (work.queue) }
                            (layout::job_cells(&work.record))
                            td { (layout::time(&ctx, work.run_at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.html(layout::list_page(&ctx, &stats, Tab::Busy, "Busy", content)))
}

/// `POST /busy`: `action` is `quiet` or `stop`; for the process `identity`, or every process
/// when there is none.
pub(crate) async fn act(ctx: Ctx, form: Form) -> Result<Response, Failure> {
    let processes = ProcessSet::new(ctx.client());
    let action = form.get("action").unwrap_or_default();
    match form.get("identity") {
        Some(identity) => {
            let process = processes
                .get(identity)
                .await?
                .ok_or_else(|| Failure::not_found("no live process has that identity"))?;
            match action {
                "quiet" => process.quiet().await?,
                // An embedded process refuses: a 400 that says so.
                "stop" => process.stop().await?,
                _ => return Err(Failure::bad_request("the action must be quiet or stop")),
            }
        }
        None => {
            match action {
                "quiet" => processes.quiet_all().await?,
                "stop" => processes.stop_all().await?,
                _ => return Err(Failure::bad_request("the action must be quiet or stop")),
            };
        }
    }
    Ok(ctx.redirect("/busy"))
}

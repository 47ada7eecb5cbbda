//! The queues tab: every queue with its size and latency; one queue's jobs.

use axum::extract::{Path, Query};
use axum::response::Response;
use maud::html;

use super::{ListQuery, PAGE_SIZE, segment};
use crate::api::{Order, Page, Queue, Stats};
use crate::web::context::{Ctx, Form};
use crate::web::failure::Failure;
use crate::web::format;
use crate::web::layout::{self, Tab};

/// `GET /queues`.
pub(crate) async fn list(ctx: Ctx) -> Result<Response, Failure> {
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let queues = Stats::queues(client).await?;
    let content = html! {
        h1 { "Queues" }
        div.panel.scroll {
            @if queues.is_empty() {
                p.empty { "No queue yet: queues appear when a job is pushed." }
            } @else {
                table {
                    tr { th { "Queue" } th.num { "Size" } th.num { "Latency" } th {} }
                    @for (queue, size, latency) in &queues {
                        @let path = format!("/queues/{}", segment(queue.name()));
                        tr {
                            td { a href=(ctx.url(&path)) { (queue.name()) } }
                            td.num { (format::number(*size as u64)) }
                            td.num { (format::latency(*latency)) }
                            td.num {
                                (layout::post_button(&ctx, &path, &[], "Delete", "danger",
                                    Some("Delete this queue and every job in it?")))
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.html(layout::page(&ctx, &stats, Tab::Queues, "Queues", content)))
}

/// `GET /queues/{name}`: the queue's jobs, a page at a time.
pub(crate) async fn show(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Failure> {
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let queue = Queue::new(client, name);
    let size = queue.size().await?;
    let latency = queue.latency().await?;
    let page_number = query.page();
    let jobs = queue
        .page(Page::numbered(page_number, PAGE_SIZE, query.order()))
        .await?;
    let path = format!("/queues/{}", segment(queue.name()));
    let flipped = match query.order() {
        Order::NewestFirst => "asc",
        Order::OldestFirst => "desc",
    };
    let content = html! {
        div.toolbar {
            h1.grow { "Queue " code { (queue.name()) } }
            span.muted { (format::number(size as u64)) " jobs · latency " (format::latency(latency)) }
            a.button href=(ctx.url(&format!("{path}?order={flipped}"))) {
                @if query.order() == Order::NewestFirst { "Newest first ↓" } @else { "Oldest first ↑" }
            }
            (layout::post_button(&ctx, &path, &[], "Delete queue", "danger",
                Some("Delete this queue and every job in it?")))
        }
        div.panel.scroll {
            @if jobs.is_empty() {
                p.empty { "No jobs here." }
            } @else {
                table {
                    tr { th { "Job" } th { "Arguments" } th.hide-small { "Jid" } th { "Enqueued" } th {} }
                    @for job in &jobs {
                        tr {
                            (layout::job_cells(job))
                            td.mono.hide-small { (job.jid()) }
                            td { (layout::time(&ctx, job.enqueued_at())) }
                            td.num {
                                (layout::post_button(&ctx, &format!("{path}/delete"), &[("key_val", job.raw())],
                                    "Delete", "danger", None))
                            }
                        }
                    }
                }
            }
        }
        (layout::pager(&ctx, &path, page_number, PAGE_SIZE, size, &[("order", query.order_name())]))
    };
    Ok(ctx.html(layout::page(
        &ctx,
        &stats,
        Tab::Queues,
        queue.name(),
        content,
    )))
}

/// `POST /queues/{name}`: deletes the queue and its jobs.
pub(crate) async fn clear(
    ctx: Ctx,
    Path(name): Path<String>,
    _form: Form,
) -> Result<Response, Failure> {
    Queue::new(ctx.client(), name).clear().await?;
    Ok(ctx.redirect("/queues"))
}

/// `POST /queues/{name}/delete`: deletes the one job stored exactly as `key_val`.
pub(crate) async fn delete_job(
    ctx: Ctx,
    Path(name): Path<String>,
    form: Form,
) -> Result<Response, Failure> {
    let raw = form
        .get("key_val")
        .ok_or_else(|| Failure::bad_request("which job? the form has no key_val"))?;
    Queue::new(ctx.client(), name.as_str())
        .delete_raw(raw)
        .await?;
    Ok(ctx.redirect(&format!("/queues/{}", segment(&name))))
}

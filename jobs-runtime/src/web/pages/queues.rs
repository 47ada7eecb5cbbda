//! The queues tab: every queue with its size and latency, paused or not; one queue's jobs.
//! Pause and Resume write the `paused` set, as Sidekiq Pro's buttons do. The Cap column shows a
//! queue's global cap and how many of its jobs run under it now, with a form to set or clear
//! it (`api::Caps`). The Class caps table below lists each capped job class (`in use / cap`,
//! its parked jobs) with a form to set or clear it, and one to cap another class.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use axum::extract::{Path, Query};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use maud::{Markup, html};

use super::{ListQuery, MAX_FILTER_CHARS, PAGE_SIZE, segment};
use crate::api::{CapInfo, Caps, ClassCapInfo, JobRecord, Order, Page, Queue, Stats};
use crate::web::context::{Ctx, Form};
use crate::web::failure::Failure;
use crate::web::format;
use crate::web::layout::{self, Tab};

/// Queues on one page of the list.
pub(crate) const QUEUES_PAGE_SIZE: usize = 100;

/// `GET /queues?page=2&substr=mail`: the queues by name, a page at a time, those whose name
/// holds the filter. It reads every queue's name (`SMEMBERS queues`) but the size and latency of
/// the page's queues only, so its cost grows with the names alone.
pub(crate) async fn list(ctx: Ctx, Query(query): Query<ListQuery>) -> Result<Response, Failure> {
    let client = ctx.client();
    let filter = query.filter()?;
    let stats = Stats::fetch(client).await?;
    let mut all = Queue::all(client).await?;
    if !filter.is_empty() {
        all.retain(|queue| queue.name().contains(filter));
    }
    let total = all.len();
    let page_number = query.page();
    let shown = query.slice(all, QUEUES_PAGE_SIZE);
    let queues = Stats::queue_sizes(client, shown).await?;
    let paused: HashSet<String> = Queue::paused_names(client).await?.into_iter().collect();
    let caps: HashMap<String, CapInfo> = Caps::new(client)
        .list()
        .await?
        .into_iter()
        .map(|cap| (cap.queue.clone(), cap))
        .collect();
    let class_caps = Caps::new(client).list_classes().await?;
    let content = html! {
        div.toolbar {
            h1.grow { "Queues" }
            span.muted data-total=(total) {
                (format::number(total as u64))
                @if filter.is_empty() { @if total == 1 { " queue" } @else { " queues" } }
                @else { " matching" }
            }
            form.inline method="get" action=(ctx.url("/queues")) role="search" {
                input type="search" name="substr" value=(filter) placeholder="Filter by name"
                    maxlength=(MAX_FILTER_CHARS) aria-label="filter";
                " " button type="submit" { "Filter" }
            }
        }
        div.panel.scroll {
            @if queues.is_empty() {
                @if total > 0 || !filter.is_empty() {
                    p.empty { "No queue here." }
                } @else {
                    p.empty { "No queue yet: queues appear when a job is pushed." }
                }
            } @else {
                table {
                    tr { th { "Queue" } th.num { "Size" } th.num { "Latency" } th { "Cap" } th {} }
                    @for (queue, size, latency) in &queues {
                        @let path = format!("/queues/{}", segment(queue.name()));
                        @let is_paused = paused.contains(queue.name());
                        tr data-queue=(queue.name()) {
                            td {
                                a href=(ctx.url(&path)) { (queue.name()) }
                                @if is_paused { " " (paused_tag()) }
                            }
                            td.num { (format::number(*size as u64)) }
                            td.num { (format::latency(*latency)) }
                            td { (cap_form(&ctx, &path, caps.get(queue.name()))) }
                            td.num {
                                (pause_button(&ctx, &path, is_paused, false))
                                " "
                                (layout::post_button(&ctx, &path, &[], "Delete", "danger",
                                    Some("Delete this queue and every job in it?")))
                            }
                        }
                    }
                }
            }
        }
        (layout::pager(&ctx, "/queues", page_number, QUEUES_PAGE_SIZE, total, &[("substr", filter)]))
        (class_caps_table(&ctx, &class_caps))
    };
    Ok(ctx.html(layout::list_page(
        &ctx,
        &stats,
        Tab::Queues,
        "Queues",
        content,
    )))
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
    let is_paused = queue.is_paused().await?;
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
            h1.grow {
                "Queue " code { (queue.name()) }
                @if is_paused { " " (paused_tag()) }
            }
            span.muted { (format::number(size as u64)) " jobs · latency " (format::latency(latency)) }
            a.button href=(ctx.url(&format!("{path}?order={flipped}"))) {
                @if query.order() == Order::NewestFirst { "Newest first ↓" } @else { "Oldest first ↑" }
            }
            (pause_button(&ctx, &path, is_paused, true))
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
                            @if job.is_job() {
                                (layout::job_cells(job))
                            } @else {
                                td { span.error { "not a job" @if !job.is_utf8() { " (not UTF-8)" } } }
                                td.args { code { (format::truncate(job.raw(), 300)) } }
                            }
                            td.mono.hide-small { (job.jid()) }
                            td { (layout::time(&ctx, job.enqueued_at())) }
                            @let (field, value) = delete_field(job);
                            td.num {
                                (layout::post_button(&ctx, &format!("{path}/delete"), &[(field, value.as_ref())],
                                    "Delete", "danger", None))
                            }
                        }
                    }
                }
            }
        }
        (layout::pager(&ctx, &path, page_number, PAGE_SIZE, size, &[("order", query.order_name())]))
    };
    Ok(ctx.html(layout::list_page(
        &ctx,
        &stats,
        Tab::Queues,
        queue.name(),
        content,
    )))
}

/// A queue's global cap (`in use / cap`, or none) with the form that sets it (`POST
/// <path>/cap`, field `cap`) and, when it has one, the button that clears it (`POST
/// <path>/uncap`); both carry the page's CSRF token.
fn cap_form(ctx: &Ctx, path: &str, cap: Option<&CapInfo>) -> Markup {
    html! {
        @if let Some(cap) = cap {
            span.tag title="at most this many of its jobs run at once, across every process" {
                (cap.in_use) " / " (cap.cap)
            }
            " "
        }
        form.inline method="post" action=(ctx.url(&format!("{path}/cap"))) {
            (layout::csrf(ctx))
            input type="number" name="cap" min="1" step="1" required
                value=[cap.map(|cap| cap.cap)] aria-label="cap" style="width:5em";
            button type="submit" { "Cap" }
        }
        @if cap.is_some() {
            " "
            (layout::post_button(ctx, &format!("{path}/uncap"), &[], "Uncap", "", None))
        }
    }
}

/// The Class caps table: each capped job class with `in use / cap`, its parked jobs, a form to
/// change its cap and a button to clear it (`POST /class_caps`, fields `class`, `cap` and
/// `action`), then a form to cap another class; every form carries the page's CSRF token.
fn class_caps_table(ctx: &Ctx, caps: &[ClassCapInfo]) -> Markup {
    html! {
        h2 { "Class caps" }
        div.panel.scroll {
            @if caps.is_empty() {
                p.empty { "No job class is capped." }
            } @else {
                table {
                    tr { th { "Class" } th.num { "In use / cap" } th.num { "Waiting" } th {} }
                    @for cap in caps {
                        tr data-class=(cap.class) {
                            td { code { (cap.class) } }
                            td.num {
                                span.tag title="at most this many of its jobs run at once, across every process" {
                                    (cap.in_use) " / " (cap.cap)
                                }
                            }
                            td.num title="parked: back in their queues as slots free" {
                                (format::number(cap.waiting))
                            }
                            td.num {
                                form.inline method="post" action=(ctx.url("/class_caps")) {
                                    (layout::csrf(ctx))
                                    input type="hidden" name="class" value=(cap.class);
                                    input type="hidden" name="action" value="cap";
                                    input type="number" name="cap" min="1" step="1" required
                                        value=(cap.cap) aria-label="cap" style="width:5em";
                                    button type="submit" { "Cap" }
                                }
                                " "
                                (layout::post_button(ctx, "/class_caps",
                                    &[("class", cap.class.as_str()), ("action", "uncap")], "Uncap", "",
                                    Some("Remove this cap? Its parked jobs go back to their queues at once.")))
                            }
                        }
                    }
                }
            }
            form.inline method="post" action=(ctx.url("/class_caps")) {
                (layout::csrf(ctx))
                input type="hidden" name="action" value="cap";
                input type="text" name="class" required placeholder="Job class" aria-label="class";
                " "
                input type="number" name="cap" min="1" step="1" required placeholder="cap"
                    aria-label="cap" style="width:5em";
                " "
                button type="submit" { "Cap class" }
            }
        }
    }
}

/// `POST /class_caps`: caps the form's `class` at its `cap` jobs running at once across every
/// process (`action=cap`), or removes the class's cap, its parked jobs going back to their
/// queues at once (`action=uncap`).
pub(crate) async fn class_cap(ctx: Ctx, form: Form) -> Result<Response, Failure> {
    let class = form
        .get("class")
        .map(str::trim)
        .filter(|class| !class.is_empty())
        .ok_or_else(|| Failure::bad_request("the job class's name is missing"))?
        .to_owned();
    let caps = Caps::new(ctx.client());
    match form.get("action") {
        Some("uncap") => {
            caps.clear_class(&class).await?;
        }
        Some("cap") => {
            let cap: u32 = form
                .get("cap")
                .and_then(|cap| cap.trim().parse().ok())
                .ok_or_else(|| {
                    Failure::bad_request("the cap must be a whole number of 1 or more")
                })?;
            if let Err(error) = crate::cap::class::check(&class, cap) {
                return Err(Failure::bad_request(error.to_string()));
            }
            caps.set_class(&class, cap).await?;
        }
        _ => {
            return Err(Failure::bad_request(
                "unknown action: expected `cap` or `uncap`",
            ));
        }
    }
    Ok(ctx.redirect("/queues"))
}

/// `POST /queues/{name}/cap`: caps the queue at the form's `cap` jobs running at once across
/// every process.
pub(crate) async fn cap(
    ctx: Ctx,
    Path(name): Path<String>,
    form: Form,
) -> Result<Response, Failure> {
    let cap: u32 = form
        .get("cap")
        .and_then(|cap| cap.trim().parse().ok())
        .ok_or_else(|| Failure::bad_request("the cap must be a whole number of 1 or more"))?;
    if let Err(error) = crate::cap::check(&name, cap) {
        return Err(Failure::bad_request(error.to_string()));
    }
    Caps::new(ctx.client()).set(&name, cap).await?;
    Ok(ctx.redirect("/queues"))
}

/// `POST /queues/{name}/uncap`: removes the queue's cap; it flows freely from the workers'
/// next fetch round.
pub(crate) async fn uncap(
    ctx: Ctx,
    Path(name): Path<String>,
    _form: Form,
) -> Result<Response, Failure> {
    Caps::new(ctx.client()).clear(&name).await?;
    Ok(ctx.redirect("/queues"))
}

/// The badge of a paused queue.
fn paused_tag() -> Markup {
    html! {
        span.tag.quiet title="workers take none of its jobs until it is resumed" { "paused" }
    }
}

/// Pause (`POST <path>/pause`) for a running queue, Resume (`POST <path>/unpause`) for a
/// paused one; the answer returns to the queue's own page when `from_queue_page`, else to the
/// list.
fn pause_button(ctx: &Ctx, path: &str, is_paused: bool, from_queue_page: bool) -> Markup {
    let fields: &[(&str, &str)] = if from_queue_page {
        &[("back", "queue")]
    } else {
        &[]
    };
    if is_paused {
        layout::post_button(ctx, &format!("{path}/unpause"), fields, "Resume", "", None)
    } else {
        layout::post_button(ctx, &format!("{path}/pause"), fields, "Pause", "", None)
    }
}

/// What names `job` to `POST /queues/{name}/delete`: `key_val`, its text as stored (Sidekiq's
/// field), or `key_base64`, its bytes, when they are not UTF-8 (a form carries only text).
fn delete_field(job: &JobRecord) -> (&'static str, Cow<'_, str>) {
    if job.is_utf8() {
        ("key_val", Cow::Borrowed(job.raw()))
    } else {
        ("key_base64", Cow::Owned(STANDARD.encode(job.raw_bytes())))
    }
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

/// `POST /queues/{name}/pause`: pauses the queue (workers take none of its jobs).
pub(crate) async fn pause(
    ctx: Ctx,
    Path(name): Path<String>,
    form: Form,
) -> Result<Response, Failure> {
    Queue::new(ctx.client(), name.as_str()).pause().await?;
    Ok(back_from_pause(&ctx, &name, &form))
}

/// `POST /queues/{name}/unpause`: resumes the queue.
pub(crate) async fn unpause(
    ctx: Ctx,
    Path(name): Path<String>,
    form: Form,
) -> Result<Response, Failure> {
    Queue::new(ctx.client(), name.as_str()).unpause().await?;
    Ok(back_from_pause(&ctx, &name, &form))
}

/// Back to the queue's page when the button was there (`back=queue`), else to the list.
fn back_from_pause(ctx: &Ctx, name: &str, form: &Form) -> Response {
    if form.get("back") == Some("queue") {
        ctx.redirect(&format!("/queues/{}", segment(name)))
    } else {
        ctx.redirect("/queues")
    }
}

/// `POST /queues/{name}/delete`: deletes the one job stored exactly as `key_val` (text) or
/// `key_base64` (bytes).
pub(crate) async fn delete_job(
    ctx: Ctx,
    Path(name): Path<String>,
    form: Form,
) -> Result<Response, Failure> {
    let raw: Vec<u8> = match (form.get("key_val"), form.get("key_base64")) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(encoded)) => STANDARD
            .decode(encoded)
            .map_err(|_| Failure::bad_request("key_base64 is not base64"))?,
        (None, None) => {
            return Err(Failure::bad_request(
                "which job? the form has no key_val or key_base64",
            ));
        }
    };
    Queue::new(ctx.client(), name.as_str())
        .delete_raw(raw)
        .await?;
    Ok(ctx.redirect(&format!("/queues/{}", segment(&name))))
}

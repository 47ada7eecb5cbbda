//! The batches tab: every batch newest first with its progress, and a batch's page with its
//! counts, the callbacks it fired, its parent and children, and its failed jobs linked to
//! their retry or dead entries (`docs/batches.md`).

use axum::extract::{Path, Query};
use axum::response::Response;
use maud::{Markup, html};

use super::{ListQuery, PAGE_SIZE, segment};
use crate::api::{BatchFailure, BatchInfo, Batches, Page, SetKind, Stats};
use crate::batch::Bid;
use crate::web::context::{Ctx, Form};
use crate::web::failure::Failure;
use crate::web::format;
use crate::web::layout::{self, Tab};

/// The callback events, in the order they fire.
const EVENTS: [&str; 3] = ["complete", "success", "death"];

/// `GET /batches`.
pub(crate) async fn list(ctx: Ctx, Query(query): Query<ListQuery>) -> Result<Response, Failure> {
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let batches = Batches::new(client);
    let total = batches.size().await?;
    let page_number = query.page();
    let listed = batches
        .page(Page::numbered(page_number, PAGE_SIZE, query.order()))
        .await?;
    let content = html! {
        div.toolbar {
            h1.grow { "Batches" }
            span.muted { (format::number(total as u64)) @if total == 1 { " batch" } @else { " batches" } }
            a.button href=(ctx.url("/workflows")) { "Workflows" }
        }
        div.panel.scroll {
            @if listed.is_empty() {
                p.empty {
                    "No batch yet: push one with " code { "Batch::new().on_success(…).push_all(jobs)" }
                    " and it appears here until its retention runs out."
                }
            } @else {
                table.batches {
                    tr {
                        th { "Batch" } th { "Progress" } th.num { "Pending" } th.num { "Failures" }
                        th.hide-small { "Created" } th { "Callbacks" }
                    }
                    @for batch in &listed {
                        (row(&ctx, batch))
                    }
                }
            }
        }
        (layout::pager(&ctx, "/batches", page_number, PAGE_SIZE, total, &[("order", query.order_name())]))
    };
    Ok(ctx.html(layout::list_page(
        &ctx,
        &stats,
        Tab::Batches,
        "Batches",
        content,
    )))
}

/// One batch's row.
fn row(ctx: &Ctx, batch: &BatchInfo) -> Markup {
    html! {
        tr data-bid=(batch.bid) {
            td {
                a href=(batch_url(ctx, &batch.bid)) {
                    @if batch.description.is_empty() { span.mono { (batch.bid) } }
                    @else { strong { (format::truncate(&batch.description, 120)) } }
                }
                @if !batch.description.is_empty() { br; span.mono.muted { (batch.bid) } }
                @if batch.parent.is_some() { " " span.tag title="a child of another batch" { "nested" } }
                @if let Some(step) = &batch.step { " " span.tag title="a workflow step" { "step " (format::truncate(step, 60)) } }
            }
            @if batch.expired {
                td colspan="3" { span.muted { "expired: its data is gone (retention ran out, or it was deleted)" } }
            } @else {
                td.progress { (progress(batch)) }
                td.num { (format::number(batch.pending)) }
                td.num {
                    @if batch.failed > 0 { span.error { (format::number(batch.failed)) } } @else { "0" }
                    @if batch.dead > 0 { br; span.error { (format::number(batch.dead)) " dead" } }
                }
            }
            td.hide-small { (layout::time(ctx, batch.created_at)) }
            td { (callbacks(batch)) }
        }
    }
}

/// The progress bar: done of total, as a `<progress>` with its figures beside it.
fn progress(batch: &BatchInfo) -> Markup {
    let label = format!(
        "{} of {} done",
        format::number(batch.done()),
        format::number(batch.total)
    );
    html! {
        progress value=(batch.done()) max=(batch.total.max(1)) aria-label=(label) {}
        " " span.figures { (label) }
    }
}

/// The callbacks a batch has, each marked once it fired.
fn callbacks(batch: &BatchInfo) -> Markup {
    html! {
        @for event in EVENTS {
            @let fired = batch.fired_at(event).is_some();
            @if fired || batch.has_callback(event) {
                span class=(if fired { "tag fired" } else { "tag" })
                    title=(if fired { "reached" } else { "not reached yet" }) {
                    @if fired { "✓ " } (event)
                }
            }
        }
    }
}

/// `GET /batches/{bid}`.
pub(crate) async fn show(ctx: Ctx, Path(bid): Path<String>) -> Result<Response, Failure> {
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let batches = Batches::new(client);
    let not_found = || Failure::not_found("no such batch: it expired, was deleted, or never was");
    let bid: Bid = bid.parse().map_err(|_| not_found())?;
    let Some(batch) = batches.get(&bid).await? else {
        return Err(Failure::not_found(
            "no such batch: it expired, was deleted, or never was",
        ));
    };
    let failures = batches.failures(&bid).await?;
    let failed = &failures.members;
    let children = batches.pending_children(&bid).await?;
    let title = if batch.description.is_empty() {
        format!("Batch {}", batch.bid)
    } else {
        batch.description.clone()
    };
    let content = html! {
        div.toolbar {
            h1.grow { (title) }
            (layout::post_button(&ctx, &format!("/batches/{}", segment(&batch.bid)), &[("action", "delete")],
                "Delete batch data", "danger",
                Some("Delete this batch's data (its counts, failures and callbacks)? Its jobs stay where they are and run as jobs of no batch; no callback fires. A workflow step's batch, a nested batch and a batch with pending children are refused.")))
        }
        @if batch.expired {
            p.muted { "This batch's data expired (retention ran out) or was deleted; only its listing is left." }
        }
        div.columns {
            div {
                h2 { "Batch" }
                div.panel {
                    dl.fields {
                        dt { "Bid" } dd.mono { (batch.bid) }
                        dt { "Progress" } dd.progress { (progress(&batch)) }
                        dt { "Pending" } dd { (format::number(batch.pending)) }
                        dt { "Failures" } dd {
                            @if batch.failed > 0 { span.error { (format::number(batch.failed)) } } @else { "0" }
                            @if batch.dead > 0 { ", " span.error { (format::number(batch.dead)) " dead" } }
                        }
                        dt { "Created" } dd { (layout::time(&ctx, batch.created_at)) }
                        @if !batch.sealed && !batch.expired {
                            dt { "Sealed" } dd { span.tag.quiet { "still being created" } }
                        }
                        dt { "Parent" } dd {
                            @match &batch.parent {
                                Some(parent) => a.mono href=(batch_url(&ctx, parent)) { (parent) },
                                None => span.muted { "none" },
                            }
                        }
                        dt { "Children" } dd {
                            @if children.is_empty() { span.muted { "none pending" } }
                            @for child in &children { a.mono href=(batch_url(&ctx, child)) { (child) } " " }
                        }
                        @if let Some(workflow) = &batch.workflow {
                            dt { "Workflow" } dd {
                                a href=(ctx.url(&format!("/workflows/{}", segment(workflow)))) { span.mono { (workflow) } }
                                @if let Some(step) = &batch.step { ", step " strong { (step) } }
                            }
                        }
                    }
                }
            }
            div {
                h2 { "Callbacks" }
                div.panel.scroll {
                    table.callbacks {
                        tr { th { "Event" } th { "Job" } th { "Reached" } }
                        @for event in EVENTS {
                            @let callback = batch.callbacks.iter().find(|callback| callback.event == event);
                            tr data-event=(event) {
                                td { strong { (event) } }
                                td {
                                    @match callback {
                                        Some(callback) if !callback.class.is_empty() => code { (format::truncate(&callback.class, 120)) },
                                        Some(_) => span.muted { "unreadable" },
                                        None => span.muted { "none" },
                                    }
                                }
                                td.fired {
                                    @if batch.fired_at(event).is_some() { "✓ " (layout::time(&ctx, batch.fired_at(event))) }
                                    @else { span.muted { "not yet" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Failed jobs" }
        @if failures.total > failed.len() as u64 {
            p.muted { "showing " (format::number(failed.len() as u64)) " of " (format::number(failures.total)) " failed jobs" }
        }
        div.panel.scroll {
            @if failed.is_empty() {
                p.empty { "No failure." }
            } @else {
                table.failed {
                    tr { th { "Job" } th { "Error" } th.hide-small { "Failed" } th { "Now" } }
                    @for member in failed {
                        (failed_row(&ctx, member, failures.searched))
                    }
                }
            }
        }
    };
    Ok(ctx.html(layout::page(&ctx, &stats, Tab::Batches, &title, content)))
}

/// One failed member's row: the job (or child batch), its last error, and where it waits.
fn failed_row(ctx: &Ctx, member: &BatchFailure, searched: Option<usize>) -> Markup {
    html! {
        tr data-member=(member.member) {
            td {
                @if let Some(child) = &member.child {
                    "batch " a.mono href=(batch_url(ctx, child)) { (child) }
                } @else {
                    code { (format::truncate(&member.class, 120)) } br; span.mono.muted { (member.member) }
                }
            }
            td.args {
                span.error { strong { (member.error_class) } ": " (format::truncate(&member.error_message, 300)) }
            }
            td.hide-small { (layout::time(ctx, member.failed_at)) }
            td {
                @match &member.entry {
                    Some((kind, entry)) => {
                        @let (slug, label) = match kind {
                            SetKind::Dead => ("morgue", "dead"),
                            _ => ("retries", "retrying"),
                        };
                        a.entry href=(ctx.url(&format!("/{slug}/{}", segment(&entry.key())))) { (label) }
                        @if matches!(kind, SetKind::Retry) { " " span.muted { (layout::time(ctx, entry.at())) } }
                    }
                    None => {
                        @if member.dead { span.error { "dead" } " " span.muted { "(no longer in the dead set)" } }
                        @else if member.child.is_some() { span.muted { "see its page" } }
                        @else if let Some(searched) = searched {
                            span.muted { "entry not found in the first " (format::number(searched as u64)) " of the retry and dead sets" }
                        }
                        @else { span.muted { "running or queued" } }
                    }
                }
            }
        }
    }
}

/// `POST /batches/{bid}`: `action` is `delete`.
pub(crate) async fn act(
    ctx: Ctx,
    Path(bid): Path<String>,
    form: Form,
) -> Result<Response, Failure> {
    if form.get("action") != Some("delete") {
        return Err(Failure::bad_request("the action must be delete"));
    }
    let bid: Bid = bid
        .parse()
        .map_err(|_| Failure::not_found("no such batch"))?;
    let batches = Batches::new(ctx.client());
    if let Some(batch) = batches.get(&bid).await?
        && let Some(reason) = delete_refusal(&batch, &batches.pending_children(&bid).await?)
    {
        return Err(Failure::conflict(reason));
    }
    if !batches.delete(&bid).await? {
        return Err(Failure::not_found("no such batch"));
    }
    Ok(ctx.redirect("/batches"))
}

/// Why deleting `batch`'s data would strand other data, if it would: a workflow step's batch
/// (its dependents never run; an advance sent again would re-create it and run the step
/// twice), a nested batch (it stays pending in its parent for good), a batch with pending
/// child batches (they would update a batch that is gone).
fn delete_refusal(batch: &BatchInfo, children: &[String]) -> Option<String> {
    if let Some(workflow) = &batch.workflow {
        return Some(format!(
            "batch {} is step {} of workflow {workflow}: deleting its data would leave the              workflow's later steps never running (and an advance sent again would run the              step twice). Let it finish, or let its retention run out with the workflow's",
            batch.bid,
            batch.step.as_deref().unwrap_or("?"),
        ));
    }
    if let Some(parent) = &batch.parent {
        return Some(format!(
            "batch {} is nested in parent batch {parent}: deleting its data would leave it              pending in the parent for good (the parent's success never fires). Let it finish,              or delete the parent once nothing else needs it",
            batch.bid
        ));
    }
    if !children.is_empty() {
        return Some(format!(
            "batch {} has {} pending child batch(es) ({}): deleting its data would leave them              updating a parent that is gone. Let them finish first",
            batch.bid,
            children.len(),
            children.join(", ")
        ));
    }
    None
}

/// The address of the batch `bid`'s page.
fn batch_url(ctx: &Ctx, bid: &str) -> String {
    ctx.url(&format!("/batches/{}", segment(bid)))
}

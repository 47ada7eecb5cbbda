//! The workflows, under the batches tab: every workflow newest first with its state and
//! progress, and a workflow's page listing its steps with their states and dependencies, each
//! step linked to its batch (`docs/batches.md`, "Workflows").

use std::collections::HashSet;

use axum::extract::{Path, Query};
use axum::response::Response;
use maud::{Markup, html};

use super::{ListQuery, PAGE_SIZE, segment};
use crate::api::{Page, Stats, Workflows};
use crate::web::context::Ctx;
use crate::web::failure::Failure;
use crate::web::format;
use crate::web::layout::{self, Tab};
use crate::workflow::{StepState, StepStatus, WorkflowId, WorkflowState, WorkflowStatus};

/// `GET /workflows`.
pub(crate) async fn list(ctx: Ctx, Query(query): Query<ListQuery>) -> Result<Response, Failure> {
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let workflows = Workflows::new(client);
    let total = workflows.size().await?;
    let page_number = query.page();
    let listed = workflows
        .page(Page::numbered(page_number, PAGE_SIZE, query.order()))
        .await?;
    let content = html! {
        div.toolbar {
            h1.grow { "Workflows" }
            a.button href=(ctx.url("/batches")) { "Batches" }
        }
        div.panel.scroll {
            @if listed.is_empty() {
                p.empty {
                    "No workflow yet: push one with " code { "Workflow::new(…).step(…).push()" }
                    " and it appears here until its retention runs out."
                }
            } @else {
                table.workflows {
                    tr { th { "Workflow" } th { "State" } th { "Steps" } th.hide-small { "Created" } }
                    @for workflow in &listed {
                        tr data-wid=(workflow.id.as_str()) {
                            td {
                                a href=(workflow_url(&ctx, &workflow.id)) {
                                    @if workflow.description.is_empty() { span.mono { (workflow.id.as_str()) } }
                                    @else { strong { (format::truncate(&workflow.description, 120)) } }
                                }
                                @if !workflow.description.is_empty() { br; span.mono.muted { (workflow.id.as_str()) } }
                            }
                            td { (workflow_state(workflow.state)) }
                            td.progress { (progress(workflow.succeeded, workflow.total)) }
                            td.hide-small { (layout::time(&ctx, Some(workflow.created_at))) }
                        }
                    }
                }
            }
        }
        (layout::pager(&ctx, "/workflows", page_number, PAGE_SIZE, total, &[("order", query.order_name())]))
    };
    Ok(ctx.html(layout::list_page(
        &ctx,
        &stats,
        Tab::Batches,
        "Workflows",
        content,
    )))
}

/// `GET /workflows/{wid}`.
pub(crate) async fn show(ctx: Ctx, Path(wid): Path<String>) -> Result<Response, Failure> {
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    // Never a read of another key (`workflow:<x>:done` is a set): only an id's shape is read.
    let Ok(wid) = WorkflowId::parse(&wid) else {
        return Err(Failure::not_found(
            "no such workflow: a workflow id is 14 URL-safe base64 characters",
        ));
    };
    let Some(workflow) = Workflows::new(client).status(&wid).await? else {
        return Err(Failure::not_found(
            "no such workflow: it expired, or never was",
        ));
    };
    let batches = existing_batches(client, &workflow).await?;
    let title = if workflow.description.is_empty() {
        format!("Workflow {}", workflow.id)
    } else {
        workflow.description.clone()
    };
    let content = html! {
        div.toolbar {
            h1.grow { (title) }
            a.button href=(ctx.url("/workflows")) { "Workflows" }
        }
        div.panel {
            dl.fields {
                dt { "Id" } dd.mono { (workflow.id.as_str()) }
                dt { "State" } dd { (workflow_state(workflow.state)) }
                dt { "Steps" } dd.progress { (steps_progress(&workflow)) }
                dt { "Created" } dd { (layout::time(&ctx, Some(workflow.created_at))) }
                @if workflow.succeeded_at.is_some() {
                    dt { "Succeeded" } dd { (layout::time(&ctx, workflow.succeeded_at)) }
                }
                @if workflow.dead_at.is_some() {
                    dt { "A step died" } dd { (layout::time(&ctx, workflow.dead_at)) }
                }
                dt { "Queue" } dd { a href=(ctx.url(&format!("/queues/{}", segment(&workflow.queue)))) { (workflow.queue) } }
            }
        }
        h2 { "Steps" }
        div.panel.scroll {
            table.steps {
                tr { th { "Step" } th { "Runs after" } th { "Job" } th { "State" } th { "Batch" } }
                @for step in &workflow.steps {
                    (step_row(&ctx, step, batches.contains(&step.bid)))
                }
            }
        }
    };
    Ok(ctx.html(layout::page(&ctx, &stats, Tab::Batches, &title, content)))
}

/// The bids of `workflow`'s steps whose batch exists now: a started step's batch may not be
/// created yet (or its data is gone), and a link to it would be a 404. One `EXISTS` per step
/// not waiting, in one round trip.
async fn existing_batches(
    client: &crate::client::Client,
    workflow: &WorkflowStatus,
) -> Result<HashSet<String>, Failure> {
    let started: Vec<&str> = workflow
        .steps
        .iter()
        .filter(|step| step.state != StepState::Waiting && !step.bid.is_empty())
        .map(|step| step.bid.as_str())
        .collect();
    if started.is_empty() {
        return Ok(HashSet::new());
    }
    let keys = client.keys();
    let mut pipeline = redis::pipe();
    for bid in &started {
        pipeline.cmd("EXISTS").arg(keys.batch(bid));
    }
    let exists: Vec<bool> = client.redis().query(&pipeline).await?;
    Ok(started
        .into_iter()
        .zip(exists)
        .filter(|(_, exists)| *exists)
        .map(|(bid, _)| bid.to_owned())
        .collect())
}

/// One step's row: name, dependencies, job, state (with its last error), batch (linked when
/// `batch_exists`).
fn step_row(ctx: &Ctx, step: &StepStatus, batch_exists: bool) -> Markup {
    html! {
        tr data-step=(step.name) {
            td { strong { (format::truncate(&step.name, 120)) } }
            td {
                @if step.depends_on.is_empty() { span.muted { "—" } }
                @for (index, dep) in step.depends_on.iter().enumerate() {
                    @if index > 0 { ", " }
                    (format::truncate(dep, 120))
                }
            }
            td { code { (format::truncate(&step.class, 120)) } br; span.mono.muted { (step.jid) } }
            td.state {
                (step_state(step.state))
                @if let Some(error) = &step.last_error {
                    br; span.error { (format::truncate(error, 300)) }
                }
            }
            td {
                @if step.state == StepState::Waiting { span.muted { "not started" } }
                @else if batch_exists { a.mono href=(ctx.url(&format!("/batches/{}", segment(&step.bid)))) { (step.bid) } }
                @else { span.mono { (step.bid) } " " span.muted { "(no batch data: not created yet, or gone)" } }
            }
        }
    }
}

/// Steps succeeded of all, as a progress bar.
fn steps_progress(workflow: &WorkflowStatus) -> Markup {
    let done = workflow
        .steps
        .iter()
        .filter(|step| step.state == StepState::Succeeded)
        .count();
    progress(done, workflow.steps.len())
}

/// A progress bar of `done` steps out of `total`.
fn progress(done: usize, total: usize) -> Markup {
    let label = format!("{done} of {total} steps done");
    html! {
        progress value=(done) max=(total.max(1)) aria-label=(label) {}
        " " span.figures { (label) }
    }
}

/// A workflow's state as a tag.
fn workflow_state(state: WorkflowState) -> Markup {
    let class = match state {
        WorkflowState::Succeeded => "tag fired",
        WorkflowState::Dead => "tag dead",
        _ => "tag",
    };
    html! { span class=(class) { (state.as_str()) } }
}

/// A step's state as a tag.
fn step_state(state: StepState) -> Markup {
    let class = match state {
        StepState::Succeeded => "tag fired",
        StepState::Dead => "tag dead",
        StepState::Retrying => "tag quiet",
        _ => "tag",
    };
    html! { span class=(class) { (state.as_str()) } }
}

/// The address of the workflow `wid`'s page.
fn workflow_url(ctx: &Ctx, wid: &WorkflowId) -> String {
    ctx.url(&format!("/workflows/{}", segment(wid.as_str())))
}

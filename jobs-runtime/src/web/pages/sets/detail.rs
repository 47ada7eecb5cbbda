//! The page of one entry of a set: every field of its job, the error and its backtrace, and what
//! can be done to it.

use maud::{Markup, html};

use super::View;
use crate::api::{SetKind, SortedEntry, UniqueLock};
use crate::web::context::Ctx;
use crate::web::layout;
use crate::web::pages::segment;

/// The fields shown first, in this order, with their labels; the rest follow as stored.
const KNOWN_FIELDS: [&str; 17] = [
    "class",
    "wrapped",
    "args",
    "jid",
    "queue",
    "created_at",
    "enqueued_at",
    "retry",
    "retry_count",
    "failed_at",
    "retried_at",
    "error_class",
    "error_message",
    "error_backtrace",
    "tags",
    "bid",
    "at",
];

/// The page of `entry`, of the set `view` shows; `lock` is the unique lock it takes, if held.
pub(super) fn page(
    ctx: &Ctx,
    view: &View,
    entry: &SortedEntry,
    lock: Option<&UniqueLock>,
) -> Markup {
    let record = &entry.record;
    let action_path = format!("/{}/{}", view.slug, segment(&entry.key()));
    let pretty_args = serde_json::to_string_pretty(&record.display_args()).unwrap_or_default();
    let others: Vec<(&String, &serde_json::Value)> = record
        .fields()
        .map(|fields| {
            fields
                .iter()
                .filter(|(name, _)| !KNOWN_FIELDS.contains(&name.as_str()))
                .collect()
        })
        .unwrap_or_default();
    html! {
        div.toolbar {
            h1.grow { (record.display_class()) }
            @for action in view.actions {
                form.inline method="post" action=(ctx.url(&action_path)) {
                    (layout::csrf(ctx))
                    button type="submit" name="action" value=(action.name())
                        class=[matches!(action.name(), "delete" | "kill").then_some("danger")] {
                        (action.label())
                    }
                }
            }
        }
        div.panel {
            dl.fields {
                dt { (view.when) } dd { (layout::time(ctx, entry.at())) }
                dt { "Queue" } dd { (record.queue()) }
                dt { "Class" } dd { code { (record.class()) } }
                @if record.display_class() != record.class() {
                    dt { "Runs as" } dd { code { (record.display_class()) } }
                }
                dt { "Jid" } dd.mono { (record.jid()) }
                dt { "Created" } dd { (layout::time(ctx, record.created_at())) }
                dt { "Enqueued" } dd { (layout::time(ctx, record.enqueued_at())) }
                @if let Some(retry) = record.get("retry") {
                    dt { "Retry" } dd.mono { (retry) }
                }
                @if view.kind != SetKind::Scheduled {
                    dt { "Retry count" } dd { (record.retry_count().map(|count| count.to_string()).unwrap_or_else(|| "0".to_owned())) }
                    dt { "Failed" } dd { (layout::time(ctx, record.failed_at())) }
                    @if record.retried_at().is_some() {
                        dt { "Last retried" } dd { (layout::time(ctx, record.retried_at())) }
                    }
                }
                @let tags = record.tags();
                @if !tags.is_empty() {
                    dt { "Tags" } dd { @for tag in &tags { span.tag { (tag) } } }
                }
                @if record.unique_digest().is_some() {
                    dt { "Unique lock" } dd { (unique_lock(ctx, record.jid(), lock)) }
                }
                @if let Some(batch) = record.get("bid") {
                    dt { "Batch" } dd.mono {
                        @match batch.as_str() {
                            Some(bid) => a href=(ctx.url(&format!("/batches/{}", segment(bid)))) { (bid) },
                            None => (batch),
                        }
                    }
                }
                @for (name, value) in &others {
                    dt.mono { (name) } dd.mono { (value) }
                }
            }
        }
        h2 { "Arguments" }
        pre { (pretty_args) }
        @if record.error_class().is_some() || record.error_message().is_some() {
            h2 { "Error" }
            div.panel {
                p.error {
                    strong { (record.error_class().unwrap_or_default()) }
                    ": " (record.error_message().unwrap_or_default())
                }
                @if let Some(lines) = record.error_backtrace() {
                    pre { @for line in &lines { (line) "\n" } }
                } @else if record.get("error_backtrace").is_some() {
                    p.muted { "The stored backtrace cannot be shown: it is not in Sidekiq's form, or inflates past 1 MiB." }
                }
            }
        }
        h2 { "As stored" }
        @if !record.is_utf8() {
            p.error { "Not UTF-8, so not a job: each invalid byte shows as \u{fffd}." }
        }
        pre { (record.raw()) }
    }
}

/// What the job page says of a unique job's lock: whether this job holds it, and until when.
fn unique_lock(ctx: &Ctx, jid: &str, lock: Option<&UniqueLock>) -> Markup {
    let runs_out = lock
        .and_then(|lock| lock.expires_in)
        .and_then(|left| chrono::TimeDelta::from_std(left).ok())
        .map(|left| chrono::Utc::now() + left);
    match lock {
        Some(lock) if lock.holder == jid => html! {
            "held by this job"
            @if runs_out.is_some() {
                "; runs out " (layout::time(ctx, runs_out))
            }
        },
        Some(lock) => html! {
            "held by another job, " span.mono { (lock.holder) }
        },
        None => html! { span.muted { "not held: a job like this one can be pushed" } },
    }
}

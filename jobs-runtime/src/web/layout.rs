//! The frame every page shares, and the small pieces pages are made of. Every value goes
//! through maud, which escapes it; nothing is marked pre-escaped.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::context::Ctx;
use super::format;
use super::security::CSRF_FIELD;
use crate::api::Stats;

/// The tabs along the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Dashboard,
    Busy,
    Queues,
    Retries,
    Scheduled,
    Dead,
    Periodic,
    Batches,
    Metrics,
    Limits,
}

/// A whole page: the header with its tabs, the summary of counts, then `content`.
pub(crate) fn page(ctx: &Ctx, stats: &Stats, tab: Tab, title: &str, content: Markup) -> Markup {
    frame(ctx, stats, tab, title, content, false)
}

/// A list page ([`page`]) with a "Live poll" toggle: the script then reloads the page's
/// content every few seconds in place, as Sidekiq's list pages do.
pub(crate) fn list_page(
    ctx: &Ctx,
    stats: &Stats,
    tab: Tab,
    title: &str,
    content: Markup,
) -> Markup {
    frame(ctx, stats, tab, title, content, true)
}

/// The frame of every page; `live` adds the live-poll toggle, hidden until the script shows
/// it (without the script there is nothing to toggle).
fn frame(ctx: &Ctx, stats: &Stats, tab: Tab, title: &str, content: Markup, live: bool) -> Markup {
    let tabs = [
        (Tab::Dashboard, "/", "Dashboard", None),
        (Tab::Busy, "/busy", "Busy", Some(stats.workers_size)),
        (Tab::Queues, "/queues", "Queues", Some(stats.enqueued)),
        (Tab::Retries, "/retries", "Retries", Some(stats.retry_size)),
        (
            Tab::Scheduled,
            "/scheduled",
            "Scheduled",
            Some(stats.scheduled_size),
        ),
        (Tab::Dead, "/morgue", "Dead", Some(stats.dead_size)),
        (Tab::Periodic, "/periodic", "Periodic", None),
        (Tab::Batches, "/batches", "Batches", None),
        (Tab::Metrics, super::pages::metrics::PATH, "Metrics", None),
        (Tab::Limits, "/limits", "Limits", None),
    ];
    let client = ctx.client();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // Light or dark as the system is, from the first paint (the stylesheet follows).
                meta name="color-scheme" content="light dark";
                title { (title) " · jobs" }
                link rel="stylesheet" href=(ctx.url(&format!("/assets/app.css?v={}", assets::VERSION)));
                script src=(ctx.url(&format!("/assets/app.js?v={}", assets::VERSION))) defer {}
            }
            body {
                header.top {
                    div.bar {
                        a.brand href=(ctx.url("/")) { "jobs" }
                        nav {
                            @for (item, path, label, count) in tabs {
                                a class=[(item == tab).then_some("active")] href=(ctx.url(path)) {
                                    (label)
                                    @if let Some(count) = count {
                                        span.count { (format::number(count)) }
                                    }
                                }
                            }
                        }
                        @if live {
                            button.live-toggle #live-poll type="button" aria-pressed="false" hidden
                                title="Reload this list every few seconds (the dashboard's slider sets how often)" {
                                "Live poll"
                            }
                        }
                    }
                }
                main {
                    (summary(ctx, stats))
                    (content)
                }
                footer {
                    "Redis " code { (client.url()) }
                    @if let Some(namespace) = client.namespace() {
                        " · namespace " code { (namespace) }
                    }
                    " · " (format::exact(ctx.now))
                }
            }
        }
    }
}

fn summary(ctx: &Ctx, stats: &Stats) -> Markup {
    let cards = [
        ("processed", "Processed", stats.processed, "/"),
        ("failed", "Failed", stats.failed, "/"),
        ("busy", "Busy", stats.workers_size, "/busy"),
        ("enqueued", "Enqueued", stats.enqueued, "/queues"),
        ("retries", "Retries", stats.retry_size, "/retries"),
        ("scheduled", "Scheduled", stats.scheduled_size, "/scheduled"),
        ("dead", "Dead", stats.dead_size, "/morgue"),
    ];
    html! {
        div.summary {
            @for (key, label, value, path) in cards {
                a href=(ctx.url(path)) {
                    span.value data-stat=(key) { (format::number(value)) }
                    span.label { (label) }
                }
            }
        }
    }
}

/// A time shown relative ("3 minutes ago"), exact on hover; a dash when unknown.
pub(crate) fn time(ctx: &Ctx, at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => html! {
            time datetime=(at.to_rfc3339()) title=(format::exact(at)) data-relative {
                (format::relative(at, ctx.now))
            }
        },
        None => html! { span.muted { "—" } },
    }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(ctx.token); }
}

/// A POST button in a form of its own: `action` is a dashboard path.
pub(crate) fn post_button(
    ctx: &Ctx,
    action: &str,
    fields: &[(&str, &str)],
    label: &str,
    class: &str,
    confirm: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action=(ctx.url(action)) data-confirm=[confirm] {
            (csrf(ctx))
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" class=(class) { (label) }
        }
    }
}

/// Links to the pages of a list of `total` entries, `size` to a page, keeping `query`.
pub(crate) fn pager(
    ctx: &Ctx,
    path: &str,
    current: usize,
    size: usize,
    total: usize,
    query: &[(&str, &str)],
) -> Markup {
    let pages = total.div_ceil(size.max(1)).max(1);
    if pages <= 1 {
        return html! {};
    }
    let link = |number: usize| {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in query {
            if !value.is_empty() {
                serializer.append_pair(name, value);
            }
        }
        serializer.append_pair("page", &number.to_string());
        ctx.url(&format!("{path}?{}", serializer.finish()))
    };
    let first = current.saturating_sub(3).max(1);
    let last = (current + 3).min(pages);
    html! {
        nav.pager aria-label="pages" {
            @if current > 1 { a.button href=(link(current - 1)) { "‹ Previous" } }
            @if first > 1 { a href=(link(1)) { "1" } span.muted { "…" } }
            @for number in first..=last {
                @if number == current { span.current { (number) } }
                @else { a href=(link(number)) { (number) } }
            }
            @if last < pages { span.muted { "…" } a href=(link(pages)) { (format::number(pages as u64)) } }
            @if current < pages { a.button href=(link(current + 1)) { "Next ›" } }
        }
    }
}

/// A job's class and arguments, cut short for a table cell.
pub(crate) fn job_cells(record: &crate::api::JobRecord) -> Markup {
    html! {
        td { code { (format::truncate(&record.display_class(), 120)) } }
        td.args { code { (format::args(&record.display_args(), 300)) } }
    }
}

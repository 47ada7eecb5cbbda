//! The retries, scheduled and dead tabs: one sorted set each, with the same list, filter, bulk
//! actions and detail pages (`detail.rs`).

mod detail;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::{get, post};
use maud::html;

use super::{ListQuery, MAX_FILTER_CHARS, PAGE_SIZE};
use crate::api::{
    JobSet, MAX_SEARCH_MATCHES, Order, Page, SearchResult, SetKind, SortedEntry, Stats,
};
use crate::web::Mounted;
use crate::web::context::{Ctx, Form};
use crate::web::failure::Failure;
use crate::web::format;
use crate::web::layout::{self, Tab};

/// An action on entries of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Retry,
    AddToQueue,
    Kill,
    Delete,
}

impl Action {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "retry" => Some(Self::Retry),
            "add_to_queue" => Some(Self::AddToQueue),
            "kill" => Some(Self::Kill),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::AddToQueue => "add_to_queue",
            Self::Kill => "kill",
            Self::Delete => "delete",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Retry => "Retry now",
            Self::AddToQueue => "Add to queue",
            Self::Kill => "Kill",
            Self::Delete => "Delete",
        }
    }
}

/// How each set is shown, and what can be done to it (Sidekiq's choices).
pub(crate) struct View {
    pub(crate) kind: SetKind,
    pub(crate) slug: &'static str,
    pub(crate) title: &'static str,
    pub(crate) tab: Tab,
    pub(crate) when: &'static str,
    pub(crate) actions: &'static [Action],
}

pub(crate) fn view(kind: SetKind) -> View {
    match kind {
        SetKind::Retry => View {
            kind,
            slug: "retries",
            title: "Retries",
            tab: Tab::Retries,
            when: "Next retry",
            actions: &[Action::Retry, Action::Delete, Action::Kill],
        },
        SetKind::Scheduled => View {
            kind,
            slug: "scheduled",
            title: "Scheduled",
            tab: Tab::Scheduled,
            when: "When",
            actions: &[Action::AddToQueue, Action::Delete],
        },
        SetKind::Dead => View {
            kind,
            slug: "morgue",
            title: "Dead",
            tab: Tab::Dead,
            when: "Died",
            actions: &[Action::Retry, Action::Delete],
        },
    }
}

/// Adds the set's routes: the list, bulk and whole-set actions, one entry and its actions.
pub(crate) fn routes(router: Router<Arc<Mounted>>, kind: SetKind) -> Router<Arc<Mounted>> {
    let slug = view(kind).slug;
    router
        .route(
            &format!("/{slug}"),
            get(move |ctx: Ctx, query: Query<ListQuery>| list(kind, ctx, query))
                .post(move |ctx: Ctx, form: Form| act_on_selected(kind, ctx, form)),
        )
        .route(
            &format!("/{slug}/all/{{action}}"),
            post(move |ctx: Ctx, action: Path<String>, form: Form| {
                act_on_all(kind, ctx, action, form)
            }),
        )
        .route(
            &format!("/{slug}/{{key}}"),
            get(move |ctx: Ctx, key: Path<String>| show(kind, ctx, key)).post(
                move |ctx: Ctx, key: Path<String>, form: Form| act_on_one(kind, ctx, key, form),
            ),
        )
}

async fn list(
    kind: SetKind,
    ctx: Ctx,
    Query(query): Query<ListQuery>,
) -> Result<Response, Failure> {
    let view = view(kind);
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let set = ctx.job_set(kind);
    let filter = query.filter()?;
    let page_number = query.page();
    let mut searched = None;
    let (entries, total) = if filter.is_empty() {
        let page = Page::numbered(page_number, PAGE_SIZE, query.order());
        // The summary read the set's size a moment ago.
        let total = match kind {
            SetKind::Retry => stats.retry_size,
            SetKind::Scheduled => stats.scheduled_size,
            SetKind::Dead => stats.dead_size,
        };
        (
            set.page(page).await?,
            usize::try_from(total).unwrap_or(usize::MAX),
        )
    } else {
        let mut found = set
            .search(filter, MAX_SEARCH_MATCHES, query.order())
            .await?;
        let total = found.entries.len();
        let shown = query.slice(std::mem::take(&mut found.entries), PAGE_SIZE);
        searched = Some(found);
        (shown, total)
    };
    let path = format!("/{}", view.slug);
    let flipped = match query.order() {
        Order::NewestFirst => "asc",
        Order::OldestFirst => "desc",
    };
    let mut flip = form_urlencoded::Serializer::new(String::new());
    flip.append_pair("order", flipped);
    if !filter.is_empty() {
        flip.append_pair("substr", filter);
    }
    let content = html! {
        div.toolbar {
            h1.grow { (view.title) }
            form.inline method="get" action=(ctx.url(&path)) role="search" {
                input type="search" name="substr" value=(filter) placeholder="Filter by class, args, error…"
                    maxlength=(MAX_FILTER_CHARS) aria-label="filter";
                input type="hidden" name="order" value=(query.order_name());
                " " button type="submit" { "Filter" }
            }
        }
        form method="post" action=(ctx.url(&path)) {
            (layout::csrf(&ctx))
            div.toolbar {
                span.grow.muted {
                    (format::number(total as u64))
                    @if let Some(searched) = &searched {
                        @if searched.partial { " or more" }
                        " matching"
                        @if searched.partial { (partial_note(searched, query.order())) }
                    }
                    @else if total == 1 { " job" } @else { " jobs" }
                }
                @for action in view.actions {
                    button type="submit" name="action" value=(action.name())
                        class=[(*action == Action::Delete || *action == Action::Kill).then_some("danger")] {
                        (action.label()) " selected"
                    }
                }
            }
            div.panel.scroll {
                @if entries.is_empty() {
                    p.empty { @if filter.is_empty() { "Nothing here." } @else { "No job matches." } }
                } @else {
                    table {
                        tr {
                            th { input type="checkbox" data-select-all aria-label="select all"; }
                            th { a href=(ctx.url(&format!("{path}?{}", flip.finish()))) {
                                (view.when) @if query.order() == Order::NewestFirst { " ↓" } @else { " ↑" }
                            } }
                            @if kind == SetKind::Retry { th.num { "Retries" } }
                            th { "Queue" } th { "Job" } th { "Arguments" }
                            @if kind != SetKind::Scheduled { th { "Error" } }
                        }
                        @for entry in &entries {
                            (row(&ctx, &view, entry))
                        }
                    }
                }
            }
        }
        (layout::pager(&ctx, &path, page_number, PAGE_SIZE, total,
            &[("order", query.order_name()), ("substr", filter)]))
        div.toolbar {
            span.grow {}
            @for action in view.actions {
                form.inline method="post" action=(ctx.url(&format!("{path}/all/{}", action.name())))
                    data-confirm=(format!("{} every job in {}?", action.label(), view.title.to_lowercase())) {
                    (layout::csrf(&ctx))
                    button type="submit" class=[(*action == Action::Delete || *action == Action::Kill).then_some("danger")] {
                        (action.label()) " all"
                    }
                }
            }
        }
    };
    Ok(ctx.html(layout::list_page(
        &ctx, &stats, view.tab, view.title, content,
    )))
}

/// What a search that stopped early read, and how to find more: it stops after
/// [`MAX_SEARCH_MATCHES`] matches, or [`MAX_SEARCH_SCANNED`](crate::api::MAX_SEARCH_SCANNED)
/// members read from the end the order starts at.
fn partial_note(searched: &SearchResult, order: Order) -> String {
    let end = match order {
        Order::NewestFirst => "newest",
        Order::OldestFirst => "oldest",
    };
    format!(
        "; searched the {end} {} of {} jobs: narrow the filter, or flip the order to search \
         from the other end",
        format::number(searched.scanned as u64),
        format::number(searched.size as u64),
    )
}

fn row(ctx: &Ctx, view: &View, entry: &SortedEntry) -> maud::Markup {
    let record = &entry.record;
    let detail = ctx.url(&format!("/{}/{}", view.slug, super::segment(&entry.key())));
    html! {
        tr {
            td { input type="checkbox" name="key" value=(entry.key()) aria-label="select"; }
            td { a href=(detail) { (layout::time(ctx, entry.at())) } }
            @if view.kind == SetKind::Retry { td.num { (record.retry_count().unwrap_or(0)) } }
            td { (record.queue()) }
            @if record.is_job() {
                (layout::job_cells(record))
            } @else {
                td { span.error { "not a job" @if !record.is_utf8() { " (not UTF-8)" } } }
                td.args { code { (format::truncate(record.raw(), 300)) } }
            }
            @if view.kind != SetKind::Scheduled {
                td.error {
                    @if let Some(class) = record.error_class() { strong { (format::truncate(class, 80)) } ": " }
                    (format::truncate(record.error_message().unwrap_or_default(), 200))
                }
            }
        }
    }
}

async fn show(kind: SetKind, ctx: Ctx, Path(key): Path<String>) -> Result<Response, Failure> {
    let view = view(kind);
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let entry = ctx.job_set(kind).fetch_key(&key).await?.ok_or_else(|| {
        Failure::not_found("that job is no longer here: it ran, moved or was deleted")
    })?;
    let lock = crate::api::UniqueLocks::new(client)
        .of_job(&entry.record)
        .await?;
    let content = detail::page(&ctx, &view, &entry, lock.as_ref());
    Ok(ctx.html(layout::page(&ctx, &stats, view.tab, view.title, content)))
}

async fn act_on_one(
    kind: SetKind,
    ctx: Ctx,
    Path(key): Path<String>,
    form: Form,
) -> Result<Response, Failure> {
    act_on_keys(kind, &ctx, form.get("action"), &[key.as_str()]).await
}

async fn act_on_selected(kind: SetKind, ctx: Ctx, form: Form) -> Result<Response, Failure> {
    act_on_keys(kind, &ctx, form.get("action"), &form.all("key")).await
}

/// Runs `action` on the entries named by `keys` (at most a page's worth) that are still there.
async fn act_on_keys(
    kind: SetKind,
    ctx: &Ctx,
    action: Option<&str>,
    keys: &[&str],
) -> Result<Response, Failure> {
    let view = view(kind);
    let action = allowed(&view, action)?;
    let set = ctx.job_set(kind);
    let mut entries = Vec::new();
    for key in keys.iter().take(PAGE_SIZE) {
        if let Some(entry) = set.fetch_key(key).await? {
            entries.push(entry);
        }
    }
    apply(&set, action, &entries).await?;
    Ok(ctx.redirect(&format!("/{}", view.slug)))
}

async fn act_on_all(
    kind: SetKind,
    ctx: Ctx,
    Path(action): Path<String>,
    _form: Form,
) -> Result<Response, Failure> {
    let view = view(kind);
    let action = allowed(&view, Some(&action))?;
    let set = ctx.job_set(kind);
    match action {
        Action::Retry => set.retry_all().await?,
        Action::AddToQueue => set.add_all_to_queue().await?,
        Action::Kill => set.kill_all().await?,
        Action::Delete => set.clear().await?,
    };
    Ok(ctx.redirect(&format!("/{}", view.slug)))
}

fn allowed(view: &View, name: Option<&str>) -> Result<Action, Failure> {
    name.and_then(Action::parse)
        .filter(|action| view.actions.contains(action))
        .ok_or_else(|| {
            let names: Vec<&str> = view.actions.iter().map(|action| action.name()).collect();
            Failure::bad_request(format!("the action must be one of: {}", names.join(", ")))
        })
}

async fn apply(set: &JobSet, action: Action, entries: &[SortedEntry]) -> Result<usize, Failure> {
    Ok(match action {
        Action::Retry => set.retry(entries).await?,
        Action::AddToQueue => set.add_to_queue(entries).await?,
        Action::Kill => set.kill(entries).await?,
        Action::Delete => set.delete(entries).await?,
    })
}

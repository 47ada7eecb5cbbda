//! The Metrics tab, Sidekiq 8's Metrics pages: every job class over a period (runs, failures,
//! total and mean time, p50/p95/p99, a chart of the slowest), and one class's page (its
//! histogram, its series, deploy marks). Charts are SVG drawn here: no script.
//!
//! Every input is checked before use: `period` must be one of Sidekiq's seven names, the
//! filter and the class name are capped in length (Sidekiq's CVE-2023-1892 and CVE-2024-32887
//! were XSS through exactly these), and every value is escaped by maud, never put in a script.

use axum::extract::{Path, Query};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::segment;
use crate::api::{
    ClassMetrics, DeployMark, MAX_CLASS_CHARS, MAX_FILTER_CHARS, Metrics, MetricsReport, Period,
    Stats,
};
use crate::metrics::BUCKET_LABELS;
use crate::web::context::Ctx;
use crate::web::failure::Failure;
use crate::web::format;
use crate::web::layout::{self, Tab};

/// The path of the Metrics tab (`/metrics` itself is the Prometheus endpoint).
pub(crate) const PATH: &str = "/metrics/classes";

/// How many classes the overview chart draws (the most total time first), as Sidekiq's.
const CHART_CLASSES: usize = 5;

/// Line colours of the chart's classes: mid tones, legible on light and dark backgrounds.
const COLOURS: [&str; CHART_CLASSES] = ["#2f7dd3", "#d9822b", "#2f9e5b", "#b04ac4", "#c2372f"];

/// The chart's size in SVG units.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;

/// `?period=1h&substr=…`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MetricsQuery {
    period: Option<String>,
    substr: Option<String>,
}

impl MetricsQuery {
    /// The period asked for (1 h by default); 400 for any other name than Sidekiq's seven.
    fn period(&self) -> Result<Period, Failure> {
        match self.period.as_deref() {
            None | Some("") => Ok(Period::Hour),
            Some(name) => Period::parse(name).ok_or_else(|| {
                let names: Vec<&str> = Period::ALL.iter().map(|p| p.name()).collect();
                Failure::bad_request(format!("period must be one of {}", names.join(", ")))
            }),
        }
    }

    /// The class filter, trimmed; 400 past [`MAX_FILTER_CHARS`].
    fn filter(&self) -> Result<&str, Failure> {
        let filter = self.substr.as_deref().unwrap_or_default().trim();
        if filter.chars().count() > MAX_FILTER_CHARS {
            return Err(Failure::bad_request(format!(
                "the filter is longer than {MAX_FILTER_CHARS} characters"
            )));
        }
        Ok(filter)
    }
}

/// `GET /metrics/classes`.
pub(crate) async fn overview(
    ctx: Ctx,
    Query(query): Query<MetricsQuery>,
) -> Result<Response, Failure> {
    let period = query.period()?;
    let filter = query.filter()?;
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let report = Metrics::new(client).top(period, filter, ctx.now).await?;
    let chart: Vec<&ClassMetrics> = report.classes.iter().take(CHART_CLASSES).collect();
    let with_filter = |period: Period| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("period", period.name());
        if !filter.is_empty() {
            query.append_pair("substr", filter);
        }
        ctx.url(&format!("{PATH}?{}", query.finish()))
    };
    let content = html! {
        h1 { "Metrics" }
        div.toolbar {
            (period_tabs(&report, with_filter))
            form.inline.grow method="get" action=(ctx.url(PATH)) {
                input type="hidden" name="period" value=(period.name());
                input type="search" name="substr" value=(filter) maxlength=(MAX_FILTER_CHARS)
                    placeholder="Filter classes" aria-label="filter classes";
                button type="submit" { "Filter" }
            }
        }
        div.panel.graph id="metrics-chart" {
            div.toolbar { h2.grow { "Total execution time (seconds)" } }
            @if chart.is_empty() {
                p.empty { "No job ran in this period." }
            } @else {
                (series_chart(&report, &chart))
            }
        }
        @if !chart.is_empty() {
            (legend(chart.iter().map(|class| class.class.as_str()).zip(COLOURS), !report.marks.is_empty()))
        }
        div.panel.scroll {
            table id="metrics-table" {
                tr {
                    th { "Class" } th.num { "Succeeded" } th.num { "Failed" }
                    th.num { "Total time" } th.num { "Mean" }
                    th.num title="estimated from the histograms" { "p50" } th.num { "p95" } th.num { "p99" }
                }
                @if report.classes.is_empty() {
                    tr { td.empty colspan="8" { "No data in this period." } }
                }
                @for class in &report.classes {
                    @let path = format!("{PATH}/{}?period={}", segment(&class.class), period.name());
                    tr data-class=(class.class) {
                        td { a href=(ctx.url(&path)) { code { (format::truncate(&class.class, 120)) } } }
                        td.num { (format::number(class.succeeded())) }
                        td.num { (format::number(class.failed)) }
                        td.num { (seconds(class.ms as f64)) }
                        td.num { (duration(class.mean_ms())) }
                        td.num { (duration(class.quantile_ms(0.5))) }
                        td.num { (duration(class.quantile_ms(0.95))) }
                        td.num { (duration(class.quantile_ms(0.99))) }
                    }
                }
            }
        }
        p.muted {
            @if !period.per_minute() {
                "Percentiles come from per-minute histograms, which are kept 8 hours: choose 8 h or less to see them. "
            }
            @if report.classes_left_out > 0 {
                (format::number(report.classes_left_out as u64)) " more classes are left out. "
            }
            "Times in UTC; runs counted by Ruby and Rust workers alike."
        }
    };
    Ok(ctx.html(layout::page(&ctx, &stats, Tab::Metrics, "Metrics", content)))
}

/// `GET /metrics/classes/{name}`.
pub(crate) async fn class(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(query): Query<MetricsQuery>,
) -> Result<Response, Failure> {
    let period = query.period()?;
    if name.is_empty() || name.chars().count() > MAX_CLASS_CHARS {
        return Err(Failure::bad_request(format!(
            "a class name has 1 to {MAX_CLASS_CHARS} characters"
        )));
    }
    let client = ctx.client();
    let stats = Stats::fetch(client).await?;
    let (metrics, report) = Metrics::new(client).class(&name, period, ctx.now).await?;
    let path = format!("{PATH}/{}", segment(&name));
    let content = html! {
        p.muted { a href=(ctx.url(PATH)) { "Metrics" } " ›" }
        h1 { (name) }
        div.toolbar {
            (period_tabs(&report, |period| ctx.url(&format!("{path}?period={}", period.name()))))
        }
        @match &metrics {
            None => { div.panel { p.empty { "No run of this class in this period." } } }
            Some(metrics) => {
                div.summary id="class-summary" {
                    (card("Succeeded", &format::number(metrics.succeeded())))
                    (card("Failed", &format::number(metrics.failed)))
                    (card("Total time", &seconds(metrics.ms as f64)))
                    (card("Mean", &duration(metrics.mean_ms())))
                    (card("p50", &duration(metrics.quantile_ms(0.5))))
                    (card("p95", &duration(metrics.quantile_ms(0.95))))
                    (card("p99", &duration(metrics.quantile_ms(0.99))))
                }
                div.panel.graph id="class-histogram" {
                    div.toolbar { h2.grow { "Run times of successful runs" } }
                    @match &metrics.histogram {
                        Some(histogram) => { (histogram_chart(&histogram.counts)) }
                        None => { p.empty { "Histograms are kept 8 hours: choose 8 h or less." } }
                    }
                }
                div.panel.graph id="class-series" {
                    div.toolbar { h2.grow { "Runs and mean time" } }
                    (runs_chart(&report, metrics))
                }
                (legend([("succeeded", "#1f8a4c"), ("failed", "#c2372f"), ("mean time", COLOURS[0])], !report.marks.is_empty()))
                @if !report.marks.is_empty() {
                    (marks_table(&report.marks))
                }
            }
        }
    };
    Ok(ctx.html(layout::page(&ctx, &stats, Tab::Metrics, &name, content)))
}

/// The period links, the current one marked.
fn period_tabs(report: &MetricsReport, link: impl Fn(Period) -> String) -> Markup {
    html! {
        div.tabs {
            @for period in Period::ALL {
                a class=[(period == report.period).then_some("active")] href=(link(period)) { (period.name()) }
            }
        }
    }
}

/// A chart's legend, below its panel (a swatch is a small SVG, coloured without inline style).
fn legend<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>, marks: bool) -> Markup {
    html! {
        p.muted.legend {
            @for (label, colour) in entries {
                svg width="10" height="10" aria-hidden="true" { rect width="10" height="10" fill=(colour) {} }
                " " (label) "   "
            }
            @if marks { "┆ deploys" }
        }
    }
}

/// One figure of the summary.
fn card(label: &str, value: &str) -> Markup {
    html! { div.card { span.value { (value) } span.label { (label) } } }
}

/// Milliseconds as seconds, two decimals.
fn seconds(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

/// A time in ms or s; a dash when unknown.
fn duration(ms: Option<f64>) -> String {
    match ms {
        None => "—".to_owned(),
        Some(ms) if ms < 1000.0 => format!("{ms:.0} ms"),
        Some(ms) => format!("{:.2} s", ms / 1000.0),
    }
}

/// The x of point `index` of `count`.
fn x_of(index: usize, count: usize) -> f64 {
    if count <= 1 {
        return 0.0;
    }
    index as f64 * WIDTH / (count - 1) as f64
}

/// The x of a time within the report's span.
fn x_at(report: &MetricsReport, at: DateTime<Utc>) -> f64 {
    let span = (report.ends_at - report.starts_at).num_seconds().max(1) as f64;
    ((at - report.starts_at).num_seconds() as f64 / span * WIDTH).clamp(0.0, WIDTH)
}

/// A vertical dashed line per deploy mark, its label on hover.
fn mark_lines(report: &MetricsReport) -> Markup {
    html! {
        @for mark in &report.marks {
            @let x = format!("{:.1}", x_at(report, mark.at));
            line x1=(x) y1="0" x2=(x) y2=(HEIGHT) stroke="#888" stroke-dasharray="4 3" data-mark=(mark.label) {
                title { "Deploy: " (mark.label) " at " (format::exact(mark.at)) }
            }
        }
    }
}

/// The overview's chart: each class's total seconds per point.
fn series_chart(report: &MetricsReport, classes: &[&ClassMetrics]) -> Markup {
    let max = classes
        .iter()
        .flat_map(|class| class.series.iter().map(|point| point.ms))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    html! {
        svg viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="total execution time per class" {
            line.axis x1="0" y1="159" x2="600" y2="159" {}
            (mark_lines(report))
            @for (class, colour) in classes.iter().zip(COLOURS) {
                @let count = class.series.len();
                @let points: Vec<String> = class.series.iter().enumerate().map(|(index, point)| {
                    format!("{:.1},{:.1}", x_of(index, count), HEIGHT - 1.0 - point.ms as f64 / max * (HEIGHT - 10.0))
                }).collect();
                polyline points=(points.join(" ")) fill="none" stroke=(colour) stroke-width="2" data-class=(class.class) {
                    title { (class.class) }
                }
            }
        }
    }
}

/// The class page's chart: succeeded and failed runs per point as bars, the mean as a line.
fn runs_chart(report: &MetricsReport, metrics: &ClassMetrics) -> Markup {
    let count = metrics.series.len().max(1);
    let slot = WIDTH / count as f64;
    let most = metrics
        .series
        .iter()
        .map(|point| point.processed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let means: Vec<f64> = metrics
        .series
        .iter()
        .map(|point| {
            let succeeded = point.processed.saturating_sub(point.failed);
            if succeeded == 0 {
                0.0
            } else {
                point.ms as f64 / succeeded as f64
            }
        })
        .collect();
    let slowest = means.iter().copied().fold(1.0, f64::max);
    let scale = |value: f64, max: f64| value / max * (HEIGHT - 10.0);
    let line: Vec<String> = means
        .iter()
        .enumerate()
        .map(|(index, mean)| {
            format!(
                "{:.1},{:.1}",
                index as f64 * slot + slot / 2.0,
                HEIGHT - 1.0 - scale(*mean, slowest)
            )
        })
        .collect();
    html! {
        svg viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="runs and mean time per point" {
            line.axis x1="0" y1="159" x2="600" y2="159" {}
            @for (index, point) in metrics.series.iter().enumerate() {
                @if point.processed > 0 {
                    @let succeeded = point.processed.saturating_sub(point.failed) as f64;
                    @let x = index as f64 * slot;
                    rect.bar-processed x=(format!("{x:.2}")) y=(format!("{:.1}", HEIGHT - scale(succeeded, most)))
                        width=(format!("{:.2}", slot * 0.8)) height=(format!("{:.1}", scale(succeeded, most))) {
                        title { (format::exact(point.at)) ": " (format::number(point.processed)) " runs, " (format::number(point.failed)) " failed" }
                    }
                    @if point.failed > 0 {
                        rect.bar-failed x=(format!("{x:.2}")) y=(format!("{:.1}", HEIGHT - scale(succeeded + point.failed as f64, most)))
                            width=(format!("{:.2}", slot * 0.8)) height=(format!("{:.1}", scale(point.failed as f64, most))) {}
                    }
                }
            }
            polyline points=(line.join(" ")) fill="none" stroke=(COLOURS[0]) stroke-width="1.5" {}
            (mark_lines(report))
        }
    }
}

/// The histogram as bars, fastest on the left, labelled as Sidekiq labels its buckets.
fn histogram_chart(counts: &[u64]) -> Markup {
    let most = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let slot = WIDTH / counts.len().max(1) as f64;
    html! {
        svg viewBox="0 0 600 180" preserveAspectRatio="none" role="img" aria-label="runs per run-time bucket" {
            line.axis x1="0" y1="159" x2="600" y2="159" {}
            @for (index, (count, label)) in counts.iter().zip(BUCKET_LABELS).enumerate() {
                @let x = index as f64 * slot;
                @let height = *count as f64 / most * (HEIGHT - 10.0);
                rect.bar-processed x=(format!("{:.1}", x + slot * 0.1)) y=(format!("{:.1}", HEIGHT - height))
                    width=(format!("{:.1}", slot * 0.8)) height=(format!("{height:.1}")) data-bucket=(label) data-count=(count) {
                    title { "under " (label) ": " (format::number(*count)) }
                }
                @if index % 2 == 0 {
                    text x=(format!("{:.1}", x + slot / 2.0)) y="174" font-size="9" text-anchor="middle" fill="#888" { (label) }
                }
            }
        }
    }
}

/// The deploy marks of the period.
fn marks_table(marks: &[DeployMark]) -> Markup {
    html! {
        h2 { "Deploys" }
        div.panel.scroll {
            table id="deploy-marks" {
                tr { th { "When" } th { "Label" } }
                @for mark in marks {
                    tr { td { (format::exact(mark.at)) } td { code { (mark.label) } } }
                }
            }
        }
    }
}

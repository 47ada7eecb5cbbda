//! Execution metrics as Sidekiq 8's Metrics pages read them: per class, over a period, runs,
//! failures, time, a time series and (over 8 hours at most) the run-time histogram and its
//! percentiles; from the keys Ruby and Rust workers both write (`crate::metrics`).

use std::collections::HashMap;

use chrono::{DateTime, Days, Utc};

use crate::client::Client;
use crate::error::Error;
use crate::metrics::Histogram;

/// The most classes one report holds (the slowest in total first): a bound on a page's size
/// whatever the Redis holds.
pub const MAX_CLASSES_REPORTED: usize = 1_000;

/// The longest class filter a report accepts, in characters.
pub const MAX_FILTER_CHARS: usize = 100;

/// The longest class name a report accepts, in characters.
pub const MAX_CLASS_CHARS: usize = 300;

/// A period to report on: Sidekiq 8's seven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The last hour, per minute.
    Hour,
    /// The last 2 hours, per minute.
    TwoHours,
    /// The last 4 hours, per minute.
    FourHours,
    /// The last 8 hours, per minute (as long as minutes are kept).
    EightHours,
    /// The last day, per 10 minutes.
    Day,
    /// The last 2 days, per 10 minutes.
    TwoDays,
    /// The last 3 days, per 10 minutes (as long as 10-minute rollups are kept).
    ThreeDays,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Self; 7] = [
        Self::Hour,
        Self::TwoHours,
        Self::FourHours,
        Self::EightHours,
        Self::Day,
        Self::TwoDays,
        Self::ThreeDays,
    ];

    /// The period Sidekiq names `name` (`1h`, `2h`, `4h`, `8h`, `24h`, `48h`, `72h`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|period| period.name() == name)
    }

    /// Its name, as in `?period=`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::TwoHours => "2h",
            Self::FourHours => "4h",
            Self::EightHours => "8h",
            Self::Day => "24h",
            Self::TwoDays => "48h",
            Self::ThreeDays => "72h",
        }
    }

    /// How many hours it spans.
    pub fn hours(self) -> i64 {
        match self {
            Self::Hour => 1,
            Self::TwoHours => 2,
            Self::FourHours => 4,
            Self::EightHours => 8,
            Self::Day => 24,
            Self::TwoDays => 48,
            Self::ThreeDays => 72,
        }
    }

    /// Whether it reads the per-minute keys (8 hours or less), and so has histograms.
    pub fn per_minute(self) -> bool {
        self.hours() <= 8
    }

    /// The seconds one point of its series spans: 60, or 600 past 8 hours.
    pub fn step_seconds(self) -> i64 {
        if self.per_minute() { 60 } else { 600 }
    }

    /// How many points its series has.
    fn points(self) -> i64 {
        self.hours() * 3600 / self.step_seconds()
    }
}

/// One point of a class's series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MetricsPoint {
    /// The start of the minute or 10 minutes it counts.
    pub at: DateTime<Utc>,
    /// Runs, failed or not.
    pub processed: u64,
    /// Failed runs.
    pub failed: u64,
    /// Milliseconds of successful runs.
    pub ms: u64,
}

/// One class over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMetrics {
    /// The class (ActiveJob's `wrapped` class for ActiveJob jobs).
    pub class: String,
    /// Runs, failed or not.
    pub processed: u64,
    /// Failed runs.
    pub failed: u64,
    /// Milliseconds of successful runs.
    pub ms: u64,
    /// The run times of successful runs, for periods of 8 hours or less (histograms are kept
    /// 8 hours); `None` past that.
    pub histogram: Option<Histogram>,
    /// Per minute (or 10 minutes), oldest first; every point of the period, zeros included.
    pub series: Vec<MetricsPoint>,
}

impl ClassMetrics {
    /// Successful runs.
    pub fn succeeded(&self) -> u64 {
        self.processed.saturating_sub(self.failed)
    }

    /// The mean time of a successful run in milliseconds, as Sidekiq computes it.
    pub fn mean_ms(&self) -> Option<f64> {
        let succeeded = self.succeeded();
        (succeeded > 0).then(|| self.ms as f64 / succeeded as f64)
    }

    /// The estimated `quantile` (0 to 1) of a successful run's time in milliseconds, from the
    /// histogram.
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        self.histogram.as_ref()?.quantile_ms(quantile)
    }
}

/// A deploy mark, as `Sidekiq::Deploy.mark!` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployMark {
    /// The minute it was marked at.
    pub at: DateTime<Utc>,
    /// Its label (a commit, say).
    pub label: String,
}

/// Execution metrics over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsReport {
    /// The period.
    pub period: Period,
    /// The start of its first point.
    pub starts_at: DateTime<Utc>,
    /// Now, when it was read.
    pub ends_at: DateTime<Utc>,
    /// The classes, the most total time first (at most [`MAX_CLASSES_REPORTED`]).
    pub classes: Vec<ClassMetrics>,
    /// How many classes the Redis held beyond those reported.
    pub classes_left_out: usize,
    /// Deploy marks within the period.
    pub marks: Vec<DeployMark>,
}

/// Reads execution metrics, as Sidekiq's `Sidekiq::Metrics::Query` does.
#[derive(Debug, Clone)]
pub struct Metrics {
    client: Client,
}

/// What one point's hash holds: class -> (processed, failed, ms).
type PointTotals = HashMap<String, (u64, u64, u64)>;

impl Metrics {
    /// The metrics of `client`'s Redis.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// Every class's figures over `period` up to `now`, those whose name contains `filter`
    /// (ignoring case; empty for all, at most [`MAX_FILTER_CHARS`], longer is an error): one
    /// round trip for the hashes, one for the histograms (8 hours or less) and deploy marks.
    pub async fn top(
        &self,
        period: Period,
        filter: &str,
        now: DateTime<Utc>,
    ) -> Result<MetricsReport, Error> {
        if filter.chars().count() > MAX_FILTER_CHARS {
            return Err(invalid(format!(
                "the filter is longer than {MAX_FILTER_CHARS} characters"
            )));
        }
        let filter = filter.to_lowercase();
        let times = point_times(period, now);
        let keys = self.client.keys();
        let mut pipeline = redis::pipe();
        for at in &times {
            pipeline.hgetall(hash_key(keys, period, *at));
        }
        let hashes: Vec<HashMap<Vec<u8>, Vec<u8>>> = self.client.redis().query(&pipeline).await?;
        let points: Vec<PointTotals> = hashes
            .into_iter()
            .map(|hash| point_totals(hash, &filter))
            .collect();
        let mut classes: HashMap<&str, ClassMetrics> = HashMap::new();
        for (index, point) in points.iter().enumerate() {
            for (class, &(processed, failed, ms)) in point {
                let entry = classes
                    .entry(class.as_str())
                    .or_insert_with(|| empty_class(class, &times));
                entry.processed = entry.processed.saturating_add(processed);
                entry.failed = entry.failed.saturating_add(failed);
                entry.ms = entry.ms.saturating_add(ms);
                let at = entry.series.len() - 1 - index;
                let slot = &mut entry.series[at];
                slot.processed = slot.processed.saturating_add(processed);
                slot.failed = slot.failed.saturating_add(failed);
                slot.ms = slot.ms.saturating_add(ms);
            }
        }
        let mut classes: Vec<ClassMetrics> = classes.into_values().collect();
        classes.sort_by(|a, b| b.ms.cmp(&a.ms).then_with(|| a.class.cmp(&b.class)));
        let left_out = classes.len().saturating_sub(MAX_CLASSES_REPORTED);
        classes.truncate(MAX_CLASSES_REPORTED);

        // Histograms: only the (class, minute) pairs whose hash says some run succeeded.
        let mut pipeline = redis::pipe();
        let mut wanted: Vec<Vec<usize>> = Vec::new();
        if period.per_minute() {
            let position: HashMap<&str, usize> = classes
                .iter()
                .enumerate()
                .map(|(index, class)| (class.class.as_str(), index))
                .collect();
            for (point, at) in points.iter().zip(&times) {
                let mut indexes = Vec::new();
                for (class, &(processed, failed, _)) in point {
                    if processed > failed
                        && let Some(&index) = position.get(class.as_str())
                    {
                        indexes.push(index);
                    }
                }
                if !indexes.is_empty() {
                    let names: Vec<String> = indexes
                        .iter()
                        .map(|&index| keys.metrics_histogram(&classes[index].class, *at))
                        .collect();
                    pipeline.cmd("MGET").arg(names);
                    wanted.push(indexes);
                }
            }
            for class in &mut classes {
                class.histogram = Some(Histogram::default());
            }
        }
        let (starts_at, ends_at) = span(&times, now);
        add_mark_reads(&mut pipeline, keys, starts_at, ends_at);
        let mut replies: Vec<redis::Value> = self.client.redis().query(&pipeline).await?;
        let marks = replies.split_off(wanted.len());
        for (indexes, reply) in wanted.iter().zip(replies) {
            let strings: Vec<Option<Vec<u8>>> = redis::from_redis_value(reply).unwrap_or_default();
            for (&index, bytes) in indexes.iter().zip(strings) {
                if let (Some(bytes), Some(histogram)) = (bytes, classes[index].histogram.as_mut()) {
                    histogram.add(&Histogram::from_bitfield(&bytes));
                }
            }
        }
        Ok(MetricsReport {
            period,
            starts_at,
            ends_at,
            classes,
            classes_left_out: left_out,
            marks: parse_marks(marks, starts_at, ends_at),
        })
    }

    /// One class's figures over `period` (its series and, for 8 hours or less, its
    /// histogram), in one round trip; `None` when it has no run in the period. A name longer
    /// than [`MAX_CLASS_CHARS`] is an error.
    pub async fn class(
        &self,
        class: &str,
        period: Period,
        now: DateTime<Utc>,
    ) -> Result<(Option<ClassMetrics>, MetricsReport), Error> {
        if class.chars().count() > MAX_CLASS_CHARS || class.is_empty() {
            return Err(invalid(format!(
                "a class name has 1 to {MAX_CLASS_CHARS} characters"
            )));
        }
        let times = point_times(period, now);
        let keys = self.client.keys();
        let mut pipeline = redis::pipe();
        for at in &times {
            pipeline
                .cmd("HMGET")
                .arg(hash_key(keys, period, *at))
                .arg(format!("{class}|p"))
                .arg(format!("{class}|f"))
                .arg(format!("{class}|ms"));
        }
        if period.per_minute() {
            let names: Vec<String> = times
                .iter()
                .map(|at| keys.metrics_histogram(class, *at))
                .collect();
            pipeline.cmd("MGET").arg(names);
        }
        let (starts_at, ends_at) = span(&times, now);
        add_mark_reads(&mut pipeline, keys, starts_at, ends_at);
        let mut replies: Vec<redis::Value> = self.client.redis().query(&pipeline).await?;
        let mut rest = replies.split_off(times.len());
        let mut metrics = empty_class(class, &times);
        let mut seen = false;
        for (index, reply) in replies.into_iter().enumerate() {
            let fields: Vec<Option<Vec<u8>>> = redis::from_redis_value(reply).unwrap_or_default();
            let [processed, failed, ms] = [0, 1, 2].map(|at| {
                fields
                    .get(at)
                    .and_then(Option::as_ref)
                    .map_or(0, |value| count(value))
            });
            seen |= fields.iter().any(Option::is_some);
            let at = metrics.series.len() - 1 - index;
            metrics.series[at].processed = processed;
            metrics.series[at].failed = failed;
            metrics.series[at].ms = ms;
            metrics.processed = metrics.processed.saturating_add(processed);
            metrics.failed = metrics.failed.saturating_add(failed);
            metrics.ms = metrics.ms.saturating_add(ms);
        }
        if period.per_minute() && !rest.is_empty() {
            let marks = rest.split_off(1);
            let strings: Vec<Option<Vec<u8>>> =
                redis::from_redis_value(rest.remove(0)).unwrap_or_default();
            let mut histogram = Histogram::default();
            for bytes in strings.into_iter().flatten() {
                histogram.add(&Histogram::from_bitfield(&bytes));
            }
            metrics.histogram = Some(histogram);
            rest = marks;
        }
        let report = MetricsReport {
            period,
            starts_at,
            ends_at,
            classes: Vec::new(),
            classes_left_out: 0,
            marks: parse_marks(rest, starts_at, ends_at),
        };
        Ok((seen.then_some(metrics), report))
    }
}

/// An argument the API refuses.
fn invalid(reason: String) -> Error {
    Error::Config {
        origin: "metrics".to_owned(),
        reason,
    }
}

/// The start of each point of `period`, newest first (now's minute or 10 minutes first).
fn point_times(period: Period, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let step = period.step_seconds();
    let aligned = now.timestamp() - now.timestamp().rem_euclid(step);
    (0..period.points())
        .filter_map(|back| DateTime::from_timestamp(aligned - back * step, 0))
        .collect()
}

/// The hash of the point at `at`: the minute's, or the 10 minutes'.
fn hash_key(keys: &crate::redis::keys::Keys, period: Period, at: DateTime<Utc>) -> String {
    if period.per_minute() {
        keys.metrics_minute(at)
    } else {
        keys.metrics_ten_minutes(at)
    }
}

/// The first point's start and now.
fn span(times: &[DateTime<Utc>], now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (times.last().copied().unwrap_or(now), now)
}

/// A class with no run yet, with a zero point for each of `times`.
fn empty_class(class: &str, times: &[DateTime<Utc>]) -> ClassMetrics {
    ClassMetrics {
        class: class.to_owned(),
        processed: 0,
        failed: 0,
        ms: 0,
        histogram: None,
        series: times
            .iter()
            .rev()
            .map(|&at| MetricsPoint {
                at,
                processed: 0,
                failed: 0,
                ms: 0,
            })
            .collect(),
    }
}

/// A counter's value: a non-negative integer, else 0.
fn count(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
        .map_or(0, |value| value.max(0) as u64)
}

/// A point's hash as class -> (processed, failed, ms), classes matching `filter` (lower case)
/// only; fields that are not `<Class>|p`, `|f` or `|ms` are left out.
fn point_totals(hash: HashMap<Vec<u8>, Vec<u8>>, filter: &str) -> PointTotals {
    let mut totals = PointTotals::new();
    for (field, value) in hash {
        let Ok(field) = String::from_utf8(field) else {
            continue;
        };
        let Some((class, metric)) = field.rsplit_once('|') else {
            continue;
        };
        if class.is_empty() || (!filter.is_empty() && !class.to_lowercase().contains(filter)) {
            continue;
        }
        let value = count(&value);
        let entry = totals.entry(class.to_owned()).or_default();
        match metric {
            "p" => entry.0 = entry.0.saturating_add(value),
            "f" => entry.1 = entry.1.saturating_add(value),
            "ms" => entry.2 = entry.2.saturating_add(value),
            _ => {}
        }
    }
    totals.retain(|_, &mut (processed, failed, ms)| processed > 0 || failed > 0 || ms > 0);
    totals
}

/// Adds an `HGETALL` of each day's deploy marks from `starts_at` to `ends_at`.
fn add_mark_reads(
    pipeline: &mut redis::Pipeline,
    keys: &crate::redis::keys::Keys,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) {
    let mut day = starts_at.date_naive();
    while day <= ends_at.date_naive() {
        pipeline.hgetall(keys.deploy_marks(day));
        match day.checked_add_days(Days::new(1)) {
            Some(next) => day = next,
            None => break,
        }
    }
}

/// The deploy marks within the span, oldest first, from the `HGETALL` replies.
fn parse_marks(
    replies: Vec<redis::Value>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> Vec<DeployMark> {
    let mut marks = Vec::new();
    for reply in replies {
        let hash: HashMap<Vec<u8>, Vec<u8>> = redis::from_redis_value(reply).unwrap_or_default();
        for (stamp, label) in hash {
            let Some(at) = std::str::from_utf8(&stamp)
                .ok()
                .and_then(|stamp| DateTime::parse_from_rfc3339(stamp).ok())
                .map(|at| at.with_timezone(&Utc))
            else {
                continue;
            };
            if at >= starts_at && at <= ends_at {
                marks.push(DeployMark {
                    at,
                    label: String::from_utf8_lossy(&label).into_owned(),
                });
            }
        }
    }
    marks.sort_by_key(|mark| mark.at);
    marks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_sidekiqs() {
        for period in Period::ALL {
            assert_eq!(Period::parse(period.name()), Some(period));
        }
        assert_eq!(Period::parse("12h"), None);
        assert_eq!(Period::Hour.points(), 60);
        assert_eq!(Period::EightHours.points(), 480);
        assert_eq!(Period::ThreeDays.points(), 432);
        assert!(!Period::Day.per_minute());
    }

    #[test]
    fn a_hash_reads_per_class() {
        let hash: HashMap<Vec<u8>, Vec<u8>> = [
            ("A|p", "5"),
            ("A|f", "1"),
            ("A|ms", "400"),
            ("B::C|p", "2"),
            ("junk", "9"),
            ("D|p", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        let totals = point_totals(hash.clone(), "");
        assert_eq!(totals["A"], (5, 1, 400));
        assert_eq!(totals["B::C"], (2, 0, 0));
        assert_eq!(totals.len(), 2, "junk left out");
        assert_eq!(point_totals(hash, "b::").len(), 1);
    }
}

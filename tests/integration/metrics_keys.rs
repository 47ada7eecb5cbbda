//! Execution metrics in Sidekiq 8's keys: what a worker writes, read back with raw Redis
//! commands (`HGET`, `BITFIELD … GET u16 #i`, `TTL`); keys written by hand exactly as Sidekiq 8
//! writes them, read through `api::Metrics`; and the switch that turns them off.

use std::collections::HashMap;

use chrono::{Duration as Span, TimeZone, Utc};
use jobs::Payload;
use jobs::api::{Metrics, Period};
use redis::AsyncCommands;
use serde_json::json;

use crate::metrics_web::write_like_sidekiq;
use crate::support::TestRedis;
use crate::support::jobs::{CallLog, Explode, Slow, worker};

/// Every key matching `pattern`, with its fields (hashes only).
async fn hashes(
    raw: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
) -> Vec<(String, HashMap<String, u64>)> {
    let names: Vec<String> = raw.keys(pattern).await.unwrap();
    let mut found = Vec::new();
    for name in names {
        let fields: HashMap<String, u64> = raw.hgetall(&name).await.unwrap();
        found.push((name, fields));
    }
    found
}

/// The sum of one field over `hashes`.
fn sum(hashes: &[(String, HashMap<String, u64>)], field: &str) -> u64 {
    hashes.iter().filter_map(|(_, h)| h.get(field)).sum()
}

#[tokio::test]
async fn a_worker_writes_sidekiq_8_metrics_keys_with_their_ttls() {
    let redis = TestRedis::start();
    let client = redis.client();
    for _ in 0..4 {
        client.perform_async(Slow { millis: 25 }).await.unwrap();
    }
    client
        .perform_async(Explode {
            message: "boom".to_owned(),
        })
        .await
        .unwrap();
    // An ActiveJob job counts under its `wrapped` class.
    let mut wrapped = Payload::new("Slow", vec![json!(1)]);
    wrapped
        .extra
        .insert("wrapped".to_owned(), json!("WelcomeMailerJob"));
    client.push(wrapped).await.unwrap();
    let before = Utc::now();
    worker(&redis, &CallLog::default()).drain().await.unwrap();
    let after = Utc::now();

    let mut raw = redis.raw().await;
    // Minute hashes end in two digits (`j|250214|8:05`), 10-minute rollups in one.
    let minutes: Vec<_> = hashes(&mut raw, "j|*")
        .await
        .into_iter()
        .filter(|(name, _)| name.rsplit(':').next().unwrap().len() == 2)
        .collect();
    let tens: Vec<_> = hashes(&mut raw, "j|*")
        .await
        .into_iter()
        .filter(|(name, _)| name.rsplit(':').next().unwrap().len() == 1)
        .collect();
    assert!(!minutes.is_empty() && !tens.is_empty(), "both rollups");
    let minute_key = format!("j|{}", before.format("%y%m%d|%-H:%M"));
    let last_key = format!("j|{}", after.format("%y%m%d|%-H:%M"));
    assert!(
        minutes
            .iter()
            .all(|(name, _)| *name == minute_key || *name == last_key),
        "{minutes:?} named for the minutes the jobs ran in, UTC"
    );
    for rollup in [&minutes, &tens] {
        assert_eq!(sum(rollup, "Slow|p"), 4);
        assert_eq!(sum(rollup, "Slow|f"), 0);
        assert!(sum(rollup, "Slow|ms") >= 4 * 25, "{rollup:?}");
        assert_eq!(sum(rollup, "Explode|p"), 1);
        assert_eq!(sum(rollup, "Explode|f"), 1);
        assert_eq!(sum(rollup, "Explode|ms"), 0, "a failure has no time");
        assert!(
            rollup.iter().all(|(_, h)| !h.contains_key("Explode|ms")),
            "no |ms field without a success"
        );
        assert_eq!(sum(rollup, "WelcomeMailerJob|p"), 1, "wrapped");
    }
    let (name, fields) = &minutes[0];
    let direct: Option<u64> = raw.hget(name, "Slow|p").await.unwrap();
    assert_eq!(direct, fields.get("Slow|p").copied());
    for (name, _) in &minutes {
        let ttl: i64 = raw.ttl(name).await.unwrap();
        assert!((8 * 3600 - 60..=8 * 3600).contains(&ttl), "{name}: {ttl}");
    }
    for (name, _) in &tens {
        let ttl: i64 = raw.ttl(name).await.unwrap();
        assert!((3 * 86400 - 60..=3 * 86400).contains(&ttl), "{name}: {ttl}");
    }

    let grams: Vec<String> = raw.keys("h|Slow-*").await.unwrap();
    assert!(!grams.is_empty());
    let expected = format!("h|Slow-{}", before.format("%-d-%-H:%-M"));
    let last = format!("h|Slow-{}", after.format("%-d-%-H:%-M"));
    let mut buckets = [0_u64; 26];
    for gram in &grams {
        assert!(*gram == expected || *gram == last, "{gram}");
        let mut command = redis::cmd("BITFIELD");
        command.arg(gram);
        for index in 0..26 {
            command.arg("GET").arg("u16").arg(format!("#{index}"));
        }
        let counts: Vec<u64> = command.query_async(&mut raw).await.unwrap();
        for (bucket, count) in buckets.iter_mut().zip(counts) {
            *bucket += count;
        }
        let ttl: i64 = raw.ttl(gram).await.unwrap();
        assert!((8 * 3600 - 60..=8 * 3600).contains(&ttl), "{gram}: {ttl}");
    }
    assert_eq!(buckets.iter().sum::<u64>(), 4, "{buckets:?}");
    assert_eq!(buckets[0], 0, "25 ms or more is past the 20 ms bucket");
    let explode: Vec<String> = raw.keys("h|Explode-*").await.unwrap();
    assert!(explode.is_empty(), "no histogram for failures only");
}

#[tokio::test]
async fn metrics_turned_off_write_nothing() {
    let redis = TestRedis::start();
    let client = redis.client();
    client.perform_async(Slow { millis: 1 }).await.unwrap();
    let worker = worker(&redis, &CallLog::default()).record_metrics(false);
    assert!(!worker.execution_metrics().enabled());
    worker.drain().await.unwrap();
    let mut raw = redis.raw().await;
    let processed: u64 = raw.get("stat:processed").await.unwrap();
    assert_eq!(processed, 1, "the job ran");
    let keys: Vec<String> = raw.keys("[jh]|*").await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn the_api_reads_keys_as_sidekiq_8_writes_them() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let now = Utc.with_ymd_and_hms(2025, 2, 14, 8, 43, 20).unwrap();
    // 10 runs at 08:43 (2 failed; 8 took 800 ms: 6 under 20 ms, 2 in 65–100 ms) and 5 at 07:50.
    write_like_sidekiq(&mut raw, "HardJob", now, (10, 2, 800), &[(0, 6), (4, 2)]).await;
    let earlier = now - Span::minutes(53);
    write_like_sidekiq(&mut raw, "HardJob", earlier, (5, 0, 5_000), &[(10, 5)]).await;
    write_like_sidekiq(&mut raw, "Mailer::Send", now, (3, 0, 30), &[(0, 3)]).await;
    let _: () = raw
        .hset(
            "20250214-marks",
            "2025-02-14T08:00:00Z",
            "abc123 Deploy <b>it</b>",
        )
        .await
        .unwrap();

    let metrics = Metrics::new(&redis.client());
    let report = metrics.top(Period::Hour, "", now).await.unwrap();
    assert_eq!(report.classes.len(), 2);
    let hard = &report.classes[0];
    assert_eq!(hard.class, "HardJob", "the most total time first");
    assert_eq!((hard.processed, hard.failed, hard.ms), (15, 2, 5_800));
    assert_eq!(hard.succeeded(), 13);
    assert_eq!(hard.mean_ms(), Some(5_800.0 / 13.0));
    assert_eq!(hard.series.len(), 60);
    assert_eq!(
        hard.series[59].at,
        Utc.with_ymd_and_hms(2025, 2, 14, 8, 43, 0).unwrap()
    );
    assert_eq!(hard.series[59].processed, 10);
    assert_eq!(
        hard.series[6].at,
        Utc.with_ymd_and_hms(2025, 2, 14, 7, 50, 0).unwrap()
    );
    assert_eq!(hard.series[6].ms, 5_000);
    let histogram = hard.histogram.unwrap();
    assert_eq!(histogram.total(), 13);
    assert_eq!(histogram.counts[10], 5);
    let p50 = hard.quantile_ms(0.5).unwrap();
    assert!((65.0..=100.0).contains(&p50), "{p50}");
    let p99 = hard.quantile_ms(0.99).unwrap();
    assert!((750.0..=1_100.0).contains(&p99), "{p99}");
    assert_eq!(report.marks.len(), 1);
    assert_eq!(report.marks[0].label, "abc123 Deploy <b>it</b>");

    let filtered = metrics.top(Period::Hour, "mailer::", now).await.unwrap();
    assert_eq!(filtered.classes.len(), 1, "filtered ignoring case");
    assert!(
        metrics
            .top(Period::Hour, &"x".repeat(101), now)
            .await
            .is_err()
    );

    let day = metrics.top(Period::Day, "", now).await.unwrap();
    let hard = &day.classes[0];
    assert_eq!(
        (hard.processed, hard.ms),
        (15, 5_800),
        "from the 10-minute rollups"
    );
    assert_eq!(hard.series.len(), 144);
    assert_eq!(
        hard.series[143].at,
        Utc.with_ymd_and_hms(2025, 2, 14, 8, 40, 0).unwrap()
    );
    assert_eq!(hard.histogram, None, "no histograms past 8 hours");

    let (class, _) = metrics
        .class("HardJob", Period::EightHours, now)
        .await
        .unwrap();
    let class = class.unwrap();
    assert_eq!((class.processed, class.failed), (15, 2));
    assert_eq!(class.histogram.unwrap().total(), 13);
    assert_eq!(class.series.len(), 480);
    let (nothing, _) = metrics.class("NoSuchJob", Period::Hour, now).await.unwrap();
    assert!(nothing.is_none());
    assert!(
        metrics
            .class(&"A".repeat(301), Period::Hour, now)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn what_a_worker_writes_the_api_reads() {
    let redis = TestRedis::start();
    let client = redis.client();
    for _ in 0..3 {
        client.perform_async(Slow { millis: 1 }).await.unwrap();
    }
    worker(&redis, &CallLog::default()).drain().await.unwrap();
    let report = Metrics::new(&client)
        .top(Period::Hour, "", Utc::now())
        .await
        .unwrap();
    let slow = report.classes.iter().find(|c| c.class == "Slow").unwrap();
    assert_eq!(slow.processed, 3);
    assert_eq!(slow.histogram.unwrap().total(), 3);
}

#[tokio::test]
async fn a_flush_that_fails_is_not_written_again_on_the_next_beats() {
    // A Redis that refuses BITFIELD: each flush's pipeline runs its HINCRBYs, then fails on the
    // histogram. Written again on every beat, the same runs would count again and again.
    let redis = TestRedis::start_with(&["--rename-command", "BITFIELD", ""], None);
    let client = redis.client();
    for _ in 0..3 {
        client.perform_async(Slow { millis: 1 }).await.unwrap();
    }
    let running = crate::support::RunningWorker::start(worker(&redis, &CallLog::default()));
    let mut raw = redis.raw().await;
    crate::support::eventually(
        std::time::Duration::from_secs(10),
        "the runs to be counted",
        async || sum(&hashes(&mut raw, "j|*").await, "Slow|p") > 0,
    )
    .await;
    // Three more beats (1 s each) while nothing runs.
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    running.stop(std::time::Duration::from_secs(10)).await;
    let minutes: Vec<_> = hashes(&mut raw, "j|*")
        .await
        .into_iter()
        .filter(|(name, _)| name.rsplit(':').next().unwrap().len() == 2)
        .collect();
    assert_eq!(
        sum(&minutes, "Slow|p"),
        3,
        "each run counted once: {minutes:?}"
    );
}

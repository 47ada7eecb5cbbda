//! Periodic entries for the admin API and dashboard tests: declared by a real worker, or written
//! by hand, hostile ones included, as another producer (or a hand with `redis-cli`) could.

use std::collections::HashMap;
use std::time::Duration;

use jobs::periodic::{CatchUp, Periodic};
use redis::AsyncCommands;
use serde_json::json;

use super::jobs::{CallLog, ScoreGeneration, worker};
use super::{RunningWorker, TestRedis, eventually};

/// The nightly report: fixed arguments, a zone, its own queue, no catch-up.
pub fn nightly_report() -> Periodic {
    Periodic::class(
        "nightly_report",
        "0 3 * * *",
        "NightlyReport",
        vec![json!({"team": 7})],
    )
    .queue("reports")
    .timezone("Europe/Berlin")
    .catch_up(CatchUp::None)
}

/// Declares the three entries most tests use, by starting a real worker until Redis lists them
/// and stopping it: `nightly_report` ([`nightly_report`]), `scores` (a `ScoreGeneration`
/// computed from each quarter hour's tick) and `archive` (daily, disabled).
pub async fn declare_three(redis: &TestRedis) {
    let worker = worker(redis, &CallLog::default())
        .periodic_entry(nightly_report())
        .periodic("scores", "*/15 * * * *", |tick| ScoreGeneration {
            date: tick.date_naive(),
        })
        .periodic_entry(Periodic::class("archive", "@daily", "Archive", vec![]).enabled(false));
    declare(redis, worker, &["archive", "nightly_report", "scores"]).await;
}

/// Runs `worker` until every entry of `names` is declared in Redis, then stops it.
pub async fn declare(redis: &TestRedis, worker: jobs::Worker, names: &[&str]) {
    let running = RunningWorker::start(worker);
    wait_declared(redis, names).await;
    running.stop(Duration::from_secs(10)).await;
}

/// Waits until every entry of `names` is declared in Redis.
pub async fn wait_declared(redis: &TestRedis, names: &[&str]) {
    let client = redis.client();
    eventually(
        Duration::from_secs(10),
        "the worker to declare its periodic entries",
        async || {
            let listed: Vec<String> = jobs::api::PeriodicSet::new(&client)
                .list()
                .await
                .expect("the periodic set")
                .into_iter()
                .map(|entry| entry.name)
                .collect();
            names.iter().all(|name| listed.iter().any(|n| n == name))
        },
    )
    .await;
}

/// Every field of an entry's hash.
pub async fn hash_of(redis: &TestRedis, name: &str) -> HashMap<String, String> {
    let mut raw = redis.raw().await;
    raw.hgetall(format!("jobs:periodic:{name}"))
        .await
        .expect("HGETALL")
}

/// A definition as the register script stores it, with `cron` and `timezone` as given.
pub fn definition(cron: &str, timezone: &str, class: &str, queue: &str) -> String {
    json!({"args": [1], "catch_up": "one", "class": class, "cron": cron, "enabled": true,
           "queue": queue, "timezone": timezone})
    .to_string()
}

/// Puts `name` (bytes, UTF-8 or not) in the index of entries, declared now, without touching
/// its hash.
pub async fn index(redis: &TestRedis, name: impl AsRef<[u8]>) {
    let mut raw = redis.raw().await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let _: () = redis::cmd("ZADD")
        .arg("jobs:periodic")
        .arg(now_ms)
        .arg(name.as_ref())
        .query_async(&mut raw)
        .await
        .expect("ZADD jobs:periodic");
}

/// Writes entry `name` by hand: in the index, with `fields` in its hash.
pub async fn write_entry(redis: &TestRedis, name: &str, fields: &[(&str, &str)]) {
    index(redis, name).await;
    let mut raw = redis.raw().await;
    let _: () = raw
        .hset_multiple(format!("jobs:periodic:{name}"), fields)
        .await
        .expect("HSET");
}

/// Entries no worker would write, each named for what is wrong with it, with a few words the
/// entry's problem says; plus `good`, written by hand as a worker would, and a name that is
/// not UTF-8.
pub async fn write_hostile(redis: &TestRedis) -> Vec<(&'static str, &'static str)> {
    let now_ms = chrono::Utc::now().timestamp_millis().to_string();
    write_entry(
        redis,
        "good",
        &[
            (
                "definition",
                &definition("0 3 * * *", "UTC", "Good", "default"),
            ),
            ("declared_at", &now_ms),
            ("last", &now_ms),
        ],
    )
    .await;
    index(redis, "no_hash").await;
    write_entry(redis, "no_definition", &[("last", "12"), ("paused", "1")]).await;
    write_entry(redis, "not_json", &[("definition", "{\"cron\": ")]).await;
    write_entry(redis, "not_an_object", &[("definition", "[1, 2]")]).await;
    write_entry(
        redis,
        "bad_cron",
        &[("definition", &definition("0 3 * *", "UTC", "A", "q"))],
    )
    .await;
    write_entry(
        redis,
        "bad_zone",
        &[(
            "definition",
            &definition("@daily", "Mars/Olympus", "A", "q"),
        )],
    )
    .await;
    let odd = json!({"args": "x", "catch_up": "all", "class": 5, "cron": "@daily",
                     "enabled": "yes", "queue": "", "timezone": "UTC"});
    write_entry(
        redis,
        "odd_fields",
        &[
            ("definition", &odd.to_string()),
            ("last", "soon"),
            ("last_tick", "-99999999999999999999"),
            ("pushed_at", "1e400"),
        ],
    )
    .await;
    index(redis, "wrong_type").await;
    let mut raw = redis.raw().await;
    let _: () = raw
        .set("jobs:periodic:wrong_type", "a string")
        .await
        .expect("SET");
    index(redis, b"\xffnot_utf8").await;
    vec![
        ("no_hash", "no definition"),
        ("no_definition", "no definition"),
        ("not_json", "not JSON"),
        ("not_an_object", "not an object"),
        ("bad_cron", "has 4 fields"),
        ("bad_zone", "Mars/Olympus"),
        ("odd_fields", "`catch_up` is `all`"),
        ("wrong_type", "WRONGTYPE"),
    ]
}

//! ActiveJob jobs pushed by Rails (Debian's ActiveJob 6.1 with Sidekiq 6.4's adapter) run in
//! the Rust worker: the wrapped class finds the Rust job, each serialized argument kind arrives
//! as the matching Rust type, failures retry with Sidekiq's fields and the envelope untouched.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use jobs::api::SetKind;
use jobs::{GlobalId, JobError, job};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::support::jobs::{CallLog, worker};
use crate::support::{
    CapturedLog, RunningWorker, TestRedis, eventually, first_entry, ruby, sorted_set,
};

/// JSON types and a Date: as many arguments as the Ruby job takes.
#[allow(clippy::too_many_arguments)]
#[job(name = "ActiveJobPlainJob")]
pub async fn active_job_plain(
    #[state] log: CallLog,
    date: NaiveDate,
    count: i64,
    label: String,
    ratio: f64,
    flag: bool,
    nothing: Option<String>,
    list: Vec<Value>,
) {
    let list = Value::Array(list);
    let entry = format!("plain {date} {count} {label} {ratio} {flag} {nothing:?} {list}");
    log.0.lock().expect("call log").push(entry);
}

/// Times, a Duration, a Symbol and a BigDecimal.
#[job(name = "ActiveJobTimesJob")]
pub async fn active_job_times(
    #[state] log: CallLog,
    time: DateTime<Utc>,
    date_time: DateTime<FixedOffset>,
    zoned: DateTime<FixedOffset>,
    duration: u64,
    symbol: String,
    decimal: String,
) {
    let entry = format!(
        "times {} {} {} {duration} {symbol} {decimal}",
        time.to_rfc3339(),
        date_time.to_rfc3339(),
        zoned.to_rfc3339()
    );
    log.0.lock().expect("call log").push(entry);
}

/// Keyword arguments, read as one struct.
#[derive(Debug, Serialize, Deserialize)]
pub struct Notify {
    notify: bool,
    on: NaiveDate,
    #[serde(default)]
    note: Option<String>,
}

/// Hashes of every kind, a record and keyword arguments.
#[job(name = "ActiveJobHashesJob")]
pub async fn active_job_hashes(
    #[state] log: CallLog,
    symbols: Value,
    indifferent: HashMap<String, i64>,
    strings: HashMap<String, String>,
    user: GlobalId,
    keywords: Notify,
) {
    let mut indifferent: Vec<_> = indifferent.into_iter().collect();
    indifferent.sort();
    let entry = format!(
        "hashes {symbols} {indifferent:?} {strings:?} {}/{}/{} {} {} {:?}",
        user.app,
        user.model,
        user.parse_id::<i64>().unwrap_or(-1),
        keywords.notify,
        keywords.on,
        keywords.note
    );
    log.0.lock().expect("call log").push(entry);
}

/// Always fails.
#[job(name = "ActiveJobFailJob")]
pub async fn active_job_fail(count: i64) -> Result<(), JobError> {
    Err(JobError::msg(format!("failed with {count}")))
}

/// Runs `script` in Ruby after loading ActiveJob 6.1 with the Sidekiq adapter and declaring the
/// Ruby side of the jobs above.
fn rails(redis: &TestRedis, script: &str) -> Value {
    let program = format!(
        r#"
        begin
          require "active_job"
        rescue LoadError
          abort "ActiveJob is missing: apt-get install ruby-activejob (scripts/setup does)"
        end
        require "active_support/all"
        ActiveJob::Base.queue_adapter = :sidekiq
        ActiveJob::Base.logger = Logger.new(nil)
        GlobalID.app = "shop"
        class User
          include GlobalID::Identification
          attr_reader :id
          def initialize(id)
            @id = id
          end
          def self.find(id)
            new(id)
          end
        end
        class ApplicationJob < ActiveJob::Base
          def perform(*args, **keywords); end
        end
        class ActiveJobPlainJob < ApplicationJob; end
        class ActiveJobTimesJob < ApplicationJob; end
        class ActiveJobHashesJob < ApplicationJob; end
        class ActiveJobFailJob < ApplicationJob; end
        class NotInRustJob < ApplicationJob; end
        {script}
        "#
    );
    ruby(&redis.url(), &program)
}

const PUSH_PLAIN: &str = r#"ActiveJobPlainJob.perform_later(Date.new(2026, 12, 6), 42, "text", 1.5, true, nil, [1, "two", [3]])"#;

#[tokio::test]
async fn json_arguments_and_a_date_arrive_as_rust_values() {
    let redis = TestRedis::start();
    let pushed = rails(
        &redis,
        &format!(
            "job = {PUSH_PLAIN}\n\
             puts \"RESULT:\" + JSON.generate(Sidekiq::Queue.new(\"default\").first.item)"
        ),
    );
    assert_eq!(
        pushed["class"],
        "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper"
    );
    assert_eq!(pushed["wrapped"], "ActiveJobPlainJob");
    let log = CallLog::default();
    worker(&redis, &log).drain().await.unwrap();
    assert_eq!(
        log.entries(),
        [r#"plain 2026-12-06 42 text 1.5 true None [1,"two",[3]]"#]
    );
    assert!(sorted_set(&redis, "retry").await.is_empty());
    // Execution metrics count the run under the wrapped class.
    let mut raw = redis.raw().await;
    let keys: Vec<String> = raw.keys("j|*").await.unwrap();
    let mut runs = 0;
    for key in keys {
        let fields: HashMap<String, u64> = raw.hgetall(&key).await.unwrap();
        assert!(
            fields.keys().all(|field| !field.starts_with("ActiveJob::")),
            "{fields:?}"
        );
        runs += fields.get("ActiveJobPlainJob|p").copied().unwrap_or(0);
    }
    assert_eq!(runs, 2, "one run, in the minute and the 10-minute hash");
}

#[tokio::test]
async fn times_durations_symbols_and_decimals_arrive_as_rust_values() {
    let redis = TestRedis::start();
    rails(
        &redis,
        r#"
        ActiveJobTimesJob.perform_later(
          Time.utc(2026, 12, 6, 10, 0, Rational(5_250_000, 1_000_000)),
          DateTime.new(2026, 12, 6, 10, 0, 0, "+02:00"),
          Time.find_zone("Europe/Berlin").local(2026, 12, 6, 11, 30, 0),
          2.hours,
          :gold,
          BigDecimal("12.34"))
        puts "RESULT:" + JSON.generate(Sidekiq::Queue.new("default").first.args)
        "#,
    );
    let log = CallLog::default();
    worker(&redis, &log).drain().await.unwrap();
    assert_eq!(
        log.entries(),
        [
            "times 2026-12-06T10:00:05.250+00:00 2026-12-06T10:00:00+02:00 \
          2026-12-06T11:30:00+01:00 7200 gold 12.34"
        ]
    );
}

#[tokio::test]
async fn hashes_records_and_keyword_arguments_arrive_as_rust_values() {
    let redis = TestRedis::start();
    rails(
        &redis,
        r#"
        ActiveJobHashesJob.perform_later(
          { name: "x", nested: { level: 2, tag: :deep } },
          ActiveSupport::HashWithIndifferentAccess.new("a" => 1, "b" => 2),
          { "k" => "v" },
          User.new(42),
          notify: true, on: Date.new(2026, 12, 24))
        puts "RESULT:" + JSON.generate(Sidekiq::Queue.new("default").first.args)
        "#,
    );
    let log = CallLog::default();
    worker(&redis, &log).drain().await.unwrap();
    assert_eq!(
        log.entries(),
        [
            r#"hashes {"name":"x","nested":{"level":2,"tag":"deep"}} [("a", 1), ("b", 2)] {"k": "v"} shop/User/42 true 2026-12-24 None"#
        ]
    );
}

#[tokio::test]
async fn a_job_set_to_wait_runs_once_when_due() {
    let redis = TestRedis::start();
    rails(
        &redis,
        &format!(
            "{}\nputs \"RESULT:\" + JSON.generate(Sidekiq::ScheduledSet.new.size)",
            PUSH_PLAIN.replace(
                "ActiveJobPlainJob.perform_later",
                "ActiveJobPlainJob.set(wait: 1.second).perform_later"
            )
        ),
    );
    assert_eq!(sorted_set(&redis, "schedule").await.len(), 1);
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    eventually(
        Duration::from_secs(15),
        "the waiting job to run",
        async || !log.entries().is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(
        log.entries(),
        [r#"plain 2026-12-06 42 text 1.5 true None [1,"two",[3]]"#]
    );
}

#[tokio::test]
async fn a_failure_retries_with_sidekiqs_fields_and_the_envelope_untouched() {
    let redis = TestRedis::start();
    let pushed = rails(
        &redis,
        r#"
        ActiveJobFailJob.perform_later(7)
        puts "RESULT:" + Sidekiq::Queue.new("default").first.value.to_json
        "#,
    );
    let pushed: Value = serde_json::from_str(pushed.as_str().unwrap()).unwrap();
    worker(&redis, &CallLog::default()).drain().await.unwrap();

    let retries = sorted_set(&redis, "retry").await;
    assert_eq!(retries.len(), 1);
    let failed = &retries[0].0;
    assert_eq!(failed["error_message"], "failed with 7");
    assert_eq!(failed["error_class"], "JobError");
    assert_eq!(failed["retry_count"], 0);
    assert!(failed["failed_at"].is_f64());
    assert_eq!(
        failed["args"], pushed["args"],
        "the envelope (executions included) is Rails's"
    );
    assert_eq!(failed["args"][0]["executions"], 0);
    assert_eq!(
        first_entry(&redis.client(), SetKind::Retry)
            .await
            .record
            .display_class(),
        "ActiveJobFailJob"
    );
    let seen = rails(
        &redis,
        r#"
        entry = Sidekiq::RetrySet.new.first
        puts "RESULT:" + JSON.generate("display_class" => entry.display_class,
          "display_args" => entry.display_args, "retry_count" => entry["retry_count"])
        "#,
    );
    assert_eq!(seen["display_class"], "ActiveJobFailJob");
    assert_eq!(seen["display_args"], serde_json::json!([7]));
    assert_eq!(seen["retry_count"], 0);
}

#[tokio::test]
async fn a_wrapped_class_no_rust_job_has_fails_as_an_unknown_job() {
    let redis = TestRedis::start();
    rails(
        &redis,
        "NotInRustJob.perform_later(1)\nputs \"RESULT:\" + JSON.generate(1)",
    );
    worker(&redis, &CallLog::default()).drain().await.unwrap();
    let retries = sorted_set(&redis, "retry").await;
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].0["error_class"], "jobs::UnknownJob");
    let message = retries[0].0["error_message"].as_str().unwrap();
    assert!(
        message.starts_with("no job named `NotInRustJob` is registered"),
        "{message}"
    );
}

#[tokio::test]
async fn an_argument_of_the_wrong_kind_is_an_argument_error_naming_it() {
    let redis = TestRedis::start();
    rails(
        &redis,
        r#"
        ActiveJobPlainJob.perform_later(:not_a_date, 42, "text", 1.5, true, nil, [])
        ActiveJobHashesJob.perform_later({}, {}, {}, User.new(1), true)
        puts "RESULT:" + JSON.generate(1)
        "#,
    );
    let log = CallLog::default();
    worker(&redis, &log).drain().await.unwrap();
    assert!(log.entries().is_empty());
    let mut failed: Vec<Value> = sorted_set(&redis, "retry")
        .await
        .into_iter()
        .chain(sorted_set(&redis, "dead").await)
        .map(|(job, _)| job)
        .collect();
    failed.sort_by_key(|job| job["wrapped"].as_str().unwrap_or_default().to_owned());
    assert_eq!(failed.len(), 2);
    assert!(
        failed
            .iter()
            .all(|job| job["error_class"] == "jobs::ArgumentError")
    );
    let hashes = failed[0]["error_message"].as_str().unwrap();
    assert!(hashes.contains("argument `keywords` (#5)"), "{hashes}");
    assert!(hashes.contains("#5 Boolean"), "{hashes}");
    let plain = failed[1]["error_message"].as_str().unwrap();
    assert!(
        plain.starts_with("cannot decode the arguments of ActiveJobPlainJob"),
        "{plain}"
    );
    assert!(plain.contains("argument `date` (#1)"), "{plain}");
    assert!(plain.contains("#1 Symbol"), "{plain}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_log_lines_name_the_wrapped_class() {
    let redis = TestRedis::start();
    rails(
        &redis,
        &format!("{PUSH_PLAIN}\nputs \"RESULT:\" + JSON.generate(1)"),
    );
    let captured = CapturedLog::default();
    let log = CallLog::default();
    {
        let _guard = captured.install();
        worker(&redis, &log).drain().await.unwrap();
    }
    assert_eq!(log.entries().len(), 1);
    let text = captured.text();
    let lines: Vec<&str> = text.lines().filter(|line| line.contains("jid=")).collect();
    assert!(!lines.is_empty(), "{text}");
    assert!(
        lines
            .iter()
            .all(|line| line.contains("class=ActiveJobPlainJob")),
        "{text}"
    );
}

#[tokio::test]
async fn sidekiq_8s_wrapper_and_an_envelope_without_wrapped_run_too() {
    let redis = TestRedis::start();
    let envelope = serde_json::json!({
        "job_class": "ActiveJobPlainJob", "job_id": "5b1c", "queue_name": "default",
        "arguments": [
            {"_aj_serialized": "ActiveJob::Serializers::DateSerializer", "value": "2026-12-07"},
            7, "eight", 9.5, false, "set", []
        ],
        "executions": 0, "exception_executions": {}, "locale": "en", "timezone": "UTC"
    });
    // As Sidekiq 8's adapter writes it: its own wrapper class, integer-millisecond times.
    let mut sidekiq_8 = jobs::Payload::new("Sidekiq::ActiveJob::Wrapper", vec![envelope.clone()]);
    sidekiq_8
        .set("wrapped", "ActiveJobPlainJob".into())
        .unwrap();
    sidekiq_8
        .set("created_at", 1_796_551_200_000_u64.into())
        .unwrap();
    // No `wrapped`: the envelope's `job_class` names the job.
    let mut envelope_only = jobs::Payload::new(
        "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
        vec![envelope],
    );
    envelope_only.args[0]["arguments"][1] = 8.into();
    let client = redis.client();
    client.push(sidekiq_8).await.unwrap();
    client.push(envelope_only).await.unwrap();
    let log = CallLog::default();
    worker(&redis, &log).drain().await.unwrap();
    let mut entries = log.entries();
    entries.sort();
    assert_eq!(
        entries,
        [
            r#"plain 2026-12-07 7 eight 9.5 false Some("set") []"#,
            r#"plain 2026-12-07 8 eight 9.5 false Some("set") []"#,
        ]
    );
}

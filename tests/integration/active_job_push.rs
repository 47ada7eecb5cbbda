//! Rust pushes ActiveJob jobs that Rails runs (`#[job(active_job)]`): Ruby Sidekiq 6.4 with
//! Debian's ActiveJob 6.1 runs what `perform_async`, `perform_in`, `set()` and `perform_bulk`
//! push, with the arguments Rust gave, Dates, a Time, a record and keyword arguments included;
//! the job has the keys a Rails push has; a Rust worker and `jobs::testing` run it too.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use jobs::testing::{self, EnqueuedJob};
use jobs::{Error, GlobalId, Pushed, job};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::support::jobs::{CallLog, worker};
use crate::support::{RubyWorker, TestRedis, now, ruby, sorted_set};

/// A hash argument: a struct, one field of it a Ruby `Date`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    source: String,
    tags: Vec<String>,
    #[serde(with = "jobs::active_job::typed")]
    since: NaiveDate,
}

/// The keyword arguments `notify:` and `on:` (a `Date`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notify {
    notify: bool,
    #[serde(with = "jobs::active_job::typed")]
    on: NaiveDate,
}

/// The Rust side of Ruby's `ScoreGenerationJob#perform(date, count, label, meta, at, user,
/// notify:, on:)`; when a Rust worker runs it, it logs its arguments.
#[allow(clippy::too_many_arguments)]
#[job(name = "ScoreGenerationJob", active_job)]
pub async fn score_generation_job(
    #[state] log: CallLog,
    date: NaiveDate,
    count: i64,
    label: String,
    meta: Meta,
    at: DateTime<Utc>,
    user: GlobalId,
    #[keywords] keywords: Notify,
) {
    let job = ScoreGenerationJob {
        date,
        count,
        label,
        meta,
        at,
        user,
        keywords,
    };
    log.0.lock().expect("call log").push(described(&job));
}

/// A hash argument of any keys, for the reserved-key check.
#[job(name = "TagJob", active_job)]
pub async fn tag_job(tags: std::collections::HashMap<String, String>) {
    let _ = tags;
}

/// Any JSON, for the reserved-key check on a value that looks like ActiveJob's own form.
#[job(name = "AnyJob", active_job)]
pub async fn any_job(input: Value) {
    let _ = input;
}

/// A job of no arguments, for the Ruby app to report the zone and locale it runs in.
#[job(name = "ZoneReportJob", active_job)]
pub async fn zone_report_job() {}

/// What a run of the job saw, to compare with what was pushed.
fn described(job: &ScoreGenerationJob) -> String {
    format!(
        "{} {} {} {:?} {} {} {:?}",
        job.date,
        job.count,
        job.label,
        job.meta,
        job.at.to_rfc3339_opts(SecondsFormat::Nanos, true),
        job.user,
        job.keywords
    )
}

fn day(month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, month, day).expect("a date")
}

/// The arguments of push `count`; the Ruby script's `perform_later` gives the same for 1.
fn call(count: i64) -> ScoreGenerationJob {
    ScoreGenerationJob {
        date: day(12, 6),
        count,
        label: "text".to_owned(),
        meta: Meta {
            source: "rust".to_owned(),
            tags: vec!["a".to_owned(), "b".to_owned()],
            since: day(1, 2),
        },
        at: Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 5).unwrap()
            + chrono::TimeDelta::milliseconds(250),
        user: GlobalId::new("shop", "User", "42"),
        keywords: Notify {
            notify: true,
            on: day(12, 24),
        },
    }
}

/// The Ruby app: ActiveJob 6.1 on Sidekiq, the `User` model GlobalID finds, and the job, which
/// reports what it received (each value's class and value, in JSON) to the list `received`.
const RUBY_APP: &str = r#"
require "sidekiq"
require "active_job"
require "active_support/all"
require "json"
ActiveJob::Base.queue_adapter = :sidekiq
ActiveJob::Base.logger = Logger.new(nil)
# What a Rails app's `config.time_zone` (UTC by default) sets.
Time.zone_default = Time.find_zone!("UTC")
Time.zone = "UTC"
GlobalID.app = "shop"
Sidekiq.options[:poll_interval_average] = 1

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

# `class.to_s`: Rails 6.1's `ActiveSupport::TimeWithZone.name` says "Time".
def described(value)
  case value
  when Hash
    { "class" => value.class.to_s, "keys" => value.keys.map { |key| key.class.to_s }.uniq,
      "value" => value.to_h { |key, item| [key.to_s, described(item)] } }
  when Array then { "class" => "Array", "value" => value.map { |item| described(item) } }
  when Date then { "class" => value.class.to_s, "value" => value.iso8601 }
  when Time then { "class" => value.class.to_s, "value" => value.utc.iso8601(9) }
  when User then { "class" => "User", "value" => value.id }
  else { "class" => value.class.to_s, "value" => value }
  end
end

class ScoreGenerationJob < ActiveJob::Base
  def perform(date, count, label, meta, at, user, notify:, on:)
    report = {
      "provider_job_id" => provider_job_id, "job_id" => job_id, "queue_name" => queue_name,
      "ran_at" => Time.now.to_f,
      "arguments" => [date, count, label, meta, at, user].map { |value| described(value) },
      "keywords" => { "notify" => described(notify), "on" => described(on) },
    }
    Sidekiq.redis { |redis| redis.rpush("received", JSON.generate(report)) }
  end
end
"#;

/// What the Ruby job reports for push `count`: Ruby's classes and values.
fn ruby_sees(count: i64) -> (Value, Value) {
    let arguments = json!([
        {"class": "Date", "value": "2026-12-06"},
        {"class": "Integer", "value": count},
        {"class": "String", "value": "text"},
        {"class": "Hash", "keys": ["String"], "value": {
            "source": {"class": "String", "value": "rust"},
            "tags": {"class": "Array", "value": [
                {"class": "String", "value": "a"}, {"class": "String", "value": "b"}]},
            "since": {"class": "Date", "value": "2026-01-02"}
        }},
        {"class": "ActiveSupport::TimeWithZone", "value": "2026-12-06T10:00:05.250000000Z"},
        {"class": "User", "value": "42"}
    ]);
    let keywords = json!({
        "notify": {"class": "TrueClass", "value": true},
        "on": {"class": "Date", "value": "2026-12-24"}
    });
    (arguments, keywords)
}

/// Waits up to `limit` for `count` reports from the Ruby job; on time out, fails the test with
/// what the retry set holds (a job Ruby could not run fails there).
async fn received(redis: &TestRedis, count: usize, limit: Duration) -> Vec<Value> {
    let deadline = std::time::Instant::now() + limit;
    let mut raw = redis.raw().await;
    loop {
        let reports: Vec<String> = raw.lrange("received", 0, -1).await.unwrap();
        if reports.len() >= count {
            return reports
                .iter()
                .map(|report| serde_json::from_str(report).unwrap())
                .collect();
        }
        if std::time::Instant::now() > deadline {
            let failed: Vec<String> = sorted_set(redis, "retry")
                .await
                .into_iter()
                .map(|(job, _)| format!("{}: {}", job["error_class"], job["error_message"]))
                .collect();
            panic!(
                "Ruby ran {} of {count} jobs within {limit:?}; failed in Ruby: {failed:?}",
                reports.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A scratch directory for the Ruby app, removed when the test ends.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(redis: &TestRedis) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "jobs-active-job-{}-{}",
            std::process::id(),
            redis.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `source` as the Ruby app `file` here and starts Sidekiq on it, taking `queues`;
    /// stopped when the returned worker is dropped.
    fn start_sidekiq(
        &self,
        redis: &TestRedis,
        file: &str,
        source: &str,
        queues: &[&str],
    ) -> RubyWorker {
        let app = self.0.join(file);
        std::fs::write(&app, source).unwrap();
        RubyWorker::start(redis, &self.0, &app, &self.0.join("unused"), queues)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn rails_runs_what_rust_pushes_with_equal_arguments() {
    let redis = TestRedis::start();
    let client = redis.client();
    let pushed_at = now();
    let mut pushes = vec![(
        ScoreGenerationJob::set()
            .client(&client)
            .perform_async(call(1))
            .await
            .unwrap(),
        1,
        "default",
    )];
    pushes.push((
        ScoreGenerationJob::set()
            .client(&client)
            .perform_in(Duration::from_secs(3), call(2))
            .await
            .unwrap(),
        2,
        "default",
    ));
    let scheduled = sorted_set(&redis, "schedule").await;
    assert_eq!(scheduled.len(), 1, "perform_in waits in the schedule set");
    assert_eq!(scheduled[0].0["wrapped"], "ScoreGenerationJob");
    pushes.push((
        ScoreGenerationJob::set()
            .client(&client)
            .queue("critical")
            .perform_async(call(3))
            .await
            .unwrap(),
        3,
        "critical",
    ));
    let bulk = client.perform_bulk([call(4), call(5)]).await.unwrap();
    pushes.extend(
        bulk.into_iter()
            .zip([4, 5])
            .map(|(pushed, count)| (pushed, count, "default")),
    );

    let scratch = Scratch::new(&redis);
    let _sidekiq = scratch.start_sidekiq(
        &redis,
        "score_generation_job.rb",
        RUBY_APP,
        &["default", "critical"],
    );
    let reports = received(&redis, pushes.len(), Duration::from_secs(60)).await;

    assert_eq!(reports.len(), pushes.len());
    for (pushed, count, queue) in pushes {
        let Pushed::Queued(jid) = pushed else {
            panic!("not a unique job: {pushed:?}")
        };
        let report = reports
            .iter()
            .find(|report| report["provider_job_id"] == jid.as_str())
            .unwrap_or_else(|| panic!("Ruby ran job {jid}: {reports:?}"));
        let (arguments, keywords) = ruby_sees(count);
        assert_eq!(report["arguments"], arguments, "push {count}");
        assert_eq!(report["keywords"], keywords, "push {count}");
        assert_eq!(report["queue_name"], queue, "push {count}");
        if count == 2 {
            let ran_at = report["ran_at"].as_f64().unwrap();
            assert!(
                ran_at >= pushed_at + 3.0,
                "ran {ran_at}, pushed {pushed_at}"
            );
        }
    }
    let job_ids: std::collections::HashSet<&str> = reports
        .iter()
        .map(|report| report["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(job_ids.len(), reports.len(), "each push has its own job_id");
}

/// The keys of a JSON object, sorted.
fn keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn is_uuid_v4(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.iter().map(|part| part.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && text.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        && parts[2].starts_with('4')
}

#[tokio::test]
async fn the_job_has_the_keys_and_arguments_of_a_rails_push() {
    let redis = TestRedis::start();
    let rails = ruby(
        &redis.url(),
        &format!(
            r#"{RUBY_APP}
            args = [Date.new(2026, 12, 6), 1, "text",
                    {{ "source" => "rust", "tags" => ["a", "b"], "since" => Date.new(2026, 1, 2) }},
                    Time.utc(2026, 12, 6, 10, 0, Rational(5_250, 1_000)).in_time_zone, User.new(42)]
            ScoreGenerationJob.perform_later(*args, notify: true, on: Date.new(2026, 12, 24))
            ScoreGenerationJob.set(wait: 60).perform_later(*args, notify: true, on: Date.new(2026, 12, 24))
            queued = Sidekiq::Queue.new("default").first.item
            scheduled = Sidekiq::ScheduledSet.new.first.item
            Sidekiq::Queue.new("default").clear
            Sidekiq::ScheduledSet.new.clear
            puts "RESULT:" + JSON.generate("queued" => queued, "scheduled" => scheduled)
            "#
        ),
    );
    let client = redis.client();
    ScoreGenerationJob::set()
        .client(&client)
        .perform_async(call(1))
        .await
        .unwrap();
    ScoreGenerationJob::set()
        .client(&client)
        .perform_in(Duration::from_secs(60), call(1))
        .await
        .unwrap();
    let mut raw = redis.raw().await;
    let queued: String = raw.rpop("queue:default", None).await.unwrap();
    let queued: Value = serde_json::from_str(&queued).unwrap();
    let scheduled = sorted_set(&redis, "schedule").await.remove(0).0;

    for (ours, theirs) in [
        (&queued, &rails["queued"]),
        (&scheduled, &rails["scheduled"]),
    ] {
        assert_eq!(keys(ours), keys(theirs), "the job's keys");
        for key in ["class", "wrapped", "queue", "retry"] {
            assert_eq!(ours[key], theirs[key], "`{key}`");
        }
        let (ours, theirs) = (&ours["args"][0], &theirs["args"][0]);
        assert_eq!(keys(ours), keys(theirs), "the envelope's keys");
        for key in [
            "job_class",
            "provider_job_id",
            "queue_name",
            "priority",
            "arguments",
            "executions",
            "exception_executions",
        ] {
            assert_eq!(ours[key], theirs[key], "the envelope's `{key}`");
        }
        // Rails writes its app's own; Rust leaves them to the app that runs the job.
        assert_eq!(
            (&theirs["locale"], &theirs["timezone"]),
            (&json!("en"), &json!("UTC"))
        );
        assert_eq!(
            (&ours["locale"], &ours["timezone"]),
            (&Value::Null, &Value::Null)
        );
        for envelope in [ours, theirs] {
            assert!(
                is_uuid_v4(envelope["job_id"].as_str().unwrap()),
                "{envelope}"
            );
            let enqueued_at = envelope["enqueued_at"].as_str().unwrap();
            let read = DateTime::parse_from_rfc3339(enqueued_at).unwrap();
            assert_eq!(
                read.to_utc().to_rfc3339_opts(SecondsFormat::Secs, true),
                enqueued_at,
                "whole seconds, UTC"
            );
        }
    }
    assert!(queued.get("enqueued_at").is_some());
    assert!(scheduled.get("enqueued_at").is_none());
}

#[tokio::test]
async fn a_rust_worker_runs_what_rust_pushes() {
    let redis = TestRedis::start();
    let client = redis.client();
    ScoreGenerationJob::set()
        .client(&client)
        .perform_async(call(1))
        .await
        .unwrap();
    client.perform_bulk([call(2), call(3)]).await.unwrap();
    let log = CallLog::default();
    worker(&redis, &log).drain().await.unwrap();
    let mut entries = log.entries();
    entries.sort();
    assert_eq!(entries, [1, 2, 3].map(|count| described(&call(count))));
    assert!(sorted_set(&redis, "retry").await.is_empty());
}

#[tokio::test]
async fn testing_records_the_envelope_and_it_runs_inline_too() {
    let log = CallLog::default();
    let fake = testing::fake().state(log.clone());
    let first = call(1);
    ScoreGenerationJob::perform_async(
        first.date,
        first.count,
        first.label,
        first.meta,
        first.at,
        first.user,
        first.keywords,
    )
    .await
    .unwrap();
    let [job]: [EnqueuedJob; 1] = fake.enqueued().try_into().expect("one job");
    assert_eq!(
        job.class(),
        "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper"
    );
    assert_eq!(job.job_name(), "ScoreGenerationJob");
    assert_eq!(job.payload().args[0]["queue_name"], "default");
    assert_eq!(
        job.payload().args[0]["arguments"][0],
        json!({"_aj_serialized": "ActiveJob::Serializers::DateSerializer", "value": "2026-12-06"})
    );
    let decoded: Vec<String> = fake
        .jobs::<ScoreGenerationJob>()
        .iter()
        .map(described)
        .collect();
    assert_eq!(decoded, [described(&call(1))]);
    assert_eq!(fake.drain().await.unwrap(), 1);
    assert_eq!(log.entries(), [described(&call(1))]);
    drop(fake);

    let inline = testing::inline().state(log.clone());
    ScoreGenerationJob::set()
        .perform_async(call(2))
        .await
        .unwrap();
    drop(inline);
    ScoreGenerationJob::set()
        .state(jobs::JobState::new().with(log.clone()))
        .perform_inline(call(3))
        .await
        .unwrap();
    assert_eq!(
        log.entries()[1..],
        [2, 3].map(|count| described(&call(count)))
    );
}

#[tokio::test]
async fn a_unique_active_job_job_is_unique_over_its_arguments() {
    let _fake = testing::fake();
    let first = ScoreGenerationJob::set()
        .unique_for(Duration::from_secs(60))
        .perform_async(call(1))
        .await
        .unwrap();
    let again = ScoreGenerationJob::set()
        .unique_for(Duration::from_secs(60))
        .perform_async(call(1))
        .await
        .unwrap();
    let other = ScoreGenerationJob::set()
        .unique_for(Duration::from_secs(60))
        .perform_async(call(2))
        .await
        .unwrap();
    assert!(matches!(first, Pushed::Queued(_)), "{first:?}");
    assert_eq!(again, Pushed::Duplicate(first.into_jid()));
    assert!(matches!(other, Pushed::Queued(_)), "{other:?}");
}

#[tokio::test]
async fn a_hash_with_a_key_activejob_reserves_is_refused() {
    let _fake = testing::fake();
    let tags = std::collections::HashMap::from([("_aj_globalid".to_owned(), "x".to_owned())]);
    let error = TagJob::perform_async(tags).await.unwrap_err();
    assert!(matches!(error, Error::Encode { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "cannot encode the arguments of TagJob as JSON: argument `tags`: a hash has the key \
         `_aj_globalid`, which ActiveJob reserves for its own forms, so Rails would refuse it \
         too (ActiveJob::SerializationError): rename the key"
    );
}

/// A Rails app of another zone and locale: `config.time_zone = "Berlin"` sets
/// `Time.zone_default`, `config.i18n.available_locales = [:de]` and `default_locale = :de`
/// the locale. Its job reports the zone and locale `perform` runs in.
const BERLIN_APP: &str = r#"
require "sidekiq"
require "active_job"
require "active_support/all"
require "json"
ActiveJob::Base.queue_adapter = :sidekiq
ActiveJob::Base.logger = Logger.new(nil)
Time.zone_default = Time.find_zone!("Berlin")
I18n.available_locales = [:de]
I18n.default_locale = :de
Sidekiq.options[:poll_interval_average] = 1

class ZoneReportJob < ActiveJob::Base
  def perform
    report = { "zone" => Time.zone.name, "locale" => I18n.locale.to_s,
               "timezone" => timezone, "job_locale" => locale }
    Sidekiq.redis { |redis| redis.rpush("received", JSON.generate(report)) }
  end
end
"#;

#[tokio::test]
async fn rails_runs_the_job_in_the_app_s_own_zone_and_locale() {
    let redis = TestRedis::start();
    let client = redis.client();
    ZoneReportJob::set()
        .client(&client)
        .perform_async(())
        .await
        .unwrap();
    let mut raw = redis.raw().await;
    let queued: Vec<String> = raw.lrange("queue:default", 0, -1).await.unwrap();
    let queued: Value = serde_json::from_str(&queued[0]).unwrap();
    let envelope = &queued["args"][0];
    assert_eq!(envelope["locale"], Value::Null, "{envelope}");
    assert_eq!(envelope["timezone"], Value::Null, "{envelope}");

    let scratch = Scratch::new(&redis);
    let _sidekiq = scratch.start_sidekiq(&redis, "zone_report_job.rb", BERLIN_APP, &["default"]);
    let reports = received(&redis, 1, Duration::from_secs(30)).await;
    assert_eq!(
        reports[0],
        json!({"zone": "Berlin", "locale": "de", "timezone": "Berlin", "job_locale": "de"})
    );
}

#[tokio::test]
async fn a_form_from_input_is_refused_even_when_valid() {
    // Request input shaped as ActiveJob's record form, naming a record the caller chose: Rails
    // refuses such a Hash, and so does the push (only `Typed` values make the form).
    let _fake = testing::fake();
    let admin = || json!({"_aj_globalid": "gid://shop/Admin/1"});
    let tags = std::collections::HashMap::from([(
        "_aj_globalid".to_owned(),
        "gid://shop/Admin/1".to_owned(),
    )]);
    let error = TagJob::perform_async(tags).await.unwrap_err();
    assert!(matches!(error, Error::Encode { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("argument `tags`: a hash has the key `_aj_globalid`"),
        "{error}"
    );
    let date = json!({"_aj_serialized": "ActiveJob::Serializers::DateSerializer",
                      "value": "2026-12-06"});
    for (input, at) in [
        (admin(), ""),
        (json!({"owner": admin()}), " (at `.owner`)"),
        (json!([1, admin()]), " (at `[1]`)"),
        (json!({"on": date}), " (at `.on`)"),
    ] {
        let error = AnyJob::perform_async(input.clone()).await.unwrap_err();
        assert!(matches!(error, Error::Encode { .. }), "{input}: {error:?}");
        assert!(
            error
                .to_string()
                .contains(&format!("argument `input`: a hash{at} has the key `_aj_")),
            "{input}: {error}"
        );
    }
}

//! Every rewrite `jobs` makes of a stored job (promotion, crash recovery, a failure, the
//! dashboard's actions) changes only the fields it sets: every other field keeps its exact
//! text, so jobs meant for Ruby (big integers, 17-digit floats, `retry: "5"`, string times, no
//! `jid`) pass through Rust untouched, and none of them is dead-lettered for its odd fields.

use std::collections::BTreeMap;
use std::time::Duration;

use jobs::api::{Page, RetrySet, ScheduledSet};
use jobs::worker::enqueue_due;
use redis::AsyncCommands;
use serde_json::value::RawValue;

use crate::support::jobs::{CallLog, worker};
use crate::support::{RunningWorker, TestRedis, eventually, now, ruby, sorted_set};

/// A job only Ruby runs, with every field a strict reader would refuse or respell.
const RUBY_JOB: &str = r#"{"retry":"5","queue":"ruby","class":"RubyOnly","args":[123456789012345678901234567890,1.4119146844623421e-61,-98765432109876543210],"jid":"0123456789abcdef01234567","tags":[1],"retry_count":3.0,"created_at":"2026-11-22T10:00:00Z","enqueued_at":1795369595.3623605,"failed_at":1795369595,"bid":"Fm2pC8vIhLQ7aw"}"#;

/// A number no 64-bit float holds: Ruby reads it as `Infinity`; the promotion keeps its text.
const OUT_OF_RANGE: &str = r#"{"class":"RubyOnly","queue":"ruby","jid":"f","args":[{"n":1e400}]}"#;

/// A job with no `jid` and no `queue`.
const NO_JID_OR_QUEUE: &str = r#"{"retry":true,"class":"RubyOnly","args":[123456789012345678901234567890,1.4119146844623421e-61],"created_at":1795369595.3622906}"#;

/// The top-level fields of `json`, in order, each with its exact text.
fn fields(json: &str) -> Vec<(String, String)> {
    struct Ordered(Vec<(String, String)>);
    impl<'de> serde::Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Fields;
            impl<'de> serde::de::Visitor<'de> for Fields {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Ordered, A::Error> {
                    let mut fields = Vec::new();
                    while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                        fields.push((key, value.get().to_owned()));
                    }
                    Ok(Ordered(fields))
                }
            }
            deserializer.deserialize_map(Fields)
        }
    }
    serde_json::from_str::<Ordered>(json)
        .unwrap_or_else(|error| panic!("not a JSON object ({error}): {json}"))
        .0
}

/// Checks that `rewritten` keeps every field of `original` in order and with its exact text,
/// except the fields in `set`, which it must have; returns the fields it has beyond the
/// original's.
fn assert_only_changed(original: &str, rewritten: &str, set: &[&str]) -> BTreeMap<String, String> {
    let before = fields(original);
    let after = fields(rewritten);
    let kept: Vec<&(String, String)> = before
        .iter()
        .filter(|(key, _)| !set.contains(&key.as_str()))
        .collect();
    let after_kept: Vec<&(String, String)> = after
        .iter()
        .filter(|(key, _)| before.iter().any(|(k, _)| k == key) && !set.contains(&key.as_str()))
        .collect();
    assert_eq!(
        after_kept, kept,
        "untouched fields changed:\n{original}\n{rewritten}"
    );
    for key in set {
        assert!(
            after.iter().any(|(k, _)| k == key),
            "`{key}` is not set:\n{rewritten}"
        );
    }
    after
        .into_iter()
        .filter(|(key, _)| set.contains(&key.as_str()))
        .collect()
}

/// The stored text of queue `name`'s jobs, oldest first.
async fn queued(redis: &TestRedis, name: &str) -> Vec<String> {
    let mut jobs: Vec<String> = redis
        .raw()
        .await
        .lrange(format!("queue:{name}"), 0, -1)
        .await
        .unwrap();
    jobs.reverse();
    jobs
}

#[tokio::test]
async fn promotion_sets_only_enqueued_at() {
    let redis = TestRedis::start();
    redis.zadd("retry", now() - 1.0, RUBY_JOB).await;
    let before = now();
    assert_eq!(enqueue_due(&redis.client()).await.unwrap(), 1);
    let pushed = &queued(&redis, "ruby").await[0];
    let set = assert_only_changed(RUBY_JOB, pushed, &["enqueued_at"]);
    let enqueued_at: f64 = set["enqueued_at"].parse().unwrap();
    assert!(enqueued_at >= before - 1.0 && set["enqueued_at"].contains('.'));
    assert_eq!(
        pushed,
        &RUBY_JOB.replace("1795369595.3623605", &set["enqueued_at"]),
        "enqueued_at is replaced in its place"
    );
    assert!(sorted_set(&redis, "dead").await.is_empty());

    redis.zadd("schedule", now() - 1.0, OUT_OF_RANGE).await;
    assert_eq!(enqueue_due(&redis.client()).await.unwrap(), 1);
    let pushed = &queued(&redis, "ruby").await[1];
    assert_only_changed(OUT_OF_RANGE, pushed, &["enqueued_at"]);
}

#[tokio::test]
async fn promotion_fills_in_a_missing_jid_and_queue_as_sidekiqs_poller_does() {
    let redis = TestRedis::start();
    redis.zadd("schedule", now() - 1.0, NO_JID_OR_QUEUE).await;
    assert_eq!(enqueue_due(&redis.client()).await.unwrap(), 1);
    let pushed = &queued(&redis, "default").await[0];
    let set = assert_only_changed(NO_JID_OR_QUEUE, pushed, &["queue", "jid", "enqueued_at"]);
    assert_eq!(set["queue"], r#""default""#);
    assert_eq!(set["jid"].len(), 26, "24 hex characters: {}", set["jid"]);
    assert!(pushed.starts_with(&NO_JID_OR_QUEUE[..NO_JID_OR_QUEUE.len() - 1]));
}

#[tokio::test]
async fn ruby_reads_the_promoted_job_with_its_arguments_equal() {
    let redis = TestRedis::start();
    let args = "[123456789012345678901234567890, 1.4119146844623421e-61, 0.30000000000000004, \
                -98765432109876543210, 1.0e-300, \"é\"]";
    ruby(
        &redis.url(),
        &format!(
            r#"
            Sidekiq::Client.push("class" => "RubyOnly", "queue" => "ruby", "args" => {args},
              "retry" => "5", "tags" => [1], "retry_count" => 3.0,
              "created_at" => "2026-11-22T10:00:00Z", "at" => Time.now.to_f - 1)
            puts "RESULT:" + JSON.generate("ok" => true)
            "#
        ),
    );
    assert_eq!(enqueue_due(&redis.client()).await.unwrap(), 1);
    let seen = ruby(
        &redis.url(),
        &format!(
            r#"
            job = Sidekiq::Queue.new("ruby").first
            puts "RESULT:" + JSON.generate("equal" => job.args == {args},
              "args" => job.args.map(&:inspect), "retry" => job.item["retry"],
              "tags" => job.item["tags"], "retry_count" => job.item["retry_count"].inspect,
              "created_at" => job.item["created_at"], "dead" => Sidekiq::DeadSet.new.size)
            "#
        ),
    );
    assert_eq!(seen["equal"], true, "{seen}");
    assert_eq!(seen["retry"], "5");
    assert_eq!(seen["tags"], serde_json::json!([1]));
    assert_eq!(seen["retry_count"], "3.0");
    assert_eq!(seen["created_at"], "2026-11-22T10:00:00Z");
    assert_eq!(seen["dead"], 0);
}

#[tokio::test]
async fn a_failure_sets_only_the_failure_fields() {
    let redis = TestRedis::start();
    let job = RUBY_JOB.replace(r#""queue":"ruby""#, r#""queue":"default""#);
    let _: () = redis
        .raw()
        .await
        .lpush("queue:default", &job)
        .await
        .unwrap();
    worker(&redis, &CallLog::default()).drain().await.unwrap();

    assert!(
        sorted_set(&redis, "dead").await.is_empty(),
        "not dead-lettered"
    );
    let retries: Vec<String> = redis.raw().await.zrange("retry", 0, -1).await.unwrap();
    assert_eq!(retries.len(), 1);
    let set = assert_only_changed(
        &job,
        &retries[0],
        &["error_message", "error_class", "retry_count", "retried_at"],
    );
    assert_eq!(set["error_class"], r#""jobs::UnknownJob""#);
    assert_eq!(
        set["retry_count"], "4",
        "a count read as Sidekiq does, plus one"
    );
    // `failed_at` stays: this is not the first failure.
}

#[tokio::test]
async fn crash_recovery_sets_only_its_count() {
    let redis = TestRedis::start();
    let dead_process = "gone-host:1:0123456789ab";
    let mut raw = redis.raw().await;
    let _: () = raw.sadd("jobs:workers", dead_process).await.unwrap();
    let _: () = raw
        .lpush(format!("jobs:working:{dead_process}"), RUBY_JOB)
        .await
        .unwrap();
    // Its last heartbeat saw it running the job.
    let work = serde_json::json!({"queue": "ruby", "payload": RUBY_JOB, "run_at": 1});
    let _: () = raw
        .hset(format!("{dead_process}:work"), "tid", work.to_string())
        .await
        .unwrap();
    let running = RunningWorker::start(
        worker(&redis, &CallLog::default()).recovery(Duration::from_millis(200), 3),
    );
    eventually(
        Duration::from_secs(10),
        "the dead process's job to be handed back",
        async || !queued(&redis, "ruby").await.is_empty(),
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
    let handed_back = &queued(&redis, "ruby").await[0];
    let set = assert_only_changed(RUBY_JOB, handed_back, &["jobs_recoveries"]);
    assert_eq!(set["jobs_recoveries"], "1");
    assert!(sorted_set(&redis, "dead").await.is_empty());
}

#[tokio::test]
async fn the_dashboards_actions_keep_every_other_byte() {
    let redis = TestRedis::start();
    let client = redis.client();
    redis.zadd("retry", now() + 600.0, RUBY_JOB).await;
    let retries = RetrySet::new(&client);
    let entries = retries.page(Page::first(1)).await.unwrap();
    assert_eq!(retries.retry(&entries).await.unwrap(), 1);
    let pushed = &queued(&redis, "ruby").await[0];
    let set = assert_only_changed(RUBY_JOB, pushed, &["enqueued_at", "retry_count"]);
    assert_eq!(
        set["retry_count"], "2.0",
        "one fewer, as Sidekiq's `retry_count -= 1`"
    );

    let scheduled = NO_JID_OR_QUEUE.replace('{', r#"{"jid":"s1","queue":"ruby","#);
    redis.zadd("schedule", now() + 600.0, &scheduled).await;
    let later = ScheduledSet::new(&client);
    let entries = later.page(Page::first(1)).await.unwrap();
    assert_eq!(later.add_to_queue(&entries).await.unwrap(), 1);
    let pushed = &queued(&redis, "ruby").await[1];
    assert_only_changed(&scheduled, pushed, &["enqueued_at"]);

    redis.zadd("schedule", now() + 600.0, RUBY_JOB).await;
    let entries = later.page(Page::first(1)).await.unwrap();
    assert_eq!(later.kill(&entries).await.unwrap(), 1);
    let dead: Vec<String> = redis.raw().await.zrange("dead", 0, -1).await.unwrap();
    assert_eq!(dead, [RUBY_JOB], "killed as it was");
}

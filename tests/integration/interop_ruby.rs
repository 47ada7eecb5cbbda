//! Ruby Sidekiq 6.4 (Debian's `ruby-sidekiq`) reads what `jobs` writes, and the other way round.

use std::time::Duration;

use chrono::NaiveDate;
use jobs::{JobContext, JobState, Payload, Registry};
use redis::AsyncCommands;

use crate::support::jobs::{Deliver, ScoreGeneration};
use crate::support::{TestRedis, now, ruby};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).expect("a date")
}

#[tokio::test]
async fn sidekiq_queue_lists_our_job_with_its_class_args_and_jid() {
    let redis = TestRedis::start();
    let jid = ScoreGeneration::set()
        .client(&redis.client())
        .perform_async(today())
        .await
        .unwrap();
    let seen = ruby(
        &redis.url(),
        r#"
        queue = Sidekiq::Queue.new("default")
        job = queue.first
        puts "RESULT:" + JSON.generate(
          "size" => queue.size, "klass" => job.klass, "args" => job.args, "jid" => job.jid,
          "queue" => job.queue, "enqueued_at" => job.enqueued_at.to_f,
          "latency" => queue.latency, "found" => !queue.find_job(job.jid).nil?,
          "queues" => Sidekiq::Queue.all.map(&:name), "enqueued" => Sidekiq::Stats.new.enqueued)
        "#,
    );
    assert_eq!(seen["size"], 1);
    assert_eq!(seen["klass"], "ScoreGeneration");
    assert_eq!(seen["args"], serde_json::json!(["2026-11-22"]));
    assert_eq!(seen["jid"], jid.as_str());
    assert_eq!(seen["queue"], "default");
    assert_eq!(seen["found"], true);
    assert_eq!(seen["queues"], serde_json::json!(["default"]));
    assert_eq!(seen["enqueued"], 1);
    let enqueued_at = seen["enqueued_at"].as_f64().unwrap();
    assert!(
        (now() - enqueued_at).abs() < 30.0,
        "enqueued_at {enqueued_at}"
    );
    let latency = seen["latency"].as_f64().unwrap();
    assert!((0.0..30.0).contains(&latency), "latency {latency}");
}

#[tokio::test]
async fn sidekiq_scheduled_set_shows_perform_in_at_the_right_time() {
    let redis = TestRedis::start();
    let before = now();
    let jid = ScoreGeneration::set()
        .client(&redis.client())
        .perform_in(Duration::from_secs(300), today())
        .await
        .unwrap();
    let seen = ruby(
        &redis.url(),
        r#"
        set = Sidekiq::ScheduledSet.new
        entry = set.first
        puts "RESULT:" + JSON.generate(
          "size" => set.size, "klass" => entry.klass, "jid" => entry.jid, "at" => entry.at.to_f,
          "args" => entry.args, "scheduled" => Sidekiq::Stats.new.scheduled_size)
        "#,
    );
    assert_eq!(seen["size"], 1);
    assert_eq!(seen["scheduled"], 1);
    assert_eq!(seen["klass"], "ScoreGeneration");
    assert_eq!(seen["jid"], jid.as_str());
    let at = seen["at"].as_f64().unwrap();
    assert!(before + 299.0 <= at && at <= now() + 301.0, "at {at}");
}

#[tokio::test]
async fn sidekiq_reads_our_options() {
    let redis = TestRedis::start();
    redis
        .client()
        .perform_async(Deliver { message_id: 9 })
        .await
        .unwrap();
    let seen = ruby(
        &redis.url(),
        r#"
        job = Sidekiq::Queue.new("critical").first
        puts "RESULT:" + JSON.generate(
          "klass" => job.klass, "retry" => job.item["retry"], "dead" => job.item["dead"],
          "tags" => job.tags, "retry_queue" => job.item["retry_queue"])
        "#,
    );
    assert_eq!(seen["klass"], "Mailer::Deliver");
    assert_eq!(seen["retry"], false);
    assert_eq!(seen["dead"], false);
    assert_eq!(seen["tags"], serde_json::json!(["mail", "urgent"]));
    assert_eq!(seen["retry_queue"], "slow");
}

#[tokio::test]
async fn jobs_ruby_pushes_decode_into_our_job_types() {
    let redis = TestRedis::start();
    let pushed = ruby(
        &redis.url(),
        r#"
        now = Sidekiq::Client.push("class" => "ScoreGeneration", "args" => ["2026-11-22"])
        later = Sidekiq::Client.push("class" => "ScoreGeneration", "args" => ["2026-11-23"],
                                     "at" => Time.now.to_f + 600)
        puts "RESULT:" + JSON.generate("now" => now, "later" => later)
        "#,
    );
    let mut raw = redis.raw().await;
    let queued: String = raw.rpop("queue:default", None).await.unwrap();
    let payload = Payload::from_json(&queued).unwrap();
    assert_eq!(payload.jid, pushed["now"].as_str().unwrap());

    let registry = Registry::from_inventory().unwrap();
    let job = registry
        .get(&payload.class)
        .expect("ScoreGeneration is registered");
    let context = JobContext::from_payload(&payload);
    assert!(context.enqueued_at().is_some());
    job.run(payload.args.clone(), context, &JobState::new())
        .expect("Ruby's args decode into a NaiveDate")
        .await
        .unwrap();

    let scheduled: Vec<String> = raw.zrange("schedule", 0, -1).await.unwrap();
    let later = Payload::from_json(&scheduled[0]).unwrap();
    assert_eq!(later.jid, pushed["later"].as_str().unwrap());
    assert_eq!(later.args, [serde_json::json!("2026-11-23")]);
    assert!(later.enqueued_at.is_none());
}

//! The worker beside Ruby Sidekiq 6.4: Ruby's jobs run here, our failures and counters show in
//! Ruby's API, and Ruby runs the jobs we push for its classes, periodic ones included.

use std::time::Duration;

use jobs::Payload;
use serde_json::json;

use crate::support::jobs::worker;
use crate::support::jobs::{BuryMe, CallLog, FailWith};
use crate::support::{RubyWorker, RunningWorker, TestRedis, eventually, ruby};

#[tokio::test]
async fn a_job_ruby_pushes_runs_in_the_rust_worker() {
    let redis = TestRedis::start();
    ruby(
        &redis.url(),
        r#"
        Sidekiq::Client.push("class" => "Record", "args" => ["from ruby"])
        puts "RESULT:" + JSON.generate("ok" => true)
        "#,
    );
    let log = CallLog::default();
    worker(&redis, &log).drain().await.unwrap();
    assert_eq!(log.entries(), ["from ruby"]);
}

#[tokio::test]
async fn ruby_sees_our_failures_and_counters() {
    let redis = TestRedis::start();
    let client = redis.client();
    let jid = client
        .perform_async(FailWith {
            how: "plain".into(),
        })
        .await
        .unwrap();
    client.perform_async(BuryMe {}).await.unwrap();
    worker(&redis, &CallLog::default()).drain().await.unwrap();

    let seen = ruby(
        &redis.url(),
        r#"
        entry = Sidekiq::RetrySet.new.first
        dead = Sidekiq::DeadSet.new.first
        stats = Sidekiq::Stats.new
        puts "RESULT:" + JSON.generate(
          "jid" => entry.jid, "klass" => entry.klass, "error_message" => entry["error_message"],
          "error_class" => entry["error_class"], "retry_count" => entry["retry_count"],
          "failed_at" => entry["failed_at"], "at" => entry.at.to_f,
          "dead_klass" => dead.klass, "dead_error" => dead["error_message"],
          "processed" => stats.processed, "failed" => stats.failed,
          "retry_size" => stats.retry_size, "dead_size" => stats.dead_size)
        "#,
    );
    assert_eq!(seen["jid"], jid.as_str());
    assert_eq!(seen["klass"], "FailWith");
    assert_eq!(seen["error_message"], "failed: plain");
    assert_eq!(seen["error_class"], "JobError");
    assert_eq!(seen["retry_count"], 0);
    assert!(seen["failed_at"].is_f64());
    assert!(seen["at"].as_f64().unwrap() > crate::support::now());
    assert_eq!(seen["dead_klass"], "BuryMe");
    assert_eq!(seen["dead_error"], "always");
    assert_eq!(seen["processed"], 2);
    assert_eq!(seen["failed"], 2);
    assert_eq!(seen["retry_size"], 1);
    assert_eq!(seen["dead_size"], 1);
}

#[tokio::test]
async fn a_job_we_push_for_a_ruby_class_runs_in_ruby_sidekiq() {
    let redis = TestRedis::start();
    let dir =
        std::env::temp_dir().join(format!("jobs-ruby-{}-{}", std::process::id(), redis.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("ran.txt");
    let app = dir.join("hard_job.rb");
    std::fs::write(
        &app,
        r##"
        require "sidekiq"
        class HardJob
          include Sidekiq::Worker
          def perform(name, count)
            File.write(ENV.fetch("JOBS_TEST_OUT"), "#{name}:#{count}")
          end
        end
        "##,
    )
    .unwrap();
    let _sidekiq = RubyWorker::start(&redis, &dir, &app, &out, &["ruby"]);
    redis
        .client()
        .push(Payload::new("HardJob", vec![json!("bob"), json!(5)]).queue("ruby"))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "Ruby Sidekiq to run HardJob",
        async || std::fs::read_to_string(&out).is_ok_and(|text| text == "bob:5"),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_periodic_entry_of_the_config_file_runs_a_ruby_job_in_ruby_sidekiq() {
    let redis = TestRedis::start();
    let dir = std::env::temp_dir().join(format!(
        "jobs-ruby-periodic-{}-{}",
        std::process::id(),
        redis.port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("ran.txt");
    let app = dir.join("report_job.rb");
    std::fs::write(
        &app,
        r##"
        require "sidekiq"
        class WeeklyReport
          include Sidekiq::Worker
          def perform(kind, count)
            File.write(ENV.fetch("JOBS_TEST_OUT"), "#{kind}:#{count}:#{jid}")
          end
        end
        "##,
    )
    .unwrap();
    // The Rust worker pushes the entry's job on schedule; only Ruby knows the class.
    let config_file = dir.join("jobs.yml");
    std::fs::write(
        &config_file,
        "periodic:\n  weekly_report:\n    cron: \"* * * * * *\"\n    class: WeeklyReport\n    \
         args: [weekly, 3]\n    queue: ruby\n",
    )
    .unwrap();
    let mut config = jobs::worker::WorkerConfig::default();
    config.load_file(&config_file).unwrap();
    let rust = RunningWorker::start(
        jobs::Worker::from_config(config)
            .client(&redis.client())
            .registry(jobs::Registry::from_registrations(std::iter::empty()).unwrap())
            .queues(["elsewhere"]),
    );
    let _sidekiq = RubyWorker::start(&redis, &dir, &app, &out, &["ruby"]);
    eventually(
        Duration::from_secs(30),
        "Ruby Sidekiq to run the periodic WeeklyReport",
        async || std::fs::read_to_string(&out).is_ok_and(|text| text.starts_with("weekly:3:")),
    )
    .await;
    rust.stop(Duration::from_secs(10)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

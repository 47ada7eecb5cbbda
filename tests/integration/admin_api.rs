//! The admin API against a real Redis: what Sidekiq's `sidekiq/api` reads and does, on our data
//! and on data Ruby Sidekiq 6.4 wrote.

use std::time::Duration;

use jobs::Payload;
use jobs::api::{
    DeadSet, Order, Page, ProcessSet, Queue, RetrySet, ScheduledSet, SortedEntry, Stats, WorkSet,
};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::jobs::{CallLog, busy_worker, worker};
use crate::support::{TestRedis, eventually, now, ruby};

/// A failed job as the worker stores it in the retry set.
fn failed(jid: &str, queue: &str, retry_count: u64, message: &str) -> String {
    json!({
        "class": "HardJob", "args": [jid], "jid": jid, "queue": queue, "retry": true,
        "created_at": now() - 60.0, "enqueued_at": now() - 30.0, "failed_at": now() - 30.0,
        "retry_count": retry_count, "error_class": "RuntimeError", "error_message": message,
    })
    .to_string()
}

/// Adds `count` failed jobs to the retry set, jids `<prefix>0`, `<prefix>1`…, a second apart.
async fn add_retries(redis: &TestRedis, prefix: &str, count: u32) {
    for n in 0..count {
        let jid = format!("{prefix}{n}");
        let member = failed(&jid, "default", 1, "boom");
        redis
            .zadd("retry", now() + 60.0 + f64::from(n), &member)
            .await;
    }
}

/// Pushes `count` jobs of class `A` (argument 0, 1, …) to `default`, and one `B` to `low`.
async fn push_a_and_one_low(client: &jobs::Client, count: u64) {
    for n in 0..count {
        client
            .push(Payload::new("A", vec![json!(n)]))
            .await
            .unwrap();
    }
    client
        .push(Payload::new("B", vec![]).queue("low"))
        .await
        .unwrap();
}

#[tokio::test]
async fn stats_count_what_is_in_redis() {
    let redis = TestRedis::start();
    let client = redis.client();
    push_a_and_one_low(&client, 3).await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    client
        .push_at(later, Payload::new("C", vec![]))
        .await
        .unwrap();
    redis
        .zadd("retry", now() + 60.0, &failed("r1", "default", 0, "boom"))
        .await;
    redis
        .zadd("dead", now(), &failed("d1", "default", 25, "gone"))
        .await;
    redis
        .zadd("dead", now(), &failed("d2", "default", 25, "gone"))
        .await;
    let today = chrono::Utc::now().date_naive();
    let mut raw = redis.raw().await;
    let _: () = raw.set("stat:processed", 1_234).await.unwrap();
    let _: () = raw.set("stat:failed", 56).await.unwrap();
    let _: () = raw
        .set(format!("stat:processed:{}", today.format("%Y-%m-%d")), 40)
        .await
        .unwrap();
    let _: () = raw
        .set(format!("stat:failed:{}", today.format("%Y-%m-%d")), 4)
        .await
        .unwrap();

    let stats = Stats::fetch(&client).await.unwrap();
    assert_eq!(stats.processed, 1_234);
    assert_eq!(stats.failed, 56);
    assert_eq!(stats.enqueued, 4);
    assert_eq!(stats.scheduled_size, 1);
    assert_eq!(stats.retry_size, 1);
    assert_eq!(stats.dead_size, 2);
    assert_eq!(stats.processes_size, 0);
    assert!(stats.default_queue_latency >= 0.0 && stats.default_queue_latency < 60.0);

    let history = Stats::history(&client, 7, today).await.unwrap();
    assert_eq!(history.len(), 7);
    assert_eq!(
        (history[0].date, history[0].processed, history[0].failed),
        (today, 40, 4)
    );
    assert!(history[1..].iter().all(|day| day.processed == 0));
    assert_eq!(
        Stats::history(&client, 100_000, today).await.unwrap().len(),
        jobs::api::MAX_HISTORY_DAYS as usize
    );
}

#[tokio::test]
async fn queues_are_listed_paged_searched_and_cleared() {
    let redis = TestRedis::start();
    let client = redis.client();
    push_a_and_one_low(&client, 5).await;

    let names: Vec<String> = Queue::all(&client)
        .await
        .unwrap()
        .iter()
        .map(|queue| queue.name().to_owned())
        .collect();
    assert_eq!(names, ["default", "low"]);
    // The sizes of a page of the queues, in its order.
    let sizes: Vec<(String, usize)> = Stats::queue_sizes(
        &client,
        vec![Queue::new(&client, "low"), Queue::new(&client, "default")],
    )
    .await
    .unwrap()
    .into_iter()
    .map(|(queue, size, _)| (queue.name().to_owned(), size))
    .collect();
    assert_eq!(sizes, [("low".to_owned(), 1), ("default".to_owned(), 5)]);
    let queue = Queue::new(&client, "default");
    assert_eq!(queue.size().await.unwrap(), 5);
    assert!(queue.latency().await.unwrap() < 60.0);

    let args = |jobs: Vec<jobs::api::JobRecord>| -> Vec<serde_json::Value> {
        jobs.iter().map(|job| job.args()[0].clone()).collect()
    };
    let newest = queue
        .page(Page::numbered(1, 2, Order::NewestFirst))
        .await
        .unwrap();
    assert_eq!(args(newest), [json!(4), json!(3)]);
    let next = queue
        .page(Page::numbered(2, 2, Order::OldestFirst))
        .await
        .unwrap();
    assert_eq!(args(next), [json!(2), json!(3)]);
    assert!(
        queue
            .page(Page::numbered(9, 2, Order::NewestFirst))
            .await
            .unwrap()
            .is_empty()
    );

    let third = queue
        .page(Page::numbered(3, 1, Order::OldestFirst))
        .await
        .unwrap();
    let jid = third[0].jid().to_owned();
    let found = queue.find_job(&jid).await.unwrap().expect("the job by jid");
    assert_eq!(found.args(), [json!(2)]);
    assert_eq!(found.queue(), "default");
    assert!(queue.delete(&found).await.unwrap());
    assert!(
        !queue.delete(&found).await.unwrap(),
        "a second delete finds nothing"
    );
    assert!(queue.find_job(&jid).await.unwrap().is_none());
    assert_eq!(queue.size().await.unwrap(), 4);

    queue.clear().await.unwrap();
    assert_eq!(queue.size().await.unwrap(), 0);
    let names: Vec<String> = Queue::all(&client)
        .await
        .unwrap()
        .iter()
        .map(|queue| queue.name().to_owned())
        .collect();
    assert_eq!(names, ["low"], "a cleared queue leaves the queues set");
}

#[tokio::test]
async fn retry_now_puts_a_failed_job_back_in_its_queue_once() {
    let redis = TestRedis::start();
    let client = redis.client();
    redis
        .zadd("retry", now() + 3_600.0, &failed("r1", "low", 2, "boom"))
        .await;
    let retries = RetrySet::new(&client);
    let entries = retries.page(Page::first(10)).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].record.error_message(), Some("boom"));

    assert_eq!(retries.retry(&entries).await.unwrap(), 1);
    assert_eq!(retries.size().await.unwrap(), 0);
    let queued = redis.queue("low").await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["jid"], "r1");
    assert_eq!(
        queued[0]["retry_count"], 1,
        "Sidekiq's retry now counts one retry fewer"
    );
    assert!((queued[0]["enqueued_at"].as_f64().unwrap() - now()).abs() < 5.0);
    assert_eq!(
        queued[0]["error_message"], "boom",
        "the error stays for the next failure"
    );
    let mut raw = redis.raw().await;
    let queues: Vec<String> = raw.smembers("queues").await.unwrap();
    assert_eq!(queues, ["low"]);

    assert_eq!(
        retries.retry(&entries).await.unwrap(),
        0,
        "an entry already moved is not moved twice"
    );
    assert_eq!(redis.queue("low").await.len(), 1);
}

#[tokio::test]
async fn scheduled_jobs_are_added_to_their_queue_or_deleted() {
    let redis = TestRedis::start();
    let client = redis.client();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let first = client
        .push_at(later, Payload::new("Later", vec![json!(1)]).queue("mail"))
        .await
        .unwrap();
    let second = client
        .push_at(later, Payload::new("Later", vec![json!(2)]))
        .await
        .unwrap();
    let scheduled = ScheduledSet::new(&client);
    let entries = scheduled.page(Page::first(10)).await.unwrap();
    assert_eq!(entries.len(), 2);
    let at = entries[0].at().unwrap();
    assert!((at - later).num_seconds().abs() <= 1);

    let pick = |jid: &jobs::Jid| -> SortedEntry {
        entries
            .iter()
            .find(|entry| entry.record.jid() == jid.as_str())
            .unwrap()
            .clone()
    };
    assert_eq!(scheduled.add_to_queue(&[pick(&first)]).await.unwrap(), 1);
    let queued = redis.queue("mail").await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["args"], json!([1]));
    assert!(queued[0].get("at").is_none());
    assert!(queued[0]["enqueued_at"].is_f64());

    assert_eq!(scheduled.delete(&[pick(&second)]).await.unwrap(), 1);
    assert_eq!(scheduled.size().await.unwrap(), 0);
    assert!(redis.queue("default").await.is_empty());
}

#[tokio::test]
async fn kill_all_buries_retries_and_retry_all_revives_the_dead() {
    let redis = TestRedis::start();
    let client = redis.client();
    add_retries(&redis, "r", 3).await;
    redis.zadd("retry", now() + 90.0, "not json at all").await;
    let retries = RetrySet::new(&client);
    assert_eq!(
        retries.kill_all().await.unwrap(),
        4,
        "the non-JSON entry is killed too"
    );
    assert_eq!(retries.size().await.unwrap(), 0);
    let dead = DeadSet::new(&client);
    assert_eq!(dead.size().await.unwrap(), 4);
    assert!(
        dead.page(Page::first(10))
            .await
            .unwrap()
            .iter()
            .any(|entry| !entry.record.is_job())
    );

    assert_eq!(
        dead.retry_all().await.unwrap(),
        3,
        "jobs go back; the text stays"
    );
    assert_eq!(redis.queue("default").await.len(), 3);
    assert_eq!(dead.size().await.unwrap(), 1);
    assert_eq!(dead.clear().await.unwrap(), 1);
    assert_eq!(dead.size().await.unwrap(), 0);
}

#[tokio::test]
async fn a_filter_matches_text_literally_and_keys_find_entries() {
    let redis = TestRedis::start();
    let client = redis.client();
    let star = json!({"class": "A", "args": ["a*b"], "jid": "star", "queue": "default"});
    let plain = json!({"class": "A", "args": ["axb"], "jid": "plain", "queue": "default"});
    redis
        .zadd("dead", 1_700_000_000.25, &star.to_string())
        .await;
    redis
        .zadd("dead", 1_700_000_100.5, &plain.to_string())
        .await;
    let dead = DeadSet::new(&client);

    let found = dead.search("a*b", 10, Order::NewestFirst).await.unwrap();
    assert_eq!((found.scanned, found.size, found.partial), (2, 2, false));
    let found = found.entries;
    assert_eq!(found.len(), 1, "`*` is not a wildcard");
    assert_eq!(found[0].record.jid(), "star");
    let both = dead.search("b\"]", 10, Order::NewestFirst).await.unwrap();
    let jids: Vec<&str> = both
        .entries
        .iter()
        .map(|entry| entry.record.jid())
        .collect();
    assert_eq!(jids, ["plain", "star"]);
    let first = dead.search("b\"]", 1, Order::OldestFirst).await.unwrap();
    assert!(first.partial, "more match than the one asked for");
    assert_eq!(first.entries[0].record.jid(), "star");

    let key = found[0].key();
    assert_eq!(key, "1700000000.25-star");
    let fetched = dead
        .fetch_key(&key)
        .await
        .unwrap()
        .expect("the entry by key");
    assert_eq!(fetched, found[0]);
    assert!(
        dead.fetch_key("1700000000.25-nobody")
            .await
            .unwrap()
            .is_none()
    );
    assert!(dead.fetch_key("garbage").await.unwrap().is_none());
    assert_eq!(
        dead.find_job("plain").await.unwrap().unwrap().score,
        1_700_000_100.5
    );
}

#[tokio::test]
async fn processes_and_their_running_jobs_are_listed_and_can_be_quieted() {
    let redis = TestRedis::start();
    let client = redis.client();
    let running = busy_worker(&redis, &CallLog::default(), 3, 20_000).await;

    let processes = ProcessSet::new(&client).list().await.unwrap();
    assert_eq!(processes.len(), 1);
    let process = &processes[0];
    assert_eq!(process.concurrency(), Some(3));
    assert_eq!(process.queues(), ["default"]);
    assert_eq!(process.pid(), Some(u64::from(std::process::id())));
    assert!(!process.quiet);
    assert!(process.beat.is_some() && process.started_at().is_some());

    let work = WorkSet::new(&client).list().await.unwrap();
    assert_eq!(work.len(), 1);
    assert_eq!(work[0].process, process.identity);
    // A page of processes reads the jobs of those processes only.
    let of_page = WorkSet::new(&client).of(&processes).await.unwrap();
    assert_eq!(of_page.len(), 1);
    assert_eq!(of_page[0].record.jid(), work[0].record.jid());
    assert!(WorkSet::new(&client).of(&[]).await.unwrap().is_empty());
    assert_eq!(work[0].record.class(), "Slow");
    assert_eq!(work[0].queue, "default");
    assert!(work[0].run_at.is_some());

    process.quiet().await.unwrap();
    eventually(
        Duration::from_secs(5),
        "the process to report quiet",
        async || ProcessSet::new(&client).list().await.unwrap()[0].quiet,
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_embedded_process_can_be_quieted_but_not_stopped() {
    let redis = TestRedis::start();
    let client = redis.client();
    let identity = "web-1:42:0123456789ab";
    redis.embedded_heartbeat(identity).await;
    let mut raw = redis.raw().await;
    let signals = format!("{identity}-signals");

    let process = ProcessSet::new(&client)
        .get(identity)
        .await
        .unwrap()
        .unwrap();
    assert!(process.is_embedded());
    let refused = process.stop().await.unwrap_err();
    assert!(
        matches!(refused, jobs::Error::EmbeddedProcess { .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("quiet it instead"),
        "{refused}"
    );
    assert_eq!(ProcessSet::new(&client).stop_all().await.unwrap(), 0);
    let sent: Vec<String> = raw.lrange(&signals, 0, -1).await.unwrap();
    assert!(sent.is_empty(), "no stop was sent: {sent:?}");

    process.quiet().await.unwrap();
    let sent: Vec<String> = raw.lrange(&signals, 0, -1).await.unwrap();
    assert_eq!(sent, ["TSTP"]);
}

#[tokio::test]
async fn data_ruby_sidekiq_wrote_reads_here_and_ruby_sees_what_we_did() {
    let redis = TestRedis::start();
    ruby(
        &redis.url(),
        r#"
        require "zlib"
        Sidekiq::Client.push("class" => "HardJob", "args" => ["<b>now</b>", 1])
        Sidekiq::Client.push("class" => "HardJob", "args" => ["later", 2], "at" => Time.now.to_f + 3600)
        job = { "class" => "HardJob", "args" => ["failed", 3], "queue" => "default",
                "jid" => "abcdef0123456789abcdef01", "retry" => true, "retry_count" => 4,
                "created_at" => Time.now.to_f - 600, "enqueued_at" => Time.now.to_f - 60,
                "failed_at" => Time.now.to_f - 500, "retried_at" => Time.now.to_f - 60,
                "error_class" => "ZeroDivisionError", "error_message" => "divided by 0",
                "error_backtrace" => [Zlib::Deflate.deflate(Sidekiq.dump_json(["app.rb:1:in `x'"]))].pack("m0") }
        Sidekiq.redis { |c| c.zadd("retry", Time.now.to_f + 120, Sidekiq.dump_json(job)) }
        puts "RESULT:" + JSON.generate("ok" => true)
        "#,
    );
    let client = redis.client();
    let queued = Queue::new(&client, "default")
        .page(Page::first(10))
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].display_class(), "HardJob");
    assert_eq!(queued[0].display_args(), [json!("<b>now</b>"), json!(1)]);
    assert!(queued[0].enqueued_at().is_some() && queued[0].created_at().is_some());

    let scheduled = ScheduledSet::new(&client)
        .page(Page::first(10))
        .await
        .unwrap();
    assert_eq!(scheduled[0].record.args(), [json!("later"), json!(2)]);
    assert!(scheduled[0].at().unwrap() > chrono::Utc::now());

    let retries = RetrySet::new(&client);
    let failed = retries.page(Page::first(10)).await.unwrap();
    let record = &failed[0].record;
    assert_eq!(record.error_class(), Some("ZeroDivisionError"));
    assert_eq!(record.retry_count(), Some(4));
    assert_eq!(record.error_backtrace().unwrap(), ["app.rb:1:in `x'"]);
    assert!(record.failed_at().unwrap() < record.retried_at().unwrap());
    let stats = Stats::fetch(&client).await.unwrap();
    assert_eq!(
        (stats.enqueued, stats.scheduled_size, stats.retry_size),
        (1, 1, 1)
    );

    assert_eq!(retries.retry(&failed).await.unwrap(), 1);
    let seen = ruby(
        &redis.url(),
        r#"
        job = Sidekiq::Queue.new("default").find { |j| j.jid == "abcdef0123456789abcdef01" }
        puts "RESULT:" + JSON.generate("retries" => Sidekiq::RetrySet.new.size,
          "queued" => Sidekiq::Queue.new("default").size, "retry_count" => job["retry_count"],
          "args" => job.args, "latency" => job.latency)
        "#,
    );
    assert_eq!(seen["retries"], 0);
    assert_eq!(seen["queued"], 2);
    assert_eq!(seen["retry_count"], 3);
    assert_eq!(seen["args"], json!(["failed", 3]));
    assert!(seen["latency"].as_f64().unwrap() < 5.0);
}

#[tokio::test]
async fn retry_now_after_a_single_failure_runs_the_job() {
    let redis = TestRedis::start();
    let client = redis.client();
    // A job that failed once: retry_count 0, which retry-now turns into -1, as Sidekiq does.
    let once = json!({
        "class": "Record", "args": ["ran again"], "jid": "once", "queue": "default",
        "retry": true, "retry_count": 0, "failed_at": now() - 5.0,
        "error_class": "JobError", "error_message": "flaky",
    });
    redis.zadd("retry", now() + 600.0, &once.to_string()).await;
    let retries = RetrySet::new(&client);
    let entries = retries.page(Page::first(1)).await.unwrap();
    assert_eq!(retries.retry(&entries).await.unwrap(), 1);
    assert_eq!(redis.queue("default").await[0]["retry_count"], -1);

    let log = CallLog::default();
    worker(&redis, &log).drain().await.unwrap();
    assert_eq!(log.entries(), ["ran again"]);
    assert_eq!(DeadSet::new(&client).size().await.unwrap(), 0);
}

#[tokio::test]
async fn kill_trims_the_dead_set_by_the_limits_it_is_given() {
    let redis = TestRedis::start();
    let client = redis.client();
    add_retries(&redis, "k", 3).await;
    let limits = jobs::api::DeadLimits {
        max_jobs: 2,
        timeout: Duration::from_secs(3_600),
    };
    let retries = RetrySet::new(&client).dead_limits(limits);
    assert_eq!(retries.kill_all().await.unwrap(), 3);
    let dead = DeadSet::new(&client).page(Page::first(10)).await.unwrap();
    assert_eq!(dead.len(), 2, "the dead set keeps the newest max_jobs");
    assert_ne!(
        dead[0].score, dead[1].score,
        "each killed job keeps a score of its own"
    );
}

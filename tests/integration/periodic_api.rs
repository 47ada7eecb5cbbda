//! The periodic entries in the admin API, against a real Redis and entries declared by real
//! workers: what `PeriodicSet` lists, pause and resume, "enqueue now", and entries no worker
//! would write.

use chrono::Utc;
use jobs::Error;
use jobs::api::PeriodicSet;
use jobs::periodic::{CatchUp, Schedule};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::TestRedis;
use crate::support::jobs::{CallLog, worker};
use crate::support::periodic::{declare, declare_three, hash_of, write_hostile};

/// An ActiveJob job for Rails to run, pushed by a periodic entry.
#[jobs::job(name = "NightlyJob", active_job)]
pub async fn nightly_job() {}

#[tokio::test]
async fn the_set_lists_what_workers_declared() {
    let redis = TestRedis::start();
    let client = redis.client();
    let before = Utc::now();
    declare_three(&redis).await;
    let set = PeriodicSet::new(&client);

    let entries = set.list().await.unwrap();
    let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(names, ["archive", "nightly_report", "scores"], "by name");

    let nightly = &entries[1];
    assert_eq!(nightly.problem, None);
    assert_eq!(nightly.cron, "0 3 * * *");
    assert_eq!(nightly.timezone, "Europe/Berlin");
    assert_eq!(nightly.class, "NightlyReport");
    assert_eq!(nightly.queue, "reports");
    assert_eq!(nightly.args, Some(vec![json!({"team": 7})]));
    assert_eq!(nightly.catch_up, CatchUp::None);
    assert!(nightly.enabled && !nightly.paused);
    assert_eq!(nightly.description, "At 03:00 (Europe/Berlin)");
    let at_three_in_berlin = Schedule::parse("0 3 * * *", "Europe/Berlin")
        .unwrap()
        .next_after(Utc::now())
        .unwrap();
    assert_eq!(
        nightly.next_run,
        Some(at_three_in_berlin.with_timezone(&Utc))
    );
    assert_eq!(nightly.last_run, None, "no tick has come yet");
    let declared = nightly.declared_at.unwrap();
    assert!(
        declared >= before - chrono::Duration::seconds(1) && declared <= Utc::now(),
        "{declared}"
    );
    assert_eq!(nightly.enqueue_refusal(), None);

    let scores = &entries[2];
    assert_eq!(scores.class, "ScoreGeneration");
    assert_eq!(scores.queue, "default");
    assert_eq!(scores.args, None, "computed from each tick");
    assert_eq!(scores.catch_up, CatchUp::One);
    assert!(scores.next_run.unwrap() <= Utc::now() + chrono::Duration::minutes(15));
    assert!(
        scores
            .enqueue_refusal()
            .unwrap()
            .contains("computed from each tick")
    );

    let archive = &entries[0];
    assert!(!archive.enabled);
    assert_eq!(archive.next_run, None, "a disabled entry never runs");
    assert_eq!(archive.args, Some(vec![]));

    assert_eq!(
        set.get("nightly_report").await.unwrap().as_ref(),
        Some(nightly)
    );
    assert_eq!(set.get("nightly").await.unwrap(), None);
}

#[tokio::test]
async fn pause_and_resume_change_only_the_pause_mark() {
    let redis = TestRedis::start();
    let client = redis.client();
    declare_three(&redis).await;
    let set = PeriodicSet::new(&client);
    let before = hash_of(&redis, "nightly_report").await;

    assert!(set.pause("nightly_report").await.unwrap());
    let mut paused = hash_of(&redis, "nightly_report").await;
    let mark = paused.remove("paused").expect("a pause mark");
    assert_eq!(
        paused, before,
        "the definition and tick state are untouched"
    );
    let entry = set.get("nightly_report").await.unwrap().unwrap();
    assert!(entry.paused);
    let paused_at = entry.paused_at.unwrap();
    assert!(
        (Utc::now() - paused_at).num_seconds().abs() < 5,
        "{paused_at}"
    );
    assert_eq!(entry.next_run, None, "a paused entry has no next run");
    assert_eq!(
        set.list()
            .await
            .unwrap()
            .iter()
            .filter(|e| e.paused)
            .count(),
        1,
        "only that entry is paused"
    );

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(set.pause("nightly_report").await.unwrap());
    assert_eq!(
        hash_of(&redis, "nightly_report").await["paused"],
        mark,
        "pausing again keeps when it was paused"
    );

    assert!(set.resume("nightly_report").await.unwrap());
    assert_eq!(hash_of(&redis, "nightly_report").await, before);
    let entry = set.get("nightly_report").await.unwrap().unwrap();
    assert!(!entry.paused && entry.next_run.is_some());

    assert!(!set.pause("nightly").await.unwrap(), "no such entry");
    assert!(!set.resume("nightly").await.unwrap());
    assert!(
        !redis
            .keys()
            .await
            .contains(&"jobs:periodic:nightly".to_owned()),
        "pausing an unknown name makes no key"
    );
}

#[tokio::test]
async fn enqueue_now_pushes_the_entry_s_job_and_leaves_its_ticks_alone() {
    let redis = TestRedis::start();
    let client = redis.client();
    declare_three(&redis).await;
    let set = PeriodicSet::new(&client);
    assert!(set.pause("nightly_report").await.unwrap());
    let before = hash_of(&redis, "nightly_report").await;

    let jid = set.enqueue_now("nightly_report").await.unwrap().unwrap();
    let queued = redis.queue("reports").await;
    assert_eq!(queued.len(), 1, "a paused entry is pushed too: {queued:?}");
    let job = &queued[0];
    assert_eq!(job["jid"], jid.to_string());
    assert_eq!(job["class"], "NightlyReport");
    assert_eq!(job["args"], json!([{"team": 7}]));
    assert_eq!(job["queue"], "reports");
    assert_eq!(job["retry"], true);
    assert_eq!(job["jobs_periodic"], "nightly_report");
    assert!(job.get("jobs_tick").is_none(), "pushed for no tick: {job}");
    assert!(job["enqueued_at"].is_f64());
    let mut raw = redis.raw().await;
    let queues: Vec<String> = raw.smembers("queues").await.unwrap();
    assert!(queues.contains(&"reports".to_owned()), "{queues:?}");
    assert_eq!(
        hash_of(&redis, "nightly_report").await,
        before,
        "the definition and the tick state are untouched"
    );

    let refused = set.enqueue_now("scores").await.unwrap_err();
    assert!(
        matches!(&refused, Error::PeriodicEnqueue { name, .. } if name == "scores"),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("`scores`") && message.contains("computed from each tick"),
        "{message}"
    );
    assert!(redis.queue("default").await.is_empty(), "nothing pushed");

    assert_eq!(set.enqueue_now("nightly").await.unwrap(), None);
}

#[tokio::test]
async fn hostile_entries_are_listed_with_what_is_wrong() {
    let redis = TestRedis::start();
    let client = redis.client();
    let hostile = write_hostile(&redis).await;
    let set = PeriodicSet::new(&client);

    let entries = set.list().await.unwrap();
    let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bad_cron",
            "bad_zone",
            "good",
            "no_definition",
            "no_hash",
            "not_an_object",
            "not_json",
            "odd_fields",
            "wrong_type"
        ],
        "every UTF-8 name, by name; the other left out"
    );
    for (name, said) in &hostile {
        let entry = entries.iter().find(|entry| entry.name == *name).unwrap();
        let problem = entry.problem.as_deref().unwrap_or_default();
        assert!(problem.contains(said), "{name}: {problem:?}");
        assert_eq!(entry.next_run, None, "{name}");
        assert!(entry.enqueue_refusal().is_some(), "{name}");
    }
    let good = entries.iter().find(|entry| entry.name == "good").unwrap();
    assert_eq!(good.problem, None);
    assert!(good.next_run.is_some());
    let odd = entries
        .iter()
        .find(|entry| entry.name == "odd_fields")
        .unwrap();
    assert_eq!(odd.cron, "@daily", "what can be read is read");
    assert_eq!(odd.claimed_up_to, None);
    assert_eq!(odd.last_run.as_ref().unwrap().tick, None);
    assert!(entries[3].paused, "a hash without definition may be paused");

    assert_eq!(
        set.get("bad_cron").await.unwrap().unwrap().problem,
        entries[0].problem
    );
    assert!(!set.pause("wrong_type").await.unwrap());
    assert!(!set.pause("no_hash").await.unwrap());
    assert!(
        !redis
            .keys()
            .await
            .contains(&"jobs:periodic:no_hash".to_owned()),
        "no stray hash"
    );
    let mut raw = redis.raw().await;
    let kept: String = raw.get("jobs:periodic:wrong_type").await.unwrap();
    assert_eq!(kept, "a string");
    let refused = set.enqueue_now("not_json").await.unwrap_err();
    assert!(refused.to_string().contains("not JSON"), "{refused}");
    assert!(set.pause("bad_cron").await.unwrap(), "a hash can be paused");
}

#[tokio::test]
async fn enqueue_now_of_an_active_job_entry_pushes_a_new_active_job_job_each_time() {
    let redis = TestRedis::start();
    let client = redis.client();
    let entry = || jobs::periodic::Periodic::job("nightly_aj", "0 3 * * *", NightlyJob {});
    let one = worker(&redis, &CallLog::default()).periodic_entry(entry().queue("reports"));
    declare(&redis, one, &["nightly_aj"]).await;
    let declared = hash_of(&redis, "nightly_aj").await;
    // A second process declares the same entry: the same bytes, so it is the one in force.
    let two = worker(&redis, &CallLog::default()).periodic_entry(entry().queue("reports"));
    declare(&redis, two, &["nightly_aj"]).await;
    assert_eq!(
        hash_of(&redis, "nightly_aj").await["definition"],
        declared["definition"]
    );

    let set = PeriodicSet::new(&client);
    set.enqueue_now("nightly_aj").await.unwrap().unwrap();
    set.enqueue_now("nightly_aj").await.unwrap().unwrap();
    let queued = redis.queue("reports").await;
    assert_eq!(queued.len(), 2, "{queued:?}");
    let envelopes: Vec<&serde_json::Value> = queued.iter().map(|job| &job["args"][0]).collect();
    assert_ne!(
        envelopes[0]["job_id"], envelopes[1]["job_id"],
        "{envelopes:?}"
    );
    for envelope in envelopes {
        assert_eq!(envelope["job_class"], "NightlyJob");
        assert_eq!(envelope["queue_name"], "reports", "{envelope}");
        assert!(
            envelope["job_id"].as_str().is_some_and(|id| id.len() == 36),
            "{envelope}"
        );
        let enqueued_at = envelope["enqueued_at"].as_str().unwrap_or_default();
        let at = chrono::DateTime::parse_from_rfc3339(enqueued_at).unwrap();
        assert!(
            (Utc::now() - at.to_utc()).num_seconds().abs() < 60,
            "{envelope}"
        );
    }
}

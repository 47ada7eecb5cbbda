//! Redis and network faults under a running worker process: connections reset again and
//! again, a partition longer than the fetch's block, Redis out of memory, and the signals a
//! human sends (a second Ctrl-C, TTIN).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::AsyncCommands;

use crate::support::jobs::{Ledgered, push_ledgered};
use crate::support::proxy::FaultProxy;
use crate::support::{ChildWorker, LedgerView, TestRedis, eventually, ledger_path};

async fn push(redis: &TestRedis, count: u64, millis: u64) -> HashSet<String> {
    push_ledgered(redis, (0..count).map(|_| Ledgered { millis })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_every_300_ms_lose_no_job() {
    let redis = TestRedis::start();
    let proxy = FaultProxy::start(redis.port()).await;
    let ledger = ledger_path("resets");
    let _worker = ChildWorker::spawn(&proxy.url(), &ledger, &[]);
    let jids = push(&redis, 600, 15).await;
    let storm = Instant::now();
    while storm.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.reset_all();
    }
    eventually(
        Duration::from_secs(60),
        "every job to be done",
        async || LedgerView::read(&ledger).done.len() == jids.len(),
    )
    .await;
    let view = LedgerView::read(&ledger);
    assert_eq!(view.done, jids, "0 lost");
    println!(
        "resets every 300 ms for 4 s: 600 jobs, 0 lost, {} run again",
        view.duplicates()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_longer_than_the_fetch_block_loses_no_job() {
    let redis = TestRedis::start();
    let proxy = FaultProxy::start(redis.port()).await;
    let ledger = ledger_path("blackhole");
    let _worker = ChildWorker::spawn(&proxy.url(), &ledger, &[]);
    // Let the worker go idle, waiting in BLMOVE through the proxy.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    proxy.set_blackhole(true);
    let jids = push(&redis, 20, 10).await;
    // Longer than the 2 s block plus the 5 s reply timeout: the worker gives up on a BLMOVE
    // whose job Redis did move (the redis crate's timeout hazard); nothing may be lost.
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.set_blackhole(false);
    proxy.reset_all();
    eventually(
        Duration::from_secs(30),
        "every job to be done",
        async || LedgerView::read(&ledger).done == jids,
    )
    .await;
}

#[tokio::test]
async fn an_enqueue_into_a_full_redis_is_an_error_and_later_ones_work() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("3mb")
        .query_async(&mut raw)
        .await
        .unwrap();
    let client = redis.client();
    let error = loop {
        match client.perform_async(Ledgered { millis: 1 }).await {
            Ok(_) => {}
            Err(error) => break error,
        }
    };
    assert!(matches!(error, jobs::Error::Redis { .. }), "{error:?}");
    assert!(error.to_string().contains("OOM"), "{error}");
    let _: () = redis::cmd("FLUSHALL").query_async(&mut raw).await.unwrap();
    client.perform_async(Ledgered { millis: 1 }).await.unwrap();
}

#[tokio::test]
async fn a_worker_warns_when_redis_may_evict_queues() {
    // `volatile-*` evicts the keys that expire first: the heartbeats, so it gets the warning
    // too, saying what it does to them.
    for (policy, says) in [
        ("allkeys-lru", "may evict whole queues"),
        ("volatile-lru", "heartbeats expire"),
        ("volatile-ttl", "heartbeats expire"),
    ] {
        let redis = TestRedis::start();
        let mut raw = redis.raw().await;
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg(policy)
            .query_async(&mut raw)
            .await
            .unwrap();
        let ledger = ledger_path(&format!("eviction-{policy}"));
        let worker = ChildWorker::spawn(&redis.url(), &ledger, &[]);
        eventually(Duration::from_secs(10), "the warning", async || {
            let log = worker.log();
            log.contains("maxmemory-policy is not noeviction") && log.contains(says)
        })
        .await;
    }
}

#[tokio::test]
async fn a_second_interrupt_hands_running_jobs_back_at_once() {
    let redis = TestRedis::start();
    let ledger = ledger_path("second-int");
    let jids = push(&redis, 2, 60_000).await;
    let mut worker =
        ChildWorker::spawn(&redis.url(), &ledger, &[("JOBS_TEST_TIMEOUT_MS", "30000")]);
    eventually(Duration::from_secs(10), "the jobs to start", async || {
        LedgerView::read(&ledger).runs.len() == 2
    })
    .await;
    worker.signal("TTIN");
    eventually(
        Duration::from_secs(5),
        "TTIN to list the running jobs",
        async || {
            let log = worker.log();
            jids.iter()
                .all(|jid| log.contains(jid.as_str()) && log.contains("running"))
        },
    )
    .await;
    worker.signal("INT");
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.signal("INT");
    let status = worker
        .wait_exit(Duration::from_secs(10))
        .expect("the second interrupt stops the worker without waiting 30 s");
    assert!(status.success(), "{status}");
    let queued = redis.queued_jids("faults").await;
    assert_eq!(queued, jids, "both jobs are back in their queue");
    let mut raw = redis.raw().await;
    let processes: Vec<String> = raw.smembers("processes").await.unwrap();
    assert!(processes.is_empty());
}

/// The long version of `lifecycle::a_worker_survives_redis_restarting_and_carries_on`: Redis
/// down for 10 s.
#[tokio::test]
#[ignore = "long: Redis down for 10 s; CI runs the 3 s version"]
async fn a_worker_survives_redis_down_for_10_s() {
    let mut redis = TestRedis::start();
    let ledger = ledger_path("redis-down");
    let mut worker = ChildWorker::spawn(&redis.url(), &ledger, &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_secs(10)).await;
    redis.restart();
    let jids = push(&redis, 10, 10).await;
    let back = Instant::now();
    eventually(
        Duration::from_secs(20),
        "jobs pushed after the outage",
        async || LedgerView::read(&ledger).done == jids,
    )
    .await;
    println!(
        "Redis down 10 s: jobs running again {:?} after it returned",
        back.elapsed()
    );
    assert!(worker.is_running());
}

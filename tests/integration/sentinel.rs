//! Redis Sentinel: `redis+sentinel://` URLs and `ClientBuilder::sentinel` reach the master the
//! sentinels name; after the master is killed with `kill -9`, a client and a worker process
//! carry on with the promoted replica within 10 s; and `wait_replicas` (Redis's `WAIT`) keeps
//! every push it acknowledged through the failover. Real servers: a master, a replica and three
//! `redis-sentinel` processes of the test's own (`support/sentinel.rs`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use jobs::{Client, Error};
use redis::AsyncCommands;

use crate::support::jobs::Ledgered;
use crate::support::pushes::Pusher;
use crate::support::sentinel::{MASTER_NAME, TestSentinels};
use crate::support::{ChildWorker, LedgerView, TestRedis, eventually, ledger_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_of_the_master_client_and_worker_carry_on_and_no_acknowledged_push_is_lost() {
    let mut deployment = TestSentinels::start().await;
    let url = deployment.url();
    let ledger = ledger_path("sentinel-failover");
    let _worker = ChildWorker::spawn(&url, &ledger, &[]);
    let pusher = Pusher::start(&url);

    // Mid-run: jobs being pushed and run.
    eventually(
        Duration::from_secs(15),
        "50 jobs run before the kill",
        async || LedgerView::read(&ledger).done.len() >= 50,
    )
    .await;
    let before = pusher.pushes().jids();
    deployment.master.kill();
    let killed = Instant::now();

    let promoted = deployment.replica.port();
    eventually(
        Duration::from_secs(20),
        "the sentinels to promote the replica",
        async || deployment.master_port().await == Some(promoted),
    )
    .await;
    let failed_over = killed.elapsed();
    // The old master comes back, empty; the sentinels make it the new master's replica, so that
    // `WAIT 1` is answered again (until then pushes reach the new master but are refused as
    // not replicated: with one replica, a failover leaves none).
    deployment.master.restart();

    // The client: its pushes reach the new master.
    eventually(
        Duration::from_secs(20),
        "a push to reach the new master",
        async || pusher.pushes().reached.iter().any(|at| *at > killed),
    )
    .await;
    let client_resumed = *pusher
        .pushes()
        .reached
        .iter()
        .find(|at| **at > killed)
        .unwrap()
        - killed;
    // The worker: it runs a job pushed after the failover (by a client that waits for no
    // replica).
    let probe = Client::builder().url(&url).build().unwrap();
    let probe = loop {
        if let Ok(pushed) = probe.perform_async(Ledgered { millis: 1 }).await {
            break pushed.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eventually(
        Duration::from_secs(20),
        "the worker to run a job pushed after the failover",
        async || LedgerView::read(&ledger).done.contains(&probe),
    )
    .await;
    let worker_resumed = killed.elapsed();
    // Pushes are acknowledged again once the old master has rejoined as a replica.
    eventually(
        Duration::from_secs(40),
        "a push acknowledged after the kill",
        async || pusher.pushes().first_after(killed).is_some(),
    )
    .await;
    let (_, first_at) = pusher.pushes().first_after(killed).unwrap();
    let replicated_again = first_at - killed;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pushes = pusher.stop().await;
    let (acknowledged, failed) = (pushes.jids(), pushes.failed);
    eventually(
        Duration::from_secs(30),
        "every acknowledged job to run",
        async || LedgerView::read(&ledger).done.is_superset(&acknowledged),
    )
    .await;
    let view = LedgerView::read(&ledger);
    println!(
        "sentinel failover: {} jobs acknowledged ({} before the kill), 0 lost, {} run again; \
         sentinels promoted the replica {:.1} s after kill -9; client reached the new master \
         after {:.1} s, worker ran a new job after {:.1} s; pushes acknowledged by a replica \
         again after {:.1} s ({} pushes failed meanwhile)",
        acknowledged.len(),
        before.len(),
        view.duplicates(),
        failed_over.as_secs_f64(),
        client_resumed.as_secs_f64(),
        worker_resumed.as_secs_f64(),
        replicated_again.as_secs_f64(),
        failed.len(),
    );
    let mut last = String::new();
    for (at, reason) in &failed {
        let kind = if reason.contains("replicas wanted") {
            "not replicated"
        } else if reason.contains("no sentinel named") {
            "no master yet"
        } else {
            "connection"
        };
        if kind != last {
            println!(
                "  from {:.2} s after the kill: {kind}",
                (*at - killed).as_secs_f64()
            );
            last = kind.to_owned();
        }
    }
    assert!(
        view.done.is_superset(&before),
        "a job pushed before the kill was lost"
    );
    assert!(
        client_resumed < Duration::from_secs(10),
        "the client took {client_resumed:?} to reach the new master"
    );
    assert!(
        worker_resumed < Duration::from_secs(10),
        "the worker took {worker_resumed:?} to run a job pushed after the failover"
    );
    // The jobs now live on the promoted replica, which the URL reaches.
    let mut promoted_master = deployment.replica.raw().await;
    let processed: Option<u64> = promoted_master.get("stat:processed").await.unwrap();
    assert!(processed.is_some(), "the worker counts on the new master");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_moves_pushes_to_the_new_master_and_wait_replicas_keeps_every_acknowledged_one()
 {
    let deployment = TestSentinels::start().await;
    let client = Client::builder().url(deployment.url()).build().unwrap();
    let waiting = Client::builder()
        .url(deployment.url())
        .wait_replicas(1, Duration::from_millis(200))
        .build()
        .unwrap();
    let first = client.perform_async(Ledgered { millis: 1 }).await.unwrap();
    let second = waiting.perform_async(Ledgered { millis: 1 }).await.unwrap();
    deployment.fail_over().await;
    let promoted = deployment.replica.port();
    eventually(
        Duration::from_secs(20),
        "the sentinels to promote the replica",
        async || deployment.master_port().await == Some(promoted),
    )
    .await;
    // Until the sentinels demote the old master, it still takes writes, which its demotion
    // then discards: acknowledged, then lost, unless the push waits for a replica, which the
    // old master no longer has.
    let unsafe_push = client.perform_async(Ledgered { millis: 1 }).await.unwrap();
    let safe_push = waiting.perform_async(Ledgered { millis: 1 }).await;
    // Once it is a replica, the clients' connections to it were closed; they reconnect there to
    // find a replica answering READONLY, ask the sentinels again and send the push once more.
    eventually(
        Duration::from_secs(20),
        "the old master to be a replica",
        async || role(&deployment.master).await == "slave",
    )
    .await;
    let third = client.perform_async(Ledgered { millis: 1 }).await.unwrap();
    // The demoted master is the new master's only replica once it has synced.
    let started = Instant::now();
    let fourth = loop {
        match waiting.perform_async(Ledgered { millis: 1 }).await {
            Ok(pushed) => break pushed,
            Err(Error::NotReplicated { .. }) if started.elapsed() < Duration::from_secs(10) => {}
            Err(error) => panic!("{error}"),
        }
    };
    let on_new_master = deployment.replica.queued_jids("faults").await;
    for pushed in [&first, &second, &third, &fourth] {
        assert!(on_new_master.contains(&pushed.to_string()), "{pushed} lost");
    }
    match &safe_push {
        Ok(pushed) => assert!(on_new_master.contains(&pushed.to_string()), "{pushed} lost"),
        Err(error) => assert!(matches!(error, Error::NotReplicated { .. }), "{error}"),
    }
    println!(
        "planned failover: a push without wait_replicas between promotion and demotion was {}; \
         with wait_replicas(1) it was {}",
        if on_new_master.contains(&unsafe_push.to_string()) {
            "kept"
        } else {
            "acknowledged, then lost"
        },
        match &safe_push {
            Ok(_) => "acknowledged and kept".to_owned(),
            Err(error) => format!("refused: {error}"),
        }
    );
}

/// What `ROLE` says the server is: `master` or `slave`.
async fn role(redis: &TestRedis) -> String {
    let Ok(mut connection) = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
    else {
        return String::new();
    };
    let reply: Vec<redis::Value> = redis::cmd("ROLE")
        .query_async(&mut connection)
        .await
        .unwrap_or_default();
    reply
        .first()
        .and_then(|role| redis::from_redis_value::<String>(role.clone()).ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builder_names_sentinels_and_pushes_land_on_the_master() {
    let deployment = TestSentinels::start().await;
    let client = Client::builder()
        .sentinel(deployment.addresses(), MASTER_NAME)
        .build()
        .unwrap();
    assert_eq!(client.url(), deployment.url());
    let pushed = client.perform_async(Ledgered { millis: 1 }).await.unwrap();
    assert_eq!(
        deployment.master.queued_jids("faults").await,
        HashSet::from([pushed.to_string()])
    );

    // A master name the sentinels do not know: the error says what went wrong.
    let error = Client::builder()
        .url(format!(
            "redis+sentinel://:hunter2@{}/nosuchmaster",
            deployment.addresses().join(",")
        ))
        .build()
        .unwrap()
        .perform_async(Ledgered { millis: 1 })
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Connect { .. }), "{message}");
    assert!(message.contains("no sentinel named a master"), "{message}");
    assert!(message.contains("nosuchmaster"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn a_malformed_sentinel_url_is_refused_when_the_client_is_built() {
    let error = Client::builder()
        .url("redis+sentinel://:hunter2@127.0.0.1:26379")
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::InvalidUrl { .. }), "{message}");
    assert!(message.contains("names no master"), "{message}");
    assert!(
        message.contains("redis+sentinel://:***@127.0.0.1:26379"),
        "{message}"
    );
}

#[tokio::test]
async fn wait_replicas_returns_once_the_replica_holds_the_job_and_fails_without_one() {
    let master = TestRedis::start();
    let replica = TestRedis::start_with(
        &["--replicaof", "127.0.0.1", &master.port().to_string()],
        None,
    );
    eventually(Duration::from_secs(10), "the replica to sync", async || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut replica.raw().await)
            .await
            .unwrap();
        info.contains("master_link_status:up")
    })
    .await;
    let client = Client::builder()
        .url(master.url())
        .wait_replicas(1, Duration::from_secs(1))
        .build()
        .unwrap();
    // Acknowledged means on the replica too, as soon as the push returns.
    let jids = client
        .perform_bulk((0..100).map(|_| Ledgered { millis: 1 }))
        .await
        .unwrap();
    assert_eq!(jids.len(), 100);
    let on_replica: u64 = replica.raw().await.llen("queue:faults").await.unwrap();
    assert_eq!(on_replica, 100);
    let pushed = client.perform_async(Ledgered { millis: 1 }).await.unwrap();
    assert!(
        replica
            .queued_jids("faults")
            .await
            .contains(&pushed.to_string())
    );

    // No replica: the push lands on the master, but is refused as not replicated.
    drop(replica);
    let alone = Client::builder()
        .url(master.url())
        .wait_replicas(1, Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut landed = 101;
    let error = loop {
        // Every push lands on the master, acknowledged or not.
        landed += 1;
        match alone.perform_async(Ledgered { millis: 1 }).await {
            Ok(_) if started.elapsed() < Duration::from_secs(15) => {}
            Ok(_) => panic!("pushes still acknowledged by a dead replica after 15 s"),
            Err(error) => break error,
        }
    };
    let message = error.to_string();
    assert!(matches!(error, Error::NotReplicated { .. }), "{message}");
    assert!(
        message.contains("only 0 of the 1 replicas wanted acknowledged it within 200ms"),
        "{message}"
    );
    assert_eq!(master.queue("faults").await.len(), landed);
}

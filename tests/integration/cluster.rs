//! Redis Cluster: `redis+cluster://` URLs and `ClientBuilder::cluster` run the same API on a real
//! local cluster of three masters and three replicas (`support/cluster.rs`): pushes, the worker
//! (fetch, retry, schedule), recovery after `kill -9` of a worker, the dashboard's pages, every
//! key in the one slot of the `{jobs}` hash tag; and after `kill -9` of that slot's master, a
//! client and a worker process carry on with the promoted replica within 10 s, losing no push
//! that a replica acknowledged (`wait_replicas`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use jobs::api::{DeadSet, Queue, RetrySet, ScheduledSet, Stats};
use jobs::{Batch, Client, Limiter};

use crate::support::cluster::TestCluster;
use crate::support::jobs::{CallLog, Explode, Ledgered, Record, with_test_jobs};
use crate::support::pushes::Pusher;
use crate::support::{
    ChildWorker, LedgerView, RunningWorker, TestRedis, eventually, ledger_path,
    self_signed_certificate, tls_only,
};
use crate::web_http::{app, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_a_cluster_runs_pushed_scheduled_and_failed_jobs_with_every_key_in_one_slot() {
    let cluster = TestCluster::start().await;
    let client = cluster.client();
    let labels: Vec<String> = (0..50).map(|n| format!("job {n}")).collect();
    client
        .perform_bulk(labels.iter().map(|label| Record {
            label: label.clone(),
        }))
        .await
        .expect("a bulk push to the cluster");
    client
        .perform_in(
            Duration::from_secs(1),
            Record {
                label: "later".to_owned(),
            },
        )
        .await
        .expect("a scheduled push");
    client
        .perform_async(Explode {
            message: "boom".to_owned(),
        })
        .await
        .expect("a push of a failing job");

    // A batch, whose callback the worker pushes when its three jobs are done.
    Batch::new()
        .client(&client)
        .on_success(Record {
            label: "batch done".to_owned(),
        })
        .push_all((0..3).map(|n| Record {
            label: format!("batch {n}"),
        }))
        .await
        .expect("a batch pushed to the cluster");
    // A limiter's scripts, on the same slot.
    let limited = Limiter::concurrent("cluster", 1)
        .client(&client)
        .within_limit(|| async { "inside" })
        .await
        .expect("a limiter on the cluster");
    assert_eq!(limited, "inside");

    let log = CallLog::default();
    let worker = with_test_jobs(jobs::Worker::new().client(&client), &log)
        .poll_interval(Duration::from_millis(100))
        .concurrency(5);
    let running = RunningWorker::start(worker);
    eventually(
        Duration::from_secs(30),
        "the 50 jobs, the scheduled one, the batch and its callback to run",
        async || log.entries().len() >= 55,
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the failed job to wait in the retry set",
        async || RetrySet::new(&client).size().await.unwrap_or(0) == 1,
    )
    .await;
    running.stop(Duration::from_secs(10)).await;

    let mut ran = log.entries();
    ran.sort();
    let mut expected = labels.clone();
    expected.extend(["later", "batch 0", "batch 1", "batch 2", "batch done"].map(str::to_owned));
    expected.sort();
    assert_eq!(ran, expected, "each job ran exactly once");
    assert_eq!(Queue::new(&client, "default").size().await.unwrap(), 0);
    assert_eq!(ScheduledSet::new(&client).size().await.unwrap(), 0);
    // Runs, failed or not: the 55 and the failed one's first.
    let stats = Stats::fetch(&client).await.unwrap();
    assert_eq!((stats.processed, stats.failed), (56, 1));

    // Every key carries the hash tag, so all of them are on the master of its slot.
    let keys = cluster.keys().await;
    assert!(!keys.is_empty());
    let untagged: Vec<&String> = keys
        .iter()
        .filter(|key| !key.starts_with("{jobs}:"))
        .collect();
    assert!(untagged.is_empty(), "keys without the tag: {untagged:?}");
    let owner = cluster.master_of("{jobs}").await;
    let on_owner = {
        let mut connection = cluster.nodes[owner].raw().await;
        let count: u64 = redis::cmd("DBSIZE")
            .query_async(&mut connection)
            .await
            .unwrap();
        count
    };
    assert_eq!(on_owner, keys.len() as u64, "every key on one master");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_waits_on_the_slots_master_alone() {
    let cluster = TestCluster::start().await;
    let client = cluster.client();
    let queues: Vec<String> = (0..6).map(|n| format!("idle{n}")).collect();
    let log = CallLog::default();
    let worker = with_test_jobs(jobs::Worker::new().client(&client), &log)
        .queues(queues.clone())
        .concurrency(2);
    let running = RunningWorker::start(worker);
    let owner = cluster.master_of("{jobs}").await;
    // Every queue waits in a `BLMOVE` on the slot's master.
    eventually(
        Duration::from_secs(20),
        "a BLMOVE waiting on the slot's master for each of the 6 queues",
        async || clients(&cluster.nodes[owner], "blmove").await >= 6,
    )
    .await;
    // The other masters hold the shared cluster connection's link and the test's own, not a
    // connection per waiting queue (a cluster connection each would connect to every node).
    for (index, node) in cluster.nodes.iter().enumerate().take(3) {
        if index != owner {
            let connected = clients(node, "").await;
            println!("node {index}, not the slot's master: {connected} client connections");
            assert!(
                connected < 6,
                "node {index}, not the slot's master, holds {connected} client connections"
            );
        }
    }
    // And a job pushed now is brought at once, by the `BLMOVE` of its queue.
    Record::set()
        .client(&client)
        .queue("idle4")
        .perform_async(Record {
            label: "woken".to_owned(),
        })
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the pushed job to run",
        async || log.entries() == vec!["woken".to_owned()],
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_slot_moves_to_another_master_the_idle_waits_follow_it() {
    let cluster = TestCluster::start().await;
    let client = cluster.client();
    let log = CallLog::default();
    let worker = with_test_jobs(jobs::Worker::new().client(&client), &log)
        .queues(["moving"])
        .concurrency(1);
    let running = RunningWorker::start(worker);
    let owner = cluster.master_of("{jobs}").await;
    let target = (0..3).find(|index| *index != owner).unwrap();
    eventually(
        Duration::from_secs(20),
        "a BLMOVE waiting on the slot's master",
        async || clients(&cluster.nodes[owner], "blmove").await >= 1,
    )
    .await;

    // Move the slot, keys and all, as `redis-cli --cluster reshard` does.
    let mut from = cluster.nodes[owner].raw().await;
    let mut to = cluster.nodes[target].raw().await;
    let id = async |connection: &mut redis::aio::MultiplexedConnection| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(connection)
            .await
            .unwrap()
    };
    let (from_id, to_id) = (id(&mut from).await, id(&mut to).await);
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{jobs}")
        .query_async(&mut from)
        .await
        .unwrap();
    redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&from_id)
        .query_async::<()>(&mut to)
        .await
        .unwrap();
    redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&to_id)
        .query_async::<()>(&mut from)
        .await
        .unwrap();
    loop {
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query_async(&mut from)
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(cluster.nodes[target].port())
            .arg("")
            .arg(0)
            .arg(5_000)
            .arg("REPLACE")
            .arg("KEYS")
            .arg(&keys)
            .query_async::<()>(&mut from)
            .await
            .unwrap();
    }
    for node in cluster.nodes.iter().take(3) {
        let mut connection = node.raw().await;
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&to_id)
            .query_async::<()>(&mut connection)
            .await
            .unwrap();
    }
    assert_eq!(cluster.master_of("{jobs}").await, target);

    // The wait on the old master is answered `MOVED`; the worker opens another, on the new one.
    eventually(
        Duration::from_secs(20),
        "a BLMOVE waiting on the slot's new master",
        async || clients(&cluster.nodes[target], "blmove").await >= 1,
    )
    .await;
    Record::set()
        .client(&client)
        .queue("moving")
        .perform_async(Record {
            label: "moved".to_owned(),
        })
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the job pushed after the move to run",
        async || log.entries() == vec!["moved".to_owned()],
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_one_node_cluster_that_knows_no_address_of_its_own_an_idle_worker_still_waits() {
    // A lone master never learns its IP: `CLUSTER SLOTS` gives its host as "".
    let node = TestRedis::start_with(
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes-{port}.conf",
        ],
        None,
    );
    let mut connection = node.raw().await;
    redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16_383)
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the one-node cluster to be ok",
        async || {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut connection)
                .await
                .unwrap_or_default();
            info.contains("cluster_state:ok")
        },
    )
    .await;
    let client = jobs::Client::builder()
        .url(format!("redis+cluster://127.0.0.1:{}", node.port()))
        .build()
        .unwrap();
    let log = CallLog::default();
    let worker = with_test_jobs(jobs::Worker::new().client(&client), &log)
        .queues(["first", "second"])
        .concurrency(2);
    let running = RunningWorker::start(worker);
    eventually(
        Duration::from_secs(20),
        "a BLMOVE waiting for each queue",
        async || clients(&node, "blmove").await >= 2,
    )
    .await;
    Record::set()
        .client(&client)
        .queue("second")
        .perform_async(Record {
            label: "lone".to_owned(),
        })
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the pushed job to run",
        async || log.entries() == vec!["lone".to_owned()],
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
}

/// How many clients `node` holds whose last command contains `command` (every client for
/// `""`), not counting the connection that asks.
async fn clients(node: &TestRedis, command: &str) -> usize {
    let mut connection = node.raw().await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut connection)
        .await
        .unwrap();
    list.lines()
        .filter(|line| !line.contains("cmd=client|list"))
        .filter(|line| line.contains(&format!("cmd={command}")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rediss_cluster_url_speaks_tls_to_every_node() {
    // Three masters that speak TLS only (`--port 0`), among themselves too (`--tls-cluster`).
    let dir = std::env::temp_dir().join(format!("jobs-tls-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = self_signed_certificate(&dir);
    let mut tls = tls_only(&cert, &key);
    tls.extend([
        "--tls-cluster",
        "yes",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes-{port}.conf",
    ]);
    let nodes: Vec<TestRedis> = (0..3).map(|_| TestRedis::start_with(&tls, None)).collect();
    let addresses: Vec<String> = nodes
        .iter()
        .map(|node| format!("127.0.0.1:{}", node.port()))
        .collect();
    let created = std::process::Command::new("redis-cli")
        .args(["--tls", "--insecure", "--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("run redis-cli --cluster create");
    assert!(
        created.status.success(),
        "redis-cli --cluster create over TLS failed: {}",
        String::from_utf8_lossy(&created.stdout)
    );
    // `#insecure`: the certificate is self-signed.
    let url = format!("rediss+cluster://{}#insecure", addresses.join(","));
    let client = jobs::Client::builder().url(&url).build().unwrap();
    eventually(
        Duration::from_secs(30),
        "a push to the TLS cluster once its slots are served",
        async || {
            client
                .perform_async(Record {
                    label: "over tls".to_owned(),
                })
                .await
                .is_ok()
        },
    )
    .await;
    let log = CallLog::default();
    let worker = with_test_jobs(jobs::Worker::new().client(&client), &log).concurrency(2);
    let running = RunningWorker::start(worker);
    eventually(
        Duration::from_secs(30),
        "the job pushed over TLS to run",
        async || log.entries().contains(&"over tls".to_owned()),
    )
    .await;
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(log.entries(), vec!["over tls".to_owned()], "it ran once");
    assert_eq!(Stats::fetch(&client).await.unwrap().processed, 1);
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_admin_api_read_a_cluster() {
    let cluster = TestCluster::start().await;
    let client = cluster.client();
    client
        .perform_bulk((0..3).map(|n| Record {
            label: format!("waiting {n}"),
        }))
        .await
        .unwrap();
    client
        .perform_in(
            Duration::from_secs(3600),
            Record {
                label: "in an hour".to_owned(),
            },
        )
        .await
        .unwrap();
    assert_eq!(Queue::new(&client, "default").size().await.unwrap(), 3);
    assert_eq!(ScheduledSet::new(&client).size().await.unwrap(), 1);
    assert_eq!(DeadSet::new(&client).size().await.unwrap(), 0);

    let app = app(&client);
    for (path, shows) in [
        ("/jobs", "Processed"),
        ("/jobs/queues", "default"),
        ("/jobs/queues/default", "waiting 0"),
        ("/jobs/scheduled", "in an hour"),
        ("/jobs/retries", "Retries"),
        ("/jobs/morgue", "Dead"),
        ("/jobs/busy", "Processes"),
    ] {
        let reply = get(&app, path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(reply.body.contains(shows), "{path} shows {shows}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_worker_killed_with_kill_9_on_a_cluster_run_in_the_next_one() {
    let cluster = TestCluster::start().await;
    let url = cluster.url();
    let client = cluster.client();
    let ledger = ledger_path("cluster-kill9");
    let pushed: HashSet<String> = client
        .perform_bulk((0..40).map(|_| Ledgered { millis: 300 }))
        .await
        .unwrap()
        .into_iter()
        .map(|jid| jid.to_string())
        .collect();
    let mut first = ChildWorker::spawn(&url, &ledger, &[("JOBS_TEST_CONCURRENCY", "5")]);
    eventually(
        Duration::from_secs(20),
        "the first worker to start jobs",
        async || LedgerView::read(&ledger).runs.len() >= 5,
    )
    .await;
    first.kill9();
    let _second = ChildWorker::spawn(&url, &ledger, &[("JOBS_TEST_CONCURRENCY", "10")]);
    eventually(
        Duration::from_secs(60),
        "every job to finish, those the killed worker held included",
        async || LedgerView::read(&ledger).done.is_superset(&pushed),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_of_the_master_of_the_jobs_slot_client_and_worker_carry_on_within_10_s() {
    let mut cluster = TestCluster::start().await;
    let url = cluster.url();
    let ledger = ledger_path("cluster-failover");
    let _worker = ChildWorker::spawn(&url, &ledger, &[]);
    let pusher = Pusher::start(&url);
    // Mid-run: jobs being pushed and run.
    eventually(
        Duration::from_secs(20),
        "50 jobs to run before the kill",
        async || LedgerView::read(&ledger).done.len() >= 50,
    )
    .await;

    let owner = cluster.master_of("{jobs}").await;
    cluster.nodes[owner].kill();
    let killed = Instant::now();

    // A client that waits for no replica: its push reaches the promoted replica (the waiting
    // one's are refused as not replicated until a replica is back).
    let plain = Client::builder().url(&url).build().unwrap();
    let probe = loop {
        match plain.perform_async(Ledgered { millis: 1 }).await {
            Ok(pushed) => break pushed.to_string(),
            Err(error) => {
                assert!(
                    killed.elapsed() < Duration::from_secs(30),
                    "no push reached the cluster 30 s after the kill: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let client_resumed = killed.elapsed();
    eventually(
        Duration::from_secs(30),
        "the worker to run a job pushed after the failover",
        async || LedgerView::read(&ledger).done.contains(&probe),
    )
    .await;
    let worker_resumed = killed.elapsed();
    let acknowledged = pusher.stop().await.jids();
    eventually(
        Duration::from_secs(30),
        "every acknowledged job to run",
        async || LedgerView::read(&ledger).done.is_superset(&acknowledged),
    )
    .await;
    println!(
        "cluster failover: client pushed again after {:.1} s, worker ran a new job after {:.1} s; \
         {} acknowledged pushes, none lost",
        client_resumed.as_secs_f64(),
        worker_resumed.as_secs_f64(),
        acknowledged.len()
    );
    assert!(
        client_resumed < Duration::from_secs(10),
        "the client took {client_resumed:?} to reach the promoted replica"
    );
    assert!(
        worker_resumed < Duration::from_secs(10),
        "the worker took {worker_resumed:?} to run a job pushed after the failover"
    );
}

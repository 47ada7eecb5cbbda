//! The outbox (`jobs::outbox`, feature `postgres`) against a real PostgreSQL (one private
//! cluster for the binary, a database per test: `support/postgres.rs`) and a private Redis per
//! test. The crash tests kill a real committing process (this binary re-run as
//! `outbox::child_commit`) with SIGKILL.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::NaiveDate;
use jobs::outbox::sqlx::{self, PgPool};
use jobs::outbox::{Relay, Transaction};
use jobs::{Client, Payload, Worker};
use redis::AsyncCommands;

use crate::support::jobs::{CallLog, ScoreGeneration, with_test_jobs};
use crate::support::postgres::TestDatabase;
use crate::support::{RunningWorker, TestRedis, eventually, free_port, sorted_set};

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(u64::from(n))
}

/// A client whose Redis refuses connections at once: a commit through it leaves its jobs in
/// the outbox, as a Redis outage at the commit does.
fn unreachable_client() -> Client {
    Client::builder()
        .url(format!("redis://127.0.0.1:{}/0", free_port()))
        .connect_timeout(Duration::from_millis(200))
        .reconnect_attempts(0)
        .build()
        .unwrap()
}

/// A relay that moves every row, however young.
fn eager(pool: &PgPool) -> Relay {
    Relay::new(pool.clone())
        .grace(Duration::ZERO)
        .interval(Duration::from_millis(50))
}

/// A private Redis and a database of its own with the outbox table, for one test.
async fn redis_and_database() -> (TestRedis, TestDatabase) {
    let redis = TestRedis::start();
    (redis, TestDatabase::start().await)
}

/// An outbox transaction on `pool` whose jobs go through `client`.
async fn begin(pool: &PgPool, client: &Client) -> Transaction {
    jobs::outbox::begin_with(pool, client).await.unwrap()
}

/// How many rows one pass of an [`eager`] relay moves from `db`'s outbox to `redis`.
async fn relay_once(db: &TestDatabase, redis: &TestRedis) -> usize {
    eager(db.pool()).run_once(&redis.client()).await.unwrap()
}

/// Asserts that every row left the outbox and no move mark is left in `redis`.
async fn assert_drained(db: &TestDatabase, redis: &TestRedis) {
    assert_eq!(db.outbox_rows().await, 0, "moved rows are deleted");
    let marks = marks(redis).await;
    assert!(marks.is_empty(), "{marks:?}");
}

/// The jids of the jobs in `queue:<name>`, oldest first, failing on a jid seen twice.
async fn queue_jids(redis: &TestRedis, name: &str) -> Vec<String> {
    let jids: Vec<String> = redis
        .queue(name)
        .await
        .iter()
        .map(|job| job["jid"].as_str().unwrap().to_owned())
        .collect();
    let unique: HashSet<&String> = jids.iter().collect();
    assert_eq!(unique.len(), jids.len(), "a job was pushed twice: {jids:?}");
    jids
}

/// The keys marking moves (`jobs:outbox:<jid>`) left in Redis.
async fn marks(redis: &TestRedis) -> Vec<String> {
    redis
        .keys()
        .await
        .into_iter()
        .filter(|key| key.starts_with("jobs:outbox:"))
        .collect()
}

/// Commits `n` jobs for queue `queue` through a Redis that is down, so they stay in the outbox;
/// returns their jids in push order.
async fn leave_behind(db: &TestDatabase, queue: &str, n: u32) -> Vec<String> {
    let mut tx = begin(db.pool(), &unreachable_client()).await;
    let mut jids = Vec::new();
    for i in 0..n {
        let jid = tx
            .push(ScoreGeneration::set().queue(queue), day(i))
            .await
            .unwrap();
        jids.push(jid.as_str().to_owned());
    }
    let committed = tx.commit().await.unwrap();
    assert_eq!((committed.moved, committed.left), (0, n as usize));
    jids
}

#[tokio::test]
async fn a_commit_writes_the_data_and_pushes_the_jobs_at_once() {
    let (redis, db) = redis_and_database().await;
    let pool = db.pool();
    sqlx::query("CREATE TABLE todos (id BIGINT PRIMARY KEY, done BOOLEAN NOT NULL)")
        .execute(pool)
        .await
        .unwrap();

    let mut tx = begin(pool, &redis.client()).await;
    sqlx::query("INSERT INTO todos VALUES (1, true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let now = tx
        .perform_async(ScoreGeneration { date: day(0) })
        .await
        .unwrap();
    let later = tx
        .perform_in(Duration::from_secs(600), ScoreGeneration { date: day(1) })
        .await
        .unwrap();
    let critical = tx
        .push(ScoreGeneration::set().queue("critical"), day(2))
        .await
        .unwrap();
    assert!(
        redis.keys().await.is_empty(),
        "nothing reaches Redis before the commit"
    );
    assert_eq!(
        db.outbox_rows().await,
        0,
        "the rows are not visible before the commit"
    );

    let committed = tx.commit().await.unwrap();
    assert_eq!((committed.moved, committed.left), (3, 0));
    let default = redis.queue("default").await;
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["jid"], now.as_str());
    assert_eq!(default[0]["class"], "ScoreGeneration");
    assert_eq!(default[0]["args"], serde_json::json!(["2026-01-01"]));
    let created = default[0]["created_at"].as_f64().unwrap();
    let enqueued = default[0]["enqueued_at"].as_f64().unwrap();
    assert!(enqueued >= created, "enqueued_at is when it reached Redis");
    assert_eq!(queue_jids(&redis, "critical").await, [critical.as_str()]);
    let scheduled = sorted_set(&redis, "schedule").await;
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].0["jid"], later.as_str());
    assert!(scheduled[0].0.get("enqueued_at").is_none());
    assert!((scheduled[0].1 - (created + 600.0)).abs() < 1.0);
    let done: bool = sqlx::query_scalar("SELECT done FROM todos WHERE id = 1")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(done);
    assert_drained(&db, &redis).await;
}

#[tokio::test]
async fn a_rollback_or_a_dropped_transaction_pushes_nothing() {
    let (redis, db) = redis_and_database().await;
    let client = redis.client();

    let mut tx = begin(db.pool(), &client).await;
    tx.perform_async(ScoreGeneration { date: day(0) })
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = begin(db.pool(), &client).await;
    tx.perform_async(ScoreGeneration { date: day(1) })
        .await
        .unwrap();
    drop(tx);

    // Nothing either for the relay to find, however long it waits.
    assert_eq!(relay_once(&db, &redis).await, 0);
    assert_eq!(db.outbox_rows().await, 0);
    assert!(redis.keys().await.is_empty(), "{:?}", redis.keys().await);
}

#[tokio::test]
async fn a_transactions_jobs_reach_their_queues_in_push_order() {
    let (redis, db) = redis_and_database().await;
    let mut tx = begin(db.pool(), &redis.client()).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let (queue, jids) = if i % 3 == 0 {
            ("a", &mut a)
        } else {
            ("b", &mut b)
        };
        let jid = tx
            .push(ScoreGeneration::set().queue(queue), day(i))
            .await
            .unwrap();
        jids.push(jid.as_str().to_owned());
    }
    assert_eq!(tx.commit().await.unwrap().moved, 200);
    assert_eq!(queue_jids(&redis, "a").await, a);
    assert_eq!(queue_jids(&redis, "b").await, b);
}

#[tokio::test]
async fn jobs_a_redis_outage_left_behind_move_with_the_relay_in_id_order() {
    let (redis, db) = redis_and_database().await;
    let mut expected = Vec::new();
    for _ in 0..3 {
        expected.extend(leave_behind(&db, "orders", 40).await);
    }
    assert_eq!(db.outbox_jids().await, expected);

    let moved = eager(db.pool())
        .batch(25)
        .run_once(&redis.client())
        .await
        .unwrap();
    assert_eq!(moved, 120);
    assert_eq!(queue_jids(&redis, "orders").await, expected);
    assert_drained(&db, &redis).await;
}

#[tokio::test]
async fn the_relay_leaves_young_rows_to_the_process_committing_them() {
    let (redis, db) = redis_and_database().await;
    leave_behind(&db, "orders", 3).await;
    let relay = Relay::new(db.pool().clone()).grace(Duration::from_secs(2));
    assert_eq!(relay.run_once(&redis.client()).await.unwrap(), 0);
    assert_eq!(db.outbox_rows().await, 3);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(relay.run_once(&redis.client()).await.unwrap(), 3);
}

#[tokio::test]
async fn two_relays_at_once_push_each_job_once_and_in_order() {
    let (redis, db) = redis_and_database().await;
    let mut expected = Vec::new();
    for _ in 0..4 {
        expected.extend(leave_behind(&db, "orders", 500).await);
    }
    let (first, second) = (redis.client(), redis.client());
    let relay = eager(db.pool()).batch(100);
    while db.outbox_rows().await > 0 {
        let (a, b) = tokio::join!(relay.run_once(&first), relay.run_once(&second));
        a.unwrap();
        b.unwrap();
    }
    assert_eq!(queue_jids(&redis, "orders").await, expected);
    assert!(marks(&redis).await.is_empty());
}

#[tokio::test]
async fn a_row_that_is_not_a_job_goes_dead_and_the_others_move() {
    let (redis, db) = redis_and_database().await;
    let mut raw = redis.raw().await;
    let _: () = raw.set("queue:blocked", "not a list").await.unwrap();
    let first = leave_behind(&db, "orders", 2).await;
    for (jid, payload) in [
        ("bad1", "not json"),
        ("bad2", "[1,2]"),
        ("bad3", r#"{"args":[]}"#),
    ] {
        sqlx::query("INSERT INTO jobs_outbox (jid, queue, payload) VALUES ($1, 'orders', $2)")
            .bind(jid)
            .bind(payload)
            .execute(db.pool())
            .await
            .unwrap();
    }
    let blocked = leave_behind(&db, "blocked", 1).await;
    let last = leave_behind(&db, "orders", 2).await;

    let moved = relay_once(&db, &redis).await;
    assert_eq!(moved, 7, "four jobs and three bad rows leave the outbox");
    assert_eq!(queue_jids(&redis, "orders").await, [first, last].concat());
    let dead = sorted_set(&redis, "dead").await;
    assert_eq!(dead.len(), 3);
    for (entry, _) in &dead {
        let message = entry["error_message"].as_str().unwrap();
        assert!(message.contains("is not a job"), "{message}");
        assert!(message.contains("row"), "{message}");
    }
    assert_eq!(
        db.outbox_jids().await,
        blocked,
        "the row Redis refused stays"
    );

    let _: () = raw.del("queue:blocked").await.unwrap();
    assert_eq!(relay_once(&db, &redis).await, 1);
    assert_eq!(queue_jids(&redis, "blocked").await, blocked);
    assert_eq!(db.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_unique_job_takes_its_lock_when_it_reaches_redis() {
    let (redis, db) = redis_and_database().await;
    let client = redis.client();
    let unique = || ScoreGeneration::set().unique_for(Duration::from_secs(60));
    let mut first = begin(db.pool(), &client).await;
    let mut second = begin(db.pool(), &client).await;
    let kept = first.push(unique(), day(0)).await.unwrap();
    second.push(unique(), day(0)).await.unwrap();

    assert_eq!(first.commit().await.unwrap().moved, 1);
    let committed = second.commit().await.unwrap();
    assert_eq!(
        (committed.moved, committed.left),
        (1, 0),
        "the duplicate is settled"
    );
    assert_eq!(queue_jids(&redis, "default").await, [kept.as_str()]);
    assert_eq!(db.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_setter_naming_another_redis_is_refused() {
    let (redis, db) = redis_and_database().await;
    let mut tx = begin(db.pool(), &redis.client()).await;
    let other = Client::builder().url(redis.url_for_db(3)).build().unwrap();
    let error = tx
        .push(ScoreGeneration::set().client(&other), day(0))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("one client"), "{error}");
    tx.push_payload(Payload::new("RubyJob", vec![1.into()]))
        .await
        .unwrap();
    assert_eq!(tx.commit().await.unwrap().moved, 1);
    assert_eq!(redis.queue("default").await[0]["class"], "RubyJob");
}

#[tokio::test]
async fn a_missing_table_says_how_to_create_it_and_migrate_is_idempotent() {
    let redis = TestRedis::start();
    let db = TestDatabase::empty().await;
    let error = Relay::new(db.pool().clone())
        .run_once(&redis.client())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("jobs::outbox::migrate"),
        "{error}"
    );
    let pool = db.pool();
    let (a, b, c) = tokio::join!(
        jobs::outbox::migrate(pool),
        jobs::outbox::migrate(pool),
        jobs::outbox::migrate(pool)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    jobs::outbox::migrate(pool).await.unwrap();
    assert_eq!(db.outbox_rows().await, 0);
}

#[tokio::test]
async fn a_fake_records_the_jobs_of_a_committed_transaction_only() {
    let db = TestDatabase::start().await;
    let fake = jobs::testing::fake();
    let client = Client::from_env().unwrap();
    let mut tx = begin(db.pool(), &client).await;
    tx.perform_async(ScoreGeneration { date: day(0) })
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    fake.assert_nothing_enqueued();
    let mut tx = begin(db.pool(), &client).await;
    tx.perform_async(ScoreGeneration { date: day(1) })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    fake.assert_enqueued_with::<ScoreGeneration>(|job| job.date == day(1));
    assert_eq!(db.outbox_rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_relay_waits_out_redis_going_away() {
    let (mut redis, db) = redis_and_database().await;
    let client = Client::builder()
        .url(redis.url())
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let worker = RunningWorker::start(
        with_test_jobs(Worker::new().client(&client), &CallLog::default())
            .queues(["nothing"])
            .outbox(eager(db.pool())),
    );
    let first = leave_behind(&db, "orders", 5).await;
    eventually(
        Duration::from_secs(10),
        "the first jobs moved",
        async || redis.queue("orders").await.len() == 5,
    )
    .await;

    redis.kill();
    let second = leave_behind(&db, "orders", 5).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        db.outbox_rows().await,
        5,
        "nothing moves while Redis is away"
    );
    redis.restart();
    eventually(
        Duration::from_secs(40),
        "the relay moved the jobs",
        async || db.outbox_rows().await == 0,
    )
    .await;
    // The restarted Redis is empty: only the second batch is there.
    assert_eq!(queue_jids(&redis, "orders").await, second);
    assert_ne!(first, second);
    worker.stop(Duration::from_secs(10)).await;
}

/// Starts this test binary as `child_commit`: a process that commits `jobs` jobs for queue
/// `outbox` through the Redis at `redis_url`, then exits.
fn spawn_committer(db: &TestDatabase, redis_url: &str, jobs: u32) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "outbox::child_commit",
            "--ignored",
            "--nocapture",
        ])
        .env("JOBS_TEST_CHILD", "1")
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", redis_url)
        .env("JOBS_TEST_OUTBOX_JOBS", jobs.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_between_its_commit_and_its_push_loses_no_job() {
    let (redis, db) = redis_and_database().await;
    // The committing process's Redis accepts connections and never answers, and the child's
    // client waits ten minutes for it, so the child is caught between its commit and its push
    // until it is killed, however slow the machine.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("redis://{}/0", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let mut child = spawn_committer(&db, &silent_url, 50);
    eventually(Duration::from_secs(30), "the child committed", async || {
        db.outbox_rows().await == 50
    })
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the child is still pushing"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    held.abort();
    let expected = db.outbox_jids().await;
    assert_eq!(
        expected.len(),
        50,
        "the committed jobs are safe in the outbox"
    );

    let worker = RunningWorker::start(
        with_test_jobs(Worker::new().client(&redis.client()), &CallLog::default())
            .queues(["nothing"])
            .outbox(Relay::new(db.pool().clone()).grace(Duration::from_millis(500))),
    );
    eventually(
        Duration::from_secs(20),
        "the relay moved the jobs",
        async || db.outbox_rows().await == 0,
    )
    .await;
    assert_eq!(queue_jids(&redis, "outbox").await, expected);
    assert!(marks(&redis).await.is_empty());
    worker.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_between_its_push_and_its_delete_pushes_each_job_once() {
    let (redis, db) = redis_and_database().await;
    // Every DELETE of the outbox hangs, so the committing process is caught after its push.
    sqlx::raw_sql(
        "CREATE FUNCTION hang() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(600); RETURN OLD; \
         END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER hang BEFORE DELETE ON jobs_outbox FOR EACH ROW EXECUTE FUNCTION hang();",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let mut child = spawn_committer(&db, &redis.url(), 50);
    eventually(Duration::from_secs(30), "the child pushed", async || {
        redis.queue("outbox").await.len() == 50
    })
    .await;
    let deleting = "SELECT pid FROM pg_stat_activity WHERE query LIKE 'DELETE FROM jobs_outbox%' \
                    AND state = 'active'";
    eventually(Duration::from_secs(10), "the child deletes", async || {
        sqlx::query_scalar::<_, i32>(deleting)
            .fetch_optional(db.pool())
            .await
            .unwrap()
            .is_some()
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    // Its DELETE dies with it (a killed process's statement would finish by itself otherwise).
    sqlx::query(&format!(
        "SELECT pg_terminate_backend(pid) FROM ({deleting}) AS hanging"
    ))
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::raw_sql("DROP TRIGGER hang ON jobs_outbox")
        .execute(db.pool())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the DELETE rolled back",
        async || db.outbox_rows().await == 50,
    )
    .await;
    let expected = db.outbox_jids().await;
    assert_eq!(marks(&redis).await.len(), 50, "the moves are marked");

    assert_eq!(relay_once(&db, &redis).await, 50);
    assert_eq!(
        queue_jids(&redis, "outbox").await,
        expected,
        "each job once"
    );
    assert_drained(&db, &redis).await;
}

/// The committing process the crash tests start and kill: commits `JOBS_TEST_OUTBOX_JOBS` jobs
/// for queue `outbox` in one transaction, through the Redis at `REDIS_URL`. Its client waits
/// ten minutes for a connection or a reply, without reconnecting: a Redis that never answers
/// holds it between its commit and its push until the test kills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a committing process by the crash tests of this module"]
async fn child_commit() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by the outbox tests, not directly"
    );
    let jobs: u32 = std::env::var("JOBS_TEST_OUTBOX_JOBS")
        .unwrap()
        .parse()
        .unwrap();
    let pool = PgPool::connect(&std::env::var("DATABASE_URL").unwrap())
        .await
        .unwrap();
    let client = Client::builder()
        .url(std::env::var("REDIS_URL").unwrap())
        .connect_timeout(Duration::from_secs(600))
        .response_timeout(Duration::from_secs(600))
        .reconnect_attempts(0)
        .build()
        .unwrap();
    let mut tx = begin(&pool, &client).await;
    for i in 0..jobs {
        tx.push(ScoreGeneration::set().queue("outbox"), day(i))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// An eager relay looping while many transactions commit at once: the relay and the
/// committing processes move the same rows, and each job reaches Redis exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_racing_committing_processes_pushes_each_job_exactly_once() {
    let (redis, db) = redis_and_database().await;
    let client = redis.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relay = {
        let (relay, client, stop) = (
            eager(db.pool()).batch(50),
            redis.client(),
            std::sync::Arc::clone(&stop),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                relay.run_once(&client).await.unwrap();
            }
        })
    };
    let mut committers = Vec::new();
    for task in 0..8_u32 {
        let (pool, client) = (db.pool().clone(), client.clone());
        committers.push(tokio::spawn(async move {
            let mut jids = Vec::new();
            for round in 0..80_u32 {
                let mut tx = begin(&pool, &client).await;
                for i in 0..=(round % 3) {
                    let jid = tx
                        .push(ScoreGeneration::set().queue("race"), day(task * 1_000 + i))
                        .await
                        .unwrap();
                    jids.push(jid.as_str().to_owned());
                }
                tx.commit().await.unwrap();
            }
            jids
        }));
    }
    let mut expected = HashSet::new();
    for committer in committers {
        expected.extend(committer.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    relay.await.unwrap();
    eager(db.pool()).run_once(&client).await.unwrap();
    let queued = queue_jids(&redis, "race").await;
    assert_eq!(queued.len(), expected.len(), "no job lost, none twice");
    assert_eq!(queued.into_iter().collect::<HashSet<_>>(), expected);
    assert_eq!(db.outbox_rows().await, 0);
}

/// A statement that failed inside the transaction, its error ignored: PostgreSQL turns the
/// `COMMIT` into a rollback (and sqlx returns `Ok`). No job may reach Redis, and `commit()`
/// says the transaction rolled back.
#[tokio::test]
async fn a_transaction_a_failed_statement_rolled_back_pushes_nothing_and_says_so() {
    let (redis, db) = redis_and_database().await;
    let pool = db.pool();
    sqlx::raw_sql("CREATE TABLE todos (id BIGINT PRIMARY KEY); INSERT INTO todos VALUES (1)")
        .execute(pool)
        .await
        .unwrap();
    let mut tx = begin(pool, &redis.client()).await;
    tx.perform_async(ScoreGeneration { date: day(0) })
        .await
        .unwrap();
    let ignored = sqlx::query("INSERT INTO todos VALUES (1)")
        .execute(&mut *tx)
        .await;
    assert!(ignored.is_err(), "a duplicate key");
    let error = tx.commit().await.unwrap_err();
    assert!(error.to_string().contains("rolled back"), "{error}");
    assert!(redis.keys().await.is_empty(), "{:?}", redis.keys().await);
    assert_eq!(db.outbox_rows().await, 0);
    assert_eq!(relay_once(&db, &redis).await, 0);
}

/// A proxy to `upstream` for one connection that it closes when the client sends its second
/// `SCRIPT` (the second pipeline of a move: the first's reply has come back by then); any
/// later connection is refused.
async fn cut_at_second_pipeline(upstream: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/0", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        drop(listener);
        let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
            .await
            .unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let back =
            tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
        let (mut seen, mut buffer) = (Vec::new(), vec![0_u8; 64 * 1024]);
        loop {
            let read = client_read.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                break;
            }
            seen.extend_from_slice(&buffer[..read]);
            if seen.windows(6).filter(|w| *w == b"SCRIPT").count() >= 2 {
                break;
            }
            if server_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        back.abort();
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_counts_the_jobs_of_the_pipelines_that_went_before_a_failed_one() {
    let (redis, db) = redis_and_database().await;
    let client = Client::builder()
        .url(cut_at_second_pipeline(redis.port()).await)
        .connect_timeout(Duration::from_millis(500))
        .reconnect_attempts(0)
        .build()
        .unwrap();
    let mut tx = begin(db.pool(), &client).await;
    for i in 0..1_500 {
        tx.push(ScoreGeneration::set().queue("orders"), day(i))
            .await
            .unwrap();
    }
    let committed = tx.commit().await.unwrap();
    assert_eq!((committed.moved, committed.left), (1_000, 500));
    assert_eq!(redis.queue("orders").await.len(), 1_000);
    assert_eq!(db.outbox_rows().await, 500, "the moved rows are deleted");
    assert_eq!(relay_once(&db, &redis).await, 500);
    assert_eq!(queue_jids(&redis, "orders").await.len(), 1_500);
}

/// `json` with the value of its field `enqueued_at` replaced by `…`, the rest byte for byte.
fn without_enqueued_at(json: &str) -> String {
    let Some(start) = json.find(r#""enqueued_at":"#) else {
        return json.to_owned();
    };
    let value = start + r#""enqueued_at":"#.len();
    let end = json[value..]
        .find([',', '}'])
        .map_or(json.len(), |end| value + end);
    format!("{}…{}", &json[..value], &json[end..])
}

#[tokio::test]
async fn a_moved_job_is_the_rows_json_byte_for_byte_but_its_enqueued_at() {
    let (redis, db) = redis_and_database().await;
    let mut tx = begin(db.pool(), &unreachable_client()).await;
    let mut payload = Payload::new("RubyJob", vec![1.into(), "é \u{1F600} \"q\"".into()]);
    payload
        .extra
        .insert("tags".to_owned(), serde_json::json!(["b", "a"]));
    payload
        .extra
        .insert("zeta".to_owned(), serde_json::json!({"y": 1.50, "x": null}));
    tx.push_payload(payload).await.unwrap();
    tx.push(ScoreGeneration::set().queue("default"), day(3))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar("SELECT payload FROM jobs_outbox ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap();

    assert_eq!(relay_once(&db, &redis).await, 2);
    let mut raw = redis.raw().await;
    let mut queued: Vec<String> = raw.lrange("queue:default", 0, -1).await.unwrap();
    queued.reverse();
    assert_eq!(queued.len(), 2);
    for (row, job) in rows.iter().zip(&queued) {
        assert!(job.contains(r#""enqueued_at":"#), "{job}");
        assert_eq!(without_enqueued_at(job), without_enqueued_at(row));
    }
}

#[tokio::test]
async fn the_relay_moves_a_scheduled_row_to_schedule_or_once_due_to_its_queue() {
    let (redis, db) = redis_and_database().await;
    let mut tx = begin(db.pool(), &unreachable_client()).await;
    let later = tx
        .push(
            ScoreGeneration::set()
                .queue("orders")
                .wait(Duration::from_secs(600)),
            day(0),
        )
        .await
        .unwrap();
    let soon = tx
        .push(
            ScoreGeneration::set()
                .queue("orders")
                .wait(Duration::from_secs(1)),
            day(1),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let later_json: String = sqlx::query_scalar("SELECT payload FROM jobs_outbox WHERE jid = $1")
        .bind(later.as_str())
        .fetch_one(db.pool())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    assert_eq!(relay_once(&db, &redis).await, 2);
    let mut raw = redis.raw().await;
    let schedule: Vec<(String, f64)> = raw.zrange_withscores("schedule", 0, -1).await.unwrap();
    assert_eq!(schedule.len(), 1);
    assert_eq!(schedule[0].0, later_json, "as written");
    let created = redis.queue("orders").await[0]["created_at"]
        .as_f64()
        .unwrap();
    assert!((schedule[0].1 - (created + 600.0)).abs() < 1.0);
    let queued = redis.queue("orders").await;
    assert_eq!(queued.len(), 1, "the row due by the move went to its queue");
    assert_eq!(queued[0]["jid"], soon.as_str());
    assert!(queued[0]["enqueued_at"].as_f64().unwrap() >= created + 1.0);
    assert!(queued[0].get("at").is_none());
    assert_eq!(db.outbox_rows().await, 0);
}

#[tokio::test]
async fn the_relay_moves_a_unique_job_once_and_drops_its_duplicate() {
    let (redis, db) = redis_and_database().await;
    let unique = || {
        ScoreGeneration::set()
            .queue("orders")
            .unique_for(Duration::from_secs(60))
    };
    let mut jids = Vec::new();
    for _ in 0..2 {
        let mut tx = begin(db.pool(), &unreachable_client()).await;
        jids.push(tx.push(unique(), day(0)).await.unwrap());
        tx.commit().await.unwrap();
    }

    assert_eq!(relay_once(&db, &redis).await, 2, "the duplicate is settled");
    assert_eq!(queue_jids(&redis, "orders").await, [jids[0].as_str()]);
    let locks: Vec<String> = redis
        .keys()
        .await
        .into_iter()
        .filter(|key| key.starts_with("jobs:unique:"))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    let mut raw = redis.raw().await;
    let holder: String = raw.get(&locks[0]).await.unwrap();
    assert_eq!(holder, jids[0].as_str());
    let ttl: i64 = raw.pttl(&locks[0]).await.unwrap();
    assert!((50_000..=60_000).contains(&ttl), "{ttl}");
    assert_drained(&db, &redis).await;
}

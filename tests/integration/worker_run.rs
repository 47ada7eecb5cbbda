//! Running jobs: every job runs once and is acknowledged, in queue order, within the
//! concurrency limit; an idle worker waits without polling (past 16 queues, on the first 16,
//! looking at the rest every 500 ms); shutdown hands unfinished jobs back.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use jobs::worker::QueueSpec;
use redis::AsyncCommands;

use crate::support::jobs::{CallLog, Gauge, MeasureConcurrency, Record, Slow};
use crate::support::jobs::{highs, push_high_then_low, push_labels_to, push_low_and_high, worker};
use crate::support::{RunningWorker, TestRedis, counter, eventually};

/// Pushes `n` `Record` jobs labelled `job 0`, `job 1`…, oldest first; their labels.
async fn push_records(client: &jobs::Client, n: usize) -> Vec<String> {
    let labels: Vec<String> = (0..n).map(|n| format!("job {n}")).collect();
    client
        .perform_bulk(labels.iter().map(|label| Record {
            label: label.clone(),
        }))
        .await
        .unwrap();
    labels
}

/// Drains the queue with a worker at concurrency 10; asserts that each of `labels` ran exactly
/// once and that every job was taken off the working list.
async fn drain_busy(redis: &TestRedis, labels: &[String]) {
    let log = CallLog::default();
    worker(redis, &log).concurrency(10).drain().await.unwrap();
    assert_ran_once(&log, labels);
    let keys = redis.keys().await;
    assert!(
        !keys.iter().any(|key| key.starts_with("jobs:working:")),
        "every job was taken off the working list: {keys:?}"
    );
}

/// Asserts that each of `labels` was run exactly once, in any order.
fn assert_ran_once(log: &CallLog, labels: &[String]) {
    let mut ran = log.entries();
    ran.sort();
    let mut expected = labels.to_vec();
    expected.sort();
    assert_eq!(ran, expected, "each job ran exactly once");
}

#[tokio::test]
async fn every_job_runs_once_and_leaves_nothing_behind() {
    let redis = TestRedis::start();
    let client = redis.client();
    let labels = push_records(&client, 20).await;
    let log = CallLog::default();
    worker(&redis, &log).concurrency(4).drain().await.unwrap();

    assert_ran_once(&log, &labels);
    assert!(redis.queue("default").await.is_empty());
    let keys = redis.keys().await;
    assert!(
        !keys.iter().any(|key| key.starts_with("jobs:working:")),
        "{keys:?}"
    );
    assert_eq!(counter(&redis, "stat:processed").await, 20);
    assert_eq!(counter(&redis, "stat:failed").await, 0);
    let daily = format!("stat:processed:{}", Utc::now().format("%Y-%m-%d"));
    assert_eq!(counter(&redis, &daily).await, 20);
    let mut raw = redis.raw().await;
    let ttl: i64 = raw.ttl(&daily).await.unwrap();
    assert!(
        ttl > 4 * 365 * 24 * 3600,
        "daily counters are kept 5 years, ttl {ttl}"
    );
}

#[tokio::test]
async fn a_busy_worker_takes_a_queue_oldest_first_without_a_command_per_job() {
    let redis = TestRedis::start();
    let client = redis.client();
    let labels = push_records(&client, 500).await;
    let log = CallLog::default();
    worker(&redis, &log).concurrency(1).drain().await.unwrap();

    assert_eq!(log.entries(), labels, "oldest first, each once");
    // Each fetch round takes a queue's batch with one RPOP of a count and pushes the round's jobs
    // with one LPUSH (one LMOVE a job before).
    assert_eq!(redis.calls("lmove").await, 0, "no job moved one at a time");
}

#[tokio::test]
async fn a_busy_worker_acknowledges_most_jobs_by_trimming_its_working_list() {
    let redis = TestRedis::start();
    let client = redis.client();
    let labels = push_records(&client, 2_000).await;
    drain_busy(&redis, &labels).await;

    assert_eq!(counter(&redis, "stat:processed").await, 2_000);
    // Finished jobs sit together at the working list's tail: a round's acknowledgements take
    // them off with one trim (`ack.lua`), not one LREM a job.
    let removed_one_by_one = redis.calls("lrem").await;
    assert!(
        removed_one_by_one < 1_000,
        "{removed_one_by_one} of 2,000 jobs taken off one LREM at a time"
    );
}

#[tokio::test]
async fn a_busy_worker_takes_big_jobs_off_one_lrem_each_and_small_ones_by_trimming() {
    let redis = TestRedis::start();
    let client = redis.client();
    // Alternating: a small job, then one of about 2 KB.
    let labels: Vec<String> = (0..500)
        .map(|n| match n % 2 {
            0 => format!("job {n}"),
            _ => format!("job {n} {}", "x".repeat(2_000)),
        })
        .collect();
    client
        .perform_bulk(labels.iter().map(|label| Record {
            label: label.clone(),
        }))
        .await
        .unwrap();
    drain_busy(&redis, &labels).await;

    // A big job never enters the acknowledgement script, where Redis's Lua would hash each of
    // its bytes twice: it is taken off by an `LREM` of its own. The small ones between them
    // are still trimmed off the tail together, mostly.
    let removed_one_by_one = redis.calls("lrem").await;
    assert!(
        (250..250 + 125).contains(&removed_one_by_one),
        "{removed_one_by_one} LREMs for 250 big jobs and 250 small ones"
    );
}

#[tokio::test]
async fn strict_order_drains_earlier_queues_first() {
    let redis = TestRedis::start();
    let client = redis.client();
    push_low_and_high(&client, 5).await;
    let log = CallLog::default();
    worker(&redis, &log)
        .queues(["high", "default"])
        .concurrency(1)
        .drain()
        .await
        .unwrap();
    let ran = log.entries();
    let expected: Vec<String> = (0..5)
        .map(|n| format!("high {n}"))
        .chain((0..5).map(|n| format!("low {n}")))
        .collect();
    assert_eq!(ran, expected);
}

/// Drains 300 high jobs and 300 low ones with a weighted worker (`high` 3, `default` 1) of
/// this concurrency, checks that about three high jobs ran for each low one among the first 200,
/// and returns how many scripts Redis ran meanwhile (`EVALSHA`: the fetch rounds).
async fn drain_three_to_one(concurrency: usize) -> u64 {
    let redis = TestRedis::start();
    push_high_then_low(&redis.client(), 300).await;
    let before = redis.calls("evalsha").await;
    let log = CallLog::default();
    worker(&redis, &log)
        .weighted_queues([
            QueueSpec::weighted("high", 3),
            QueueSpec::weighted("default", 1),
        ])
        .concurrency(concurrency)
        .drain()
        .await
        .unwrap();
    let calls = redis.calls("evalsha").await - before;
    let ran = log.entries();
    assert_eq!(ran.len(), 600);
    let high_first = highs(&ran[..200]);
    // Weight 3 against 1: 150 of the first 200 expected; 120..=180 is five standard deviations.
    assert!(
        (120..=180).contains(&high_first),
        "{high_first} of the first 200 were high"
    );
    calls
}

#[tokio::test]
async fn weighted_order_takes_queues_in_proportion() {
    drain_three_to_one(1).await;
}

#[tokio::test]
async fn a_busy_weighted_worker_takes_ahead_and_keeps_the_weights() {
    // Each job of a round is drawn a queue of its own, so a weighted worker takes batches as a
    // strict one does (one fetch round for many jobs: 63 script calls for these 600 jobs when
    // it took only its free slots) and still runs about three high jobs for each low one while
    // both queues hold jobs (batches in one shuffle's order, taken ahead, ran whole batches from
    // one queue).
    let calls = drain_three_to_one(10).await;
    assert!(calls < 40, "{calls} script calls for 600 jobs");
}

#[tokio::test]
async fn a_worker_on_a_thousand_weighted_queues_runs_every_queues_jobs_once() {
    let redis = TestRedis::start();
    let client = redis.client();
    let mut expected = Vec::new();
    for queue in ["q0", "q499", "q999"] {
        let labels: Vec<String> = (0..5).map(|n| format!("{queue} {n}")).collect();
        Record::set()
            .client(&client)
            .queue(queue)
            .perform_bulk(labels.iter().map(|label| Record {
                label: label.clone(),
            }))
            .await
            .unwrap();
        expected.extend(labels);
    }
    let log = CallLog::default();
    worker(&redis, &log)
        .weighted_queues((0..1_000u32).map(|n| QueueSpec::weighted(format!("q{n}"), 1 + n % 3)))
        .concurrency(4)
        .drain()
        .await
        .unwrap();
    let mut ran = log.entries();
    ran.sort();
    expected.sort();
    assert_eq!(ran, expected, "each job of each queue ran exactly once");
    for queue in ["q0", "q499", "q999"] {
        assert!(redis.queue(queue).await.is_empty(), "{queue} left jobs");
    }
}

#[tokio::test]
async fn a_weighted_worker_with_jobs_in_one_of_a_hundred_queues_looks_first_where_they_are() {
    // Weighted rounds on more than 32 queues may first look at a few of them alone: the first
    // 32 of the round's order, the queues its jobs were drawn to, and those known to hold jobs
    // (the last look at all names them). With jobs in one queue of a hundred, the first two find
    // them less than half the time, and a first look that falls short costs a second script
    // call; the last finds them every time once a look at all has named it: about one call a
    // fetch. At concurrency 1 a fetch wants 20 jobs (`TestRedis::fetch_script_calls` counts the
    // script's calls).
    let redis = TestRedis::start();
    let client = redis.client();
    let labels: Vec<String> = (0..3_000).map(|n| format!("only {n}")).collect();
    Record::set()
        .client(&client)
        .queue("q99")
        .perform_bulk(labels.iter().map(|label| Record {
            label: label.clone(),
        }))
        .await
        .unwrap();
    let before = redis.fetch_script_calls().await;
    let log = CallLog::default();
    worker(&redis, &log)
        .weighted_queues((0..100u32).map(|n| QueueSpec::weighted(format!("q{n}"), 1)))
        .concurrency(1)
        .drain()
        .await
        .unwrap();
    assert_ran_once(&log, &labels);
    let calls = redis.fetch_script_calls().await - before;
    let per_fetch = calls as f64 / (3_000.0 / 20.0);
    assert!(
        per_fetch < 1.15,
        "{per_fetch:.2} fetch script calls a fetch of 20 jobs"
    );
}

#[tokio::test]
async fn a_weighted_worker_on_a_thousand_queues_sends_few_keys_while_its_jobs_wait_in_one() {
    // A first look that also asks the queues known to hold jobs finds them there: with every
    // job in one queue of a thousand, Redis reads about a hundred queue keys a round, not
    // 1,000, where first looks found the jobs only when a round drew their queue.
    let queues: Vec<String> = (0..1_000)
        .map(|n| format!("weighted-queue-with-a-rather-long-name-{n:04}"))
        .collect();
    let (a_round, all_keys) = bytes_a_round(&queues, 500, |worker| {
        worker.weighted_queues(
            queues
                .iter()
                .map(|queue| QueueSpec::weighted(queue.clone(), 1)),
        )
    })
    .await;
    // A round over all the queues sends `all_keys` bytes (56 KB); a first look about 6 KB,
    // and the acknowledgements about 16 KB a round: about 22 KB. The bound leaves room for a
    // slow build, which sends a look at all every second besides (after 1.15 × `all_keys` a
    // round without first looks).
    assert!(
        a_round < all_keys * 3 / 5,
        "Redis read {a_round} bytes a fetch round, where all the queues' keys are {all_keys}"
    );
}

#[tokio::test]
async fn a_weighted_worker_on_a_thousand_queues_switches_between_its_two_busy_ones() {
    // Two queues of the same weight hold jobs among 1,000 empty ones. A round takes what its
    // drawn queues lack from whichever of the two comes first in its weighted order: about
    // every other round switches (a round is 20 jobs at concurrency 1, so about 50 switches in
    // the first 2,000 jobs). First looks ask both, the queues the last look at all found
    // holding jobs; asking only the one the last fetch took from, a worker kept to it and
    // switched only when a round happened to draw the other or put it among its first 32.
    let redis = TestRedis::start();
    let client = redis.client();
    let queues: Vec<String> = (0..1_000).map(|n| format!("q{n}")).collect();
    let a = push_labelled(&client, &queues[300], 2_000).await;
    let b = push_labelled(&client, &queues[700], 2_000).await;
    let log = CallLog::default();
    worker(&redis, &log)
        .weighted_queues(
            queues
                .iter()
                .map(|queue| QueueSpec::weighted(queue.clone(), 1)),
        )
        .concurrency(1)
        .drain()
        .await
        .unwrap();
    let ran = log.entries();
    let mut expected: Vec<String> = a.into_iter().chain(b).collect();
    let mut sorted = ran.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "each job ran once");
    let queue_of = |label: &String| label.split(' ').next().unwrap_or_default().to_owned();
    let switches = ran[..2_000]
        .windows(2)
        .filter(|pair| queue_of(&pair[0]) != queue_of(&pair[1]))
        .count();
    assert!(
        switches >= 25,
        "{switches} switches between the two busy queues in the first 2,000 jobs"
    );
}

/// Pushes `Record` jobs labelled `<queue> 0`, `<queue> 1`… to `queue`; their labels.
async fn push_labelled(client: &jobs::Client, queue: &str, n: usize) -> Vec<String> {
    let labels: Vec<String> = (0..n).map(|n| format!("{queue} {n}")).collect();
    push_labels_to(client, queue, &labels).await;
    labels
}

#[tokio::test]
async fn a_strict_worker_on_a_thousand_queues_sends_only_those_up_to_its_jobs() {
    // In strict order a round takes from the queues in order until it has its jobs, so a round
    // over the first queues takes what one over all would whenever it fills. A busy strict
    // worker asks the queues up to the furthest its last fetch took from, and 32 more: with
    // every job in the first queue, Redis reads 33 queue keys a round, not 1,000.
    let queues: Vec<String> = (0..1_000)
        .map(|n| format!("strict-order-queue-with-a-rather-long-name-{n:04}"))
        .collect();
    let (a_round, all_keys) =
        bytes_a_round(&queues, 0, |worker| worker.queues(queues.iter().cloned())).await;
    // Every round over all the queues would have sent `all_keys` bytes (60 KB); a round over
    // the first 33 sends about 2 KB, and the acknowledgements about 16 KB a round (at most 40
    // jobs a round: at least 50 rounds).
    assert!(
        a_round < all_keys / 2,
        "Redis read {a_round} bytes a fetch round, where all the queues' keys are {all_keys}"
    );
}

/// Drains 2,000 jobs pushed to `queues[busy]` with a worker (concurrency 10) that `order`
/// gives its queues; returns what Redis read a fetch round, in bytes, and what one round over
/// all of `queues` sends of their list keys alone (`$<len>\r\n<key>\r\n`).
async fn bytes_a_round(
    queues: &[String],
    busy: usize,
    order: impl FnOnce(jobs::Worker) -> jobs::Worker,
) -> (u64, u64) {
    let redis = TestRedis::start();
    let labels: Vec<String> = (0..2_000).map(|n| format!("j{n}")).collect();
    push_labels_to(&redis.client(), &queues[busy], &labels).await;
    let all_keys: u64 = queues
        .iter()
        .map(|queue| {
            let key = format!("queue:{queue}");
            (key.len() + key.len().to_string().len() + 5) as u64
        })
        .sum();
    let (calls, bytes) = (redis.fetch_script_calls().await, redis.bytes_in().await);
    let log = CallLog::default();
    order(worker(&redis, &log))
        .concurrency(10)
        // One beat in the drain: each names the 1,000 queues three times (150 KB), and a drain
        // slowed by a busy machine would count more of them.
        .heartbeat(Duration::from_secs(60), Duration::from_secs(180))
        .drain()
        .await
        .unwrap();
    assert_ran_once(&log, &labels);
    let calls = redis.fetch_script_calls().await - calls;
    let bytes = redis.bytes_in().await - bytes;
    (bytes / calls.max(1), all_keys)
}

#[tokio::test]
async fn a_strict_worker_looking_at_its_first_queues_still_takes_the_later_ones_in_order() {
    // A strict first look that falls short is followed by a look at all the queues: the jobs
    // of a queue past those a first look asks run, and only once the earlier queues are empty.
    let redis = TestRedis::start();
    let client = redis.client();
    let queues: Vec<String> = (0..100).map(|n| format!("q{n}")).collect();
    let first = push_labelled(&client, "q0", 200).await;
    let later = push_labelled(&client, "q60", 30).await;
    let last = push_labelled(&client, "q99", 5).await;
    let log = CallLog::default();
    worker(&redis, &log)
        .queues(queues)
        .concurrency(1)
        .drain()
        .await
        .unwrap();
    let ran = log.entries();
    let expected: Vec<String> = first.into_iter().chain(later).chain(last).collect();
    assert_eq!(ran, expected, "strict order, oldest first in each queue");
}

#[tokio::test]
async fn a_worker_on_ten_thousand_queues_takes_the_jobs_of_the_last() {
    let redis = TestRedis::start();
    let client = redis.client();
    let labels: Vec<String> = (0..5).map(|n| format!("last {n}")).collect();
    Record::set()
        .client(&client)
        .queue("q9999")
        .perform_bulk(labels.iter().map(|label| Record {
            label: label.clone(),
        }))
        .await
        .unwrap();
    let log = CallLog::default();
    // Each fetch asks for the paused state of all 10,000 queues in one step.
    let drained = tokio::time::timeout(
        Duration::from_secs(60),
        worker(&redis, &log)
            .queues((0..10_000u32).map(|n| format!("q{n}")))
            .concurrency(2)
            .drain(),
    )
    .await;
    assert!(
        matches!(drained, Ok(Ok(()))),
        "the worker took no job from 10,000 queues: {drained:?}"
    );
    assert_eq!(log.entries(), labels);
}

#[tokio::test]
async fn no_more_jobs_run_at_once_than_the_concurrency() {
    let redis = TestRedis::start();
    redis
        .client()
        .perform_bulk((0..12).map(|_| MeasureConcurrency { millis: 60 }))
        .await
        .unwrap();
    let gauge = Gauge::default();
    worker(&redis, &CallLog::default())
        .state(gauge.clone())
        .concurrency(3)
        .drain()
        .await
        .unwrap();
    assert_eq!(
        gauge.most.load(Ordering::SeqCst),
        3,
        "the most running at once"
    );
    assert_eq!(counter(&redis, "stat:processed").await, 12);
}

#[tokio::test]
async fn an_idle_worker_waits_without_polling_and_wakes_on_a_push() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log).poll_interval(Duration::from_secs(60)));
    // Idle for 3 s: the fetcher blocks in BLMOVE (2 s each) instead of polling.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fetches = redis.calls("evalsha").await + redis.calls("eval").await;
    let blocks = redis.calls("blmove").await;
    assert!(blocks <= 3, "{blocks} BLMOVEs in 3 s");
    assert!(fetches <= 4, "{fetches} fetch scripts in 3 s");

    redis
        .client()
        .perform_async(Record {
            label: "wake".into(),
        })
        .await
        .unwrap();
    eventually(
        Duration::from_secs(1),
        "the pushed job to run",
        async || log.entries() == ["wake"],
    )
    .await;
    running.stop(Duration::from_secs(5)).await;
    assert!(redis.queue("default").await.is_empty());
}

#[tokio::test]
async fn an_idle_worker_stops_without_waiting_out_its_blocking_fetch() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log));
    // The first BLMOVE has just begun its 2 s block.
    eventually(
        Duration::from_secs(5),
        "the worker to wait for jobs",
        async || blocked_clients(&redis).await == 1,
    )
    .await;
    let asked = std::time::Instant::now();
    running.stop(Duration::from_secs(5)).await;
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "stopping an idle worker took {took:?}: it waited out its BLMOVE"
    );
    assert_eq!(blocked_clients(&redis).await, 0);
}

#[tokio::test]
async fn where_redis_refuses_client_unblock_the_worker_still_stops_cleanly() {
    let redis = TestRedis::start();
    let client = redis.client_as("worker", "-client|unblock").await;
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log).client(&client));
    eventually(
        Duration::from_secs(5),
        "the worker to wait for jobs",
        async || blocked_clients(&redis).await == 1,
    )
    .await;
    // The BLMOVE runs out its 2 s block instead; the stop still ends well inside its limit.
    running.stop(Duration::from_secs(4)).await;
    let keys = redis.keys().await;
    assert!(
        !keys.iter().any(|key| key.starts_with("jobs:working:")),
        "{keys:?}"
    );
    let processes: Vec<String> = redis.raw().await.smembers("processes").await.unwrap();
    assert!(
        processes.is_empty(),
        "the heartbeat is cleared: {processes:?}"
    );
}

/// How many clients wait in a blocking command (`INFO clients`).
async fn blocked_clients(redis: &TestRedis) -> u64 {
    clients_info(redis, "blocked_clients").await
}

/// One count of `INFO clients`: `blocked_clients`, `connected_clients`…
async fn clients_info(redis: &TestRedis, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut redis.raw().await)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in INFO clients"))
}

#[tokio::test]
async fn an_idle_worker_on_a_hundred_queues_holds_a_few_connections_and_wakes_on_any() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    // The ten heaviest come last in the list: those are waited on, then the first six.
    let queues = (0..100u32).map(|n| QueueSpec::weighted(format!("q{n}"), 1 + n / 90));
    let running = RunningWorker::start(worker(&redis, &log).weighted_queues(queues));
    eventually(
        Duration::from_secs(5),
        "the worker to wait for jobs",
        async || blocked_clients(&redis).await == 16,
    )
    .await;
    // Past a renewal of every wait (2 s), and several looks at all the queues.
    let mut most_blocked = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        most_blocked = most_blocked.max(blocked_clients(&redis).await);
    }
    assert_eq!(
        most_blocked, 16,
        "the most waits of an idle worker on 100 queues"
    );
    let connected = clients_info(&redis, "connected_clients").await;
    println!("idle on 100 queues: {connected} connected clients");
    // The waits, the shared connection, the liveness thread's, and this test's own.
    assert!(
        connected <= 16 + 6,
        "an idle worker on 100 queues holds {connected} connections"
    );
    let client = redis.client();
    // A push to a queue waited on wakes the worker at once; one to another queue is found by
    // the next look at them all (every 500 ms). Nine pushes to `q99`: most run within 150 ms
    // (were `q99` only looked at, each would have about a chance in three to, and six of nine
    // about one in forty), a slow moment of the machine allowed for.
    let run_after_push = async |queue: &str, label: String| {
        let started = std::time::Instant::now();
        Record::set()
            .client(&client)
            .queue(queue)
            .perform_async(Record {
                label: label.clone(),
            })
            .await
            .unwrap();
        eventually(
            Duration::from_secs(2),
            &format!("the job pushed to {queue} to run"),
            async || log.entries().contains(&label),
        )
        .await;
        started.elapsed()
    };
    let mut fast = 0;
    for n in 0..9 {
        let took = run_after_push("q99", format!("heavy {n}")).await;
        println!("q99: ran {took:?} after its push");
        fast += usize::from(took < Duration::from_millis(150));
    }
    assert!(
        fast >= 6,
        "{fast} of 9 jobs pushed to the waited queue ran within 150 ms"
    );
    let took = run_after_push("q50", "light".to_owned()).await;
    println!("q50: ran {took:?} after its push");
    running.stop(Duration::from_secs(5)).await;
    assert_eq!(blocked_clients(&redis).await, 0);
    assert!(redis.queue("q50").await.is_empty());
}

#[tokio::test]
async fn an_idle_worker_on_many_queues_still_sweeps_its_working_list_after_a_lost_reply() {
    let redis = TestRedis::start();
    let log = CallLog::default();
    let running =
        RunningWorker::start(worker(&redis, &log).queues((0..20u32).map(|n| format!("q{n}"))));
    eventually(
        Duration::from_secs(5),
        "the worker to wait for jobs",
        async || blocked_clients(&redis).await == 16,
    )
    .await;
    let mut raw = redis.raw().await;
    let identities: Vec<String> = raw.smembers("processes").await.unwrap();
    let [identity] = identities.as_slice() else {
        panic!("one process: {identities:?}")
    };
    // A job in the working list that the worker does not hold, as one whose fetch reply was
    // lost would be; then one wait's connection broken, which owes a sweep.
    let job = serde_json::json!({
        "class": "Record", "args": ["swept"], "queue": "q3", "retry": true,
        "jid": "0123456789abcdef01234567",
    })
    .to_string();
    let _: () = raw
        .lpush(format!("jobs:working:{identity}"), &job)
        .await
        .unwrap();
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();
    let waiting = clients
        .lines()
        .find(|line| line.contains("cmd=blmove"))
        .and_then(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")))
        .expect("a client waiting in BLMOVE")
        .to_owned();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&waiting)
        .query_async(&mut raw)
        .await
        .unwrap();
    // The sweep runs once the waits still going have ended (2 s), even with waits restarted
    // every 500 ms for the queues past the 16th.
    eventually(
        Duration::from_secs(8),
        "the job left in the working list to run",
        async || log.entries() == ["swept"],
    )
    .await;
    running.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn shutdown_hands_unfinished_jobs_back_unchanged() {
    let redis = TestRedis::start();
    let client = redis.client();
    client.perform_async(Slow { millis: 50 }).await.unwrap();
    client.perform_async(Slow { millis: 30_000 }).await.unwrap();
    let mut raw = redis.raw().await;
    let pushed: Vec<String> = raw.lrange("queue:default", 0, -1).await.unwrap();
    let long_job = pushed[0].clone();

    let log = CallLog::default();
    let running = RunningWorker::start(
        worker(&redis, &log)
            .concurrency(2)
            .timeout(Duration::from_millis(500)),
    );
    eventually(Duration::from_secs(5), "both jobs to start", async || {
        log.entries().contains(&"finished 50".to_owned())
            && log.entries().contains(&"started 30000".to_owned())
    })
    .await;
    // Within the 0.5 s timeout plus the idle BLMOVEs' 2 s.
    running.stop(Duration::from_secs(5)).await;

    let left: Vec<String> = raw.lrange("queue:default", 0, -1).await.unwrap();
    assert_eq!(left, [long_job], "the long job is back, byte for byte");
    assert!(!log.entries().contains(&"finished 30000".to_owned()));
    let keys = redis.keys().await;
    assert!(
        !keys.iter().any(|key| key.starts_with("jobs:working:")),
        "{keys:?}"
    );
    assert_eq!(counter(&redis, "stat:processed").await, 1);
}

#[tokio::test]
async fn jobs_that_wake_an_idle_worker_respect_the_concurrency_too() {
    let redis = TestRedis::start();
    let gauge = Gauge::default();
    let running = RunningWorker::start(
        worker(&redis, &CallLog::default())
            .state(gauge.clone())
            .concurrency(2),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = redis.client();
    for _ in 0..8 {
        client
            .perform_async(MeasureConcurrency { millis: 150 })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eventually(
        Duration::from_secs(5),
        "all eight jobs to run",
        async || gauge.finished.load(Ordering::SeqCst) == 8,
    )
    .await;
    running.stop(Duration::from_secs(5)).await;
    assert_eq!(counter(&redis, "stat:processed").await, 8);
    assert_eq!(
        gauge.most.load(Ordering::SeqCst),
        2,
        "the most running at once"
    );
}

#[tokio::test]
async fn quiet_hands_back_the_jobs_taken_ahead_and_keeps_the_running_ones() {
    let redis = TestRedis::start();
    let client = redis.client();
    client
        .perform_bulk((0..60).map(|_| Slow { millis: 2_000 }))
        .await
        .unwrap();
    let log = CallLog::default();
    let running = RunningWorker::start(worker(&redis, &log).concurrency(2));
    eventually(Duration::from_secs(10), "two jobs to start", async || {
        log.entries().len() == 2
    })
    .await;
    assert!(
        redis.queue("default").await.len() < 58,
        "the worker took jobs ahead of its free slots"
    );
    let process = jobs::api::ProcessSet::new(&client)
        .list()
        .await
        .unwrap()
        .remove(0);
    process.quiet().await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the jobs taken ahead to go back",
        async || redis.queue("default").await.len() == 58,
    )
    .await;
    let working = format!("jobs:working:{}", process.identity);
    let held: usize = redis.raw().await.llen(&working).await.unwrap();
    assert_eq!(held, 2, "only the running jobs stay in the working list");
    running.stop(Duration::from_secs(10)).await;
    assert_eq!(
        log.entries()
            .iter()
            .filter(|e| e.starts_with("finished"))
            .count(),
        2
    );
    assert_eq!(
        redis.queue("default").await.len(),
        58,
        "no job ran twice or was lost"
    );
}

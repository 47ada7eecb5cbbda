//! The fetch script's report of the queues holding jobs (`jobs-runtime/src/redis/scripts/
//! fetch.lua`, section 7 of its reply), called directly on a real Redis: what a weighted
//! worker's first looks ask besides the first of each round's order.

use redis::AsyncCommands;

use crate::support::TestRedis;

const FETCH: &str = include_str!("../../jobs-runtime/src/redis/scripts/fetch.lua");

/// Calls the fetch script on the lists of `queues` through `connection`, wanting `wanted` jobs
/// and asking for at most `report` holders; the holders section of its reply.
async fn holders_through(
    connection: &mut redis::aio::MultiplexedConnection,
    queues: &[String],
    wanted: usize,
    report: usize,
) -> Vec<u64> {
    let script = redis::Script::new(FETCH);
    let mut invocation = script.prepare_invoke();
    invocation
        .key("jobs:working:test")
        .key("jobs:workers")
        .key("paused")
        .key("jobs:caps");
    for queue in queues {
        invocation.key(format!("queue:{queue}"));
    }
    invocation
        .arg(wanted)
        .arg("test")
        .arg(wanted)
        .arg(1)
        .arg(60_000)
        .arg("")
        .arg("queue:")
        .arg("")
        .arg(report);
    let reply: Vec<redis::Value> = invocation.invoke_async(connection).await.unwrap();
    redis::from_redis_value(reply[6].clone()).unwrap()
}

/// [`holders_through`] a connection of the default user.
async fn holders(redis: &TestRedis, queues: &[String], wanted: usize, report: usize) -> Vec<u64> {
    holders_through(&mut redis.raw().await, queues, wanted, report).await
}

#[tokio::test]
async fn a_fetch_names_the_queues_holding_jobs_after_it_paused_ones_left_out() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let queues: Vec<String> = (0..100).map(|n| format!("q{n}")).collect();
    for (queue, jobs) in [("q5", 3), ("q40", 2), ("q70", 1), ("q99", 1)] {
        for n in 0..jobs {
            let job = format!("{{\"class\":\"A\",\"jid\":\"{queue}-{n}\"}}");
            let _: () = raw.lpush(format!("queue:{queue}"), job).await.unwrap();
        }
    }
    let _: () = raw.sadd("paused", "q40").await.unwrap();
    // Not a list: no queue to ask again, but a key all the same.
    let _: () = raw.set("queue:q80", "not a list").await.unwrap();
    // One job taken, from q5 (first in order): q5, q70 and q99 still hold jobs (positions
    // from 1); q40 does too, but it is paused.
    assert_eq!(holders(&redis, &queues, 1, 32).await, [6, 71, 100]);
    // Four keys (q80's counted) where three are asked for: more than asked, `[0]`.
    assert_eq!(holders(&redis, &queues, 0, 3).await, [0]);
    assert_eq!(holders(&redis, &queues, 0, 4).await, [6, 71, 100]);
    // Asking for none: none named.
    assert!(holders(&redis, &queues, 0, 0).await.is_empty());
    // A fetch that falls short took everything it could: nothing holds jobs it could take.
    assert!(holders(&redis, &queues, 100, 32).await.is_empty());
    let left: usize = raw.llen("queue:q40").await.unwrap();
    assert_eq!(left, 2, "the paused queue keeps its jobs");
}

#[tokio::test]
async fn a_fetch_whose_push_is_refused_names_the_queues_it_put_back() {
    // The jobs a fetch took go back to their queues when the push onto the working list is
    // refused (an ACL here): the queues hold them again, though the fetch took fewer than it
    // wanted, so it names them rather than only the capped queues.
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let queues: Vec<String> = (0..40).map(|n| format!("q{n}")).collect();
    for queue in ["q1", "q3"] {
        let _: () = raw
            .lpush(format!("queue:{queue}"), format!("{{\"jid\":\"{queue}\"}}"))
            .await
            .unwrap();
    }
    // Every key and command but `LPUSH`, the push onto the working list.
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER", "pushless", "on", ">secret", "~*", "&*", "+@all", "-lpush",
        ])
        .query_async(&mut raw)
        .await
        .unwrap();
    let url = format!("redis://pushless:secret@127.0.0.1:{}/0", redis.port());
    let mut pushless = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(
        holders_through(&mut pushless, &queues, 100, 32).await,
        [2, 4]
    );
    let working: usize = raw.llen("jobs:working:test").await.unwrap();
    assert_eq!(working, 0, "no job taken");
}

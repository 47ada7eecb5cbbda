//! The start/end ledger the cap tests' jobs write into Redis (`RPUSH` to a list of the test's
//! own, so Redis orders the events of every process): `start|<group>|<jid>|<pid>` once a job
//! runs and `end|<group>|<jid>|<pid>` before it returns; the test adds `kill|<pid>` right after
//! a `kill -9`. A group is what the test caps: a queue (`caps`), a job class (`class_caps`).
//! The jobs that write it stay in each test module; this reads it, and the figures from it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use super::{ChildWorker, TestRedis};

/// The connections jobs write ledgers through, one per Redis URL (a `#[state]` would have to be
/// given to every other test's worker too).
static WRITERS: tokio::sync::Mutex<Option<HashMap<String, MultiplexedConnection>>> =
    tokio::sync::Mutex::const_new(None);

/// What a job of a cap test does: writes `start|<group>|<jid>|<pid>` to the list `events` of the
/// Redis at `url`, waits `millis`, writes `end|…`.
pub async fn record(url: &str, events: &str, group: &str, jid: &str, millis: u64) {
    let mut conn = {
        let mut writers = WRITERS.lock().await;
        let writers = writers.get_or_insert_with(HashMap::new);
        match writers.get(url) {
            Some(conn) => conn.clone(),
            None => {
                let client = redis::Client::open(url).expect("a Redis URL");
                let conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("a connection");
                writers.insert(url.to_owned(), conn.clone());
                conn
            }
        }
    };
    let tail = format!("{group}|{jid}|{}", std::process::id());
    let _: () = conn.rpush(events, format!("start|{tail}")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(millis)).await;
    let _: () = conn.rpush(events, format!("end|{tail}")).await.unwrap();
}

/// What the ledger says, by group.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The most jobs of each group running at once.
    pub peak: HashMap<String, usize>,
    /// How many times each jid of each group ended.
    pub ends: HashMap<String, HashMap<String, usize>>,
    /// The position of each group's first start, last start and last end event.
    pub first_start: HashMap<String, usize>,
    pub last_start: HashMap<String, usize>,
    pub last_end: HashMap<String, usize>,
    /// How many jobs of each group started in each process.
    pub starts_in: HashMap<String, HashMap<u32, usize>>,
    /// The most jobs of each group running at once at a start after a `kill` event.
    pub peak_after_kill: HashMap<String, usize>,
    /// The position of each group's first start after a `kill` event.
    pub first_start_after_kill: HashMap<String, usize>,
}

impl Ledger {
    /// Reads the ledger the jobs wrote to the Redis list `events`.
    pub async fn read(redis: &TestRedis, events: &str) -> Self {
        let mut raw = redis.raw().await;
        let events: Vec<String> = raw.lrange(events, 0, -1).await.unwrap();
        let mut ledger = Self::default();
        // The jobs of each group running: (jid, pid).
        let mut open: HashMap<String, HashSet<(String, String)>> = HashMap::new();
        let mut killed = false;
        for (position, event) in events.iter().enumerate() {
            let parts: Vec<&str> = event.split('|').collect();
            match parts.as_slice() {
                ["start", group, jid, pid] => {
                    let group = (*group).to_owned();
                    let running = open.entry(group.clone()).or_default();
                    running.insert(((*jid).to_owned(), (*pid).to_owned()));
                    let now = running.len();
                    let peak = ledger.peak.entry(group.clone()).or_default();
                    *peak = (*peak).max(now);
                    ledger.first_start.entry(group.clone()).or_insert(position);
                    ledger.last_start.insert(group.clone(), position);
                    *ledger
                        .starts_in
                        .entry(group.clone())
                        .or_default()
                        .entry(pid.parse().unwrap())
                        .or_default() += 1;
                    if killed {
                        let after = ledger.peak_after_kill.entry(group.clone()).or_default();
                        *after = (*after).max(now);
                        ledger
                            .first_start_after_kill
                            .entry(group)
                            .or_insert(position);
                    }
                }
                ["end", group, jid, pid] => {
                    if let Some(running) = open.get_mut(*group) {
                        running.remove(&((*jid).to_owned(), (*pid).to_owned()));
                    }
                    *ledger
                        .ends
                        .entry((*group).to_owned())
                        .or_default()
                        .entry((*jid).to_owned())
                        .or_default() += 1;
                    ledger.last_end.insert((*group).to_owned(), position);
                }
                ["kill", pid] => {
                    // Its jobs stopped running with it.
                    for running in open.values_mut() {
                        running.retain(|(_, owner)| owner != pid);
                    }
                    killed = true;
                }
                other => panic!("an unknown ledger event {other:?}"),
            }
        }
        ledger
    }

    /// The jids of `group` that ended.
    pub fn done(&self, group: &str) -> HashSet<String> {
        self.ends
            .get(group)
            .map(|ends| ends.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether a job of `group` started in the process `pid`.
    pub fn started_in(&self, group: &str, pid: u32) -> bool {
        self.starts_in
            .get(group)
            .is_some_and(|pids| pids.contains_key(&pid))
    }

    /// The index in `workers` of a process a job of `group` started in, if any.
    pub fn worker_of(&self, group: &str, workers: &[ChildWorker]) -> Option<usize> {
        workers
            .iter()
            .position(|worker| self.started_in(group, worker.pid()))
    }
}

/// Asserts that at least one run in `events` (a ledger's raw list) was cut short: more
/// `start|` records than `end|` records.
pub fn assert_some_run_cut_short(events: &[String]) {
    let starts = events.iter().filter(|e| e.starts_with("start|")).count();
    let ends = events.iter().filter(|e| e.starts_with("end|")).count();
    assert!(
        starts > ends,
        "no run was cut short ({starts} starts, {ends} ends)"
    );
}

/// `kill -9` of `worker`, then its `kill` event in the ledger `events`; returns when it was
/// killed.
pub async fn kill9(redis: &TestRedis, events: &str, worker: &mut ChildWorker) -> Instant {
    let pid = worker.pid();
    worker.kill9();
    let killed_at = Instant::now();
    let mut raw = redis.raw().await;
    let _: () = raw.rpush(events, format!("kill|{pid}")).await.unwrap();
    killed_at
}

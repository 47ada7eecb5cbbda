//! An app under steady load during a failover: a task pushing one short job after another,
//! recording which pushes were acknowledged, which reached a master, and which failed (the
//! Sentinel and Cluster failover tests).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobs::{Client, Error};

use super::jobs::Ledgered;

/// The jids a pushing task saw acknowledged, with when, and the pushes that failed.
#[derive(Default)]
pub struct Pushes {
    /// Each acknowledged push's jid, and when it was acknowledged.
    pub acknowledged: Vec<(String, Instant)>,
    /// When a push reached a master: acknowledged, or refused as not replicated.
    pub reached: Vec<Instant>,
    /// When a push failed, and its error.
    pub failed: Vec<(Instant, String)>,
    /// The failures a failover does not explain: neither refused as not replicated nor a
    /// connection or server error.
    pub unexpected: Vec<String>,
}

impl Pushes {
    /// The jids acknowledged.
    pub fn jids(&self) -> HashSet<String> {
        self.acknowledged
            .iter()
            .map(|(jid, _)| jid.clone())
            .collect()
    }

    /// The first push acknowledged after `moment`.
    pub fn first_after(&self, moment: Instant) -> Option<(String, Instant)> {
        self.acknowledged
            .iter()
            .find(|(_, at)| *at > moment)
            .cloned()
    }
}

/// An app pushing through a failover: a task pushing one short `Ledgered` job every few
/// milliseconds, one at a time, through a client that waits for a replica
/// (`wait_replicas(1, 500 ms)`), recording each outcome. A failed push is tried again 50 ms
/// later, as an app would; nothing it was told was kept is lost.
pub struct Pusher {
    /// What it saw so far.
    pushes: Arc<Mutex<Pushes>>,
    /// Set to end the task.
    stop: Arc<AtomicBool>,
    /// The pushing task.
    task: tokio::task::JoinHandle<()>,
}

impl Pusher {
    /// Starts pushing to `url`.
    pub fn start(url: &str) -> Self {
        let client = Client::builder()
            .url(url)
            .wait_replicas(1, Duration::from_millis(500))
            .build()
            .expect("a client of the deployment");
        let pushes = Arc::new(Mutex::new(Pushes::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(push(client, Arc::clone(&pushes), Arc::clone(&stop)));
        Self { pushes, stop, task }
    }

    /// What it saw so far.
    pub fn pushes(&self) -> std::sync::MutexGuard<'_, Pushes> {
        self.pushes.lock().unwrap()
    }

    /// Stops pushing, once the push under way has ended, and returns what it saw, having
    /// checked that no push failed in a way a failover does not explain.
    pub async fn stop(self) -> Pushes {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the pushing task");
        let pushes = std::mem::take(&mut *self.pushes.lock().unwrap());
        assert!(
            pushes.unexpected.is_empty(),
            "pushes failed unexpectedly: {:?}",
            pushes.unexpected
        );
        pushes
    }
}

/// The pushing task of a [`Pusher`].
async fn push(client: Client, pushes: Arc<Mutex<Pushes>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match client.perform_async(Ledgered { millis: 2 }).await {
            Ok(pushed) => {
                let mut pushes = pushes.lock().unwrap();
                pushes
                    .acknowledged
                    .push((pushed.to_string(), Instant::now()));
                pushes.reached.push(Instant::now());
            }
            Err(error) => {
                {
                    let mut pushes = pushes.lock().unwrap();
                    if matches!(error, Error::NotReplicated { .. }) {
                        pushes.reached.push(Instant::now());
                    }
                    if !matches!(
                        error,
                        Error::NotReplicated { .. } | Error::Connect { .. } | Error::Redis { .. }
                    ) {
                        pushes.unexpected.push(error.to_string());
                    }
                    pushes.failed.push((Instant::now(), error.to_string()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

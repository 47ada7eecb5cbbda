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

/// Pushes a short `Ledgered` job every few milliseconds until `stop`, one at a time, as an app
/// under steady load does, recording each outcome in `pushes`. A failed push is tried again
/// 50 ms later, as an app would; nothing it was told was kept is lost.
pub fn push_continuously(
    client: Client,
    pushes: Arc<Mutex<Pushes>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
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
                            Error::NotReplicated { .. }
                                | Error::Connect { .. }
                                | Error::Redis { .. }
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
    })
}

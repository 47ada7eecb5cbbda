//! Processes: every worker (Rust or Ruby) that beats in `processes`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::names::utf8_only;
use super::time;
use super::work::Work;
use crate::client::Client;
use crate::error::Error;

/// How long a signal waits in `<identity>-signals` for its process, as Sidekiq sets it.
const SIGNAL_TTL_SECONDS: u64 = 60;

/// Every live process, as Sidekiq's `Sidekiq::ProcessSet`.
#[derive(Debug, Clone)]
pub struct ProcessSet {
    client: Client,
}

impl ProcessSet {
    /// The processes in `client`'s Redis.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// Every process with a heartbeat, sorted by identity. Members of `processes` whose
    /// heartbeat expired are left out (and left in place: a read never writes).
    pub async fn list(&self) -> Result<Vec<Process>, Error> {
        let keys = self.client.keys();
        let identities: Vec<Vec<u8>> = self
            .client
            .redis()
            .command(redis::cmd("SMEMBERS").arg(keys.processes()))
            .await?;
        let mut identities = utf8_only(identities);
        identities.sort();
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for identity in &identities {
            pipeline.cmd("HMGET").arg(keys.process(identity)).arg(&[
                "info",
                "busy",
                "beat",
                "quiet",
                "rss",
                "rtt_us",
                "concurrency",
            ]);
        }
        // Each field is read as bytes and parsed on its own, so one odd value (not a number,
        // not UTF-8) shows as unknown or with its bad bytes replaced, instead of failing the
        // whole list.
        let rows: Vec<Vec<Option<Vec<u8>>>> = self.client.redis().query(&pipeline).await?;
        Ok(identities
            .into_iter()
            .zip(rows)
            .filter_map(|(identity, row)| {
                let field = |index: usize| {
                    let bytes = row.get(index)?.as_deref()?;
                    Some(String::from_utf8_lossy(bytes).into_owned())
                };
                let number = |index: usize| field(index).and_then(|text| text.parse::<u64>().ok());
                let mut info = match serde_json::from_str::<Value>(&field(0)?) {
                    Ok(Value::Object(info)) => info,
                    _ => Map::new(),
                };
                // Sidekiq 8 keeps the concurrency in its own field.
                if let Some(concurrency) = number(6) {
                    info.entry("concurrency").or_insert(concurrency.into());
                }
                Some(Process {
                    client: self.client.clone(),
                    identity,
                    info,
                    busy: number(1).unwrap_or(0),
                    beat: field(2)
                        .and_then(|text| text.parse::<f64>().ok())
                        .and_then(time::from_epoch_seconds),
                    quiet: field(3).as_deref() == Some("true"),
                    rss_kb: number(4),
                    rtt_us: number(5),
                })
            })
            .collect())
    }

    /// The process called `identity`, if it is alive.
    pub async fn get(&self, identity: &str) -> Result<Option<Process>, Error> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(|process| process.identity == identity))
    }

    /// Asks every process to stop taking new jobs; returns how many were asked.
    pub async fn quiet_all(&self) -> Result<usize, Error> {
        self.signal_all("TSTP").await
    }

    /// Asks every process to shut down; returns how many were asked.
    pub async fn stop_all(&self) -> Result<usize, Error> {
        self.signal_all("TERM").await
    }

    async fn signal_all(&self, signal: &str) -> Result<usize, Error> {
        let mut signalled = 0;
        for process in self.list().await? {
            // Sidekiq 8 refuses to stop a process embedded in another app; so does this.
            if signal == "TERM" && process.is_embedded() {
                continue;
            }
            process.signal(signal).await?;
            signalled += 1;
        }
        Ok(signalled)
    }
}

/// One process's last heartbeat, as Sidekiq's `Sidekiq::Process`.
#[derive(Debug, Clone)]
pub struct Process {
    client: Client,
    /// `hostname:pid:<hex>`: its name in `processes`.
    pub identity: String,
    /// The `info` JSON it wrote when it started (hostname, pid, tag, queues, concurrency…).
    pub info: Map<String, Value>,
    /// Jobs it was running at its last beat.
    pub busy: u64,
    /// Its last beat.
    pub beat: Option<DateTime<Utc>>,
    /// Whether it is quiet (takes no new jobs).
    pub quiet: bool,
    /// Its resident memory, in kilobytes.
    pub rss_kb: Option<u64>,
    /// Its last round trip to Redis, in microseconds.
    pub rtt_us: Option<u64>,
}

impl Process {
    fn text(&self, field: &str) -> Option<&str> {
        self.info.get(field)?.as_str()
    }

    /// Its host.
    pub fn hostname(&self) -> &str {
        self.text("hostname").unwrap_or_default()
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u64> {
        self.info.get("pid")?.as_u64()
    }

    /// Its tag (the app's name, usually).
    pub fn tag(&self) -> Option<&str> {
        self.text("tag").filter(|tag| !tag.is_empty())
    }

    /// Its labels.
    pub fn labels(&self) -> Vec<String> {
        strings(self.info.get("labels"))
    }

    /// The queues it takes jobs from, in order, with repeats for weights collapsed.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = strings(self.info.get("queues"));
        let mut seen = std::collections::HashSet::new();
        queues.retain(|queue| seen.insert(queue.clone()));
        queues
    }

    /// How many jobs it runs at once (every capsule's, added up).
    pub fn concurrency(&self) -> Option<u64> {
        self.info.get("concurrency")?.as_u64()
    }

    /// Its capsules (Sidekiq 7's pools of concurrency, each with its own queues), the default
    /// one first, from the `capsules` of its heartbeat (`jobs`, Sidekiq 8.0.9+). A process that
    /// lists none (Sidekiq 6, and 7.0 to 8.0.8, which name no capsule) shows as one capsule,
    /// `default`, with its concurrency and queues.
    pub fn capsules(&self) -> Vec<ProcessCapsule> {
        let queues = self.queues();
        let Some(Value::Object(capsules)) = self.info.get("capsules") else {
            return vec![ProcessCapsule {
                process: self.identity.clone(),
                name: "default".to_owned(),
                concurrency: self.concurrency(),
                mode: None,
                weights: queues.into_iter().map(|queue| (queue, 0)).collect(),
            }];
        };
        // The JSON's maps come back sorted: the process's `queues` list keeps the order of
        // each capsule's queues, the default capsule's first.
        let place = |queue: &str| queues.iter().position(|known| known == queue);
        let mut listed: Vec<ProcessCapsule> = capsules
            .iter()
            .map(|(name, capsule)| {
                let mut weights: Vec<(String, u32)> = match capsule.get("weights") {
                    Some(Value::Object(weights)) => weights
                        .iter()
                        .map(|(queue, weight)| {
                            let weight = weight.as_u64().unwrap_or(0);
                            (queue.clone(), u32::try_from(weight).unwrap_or(u32::MAX))
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                weights.sort_by_key(|(queue, _)| place(queue).unwrap_or(usize::MAX));
                ProcessCapsule {
                    process: self.identity.clone(),
                    name: name.clone(),
                    concurrency: capsule.get("concurrency").and_then(Value::as_u64),
                    mode: capsule
                        .get("mode")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    weights,
                }
            })
            .collect();
        listed.sort_by_key(|capsule| {
            let first = capsule.weights.first();
            (
                capsule.name != "default",
                first
                    .and_then(|(queue, _)| place(queue))
                    .unwrap_or(usize::MAX),
            )
        });
        listed
    }

    /// When it started.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        time::from_json(self.info.get("started_at")?)
    }

    /// Its version of Sidekiq or `jobs`, when it says.
    pub fn version(&self) -> Option<&str> {
        self.text("version")
    }

    /// Whether it runs embedded in another app (Sidekiq 8's `embedded`), which the dashboard
    /// cannot stop.
    pub fn is_embedded(&self) -> bool {
        self.info.get("embedded") == Some(&Value::Bool(true))
    }

    /// Whether it is shutting down or quiet (Sidekiq's `stopping?`).
    pub fn is_stopping(&self) -> bool {
        self.quiet
    }

    /// Asks it to stop taking new jobs (Sidekiq's `quiet!`, signal `TSTP`).
    pub async fn quiet(&self) -> Result<(), Error> {
        self.signal("TSTP").await
    }

    /// Asks it to finish its jobs and exit (Sidekiq's `stop!`, signal `TERM`).
    ///
    /// # Errors
    ///
    /// [`Error::EmbeddedProcess`] for a process embedded in another app, which that app must
    /// stop (as Sidekiq 8 refuses too); a Redis error when the signal cannot be written.
    pub async fn stop(&self) -> Result<(), Error> {
        if self.is_embedded() {
            return Err(Error::EmbeddedProcess {
                identity: self.identity.clone(),
            });
        }
        self.signal("TERM").await
    }

    async fn signal(&self, signal: &str) -> Result<(), Error> {
        let key = self.client.keys().process_signals(&self.identity);
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .lpush(&key, signal)
            .ignore()
            .expire(&key, SIGNAL_TTL_SECONDS as i64)
            .ignore();
        self.client.redis().query(&pipeline).await
    }
}

/// One capsule of a process, as its heartbeat describes it ([`Process::capsules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessCapsule {
    /// The process's identity.
    pub process: String,
    /// The capsule's name (`default` for the top-level queues).
    pub name: String,
    /// How many of its jobs run at once, when the heartbeat says.
    pub concurrency: Option<u64>,
    /// Sidekiq's name for its queue order (`strict`, `weighted`, `random`), when the heartbeat
    /// says.
    pub mode: Option<String>,
    /// Its queues with their weights, in its order.
    pub weights: Vec<(String, u32)>,
}

impl ProcessCapsule {
    /// Its queues, in its order.
    pub fn queues(&self) -> Vec<&str> {
        self.weights
            .iter()
            .map(|(queue, _)| queue.as_str())
            .collect()
    }

    /// How many of `work` (what [`WorkSet::list`](super::WorkSet::list) read) it runs: the
    /// jobs of its process from its queues.
    pub fn running(&self, work: &[Work]) -> usize {
        work.iter()
            .filter(|work| work.process == self.process)
            .filter(|work| self.weights.iter().any(|(queue, _)| *queue == work.queue))
            .count()
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

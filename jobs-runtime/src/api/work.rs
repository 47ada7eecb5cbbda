//! What runs now: each process's `<identity>:work` hash, as Sidekiq's `Sidekiq::WorkSet`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::process::{Process, ProcessSet};
use super::record::JobRecord;
use super::time;
use crate::client::Client;
use crate::error::Error;

/// The jobs every live process is running.
#[derive(Debug, Clone)]
pub struct WorkSet {
    client: Client,
}

/// One running job.
#[derive(Debug, Clone)]
pub struct Work {
    /// The process running it.
    pub process: String,
    /// The process's name for the task or thread running it.
    pub thread: String,
    /// The queue it came from.
    pub queue: String,
    /// When it started.
    pub run_at: Option<DateTime<Utc>>,
    /// The job.
    pub record: JobRecord,
}

impl WorkSet {
    /// The running jobs in `client`'s Redis.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// Every running job, the longest-running first. Reads `<identity>:work` (Sidekiq 6.4.2
    /// on, and `jobs`), else `<identity>:workers` (Sidekiq 6.4.0 and 6.4.1).
    pub async fn list(&self) -> Result<Vec<Work>, Error> {
        let processes = ProcessSet::new(&self.client).list().await?;
        self.of(&processes).await
    }

    /// The jobs `processes` (some of what [`ProcessSet::list`] read) are running, the
    /// longest-running first, in one round trip: a page of processes reads only its own.
    pub async fn of(&self, processes: &[Process]) -> Result<Vec<Work>, Error> {
        let keys = self.client.keys();
        if processes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for process in processes {
            pipeline
                .hgetall(keys.process_work(&process.identity))
                .hgetall(keys.process_workers(&process.identity));
        }
        // Read as bytes: a field that is not UTF-8 is shown with its bad bytes replaced rather
        // than failing the whole list.
        let hashes: Vec<Vec<(Vec<u8>, Vec<u8>)>> = self.client.redis().query(&pipeline).await?;
        let mut running = Vec::new();
        for (process, pair) in processes.iter().zip(hashes.chunks(2)) {
            let fields = match pair {
                [work, _] if !work.is_empty() => work,
                [_, workers] => workers,
                _ => continue,
            };
            running.extend(fields.iter().map(|(thread, value)| {
                work(
                    &process.identity,
                    &String::from_utf8_lossy(thread),
                    &String::from_utf8_lossy(value),
                )
            }));
        }
        running.sort_by_key(|work| work.run_at);
        Ok(running)
    }

    /// How many jobs run now.
    pub async fn size(&self) -> Result<usize, Error> {
        Ok(self.list().await?.len())
    }
}

/// Reads one field: `{"queue", "payload", "run_at"}`, the payload a JSON string (Sidekiq 7 on,
/// and `jobs`) or an object (Sidekiq 6).
fn work(process: &str, thread: &str, value: &str) -> Work {
    let parsed: Value = serde_json::from_str(value).unwrap_or(Value::Null);
    let record = match parsed.get("payload") {
        Some(Value::String(raw)) => JobRecord::parse(raw.as_str()),
        Some(object @ Value::Object(_)) => JobRecord::parse(object.to_string()),
        _ => JobRecord::parse(value),
    };
    Work {
        process: process.to_owned(),
        thread: thread.to_owned(),
        queue: parsed
            .get("queue")
            .and_then(Value::as_str)
            .unwrap_or_else(|| record.queue())
            .to_owned(),
        run_at: parsed.get("run_at").and_then(time::from_json),
        record,
    }
}

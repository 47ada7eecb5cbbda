//! Queues: the lists jobs wait in until a worker takes them, and whether a queue is paused.

use chrono::Utc;

use super::names::utf8_only;
use super::page::Page;
use super::record::JobRecord;
use crate::client::Client;
use crate::error::Error;
use crate::redis::scripts;

/// How many jobs one `LRANGE` reads while searching a queue.
const SCAN_BATCH: isize = 100;

/// How long a queue's list moved aside by [`Queue::clear`] lives at most, should the clear stop
/// before it deletes it.
const CLEARING_TTL_SECONDS: u64 = 3_600;

/// One queue (`queue:<name>`), as Sidekiq's `Sidekiq::Queue`.
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    name: String,
}

impl Queue {
    /// The queue called `name` (it need not exist yet).
    pub fn new(client: &Client, name: impl Into<String>) -> Self {
        Self {
            client: client.clone(),
            name: name.into(),
        }
    }

    /// Every queue ever pushed to (the `queues` set), sorted by name. A name that is not UTF-8
    /// is left out.
    pub async fn all(client: &Client) -> Result<Vec<Queue>, Error> {
        let names: Vec<Vec<u8>> = client
            .redis()
            .command(redis::cmd("SMEMBERS").arg(client.keys().queues()))
            .await?;
        let mut names = utf8_only(names);
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| Self::new(client, name))
            .collect())
    }

    /// The names of the paused queues (the `paused` set), sorted. A name that is not UTF-8 is
    /// left out. A paused queue need not be in [`all`](Self::all) yet: one can be paused
    /// before its first job is pushed.
    pub async fn paused_names(client: &Client) -> Result<Vec<String>, Error> {
        let names: Vec<Vec<u8>> = client
            .redis()
            .command(redis::cmd("SMEMBERS").arg(client.keys().paused()))
            .await?;
        let mut names = utf8_only(names);
        names.sort();
        Ok(names)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn key(&self) -> String {
        self.client.keys().queue(&self.name)
    }

    /// How many jobs wait in it.
    pub async fn size(&self) -> Result<usize, Error> {
        self.client
            .redis()
            .command(redis::cmd("LLEN").arg(self.key()))
            .await
    }

    /// How long, in seconds, the next job to run has waited (0 when the queue is empty).
    pub async fn latency(&self) -> Result<f64, Error> {
        let oldest: Option<Vec<u8>> = self
            .client
            .redis()
            .command(redis::cmd("LINDEX").arg(self.key()).arg(-1))
            .await?;
        Ok(oldest.map_or(0.0, |raw| JobRecord::from_bytes(raw).latency(Utc::now())))
    }

    /// One page of its jobs; newest first means the most recently pushed, oldest first means
    /// the next to run.
    pub async fn page(&self, page: Page) -> Result<Vec<JobRecord>, Error> {
        let len = self.size().await?;
        // Jobs are pushed on the left and taken from the right, so index 0 is the newest.
        let Some((start, stop)) = page.oldest_first_range(len) else {
            return Ok(Vec::new());
        };
        let newest_first = |index: isize| isize::try_from(len).unwrap_or(isize::MAX) - 1 - index;
        let (from, to) = (newest_first(stop), newest_first(start));
        let mut raws: Vec<Vec<u8>> = self
            .client
            .redis()
            .command(redis::cmd("LRANGE").arg(self.key()).arg(from).arg(to))
            .await?;
        if page.order == super::Order::OldestFirst {
            raws.reverse();
        }
        Ok(raws
            .into_iter()
            .map(|raw| JobRecord::in_queue(raw, &self.name))
            .collect())
    }

    /// The job with `jid`, searching the whole queue (a slow read on a long queue).
    pub async fn find_job(&self, jid: &str) -> Result<Option<JobRecord>, Error> {
        let mut start = 0;
        loop {
            let raws: Vec<Vec<u8>> = self
                .client
                .redis()
                .command(
                    redis::cmd("LRANGE")
                        .arg(self.key())
                        .arg(start)
                        .arg(start + SCAN_BATCH - 1),
                )
                .await?;
            let read = raws.len();
            if let Some(found) = raws
                .into_iter()
                .map(|raw| JobRecord::in_queue(raw, &self.name))
                .find(|record| record.jid() == jid)
            {
                return Ok(Some(found));
            }
            if read < usize::try_from(SCAN_BATCH).unwrap_or(usize::MAX) {
                return Ok(None);
            }
            start += SCAN_BATCH;
        }
    }

    /// Removes `job` (matched by its exact stored bytes), releasing its unique lock if it
    /// holds one; `false` when a worker took it first.
    pub async fn delete(&self, job: &JobRecord) -> Result<bool, Error> {
        self.delete_raw(job.raw_bytes()).await
    }

    /// Removes the job stored exactly as `raw` (text or bytes), releasing its unique lock if it
    /// holds one; `false` when it is no longer there.
    pub async fn delete_raw(&self, raw: impl AsRef<[u8]>) -> Result<bool, Error> {
        let record = JobRecord::in_queue(raw.as_ref().to_vec(), &self.name);
        let command = match record.unique_release() {
            Some(release) => super::sorted::unique_remove(
                self.client.keys(),
                &self.key(),
                "list",
                &record,
                &release,
            ),
            None => redis::cmd("LREM")
                .arg(self.key())
                .arg(1)
                .arg(raw.as_ref())
                .to_owned(),
        };
        let removed: usize = self.client.redis().command(&command).await?;
        Ok(removed > 0)
    }

    /// Pauses the queue: workers take none of its jobs until [`unpause`](Self::unpause), and
    /// hand back those they took ahead and have not started. Adds the name to the `paused`
    /// set, as Sidekiq Pro's `Queue#pause!` does (Sidekiq 8's Web UI shows it paused); the jobs
    /// stay in the queue and the queue in `queues`, so every dashboard still lists it with its
    /// size. A worker notices within one fetch round (about 2 s at most when idle), and after
    /// a restart too: the pause lives in Redis. Pausing a paused queue changes nothing.
    pub async fn pause(&self) -> Result<(), Error> {
        let _: usize = self
            .client
            .redis()
            .command(
                redis::cmd("SADD")
                    .arg(self.client.keys().paused())
                    .arg(&self.name),
            )
            .await?;
        Ok(())
    }

    /// Resumes the queue: workers take its jobs again from their next fetch round (about 2 s
    /// at most when idle). Removes the name from the `paused` set (Sidekiq Pro's
    /// `Queue#unpause!`). Resuming a queue that is not paused changes nothing.
    pub async fn unpause(&self) -> Result<(), Error> {
        let _: usize = self
            .client
            .redis()
            .command(
                redis::cmd("SREM")
                    .arg(self.client.keys().paused())
                    .arg(&self.name),
            )
            .await?;
        Ok(())
    }

    /// Whether the queue is paused (its name is in the `paused` set, whoever put it there:
    /// this API, the dashboard, or Sidekiq Pro).
    pub async fn is_paused(&self) -> Result<bool, Error> {
        self.client
            .redis()
            .command(
                redis::cmd("SISMEMBER")
                    .arg(self.client.keys().paused())
                    .arg(&self.name),
            )
            .await
    }

    /// Deletes the queue and every job in it, and takes it off the `queues` set (Sidekiq's
    /// `Queue#clear`). One atomic step takes the name off `queues` and moves the list aside
    /// (`scripts/queue_clear.lua`); the unique jobs in it then release their locks (each only
    /// if it still holds it), and the list is deleted. A job pushed meanwhile lands in a fresh
    /// list, lock and all. A pause stays.
    pub async fn clear(&self) -> Result<(), Error> {
        let keys = self.client.keys();
        let aside = keys.clearing(crate::jid::Jid::generate().as_str());
        let mut invocation = scripts::QUEUE_CLEAR.prepare_invoke();
        invocation
            .key(self.key())
            .key(keys.queues())
            .key(&aside)
            .arg(&self.name)
            .arg(CLEARING_TTL_SECONDS);
        let moved: i64 = self.client.redis().script(&invocation).await?;
        if moved == 0 {
            return Ok(());
        }
        // A list of another type reads as no jobs: it is deleted all the same.
        let releases = unique_releases(&self.client, &aside, &self.name)
            .await
            .unwrap_or_default();
        let mut pipeline = redis::pipe();
        for release in &releases {
            release.add_to(&mut pipeline, keys);
        }
        pipeline.cmd("UNLINK").arg(&aside).ignore();
        self.client.redis().query(&pipeline).await
    }
}

/// The locks of the unique jobs in the list `key` (the jobs of queue `queue`), read a batch at
/// a time; only entries that name a lock are parsed.
async fn unique_releases(
    client: &Client,
    key: &str,
    queue: &str,
) -> Result<Vec<crate::unique::Release>, Error> {
    let needle = format!("\"{}\"", crate::unique::LOCK);
    let batch = SCAN_BATCH * 10;
    let mut releases = Vec::new();
    let mut start = 0;
    loop {
        let raws: Vec<Vec<u8>> = client
            .redis()
            .command(
                redis::cmd("LRANGE")
                    .arg(key)
                    .arg(start)
                    .arg(start + batch - 1),
            )
            .await?;
        let read = raws.len();
        releases.extend(
            raws.into_iter()
                .filter(|raw| raw.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .filter_map(|raw| JobRecord::in_queue(raw, queue).unique_release()),
        );
        if read < usize::try_from(batch).unwrap_or(usize::MAX) {
            return Ok(releases);
        }
        start += batch;
    }
}

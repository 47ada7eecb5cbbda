//! Unique locks: which jobs hold them, until when, and releasing one by hand.

use std::time::Duration;

use super::record::JobRecord;
use super::scan::scan_names;
use crate::client::Client;
use crate::error::Error;
use crate::jid::Jid;
use crate::redis::scripts;

/// The most locks one [`UniqueLocks::list`] returns.
pub const MAX_LOCKS_LISTED: usize = 1_000;

/// One unique lock: `jobs:unique:<digest>`, held by a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueLock {
    /// The lock's digest (SHA-256 over the class, queue and arguments; see
    /// [`lock_digest`](crate::unique::lock_digest)).
    pub digest: String,
    /// The jid of the job that holds it.
    pub holder: Jid,
    /// How long until it runs out (its `unique_for` safety net); `None` when it has no expiry
    /// (set by hand).
    pub expires_in: Option<Duration>,
}

/// The unique locks in one Redis, as the dashboard shows them.
#[derive(Debug, Clone)]
pub struct UniqueLocks {
    client: Client,
}

impl UniqueLocks {
    /// The locks in the Redis `client` pushes to.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// Up to `limit` locks (at most [`MAX_LOCKS_LISTED`]), found with `SCAN`, in no particular
    /// order. A lock that runs out while they are read is left out.
    pub async fn list(&self, limit: usize) -> Result<Vec<UniqueLock>, Error> {
        let limit = limit.min(MAX_LOCKS_LISTED);
        let keys = self.client.keys();
        let pattern = keys.unique_pattern();
        let prefix_len = keys.unique("").len();
        let (mut digests, _) = scan_names(&self.client, &pattern, limit, usize::MAX, |key| {
            key.get(prefix_len..).map(str::to_owned)
        })
        .await?;
        digests.truncate(limit);
        self.read(digests).await
    }

    /// The lock with `digest`, if it is held.
    pub async fn get(&self, digest: &str) -> Result<Option<UniqueLock>, Error> {
        Ok(self.read(vec![digest.to_owned()]).await?.pop())
    }

    /// The lock `job` takes, if it is a unique job and the lock is held (by it, or by another
    /// job like it: compare [`UniqueLock::holder`] with its jid).
    pub async fn of_job(&self, job: &JobRecord) -> Result<Option<UniqueLock>, Error> {
        match job.unique_digest() {
            Some(digest) => self.get(digest).await,
            None => Ok(None),
        }
    }

    /// Releases `lock` if the job it names still holds it, so a job like it can be pushed
    /// again; `false` when it had run out or another job took it since. The job itself is
    /// left where it is.
    pub async fn release(&self, lock: &UniqueLock) -> Result<bool, Error> {
        let mut command = redis::cmd("EVAL");
        command
            .arg(scripts::UNIQUE_RELEASE_SOURCE.as_str())
            .arg(1)
            .arg(self.client.keys().unique(&lock.digest))
            .arg(lock.holder.as_str());
        let released: i64 = self.client.redis().command(&command).await?;
        Ok(released == 1)
    }

    /// Reads the holder and time to live of each lock in one round trip.
    async fn read(&self, digests: Vec<String>) -> Result<Vec<UniqueLock>, Error> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.client.keys();
        let mut pipeline = redis::pipe();
        for digest in &digests {
            let key = keys.unique(digest);
            pipeline
                .cmd("EVAL")
                .arg(scripts::UNIQUE_READ_SOURCE.as_str())
                .arg(1)
                .arg(key);
        }
        let read: Vec<Option<(String, i64)>> = self.client.redis().query(&pipeline).await?;
        Ok(digests
            .into_iter()
            .zip(read)
            .filter_map(|(digest, lock)| {
                let (holder, ttl) = lock?;
                Some(UniqueLock {
                    digest,
                    holder: Jid::from(holder),
                    expires_in: u64::try_from(ttl).ok().map(Duration::from_millis),
                })
            })
            .collect())
    }
}

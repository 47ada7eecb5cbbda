//! Global caps: how many of a capped queue's jobs may run at once across every process, how many
//! run now, and setting or clearing a cap (see [`crate::cap`] and `docs/limits.md`).

use super::names::utf8_only;
use crate::client::Client;
use crate::error::Error;

/// One queue's global cap, as Redis holds it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CapInfo {
    /// The queue's name.
    pub queue: String,
    /// The most of its jobs running at once across every process.
    pub cap: u64,
    /// The leases live now: its jobs running (or about to) anywhere. Leases that ran out and
    /// were not dropped yet are not counted.
    pub in_use: u64,
}

/// One job class's global cap (`#[job(concurrency = n)]`, `Worker::cap_class`), as Redis holds
/// it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClassCapInfo {
    /// The job class (an ActiveJob job's wrapped class).
    pub class: String,
    /// The most of its jobs running at once across every process.
    pub cap: u64,
    /// The leases live now: its jobs running anywhere. Leases that ran out and were not dropped
    /// yet are not counted.
    pub in_use: u64,
    /// Its jobs parked now (`jobs:waiting:class:<Class>`), waiting for a slot; each goes back to
    /// its own queue when one frees.
    pub waiting: u64,
}

/// The global caps in one Redis, as the dashboard shows and sets them: queues' (`list`, `get`,
/// `set`, `clear`) and job classes' (`list_classes`, `get_class`, `set_class`, `clear_class`).
///
/// ```no_run
/// # async fn example() -> Result<(), jobs_runtime::Error> {
/// use jobs_runtime::{Client, api::Caps};
///
/// let caps = Caps::new(&Client::global()?);
/// caps.set("imports", 2).await?;          // at most 2 imports at once, anywhere
/// for cap in caps.list().await? {
///     println!("{}: {} of {} in use", cap.queue, cap.in_use, cap.cap);
/// }
/// caps.clear("imports").await?;           // flows freely again from the next fetch round
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Caps {
    client: Client,
}

impl Caps {
    /// The caps in the Redis `client` uses.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// Every capped queue (`jobs:caps`), by name, with its cap and use. A name that is not
    /// UTF-8 is left out.
    pub async fn list(&self) -> Result<Vec<CapInfo>, Error> {
        let members: Vec<Vec<u8>> = self
            .client
            .redis()
            .command(redis::cmd("SMEMBERS").arg(self.client.keys().caps()))
            .await?;
        let mut queues: Vec<String> = utf8_only(members)
            .iter()
            .filter_map(|member| crate::cap::queue_of_member(member))
            .map(str::to_owned)
            .collect();
        queues.sort();
        self.read(queues).await
    }

    /// The cap of `queue`, if it has one.
    pub async fn get(&self, queue: &str) -> Result<Option<CapInfo>, Error> {
        Ok(self.read(vec![queue.to_owned()]).await?.pop())
    }

    /// Caps `queue` at `cap` jobs running at once across every process, replacing its cap if
    /// it had one. Workers apply it from their next fetch round (within about a second when
    /// idle); jobs already running keep running, so a lowered cap is reached as they end. A
    /// cap of 0 is refused ([`Error::InvalidCap`]): pause the queue to stop it.
    pub async fn set(&self, queue: &str, cap: u32) -> Result<(), Error> {
        crate::cap::set(&self.client, queue, cap).await
    }

    /// Removes `queue`'s cap: workers take its jobs freely from their next fetch round.
    /// `false` when it had none.
    pub async fn clear(&self, queue: &str) -> Result<bool, Error> {
        crate::cap::clear(&self.client, queue).await
    }

    /// Every capped job class (`jobs:caps:class`), by name, with its cap, use and parked jobs.
    /// A name that is not UTF-8 is left out.
    pub async fn list_classes(&self) -> Result<Vec<ClassCapInfo>, Error> {
        let members: Vec<Vec<u8>> = self
            .client
            .redis()
            .command(redis::cmd("SMEMBERS").arg(self.client.keys().class_caps()))
            .await?;
        let mut classes: Vec<String> = utf8_only(members)
            .iter()
            .filter_map(|member| crate::cap::class::of_member(member))
            .map(str::to_owned)
            .collect();
        classes.sort();
        self.read_classes(classes).await
    }

    /// The cap of job class `class`, if it has one.
    pub async fn get_class(&self, class: &str) -> Result<Option<ClassCapInfo>, Error> {
        Ok(self.read_classes(vec![class.to_owned()]).await?.pop())
    }

    /// Caps job class `class` at `cap` jobs running at once across every process, replacing its
    /// cap if it had one. A changed number applies to the next job of the class to start; a class
    /// no worker declares is known to workers from their next heartbeat. Jobs already running
    /// keep running. A worker that declares this class's cap (`#[job(concurrency)]`,
    /// `Worker::cap_class`) writes its own number again when it starts. A cap of 0 is refused
    /// ([`Error::InvalidCap`]).
    pub async fn set_class(&self, class: &str, cap: u32) -> Result<(), Error> {
        crate::cap::class::set(&self.client, class, cap).await
    }

    /// Removes job class `class`'s cap and moves every parked job of it back to its queue at
    /// once, in one step; running jobs release their leases as they end. Returns how many parked
    /// jobs went back, or `None` when the class had no cap (and none were parked).
    pub async fn clear_class(&self, class: &str) -> Result<Option<u64>, Error> {
        let (had, moved) = crate::cap::class::clear(&self.client, class).await?;
        Ok((had || moved > 0).then_some(moved))
    }

    /// Each class's cap, live leases and parked jobs, in one round trip; classes without a cap
    /// left out.
    async fn read_classes(&self, classes: Vec<String>) -> Result<Vec<ClassCapInfo>, Error> {
        if classes.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.client.keys();
        // Live leases by this machine's clock: a display, never a decision.
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut pipeline = redis::pipe();
        for class in &classes {
            pipeline
                .cmd("GET")
                .arg(keys.cap_class(class))
                .cmd("ZCOUNT")
                .arg(keys.cap_class_leases(class))
                .arg(format!("({now_ms}"))
                .arg("+inf")
                .cmd("LLEN")
                .arg(keys.cap_class_waiting(class));
        }
        let replies: Vec<redis::Value> = self.client.redis().query(&pipeline).await?;
        let number = |value: Option<&redis::Value>| {
            value
                .and_then(|value| {
                    <Option<u64> as redis::FromRedisValue>::from_redis_value(value.clone()).ok()
                })
                .flatten()
        };
        let mut read = Vec::new();
        for (class, replies) in classes.into_iter().zip(replies.chunks(3)) {
            if let Some(cap) = number(replies.first()) {
                read.push(ClassCapInfo {
                    class,
                    cap,
                    in_use: number(replies.get(1)).unwrap_or(0),
                    waiting: number(replies.get(2)).unwrap_or(0),
                });
            }
        }
        Ok(read)
    }

    /// Each queue's cap and live leases, in one round trip; queues without a cap left out.
    async fn read(&self, queues: Vec<String>) -> Result<Vec<CapInfo>, Error> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.client.keys();
        // Live leases by this machine's clock: a display, never a decision.
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut pipeline = redis::pipe();
        for queue in &queues {
            pipeline
                .cmd("GET")
                .arg(keys.cap_queue(queue))
                .cmd("ZCOUNT")
                .arg(keys.cap_queue_leases(queue))
                .arg(format!("({now_ms}"))
                .arg("+inf");
        }
        let replies: Vec<redis::Value> = self.client.redis().query(&pipeline).await?;
        let mut read = Vec::new();
        for (queue, pair) in queues.into_iter().zip(replies.chunks(2)) {
            let cap = pair
                .first()
                .and_then(|value| {
                    <Option<u64> as redis::FromRedisValue>::from_redis_value(value.clone()).ok()
                })
                .flatten();
            let in_use = pair
                .get(1)
                .and_then(|value| {
                    <u64 as redis::FromRedisValue>::from_redis_value(value.clone()).ok()
                })
                .unwrap_or(0);
            if let Some(cap) = cap {
                read.push(CapInfo { queue, cap, in_use });
            }
        }
        Ok(read)
    }
}

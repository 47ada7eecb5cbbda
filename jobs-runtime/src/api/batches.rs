//! Batches as the dashboard shows them: every batch newest first, one batch's counts and the
//! moments it reached, its failed members with where each job waits now (the retry or dead
//! set), and deleting a batch's data. `docs/batches.md` describes the keys read here.
//!
//! What Redis holds is not trusted: a key of the wrong type or a field that does not parse
//! reads as missing, and a batch listed in `batches` whose hash expired is listed as
//! [`expired`](BatchInfo::expired) rather than left out.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use redis::FromRedisValue;

use super::page::Page;
use super::record::JobRecord;
use super::sorted::{SetKind, SortedEntry};
use super::time;
use crate::batch::{Batch, BatchStatus, Bid, FailedMember};
use crate::client::Client;
use crate::error::Error;
use crate::redis::keys::escape_glob;

/// The most failed members [`Batches::failed`] reads from one batch.
pub const MAX_FAILED_LISTED: usize = 500;

/// The prefix of a member that is a child batch: `batch:<bid>`.
const CHILD_PREFIX: &str = "batch:";

/// The batches in `client`'s Redis, as Sidekiq Pro's `Sidekiq::BatchSet`.
///
/// ```no_run
/// # async fn example() -> Result<(), jobs_runtime::Error> {
/// use jobs_runtime::api::{Batches, Page};
///
/// let batches = Batches::new(&jobs_runtime::Client::global()?);
/// for batch in batches.page(Page::first(25)).await? {
///     println!("{}: {}/{} done, {} failed", batch.description, batch.done(), batch.total, batch.failed);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Batches {
    /// The Redis it reads.
    client: Client,
}

/// One batch: its description, counts and the moments it reached, as stored in `batch:<bid>`
/// and its sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchInfo {
    /// Its id, 14 characters of URL-safe base64.
    pub bid: String,
    /// What the pushing code called it (empty when it gave no description).
    pub description: String,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// Members ever registered (jobs and child batches).
    pub total: u64,
    /// Members not yet succeeded.
    pub pending: u64,
    /// Pending members that failed at least once.
    pub failed: u64,
    /// Pending members that died (retries ran out, or discarded).
    pub dead: u64,
    /// The batch it is nested in, if any.
    pub parent: Option<String>,
    /// Whether its creation finished (no callback fires before).
    pub sealed: bool,
    /// When `complete` fired (every member ran at least once).
    pub complete_at: Option<DateTime<Utc>>,
    /// When `success` fired (every member succeeded).
    pub success_at: Option<DateTime<Utc>>,
    /// When `death` fired (a member died).
    pub death_at: Option<DateTime<Utc>>,
    /// Its callbacks, in the order their events fire (`complete`, `success`, `death`).
    pub callbacks: Vec<BatchCallback>,
    /// The workflow whose step this batch is, if any.
    pub workflow: Option<String>,
    /// The name of that workflow step.
    pub step: Option<String>,
    /// Its data expired (or was deleted) while `batches` still lists it: only the bid and
    /// creation time are known.
    pub expired: bool,
}

impl BatchInfo {
    /// Members that succeeded: `total - pending`.
    pub fn done(&self) -> u64 {
        self.total.saturating_sub(self.pending)
    }

    /// The callback of `event` (`complete`, `success` or `death`) and when it fired: `None`
    /// when the batch has no such callback and the moment was not reached.
    pub fn fired_at(&self, event: &str) -> Option<DateTime<Utc>> {
        match event {
            "complete" => self.complete_at,
            "success" => self.success_at,
            "death" => self.death_at,
            _ => None,
        }
    }
}

/// A batch's callback: the job pushed once its event comes true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchCallback {
    /// Its event: `complete`, `success` or `death`.
    pub event: String,
    /// The callback job's class, as the dashboard shows classes (empty when its stored JSON
    /// cannot be read).
    pub class: String,
}

impl BatchInfo {
    /// Whether it has a callback for `event`.
    pub fn has_callback(&self, event: &str) -> bool {
        self.callbacks
            .iter()
            .any(|callback| callback.event == event)
    }
}

/// A failed member of a batch: its last failure, and where the job waits now.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchFailure {
    /// The member as stored: a jid, or `batch:<bid>` for a child batch.
    pub member: String,
    /// The child batch's bid when the member is one.
    pub child: Option<String>,
    /// The job's class (empty for a child batch, or when not recorded).
    pub class: String,
    /// The class of its last error.
    pub error_class: String,
    /// The message of its last error.
    pub error_message: String,
    /// When it last failed.
    pub failed_at: Option<DateTime<Utc>>,
    /// Whether it died.
    pub dead: bool,
    /// Its entry in the retry set, or else in the dead set, when one holds it.
    pub entry: Option<(SetKind, SortedEntry)>,
}

impl Batches {
    /// The batches in `client`'s Redis.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
        }
    }

    fn index(&self) -> String {
        self.client.keys().batches()
    }

    /// How many batches `batches` lists (those expired since included, until trimmed).
    pub async fn size(&self) -> Result<usize, Error> {
        self.client
            .redis()
            .command(redis::cmd("ZCARD").arg(self.index()))
            .await
    }

    /// A page of batches, newest first by default (as [`Page`] orders it), each with its
    /// counts; an entry whose data expired is [`expired`](BatchInfo::expired). `batches` is
    /// scored in whole seconds, so within a page batches created in the same second are
    /// ordered by their hash's `created_at` (milliseconds).
    pub async fn page(&self, page: Page) -> Result<Vec<BatchInfo>, Error> {
        let len = self.size().await?;
        let Some((start, stop)) = page.oldest_first_range(len) else {
            return Ok(Vec::new());
        };
        let members: Vec<(Vec<u8>, f64)> = self
            .client
            .redis()
            .command(
                redis::cmd("ZRANGE")
                    .arg(self.index())
                    .arg(start)
                    .arg(stop)
                    .arg("WITHSCORES"),
            )
            .await?;
        let mut members: Vec<(String, f64)> = members
            .into_iter()
            .filter_map(|(bid, score)| Some((String::from_utf8(bid).ok()?, score)))
            .collect();
        if page.order == super::Order::NewestFirst {
            members.reverse();
        }
        let mut batches = self.read(members).await?;
        // `batches` scores whole seconds: within one, the hash's `created_at` (ms) orders them.
        batches.sort_by(|a, b| match page.order {
            super::Order::NewestFirst => b.created_at.cmp(&a.created_at),
            super::Order::OldestFirst => a.created_at.cmp(&b.created_at),
        });
        Ok(batches)
    }

    /// The batch `bid` as [`Batch::status`] reads it, or `None` when Redis
    /// holds nothing of it; a batch still listed whose data expired is
    /// [`expired`](BatchInfo::expired).
    pub async fn get(&self, bid: &Bid) -> Result<Option<BatchInfo>, Error> {
        let Some(status) = Batch::status(&self.client, bid).await? else {
            let score: Option<f64> = self
                .client
                .redis()
                .command(redis::cmd("ZSCORE").arg(self.index()).arg(bid.as_str()))
                .await?;
            return Ok(score
                .map(|score| BatchInfo::read(bid.to_string(), score, &HashMap::new(), 0, 0, 0)));
        };
        Ok(Some(BatchInfo::from_status(status)))
    }

    /// The state of batch `bid` as the batch module reads it: [`Batch::status`].
    pub async fn status(&self, bid: &Bid) -> Result<Option<BatchStatus>, Error> {
        Batch::status(&self.client, bid).await
    }

    /// Reads each batch's hash and counts, one round trip for all.
    async fn read(&self, members: Vec<(String, f64)>) -> Result<Vec<BatchInfo>, Error> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.client.keys();
        let mut pipeline = redis::pipe();
        // Each reply on its own: a key of another type reads as missing, not as an error.
        pipeline.ignore_errors();
        for (bid, _) in &members {
            pipeline.cmd("HGETALL").arg(keys.batch(bid));
            pipeline.cmd("SCARD").arg(keys.batch_pending(bid));
            pipeline.cmd("HLEN").arg(keys.batch_failed(bid));
            pipeline.cmd("SCARD").arg(keys.batch_dead(bid));
        }
        let replies: Vec<redis::RedisResult<redis::Value>> =
            self.client.redis().query(&pipeline).await?;
        let mut replies = replies.into_iter();
        let mut next = || replies.next().and_then(Result::ok);
        let count = |value: Option<redis::Value>| {
            value
                .and_then(|value| u64::from_redis_value(value).ok())
                .unwrap_or(0)
        };
        Ok(members
            .into_iter()
            .map(|(bid, score)| {
                let hash = next()
                    .and_then(|value| HashMap::<String, Vec<u8>>::from_redis_value(value).ok())
                    .unwrap_or_default();
                let (pending, failed, dead) = (count(next()), count(next()), count(next()));
                BatchInfo::read(bid, score, &hash, pending, failed, dead)
            })
            .collect())
    }

    /// The failed members of batch `bid` (at most [`MAX_FAILED_LISTED`], sorted by when they
    /// failed, newest first), each job with its entry in the retry set or, failing that, the
    /// dead set, when one holds it: one pass over each set, for entries naming the batch.
    pub async fn failed(&self, bid: &Bid) -> Result<Vec<BatchFailure>, Error> {
        let Some(status) = Batch::status(&self.client, bid).await? else {
            return Ok(Vec::new());
        };
        let mut members: Vec<BatchFailure> = status
            .failed
            .iter()
            .map(BatchFailure::from_member)
            .collect();
        members.sort_by(|a, b| b.failed_at.cmp(&a.failed_at).then(a.member.cmp(&b.member)));
        members.truncate(MAX_FAILED_LISTED);
        if members.iter().any(|member| member.child.is_none()) {
            let retries = self.entries_of(SetKind::Retry, bid).await?;
            let dead = self.entries_of(SetKind::Dead, bid).await?;
            for member in &mut members {
                let found =
                    |entries: &HashMap<String, SortedEntry>| entries.get(&member.member).cloned();
                member.entry = match found(&retries) {
                    Some(entry) => Some((SetKind::Retry, entry)),
                    None => found(&dead).map(|entry| (SetKind::Dead, entry)),
                };
            }
        }
        Ok(members)
    }

    /// The entries of the set `kind` carrying `"bid": "<bid>"`, by jid: one pass of the set
    /// (`ZSCAN MATCH` on the bid, so Redis sends back only the entries that name it).
    async fn entries_of(
        &self,
        kind: SetKind,
        bid: &Bid,
    ) -> Result<HashMap<String, SortedEntry>, Error> {
        let keys = self.client.keys();
        let key = match kind {
            SetKind::Retry => keys.retry(),
            SetKind::Dead => keys.dead(),
            SetKind::Scheduled => keys.schedule(),
        };
        let pattern = format!("*{}*", escape_glob(bid.as_str()));
        let mut found = HashMap::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, members): (u64, Vec<(Vec<u8>, f64)>) = self
                .client
                .redis()
                .command(
                    redis::cmd("ZSCAN")
                        .arg(&key)
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1_000),
                )
                .await?;
            for (member, score) in members {
                let record = JobRecord::from_bytes(member);
                if record.get("bid").and_then(serde_json::Value::as_str) == Some(bid.as_str()) {
                    found.insert(record.jid().to_owned(), SortedEntry { score, record });
                }
            }
            cursor = next;
            if cursor == 0 {
                return Ok(found);
            }
        }
    }

    /// The child batches of `bid` still pending or failed (a child that succeeded is no
    /// longer a member), as bids: Redis scans the pending set for `batch:*` members, at most
    /// [`MAX_FAILED_LISTED`].
    pub async fn pending_children(&self, bid: &Bid) -> Result<Vec<String>, Error> {
        let keys = self.client.keys();
        let bid = bid.as_str();
        let mut cursor: u64 = 0;
        let mut children = Vec::new();
        for _ in 0..100 {
            let reply: Result<(u64, Vec<Vec<u8>>), Error> = self
                .client
                .redis()
                .command(
                    redis::cmd("SSCAN")
                        .arg(keys.batch_pending(bid))
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{CHILD_PREFIX}*"))
                        .arg("COUNT")
                        .arg(1_000),
                )
                .await;
            let Ok((next, members)) = reply else { break };
            children.extend(members.into_iter().filter_map(|member| {
                let member = String::from_utf8(member).ok()?;
                Some(member.strip_prefix(CHILD_PREFIX)?.to_owned())
            }));
            cursor = next;
            if cursor == 0 || children.len() >= MAX_FAILED_LISTED {
                break;
            }
        }
        children.sort();
        children.truncate(MAX_FAILED_LISTED);
        Ok(children)
    }

    /// Deletes the batch's data (its hash and sets) and its entry in `batches`, leaving its
    /// jobs where they are: they run as jobs of no batch would, and no callback fires.
    /// `false` when Redis held nothing of it.
    pub async fn delete(&self, bid: &Bid) -> Result<bool, Error> {
        let keys = self.client.keys();
        let bid = bid.as_str();
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        pipeline
            .cmd("DEL")
            .arg(keys.batch(bid))
            .arg(keys.batch_pending(bid))
            .arg(keys.batch_failed(bid))
            .arg(keys.batch_dead(bid));
        pipeline.cmd("ZREM").arg(self.index()).arg(bid);
        let (keys, listed): (u64, u64) = self.client.redis().query(&pipeline).await?;
        Ok(keys + listed > 0)
    }
}

impl BatchInfo {
    /// The batch `bid`, listed at `score` (epoch seconds; NaN when not listed), from its hash
    /// and the sizes of its sets.
    fn read(
        bid: String,
        score: f64,
        hash: &HashMap<String, Vec<u8>>,
        pending: u64,
        failed: u64,
        dead: u64,
    ) -> Self {
        let text = |field: &str| {
            hash.get(field)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .filter(|text| !text.is_empty())
        };
        let millis = |field: &str| {
            text(field)
                .and_then(|text| text.trim().parse::<f64>().ok())
                .and_then(|ms| time::from_epoch_seconds(ms / 1_000.0))
        };
        let created_at = millis("created_at").or_else(|| time::from_epoch_seconds(score));
        let callbacks = read_callbacks(hash);
        Self {
            expired: hash.is_empty(),
            description: text("description").unwrap_or_default(),
            created_at,
            total: text("total")
                .and_then(|total| total.trim().parse().ok())
                .unwrap_or(0),
            pending,
            failed,
            dead,
            parent: text("parent"),
            sealed: text("sealed").as_deref() == Some("1"),
            complete_at: millis("complete_at"),
            success_at: millis("success_at"),
            death_at: millis("death_at"),
            callbacks,
            workflow: text("workflow"),
            step: text("step"),
            bid,
        }
    }
}

impl BatchInfo {
    /// The batch [`Batch::status`] read.
    fn from_status(status: BatchStatus) -> Self {
        let callbacks = status
            .callbacks
            .iter()
            .map(|(event, class)| BatchCallback {
                event: event.as_str().to_owned(),
                class: class.clone(),
            })
            .collect();
        Self {
            bid: status.bid.to_string(),
            description: status.description.unwrap_or_default(),
            created_at: status.created_at,
            total: status.total,
            pending: status.pending,
            failed: status.failures,
            dead: status.dead,
            parent: status.parent.map(|parent| parent.to_string()),
            sealed: status.sealed,
            complete_at: status.complete_at,
            success_at: status.success_at,
            death_at: status.death_at,
            callbacks,
            workflow: status.workflow,
            step: status.step,
            expired: false,
        }
    }
}

/// The callbacks among a batch hash's fields, each with its job's class.
fn read_callbacks(hash: &HashMap<String, Vec<u8>>) -> Vec<BatchCallback> {
    ["complete", "success", "death"]
        .into_iter()
        .filter_map(|event| {
            let json = hash.get(&format!("cb:{event}"))?;
            let record = JobRecord::from_bytes(json.clone());
            let class = if record.is_job() {
                record.display_class()
            } else {
                String::new()
            };
            Some(BatchCallback {
                event: event.to_owned(),
                class,
            })
        })
        .collect()
}

impl BatchFailure {
    /// A failed member as [`Batch::status`] read it.
    fn from_member(member: &FailedMember) -> Self {
        Self {
            child: member.member.strip_prefix(CHILD_PREFIX).map(str::to_owned),
            class: member.class.clone(),
            error_class: member.error_class.clone(),
            error_message: member.error_message.clone(),
            failed_at: member.failed_at,
            dead: member.dead,
            entry: None,
            member: member.member.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{BatchFailure, BatchInfo};
    use crate::batch::FailedMember;

    fn hash(fields: &[(&str, &str)]) -> HashMap<String, Vec<u8>> {
        fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn a_batch_reads_from_its_hash() {
        let fields = hash(&[
            ("description", "nightly scores"),
            ("created_at", "1796000000000"),
            ("total", "10"),
            ("sealed", "1"),
            ("cb:success", r#"{"class":"ScoresPublished","args":[]}"#),
            ("cb:complete", "not json"),
            ("complete_at", "1796000060000"),
            ("parent", "abcdefghijklmn"),
        ]);
        let batch = BatchInfo::read("b1".into(), 1.0, &fields, 3, 2, 1);
        assert_eq!(batch.description, "nightly scores");
        assert_eq!(batch.done(), 7);
        assert_eq!(batch.created_at.unwrap().timestamp(), 1_796_000_000);
        let callbacks: Vec<(&str, &str)> = batch
            .callbacks
            .iter()
            .map(|callback| (callback.event.as_str(), callback.class.as_str()))
            .collect();
        assert_eq!(
            callbacks,
            [("complete", ""), ("success", "ScoresPublished")]
        );
        assert!(batch.has_callback("success") && !batch.has_callback("death"));
        assert_eq!(
            batch.fired_at("complete").unwrap().timestamp(),
            1_796_000_060
        );
        assert!(batch.fired_at("success").is_none());
        assert!(batch.sealed && !batch.expired);
        assert_eq!(batch.parent.as_deref(), Some("abcdefghijklmn"));
    }

    #[test]
    fn a_batch_whose_hash_expired_keeps_its_listing_time() {
        let batch = BatchInfo::read("b1".into(), 1_796_000_000.0, &hash(&[]), 0, 0, 0);
        assert!(batch.expired);
        assert_eq!(batch.created_at.unwrap().timestamp(), 1_796_000_000);
        assert_eq!(batch.done(), 0);
    }

    #[test]
    fn garbage_reads_as_missing() {
        let fields = hash(&[("total", "many"), ("created_at", "soon")]);
        let batch = BatchInfo::read("b1".into(), f64::NAN, &fields, 5, 0, 0);
        assert_eq!(batch.total, 0);
        assert_eq!(batch.done(), 0);
        assert!(batch.created_at.is_none());
    }

    #[test]
    fn a_failed_member_reads_its_failure() {
        let member = FailedMember {
            member: "jid1".into(),
            class: "ScoreUser".into(),
            error_class: "Timeout".into(),
            error_message: "slow".into(),
            failed_at: chrono::DateTime::from_timestamp(1_796_000_000, 0),
            dead: true,
        };
        let failed = BatchFailure::from_member(&member);
        assert_eq!(failed.class, "ScoreUser");
        assert_eq!(failed.error_message, "slow");
        assert_eq!(failed.failed_at.unwrap().timestamp(), 1_796_000_000);
        assert!(failed.dead && failed.child.is_none());
    }
}

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
use crate::batch::{Batch, BatchStatus, Bid};
use crate::client::Client;
use crate::error::Error;
use crate::redis::keys::escape_glob;

/// The most failed members [`Batches::failed`] reads from one batch.
pub const MAX_FAILED_LISTED: usize = 500;

/// The most `ZSCAN` calls (of 1,000 entries each) [`Batches::failures`] spends on each of the
/// retry and dead sets looking for a batch's failed jobs: a page view stays bounded however
/// large the sets grow.
pub const MAX_ENTRY_SCANS: usize = 10;

/// Entries of a sorted set one `ZSCAN` call asks for.
const SCAN_COUNT: usize = 1_000;

/// The most `HSCAN` calls [`Batches::failures`] spends reading a batch's failed hash.
const MAX_FAILED_SCANS: usize = 20;

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

    /// When the moment `event` (`complete`, `success` or `death`) was reached: `None` when it
    /// was not (or `event` is none of these). Whether the batch has a callback for it is
    /// [`has_callback`](Self::has_callback).
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

/// A batch's failed members as its page shows them: [`Batches::failures`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchFailures {
    /// At most [`MAX_FAILED_LISTED`] of them, newest failure first.
    pub members: Vec<BatchFailure>,
    /// How many failed members the batch has (`HLEN` of its failed hash).
    pub total: u64,
    /// `Some(n)` when the search of the retry and dead sets for their entries stopped after
    /// about `n` entries of a set: a member with no entry may have one further on.
    pub searched: Option<usize>,
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

    /// The batch `bid` as [`Batches::page`] reads it (its hash, and its sets' sizes), or
    /// `None` when Redis holds nothing of it; a batch still listed whose data expired is
    /// [`expired`](BatchInfo::expired).
    pub async fn get(&self, bid: &Bid) -> Result<Option<BatchInfo>, Error> {
        // Counts only (HLEN, SCARD), as the list reads them: never the failed hash whole.
        let score: Option<f64> = self
            .client
            .redis()
            .command(redis::cmd("ZSCORE").arg(self.index()).arg(bid.as_str()))
            .await?;
        let read = self
            .read(vec![(bid.to_string(), score.unwrap_or(f64::NAN))])
            .await?;
        Ok(read
            .into_iter()
            .next()
            .filter(|batch| !batch.expired || score.is_some()))
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

    /// The failed members of batch `bid` (at most [`MAX_FAILED_LISTED`]), as
    /// [`Batches::failures`] reads them.
    pub async fn failed(&self, bid: &Bid) -> Result<Vec<BatchFailure>, Error> {
        Ok(self.failures(bid).await?.members)
    }

    /// The failed members of batch `bid`, read in bounded steps: at most
    /// [`MAX_FAILED_LISTED`] of them (`HSCAN` of the failed hash, sorted by when they failed,
    /// newest first) of [`total`](BatchFailures::total) (`HLEN`), each job with its entry in
    /// the retry set or, failing that, the dead set, searched with at most
    /// [`MAX_ENTRY_SCANS`] `ZSCAN`s of each ([`searched`](BatchFailures::searched) says when
    /// the search stopped before the end).
    pub async fn failures(&self, bid: &Bid) -> Result<BatchFailures, Error> {
        let keys = self.client.keys();
        let key = keys.batch_failed(bid.as_str());
        let total: u64 = self
            .client
            .redis()
            .command(redis::cmd("HLEN").arg(&key))
            .await
            .unwrap_or(0);
        let mut members: Vec<BatchFailure> = Vec::new();
        let mut cursor: u64 = 0;
        for _ in 0..MAX_FAILED_SCANS {
            let reply: Result<(u64, Vec<(String, String)>), Error> = self
                .client
                .redis()
                .command(
                    redis::cmd("HSCAN")
                        .arg(&key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(MAX_FAILED_LISTED),
                )
                .await;
            // A key of another type reads as no failure.
            let Ok((next, pairs)) = reply else { break };
            members.extend(
                pairs
                    .into_iter()
                    .map(|(member, info)| BatchFailure::from_stored(member, &info)),
            );
            cursor = next;
            if cursor == 0 || members.len() >= MAX_FAILED_LISTED {
                break;
            }
        }
        members.sort_by(|a, b| b.failed_at.cmp(&a.failed_at).then(a.member.cmp(&b.member)));
        members.dedup_by(|a, b| a.member == b.member);
        members.truncate(MAX_FAILED_LISTED);
        let mut searched = None;
        if members.iter().any(|member| member.child.is_none()) {
            let (retries, retries_whole) = self.entries_of(SetKind::Retry, bid).await?;
            let (dead, dead_whole) = self.entries_of(SetKind::Dead, bid).await?;
            if !(retries_whole && dead_whole) {
                searched = Some(MAX_ENTRY_SCANS * SCAN_COUNT);
            }
            for member in &mut members {
                let found =
                    |entries: &HashMap<String, SortedEntry>| entries.get(&member.member).cloned();
                member.entry = match found(&retries) {
                    Some(entry) => Some((SetKind::Retry, entry)),
                    None => found(&dead).map(|entry| (SetKind::Dead, entry)),
                };
            }
        }
        Ok(BatchFailures {
            members,
            total,
            searched,
        })
    }

    /// The entries of the set `kind` carrying `"bid": "<bid>"`, by jid (`ZSCAN MATCH` on the
    /// bid, so Redis sends back only the entries that name it), at most [`MAX_ENTRY_SCANS`]
    /// calls; `true` when the scan reached the set's end.
    async fn entries_of(
        &self,
        kind: SetKind,
        bid: &Bid,
    ) -> Result<(HashMap<String, SortedEntry>, bool), Error> {
        let keys = self.client.keys();
        let key = match kind {
            SetKind::Retry => keys.retry(),
            SetKind::Dead => keys.dead(),
            SetKind::Scheduled => keys.schedule(),
        };
        let pattern = format!("*{}*", escape_glob(bid.as_str()));
        let mut found = HashMap::new();
        let mut cursor: u64 = 0;
        for _ in 0..MAX_ENTRY_SCANS {
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
                        .arg(SCAN_COUNT),
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
                return Ok((found, true));
            }
        }
        Ok((found, false))
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
    /// The member `member` whose stored failure is `info` (kept as the message when it is
    /// not the JSON the batch scripts write).
    fn from_stored(member: String, info: &str) -> Self {
        let stored = crate::batch::StoredFailure::parse(info);
        Self {
            child: member.strip_prefix(CHILD_PREFIX).map(str::to_owned),
            class: stored.class,
            error_class: stored.error_class,
            error_message: stored.error_message,
            failed_at: stored.failed_at.and_then(time::from_epoch_seconds),
            dead: stored.dead,
            entry: None,
            member,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{BatchFailure, BatchInfo};

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
        let failed = BatchFailure::from_stored(
            "jid1".into(),
            r#"{"class":"ScoreUser","error_class":"Timeout","error_message":"slow","failed_at":1796000000,"dead":true}"#,
        );
        assert_eq!(failed.class, "ScoreUser");
        assert_eq!(failed.error_message, "slow");
        assert_eq!(failed.failed_at.unwrap().timestamp(), 1_796_000_000);
        assert!(failed.dead && failed.child.is_none());
        let garbage = BatchFailure::from_stored("batch:abcdefghijklmn".into(), "not json");
        assert_eq!(garbage.error_message, "not json");
        assert_eq!(garbage.child.as_deref(), Some("abcdefghijklmn"));
    }
}

//! The three sorted sets of jobs: scheduled, retries and dead, as Sidekiq's `JobSet`s.

use std::ops::Deref;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::page::{Order, Page};
use super::record::JobRecord;
use super::time;
use crate::client::Client;
use crate::error::Error;
use crate::raw_job::RawJob;
use crate::redis::keys::escape_glob;
use crate::redis::scripts::{self, Promotion};
use crate::timestamp::Timestamp;

/// How many members one `ZSCAN` step asks for, and one bulk action moves per round trip.
const BATCH: usize = 500;

/// How the dead set is trimmed after a kill: a worker's `dead_max_jobs` and `dead_timeout`
/// ([`WorkerConfig::dead_limits`](crate::worker::WorkerConfig::dead_limits); Sidekiq's
/// defaults, 10,000 jobs and 180 days, unless set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLimits {
    /// The most jobs kept.
    pub max_jobs: usize,
    /// How long a job is kept.
    pub timeout: Duration,
}

impl Default for DeadLimits {
    /// Sidekiq's: 10,000 jobs, 180 days.
    fn default() -> Self {
        Self {
            max_jobs: 10_000,
            timeout: Duration::from_secs(180 * 24 * 60 * 60),
        }
    }
}

/// How many matches a search returns at most.
pub const MAX_SEARCH_MATCHES: usize = 10_000;

/// How many members a [search](JobSet::search) reads at most: a filter on a set of millions
/// reads its newest (or oldest) 50,000 and says so, rather than the whole set on every request.
pub const MAX_SEARCH_SCANNED: usize = 50_000;

/// How many bytes of members a search reads at most (50,000 members of 1.3 KiB): big jobs
/// stop it sooner.
const MAX_SEARCH_BYTES: usize = 64 << 20;

/// The most dead jobs a kill keeps, whatever [`DeadLimits::max_jobs`] says: more than any
/// Redis holds, so a larger limit changes nothing, and small enough that `kill.lua`'s
/// `-(max + 1)`, computed as a Lua float, reaches `ZREMRANGEBYRANK` as an integer
/// (`usize::MAX` reached it as `-1.8446744073709552e+19`, refused after the move).
const MAX_DEAD_JOBS: usize = 1_000_000_000_000_000;

/// Which sorted set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// `schedule`: jobs to run later, scored by when.
    Scheduled,
    /// `retry`: failed jobs, scored by their next attempt.
    Retry,
    /// `dead`: jobs whose retries ran out, scored by when they died.
    Dead,
}

/// One job in a sorted set, with its score (a time in epoch seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct SortedEntry {
    /// The score: when it runs (scheduled, retry) or died (dead), in epoch seconds.
    pub score: f64,
    /// The job.
    pub record: JobRecord,
}

impl SortedEntry {
    /// The score as a time.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        time::from_epoch_seconds(self.score)
    }

    /// `<score>-<jid>`: what names the entry in the dashboard's addresses, as in Sidekiq's.
    pub fn key(&self) -> String {
        format!("{}-{}", self.score, self.record.jid())
    }

    /// Splits a [`key`](Self::key) into its score and jid.
    pub fn parse_key(key: &str) -> Option<(f64, &str)> {
        let (score, jid) = key.split_once('-')?;
        let score: f64 = score.parse().ok()?;
        score.is_finite().then_some((score, jid))
    }
}

/// A sorted set of jobs. [`ScheduledSet`], [`RetrySet`] and [`DeadSet`] name the three.
///
/// Actions take the entries a read returned and act on each only if it is still in the set,
/// exactly as read; they return how many they moved.
#[derive(Debug, Clone)]
pub struct JobSet {
    client: Client,
    kind: SetKind,
    dead_limits: DeadLimits,
}

impl JobSet {
    /// The set of `kind`.
    pub fn new(client: &Client, kind: SetKind) -> Self {
        Self {
            client: client.clone(),
            kind,
            dead_limits: DeadLimits::default(),
        }
    }

    /// Trims the dead set by `limits` after a kill, instead of Sidekiq's defaults: pass the
    /// worker's, [`WorkerConfig::dead_limits`](crate::worker::WorkerConfig::dead_limits).
    pub fn dead_limits(mut self, limits: DeadLimits) -> Self {
        self.dead_limits = limits;
        self
    }

    /// Which set this is.
    pub fn kind(&self) -> SetKind {
        self.kind
    }

    fn key(&self) -> String {
        let keys = self.client.keys();
        match self.kind {
            SetKind::Scheduled => keys.schedule(),
            SetKind::Retry => keys.retry(),
            SetKind::Dead => keys.dead(),
        }
    }

    /// How many jobs it holds.
    pub async fn size(&self) -> Result<usize, Error> {
        self.client
            .redis()
            .command(redis::cmd("ZCARD").arg(self.key()))
            .await
    }

    /// One page of it, by score: newest first means the latest time first.
    pub async fn page(&self, page: Page) -> Result<Vec<SortedEntry>, Error> {
        let len = self.size().await?;
        let Some((start, stop)) = page.oldest_first_range(len) else {
            return Ok(Vec::new());
        };
        let mut entries = self
            .entries(redis::cmd("ZRANGE").arg(self.key()).arg(start).arg(stop))
            .await?;
        if page.order == Order::NewestFirst {
            entries.reverse();
        }
        Ok(entries)
    }

    /// The entries whose stored JSON contains `substring` (matched as-is: `*`, `?` and
    /// brackets have no special meaning), by score as `order` says, at most `limit` and at most
    /// [`MAX_SEARCH_MATCHES`].
    ///
    /// It reads the set from the end `order` starts at, [`MAX_SEARCH_SCANNED`] members at most
    /// (and 64 MiB of them), so that a search of a huge set costs Redis a bounded amount of
    /// work. The result says how many it read and whether it stopped before the end.
    pub async fn search(
        &self,
        substring: &str,
        limit: usize,
        order: Order,
    ) -> Result<SearchResult, Error> {
        self.search_limited(substring, limit, order, MAX_SEARCH_SCANNED)
            .await
    }

    /// [`search`](Self::search), reading at most `max_scanned` members.
    pub async fn search_limited(
        &self,
        substring: &str,
        limit: usize,
        order: Order,
        max_scanned: usize,
    ) -> Result<SearchResult, Error> {
        let limit = limit.min(MAX_SEARCH_MATCHES);
        let key = self.key();
        let mut result = SearchResult {
            entries: Vec::new(),
            scanned: 0,
            size: self.size().await?,
            partial: false,
        };
        let mut resume = Resume::at_the_start(order);
        let mut bytes: usize = 0;
        let mut dropped = false;
        loop {
            // Big members read fewer at a time, so a window keeps to the bytes left.
            let average = bytes.checked_div(result.scanned).unwrap_or(0).max(1);
            let count = BATCH
                .min(max_scanned.saturating_sub(result.scanned))
                .min((MAX_SEARCH_BYTES.saturating_sub(bytes) / average).max(1));
            if count == 0 {
                result.partial = true;
                break;
            }
            // One member more than read tells whether the set goes on after this window.
            let window: Vec<(Vec<u8>, f64)> = self
                .client
                .redis()
                .command(&resume.window(&key, count + 1))
                .await?;
            let more = window.len() > count;
            for (member, score) in window.into_iter().take(count) {
                resume.passed(score);
                result.scanned += 1;
                bytes += member.len();
                if String::from_utf8_lossy(&member).contains(substring) {
                    if result.entries.len() < limit {
                        result.entries.push(entry((member, score)));
                    } else {
                        dropped = true;
                    }
                }
            }
            if !more {
                result.partial = dropped;
                break;
            }
            if bytes >= MAX_SEARCH_BYTES || result.entries.len() >= limit {
                result.partial = true;
                break;
            }
        }
        Ok(result)
    }

    /// The members a range command (`ZRANGE`, `ZRANGEBYSCORE`) reads, with their scores.
    async fn entries(&self, range: &mut redis::Cmd) -> Result<Vec<SortedEntry>, Error> {
        let members: Vec<(Vec<u8>, f64)> =
            self.client.redis().command(range.arg("WITHSCORES")).await?;
        Ok(members.into_iter().map(entry).collect())
    }

    /// The entry at exactly `score` with `jid`.
    pub async fn fetch(&self, score: f64, jid: &str) -> Result<Option<SortedEntry>, Error> {
        let entries = self
            .entries(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.key())
                    .arg(score)
                    .arg(score),
            )
            .await?;
        Ok(entries.into_iter().find(|entry| entry.record.jid() == jid))
    }

    /// The entry named by a dashboard [key](SortedEntry::key).
    pub async fn fetch_key(&self, key: &str) -> Result<Option<SortedEntry>, Error> {
        match SortedEntry::parse_key(key) {
            Some((score, jid)) => self.fetch(score, jid).await,
            None => Ok(None),
        }
    }

    /// The entry with `jid`, wherever it is scored: Redis scans the whole set for members
    /// holding it (`ZSCAN MATCH`), and sends back only those.
    pub async fn find_job(&self, jid: &str) -> Result<Option<SortedEntry>, Error> {
        let pattern = format!("*{}*", escape_glob(jid));
        let mut cursor: u64 = 0;
        loop {
            let (next, members): (u64, Vec<(Vec<u8>, f64)>) = self
                .client
                .redis()
                .command(
                    redis::cmd("ZSCAN")
                        .arg(self.key())
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(BATCH),
                )
                .await?;
            if let Some(found) = members
                .into_iter()
                .map(entry)
                .find(|entry| entry.record.jid() == jid)
            {
                return Ok(Some(found));
            }
            cursor = next;
            if cursor == 0 {
                return Ok(None);
            }
        }
    }

    /// Removes the entries, releasing the unique locks of those that hold one; returns how
    /// many were still there.
    pub async fn delete(&self, entries: &[SortedEntry]) -> Result<usize, Error> {
        if entries.is_empty() {
            return Ok(0);
        }
        let key = self.key();
        let mut pipeline = redis::pipe();
        let mut plain = redis::cmd("ZREM");
        plain.arg(&key);
        let mut any_plain = false;
        for entry in entries {
            match entry.record.unique_release() {
                Some(release) => {
                    pipeline.add_command(unique_remove(
                        self.client.keys(),
                        &key,
                        "zset",
                        &entry.record,
                        &release,
                    ));
                }
                None => {
                    plain.arg(entry.record.raw_bytes());
                    any_plain = true;
                }
            }
        }
        if any_plain {
            pipeline.add_command(plain);
        }
        let removed: Vec<usize> = self.client.redis().query(&pipeline).await?;
        Ok(removed.into_iter().sum())
    }

    /// Pushes the entries to their queues to run now, as they are (the scheduled page's "Add
    /// to queue"); returns how many moved. Entries that are not job JSON stay where they are.
    pub async fn add_to_queue(&self, entries: &[SortedEntry]) -> Result<usize, Error> {
        self.enqueue(entries, false).await
    }

    /// Pushes the entries to their queues to run now, one retry fewer on their count, as
    /// Sidekiq's "Retry now" does; returns how many moved.
    pub async fn retry(&self, entries: &[SortedEntry]) -> Result<usize, Error> {
        self.enqueue(entries, true).await
    }

    /// Moves the entries to the dead set, which is then trimmed as the worker trims it; returns
    /// how many moved. Entries of the dead set itself stay where they are.
    pub async fn kill(&self, entries: &[SortedEntry]) -> Result<usize, Error> {
        if entries.is_empty() || self.kind == SetKind::Dead {
            return Ok(0);
        }
        let now = Timestamp::now().as_epoch_seconds();
        let cutoff = now - self.dead_limits.timeout.as_secs_f64();
        let keys = self.client.keys();
        let mut invocation = scripts::KILL.prepare_invoke();
        invocation
            .key(self.key())
            .key(keys.dead())
            .arg(now)
            .arg(cutoff)
            .arg(self.dead_limits.max_jobs.min(MAX_DEAD_JOBS));
        let mut locks = 0;
        for entry in entries {
            invocation.arg(entry.record.raw_bytes());
            match entry.record.unique_release() {
                Some(release) => {
                    invocation.key(keys.unique(&release.digest));
                    locks += 1;
                    // KEYS[1] and KEYS[2] come first.
                    invocation.arg(locks + 2).arg(release.jid);
                }
                None => {
                    invocation.arg(0).arg("");
                }
            }
        }
        self.client.redis().script(&invocation).await
    }

    /// Deletes every job in the set; returns how many there were. The scheduled and retry
    /// sets are deleted a batch at a time, so each unique job's lock is released with it; the
    /// dead set (whose jobs released theirs when they died) at once.
    pub async fn clear(&self) -> Result<usize, Error> {
        if self.kind != SetKind::Dead {
            return self.for_all(Bulk::Delete).await;
        }
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .cmd("ZCARD")
            .arg(self.key())
            .cmd("UNLINK")
            .arg(self.key())
            .ignore();
        let (count,): (usize,) = self.client.redis().query(&pipeline).await?;
        Ok(count)
    }

    /// [`retry`](Self::retry) for every job in the set; returns how many moved.
    pub async fn retry_all(&self) -> Result<usize, Error> {
        self.for_all(Bulk::Retry).await
    }

    /// [`add_to_queue`](Self::add_to_queue) for every job in the set; returns how many moved.
    pub async fn add_all_to_queue(&self) -> Result<usize, Error> {
        self.for_all(Bulk::AddToQueue).await
    }

    /// [`kill`](Self::kill) for every job in the set; returns how many moved.
    pub async fn kill_all(&self) -> Result<usize, Error> {
        self.for_all(Bulk::Kill).await
    }

    /// Runs `action` on the set a batch at a time, earliest first, over as many entries as the
    /// set held when it began: jobs that fail again meanwhile and return are not chased, so
    /// the call ends. Entries the action leaves alone (not job JSON) are skipped.
    async fn for_all(&self, action: Bulk) -> Result<usize, Error> {
        let mut remaining = self.size().await?;
        let mut total = 0;
        let mut skip = 0;
        while remaining > 0 {
            let page = Page {
                offset: skip,
                count: BATCH.min(remaining),
                order: Order::OldestFirst,
            };
            let batch = self.page(page).await?;
            if batch.is_empty() {
                break;
            }
            remaining -= batch.len();
            let left_alone = match action {
                Bulk::Retry | Bulk::AddToQueue => {
                    batch.iter().filter(|entry| !entry.record.is_job()).count()
                }
                Bulk::Kill if self.kind == SetKind::Dead => batch.len(),
                Bulk::Kill | Bulk::Delete => 0,
            };
            total += match action {
                Bulk::Retry => self.retry(&batch).await?,
                Bulk::AddToQueue => self.add_to_queue(&batch).await?,
                Bulk::Kill => self.kill(&batch).await?,
                Bulk::Delete => self.delete(&batch).await?,
            };
            skip += left_alone;
        }
        Ok(total)
    }

    /// Pushes the entries to their queues as Sidekiq's `SortedEntry#retry` and
    /// `#add_to_queue` do: the stored JSON with `at` removed, `enqueued_at` now, a `queue` and
    /// `jid` when it has none, and (`one_retry_fewer`) `retry_count` one lower; every other
    /// field keeps its exact text. Entries that are not JSON objects stay where they are.
    async fn enqueue(
        &self,
        entries: &[SortedEntry],
        one_retry_fewer: bool,
    ) -> Result<usize, Error> {
        let keys = self.client.keys();
        let now = Timestamp::now();
        let mut pushes: Vec<(&[u8], String, String)> = Vec::new();
        for entry in entries {
            let member: &[u8] = entry.record.raw().as_ref();
            let Ok(mut job) = RawJob::parse(member) else {
                continue;
            };
            job.remove("at");
            if one_retry_fewer {
                one_retry_fewer_on(&mut job);
            }
            let queue = job.prepare_push(now);
            pushes.push((member, queue, job.to_json()));
        }
        let set = self.key();
        let mut moved = 0;
        let mut call = Promotion::new(keys, &set);
        for (member, queue, json) in &pushes {
            if !call.has_room_for(member.len()) {
                moved += call.run(self.client.redis(), now).await?.moved;
                call = Promotion::new(keys, &set);
            }
            call.push(member, queue, keys.queue(queue), json.as_bytes());
        }
        moved += call.run(self.client.redis(), now).await?.moved;
        Ok(moved)
    }
}

/// Sidekiq's `msg["retry_count"] -= 1 if msg["retry_count"]`: an integer stays an integer, a
/// float a float; a value that is not a number is left as it is.
fn one_retry_fewer_on(job: &mut RawJob) {
    let Some(text) = job.get("retry_count").map(|raw| raw.get().to_owned()) else {
        return;
    };
    if let Ok(count) = text.parse::<i128>() {
        job.set("retry_count", count.saturating_sub(1));
    } else if let Ok(count) = text.parse::<f64>() {
        job.set("retry_count", count - 1.0);
    }
}

/// An action on a whole set.
#[derive(Clone, Copy)]
enum Bulk {
    Retry,
    AddToQueue,
    Kill,
    Delete,
}

/// The `EVAL` of `scripts/unique_remove.lua` that removes `record` from `key` (`kind`: `list`
/// or `zset`) and releases its lock in the same step.
pub(super) fn unique_remove(
    keys: &crate::redis::keys::Keys,
    key: &str,
    kind: &str,
    record: &JobRecord,
    release: &crate::unique::Release,
) -> redis::Cmd {
    let mut command = redis::cmd("EVAL");
    command
        .arg(scripts::UNIQUE_REMOVE_SOURCE.as_str())
        .arg(2)
        .arg(key)
        .arg(keys.unique(&release.digest))
        .arg(kind)
        .arg(record.raw_bytes())
        .arg(&release.jid);
    command
}

fn entry((raw, score): (Vec<u8>, f64)) -> SortedEntry {
    SortedEntry {
        score,
        record: JobRecord::from_bytes(raw),
    }
}

/// What a [search](JobSet::search) found, and how much of the set it read to find it.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// The matching entries, by score in the order asked.
    pub entries: Vec<SortedEntry>,
    /// How many members it read, from the end the order starts at: the newest first, or the
    /// oldest.
    pub scanned: usize,
    /// How many members the set held when it began.
    pub size: usize,
    /// Whether it stopped before the end of the set: it read as many members (or bytes) as it
    /// may, or found as many matches as asked. More entries may match than `entries` holds.
    pub partial: bool,
}

/// Where a search goes on reading: past the last score it read, skipping the members with
/// that very score it read already. Reading by score rather than by rank neither skips nor
/// repeats a member when others come and go meanwhile (unless they come or go at that very
/// score).
struct Resume {
    order: Order,
    last: Option<f64>,
    read_at_last: usize,
}

impl Resume {
    fn at_the_start(order: Order) -> Self {
        Self {
            order,
            last: None,
            read_at_last: 0,
        }
    }

    /// The command reading the next `count` members, with their scores.
    fn window(&self, key: &str, count: usize) -> redis::Cmd {
        let mut command = match self.order {
            Order::OldestFirst => redis::cmd("ZRANGEBYSCORE"),
            Order::NewestFirst => redis::cmd("ZREVRANGEBYSCORE"),
        };
        command.arg(key);
        let (start, end) = match self.order {
            Order::OldestFirst => ("-inf", "+inf"),
            Order::NewestFirst => ("+inf", "-inf"),
        };
        match self.last {
            Some(score) => command.arg(score),
            None => command.arg(start),
        };
        command
            .arg(end)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(self.read_at_last)
            .arg(count);
        command
    }

    fn passed(&mut self, score: f64) {
        if self.last == Some(score) {
            self.read_at_last += 1;
        } else {
            self.last = Some(score);
            self.read_at_last = 1;
        }
    }
}

macro_rules! named_set {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(JobSet);

        impl $name {
            /// The set, in `client`'s Redis.
            pub fn new(client: &Client) -> Self {
                Self(JobSet::new(client, $kind))
            }

            /// See [`JobSet::dead_limits`].
            pub fn dead_limits(self, limits: DeadLimits) -> Self {
                Self(self.0.dead_limits(limits))
            }
        }

        impl Deref for $name {
            type Target = JobSet;

            fn deref(&self) -> &JobSet {
                &self.0
            }
        }
    };
}

named_set!(
    /// `schedule`: jobs pushed with `perform_in`/`perform_at`, until they are due.
    ScheduledSet,
    SetKind::Scheduled
);
named_set!(
    /// `retry`: failed jobs waiting for their next attempt.
    RetrySet,
    SetKind::Retry
);
named_set!(
    /// `dead`: jobs whose retries ran out (the morgue), kept for 180 days or 10,000 jobs.
    DeadSet,
    SetKind::Dead
);

#[cfg(test)]
mod tests {
    use super::{SortedEntry, escape_glob};

    #[test]
    fn keys_round_trip() {
        let (score, jid) = SortedEntry::parse_key("1700000000.123456-abc123").unwrap();
        assert_eq!(score, 1_700_000_000.123_456);
        assert_eq!(jid, "abc123");
        assert!(SortedEntry::parse_key("nan-abc").is_none());
        assert!(SortedEntry::parse_key("abc").is_none());
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}

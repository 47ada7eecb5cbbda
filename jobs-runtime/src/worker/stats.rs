//! Sidekiq's `stat:processed` and `stat:failed` counters, total and daily.
//!
//! Counted in memory as jobs finish and flushed in one round trip every few seconds and at exit,
//! as Sidekiq does, so counting costs no Redis call per job.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;

use crate::error::Error;
use crate::redis::Connection;
use crate::redis::keys::{Counter, Keys};

/// How long daily counters are kept: 5 years, as Sidekiq keeps them.
const DAILY_TTL_SECONDS: i64 = 5 * 365 * 24 * 60 * 60;

/// Counts not yet written to Redis.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    processed: AtomicU64,
    failed: AtomicU64,
    /// Jobs dropped unrun, past their `expires_in` (`jobs:stat:expired`).
    expired: AtomicU64,
    /// Jobs rescheduled over a limiter's limit (`jobs:stat:overrated`).
    overrated: AtomicU64,
}

impl Counters {
    /// Counts one finished run (`processed` counts failures too, as in Sidekiq).
    pub(crate) fn record(&self, failed: bool) {
        self.processed.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one job dropped unrun because it expired (not a run: `processed` is unchanged).
    pub(crate) fn record_expired(&self) {
        self.expired.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one job rescheduled because a limiter was over its limit (a run, not a failure).
    pub(crate) fn record_overrated(&self) {
        self.overrated.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the counts so far in one round trip; on failure they are kept for the next flush.
    pub(crate) async fn flush(&self, redis: &Connection, keys: &Keys) -> Result<(), Error> {
        let processed = self.processed.swap(0, Ordering::Relaxed);
        let failed = self.failed.swap(0, Ordering::Relaxed);
        let expired = self.expired.swap(0, Ordering::Relaxed);
        let overrated = self.overrated.swap(0, Ordering::Relaxed);
        if processed == 0 && failed == 0 && expired == 0 && overrated == 0 {
            return Ok(());
        }
        let today = Utc::now().date_naive();
        let mut pipeline = redis::pipe();
        for (counter, count) in [(Counter::Processed, processed), (Counter::Failed, failed)] {
            if count == 0 {
                continue;
            }
            let daily = keys.daily_stat(counter, today);
            pipeline.incr(keys.stat(counter), count).ignore();
            pipeline.incr(&daily, count).ignore();
            pipeline.expire(&daily, DAILY_TTL_SECONDS).ignore();
        }
        if expired > 0 {
            pipeline.incr(keys.expired(), expired).ignore();
        }
        if overrated > 0 {
            pipeline.incr(keys.overrated(), overrated).ignore();
        }
        let result = redis.query::<()>(&pipeline).await;
        if result.is_err() {
            self.processed.fetch_add(processed, Ordering::Relaxed);
            self.failed.fetch_add(failed, Ordering::Relaxed);
            self.expired.fetch_add(expired, Ordering::Relaxed);
            self.overrated.fetch_add(overrated, Ordering::Relaxed);
        }
        result
    }
}

//! Writing the counted runs into Sidekiq 8's keys, in one pipeline per flush (with the
//! heartbeat, and at exit): never a Redis call per job.

use chrono::{DateTime, Utc};

use super::tracker::Tally;
use crate::redis::keys::Keys;

/// How long a minute's hash and histogram live: 8 hours (Sidekiq's `SHORT_TERM`).
pub const MINUTE_TTL_SECONDS: i64 = 8 * 60 * 60;

/// How long a 10-minute rollup lives: 3 days (Sidekiq's `MID_TERM`).
pub const TEN_MINUTES_TTL_SECONDS: i64 = 3 * 24 * 60 * 60;

/// Adds to `pipeline` the commands that write `pending` (`(class, minute, tally)`, the minute
/// in epoch seconds / 60): per class and minute, `HINCRBY` of `<Class>|p`, `|f` (when some
/// failed) and `|ms` (when some succeeded) into the minute's hash and its 10-minute rollup, and
/// `BITFIELD … OVERFLOW SAT INCRBY u16 #i n` into the minute's histogram; then an `EXPIRE` of
/// each key written. Returns how many commands it added.
pub(crate) fn write(
    pipeline: &mut redis::Pipeline,
    keys: &Keys,
    pending: &[(String, i64, Tally)],
) -> usize {
    let mut commands = 0;
    let mut minutes: Vec<i64> = pending.iter().map(|(_, minute, _)| *minute).collect();
    minutes.sort_unstable();
    minutes.dedup();
    for minute in minutes {
        let Some(at) = DateTime::<Utc>::from_timestamp(minute * 60, 0) else {
            continue;
        };
        let hashes = [
            (keys.metrics_minute(at), MINUTE_TTL_SECONDS),
            (keys.metrics_ten_minutes(at), TEN_MINUTES_TTL_SECONDS),
        ];
        for (class, _, tally) in pending.iter().filter(|(_, m, _)| *m == minute) {
            for (hash, _) in &hashes {
                pipeline
                    .hincr(hash, format!("{class}|p"), tally.processed)
                    .ignore();
                commands += 1;
                if tally.failed > 0 {
                    pipeline
                        .hincr(hash, format!("{class}|f"), tally.failed)
                        .ignore();
                    commands += 1;
                }
                if let Some(ms) = tally.ms {
                    pipeline.hincr(hash, format!("{class}|ms"), ms).ignore();
                    commands += 1;
                }
            }
            if tally.histogram.total() > 0 {
                let key = keys.metrics_histogram(class, at);
                let command = pipeline
                    .cmd("BITFIELD")
                    .arg(&key)
                    .arg("OVERFLOW")
                    .arg("SAT");
                for (index, count) in tally.histogram.counts.iter().enumerate() {
                    if *count > 0 {
                        command
                            .arg("INCRBY")
                            .arg("u16")
                            .arg(format!("#{index}"))
                            .arg(*count);
                    }
                }
                command.ignore();
                pipeline.expire(&key, MINUTE_TTL_SECONDS).ignore();
                commands += 2;
            }
        }
        for (hash, ttl) in &hashes {
            pipeline.expire(hash, *ttl).ignore();
            commands += 1;
        }
    }
    commands
}

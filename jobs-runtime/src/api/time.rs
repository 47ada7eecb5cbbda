//! Times as jobs store them, read as [`Timestamp`] reads them (a float is epoch seconds, as
//! Sidekiq 6 and 7 and `jobs` write; an integer is epoch milliseconds, as Sidekiq 8 writes), plus
//! the whole seconds Sidekiq 6 and 7 (and `jobs`) write as a running job's `run_at`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::timestamp::Timestamp;

/// Integers below this are whole seconds: as milliseconds they would lie before 1973.
const MILLISECONDS_ABOVE: u64 = 100_000_000_000;

/// The time a JSON value holds, if it is a number.
pub(crate) fn from_json(value: &Value) -> Option<DateTime<Utc>> {
    let seconds = match value.as_u64() {
        // Exact: below MILLISECONDS_ABOVE, far under 2^53.
        Some(whole) if whole < MILLISECONDS_ABOVE => whole as f64,
        _ => Timestamp::deserialize(value).ok()?.as_epoch_seconds(),
    };
    from_epoch_seconds(seconds)
}

/// The time `seconds` after the epoch, if representable.
pub(crate) fn from_epoch_seconds(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() {
        return None;
    }
    let micros = (seconds * 1_000_000.0).round();
    if micros.abs() > 9.0e18 {
        return None;
    }
    // Whole (rounded) and within i64 (checked above), so the cast is exact.
    DateTime::from_timestamp_micros(micros as i64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn reads_seconds_and_milliseconds() {
        let seconds = super::from_json(&json!(1_700_000_000.5)).unwrap();
        let millis = super::from_json(&json!(1_700_000_000_500_i64)).unwrap();
        assert_eq!(seconds, millis);
        assert_eq!(seconds.timestamp(), 1_700_000_000);
        assert!(super::from_json(&json!("soon")).is_none());
        assert!(super::from_json(&json!(null)).is_none());
        // A running job's `run_at`: whole seconds.
        let run_at = super::from_json(&json!(1_700_000_000_u64)).unwrap();
        assert_eq!(run_at.timestamp(), 1_700_000_000);
    }
}

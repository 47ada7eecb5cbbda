//! Points in time as Sidekiq stores them.
//!
//! Sidekiq 6 and 7 write float epoch seconds (`1795369595.3622906`); Sidekiq 8 writes integer
//! epoch milliseconds (`1795369595362`). `jobs` reads both (a JSON float is seconds, a JSON
//! integer is milliseconds, as Sidekiq 8 decides) and always writes float seconds with a decimal
//! point, which every version reads correctly.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A point in time, held as epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Timestamp(f64);

impl Timestamp {
    /// The current time, to the microsecond.
    pub fn now() -> Self {
        Self(epoch_micros() as f64 / 1_000_000.0)
    }

    /// A timestamp from float epoch seconds.
    pub fn from_epoch_seconds(seconds: f64) -> Self {
        Self(seconds)
    }

    /// Float epoch seconds: the form written to Redis and used as sorted-set scores.
    pub fn as_epoch_seconds(self) -> f64 {
        self.0
    }

    /// The same instant as a `chrono` UTC time (to the microsecond). Times beyond chrono's
    /// range end at its first or last instant; a time that is not a number is the epoch.
    pub fn to_datetime(self) -> DateTime<Utc> {
        let micros = (self.0 * 1_000_000.0).round() as i64;
        DateTime::from_timestamp_micros(micros).unwrap_or(if self.0 > 0.0 {
            DateTime::<Utc>::MAX_UTC
        } else if self.0 < 0.0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::UNIX_EPOCH
        })
    }
}

/// Microseconds since the Unix epoch on the system clock, rounded down (negative before it).
/// Read straight from the clock: `Utc::now()` would also work out the calendar date, which
/// every job's path paid several times over for nothing.
pub(crate) fn epoch_micros() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        // Before the epoch, rounded down as after it (as chrono does).
        Err(before) => {
            -i64::try_from(before.duration().as_nanos().div_ceil(1_000)).unwrap_or(i64::MAX)
        }
    }
}

/// Whole seconds since the Unix epoch on the system clock, as `Utc::now().timestamp()` gives
/// them (rounded down), without working out the date.
pub(crate) fn epoch_seconds() -> i64 {
    epoch_micros().div_euclid(1_000_000)
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(time: DateTime<Utc>) -> Self {
        Self(time.timestamp_micros() as f64 / 1_000_000.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_datetime().to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // serde_json always prints an f64 with a decimal point, which Sidekiq 8 needs to read it
        // as seconds rather than milliseconds.
        serializer.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsOrMillis;

        impl Visitor<'_> for SecondsOrMillis {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("epoch seconds as a float or epoch milliseconds as an integer")
            }

            fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Timestamp, E> {
                Ok(Timestamp(seconds))
            }

            fn visit_i64<E: de::Error>(self, millis: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(millis as f64 / 1000.0))
            }

            fn visit_u64<E: de::Error>(self, millis: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(millis as f64 / 1000.0))
            }
        }

        deserializer.deserialize_any(SecondsOrMillis)
    }
}

#[cfg(test)]
mod tests {
    use super::Timestamp;

    #[test]
    fn floats_are_seconds_and_integers_are_milliseconds() {
        let sidekiq7: Timestamp = serde_json::from_str("1795369595.5").unwrap();
        let sidekiq8: Timestamp = serde_json::from_str("1795369595500").unwrap();
        assert_eq!(sidekiq7, sidekiq8);
        assert_eq!(sidekiq7.as_epoch_seconds(), 1795369595.5);
    }

    #[test]
    fn written_as_float_seconds_with_a_decimal_point() {
        let whole = Timestamp::from_epoch_seconds(1795369595.0);
        assert_eq!(serde_json::to_string(&whole).unwrap(), "1795369595.0");
    }

    #[test]
    fn converts_to_and_from_chrono() {
        let time = chrono::DateTime::parse_from_rfc3339("2026-11-22T09:00:00.25Z")
            .unwrap()
            .to_utc();
        let stamp = Timestamp::from(time);
        assert_eq!(stamp.as_epoch_seconds(), 1795338000.25);
        assert_eq!(stamp.to_datetime(), time);
    }

    #[test]
    fn times_beyond_chronos_range_end_at_its_edges() {
        use chrono::{DateTime, Utc};
        let last = Timestamp::from(DateTime::<Utc>::MAX_UTC);
        assert_eq!(last.to_datetime(), DateTime::<Utc>::MAX_UTC);
        let huge = Timestamp::from_epoch_seconds(1e20);
        assert_eq!(huge.to_datetime(), DateTime::<Utc>::MAX_UTC);
        let ancient = Timestamp::from_epoch_seconds(-1e20);
        assert_eq!(ancient.to_datetime(), DateTime::<Utc>::MIN_UTC);
        let nan = Timestamp::from_epoch_seconds(f64::NAN);
        assert_eq!(nan.to_datetime(), DateTime::UNIX_EPOCH);
    }
}

//! When a periodic job falls due: a cron expression read in an IANA time zone.
//!
//! The expression is parsed by `croner` (maintained, POSIX/Vixie semantics, 5 or 6 fields,
//! names of days and months, `@hourly` … `@yearly`, and daylight-saving rules for both
//! directions); the zone is `chrono-tz`'s copy of the IANA database. Neither is written here.
//!
//! Daylight saving, as `croner` resolves it and `docs/periodic.md` documents:
//! - **clocks go forward**: a time of day the change skips (02:30 in Berlin on the last Sunday
//!   of March) runs once, at the first instant after the gap (03:00);
//! - **clocks go back**: a time of day that happens twice runs once, at the first of the two.
//!   A pattern of every minute or every hour (a `*` or a step in the minute or hour field) runs
//!   at both, as the hour happened twice.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::error::Error;

/// A cron expression in a time zone: the ticks of one periodic entry.
#[derive(Clone)]
pub struct Schedule {
    /// The parsed expression.
    cron: Cron,
    /// The expression as written.
    expression: String,
    /// The zone its times of day are read in.
    zone: Tz,
}

impl Schedule {
    /// The schedule of `expression` in `zone` (an IANA name such as `Europe/Berlin`, or
    /// `UTC`): 5 fields, or 6 with seconds first, or a nickname such as `@daily`. The error
    /// ([`Error::Config`]) says what is wrong, in words a config file's author can act on.
    pub fn parse(expression: &str, zone: &str) -> Result<Self, Error> {
        Self::read(expression, zone).map_err(|reason| Error::Config {
            origin: "a periodic schedule".to_owned(),
            reason,
        })
    }

    /// [`parse`](Self::parse), its error as the bare reason, for callers that say where the
    /// schedule came from.
    pub(crate) fn read(expression: &str, zone: &str) -> Result<Self, String> {
        let cron = parse_cron(expression)?;
        let zone = parse_zone(zone)?;
        Ok(Self {
            cron,
            expression: expression.trim().to_owned(),
            zone,
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first tick strictly after `time`; `None` when there is none (a 30 February).
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Tz>> {
        self.cron
            .find_next_occurrence(&time.with_timezone(&self.zone), false)
            .ok()
    }

    /// The last tick at or before `time`, if any within the search limit.
    pub fn last_at_or_before(&self, time: DateTime<Utc>) -> Option<DateTime<Tz>> {
        self.cron
            .find_previous_occurrence(&time.with_timezone(&self.zone), true)
            .ok()
    }

    /// The ticks after `after` up to and including `until`, oldest first, at most `limit` of
    /// them (the newest `limit` when there are more).
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Tz>> {
        let mut ticks = Vec::new();
        let mut cursor = until;
        // Walk back from `until`: a long gap then costs `limit` steps, not one per tick.
        let mut inclusive = true;
        while ticks.len() < limit {
            let Ok(tick) = self
                .cron
                .find_previous_occurrence(&cursor.with_timezone(&self.zone), inclusive)
            else {
                break;
            };
            if tick.with_timezone(&Utc) <= after {
                break;
            }
            cursor = tick.with_timezone(&Utc);
            inclusive = false;
            ticks.push(tick);
        }
        ticks.reverse();
        ticks
    }

    /// The schedule in words, with its zone: "At 03:00 (Europe/Berlin)".
    pub fn describe(&self) -> String {
        let words = self.cron.describe();
        let words = words.trim_end_matches('.');
        format!("{words} ({})", self.zone.name())
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expression", &self.expression)
            .field("zone", &self.zone.name())
            .finish()
    }
}

/// Parses a cron expression: 5 fields (minute first) or 6 (seconds first), or a nickname; the
/// error is the reason.
/// `#[job(cron = "…")]` makes the same check at compile time, with the same parser settings, in
/// `jobs-macros` (which cannot depend on this crate).
pub(crate) fn parse_cron(expression: &str) -> Result<Cron, String> {
    let trimmed = expression.trim();
    if trimmed.is_empty() {
        return Err("the cron expression is empty".to_owned());
    }
    let fields = trimmed.split_whitespace().count();
    if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "`{trimmed}` has {fields} fields; a cron expression has 5 (minute hour \
             day-of-month month day-of-week) or 6 (seconds first)"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|error| format!("`{trimmed}` is not a cron expression: {error}"))
}

/// Parses an IANA time zone name; the error is the reason.
pub(crate) fn parse_zone(zone: &str) -> Result<Tz, String> {
    Tz::from_str(zone.trim()).map_err(|_| {
        format!("`{zone}` is not an IANA time zone name (such as `UTC` or `Europe/Berlin`)")
    })
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, Timelike};

    use super::*;
    use crate::periodic::utc;

    /// Every tick of `schedule` in the UTC interval `(from, to]`, as RFC 3339 in its zone.
    fn ticks(schedule: &Schedule, from: &str, to: &str) -> Vec<String> {
        schedule
            .ticks_between(utc(from), utc(to), 10_000)
            .iter()
            .map(|tick| tick.to_rfc3339())
            .collect()
    }

    #[test]
    fn five_and_six_fields_names_steps_lists_and_nicknames() {
        for ok in [
            "0 3 * * *",
            "*/15 9-17 * * MON-FRI",
            "0 0 1,15 JAN,JUL *",
            "30 */10 * * * *",
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
        ] {
            assert!(parse_cron(ok).is_ok(), "{ok}: {:?}", parse_cron(ok).err());
        }
        for bad in [
            "",
            "0 3 * *",
            "0 0 3 * * * 2026",
            "61 * * * *",
            "0 3 * * FUNDAY",
            "@often",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad}");
        }
        assert!(
            parse_cron("0 3 * *").unwrap_err().contains("has 4 fields"),
            "{:?}",
            parse_cron("0 3 * *")
        );
        let error = Schedule::parse("0 3 * *", "UTC").unwrap_err();
        assert!(
            matches!(&error, Error::Config { reason, .. } if reason.contains("has 4 fields")),
            "{error}"
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_match_either_as_in_vixie_cron() {
        // The 13th, and every Friday: January 2026's 13th is a Tuesday.
        let schedule = Schedule::parse("0 0 13 * FRI", "UTC").unwrap();
        let days: Vec<u32> = schedule
            .ticks_between(
                utc("2026-01-01T00:00:00Z"),
                utc("2026-01-31T23:00:00Z"),
                100,
            )
            .iter()
            .map(chrono::Datelike::day)
            .collect();
        assert_eq!(days, [2, 9, 13, 16, 23, 30]);
    }

    #[test]
    fn a_bad_zone_says_what_a_zone_is() {
        let error = parse_zone("Europe/Atlantis").unwrap_err();
        assert!(error.contains("IANA"), "{error}");
        assert_eq!(parse_zone("Europe/Berlin").unwrap(), Tz::Europe__Berlin);
    }

    #[test]
    fn six_fields_tick_every_given_second() {
        let schedule = Schedule::parse("*/20 * * * * *", "UTC").unwrap();
        assert_eq!(
            ticks(&schedule, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"),
            [
                "2026-01-01T00:00:20+00:00",
                "2026-01-01T00:00:40+00:00",
                "2026-01-01T00:01:00+00:00"
            ]
        );
    }

    #[test]
    fn clocks_going_forward_run_a_skipped_time_once_after_the_gap() {
        // Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST.
        let berlin = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            ticks(&berlin, "2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z"),
            [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00"
            ]
        );
        // New York, 8 March 2026: 02:00 EST becomes 03:00 EDT.
        let new_york = Schedule::parse("30 2 * * *", "America/New_York").unwrap();
        let on_the_day = ticks(&new_york, "2026-03-08T00:00:00Z", "2026-03-09T00:00:00Z");
        assert_eq!(on_the_day, ["2026-03-08T03:00:00-04:00"]);
    }

    #[test]
    fn clocks_going_back_run_a_repeated_time_once() {
        // Berlin, 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let berlin = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            ticks(&berlin, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z"),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        // New York, 1 November 2026: 01:30 happens twice.
        let new_york = Schedule::parse("30 1 * * *", "America/New_York").unwrap();
        assert_eq!(
            ticks(&new_york, "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"),
            ["2026-11-01T01:30:00-04:00"]
        );
        // Every 30 minutes is an interval: the repeated hour has its two half hours twice.
        let every = Schedule::parse("*/30 * * * *", "Europe/Berlin").unwrap();
        let repeated = ticks(&every, "2026-10-24T23:45:00Z", "2026-10-25T01:15:00Z");
        assert_eq!(repeated.len(), 3, "{repeated:?}");
    }

    #[test]
    fn leap_days_and_the_31st() {
        let leap = Schedule::parse("0 12 29 2 *", "UTC").unwrap();
        let next = leap.next_after(utc("2026-03-01T00:00:00Z")).unwrap();
        assert_eq!(
            next.date_naive(),
            NaiveDate::from_ymd_opt(2028, 2, 29).unwrap()
        );
        // `@monthly` is the 1st; the 31st runs only in months that have one.
        let monthly = Schedule::parse("@monthly", "UTC").unwrap();
        assert_eq!(
            ticks(&monthly, "2026-01-15T00:00:00Z", "2026-04-15T00:00:00Z"),
            [
                "2026-02-01T00:00:00+00:00",
                "2026-03-01T00:00:00+00:00",
                "2026-04-01T00:00:00+00:00"
            ]
        );
        let the_31st = Schedule::parse("0 0 31 * *", "UTC").unwrap();
        let months: Vec<u32> = the_31st
            .ticks_between(
                utc("2026-01-01T00:00:00Z"),
                utc("2026-12-31T23:00:00Z"),
                100,
            )
            .iter()
            .map(chrono::Datelike::month)
            .collect();
        assert_eq!(months, [1, 3, 5, 7, 8, 10, 12]);
    }

    #[test]
    fn ticks_between_keeps_the_newest_when_capped() {
        let every_second = Schedule::parse("* * * * * *", "UTC").unwrap();
        let capped =
            every_second.ticks_between(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T01:00:00Z"), 3);
        let seconds: Vec<u32> = capped.iter().map(|tick| tick.second()).collect();
        assert_eq!(seconds, [58, 59, 0]);
        assert_eq!(capped[2].with_timezone(&Utc), utc("2026-01-01T01:00:00Z"));
    }

    #[test]
    fn the_description_names_the_zone() {
        let schedule = Schedule::parse("0 3 * * *", "Europe/Berlin").unwrap();
        let words = schedule.describe();
        assert!(words.contains("03:00"), "{words}");
        assert!(words.ends_with("(Europe/Berlin)"), "{words}");
    }
}

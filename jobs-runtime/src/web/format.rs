//! How numbers, times and long values are written on the pages.

use chrono::{DateTime, Utc};

/// `1234567` as `1,234,567`.
pub(crate) fn number(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The exact time, as the hover text shows it: `2026-11-22 21:56:02 UTC`.
pub(crate) fn exact(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `at` relative to `now`: `just now`, `3 minutes ago`, `in 2 hours`.
pub(crate) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    let span = seconds.unsigned_abs();
    if span < 5 {
        return "just now".to_owned();
    }
    let amount = span_words(span);
    if seconds >= 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

fn span_words(seconds: u64) -> String {
    let (count, unit) = match seconds {
        0..60 => (seconds, "second"),
        60..3_600 => (seconds / 60, "minute"),
        3_600..86_400 => (seconds / 3_600, "hour"),
        86_400..2_592_000 => (seconds / 86_400, "day"),
        2_592_000..31_536_000 => (seconds / 2_592_000, "month"),
        _ => (seconds / 31_536_000, "year"),
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}

/// A wait in seconds, short: `0.25 s`, `42 s`, `3 min`, `5 h`, `2 d`.
pub(crate) fn latency(seconds: f64) -> String {
    if !seconds.is_finite() || seconds <= 0.0 {
        return "0 s".to_owned();
    }
    if seconds < 10.0 {
        format!("{seconds:.2} s")
    } else if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7_200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else if seconds < 172_800.0 {
        format!("{:.0} h", seconds / 3_600.0)
    } else {
        format!("{:.0} d", seconds / 86_400.0)
    }
}

/// Kilobytes as `12.3 MB`.
pub(crate) fn kilobytes(kb: u64) -> String {
    let kb = kb as f64;
    if kb < 1_024.0 {
        format!("{kb:.0} KB")
    } else if kb < 1_048_576.0 {
        format!("{:.1} MB", kb / 1_024.0)
    } else {
        format!("{:.2} GB", kb / 1_048_576.0)
    }
}

/// `text` cut to `max` characters, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Arguments as a short line: each JSON-encoded, comma-separated, cut to `max` characters.
pub(crate) fn args(values: &[serde_json::Value], max: usize) -> String {
    let joined = values
        .iter()
        .map(serde_json::Value::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    truncate(&joined, max)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn numbers_have_separators() {
        assert_eq!(super::number(0), "0");
        assert_eq!(super::number(999), "999");
        assert_eq!(super::number(1_000), "1,000");
        assert_eq!(super::number(1_234_567), "1,234,567");
    }

    #[test]
    fn times_read_naturally() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        assert_eq!(super::relative(now, now), "just now");
        assert_eq!(
            super::relative(now - Duration::minutes(3), now),
            "3 minutes ago"
        );
        assert_eq!(super::relative(now - Duration::hours(1), now), "1 hour ago");
        assert_eq!(super::relative(now + Duration::days(2), now), "in 2 days");
        assert_eq!(super::exact(now), "2026-11-22 12:00:00 UTC");
    }

    #[test]
    fn long_values_are_cut_on_characters() {
        assert_eq!(super::truncate("héllo", 3), "hél…");
        assert_eq!(super::truncate("hi", 3), "hi");
        assert_eq!(super::args(&[1.into(), "a".into()], 100), "1, \"a\"");
        assert_eq!(super::latency(0.123), "0.12 s");
        assert_eq!(super::latency(600.0), "10 min");
        assert_eq!(super::kilobytes(20_480), "20.0 MB");
    }
}

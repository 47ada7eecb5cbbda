//! Where the worker's logs go: standard output, as text lines or one JSON object per event.

use std::fmt::{self, Write as _};
use std::str::FromStr;

/// The environment variable that picks the log format when `--log-format` is not given.
pub const LOG_FORMAT_VAR: &str = "JOBS_LOG_FORMAT";

/// How log events are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, like Sidekiq's job logger: `INFO job{jid=… class=…}: done`.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`), for log
    /// collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" | "pretty" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!(
                "`{text}` is not a log format; use `text` or `json`"
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Sends `tracing` events to standard output in `format`, filtered by `RUST_LOG` (default
/// `info`, or `debug` when `verbose`), unless the program already set a subscriber.
/// [`Worker::from_cli`](super::Worker::from_cli) calls it with the configured format.
pub fn init_logging(format: LogFormat, verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        // Colours only for a terminal: journald and Docker logs get plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// A job's tags as its log lines show them: joined by commas, as Sidekiq's text formatter shows
/// an array (`tags=billing,nightly`).
pub(crate) struct Tags<'a>(pub(crate) &'a [String]);

impl fmt::Display for Tags<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, tag) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            // A tag is the payload's text (Ruby may have written it): a control character in it
            // is written escaped, so a tag cannot start a forged line in a text log.
            for c in tag.chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    f.write_char(c)?;
                }
            }
        }
        Ok(())
    }
}

/// Whether a job's `start` and `done` lines (level info) are written: not when its
/// `log_level` is `warn` or `error`, as Sidekiq's job logger runs the job at that level.
pub(crate) fn logs_progress(payload: &crate::payload::Payload) -> bool {
    payload
        .log_level()
        .is_none_or(|level| level <= crate::options::LogLevel::Info)
}

#[cfg(test)]
mod tag_tests {
    use super::Tags;

    #[test]
    fn a_tag_cannot_break_the_log_line() {
        let tags = ["billing".to_owned(), "x\nINFO forged".to_owned()];
        assert_eq!(Tags(&tags).to_string(), "billing,x\\nINFO forged");
    }
}

#[cfg(test)]
mod tests {
    use super::{LogFormat, Tags};

    #[test]
    fn tags_show_as_sidekiq_shows_an_array() {
        let tags = ["billing".to_owned(), "nightly".to_owned()];
        assert_eq!(Tags(&tags).to_string(), "billing,nightly");
        assert_eq!(Tags(&[]).to_string(), "");
    }

    #[test]
    fn parses_the_two_formats_and_names_the_choices_otherwise() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!(" Text ".parse(), Ok(LogFormat::Text));
        let error = "yaml".parse::<LogFormat>().unwrap_err();
        assert_eq!(error, "`yaml` is not a log format; use `text` or `json`");
    }
}

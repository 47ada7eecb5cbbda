//! One job as stored, with Sidekiq's rules for showing it.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::time;

/// The class Rails' ActiveJob pushes its jobs under (`wrapped` names the real class).
const ACTIVE_JOB_WRAPPERS: [&str; 2] = [
    "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
    "Sidekiq::ActiveJob::Wrapper",
];

/// One job as it is stored in a queue, a sorted set or a process's work: the exact bytes, and
/// its fields when they are a JSON object (an entry that is not JSON, or not even UTF-8, is
/// still shown, as text).
///
/// The accessors follow Sidekiq's `JobRecord`: [`display_class`](Self::display_class) and
/// [`display_args`](Self::display_args) unwrap ActiveJob and mailer jobs, and times read both
/// float seconds (Sidekiq 6 and 7, `jobs`) and integer milliseconds (Sidekiq 8).
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// The entry as text: exactly as stored when it is UTF-8, else with each invalid sequence
    /// replaced by U+FFFD.
    raw: String,
    /// The exact bytes, kept only when they are not UTF-8 (else they are `raw`'s).
    not_utf8: Option<Vec<u8>>,
    item: Option<Map<String, Value>>,
    list: Option<String>,
}

impl JobRecord {
    /// Reads `raw`; a string that is not a JSON object gives a record with no fields.
    pub fn parse(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let item = match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        Self {
            raw,
            not_utf8: None,
            item,
            list: None,
        }
    }

    /// Reads an entry as Redis stored it. Bytes that are not UTF-8 give a record with no fields
    /// (as text that is not JSON does), which keeps them exactly, so that deleting or killing it
    /// finds it; each entry is read on its own, so one such entry never hides the others.
    pub fn from_bytes(raw: impl Into<Vec<u8>>) -> Self {
        match String::from_utf8(raw.into()) {
            Ok(text) => Self::parse(text),
            Err(error) => {
                let bytes = error.into_bytes();
                Self {
                    raw: String::from_utf8_lossy(&bytes).into_owned(),
                    not_utf8: Some(bytes),
                    item: None,
                    list: None,
                }
            }
        }
    }

    /// Reads the entry `raw`, taken from the list of queue `queue`.
    pub(crate) fn in_queue(raw: Vec<u8>, queue: &str) -> Self {
        Self {
            list: Some(queue.to_owned()),
            ..Self::from_bytes(raw)
        }
    }

    /// The job as stored, as text. An entry that is not UTF-8 shows each invalid sequence as
    /// U+FFFD here; [`raw_bytes`](Self::raw_bytes) has its exact bytes.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The entry exactly as stored: what names it to Redis (to delete, kill or move it).
    pub fn raw_bytes(&self) -> &[u8] {
        self.not_utf8.as_deref().unwrap_or(self.raw.as_bytes())
    }

    /// Whether the stored entry is UTF-8 text; when not, it is no job, and
    /// [`raw`](Self::raw) shows it with its invalid bytes replaced.
    pub fn is_utf8(&self) -> bool {
        self.not_utf8.is_none()
    }

    /// Whether the stored entry is a JSON object (a job); when not, only [`raw`](Self::raw)
    /// has anything to show.
    pub fn is_job(&self) -> bool {
        self.item.is_some()
    }

    /// Every field of the job, when it is JSON.
    pub fn fields(&self) -> Option<&Map<String, Value>> {
        self.item.as_ref()
    }

    /// One field of the job.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.item.as_ref()?.get(field)
    }

    /// The digest of the unique lock the job takes (`jobs_unique`), when it is a unique job;
    /// [`UniqueLocks::of_job`](super::UniqueLocks::of_job) reads the lock itself.
    pub fn unique_digest(&self) -> Option<&str> {
        self.text(crate::unique::LOCK)
            .filter(|digest| !digest.is_empty())
    }

    /// The release of the unique lock this job took, for a delete or a kill.
    pub(crate) fn unique_release(&self) -> Option<crate::unique::Release> {
        crate::unique::Held::of_fields(self.fields()?).map(|held| held.released_by(self.jid()))
    }

    fn text(&self, field: &str) -> Option<&str> {
        self.get(field)?.as_str()
    }

    /// `class`: the wire name of the job (empty when missing).
    pub fn class(&self) -> &str {
        self.text("class").unwrap_or_default()
    }

    /// The class to show: `display_class` when the job sets one; the real class of an
    /// ActiveJob job (`wrapped`); `Mailer#method` for a mailer job; else `class`.
    pub fn display_class(&self) -> String {
        if let Some(display) = self.text("display_class") {
            return display.to_owned();
        }
        if !self.is_active_job() {
            return self.class().to_owned();
        }
        let wrapped = self.wrapped_class().unwrap_or_default();
        if is_mailer(wrapped) {
            let mailer: Vec<String> = self
                .active_job_arguments()
                .iter()
                .take(2)
                .map(|value| {
                    value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned)
                })
                .collect();
            if mailer.len() == 2 {
                return mailer.join("#");
            }
        }
        wrapped.to_owned()
    }

    /// `args`: the arguments as stored (empty when missing).
    pub fn args(&self) -> &[Value] {
        self.get("args")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The arguments to show: an ActiveJob job's own arguments rather than its envelope (a
    /// mailer's without the mailer, method and delivery), and `"[encrypted data]"` in place of
    /// the last argument of an encrypted job.
    pub fn display_args(&self) -> Vec<Value> {
        if self.is_active_job() {
            let arguments = self.active_job_arguments();
            let wrapped = self.wrapped_class().unwrap_or_default();
            return match wrapped {
                "ActionMailer::DeliveryJob" => arguments.iter().skip(3).cloned().collect(),
                "ActionMailer::MailDeliveryJob" => arguments
                    .get(3)
                    .and_then(|params| params.get("args"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                _ => arguments.to_vec(),
            };
        }
        let mut args = self.args().to_vec();
        if self
            .get("encrypt")
            .is_some_and(|flag| flag != &Value::Bool(false))
            && let Some(last) = args.last_mut()
        {
            *last = Value::String("[encrypted data]".to_owned());
        }
        args
    }

    fn is_active_job(&self) -> bool {
        ACTIVE_JOB_WRAPPERS.contains(&self.class())
    }

    fn wrapped_class(&self) -> Option<&str> {
        self.text("wrapped")
            .or_else(|| self.args().first()?.get("job_class")?.as_str())
    }

    fn active_job_arguments(&self) -> &[Value] {
        self.args()
            .first()
            .and_then(|envelope| envelope.get("arguments"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// `jid` (empty when missing).
    pub fn jid(&self) -> &str {
        self.text("jid").unwrap_or_default()
    }

    /// The queue: the list the job was read from, else its `queue` field.
    pub fn queue(&self) -> &str {
        self.list
            .as_deref()
            .or_else(|| self.text("queue"))
            .unwrap_or_default()
    }

    /// `created_at`: when it was first pushed.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.time("created_at")
    }

    /// `enqueued_at`: when it was last put into its queue.
    pub fn enqueued_at(&self) -> Option<DateTime<Utc>> {
        self.time("enqueued_at")
    }

    /// `failed_at`: when it first failed.
    pub fn failed_at(&self) -> Option<DateTime<Utc>> {
        self.time("failed_at")
    }

    /// `retried_at`: when it last failed on a retry.
    pub fn retried_at(&self) -> Option<DateTime<Utc>> {
        self.time("retried_at")
    }

    /// A time field, read as float seconds or integer milliseconds.
    pub fn time(&self, field: &str) -> Option<DateTime<Utc>> {
        time::from_json(self.get(field)?)
    }

    /// `retry_count`: how many times it has been retried (`None` before its first failure).
    pub fn retry_count(&self) -> Option<u64> {
        self.get("retry_count")?.as_u64()
    }

    /// `error_class` of the last failure.
    pub fn error_class(&self) -> Option<&str> {
        self.text("error_class")
    }

    /// `error_message` of the last failure.
    pub fn error_message(&self) -> Option<&str> {
        self.text("error_message")
    }

    /// The backtrace of the last failure, decoded from Sidekiq's compressed `error_backtrace`
    /// (or read as a plain array, as very old Sidekiq stored it). `None` when there is none, or
    /// it cannot be read, or it inflates past 1 MiB (a decompression bomb).
    pub fn error_backtrace(&self) -> Option<Vec<String>> {
        match self.get("error_backtrace")? {
            Value::String(stored) => crate::backtrace::decode(stored),
            Value::Array(lines) => Some(
                lines
                    .iter()
                    .map(|line| {
                        line.as_str()
                            .map_or_else(|| line.to_string(), str::to_owned)
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// `tags`, as strings.
    pub fn tags(&self) -> Vec<String> {
        self.get("tags")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .map(|tag| tag.as_str().map_or_else(|| tag.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How long it has waited in its queue at `now`, in seconds (0 when it has no
    /// `enqueued_at`).
    pub fn latency(&self, now: DateTime<Utc>) -> f64 {
        self.enqueued_at()
            .or_else(|| self.created_at())
            .map_or(0.0, |enqueued| seconds_between(enqueued, now))
    }
}

/// Seconds from `earlier` to `later`, never negative.
pub(crate) fn seconds_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    let micros = (later - earlier).num_microseconds().unwrap_or(i64::MAX);
    // Exact up to 2^53 µs (285 years); beyond that a rounded age is still right.
    let seconds = micros as f64 / 1_000_000.0;
    seconds.max(0.0)
}

fn is_mailer(class: &str) -> bool {
    matches!(
        class,
        "ActionMailer::DeliveryJob" | "ActionMailer::MailDeliveryJob"
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::JobRecord;

    #[test]
    fn plain_jobs_show_their_class_and_args() {
        let record = JobRecord::parse(
            json!({"class": "HardJob", "args": [1, "two"], "jid": "abc", "queue": "low",
                   "enqueued_at": 1_700_000_000.25, "retry_count": 2})
            .to_string(),
        );
        assert_eq!(record.display_class(), "HardJob");
        assert_eq!(record.display_args(), vec![json!(1), json!("two")]);
        assert_eq!(record.jid(), "abc");
        assert_eq!(record.queue(), "low");
        assert_eq!(record.retry_count(), Some(2));
        assert_eq!(record.enqueued_at().unwrap().timestamp(), 1_700_000_000);
    }

    #[test]
    fn active_job_and_mailers_are_unwrapped() {
        let wrapped = JobRecord::parse(
            json!({"class": "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
                   "wrapped": "ScoreJob",
                   "args": [{"job_class": "ScoreJob", "arguments": [7, "x"]}]})
            .to_string(),
        );
        assert_eq!(wrapped.display_class(), "ScoreJob");
        assert_eq!(wrapped.display_args(), vec![json!(7), json!("x")]);

        let mailer = JobRecord::parse(
            json!({"class": "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
                   "wrapped": "ActionMailer::MailDeliveryJob",
                   "args": [{"arguments": ["UserMailer", "welcome", "deliver_now",
                                            {"args": [42]}]}]})
            .to_string(),
        );
        assert_eq!(mailer.display_class(), "UserMailer#welcome");
        assert_eq!(mailer.display_args(), vec![json!(42)]);
    }

    #[test]
    fn encrypted_args_are_hidden_and_bad_json_is_kept() {
        let secret = JobRecord::parse(
            json!({"class": "Pay", "args": [1, "card 4242"], "encrypt": true}).to_string(),
        );
        assert_eq!(
            secret.display_args(),
            vec![json!(1), json!("[encrypted data]")]
        );

        let broken = JobRecord::parse("{not json");
        assert!(!broken.is_job());
        assert_eq!(broken.raw(), "{not json");
        assert_eq!(broken.display_class(), "");
        assert!(broken.display_args().is_empty());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_exactly_and_are_no_job() {
        let stored = b"\xff{\"class\":\"X\",\"args\":[],\"jid\":\"j\"}".to_vec();
        let record = JobRecord::from_bytes(stored.clone());
        assert!(!record.is_job() && !record.is_utf8());
        assert_eq!(record.raw_bytes(), stored);
        assert_eq!(
            record.raw(),
            "\u{fffd}{\"class\":\"X\",\"args\":[],\"jid\":\"j\"}"
        );
        assert_eq!((record.jid(), record.class()), ("", ""));

        // A bad byte inside a JSON string would parse once replaced; it is still no job, so no
        // action rewrites it into different bytes.
        let inside = JobRecord::from_bytes(b"{\"class\":\"X\",\"args\":[\"\xc3\"]}".to_vec());
        assert!(!inside.is_job());

        let text = JobRecord::from_bytes(b"{\"class\":\"X\"}".to_vec());
        assert!(text.is_job() && text.is_utf8());
        assert_eq!(text.raw_bytes(), b"{\"class\":\"X\"}");
        assert_eq!(text, JobRecord::parse("{\"class\":\"X\"}"));
    }
}

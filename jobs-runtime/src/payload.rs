//! The job JSON stored in Redis, exactly as Sidekiq writes and reads it.
//!
//! A job waiting in `queue:default` looks like this:
//!
//! ```json
//! {"class":"ScoreGeneration","args":["2026-11-22"],"jid":"93defb239a1a90d4dbb26c44",
//!  "queue":"default","retry":25,"created_at":1795369595.3622906,"enqueued_at":1795369595.3623605}
//! ```
//!
//! `class`, `args`, `jid` and `queue` are required. Every other field is optional, and keys this
//! type does not know (`wrapped`, `bid`, `cattr`, …) are kept in [`Payload::extra`] and written
//! back unchanged, so moving a Ruby job never loses what Ruby put in it. `docs/wire-format.md`
//! is the full description.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::error_class;
use crate::jid::Jid;
use crate::options::{Backtrace, Retry};
use crate::timestamp::Timestamp;

/// One job as stored in Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The job's wire name: a Rust job's `name`, or a Ruby class name.
    pub class: String,
    /// The positional arguments.
    pub args: Vec<Value>,
    /// The job id.
    pub jid: Jid,
    /// The queue the job runs in.
    pub queue: String,
    /// How often a failure is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// When the job was first pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When the job was last put on its queue; absent while it waits in `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enqueued_at: Option<Timestamp>,
    /// Whether failures record a backtrace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<Backtrace>,
    /// The queue retries go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_queue: Option<String>,
    /// `Some(false)`: an exhausted job is dropped instead of kept in the dead set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead: Option<bool>,
    /// Tags shown by dashboards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Sidekiq 7.1+: retry for this many seconds after the first failure instead of a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_for: Option<u64>,
    /// Failures so far minus one: `0` after the first failure, absent before it. A negative
    /// count, which "Retry now" in Sidekiq's Web UI (and in `jobs::web`) leaves on a job that
    /// failed once, reads as absent: the next failure counts as the first, as in Sidekiq.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "retry_count_or_none"
    )]
    pub retry_count: Option<u32>,
    /// The last error's message (at most 10,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The last error's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// When the job first failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Timestamp>,
    /// When the job last failed, from the second failure on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried_at: Option<Timestamp>,
    /// The last error's backtrace: base64 of zlib-deflated JSON, as Sidekiq stores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_backtrace: Option<String>,
    /// Every other key, kept as it was.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The keys [`Payload`] holds in typed fields; any other key lives in [`Payload::extra`].
const FIELDS: &[&str] = &[
    "class",
    "args",
    "jid",
    "queue",
    "retry",
    "created_at",
    "enqueued_at",
    "backtrace",
    "retry_queue",
    "dead",
    "tags",
    "retry_for",
    "retry_count",
    "error_message",
    "error_class",
    "failed_at",
    "retried_at",
    "error_backtrace",
];

impl Payload {
    /// Sets any key, as `set(key: value)` does in Sidekiq: a key this type knows (`queue`,
    /// `retry`, …) goes to its field, and must have the right type; any other goes to
    /// [`extra`](Self::extra).
    pub fn set(&mut self, key: &str, value: serde_json::Value) -> Result<(), serde_json::Error> {
        if !FIELDS.contains(&key) {
            self.extra.insert(key.to_owned(), value);
            return Ok(());
        }
        let mut object = serde_json::to_value(&*self)?;
        if let Some(map) = object.as_object_mut() {
            map.insert(key.to_owned(), value);
        }
        *self = serde_json::from_value(object)?;
        Ok(())
    }

    /// A new job for `class` with `args`, a fresh jid, queue `default` and Sidekiq's default
    /// `retry: true`: what `Sidekiq::Client.push("class" => …, "args" => …)` builds. Use it to
    /// push jobs for classes that Ruby, not Rust, defines.
    pub fn new(class: impl Into<String>, args: Vec<Value>) -> Self {
        Self {
            class: class.into(),
            args,
            jid: Jid::generate(),
            queue: "default".to_owned(),
            retry: Some(Retry::Default),
            created_at: None,
            enqueued_at: None,
            backtrace: None,
            retry_queue: None,
            dead: None,
            tags: None,
            retry_for: None,
            retry_count: None,
            error_message: None,
            error_class: None,
            failed_at: None,
            retried_at: None,
            error_backtrace: None,
            extra: Map::new(),
        }
    }

    /// This payload with another queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// This payload with another retry setting.
    pub fn retry(mut self, retry: impl Into<Retry>) -> Self {
        self.retry = Some(retry.into());
        self
    }

    /// Parses job JSON read from Redis.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The job JSON to store in Redis. A key in [`extra`](Self::extra) that names a typed
    /// field (put there by hand) is left out: the typed field is written, and written once.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        if self.extra.keys().any(|key| FIELDS.contains(&key.as_str())) {
            let mut clean = self.clone();
            clean.extra.retain(|key, _| !FIELDS.contains(&key.as_str()));
            return serde_json::to_string(&clean);
        }
        serde_json::to_string(self)
    }

    /// The stored backtrace of the last failure, decoded from Sidekiq's compressed form (`None`
    /// when there is none or it cannot be read).
    pub fn backtrace_lines(&self) -> Option<Vec<String>> {
        self.error_backtrace
            .as_deref()
            .and_then(crate::backtrace::decode)
    }

    /// Checks what Sidekiq's client checks before a push: a class, a queue and a jid.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let problem = if self.class.trim().is_empty() {
            "its class is empty"
        } else if self.queue.trim().is_empty() {
            "its queue name is empty"
        } else if self.jid.as_str().is_empty() {
            "its jid is empty"
        } else {
            return Ok(());
        };
        Err(Error::InvalidJob {
            class: self.class.clone(),
            reason: problem.to_owned(),
        })
    }
}

/// The dead-set entry for `raw`, an entry found in `queue` (or a sorted set) that is not a job:
/// class `jobs::InvalidPayload`, the entry as its one argument, `reason` as the error message,
/// and the entry's own `jid` when it has one that can be read. An entry that is not UTF-8 is
/// given as base64, and the entry says so with `"jobs_encoding":"base64"`.
pub(crate) fn invalid_entry(
    raw: impl AsRef<[u8]>,
    queue: &str,
    reason: &str,
    now: Timestamp,
) -> String {
    let raw = raw.as_ref();
    let jid = serde_json::from_slice::<Value>(raw)
        .ok()
        .and_then(|value| value.get("jid").and_then(|jid| jid.as_str()).map(Jid::from))
        .unwrap_or_else(Jid::generate);
    let mut entry = serde_json::json!({
        "class": error_class::INVALID_PAYLOAD,
        "args": [],
        "jid": jid,
        "queue": queue,
        "retry": false,
        "created_at": now,
        "failed_at": now,
        "error_class": error_class::INVALID_PAYLOAD,
        "error_message": reason,
    });
    match std::str::from_utf8(raw) {
        Ok(text) => entry["args"] = serde_json::json!([text]),
        Err(_) => {
            entry["args"] = serde_json::json!([BASE64.encode(raw)]);
            entry[ENCODING] = Value::from("base64");
        }
    }
    entry.to_string()
}

/// The key of an [`invalid_entry`] that says its argument is the entry in base64.
const ENCODING: &str = "jobs_encoding";

/// `retry_count` as stored: a count, or a negative number (or null) meaning none yet.
fn retry_count_or_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    let count: Option<i64> = serde::Deserialize::deserialize(deserializer)?;
    Ok(count.and_then(|count| u32::try_from(count).ok()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Payload;
    use crate::options::Retry;

    #[test]
    fn keeps_keys_it_does_not_know() {
        let json = r#"{"class":"A","args":[],"jid":"j","queue":"q","bid":"b1","cattr":{"u":1}}"#;
        let payload = Payload::from_json(json).unwrap();
        assert_eq!(payload.extra["bid"], json!("b1"));
        let back: serde_json::Value = serde_json::from_str(&payload.to_json().unwrap()).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }

    #[test]
    fn set_routes_known_keys_to_their_fields() {
        let mut payload = Payload::new("A", vec![]);
        payload.set("queue", json!("critical")).unwrap();
        payload.set("bid", json!("b1")).unwrap();
        assert_eq!(payload.queue, "critical");
        assert_eq!(payload.extra["bid"], json!("b1"));
        assert!(payload.set("retry", json!("often")).is_err());
    }

    #[test]
    fn a_known_key_in_extra_is_never_written_twice() {
        let mut payload = Payload::new("A", vec![]);
        payload.extra.insert("queue".into(), json!("other"));
        let json = payload.to_json().unwrap();
        assert_eq!(json.matches("\"queue\"").count(), 1, "{json}");
        assert!(Payload::from_json(&json).is_ok());
    }

    #[test]
    fn a_negative_retry_count_reads_as_none_yet() {
        let json = r#"{"class":"A","args":[],"jid":"x","queue":"default","retry_count":-1}"#;
        assert_eq!(Payload::from_json(json).unwrap().retry_count, None);
        let json = r#"{"class":"A","args":[],"jid":"x","queue":"default","retry_count":3}"#;
        assert_eq!(Payload::from_json(json).unwrap().retry_count, Some(3));
    }

    #[test]
    fn new_payload_has_sidekiq_defaults() {
        let payload = Payload::new("HardJob", vec![json!(1)]);
        assert_eq!(payload.queue, "default");
        assert_eq!(payload.retry, Some(Retry::Default));
        assert_eq!(payload.jid.as_str().len(), 24);
    }

    #[test]
    fn validation_names_what_is_missing() {
        let error = Payload::new("HardJob", vec![])
            .queue("")
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("queue name is empty"), "{error}");
    }
}

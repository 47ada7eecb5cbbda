//! The job JSON stored in Redis, exactly as Sidekiq writes and reads it.
//!
//! A job waiting in `queue:default` looks like this:
//!
//! ```json
//! {"class":"ScoreGeneration","args":["2026-11-22"],"jid":"93defb239a1a90d4dbb26c44",
//!  "queue":"default","retry":25,"created_at":1795369595.3622906,"enqueued_at":1795369595.3623605}
//! ```
//!
//! Reading is as lenient as Sidekiq's worker: a job needs only a `class` string. A missing `args`
//! is `[]`, a missing `queue` is `default`, and an optional field of a type Sidekiq would not
//! write reads as Sidekiq's code takes it (`retry: "5"` is truthy, so the default count) or as
//! absent (`created_at: "2026-…"`). Keys this type does not know (`wrapped`, `bid`, `cattr`, …)
//! are kept in [`Payload::extra`]. `jobs` never writes a stored job back through this type: its
//! rewrites (promotion, recovery, a failure, the dashboard's actions) edit the stored text field
//! by field (`raw_job.rs`). `docs/wire-format.md` is the full description.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::error_class;
use crate::jid::Jid;
use crate::options::{Backtrace, LogLevel, Retry};
use crate::timestamp::Timestamp;

/// One job as stored in Redis.
///
/// It deserializes from any JSON object with a `class` string, reading the other fields as
/// Sidekiq's worker does: a missing `args` is `[]`, a missing `queue` is `default`, and an
/// optional field of a type Sidekiq would not write reads as Sidekiq's code takes it
/// (`retry: "5"` is truthy, so the default count) or as absent (`created_at: "2026-…"`);
/// "Reading jobs others wrote" in `docs/wire-format.md` has every field.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// When the job was first pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When the job was last put on its queue; absent while it waits in `schedule`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enqueued_at: Option<Timestamp>,
    /// Whether failures record a backtrace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<Backtrace>,
    /// The queue retries go to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_queue: Option<String>,
    /// `Some(false)`: an exhausted job is dropped instead of kept in the dead set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead: Option<bool>,
    /// Tags shown by dashboards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Sidekiq 7.1+: retry for this many seconds after the first failure instead of a count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_for: Option<u64>,
    /// Failures so far minus one: `0` after the first failure, absent before it. A negative
    /// count, which "Retry now" in Sidekiq's Web UI (and in `jobs::web`) leaves on a job that
    /// failed once, reads as absent here (the job has not been retried since); the failure
    /// path reads the stored count itself, and counts on from it as Sidekiq does. A count
    /// beyond `u32` reads as `u32::MAX`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// The last error's message (at most 10,000 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The last error's type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// When the job first failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Timestamp>,
    /// When the job last failed, from the second failure on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried_at: Option<Timestamp>,
    /// The last error's backtrace: base64 of zlib-deflated JSON, as Sidekiq stores it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_backtrace: Option<String>,
    /// Every other key, kept as it was.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Sidekiq's per-job log level key, kept in [`Payload::extra`].
pub(crate) const LOG_LEVEL: &str = "log_level";

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
        let Value::Object(mut fields) = serde_json::to_value(&*self)? else {
            return Ok(());
        };
        fields.insert(key.to_owned(), value);
        let fields = Fields::split(fields, Some(key));
        *self = Self::from_fields(fields).map_err(de::Error::custom)?;
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

    /// A new job for `class` with `args`, carrying what `options` say (queue, retry, backtrace,
    /// retry queue, retry_for, dead, tags, expires_in): what `perform_async` pushes for a job declared with them.
    pub(crate) fn with_options(
        class: impl Into<String>,
        args: Vec<Value>,
        options: &crate::options::JobOptions,
    ) -> Self {
        let mut payload = Self::new(class, args)
            .queue(options.queue)
            .retry(options.retry);
        if options.backtrace != crate::options::Backtrace::Off {
            payload.backtrace = Some(options.backtrace);
        }
        payload.retry_queue = options.retry_queue.map(str::to_owned);
        payload.retry_for = options.retry_for.map(|window| window.as_secs());
        if !options.dead {
            payload.dead = Some(false);
        }
        if !options.tags.is_empty() {
            payload.tags = Some(options.tags.iter().map(|tag| (*tag).to_owned()).collect());
        }
        if let Some(period) = options.expires_in {
            // The macro checked the period; a hand-made `JobOptions` out of range is refused
            // at push, where the option is read back.
            payload.extra.insert(
                crate::expiry::EXPIRES_IN.to_owned(),
                crate::options::period_json(period),
            );
        }
        if let Some(level) = options.log_level {
            payload
                .extra
                .insert(LOG_LEVEL.to_owned(), level.as_str().into());
        }
        payload
    }

    /// The job's `log_level`, if it names one (see [`LogLevel::from_json`]).
    pub(crate) fn log_level(&self) -> Option<LogLevel> {
        self.extra.get(LOG_LEVEL).and_then(LogLevel::from_json)
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

    /// Parses job JSON read from Redis: any JSON object with a `class` string, read as
    /// Sidekiq's worker reads it.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The job in `fields`, reading every key as Sidekiq's worker does except the one read
    /// strictly, whose value must have this type's type for it (what [`set`](Self::set) checks).
    fn from_fields(mut fields: Fields<'_>) -> Result<Self, String> {
        use Reading::{AsSidekiq, Strict};
        let class = match fields.take("class") {
            Some(Value::String(class)) => class,
            Some(other) => return Err(format!("its `class` is {}, not a string", kind(&other))),
            None => return Err("it has no `class`".to_owned()),
        };
        let args = match (fields.take("args"), fields.reading("args")) {
            (Some(Value::Array(args)), _) => args,
            (None, _) => Vec::new(),
            (Some(other), AsSidekiq) => vec![other],
            (Some(other), Strict) => {
                return Err(format!("`args` is {}, not an array", kind(&other)));
            }
        };
        // Sidekiq's worker runs a job without a jid (its poller gives it one when it moves it).
        let jid = match (fields.take("jid"), fields.reading("jid")) {
            (Some(Value::String(jid)), _) => Jid::from(jid),
            (Some(Value::Number(number)), AsSidekiq) => Jid::from(number.to_string()),
            (_, AsSidekiq) => Jid::from(""),
            (other, Strict) => {
                return Err(format!(
                    "`jid` is {}, not a string",
                    kind_of(other.as_ref())
                ));
            }
        };
        let queue = match (fields.take("queue"), fields.reading("queue")) {
            (Some(Value::String(queue)), Strict) => queue,
            (Some(Value::String(queue)), AsSidekiq) if !queue.is_empty() => queue,
            (other, Strict) => {
                return Err(format!(
                    "`queue` is {}, not a string",
                    kind_of(other.as_ref())
                ));
            }
            (_, AsSidekiq) => "default".to_owned(),
        };
        Ok(Self {
            class,
            args,
            jid,
            queue,
            retry: fields.read("retry", |_| Some(Retry::Default))?,
            created_at: fields.read("created_at", |_| None)?,
            enqueued_at: fields.read("enqueued_at", |_| None)?,
            backtrace: fields.read("backtrace", sidekiq_backtrace)?,
            retry_queue: fields.read("retry_queue", |_| None)?,
            dead: fields.read("dead", |_| None)?,
            tags: fields.read("tags", sidekiq_tags)?,
            retry_for: fields.read("retry_for", |value| {
                value.as_f64().map(|seconds| seconds.max(0.0) as u64)
            })?,
            retry_count: fields.read("retry_count", |value| {
                value
                    .as_f64()
                    .and_then(|count| (count >= 0.0).then_some(count as u32))
            })?,
            error_message: fields.read("error_message", |_| None)?,
            error_class: fields.read("error_class", |_| None)?,
            failed_at: fields.read("failed_at", |_| None)?,
            retried_at: fields.read("retried_at", |_| None)?,
            error_backtrace: fields.read("error_backtrace", |_| None)?,
            extra: fields.extra,
        })
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

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = deserializer.deserialize_map(PayloadVisitor)?;
        // Outside the deserializer, so that its error says what is wrong with the job and
        // no position in the text (the end of the object, which says nothing).
        Self::from_fields(fields).map_err(de::Error::custom)
    }
}

/// Reads a job object key by key: a key [`Payload`] knows goes straight to its slot, any other
/// to `extra`. Every job a worker takes is read this way, so it never builds a map of the known
/// keys only to remove them again (which cost about half of a no-op job's parse).
struct PayloadVisitor;

impl<'de> de::Visitor<'de> for PayloadVisitor {
    type Value = Fields<'static>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a job: a JSON object with a `class` string")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::empty(None);
        while let Some(key) = map.next_key::<Key>()? {
            // A key given twice keeps its last value, as a JSON object read into a map does.
            match key {
                Key::Known(slot) => fields.known[slot] = Some(map.next_value()?),
                Key::Other(name) => {
                    fields.extra.insert(name, map.next_value()?);
                }
            }
        }
        Ok(fields)
    }
}

/// A key of a job object: the slot in [`FIELDS`] of a key [`Payload`] knows, or any other,
/// owned (it is kept in `extra`).
enum Key {
    /// `FIELDS[slot]`.
    Known(usize),
    /// A key kept in [`Payload::extra`].
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Reads a [`Key`] without allocating for the keys [`Payload`] knows.
struct KeyVisitor;

impl de::Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(slot(key).map_or_else(|| Key::Other(key.to_owned()), Key::Known))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Key, E> {
        Ok(slot(&key).map_or(Key::Other(key), Key::Known))
    }

    /// Formats that give keys as bytes (as a `String` key accepts them): UTF-8 only.
    fn visit_bytes<E: de::Error>(self, key: &[u8]) -> Result<Key, E> {
        let key = std::str::from_utf8(key)
            .map_err(|_| E::invalid_value(de::Unexpected::Bytes(key), &self))?;
        self.visit_str(key)
    }
}

/// Where `key` lives in [`FIELDS`], if [`Payload`] has a field for it.
fn slot(key: &str) -> Option<usize> {
    FIELDS.iter().position(|field| *field == key)
}

/// How a known key's value of an unexpected type reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// It is an error (a value set through [`Payload::set`]).
    Strict,
    /// As Sidekiq's Ruby code takes it (a job read from Redis).
    AsSidekiq,
}

/// A job's fields being read into a [`Payload`].
struct Fields<'a> {
    /// The value of each key of [`FIELDS`], in its order, while it is not yet read.
    known: [Option<Value>; FIELDS.len()],
    /// Every other key: the payload's `extra`.
    extra: Map<String, Value>,
    /// The one key read strictly, if any.
    strict: Option<&'a str>,
}

impl<'a> Fields<'a> {
    /// No fields yet.
    fn empty(strict: Option<&'a str>) -> Self {
        Self {
            known: Default::default(),
            extra: Map::new(),
            strict,
        }
    }

    /// The fields of a whole JSON object.
    fn split(object: Map<String, Value>, strict: Option<&'a str>) -> Self {
        let mut fields = Self::empty(strict);
        for (key, value) in object {
            match slot(&key) {
                Some(slot) => fields.known[slot] = Some(value),
                None => {
                    fields.extra.insert(key, value);
                }
            }
        }
        fields
    }

    /// How `key` is read.
    fn reading(&self, key: &str) -> Reading {
        if self.strict == Some(key) {
            Reading::Strict
        } else {
            Reading::AsSidekiq
        }
    }

    /// Takes `key`'s value; `null` is none.
    fn take(&mut self, key: &str) -> Option<Value> {
        let slot = slot(key)?;
        self.known[slot].take().filter(|value| !value.is_null())
    }

    /// Takes the optional field `key`: its value as a `T` when it is one; else, read as
    /// Sidekiq, what `sidekiq` makes of it (`None`: absent), and read strictly, an error.
    fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        key: &str,
        sidekiq: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<Option<T>, String> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        match (T::deserialize(&value), self.reading(key)) {
            (Ok(typed), _) => Ok(Some(typed)),
            (Err(error), Reading::Strict) => Err(format!("`{key}`: {error}")),
            (Err(_), Reading::AsSidekiq) => Ok(sidekiq(&value)),
        }
    }
}

/// `backtrace` as Sidekiq takes a value other than `true` or a count: any other truthy value is
/// a line count, `value.to_i` (a float's whole part; a string's leading digits, else 0).
fn sidekiq_backtrace(value: &Value) -> Option<Backtrace> {
    let lines = match value {
        Value::Number(number) => number.as_f64().map_or(0, |lines| lines.max(0.0) as u32),
        Value::String(text) => text
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0),
        _ => return None,
    };
    Some(Backtrace::Lines(lines))
}

/// `tags` as Sidekiq takes an array that is not all strings: each element as text.
fn sidekiq_tags(value: &Value) -> Option<Vec<String>> {
    let tags = value.as_array()?;
    Some(
        tags.iter()
            .map(|tag| match tag {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
    )
}

/// What a JSON value is, for a message.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// [`kind`] of a value that may be missing.
fn kind_of(value: Option<&Value>) -> &'static str {
    value.map_or("missing", kind)
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
    fn reads_jobs_sidekiq_runs() {
        let job = |fields: &str| format!(r#"{{"class":"A","args":[1]{fields}}}"#);
        for fields in [
            r#","jid":"j","queue":"q","retry":"5""#,
            r#","jid":"j","queue":"q","retry":5.0"#,
            r#","jid":"j","queue":"q","tags":[1]"#,
            r#","jid":"j","queue":"q","retry_count":3.0"#,
            r#","jid":"j","queue":"q","created_at":"2026-11-22T10:00:00Z""#,
            r#","jid":"j","queue":"q","retry_for":3600.5"#,
            r#","jid":"j","queue":"q","backtrace":"x","dead":"false""#,
            r#","jid":"j","queue":"q","queue":"last""#,
            r#","queue":"q""#,
            r#","jid":"j""#,
        ] {
            let json = job(fields);
            assert!(Payload::from_json(&json).is_ok(), "{json}");
        }
    }

    #[test]
    fn reads_each_key_once_whatever_its_spelling_or_order() {
        // A key given twice keeps its last value, as a map would; an escaped key is the key it
        // spells; a key `jobs` does not know stays in `extra`, with its own last value.
        let json = r#"{"queue":"first","cl\u0061ss":"A","x":1,"jid":"j","queue":"last","x":2,"args":[1],"retry":null}"#;
        let job = Payload::from_json(json).unwrap();
        assert_eq!(job.class, "A");
        assert_eq!(job.queue, "last");
        assert_eq!(job.jid.as_str(), "j");
        assert_eq!(job.args, vec![json!(1)]);
        assert_eq!(job.retry, None);
        assert_eq!(job.extra, json!({"x": 2}).as_object().cloned().unwrap());
        // The same job read from a parsed value, and from JSON whose keys come in another order.
        assert_eq!(
            serde_json::from_value::<Payload>(serde_json::from_str(json).unwrap()).unwrap(),
            job
        );
        let reordered = r#"{"x":2,"args":[1],"jid":"j","queue":"last","class":"A"}"#;
        assert_eq!(Payload::from_json(reordered).unwrap(), job);
    }

    #[test]
    fn reads_keys_given_as_bytes_and_refuses_keys_that_are_not_utf8() {
        use serde::Deserialize;
        use serde::de::value::{BytesDeserializer, MapDeserializer};

        type Entry<'a> = (BytesDeserializer<'a, serde_json::Error>, serde_json::Value);
        let read = |entries: Vec<Entry<'_>>| {
            Payload::deserialize(MapDeserializer::new(entries.into_iter()))
        };
        let job = read(vec![
            (BytesDeserializer::new(b"class"), json!("A")),
            (BytesDeserializer::new(b"args"), json!([1])),
            (BytesDeserializer::new(b"jid"), json!("j")),
            (BytesDeserializer::new(b"queue"), json!("q")),
            (BytesDeserializer::new(b"bid"), json!("b1")),
        ])
        .unwrap();
        assert_eq!(job.class, "A");
        assert_eq!(job.args, vec![json!(1)]);
        assert_eq!(job.queue, "q");
        assert_eq!(
            job.extra,
            json!({"bid": "b1"}).as_object().cloned().unwrap()
        );
        let error = read(vec![
            (BytesDeserializer::new(b"class"), json!("A")),
            (BytesDeserializer::new(b"\xff"), json!(1)),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("a string key"), "{error}");
    }

    #[test]
    fn a_job_that_is_not_an_object_says_what_a_job_is() {
        let error = Payload::from_json(r#"["A"]"#).unwrap_err().to_string();
        assert!(
            error.contains("a JSON object with a `class` string"),
            "{error}"
        );
        let error = Payload::from_json(r#"{"args":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no `class`"), "{error}");
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

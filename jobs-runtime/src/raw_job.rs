//! A job's JSON edited field by field, for every rewrite `jobs` makes of a job it may not own
//! (promotion, crash recovery, the dashboard's actions): the fields a step sets change, and
//! every other top-level field keeps the exact text it was stored with.
//!
//! [`Payload`](crate::Payload) is the typed view a Rust job runs from; it is strict, and a
//! round trip through it respells numbers (integers beyond 64 bits become floats) and refuses
//! fields Ruby accepts (`retry: "5"`, `tags: [1]`, string times). A job meant for Ruby passes
//! through a Rust scheduler or a Rust worker's crash recovery, so those steps edit the text
//! instead: each value is kept as a [`RawValue`], the exact bytes between its key's colon and
//! the next comma. What changes: whitespace between fields is dropped (Sidekiq writes none), a
//! key written with `\u` escapes is written back unescaped, and of a key given twice only the
//! last stays (as Ruby's `JSON.parse` reads it), in the place of the first.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON object with each top-level value kept as stored.
#[derive(Debug, Clone)]
pub(crate) struct RawJob {
    /// The fields in their stored order.
    fields: Vec<(String, Box<RawValue>)>,
}

impl RawJob {
    /// Reads a JSON object; anything else (not JSON, an array, a number) is an error that says
    /// what was found.
    pub(crate) fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The stored text of `key`'s value.
    pub(crate) fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| &**value)
    }

    /// `key`'s value as a `T`; `None` when absent or of another type, as a lenient reader
    /// (Ruby's) takes it.
    pub(crate) fn get_as<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.get(key)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    /// Sets `key` to `value`: in its place when present, else at the end.
    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>) {
        // A `Value` always serializes: its map keys are strings.
        let Ok(raw) = serde_json::value::to_raw_value(&value.into()) else {
            return;
        };
        match self.fields.iter_mut().find(|(name, _)| name == key) {
            Some((_, stored)) => *stored = raw,
            None => self.fields.push((key.to_owned(), raw)),
        }
    }

    /// Removes `key`, if present.
    pub(crate) fn remove(&mut self, key: &str) {
        self.fields.retain(|(name, _)| name != key);
    }

    /// The JSON text: untouched values exactly as they were read.
    pub(crate) fn to_json(&self) -> String {
        let size = self
            .fields
            .iter()
            .map(|(key, value)| key.len() + value.get().len() + 4)
            .sum::<usize>();
        let mut out = String::with_capacity(size + 2);
        out.push('{');
        for (index, (key, value)) in self.fields.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            // Writing a string to JSON cannot fail.
            out.push_str(&serde_json::to_string(key).unwrap_or_default());
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        out
    }
}

impl<'de> Deserialize<'de> for RawJob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// Reads an object's fields in order, keeping the last of duplicate keys in the place of the
/// first.
struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = RawJob;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawJob, A::Error> {
        let mut fields: Vec<(String, Box<RawValue>)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
            match fields.iter_mut().find(|(name, _)| *name == key) {
                Some((_, stored)) => *stored = value,
                None => fields.push((key, value)),
            }
        }
        Ok(RawJob { fields })
    }
}

#[cfg(test)]
mod tests {
    use super::RawJob;

    const RUBY: &str = r#"{"class":"RubyJob","args":[123456789012345678901234567890,0.1000000000000000055511151231257827,"é"],"retry":"5","tags":[1],"retry_count":3.0,"created_at":"2026-11-22T10:00:00Z","queue":"ruby"}"#;

    #[test]
    fn untouched_fields_keep_their_exact_text() {
        let mut job = RawJob::parse(RUBY.as_bytes()).unwrap();
        job.set("enqueued_at", 1_795_369_595.5_f64);
        let written = job.to_json();
        assert_eq!(
            written,
            RUBY.replace(
                r#""queue":"ruby"}"#,
                r#""queue":"ruby","enqueued_at":1795369595.5}"#
            )
        );
    }

    #[test]
    fn a_set_field_keeps_its_place_and_a_removed_one_goes() {
        let mut job = RawJob::parse(br#"{"a":1,"b":[2, 3],"c":{"x":null}}"#).unwrap();
        job.set("a", "one");
        job.remove("c");
        assert_eq!(job.to_json(), r#"{"a":"one","b":[2, 3]}"#);
    }

    #[test]
    fn reads_fields_leniently() {
        let job = RawJob::parse(RUBY.as_bytes()).unwrap();
        assert_eq!(job.get_as::<String>("queue").as_deref(), Some("ruby"));
        assert_eq!(job.get_as::<u32>("retry"), None);
        assert_eq!(job.get_as::<f64>("retry_count"), Some(3.0));
        assert_eq!(job.get("missing").map(|raw| raw.get()), None);
    }

    #[test]
    fn the_last_of_duplicate_keys_wins_in_the_first_place() {
        let job = RawJob::parse(br#"{"queue":"a","x":1,"queue":"b"}"#).unwrap();
        assert_eq!(job.to_json(), r#"{"queue":"b","x":1}"#);
    }

    #[test]
    fn only_objects_are_jobs() {
        for bad in [&b"[1]"[..], b"12", b"\"x\"", b"{", b"\xff"] {
            assert!(RawJob::parse(bad).is_err(), "{bad:?}");
        }
    }
}

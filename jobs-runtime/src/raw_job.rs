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

use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::jid::Jid;
use crate::timestamp::Timestamp;

/// A JSON object with each top-level value kept as stored.
#[derive(Debug, Clone)]
pub(crate) struct RawJob {
    /// The fields in their stored order.
    fields: Vec<(String, Box<RawValue>)>,
}

impl RawJob {
    /// Reads a JSON object; anything else (not JSON, not UTF-8, an array, a number) is an error
    /// that says what was found.
    pub(crate) fn parse(json: impl AsRef<[u8]>) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json.as_ref())
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

    /// Sets `key` to `value` (anything that serializes, a [`Timestamp`] as float seconds): in
    /// its place when present, else at the end.
    pub(crate) fn set(&mut self, key: &str, value: impl Serialize) {
        // Only maps with keys that are not strings fail to serialize, and none is set here.
        let Ok(raw) = serde_json::value::to_raw_value(&value) else {
            return;
        };
        match self.fields.iter_mut().find(|(name, _)| name == key) {
            Some((_, stored)) => *stored = raw,
            None => self.fields.push((key.to_owned(), raw)),
        }
    }

    /// Readies the job for a push to its queue as Sidekiq's client does when its poller or its
    /// Web UI pushes a job again: `queue` becomes `default` when it is missing, empty or not a
    /// string, `jid` a new one when it is missing or null, and `enqueued_at` is `now`. Returns
    /// the queue.
    pub(crate) fn prepare_push(&mut self, now: Timestamp) -> String {
        let queue = match self.get_as::<String>("queue") {
            Some(queue) if !queue.is_empty() => queue,
            _ => {
                self.set("queue", "default");
                "default".to_owned()
            }
        };
        if self.get("jid").is_none_or(|jid| jid.get() == "null") {
            self.set("jid", Jid::generate().as_str());
        }
        self.set("enqueued_at", now);
        queue
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
            if key
                .bytes()
                .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
            {
                // Writing a string to JSON cannot fail.
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
            } else {
                out.push('"');
                out.push_str(key);
                out.push('"');
            }
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        out
    }
}

/// The smallest edit that turns one text into another: the bytes kept from the start of the
/// old text, the bytes kept from its end, and what goes between them. It is how a rewrite
/// travels to a script without a second copy of a big job (`scripts/promote.lua` applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Splice<'a> {
    /// How many bytes of the old text's start stay.
    pub(crate) keep_start: usize,
    /// How many bytes of the old text's end stay.
    pub(crate) keep_end: usize,
    /// The bytes between them.
    pub(crate) insert: &'a [u8],
}

impl<'a> Splice<'a> {
    /// The edit from `old` to `new`: everything but their common start and end.
    pub(crate) fn between(old: &[u8], new: &'a [u8]) -> Self {
        let room = old.len().min(new.len());
        let keep_start = common_len(room, |at, len| old[at..at + len] == new[at..at + len]);
        let room = room - keep_start;
        let keep_end = common_len(room, |at, len| {
            old[old.len() - at - len..old.len() - at] == new[new.len() - at - len..new.len() - at]
        });
        Self {
            keep_start,
            keep_end,
            insert: &new[keep_start..new.len() - keep_end],
        }
    }

    /// Applies the edit to `old` (what the script does).
    #[cfg(test)]
    pub(crate) fn apply(&self, old: &[u8]) -> Vec<u8> {
        let mut out = old[..self.keep_start].to_vec();
        out.extend_from_slice(self.insert);
        out.extend_from_slice(&old[old.len() - self.keep_end..]);
        out
    }
}

/// How long a common run is, at most `room` bytes, given `same(at, len)`: whether the two texts
/// agree on `len` bytes `at` bytes into the run. It compares 64 bytes at a time (a slice
/// comparison is a `memcmp`), then byte by byte.
fn common_len(room: usize, same: impl Fn(usize, usize) -> bool) -> usize {
    const CHUNK: usize = 64;
    let mut len = 0;
    while len + CHUNK <= room && same(len, CHUNK) {
        len += CHUNK;
    }
    while len < room && same(len, 1) {
        len += 1;
    }
    len
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
    use super::{RawJob, Splice};
    use crate::timestamp::Timestamp;

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
    fn a_push_fills_in_queue_and_jid_only_when_missing() {
        let now = Timestamp::from_epoch_seconds(1_795_369_595.0);
        let mut job = RawJob::parse(br#"{"class":"A","queue":"q","jid":7}"#).unwrap();
        assert_eq!(job.prepare_push(now), "q");
        assert_eq!(
            job.to_json(),
            r#"{"class":"A","queue":"q","jid":7,"enqueued_at":1795369595.0}"#
        );
        let mut job = RawJob::parse(br#"{"class":"A","queue":"","jid":null}"#).unwrap();
        assert_eq!(job.prepare_push(now), "default");
        let jid = job.get_as::<String>("jid").unwrap();
        assert_eq!(jid.len(), 24);
        assert_eq!(
            job.to_json(),
            format!(
                r#"{{"class":"A","queue":"default","jid":"{jid}","enqueued_at":1795369595.0}}"#
            )
        );
    }

    #[test]
    fn a_splice_carries_only_what_changed() {
        let old = br#"{"class":"A","args":["long"],"enqueued_at":1.5}"#;
        let new = br#"{"class":"A","args":["long"],"enqueued_at":22.75}"#;
        let splice = Splice::between(old, new);
        assert_eq!(splice.insert, b"22.7");
        assert_eq!(splice.apply(old), new);
        for (old, new) in [
            (&b"abc"[..], &b"abc"[..]),
            (b"aaa", b"aaaa"),
            (b"aaaa", b"aa"),
            (b"", b"x"),
            (b"\xc3\xa9", b"\xc3\xaa"),
            (b"{}", b"{\"a\":1}"),
        ] {
            assert_eq!(Splice::between(old, new).apply(old), new, "{old:?} {new:?}");
        }
        let long = "x".repeat(1_000);
        for (old, new) in [
            (format!("{long}a{long}"), format!("{long}bc{long}")),
            (format!("{long}{long}"), format!("{long}y{long}")),
            (long.clone(), format!("{long}{long}")),
        ] {
            let splice = Splice::between(old.as_bytes(), new.as_bytes());
            assert_eq!(splice.apply(old.as_bytes()), new.as_bytes());
            assert!(splice.insert.len() <= 1_000, "{}", splice.insert.len());
        }
    }

    #[test]
    fn only_objects_are_jobs() {
        for bad in [&b"[1]"[..], b"12", b"\"x\"", b"{", b"\xff"] {
            assert!(RawJob::parse(bad).is_err(), "{bad:?}");
        }
    }
}

//! A job's JSON object as a carrier of propagation fields: they are top-level keys, as Ruby's
//! instrumentation writes them (`OpenTelemetry.propagation.inject(job)`).

use opentelemetry::propagation::{Extractor, Injector};
use serde_json::{Map, Value};

/// Writes propagation fields into a job's keys.
pub(super) struct Writer<'a>(pub(super) &'a mut Map<String, Value>);

impl Injector for Writer<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), Value::String(value));
    }
}

/// Reads propagation fields from a job's keys; a key whose value is not a string is absent.
pub(super) struct Reader<'a>(pub(super) &'a Map<String, Value>);

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

//! ActiveJob jobs: pushed by Rails and run by Rust jobs, or pushed by Rust for Rails to run
//! (`docs/active-job.md`).
//!
//! Rails's Sidekiq adapter pushes an ActiveJob job as a Sidekiq job of a wrapper class whose
//! one argument is the envelope `job.serialize` wrote:
//!
//! ```json
//! {"class":"ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper","wrapped":"ScoreGenerationJob",
//!  "queue":"default","args":[{"job_class":"ScoreGenerationJob","job_id":"…","queue_name":"default",
//!  "arguments":[{"_aj_serialized":"ActiveJob::Serializers::DateSerializer","value":"2026-12-06"}],
//!  "executions":0,"exception_executions":{},"locale":"en","timezone":"UTC","enqueued_at":"…"}],
//!  "retry":true,"jid":"…","created_at":1795369595.36,"enqueued_at":1795369595.36}
//! ```
//!
//! The worker runs the Rust job whose name is `wrapped` (else the envelope's `job_class`) with
//! the envelope's `arguments`, turned into plain JSON (`arguments.rs`). Nothing of the stored job
//! is rewritten by a run: a failure sets Sidekiq's retry fields at the top level, as Sidekiq's
//! own retry does, and the envelope (its `executions` included) stays as Rails wrote it.
//!
//! The other way, a job declared `#[job(active_job)]` is pushed in that shape: its arguments
//! serialized as ActiveJob serializes them (`encode.rs` picks, per argument, between a
//! [`Typed`] form and `serialize.rs`), then wrapped in the envelope (`envelope.rs`).

mod arguments;
pub(crate) mod encode;
pub(crate) mod envelope;
mod global_id;
mod serialize;
pub mod typed;

use serde_json::Value;

pub use global_id::{GlobalId, GlobalIdError};
pub use typed::Typed;

use crate::job::ArgsError;
use crate::payload::Payload;

/// The classes Rails's Sidekiq adapter pushes ActiveJob jobs under: Rails 6.1 to 7.x, and
/// Sidekiq 8's own adapter (which keeps the old name as an alias).
pub const WRAPPERS: [&str; 2] = [
    "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
    "Sidekiq::ActiveJob::Wrapper",
];

/// `true` when `class` is one of ActiveJob's [`WRAPPERS`].
pub fn is_wrapper(class: &str) -> bool {
    WRAPPERS.contains(&class)
}

/// The name of the job a payload runs: an ActiveJob job's own class (`wrapped`, else the
/// envelope's `job_class`), else the payload's `class`.
pub fn job_name(payload: &Payload) -> &str {
    if !is_wrapper(&payload.class) {
        return &payload.class;
    }
    let wrapped = payload.extra.get("wrapped").and_then(Value::as_str);
    let job_class = || envelope(payload)?.get("job_class")?.as_str();
    wrapped
        .filter(|name| !name.is_empty())
        .or_else(job_class)
        .unwrap_or(payload.class.as_str())
}

/// The envelope of an ActiveJob payload: its one argument, an object.
fn envelope(payload: &Payload) -> Option<&serde_json::Map<String, Value>> {
    match payload.args.as_slice() {
        [Value::Object(envelope)] => Some(envelope),
        _ => None,
    }
}

/// The arguments a payload's job is decoded from: an ActiveJob job's `arguments`, as plain
/// JSON; any other job's `args` as they are. A server middleware can read an ActiveJob job's
/// arguments with it as the job will.
pub fn job_args(payload: &Payload) -> Result<Vec<Value>, ArgsError> {
    if !is_wrapper(&payload.class) {
        return Ok(payload.args.clone());
    }
    arguments::deserialize(active_job_arguments(payload)?)
}

/// What a unique lock of an ActiveJob payload is over: the wrapped job's name and the
/// envelope's `arguments` as stored, which is what `set().unique_for(…)` on an `active_job`
/// job takes its lock over, and never the envelope's `job_id` or `enqueued_at`, new each push.
/// `None` for other payloads, and for a wrapper without an `arguments` array.
pub(crate) fn lock_key(payload: &Payload) -> Option<(&str, Value)> {
    if !is_wrapper(&payload.class) {
        return None;
    }
    let arguments = active_job_arguments(payload).ok()?;
    Some((job_name(payload), Value::Array(arguments.to_vec())))
}

/// The envelope's `arguments`, or why the payload has none.
fn active_job_arguments(payload: &Payload) -> Result<&[Value], ArgsError> {
    let envelope = envelope(payload).ok_or_else(|| {
        ArgsError::new(format!(
            "an ActiveJob job ({}) has one argument, the object ActiveJob serialized; this one's \
             args are {}",
            payload.class,
            Value::Array(payload.args.clone())
        ))
    })?;
    match envelope.get("arguments") {
        Some(Value::Array(arguments)) => Ok(arguments),
        Some(other) => Err(ArgsError::new(format!(
            "the ActiveJob envelope's `arguments` is {other}, not an array"
        ))),
        None => Err(ArgsError::new(
            "the ActiveJob envelope has no `arguments`".to_owned(),
        )),
    }
}

/// What to add to an argument error of an ActiveJob job: what Rails stored for each argument,
/// and how keyword arguments arrive. Empty for other jobs.
pub(crate) fn argument_hint(payload: &Payload) -> String {
    if !is_wrapper(&payload.class) {
        return String::new();
    }
    let Ok(stored) = active_job_arguments(payload) else {
        return String::new();
    };
    let mut hint = format!(" (ActiveJob arguments: {})", arguments::describe(stored));
    if let Some(names) = arguments::keywords(stored) {
        hint.push_str(&format!(
            "; the keyword arguments ({}) arrive as one last argument, an object: take them as \
             a struct that derives Serialize and Deserialize, with a field per keyword",
            names.join(", ")
        ));
    }
    hint
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{argument_hint, job_args, job_name};
    use crate::payload::Payload;

    fn active_job(wrapped: Option<&str>, envelope: serde_json::Value) -> Payload {
        let mut payload = Payload::new(super::WRAPPERS[0], vec![envelope]);
        if let Some(wrapped) = wrapped {
            payload.extra.insert("wrapped".into(), json!(wrapped));
        }
        payload
    }

    #[test]
    fn finds_the_wrapped_job_and_its_arguments() {
        let envelope = json!({"job_class": "FromEnvelopeJob", "arguments": [1, {"_aj_globalid": "gid://a/U/1"}]});
        let payload = active_job(Some("ScoreGenerationJob"), envelope.clone());
        assert_eq!(job_name(&payload), "ScoreGenerationJob");
        assert_eq!(
            job_args(&payload).unwrap(),
            vec![json!(1), json!("gid://a/U/1")]
        );
        assert_eq!(job_name(&active_job(None, envelope)), "FromEnvelopeJob");
        let plain = Payload::new("Plain", vec![json!({"arguments": [2]})]);
        assert_eq!(job_name(&plain), "Plain");
        assert_eq!(job_args(&plain).unwrap(), vec![json!({"arguments": [2]})]);
    }

    #[test]
    fn a_payload_without_an_envelope_is_an_argument_error() {
        let error = job_args(&Payload::new(super::WRAPPERS[1], vec![json!(1), json!(2)]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("has one argument, the object ActiveJob serialized"),
            "{error}"
        );
        let error = job_args(&active_job(Some("X"), json!({"arguments": "x"})))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "the ActiveJob envelope's `arguments` is \"x\", not an array"
        );
    }

    #[test]
    fn the_hint_names_the_keywords() {
        let payload = active_job(
            Some("X"),
            json!({"arguments": [1, {"notify": true, "at": 2, "_aj_ruby2_keywords": ["notify", "at"]}]}),
        );
        let hint = argument_hint(&payload);
        assert!(
            hint.starts_with(" (ActiveJob arguments: #1 Integer, #2 keywords (at, notify))"),
            "{hint}"
        );
        assert!(hint.contains("arrive as one last argument"), "{hint}");
    }
}

//! The job Rails's Sidekiq adapter pushes for an ActiveJob job, made around a Rust job of an
//! `active_job` type: what Rails 6.1's `SidekiqAdapter#enqueue` writes,
//!
//! ```ruby
//! Sidekiq::Client.push("class" => JobWrapper, "wrapped" => job.class,
//!                      "queue" => job.queue_name, "args" => [job.serialize])
//! ```
//!
//! with `job.serialize` (`ActiveJob::Core#serialize`) as its one argument, the envelope:
//!
//! ```json
//! {"job_class":"ScoreGenerationJob","job_id":"0b5e4c5e-…","provider_job_id":null,
//!  "queue_name":"default","priority":null,"arguments":[…],"executions":0,
//!  "exception_executions":{},"locale":null,"timezone":null,"enqueued_at":"2026-12-06T10:00:00Z"}
//! ```
//!
//! A job set to wait (`set(wait:)`) gets the same envelope, its `enqueued_at` the time of the
//! push, as Rails 6.1 writes it; the delay is Sidekiq's (the `schedule` set). `locale` and
//! `timezone` are `null`, which Rails 6.1's `Core#deserialize` reads as the running app's own
//! (`job_data["locale"] || I18n.locale.to_s`, `job_data["timezone"] || Time.zone&.name`): Rust
//! knows neither, and a fixed `"en"`/`"UTC"` would run the job in UTC in an app whose
//! `config.time_zone` is another, and fail with `I18n::InvalidLocale` in one without `:en`.
//! The key order of the JSON text is `serde_json`'s (sorted), which no reader depends on.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{WRAPPERS, is_wrapper};
use crate::payload::Payload;

/// The class Rails 6.1 to 7.x push ActiveJob jobs under, which Sidekiq 6.4 to 8.x run.
const WRAPPER: &str = WRAPPERS[0];

/// The payload key naming the ActiveJob class (Sidekiq's display class).
const WRAPPED: &str = "wrapped";

/// Makes `payload`, a job of an `active_job` type whose `args` are its arguments as ActiveJob
/// serialized them, into the job Rails's Sidekiq adapter pushes: `class` the wrapper,
/// `wrapped` the job's name, `args` one envelope holding the arguments, pushed at `now` to
/// `payload.queue`. Every other field (`retry`, `jid`, the unique lock, …) stays as it is.
pub(crate) fn wrap(payload: &mut Payload, now: DateTime<Utc>) {
    let name = std::mem::replace(&mut payload.class, WRAPPER.to_owned());
    let arguments = std::mem::take(&mut payload.args);
    let envelope = [
        ("job_class", Value::String(name.clone())),
        ("job_id", Value::String(job_id())),
        ("provider_job_id", Value::Null),
        ("queue_name", Value::String(payload.queue.clone())),
        ("priority", Value::Null),
        ("arguments", Value::Array(arguments)),
        ("executions", Value::from(0)),
        ("exception_executions", Value::Object(Map::new())),
        ("locale", Value::Null),
        ("timezone", Value::Null),
        ("enqueued_at", Value::String(iso8601(now))),
    ];
    let envelope: Map<String, Value> = envelope
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    payload.args = vec![Value::Object(envelope)];
    payload
        .extra
        .insert(WRAPPED.to_owned(), Value::String(name));
}

/// Gives an ActiveJob job pushed again from one template (a periodic entry's next tick) what
/// Rails gives each push: a new `job_id`, `queue_name` its queue, `enqueued_at` now. Other
/// jobs are left alone.
pub(crate) fn renew(payload: &mut Payload, now: DateTime<Utc>) {
    if !is_wrapper(&payload.class) {
        return;
    }
    let queue = payload.queue.clone();
    if let [Value::Object(envelope)] = payload.args.as_mut_slice() {
        envelope.insert("job_id".to_owned(), Value::String(job_id()));
        envelope.insert("queue_name".to_owned(), Value::String(queue));
        envelope.insert("enqueued_at".to_owned(), Value::String(iso8601(now)));
    }
}

/// Makes an ActiveJob job that is pushed again and again from one template (a periodic
/// entry's job) into that template: the envelope without what [`renew`] gives each push
/// (`job_id`, `enqueued_at`), and `queue_name` its queue, so that every process that builds
/// the template writes the same bytes. Other jobs are left alone.
pub(crate) fn template(payload: &mut Payload) {
    if !is_wrapper(&payload.class) {
        return;
    }
    let queue = payload.queue.clone();
    if let [Value::Object(envelope)] = payload.args.as_mut_slice() {
        envelope.remove("job_id");
        envelope.remove("enqueued_at");
        envelope.insert("queue_name".to_owned(), Value::String(queue));
    }
}

/// A new ActiveJob `job_id`: a random (version 4) UUID, as Ruby's `SecureRandom.uuid`.
fn job_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `Time.now.utc.iso8601`: whole seconds, `Z`.
fn iso8601(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::{job_id, renew, template, wrap};
    use crate::payload::Payload;

    fn wrapped() -> Payload {
        let mut payload = Payload::new("ScoreGenerationJob", vec![json!(42)]).queue("critical");
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
        wrap(&mut payload, now);
        payload
    }

    #[test]
    fn wraps_the_arguments_in_rails_envelope() {
        let payload = wrapped();
        assert_eq!(
            payload.class,
            "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper"
        );
        assert_eq!(payload.extra["wrapped"], "ScoreGenerationJob");
        assert_eq!(payload.queue, "critical");
        let [envelope] = payload.args.as_slice() else {
            panic!("one argument: {:?}", payload.args)
        };
        let job_id = envelope["job_id"].as_str().unwrap().to_owned();
        let mut expected = json!({
            "job_class": "ScoreGenerationJob", "job_id": job_id, "provider_job_id": null,
            "queue_name": "critical", "priority": null, "arguments": [42], "executions": 0,
            "exception_executions": {}, "locale": null, "timezone": null,
            "enqueued_at": "2026-12-06T10:00:00Z"
        });
        assert_eq!(envelope, &expected);
        // The decode direction reads it back.
        assert_eq!(crate::active_job::job_name(&payload), "ScoreGenerationJob");
        assert_eq!(
            crate::active_job::job_args(&payload).unwrap(),
            vec![json!(42)]
        );

        let mut again = payload.clone();
        let later = Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap();
        again.queue = "low".to_owned();
        renew(&mut again, later);
        assert_ne!(again.args[0]["job_id"], job_id);
        expected["job_id"] = again.args[0]["job_id"].clone();
        expected["queue_name"] = json!("low");
        expected["enqueued_at"] = json!("2026-12-07T03:00:00Z");
        assert_eq!(again.args[0], expected);
    }

    #[test]
    fn renew_and_template_leave_other_jobs_alone() {
        let mut plain = Payload::new("Plain", vec![json!({"job_id": 1})]);
        renew(&mut plain, Utc::now());
        template(&mut plain);
        assert_eq!(plain.args, vec![json!({"job_id": 1})]);
    }

    #[test]
    fn a_template_has_no_ids_of_one_push_and_renew_gives_them() {
        let mut payload = wrapped();
        payload.queue = "low".to_owned();
        template(&mut payload);
        let expected = json!({
            "job_class": "ScoreGenerationJob", "provider_job_id": null, "queue_name": "low",
            "priority": null, "arguments": [42], "executions": 0,
            "exception_executions": {}, "locale": null, "timezone": null
        });
        assert_eq!(payload.args, [expected]);
        renew(
            &mut payload,
            Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap(),
        );
        assert!(payload.args[0]["job_id"].is_string());
        assert_eq!(payload.args[0]["enqueued_at"], "2026-12-07T03:00:00Z");
    }

    #[test]
    fn job_ids_are_version_4_uuids() {
        let id = job_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|part| part.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(parts[2].starts_with('4'), "{id}");
        assert!("89ab".contains(&parts[3][..1]), "{id}");
        assert_ne!(job_id(), id);
    }
}

//! Unique jobs: while a job declared with `unique_for` waits, is scheduled, runs or waits to
//! retry, a push of the same class, queue and arguments is refused as a duplicate.
//! (`#[job(unique_for = 600)]`, or `set().unique_for(…)` for one push).
//!
//! A push takes the job's lock and pushes it in one atomic step (`scripts/unique_push.lua`),
//! or, when another job holds the lock, pushes nothing and answers
//! [`Pushed::Duplicate`](crate::Pushed::Duplicate) with the holder's jid: an answer, not an
//! error, so `ScoreGeneration::perform_async(today).await?` in a controller goes on as if the
//! job had been pushed, which it has, by someone else.
//!
//! The lock is the key `jobs:unique:<digest>`, holding the jid of the job that took it and
//! expiring after `unique_for` (from the time a scheduled job is due). The digest is SHA-256
//! of the class, the queue and the canonical JSON of the arguments (or of the job's
//! `unique_key`), so key order and number spelling do not make two pushes differ. The job
//! carries the digest in its payload (`jobs_unique`), so whoever ends it knows which lock to
//! release: the worker when the job succeeds (or starts, with
//! [`UniqueUntil::Start`]), dies, is discarded or expires; the dashboard and
//! [`api`](crate::api) when it is deleted or killed there. A release deletes the lock only if
//! the job still holds it. `docs/unique-jobs.md` is the whole story.

mod canonical;

use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use crate::options::UniqueUntil;
use crate::options::{check_period, period_json, period_of};
use crate::payload::Payload;
use crate::redis::keys::Keys;
use crate::timestamp::Timestamp;

/// The payload key of how long the lock is held at most, in seconds (Sidekiq Enterprise's).
pub(crate) const UNIQUE_FOR: &str = "unique_for";

/// The payload key of when the lock is released: `"start"`, or absent for on success
/// (Sidekiq Enterprise's).
pub(crate) const UNIQUE_UNTIL: &str = "unique_until";

/// The payload key of the lock's digest (`jobs`'s own): the lock is `jobs:unique:<digest>`.
pub(crate) const LOCK: &str = "jobs_unique";

/// The digest of the lock a job of `class` on `queue` takes, over `key` (its arguments, or the
/// value of its `unique_key`): lowercase hex of SHA-256 over the class, the queue and the
/// canonical JSON of `key`, each followed by a newline.
pub fn lock_digest(class: &str, queue: &str, key: &Value) -> String {
    let mut hasher = Sha256::new();
    for part in [class, queue, &canonical::canonical(key)] {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Writes a job type's unique options into its payload: `unique_for`, `unique_until` when it
/// is `start`, and the digest of the lock over `key` (its arguments, or its `unique_key`).
pub(crate) fn set_options(
    payload: &mut Payload,
    period: Duration,
    until: UniqueUntil,
    key: &Value,
) -> Result<(), String> {
    check_period(UNIQUE_FOR, period)?;
    payload
        .extra
        .insert(UNIQUE_FOR.to_owned(), period_json(period));
    if until == UniqueUntil::Start {
        payload
            .extra
            .insert(UNIQUE_UNTIL.to_owned(), Value::from(until.as_str()));
    }
    let digest = lock_digest(&payload.class, &payload.queue, key);
    payload.extra.insert(LOCK.to_owned(), Value::from(digest));
    Ok(())
}

/// What a push asks of a unique job's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The lock's digest.
    pub(crate) digest: String,
    /// How long the lock lives from the push, in milliseconds: `unique_for` from the time the
    /// job is due.
    pub(crate) ttl_ms: u64,
}

/// The lock a push of `payload` takes, when it has a `unique_for`: checks the options, names
/// the lock (over its arguments, when the payload does not carry a digest already, as a
/// payload pushed by hand or given the option by a client middleware does not; over an
/// ActiveJob job's name and envelope `arguments`, as `set().unique_for(…)` takes it), and sets how long it lives for a job due
/// at `due`, pushed at `now`. The error says which option is wrong and why.
pub(crate) fn request(
    payload: &mut Payload,
    now: Timestamp,
    due: Timestamp,
) -> Result<Option<Request>, String> {
    let Some(value) = payload.extra.get(UNIQUE_FOR) else {
        if payload.extra.contains_key(UNIQUE_UNTIL) {
            return Err(format!("`{UNIQUE_UNTIL}` needs `{UNIQUE_FOR}`"));
        }
        return Ok(None);
    };
    let period = period_of(UNIQUE_FOR, value)?;
    match payload.extra.get(UNIQUE_UNTIL) {
        None => {}
        Some(Value::String(name)) if UniqueUntil::from_name(name).is_some() => {}
        Some(other) => {
            return Err(format!(
                "`{UNIQUE_UNTIL}` must be \"success\" or \"start\", not `{other}`"
            ));
        }
    }
    let digest = match payload.extra.get(LOCK).and_then(Value::as_str) {
        Some(digest) if !digest.is_empty() => digest.to_owned(),
        _ => {
            let digest = match crate::active_job::lock_key(payload) {
                Some((name, arguments)) => lock_digest(name, &payload.queue, &arguments),
                None => lock_digest(
                    &payload.class,
                    &payload.queue,
                    &Value::Array(payload.args.clone()),
                ),
            };
            payload
                .extra
                .insert(LOCK.to_owned(), Value::from(digest.clone()));
            digest
        }
    };
    Ok(Some(Request::new(digest, period, now, due)))
}

impl Request {
    /// The lock named `digest` of a job due at `due`, pushed at `now`: it lives `period` from
    /// when the job is due.
    pub(crate) fn new(digest: String, period: Duration, now: Timestamp, due: Timestamp) -> Self {
        let wait = (due.as_epoch_seconds() - now.as_epoch_seconds()).max(0.0);
        let ttl = Duration::from_secs_f64(wait) + period;
        Self {
            digest,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The lock a stored job holds: what its payload says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    /// The lock's digest (`jobs_unique`).
    pub(crate) digest: String,
    /// When the lock is released.
    pub(crate) until: UniqueUntil,
}

impl Held {
    /// The lock `payload` holds, if it is a unique job.
    pub(crate) fn of_payload(payload: &Payload) -> Option<Self> {
        Self::of_fields(&payload.extra)
    }

    /// The lock a job whose top-level fields are `fields` holds, if any.
    pub(crate) fn of_fields(fields: &Map<String, Value>) -> Option<Self> {
        let digest = fields.get(LOCK)?.as_str()?;
        if digest.is_empty() {
            return None;
        }
        let until = match fields.get(UNIQUE_UNTIL).and_then(Value::as_str) {
            Some("start") => UniqueUntil::Start,
            _ => UniqueUntil::Success,
        };
        Some(Self {
            digest: digest.to_owned(),
            until,
        })
    }

    /// The release of this lock by the job `jid`, which took it.
    pub(crate) fn released_by(self, jid: &str) -> Release {
        Release {
            digest: self.digest,
            jid: jid.to_owned(),
        }
    }
}

/// A unique lock to release, if the job that took it still holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Release {
    /// The lock's digest.
    pub(crate) digest: String,
    /// The jid of the job that took it.
    pub(crate) jid: String,
}

impl Release {
    /// The release of the lock `payload` holds, if it is a unique job.
    pub(crate) fn of_payload(payload: &Payload) -> Option<Self> {
        Held::of_payload(payload).map(|held| held.released_by(payload.jid.as_str()))
    }

    /// Adds to `pipeline` the acknowledgement of the job stored as `json` in the working list
    /// `working` (`LREM` with `count`) and, only if it was still there, this release
    /// (`scripts/unique_ack.lua`, sent whole with `EVAL`). Its reply is ignored.
    pub(crate) fn add_ack_to(
        &self,
        pipeline: &mut redis::Pipeline,
        keys: &Keys,
        working: &str,
        json: &[u8],
        count: i64,
    ) {
        pipeline
            .cmd("EVAL")
            .arg(crate::redis::scripts::UNIQUE_ACK_SOURCE.as_str())
            .arg(2)
            .arg(working)
            .arg(keys.unique(&self.digest))
            .arg(json)
            .arg(count)
            .arg(&self.jid)
            .ignore();
    }

    /// Adds the release to `pipeline` (`scripts/unique_release.lua`, sent whole with `EVAL`:
    /// it is a few lines, and a pipeline cannot load a script it finds missing). It never
    /// fails, whatever the key holds.
    pub(crate) fn add_to(&self, pipeline: &mut redis::Pipeline, keys: &Keys) {
        pipeline
            .cmd("EVAL")
            .arg(crate::redis::scripts::UNIQUE_RELEASE_SOURCE.as_str())
            .arg(1)
            .arg(keys.unique(&self.digest))
            .arg(&self.jid)
            .ignore();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Held, UniqueUntil, lock_digest};

    #[test]
    fn equal_arguments_take_the_same_lock() {
        let a = lock_digest("Score", "default", &json!([{"b": 1, "a": 2.0}]));
        let b = lock_digest("Score", "default", &json!([{"a": 2, "b": 1}]));
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            lock_digest("Score", "critical", &json!([{"a": 2, "b": 1}]))
        );
        assert_ne!(
            a,
            lock_digest("Other", "default", &json!([{"a": 2, "b": 1}]))
        );
        assert_ne!(
            a,
            lock_digest("Score", "default", &json!([{"a": 3, "b": 1}]))
        );
    }

    #[test]
    fn a_push_asks_for_the_lock_until_its_period_after_it_is_due() {
        use crate::payload::Payload;
        use crate::timestamp::Timestamp;
        let mut payload = Payload::new("Score", vec![json!(1)]);
        payload.extra.insert("unique_for".into(), json!(60));
        let now = Timestamp::from_epoch_seconds(1_000.0);
        let later = Timestamp::from_epoch_seconds(1_030.0);
        let request = super::request(&mut payload, now, later).unwrap().unwrap();
        assert_eq!(request.ttl_ms, 90_000);
        assert_eq!(request.digest, lock_digest("Score", "default", &json!([1])));
        assert_eq!(payload.extra["jobs_unique"], json!(request.digest));

        payload.extra.insert("unique_until".into(), json!("later"));
        let error = super::request(&mut payload, now, now).unwrap_err();
        assert!(error.contains("\"success\" or \"start\""), "{error}");
        payload.extra.insert("unique_for".into(), json!(0));
        assert!(super::request(&mut payload, now, now).is_err());
    }

    #[test]
    fn an_active_job_job_s_lock_is_over_its_arguments_not_its_envelope() {
        // A client middleware sets `unique_for` on a job already wrapped: the lock is the one
        // `set().unique_for(…)` takes, over the job's name and the envelope's `arguments`, not
        // over the envelope's random `job_id`.
        use crate::payload::Payload;
        use crate::timestamp::Timestamp;
        let now = Timestamp::from_epoch_seconds(1_000.0);
        let push = || {
            let mut payload = Payload::new("ScoreGenerationJob", vec![json!(1)]).queue("low");
            crate::active_job::envelope::wrap(&mut payload, chrono::Utc::now());
            payload.extra.insert("unique_for".into(), json!(60));
            super::request(&mut payload, now, now).unwrap().unwrap()
        };
        let (first, second) = (push(), push());
        assert_eq!(first.digest, second.digest);
        assert_eq!(
            first.digest,
            lock_digest("ScoreGenerationJob", "low", &json!([1]))
        );
    }

    #[test]
    fn a_payload_names_its_lock() {
        let fields = json!({"jobs_unique": "ab12", "unique_until": "start"});
        let held = Held::of_fields(fields.as_object().unwrap()).unwrap();
        assert_eq!(held.digest, "ab12");
        assert_eq!(held.until, UniqueUntil::Start);
        let plain = json!({"class": "A"});
        assert_eq!(Held::of_fields(plain.as_object().unwrap()), None);
    }
}

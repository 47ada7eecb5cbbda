//! A checked periodic entry, and the definition of it that processes share through Redis.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::schedule::Schedule;
use super::{CatchUp, MakePayload, PERIODIC_FIELD, TICK_FIELD, Tz};
use crate::error::Error;
use crate::payload::Payload;
use crate::timestamp::Timestamp;
use crate::unique::{LOCK, UNIQUE_FOR, UNIQUE_UNTIL};

/// A periodic entry whose name, schedule, zone and job were checked.
#[derive(Clone)]
pub(crate) struct Entry {
    /// Its name.
    pub(crate) name: String,
    /// When it falls due.
    pub(crate) schedule: Schedule,
    /// The queue it pushes to.
    pub(crate) queue: String,
    /// What it does after downtime.
    pub(crate) catch_up: CatchUp,
    /// Whether it runs.
    pub(crate) enabled: bool,
    /// Builds the job of a tick.
    make: MakePayload,
    /// The definition as processes share it (`definition` in `jobs:periodic:<name>`).
    definition: String,
}

impl Entry {
    /// A checked entry.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        name: String,
        schedule: Schedule,
        class: String,
        queue: String,
        args: Option<Vec<Value>>,
        options: Option<Value>,
        catch_up: CatchUp,
        enabled: bool,
        make: MakePayload,
    ) -> Self {
        // Keys in a fixed order, so two processes with the same entry write the same bytes:
        // the claim compares them to tell an older definition from the one in force.
        let definition = json!({
            "cron": schedule.expression(),
            "timezone": schedule.zone().name(),
            "class": class,
            "queue": queue,
            "args": args,
            "options": options,
            "catch_up": catch_up.as_str(),
            "enabled": enabled,
        })
        .to_string();
        Self {
            name,
            schedule,
            queue,
            catch_up,
            enabled,
            make,
            definition,
        }
    }

    /// The definition processes share: a JSON object of `cron`, `timezone`, `class`, `queue`,
    /// `args` (`null` when computed from the tick), `options` (the job's other fields, such as
    /// `retry` and `tags`; `null` when computed), `catch_up` and `enabled`.
    pub(crate) fn definition(&self) -> &str {
        &self.definition
    }

    /// The job of the tick at `tick`: the entry's job on the entry's queue, carrying the
    /// entry's name and the tick's time.
    pub(crate) fn payload_for(&self, tick: DateTime<Tz>) -> Result<Payload, Error> {
        let mut payload = (self.make)(tick)?;
        // Each tick is pushed once by its claim, which takes no unique lock: a periodic job
        // carries none (its own `unique_for` would name a lock nobody took).
        for key in [UNIQUE_FOR, UNIQUE_UNTIL, LOCK] {
            payload.extra.remove(key);
        }
        payload.queue.clone_from(&self.queue);
        crate::active_job::envelope::renew(&mut payload, crate::testing::now().to_datetime());
        payload
            .extra
            .insert(PERIODIC_FIELD.to_owned(), Value::String(self.name.clone()));
        let at = Timestamp::from(tick.with_timezone(&Utc));
        payload.extra.insert(
            TICK_FIELD.to_owned(),
            serde_json::to_value(at).unwrap_or(Value::Null),
        );
        Ok(payload)
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("definition", &self.definition)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Periodic;
    use super::Entry;
    use crate::payload::Payload;

    /// Two payloads for `entry`'s first tick of 2026, one after the other.
    fn two_payloads_for_first_tick(entry: &Entry) -> (Payload, Payload) {
        let tick = entry
            .schedule
            .next_after("2026-01-01T00:00:00Z".parse().unwrap())
            .unwrap();
        (
            entry.payload_for(tick).unwrap(),
            entry.payload_for(tick).unwrap(),
        )
    }

    #[test]
    fn the_same_entry_gives_the_same_definition_bytes() {
        let make = || {
            Periodic::class(
                "nightly",
                "0 3 * * *",
                "Nightly",
                vec![serde_json::json!(1)],
            )
            .timezone("Europe/Berlin")
            .validate()
            .unwrap()
        };
        assert_eq!(make().definition(), make().definition());
        assert_eq!(
            make().definition(),
            r#"{"args":[1],"catch_up":"one","class":"Nightly","cron":"0 3 * * *","enabled":true,"options":{"retry":true},"queue":"default","timezone":"Europe/Berlin"}"#
        );
    }

    #[test]
    fn a_tick_s_job_names_its_entry_and_tick() {
        let entry = Periodic::class("nightly", "0 3 * * *", "Nightly", vec![])
            .queue("low")
            .validate()
            .unwrap();
        let (first, second) = two_payloads_for_first_tick(&entry);
        assert_ne!(first.jid, second.jid, "a fresh jid each time");
        assert_eq!(first.queue, "low");
        assert_eq!(first.extra["jobs_periodic"], "nightly");
        assert_eq!(first.extra["jobs_tick"], 1_767_236_400.0);
    }

    #[test]
    fn each_tick_of_an_active_job_job_is_a_new_active_job_job() {
        let envelope = serde_json::json!({"job_class": "NightlyJob", "job_id": "template",
                                          "queue_name": "default", "arguments": [1]});
        let entry = Periodic::class(
            "nightly",
            "0 3 * * *",
            crate::active_job::WRAPPERS[0],
            vec![envelope],
        )
        .queue("low")
        .validate()
        .unwrap();
        let (first, second) = two_payloads_for_first_tick(&entry);
        let (first, second) = (&first.args[0], &second.args[0]);
        assert_ne!(first["job_id"], "template");
        assert_ne!(first["job_id"], second["job_id"]);
        assert_eq!(first["queue_name"], "low");
        assert!(first["enqueued_at"].is_string());
        assert_eq!(first["arguments"], serde_json::json!([1]));
    }

    /// An `active_job` job, as `#[job(active_job)]` declares one.
    struct NightlyJob;

    impl crate::job::Job for NightlyJob {
        const NAME: &'static str = "NightlyJob";
        const OPTIONS: crate::options::JobOptions = crate::options::JobOptions::DEFAULT
            .with_active_job()
            .with_cron("0 3 * * *");
        fn encode_args(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
            Ok(vec![serde_json::json!(1)])
        }
        fn decode_args(_: Vec<serde_json::Value>) -> Result<Self, crate::job::ArgsError> {
            Ok(Self)
        }
        fn perform(
            self,
            _: crate::context::JobContext,
            _: &crate::state::JobState,
        ) -> crate::job::JobFuture {
            Box::pin(async { Ok(()) })
        }
    }

    #[test]
    fn an_active_job_job_s_definition_is_the_same_in_every_process() {
        // Each process builds the entry itself; the claim compares the bytes.
        let make = || {
            Periodic::job("nightly", "0 3 * * *", NightlyJob)
                .queue("low")
                .validate()
                .unwrap()
        };
        let entry = make();
        assert_eq!(entry.definition(), make().definition());
        let definition: serde_json::Value = serde_json::from_str(entry.definition()).unwrap();
        let template = &definition["args"][0];
        assert_eq!(
            template,
            &serde_json::json!({"job_class": "NightlyJob", "provider_job_id": null,
                "queue_name": "low", "priority": null, "arguments": [1], "executions": 0,
                "exception_executions": {}, "locale": null, "timezone": null}),
            "no job_id or enqueued_at of one process's build"
        );
        let tick = entry
            .schedule
            .next_after("2026-01-01T00:00:00Z".parse().unwrap())
            .unwrap();
        let (first, second) = (
            entry.payload_for(tick).unwrap(),
            entry.payload_for(tick).unwrap(),
        );
        let (first, second) = (&first.args[0], &second.args[0]);
        assert!(first["job_id"].as_str().is_some_and(|id| id.len() == 36));
        assert_ne!(first["job_id"], second["job_id"]);
        assert!(first["enqueued_at"].is_string());
        assert_eq!(first["queue_name"], "low");
    }

    #[test]
    fn cron_on_an_active_job_job_pushes_an_active_job_job() {
        // `#[job(name = "NightlyJob", active_job, cron = "0 3 * * *")]`, no arguments.
        let registration = crate::registry::Registration::of::<NightlyJob>("here.rs:1");
        let make = || {
            super::super::of_job(&registration)
                .unwrap()
                .validate()
                .unwrap()
        };
        let entry = make();
        assert_eq!(entry.definition(), make().definition());
        let tick = entry
            .schedule
            .next_after("2026-01-01T00:00:00Z".parse().unwrap())
            .unwrap();
        let job = entry.payload_for(tick).unwrap();
        assert_eq!(job.class, crate::active_job::WRAPPERS[0]);
        assert_eq!(job.extra["wrapped"], "NightlyJob");
        let envelope = &job.args[0];
        assert_eq!(envelope["job_class"], "NightlyJob");
        assert_eq!(envelope["arguments"], serde_json::json!([]));
        assert_eq!(envelope["queue_name"], "default");
        assert!(envelope["job_id"].is_string() && envelope["enqueued_at"].is_string());
    }

    #[test]
    fn a_schedule_that_never_falls_due_is_refused() {
        let started = std::time::Instant::now();
        let error = Periodic::class("never", "0 0 30 2 *", "Never", vec![])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("never falls due"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn errors_name_the_entry_and_say_what_is_wrong() {
        let error = Periodic::class("digest", "0 3 * *", "Digest", vec![])
            .origin("config/jobs.yml")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("config/jobs.yml"), "{error}");
        assert!(error.contains("`digest`"), "{error}");
        assert!(error.contains("has 4 fields"), "{error}");
        let error = Periodic::class("digest", "0 3 * * *", "Digest", vec![])
            .timezone("Mars/Olympus")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("Mars/Olympus"), "{error}");
    }
}

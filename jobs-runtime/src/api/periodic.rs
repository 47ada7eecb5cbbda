//! Periodic entries: what worker processes declared (`jobs:periodic`), with each entry's
//! schedule, last run and next run; pause, resume and "enqueue now".
//!
//! The definition is read from the JSON the worker wrote, so an entry that no process of this
//! binary declares (a Ruby class from another app's config file) is shown and steered the same.
//! What Redis holds is not trusted: an entry whose definition is missing, not JSON, or has a
//! cron expression or zone that does not parse is still listed, with [`PeriodicEntry::problem`]
//! saying what is wrong.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::client::Client;
use crate::error::Error;
use crate::jid::Jid;
use crate::payload::Payload;
use crate::periodic::{CatchUp, PERIODIC_FIELD, Schedule, from_millis};
use crate::redis::scripts;

/// The fields of an entry's hash that are read, in this order.
const FIELDS: [&str; 10] = [
    "definition",
    "defined_at",
    "declared_at",
    "last",
    "last_tick",
    "last_jid",
    "pushed_at",
    "paused",
    "finished_jid",
    "outcome",
];

/// Every periodic entry declared in `client`'s Redis, as Sidekiq Enterprise's
/// `Sidekiq::Periodic::LoopSet`.
///
/// ```no_run
/// # async fn example() -> Result<(), jobs_runtime::Error> {
/// use jobs_runtime::api::PeriodicSet;
///
/// let entries = PeriodicSet::new(&jobs_runtime::Client::global()?);
/// for entry in entries.list().await? {
///     println!("{}: {}, next at {:?}", entry.name, entry.description, entry.next_run);
/// }
/// // Hold the nightly run during a migration, then let it go on.
/// entries.pause("nightly_scores").await?;
/// entries.resume("nightly_scores").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PeriodicSet {
    /// The Redis it reads, and pushes "enqueue now" through.
    client: Client,
}

impl PeriodicSet {
    /// The periodic entries in `client`'s Redis.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// Every entry, sorted by name. A name that is not UTF-8 is left out; an entry whose hash
    /// cannot be read is listed with its [`problem`](PeriodicEntry::problem).
    pub async fn list(&self) -> Result<Vec<PeriodicEntry>, Error> {
        let members: Vec<(Vec<u8>, f64)> = self
            .client
            .redis()
            .command(
                redis::cmd("ZRANGE")
                    .arg(self.client.keys().periodic_index())
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
            )
            .await?;
        let mut members: Vec<(String, f64)> = members
            .into_iter()
            .filter_map(|(name, score)| Some((String::from_utf8(name).ok()?, score)))
            .collect();
        members.sort_by(|a, b| a.0.cmp(&b.0));
        self.read(members).await
    }

    /// The entry called `name`, if one is declared.
    pub async fn get(&self, name: &str) -> Result<Option<PeriodicEntry>, Error> {
        let score: Option<f64> = self
            .client
            .redis()
            .command(
                redis::cmd("ZSCORE")
                    .arg(self.client.keys().periodic_index())
                    .arg(name),
            )
            .await?;
        let Some(score) = score else {
            return Ok(None);
        };
        Ok(self.read(vec![(name.to_owned(), score)]).await?.pop())
    }

    /// Reads the hashes of `members` (name, when declared), one round trip for all.
    async fn read(&self, members: Vec<(String, f64)>) -> Result<Vec<PeriodicEntry>, Error> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.client.keys();
        let mut pipeline = redis::pipe();
        // Each reply on its own: a key of another type fails its entry, not the list.
        pipeline.ignore_errors();
        for (name, _) in &members {
            pipeline.cmd("HMGET").arg(keys.periodic(name)).arg(&FIELDS);
        }
        let rows: Vec<redis::RedisResult<Vec<Option<Vec<u8>>>>> =
            self.client.redis().query(&pipeline).await?;
        let now = Utc::now();
        Ok(members
            .into_iter()
            .zip(rows)
            .map(|((name, score), row)| {
                let row = row.map_err(|error| format!("its key cannot be read as a hash: {error}"));
                PeriodicEntry::read(name, score, row, now)
            })
            .collect())
    }

    /// Pauses the entry: its ticks pass without a job until [`resume`](Self::resume), in
    /// every process, and none is pushed for them afterwards. Only the `paused` mark changes;
    /// pausing a paused entry keeps the time it was paused. `false` when no such entry is
    /// declared.
    pub async fn pause(&self, name: &str) -> Result<bool, Error> {
        self.set_paused(name, true).await
    }

    /// Resumes a paused entry: it runs again from its next tick. `false` when no such entry is
    /// declared.
    pub async fn resume(&self, name: &str) -> Result<bool, Error> {
        self.set_paused(name, false).await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<bool, Error> {
        let keys = self.client.keys();
        let mut invocation = scripts::PERIODIC_PAUSE.prepare_invoke();
        invocation
            .key(keys.periodic_index())
            .key(keys.periodic(name))
            .arg(name)
            .arg(if paused { "1" } else { "0" });
        let found: i64 = self.client.redis().script(&invocation).await?;
        Ok(found == 1)
    }

    /// Pushes the entry's job now, through this client (its middleware included), as "Enqueue
    /// now" in Sidekiq Enterprise: its class and arguments on its queue, with the options its
    /// declaration gives the job (`retry`, `tags` …), carrying `jobs_periodic` (the entry's
    /// name) and no `jobs_tick`, since it was pushed for no tick. An ActiveJob job's envelope
    /// gets a new `job_id`, `enqueued_at` now and `queue_name` the entry's queue, as each
    /// tick's does. A paused or disabled entry is pushed too. The entry's
    /// schedule and tick state are left alone: its next tick runs as planned, and its last run
    /// stays the last tick's. `None` when no such entry is declared.
    ///
    /// # Errors
    ///
    /// [`Error::PeriodicEnqueue`] when the entry's arguments are computed from each tick (only
    /// the worker that declares it can make its job) or its definition cannot be read; the
    /// client's errors when the push fails.
    pub async fn enqueue_now(&self, name: &str) -> Result<Option<Jid>, Error> {
        let Some(entry) = self.get(name).await? else {
            return Ok(None);
        };
        if let Some(reason) = entry.enqueue_refusal() {
            return Err(Error::PeriodicEnqueue {
                name: entry.name,
                reason,
            });
        }
        let mut payload =
            Payload::new(entry.class, entry.args.unwrap_or_default()).queue(entry.queue);
        // The job's declared fields (`retry`, `tags` …); one that does not fit is left out.
        for (key, value) in entry.options {
            let _ = payload.set(&key, value);
        }
        // An ActiveJob job's envelope is a template: each push is a new ActiveJob job.
        crate::active_job::envelope::renew(&mut payload, crate::testing::now().to_datetime());
        payload
            .extra
            .insert(PERIODIC_FIELD.to_owned(), Value::String(entry.name));
        let pushed = self.client.push(payload).await?;
        Ok(Some(pushed.into_jid()))
    }
}

/// The last job pushed for an entry's tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    /// The tick it was pushed for.
    pub tick: Option<DateTime<Utc>>,
    /// Its jid (empty when unknown).
    pub jid: String,
    /// When it was pushed (Redis's clock).
    pub pushed_at: Option<DateTime<Utc>>,
    /// How it ended (`succeeded`, `retrying`, `dead` or `dropped`); `None` while it waits or
    /// runs.
    pub outcome: Option<String>,
}

/// One periodic entry: its definition as the newest declaration wrote it, and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodicEntry {
    /// Its name, unique in this Redis.
    pub name: String,
    /// The cron expression, as written (empty when the definition cannot be read).
    pub cron: String,
    /// The IANA time zone its times of day are read in.
    pub timezone: String,
    /// The class of the job it pushes.
    pub class: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// The job's arguments, the same every tick; `None` when the worker computes them from
    /// each tick.
    pub args: Option<Vec<Value>>,
    /// The job's other fields, as its declaration sets them (`retry`, `tags` …); empty when
    /// computed from each tick.
    pub options: Map<String, Value>,
    /// What it does after every worker was down across some of its ticks.
    pub catch_up: CatchUp,
    /// Whether its declaration lets it run; a disabled entry is listed but never pushed.
    pub enabled: bool,
    /// Whether it is paused (from the dashboard or [`PeriodicSet::pause`]).
    pub paused: bool,
    /// When it was paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// The schedule in words, with its zone: "At 03:00 (Europe/Berlin)" (empty when the
    /// expression or zone does not parse).
    pub description: String,
    /// When it next runs: the first tick after the last one claimed, even when that is past
    /// (no process has claimed it yet: one will run it as soon as a worker holding the entry
    /// runs), except that an entry that skips missed ticks ([`CatchUp::None`]) next runs at the
    /// first tick from now. `None` when paused, disabled, unreadable, or when the schedule has
    /// no further tick.
    pub next_run: Option<DateTime<Utc>>,
    /// The last job pushed for one of its ticks, if any.
    pub last_run: Option<LastRun>,
    /// The newest tick claimed, pushed or passed over while paused (`last`).
    pub claimed_up_to: Option<DateTime<Utc>>,
    /// When a process last declared it (live processes do every minute; one no process
    /// declared for a day is removed).
    pub declared_at: Option<DateTime<Utc>>,
    /// When the definition in force was first declared.
    pub defined_at: Option<DateTime<Utc>>,
    /// What is wrong with the entry as stored, when something is: it is listed anyway, with
    /// what could be read.
    pub problem: Option<String>,
}

impl PeriodicEntry {
    /// The entry `name`, declared at `score` (epoch ms), from the [`FIELDS`] of its hash.
    fn read(
        name: String,
        score: f64,
        row: Result<Vec<Option<Vec<u8>>>, String>,
        now: DateTime<Utc>,
    ) -> Self {
        let (row, mut problems) = match row {
            Ok(row) => (row, Vec::new()),
            Err(problem) => (Vec::new(), vec![problem]),
        };
        let field = |index: usize| {
            let bytes = row.get(index)?.as_deref()?;
            Some(String::from_utf8_lossy(bytes).into_owned())
        };
        let time = |index: usize| field(index).and_then(|text| from_millis(&text));
        let definition = match field(0) {
            Some(text) => Definition::parse(&text),
            None if problems.is_empty() => Definition::unreadable(
                "it has no definition: no process declared it as this version of jobs does",
            ),
            None => Definition::unreadable(""),
        };
        problems.extend(definition.problems.iter().cloned());
        let schedule = match (&definition.cron, &definition.timezone) {
            (Some(cron), Some(zone)) => match Schedule::read(cron, zone) {
                Ok(schedule) => Some(schedule),
                Err(reason) => {
                    problems.push(reason);
                    None
                }
            },
            _ => None,
        };
        let paused = row.get(7).is_some_and(Option::is_some);
        let claimed_up_to = time(3);
        let last_jid = field(5);
        // How it ended, once the worker that ran it recorded that very job's end.
        let outcome = field(9).filter(|_| last_jid.is_some() && field(8) == last_jid);
        let last_run = (field(4).is_some() || last_jid.is_some()).then(|| LastRun {
            tick: time(4),
            jid: last_jid.unwrap_or_default(),
            pushed_at: time(6),
            outcome,
        });
        let next_run = match &schedule {
            Some(schedule) if definition.enabled && !paused && problems.is_empty() => {
                next_run(schedule, definition.catch_up, claimed_up_to, now)
            }
            _ => None,
        };
        Self {
            name,
            cron: definition.cron.unwrap_or_default(),
            timezone: definition.timezone.unwrap_or_default(),
            class: definition.class.unwrap_or_default(),
            queue: definition.queue.unwrap_or_default(),
            args: definition.args,
            options: definition.options,
            catch_up: definition.catch_up,
            enabled: definition.enabled,
            paused,
            paused_at: if paused { time(7) } else { None },
            description: schedule
                .as_ref()
                .map(Schedule::describe)
                .unwrap_or_default(),
            next_run,
            last_run,
            claimed_up_to,
            declared_at: time(2).or_else(|| from_millis(&format!("{score:.0}"))),
            defined_at: time(1),
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }

    /// Why [`PeriodicSet::enqueue_now`] would refuse this entry, in words; `None` when it can
    /// push its job.
    pub fn enqueue_refusal(&self) -> Option<String> {
        if let Some(problem) = &self.problem {
            return Some(format!("its definition in Redis cannot be used: {problem}"));
        }
        if self.args.is_none() {
            return Some(
                "its arguments are computed from each tick's time by the worker that declares \
                 it, so only that worker can make its job; wait for its next tick, or push the \
                 job from your code"
                    .to_owned(),
            );
        }
        None
    }
}

/// When an entry next runs, its newest tick claimed being `claimed` (see
/// [`PeriodicEntry::next_run`]).
fn next_run(
    schedule: &Schedule,
    catch_up: CatchUp,
    claimed: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let next = schedule
        .next_after(claimed.unwrap_or(now))?
        .with_timezone(&Utc);
    if next < now && catch_up == CatchUp::None {
        return schedule
            .next_after(now)
            .map(|tick| tick.with_timezone(&Utc));
    }
    Some(next)
}

/// An entry's definition as far as it can be read, with what could not be.
#[derive(Debug, Default)]
struct Definition {
    /// The cron expression.
    cron: Option<String>,
    /// The IANA zone.
    timezone: Option<String>,
    /// The job's class.
    class: Option<String>,
    /// The job's queue.
    queue: Option<String>,
    /// The fixed arguments; `None` when computed from each tick.
    args: Option<Vec<Value>>,
    /// The job's other fields (`retry`, `tags` …).
    options: Map<String, Value>,
    /// What to do after downtime.
    catch_up: CatchUp,
    /// Whether it runs.
    enabled: bool,
    /// What is wrong with it, each in a few words.
    problems: Vec<String>,
}

impl Definition {
    /// A definition with nothing readable, for `problem` (none when empty).
    fn unreadable(problem: &str) -> Self {
        Self {
            problems: if problem.is_empty() {
                Vec::new()
            } else {
                vec![problem.to_owned()]
            },
            ..Self::default()
        }
    }

    /// Reads the JSON the register script stores: `cron`, `timezone`, `class`, `queue`,
    /// `args` (`null` when computed), `catch_up`, `enabled`. Keys it does not know are
    /// ignored, so a newer version's definition still reads.
    fn parse(text: &str) -> Self {
        let fields: Map<String, Value> = match serde_json::from_str(text) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return Self::unreadable("its definition is JSON but not an object"),
            Err(error) => {
                return Self::unreadable(&format!("its definition is not JSON ({error})"));
            }
        };
        let mut problems = Vec::new();
        let mut text = |key: &str| match fields.get(key) {
            Some(Value::String(value)) if !value.trim().is_empty() => Some(value.clone()),
            _ => {
                problems.push(format!("its definition has no `{key}` text"));
                None
            }
        };
        let cron = text("cron");
        let timezone = text("timezone");
        let class = text("class");
        let queue = text("queue");
        let args = match fields.get("args") {
            None | Some(Value::Null) => None,
            Some(Value::Array(args)) => Some(args.clone()),
            Some(_) => {
                problems.push("its definition's `args` is neither a list nor null".to_owned());
                None
            }
        };
        let options = match fields.get("options") {
            Some(Value::Object(options)) => options.clone(),
            _ => Map::new(),
        };
        let catch_up = match fields.get("catch_up").and_then(Value::as_str) {
            Some(name) => CatchUp::parse(name).unwrap_or_else(|| {
                problems.push(format!(
                    "its definition's `catch_up` is `{name}`, not `one` or `none`"
                ));
                CatchUp::default()
            }),
            None => {
                problems.push("its definition has no `catch_up` text".to_owned());
                CatchUp::default()
            }
        };
        let enabled = match fields.get("enabled") {
            Some(Value::Bool(enabled)) => *enabled,
            _ => {
                problems.push("its definition's `enabled` is not true or false".to_owned());
                false
            }
        };
        Self {
            cron,
            timezone,
            class,
            queue,
            args,
            options,
            catch_up,
            enabled,
            problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{CatchUp, Definition, PeriodicEntry, Schedule, next_run};
    use crate::periodic::utc;

    /// A row of the hash as `HMGET` returns it.
    fn row(fields: [Option<&str>; 10]) -> Result<Vec<Option<Vec<u8>>>, String> {
        Ok(fields
            .iter()
            .map(|field| field.map(|text| text.as_bytes().to_vec()))
            .collect())
    }

    const NIGHTLY: &str = r#"{"args":[1],"catch_up":"one","class":"Nightly","cron":"0 3 * * *","enabled":true,"queue":"low","timezone":"Europe/Berlin"}"#;

    #[test]
    fn a_definition_as_the_worker_writes_it_reads_whole() {
        let definition = Definition::parse(NIGHTLY);
        assert!(definition.problems.is_empty(), "{:?}", definition.problems);
        assert_eq!(definition.cron.as_deref(), Some("0 3 * * *"));
        assert_eq!(definition.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(definition.args, Some(vec![json!(1)]));
        assert_eq!(definition.catch_up, CatchUp::One);
        assert!(definition.enabled);
        let computed = Definition::parse(
            r#"{"args":null,"catch_up":"none","class":"A","cron":"@hourly","enabled":false,"queue":"q","timezone":"UTC","later":1}"#,
        );
        assert!(computed.problems.is_empty(), "{:?}", computed.problems);
        assert_eq!(computed.args, None);
        assert_eq!(computed.catch_up, CatchUp::None);
        assert!(!computed.enabled);
    }

    #[test]
    fn what_cannot_be_read_is_said() {
        for (text, said) in [
            ("not json", "not JSON"),
            ("[1]", "not an object"),
            (r#"{"cron":5}"#, "no `cron` text"),
            (r#"{"args":"x"}"#, "`args` is neither"),
            (r#"{"catch_up":"all"}"#, "`all`, not `one` or `none`"),
            (r#"{"enabled":"yes"}"#, "`enabled` is not"),
        ] {
            let problems = Definition::parse(text).problems.join("; ");
            assert!(problems.contains(said), "{text}: {problems}");
        }
    }

    #[test]
    fn an_entry_reads_its_state_and_next_run() {
        let now = utc("2026-01-10T12:00:00Z");
        let entry = PeriodicEntry::read(
            "nightly".to_owned(),
            1_767_000_000_000.0,
            row([
                Some(NIGHTLY),
                Some("1767000000000"),
                Some("1768046000000"),
                Some("1768010400000"),
                Some("1768010400000"),
                Some("abc"),
                Some("1768010400050"),
                None,
                Some("abc"),
                Some("succeeded"),
            ]),
            now,
        );
        assert_eq!(entry.problem, None);
        assert_eq!(entry.description, "At 03:00 (Europe/Berlin)");
        // The last tick claimed was 02:00 UTC on the 10th; the next is 02:00 UTC on the 11th.
        assert_eq!(entry.next_run, Some(utc("2026-01-11T02:00:00Z")));
        let last = entry.last_run.clone().unwrap();
        assert_eq!(last.tick, Some(utc("2026-01-10T02:00:00Z")));
        assert_eq!(last.jid, "abc");
        assert_eq!(entry.enqueue_refusal(), None);
        assert_eq!(entry.declared_at, Some(utc("2026-01-10T11:53:20Z")));

        let paused = PeriodicEntry::read(
            "nightly".to_owned(),
            0.0,
            row([
                Some(NIGHTLY),
                None,
                None,
                None,
                None,
                None,
                None,
                Some("x"),
                None,
                None,
            ]),
            now,
        );
        assert!(paused.paused);
        assert_eq!(paused.paused_at, None, "an odd mark still pauses");
        assert_eq!(paused.next_run, None);
    }

    #[test]
    fn hostile_entries_are_read_with_a_problem() {
        let now = utc("2026-01-10T12:00:00Z");
        let read = |fields| PeriodicEntry::read("x".to_owned(), 0.0, row(fields), now);
        let missing = read([None; 10]);
        assert!(missing.problem.unwrap().contains("no definition"));
        let definition = NIGHTLY.replace("0 3 * * *", "0 3 * *");
        let mut fields = [None; 10];
        fields[0] = Some(definition.as_str());
        let bad_cron = read(fields);
        let problem = bad_cron.problem.clone().unwrap();
        assert!(problem.contains("has 4 fields"), "{problem}");
        assert_eq!(bad_cron.next_run, None);
        let refusal = bad_cron.enqueue_refusal().unwrap();
        assert!(refusal.contains("cannot be used"), "{refusal}");
        let wrong_type = PeriodicEntry::read("x".to_owned(), 0.0, Err("WRONGTYPE".to_owned()), now);
        assert_eq!(wrong_type.problem.as_deref(), Some("WRONGTYPE"));
    }

    #[test]
    fn a_date_that_never_comes_has_no_next_run() {
        let never = Schedule::parse("0 0 30 2 *", "UTC").unwrap();
        let now = utc("2026-01-10T12:00:00Z");
        assert_eq!(next_run(&never, CatchUp::One, Some(now), now), None);
    }

    #[test]
    fn an_entry_that_skips_missed_ticks_next_runs_from_now() {
        let schedule = Schedule::parse("0 3 * * *", "UTC").unwrap();
        let now = utc("2026-01-10T12:00:00Z");
        let long_ago = Some(utc("2026-01-01T03:00:00Z"));
        assert_eq!(
            next_run(&schedule, CatchUp::One, long_ago, now),
            Some(utc("2026-01-02T03:00:00Z")),
            "overdue: the next worker runs it"
        );
        assert_eq!(
            next_run(&schedule, CatchUp::None, long_ago, now),
            Some(utc("2026-01-11T03:00:00Z"))
        );
        assert_eq!(
            next_run(&schedule, CatchUp::One, None, now),
            Some(utc("2026-01-11T03:00:00Z"))
        );
    }
}

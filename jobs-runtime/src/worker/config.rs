//! Worker settings: defaults, then Sidekiq's YAML config file, then command-line flags.
//!
//! The file is Sidekiq's (`config/jobs.yml`, or the path given with `-C`): keys with or without a
//! leading colon (`:concurrency: 10` or `concurrency: 10`), `:queues:` as names or
//! `[name, weight]`, `:capsules:` (Sidekiq 7's, see [`Capsule`]; read in `capsule.rs`), and a
//! section per environment (`production:`) merged over the rest, shallowly as Sidekiq merges it:
//! an environment's `:capsules:` replaces the whole map.
//! The file goes through the ERB forms Rails apps use to read the environment
//! (`<%= ENV.fetch("RAILS_MAX_THREADS", 5) %>` …; see [`erb`](super::erb)) before its YAML is
//! read. Settings only Ruby understands (`:require:`, `:pidfile:` …) are ignored with a warning; any
//! other unknown key, or a value of the wrong kind, is an error naming the file and the key.

use std::path::Path;
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

use super::capsule::{self, Capsule, DEFAULT_CAPSULE};
use super::order::{MAX_WEIGHT, QueueSpec};
use crate::api::DeadLimits;
use crate::error::Error;

/// Everything that shapes a worker. Built from defaults, a config file and flags
/// ([`Worker::from_cli`](super::Worker::from_cli)), or set in code through
/// [`Worker`](super::Worker)'s methods.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// Jobs of [`queues`](Self::queues) run at once: the default capsule's concurrency (`-c`,
    /// `:concurrency:`, else `RAILS_MAX_THREADS` as Sidekiq reads it; default 5, as Sidekiq
    /// 7+).
    pub concurrency: usize,
    /// Queues to take jobs from, with weights: the default capsule's queues (`-q`, `:queues:`;
    /// default `default`).
    pub queues: Vec<QueueSpec>,
    /// The capsules beside the default one, each with its own queues and concurrency
    /// (`:capsules:`, [`Worker::capsule`](super::Worker::capsule); default none). See
    /// `docs/capsules.md`.
    pub capsules: Vec<Capsule>,
    /// How long shutdown waits for running jobs before handing them back (`-t`, `:timeout:`;
    /// default 25 s).
    pub timeout: Duration,
    /// A tag naming this worker in dashboards (`-g`, `:tag:`).
    pub tag: Option<String>,
    /// Labels shown in dashboards (`:labels:`).
    pub labels: Vec<String>,
    /// The environment whose section of the config file applies (`-e`; else `APP_ENV`,
    /// `RAILS_ENV`, `RACK_ENV`, or `development`).
    pub environment: String,
    /// Debug logging (`-v`, `:verbose:`).
    pub verbose: bool,
    /// How [`Worker::from_cli`](super::Worker::from_cli) writes logs (`--log-format`, else
    /// `JOBS_LOG_FORMAT`; default text).
    pub log_format: super::LogFormat,
    /// Where to serve the web dashboard beside the worker (`--web ADDR`; default none). Needs
    /// the `web` feature; `JOBS_WEB_PASSWORD` (and `JOBS_WEB_USER`, default `admin`) put it
    /// behind basic auth; without a password, `JOBS_WEB_HOSTS` names the host names it answers
    /// beyond `localhost` and IP addresses.
    pub web: Option<std::net::SocketAddr>,
    /// Where to answer orchestrators' probes, `GET /livez` and `GET /readyz`, on a listener of
    /// their own (`--health ADDR`; default none). Needs the `web` feature; `--web` answers them
    /// too. See `docs/production.md`.
    pub health: Option<std::net::SocketAddr>,
    /// What `retry: true` means (`:max_retries:`; default 25).
    pub max_retries: u32,
    /// The most jobs kept in the dead set (`:dead_max_jobs:`; default 10,000).
    pub dead_max_jobs: usize,
    /// How long a job stays in the dead set (`:dead_timeout_in_seconds:`; default 180 days).
    pub dead_timeout: Duration,
    /// The scheduler's average pause per live process (`:average_scheduled_poll_interval:`;
    /// default 5 s).
    pub average_scheduled_poll_interval: Duration,
    /// A fixed average pause for the scheduler, whatever the number of processes
    /// (`:poll_interval_average:`).
    pub poll_interval_average: Option<Duration>,
    /// How often the process writes its heartbeat and flushes counters
    /// (`:heartbeat_interval:`; default 10 s, as Sidekiq 7+).
    pub heartbeat_interval: Duration,
    /// How long a heartbeat lives without renewal; a process silent this long is dead and its
    /// jobs are recovered (`:heartbeat_ttl:`; default 60 s, as Sidekiq).
    pub heartbeat_ttl: Duration,
    /// How often a live process looks for dead processes' jobs (`:recovery_interval:`; default
    /// 5 s). Jobs of a killed process run again within its liveness TTL
    /// ([`liveness_ttl`](Self::liveness_ttl), 10 s) + this.
    pub recovery_interval: Duration,
    /// How many times a job may be recovered from a dead process before it goes to the dead
    /// set, presumed to be what kills its processes (`:max_recoveries:`; default 3).
    pub max_recoveries: u32,
    /// Periodic jobs of the config file (`:periodic:`, a map of named entries; see
    /// `docs/periodic.md`), beside those of the code.
    pub periodic: Vec<crate::periodic::FileEntry>,
    /// Global caps on queues, written to Redis at start (`:caps:`, a map of queue name to the
    /// most of its jobs running at once across every process; see `docs/limits.md`).
    pub queue_caps: Vec<(String, u32)>,
    /// Global caps on job classes, beside those the jobs declare (`#[job(concurrency = n)]`),
    /// replacing theirs: class name to the most of its jobs running at once across every
    /// process, written to Redis at start ([`Worker::cap_class`](super::Worker::cap_class); see
    /// `docs/limits.md`, "Class caps").
    pub class_caps: Vec<(String, u32)>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 5,
            queues: vec![QueueSpec::new("default")],
            capsules: Vec::new(),
            timeout: Duration::from_secs(25),
            tag: None,
            labels: Vec::new(),
            environment: "development".to_owned(),
            verbose: false,
            log_format: super::LogFormat::Text,
            web: None,
            health: None,
            max_retries: 25,
            dead_max_jobs: DeadLimits::default().max_jobs,
            dead_timeout: DeadLimits::default().timeout,
            average_scheduled_poll_interval: Duration::from_secs(5),
            poll_interval_average: None,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_ttl: Duration::from_secs(60),
            recovery_interval: Duration::from_secs(5),
            max_recoveries: 3,
            periodic: Vec::new(),
            queue_caps: Vec::new(),
            class_caps: Vec::new(),
        }
    }
}

/// The keys `jobs` reads, for error messages.
const KNOWN_KEYS: &str = "concurrency, queues, timeout, tag, labels, verbose, max_retries, \
                          dead_max_jobs, dead_timeout_in_seconds, \
                          average_scheduled_poll_interval, poll_interval_average, \
                          heartbeat_interval, heartbeat_ttl, recovery_interval, max_recoveries, \
                          periodic, capsules";

/// Sidekiq settings that only mean something to Ruby.
const RUBY_ONLY_KEYS: &[&str] = &[
    "require",
    "pidfile",
    "logfile",
    "strict",
    "daemon",
    "environment",
    "scheduled_enq",
    "lifecycle_events",
    "error_handlers",
    "death_handlers",
    "reloader",
    "backtrace_cleaner",
];

impl WorkerConfig {
    /// Checks settings that cannot work together, before the worker connects: the heartbeat's
    /// TTL must be at least twice its interval, there must be a queue to take from, the
    /// health endpoint needs an address of its own, and the capsules must have distinct names,
    /// a concurrency above 0, queues, and no queue in two of them.
    pub fn validate(&self) -> Result<(), Error> {
        let error = |reason: String| Error::Config {
            origin: "the worker's settings".to_owned(),
            reason,
        };
        if self.heartbeat_ttl < self.heartbeat_interval * 2 {
            return Err(error(format!(
                "the heartbeat TTL ({:?}) must be at least twice its interval ({:?}), or live \
                 processes would be presumed dead",
                self.heartbeat_ttl, self.heartbeat_interval
            )));
        }
        if let Some(address) = self.health
            && self.web == Some(address)
        {
            return Err(error(format!(
                "--health and --web both name {address}; drop --health: the dashboard at --web \
                 answers /livez and /readyz too"
            )));
        }
        if self.queues.is_empty() {
            return Err(error(
                "there are no queues to take jobs from; name at least one with -q, `:queues:` \
                 or `.queues([...])`"
                    .to_owned(),
            ));
        }
        capsule::check(&self.all_capsules()).map_err(error)
    }

    /// Every capsule, the default one first: the top-level [`queues`](Self::queues) and
    /// [`concurrency`](Self::concurrency) named `default`, then [`capsules`](Self::capsules),
    /// each with its concurrency given ([`DEFAULT_CONCURRENCY`](super::DEFAULT_CONCURRENCY)
    /// where it named none).
    pub fn all_capsules(&self) -> Vec<Capsule> {
        let default = Capsule::new(DEFAULT_CAPSULE)
            .weighted_queues(self.queues.iter().cloned())
            .concurrency(self.concurrency);
        // A capsule given no concurrency runs the default number of jobs at once.
        let others = self
            .capsules
            .iter()
            .map(|capsule| capsule.clone().concurrency(capsule.slots()));
        std::iter::once(default).chain(others).collect()
    }

    /// How many jobs the process runs at once: the concurrency of every capsule, added up
    /// (what its heartbeat shows).
    pub fn total_concurrency(&self) -> usize {
        self.concurrency + self.capsules.iter().map(Capsule::slots).sum::<usize>()
    }

    /// Adds `capsule`, or replaces the one of its name; the capsule `default` sets the
    /// top-level concurrency and queues, each only when it names them.
    pub(crate) fn set_capsule(&mut self, capsule: Capsule) {
        if capsule.name == DEFAULT_CAPSULE {
            if let Some(concurrency) = capsule.concurrency {
                self.concurrency = concurrency;
            }
            if !capsule.queues.is_empty() {
                self.queues = capsule.queues;
            }
            return;
        }
        match self
            .capsules
            .iter_mut()
            .find(|known| known.name == capsule.name)
        {
            Some(known) => *known = capsule,
            None => self.capsules.push(capsule),
        }
    }

    /// How long a process stays alive to crash recovery without renewing its liveness key:
    /// the heartbeat's TTL, at most 10 s. Sidekiq's process hash keeps its own 60 s TTL for
    /// Ruby's sake; recovery reads this finer one.
    pub fn liveness_ttl(&self) -> Duration {
        self.heartbeat_ttl.min(Duration::from_secs(10))
    }

    /// How often a process renews its liveness key: a fifth of its TTL (2 s by default), or
    /// the heartbeat's interval if shorter.
    pub fn liveness_interval(&self) -> Duration {
        (self.liveness_ttl() / 5).min(self.heartbeat_interval)
    }

    /// How this worker trims the dead set: its `dead_max_jobs` and `dead_timeout`. Give it to
    /// the admin API and the dashboard so that a kill there trims as the worker does.
    pub fn dead_limits(&self) -> DeadLimits {
        DeadLimits {
            max_jobs: self.dead_max_jobs,
            timeout: self.dead_timeout,
        }
    }

    /// Applies the config file at `path` for `self.environment`, its ERB tags expanded with
    /// the process's environment variables.
    pub fn load_file(&mut self, path: &Path) -> Result<(), Error> {
        self.load_file_with(path, &|name| std::env::var(name).ok())
    }

    /// [`load_file`](Self::load_file), reading environment variables with `var`.
    pub(crate) fn load_file_with(
        &mut self,
        path: &Path,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), Error> {
        let origin = path.display().to_string();
        let error = |reason: String| Error::Config {
            origin: origin.clone(),
            reason,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|read| error(format!("cannot read it: {read}")))?;
        let text = super::erb::expand(&text, var).map_err(error)?;
        self.load_yaml(&text, &origin)
    }

    /// Applies config-file text; `origin` names it in errors.
    pub fn load_yaml(&mut self, text: &str, origin: &str) -> Result<(), Error> {
        let error = |reason: String| Error::Config {
            origin: origin.to_owned(),
            reason,
        };
        let documents = YamlLoader::load_from_str(text)
            .map_err(|scan| error(format!("it is not valid YAML: {scan}")))?;
        let root = match documents.into_iter().next() {
            None | Some(Yaml::Null) => return Ok(()),
            Some(Yaml::Hash(root)) => root,
            Some(_) => {
                return Err(error(
                    "it must be a map of settings, like `:concurrency: 10`".to_owned(),
                ));
            }
        };
        let mut section = None;
        // Read after every other key, the environment's included, so a capsule `default` wins
        // over `:queues:` and `:concurrency:` wherever they stand (as Sidekiq applies capsules
        // last, from its merged options).
        let mut capsules = None;
        for (key, value) in &root {
            let name = key_name(key).ok_or_else(|| error(format!("{key:?} is not a key")))?;
            if name == "periodic" {
                self.periodic = crate::periodic::read_section(value, origin).map_err(error)?;
                continue;
            }
            if name == "capsules" {
                capsules = Some(value);
                continue;
            }
            if name == "caps" {
                // Global queue caps (`crate::cap`); an environment's section may name them too.
                crate::cap::read_section(value, &mut self.queue_caps).map_err(error)?;
                continue;
            }
            if matches!(value, Yaml::Hash(_)) {
                if name == self.environment {
                    section = Some(value.clone());
                }
                continue;
            }
            self.apply(name, value).map_err(error)?;
        }
        if let Some(Yaml::Hash(section)) = &section {
            for (key, value) in section {
                let name = key_name(key).ok_or_else(|| error(format!("{key:?} is not a key")))?;
                if name == "periodic" {
                    // An environment's entries join those of the whole file, by name.
                    for entry in crate::periodic::read_section(value, origin).map_err(error)? {
                        self.periodic.retain(|known| known.name != entry.name);
                        self.periodic.push(entry);
                    }
                    continue;
                }
                if name == "capsules" {
                    // The whole map, as Sidekiq merges an environment's section shallowly: a
                    // capsule of the file's map that the environment's leaves out does not run.
                    capsules = Some(value);
                    continue;
                }
                if name == "caps" {
                    crate::cap::read_section(value, &mut self.queue_caps).map_err(error)?;
                    continue;
                }
                self.apply(name, value).map_err(error)?;
            }
        }
        if let Some(capsules) = capsules {
            self.apply("capsules", capsules).map_err(error)?;
        }
        Ok(())
    }

    fn apply(&mut self, name: &str, value: &Yaml) -> Result<(), String> {
        match name {
            "concurrency" => {
                self.concurrency = whole(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(name, value, "a whole number above 0, like 10"))?
                    as usize;
            }
            "queues" => self.queues = queues(value)?,
            "capsules" => {
                // The map replaces any given before (`Worker::capsule` adds to it afterwards).
                self.capsules.clear();
                for capsule in capsule::from_yaml(value)? {
                    self.set_capsule(capsule);
                }
            }
            "timeout" => {
                self.timeout = seconds(value)
                    .ok_or_else(|| bad(name, value, "a number of seconds, like 25"))?;
            }
            "tag" => {
                self.tag = Some(text(value).ok_or_else(|| bad(name, value, "a string"))?);
            }
            "labels" => {
                self.labels = strings(value).ok_or_else(|| bad(name, value, "a list of strings"))?
            }
            "verbose" => {
                self.verbose = match value {
                    Yaml::Boolean(flag) => *flag,
                    _ => return Err(bad(name, value, "true or false")),
                };
            }
            "max_retries" => {
                self.max_retries = whole(value)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad(name, value, "a whole number, like 25"))?;
            }
            "dead_max_jobs" => {
                self.dead_max_jobs = whole(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(name, value, "a whole number above 0, like 10000"))?
                    as usize;
            }
            "dead_timeout_in_seconds" => {
                self.dead_timeout = seconds(value)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad(name, value, "a number of seconds above 0"))?;
            }
            "average_scheduled_poll_interval" => {
                self.average_scheduled_poll_interval = seconds(value)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad(name, value, "a number of seconds above 0, like 5"))?;
            }
            "poll_interval_average" => {
                self.poll_interval_average = Some(
                    seconds(value)
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| bad(name, value, "a number of seconds above 0"))?,
                );
            }
            "heartbeat_interval" | "heartbeat_ttl" | "recovery_interval" => {
                let duration = seconds(value)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad(name, value, "a number of seconds above 0"))?;
                match name {
                    "heartbeat_interval" => self.heartbeat_interval = duration,
                    "heartbeat_ttl" => self.heartbeat_ttl = duration,
                    _ => self.recovery_interval = duration,
                }
            }
            "max_recoveries" => {
                self.max_recoveries = whole(value)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad(name, value, "a whole number, like 3"))?;
            }
            ruby if RUBY_ONLY_KEYS.contains(&ruby) => {
                tracing::warn!(key = ruby, "ignoring a Ruby-only Sidekiq setting");
            }
            unknown => {
                return Err(format!(
                    "unknown key `:{unknown}:`; the keys jobs reads are {KNOWN_KEYS}, and a map \
                     under an environment's name (`production:`)"
                ));
            }
        }
        Ok(())
    }
}

/// `:concurrency` and `concurrency` are the same key.
pub(super) fn key_name(key: &Yaml) -> Option<&str> {
    match key {
        Yaml::String(name) => Some(name.strip_prefix(':').unwrap_or(name)),
        _ => None,
    }
}

pub(super) fn bad(name: &str, value: &Yaml, expected: &str) -> String {
    format!("`:{name}:` must be {expected}, not {}", show(value))
}

pub(super) fn show(value: &Yaml) -> String {
    match value {
        Yaml::String(text) => format!("{text:?}"),
        Yaml::Integer(number) => number.to_string(),
        Yaml::Real(number) => number.clone(),
        Yaml::Boolean(flag) => flag.to_string(),
        Yaml::Null => "nothing".to_owned(),
        Yaml::Array(_) => "a list".to_owned(),
        Yaml::Hash(_) => "a map".to_owned(),
        _ => "that".to_owned(),
    }
}

pub(super) fn whole(value: &Yaml) -> Option<i64> {
    match value {
        Yaml::Integer(number) => Some(*number),
        _ => None,
    }
}

fn seconds(value: &Yaml) -> Option<Duration> {
    let seconds = match value {
        Yaml::Integer(number) => *number as f64,
        Yaml::Real(number) => number.parse().ok()?,
        _ => return None,
    };
    (seconds >= 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds))
}

fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) => Some(text.clone()),
        _ => None,
    }
}

fn strings(value: &Yaml) -> Option<Vec<String>> {
    match value {
        Yaml::Array(items) => items.iter().map(text).collect(),
        _ => None,
    }
}

pub(super) fn queues(value: &Yaml) -> Result<Vec<QueueSpec>, String> {
    let expected = "a list of queue names or [name, weight] pairs, like `- critical` and \
                    `- [default, 2]`";
    let Yaml::Array(items) = value else {
        return Err(bad("queues", value, expected));
    };
    let specs = items
        .iter()
        .map(|item| match item {
            Yaml::String(name) => QueueSpec::parse(name),
            Yaml::Array(pair) => match pair.as_slice() {
                [Yaml::String(name), Yaml::Integer(weight)] => u32::try_from(*weight)
                    .ok()
                    .filter(|weight| *weight <= MAX_WEIGHT)
                    .map(|weight| QueueSpec::weighted(name.clone(), weight))
                    .ok_or_else(|| {
                        format!(
                            "the weight of `{name}` must be a whole number from 0 to {MAX_WEIGHT}"
                        )
                    }),
                _ => Err(bad("queues", item, expected)),
            },
            _ => Err(bad("queues", item, expected)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if specs.is_empty() {
        return Err(format!(
            "`:queues:` must name at least one queue; {expected}"
        ));
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::WorkerConfig;
    use crate::worker::capsule::Capsule;
    use crate::worker::order::QueueSpec;

    const SIDEKIQ_STYLE: &str = "
:concurrency: 10
:timeout: 8
:tag: scores
:queues:
  - critical
  - [default, 2]
  - [low, 1]
:require: ./app.rb
production:
  :concurrency: 25
staging:
  :concurrency: 3
";

    fn load(text: &str, environment: &str) -> Result<WorkerConfig, String> {
        let mut config = WorkerConfig {
            environment: environment.to_owned(),
            ..WorkerConfig::default()
        };
        config
            .load_yaml(text, "config/jobs.yml")
            .map(|()| config)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn reads_sidekiq_symbol_keys_and_queue_weights() {
        let config = load(SIDEKIQ_STYLE, "development").unwrap();
        assert_eq!(config.concurrency, 10);
        assert_eq!(config.timeout, Duration::from_secs(8));
        assert_eq!(config.tag.as_deref(), Some("scores"));
        assert_eq!(
            config.queues,
            [
                QueueSpec::weighted("critical", 0),
                QueueSpec::weighted("default", 2),
                QueueSpec::weighted("low", 1)
            ]
        );
    }

    #[test]
    fn the_environment_section_is_merged_over_the_base() {
        assert_eq!(load(SIDEKIQ_STYLE, "production").unwrap().concurrency, 25);
        assert_eq!(load(SIDEKIQ_STYLE, "staging").unwrap().concurrency, 3);
    }

    #[test]
    fn plain_keys_work_too() {
        let config = load(
            "concurrency: 7\nqueues: [a, b]\nverbose: true\n",
            "development",
        )
        .unwrap();
        assert_eq!(config.concurrency, 7);
        assert!(config.verbose);
        assert_eq!(config.queues.len(), 2);
    }

    #[test]
    fn a_bad_value_names_the_file_the_key_and_what_is_allowed() {
        let error = load(":concurrency: ten\n", "development").unwrap_err();
        assert_eq!(
            error,
            "config/jobs.yml: `:concurrency:` must be a whole number above 0, like 10, not \"ten\""
        );
        let error = load(":queues:\n  - [default, two]\n", "development").unwrap_err();
        assert!(
            error.contains("`:queues:` must be a list of queue names"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_listing_the_known_ones() {
        let error = load(":concurency: 10\n", "development").unwrap_err();
        assert!(error.contains("unknown key `:concurency:`"), "{error}");
        assert!(error.contains("concurrency, queues, timeout"), "{error}");
    }

    /// Sidekiq 7's `test/cfg/config_capsules.yml` shape.
    const CAPSULES: &str = "
:concurrency: 5
:queues:
  - default
:capsules:
  :single:
    :queues:
      - single
    :concurrency: 1
  weighted:
    queues: [[a, 3], \"b,1\"]
    concurrency: 4
";

    #[test]
    fn reads_sidekiq_7_capsules() {
        let config = load(CAPSULES, "development").unwrap();
        assert_eq!(config.concurrency, 5);
        assert_eq!(config.queues, [QueueSpec::new("default")]);
        assert_eq!(
            config.capsules,
            [
                Capsule::new("single").queues(["single"]).concurrency(1),
                Capsule::new("weighted")
                    .weighted_queues([QueueSpec::weighted("a", 3), QueueSpec::weighted("b", 1)])
                    .concurrency(4),
            ]
        );
        assert_eq!(config.total_concurrency(), 10);
        let names: Vec<String> = config.all_capsules().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["default", "single", "weighted"]);
        config.validate().unwrap();
    }

    #[test]
    fn the_default_capsule_is_the_top_level_one() {
        let text = ":capsules:\n  default: {queues: [critical, default], concurrency: 8}\n\
                    :queues: [ignored]\n";
        let config = load(text, "development").unwrap();
        assert!(config.capsules.is_empty());
        assert_eq!(config.concurrency, 8);
        assert_eq!(
            config.queues.len(),
            2,
            "capsules apply after the other keys"
        );
        // Named without concurrency, it keeps the top-level one.
        let config = load(
            ":concurrency: 3\n:capsules: {default: {queues: [a]}}\n",
            "development",
        )
        .unwrap();
        assert_eq!(
            (config.concurrency, config.queues[0].name.as_str()),
            (3, "a")
        );
    }

    #[test]
    fn an_environment_replaces_the_capsules_as_sidekiq_does() {
        // Sidekiq's `parse_config` merges an environment's section shallowly: its `:capsules:`
        // is the whole map, and `weighted`, at the top of the file only, does not run there.
        let text = format!(
            "{CAPSULES}production:\n  :capsules:\n    single: {{queues: [single], concurrency: 2}}\n    bulk: {{queues: [bulk], concurrency: 9}}\n"
        );
        let capsules = |environment: &str| -> Vec<(String, Option<usize>)> {
            load(&text, environment)
                .unwrap()
                .capsules
                .into_iter()
                .map(|capsule| (capsule.name, capsule.concurrency))
                .collect()
        };
        assert_eq!(
            capsules("production"),
            [("single".to_owned(), Some(2)), ("bulk".to_owned(), Some(9))]
        );
        assert_eq!(
            capsules("development"),
            [
                ("single".to_owned(), Some(1)),
                ("weighted".to_owned(), Some(4))
            ]
        );
        // The file's `default` capsule goes too: the top-level keys make the default capsule.
        let text = ":concurrency: 3\n:capsules: {default: {queues: [a], concurrency: 8}}\n\
                    production:\n  :capsules: {b: {queues: [b], concurrency: 1}}\n";
        let config = load(text, "production").unwrap();
        assert_eq!(
            (config.concurrency, config.queues[0].name.as_str()),
            (3, "default")
        );
        assert_eq!(config.capsules.len(), 1);
    }

    #[test]
    fn an_empty_capsules_key_adds_no_capsule() {
        let cases = [
            ":capsules:\n".to_owned(),
            ":capsules:\n#  single: {queues: [single], concurrency: 1}\n".to_owned(),
            format!(
                "{CAPSULES}production:\n  :capsules:\n  #  bulk: {{queues: [bulk], concurrency: 9}}\n"
            ),
        ];
        for text in cases {
            let config =
                load(&text, "production").unwrap_or_else(|error| panic!("{text}: {error}"));
            assert!(config.capsules.is_empty(), "{text}: {:?}", config.capsules);
        }
    }

    #[test]
    fn the_default_capsule_keeps_the_top_level_concurrency_unless_it_names_one() {
        // `Worker::new().concurrency(10).capsule(Capsule::new("default").queues(["a"]))`.
        let mut config = WorkerConfig {
            concurrency: 10,
            ..WorkerConfig::default()
        };
        config.set_capsule(Capsule::new("default").queues(["a"]));
        assert_eq!(
            (config.concurrency, config.queues.clone()),
            (10, vec![QueueSpec::new("a")])
        );
        config.set_capsule(Capsule::new("default").concurrency(3));
        assert_eq!(
            (config.concurrency, config.queues.clone()),
            (3, vec![QueueSpec::new("a")])
        );
        // Another capsule given no concurrency runs 5 at once, as Sidekiq's default.
        config.set_capsule(Capsule::new("b").queues(["b"]));
        assert_eq!(config.total_concurrency(), 8);
        config.validate().unwrap();
    }

    #[test]
    fn a_bad_capsule_says_what_is_wrong() {
        let cases = [
            (
                ":capsules: [a]\n",
                "`:capsules:` must be a map of capsule names",
            ),
            (
                ":capsules: {a: 1}\n",
                "`a` must be a map with `queues` and `concurrency`",
            ),
            (":capsules: {a: {concurrency: 1}}\n", "`a` has no `queues`"),
            (
                ":capsules: {a: {queues: [a]}}\n",
                "`a` has no `concurrency`",
            ),
            (
                ":capsules: {a: {queues: [a], concurrency: 0}}\n",
                "`concurrency` must be a whole number above 0",
            ),
            (
                ":capsules: {a: {queues: [], concurrency: 1}}\n",
                "must name at least one queue",
            ),
            (
                ":capsules: {a: {queues: [a], concurrency: 1, strict: true}}\n",
                "unknown key",
            ),
            (
                ":capsules: {a: {queues: [a], concurrency: 1}, :a: {queues: [b], concurrency: 1}}\n",
                "names `a` twice",
            ),
        ];
        for (text, expected) in cases {
            let error = load(text, "development").unwrap_err();
            assert!(error.starts_with("config/jobs.yml: "), "{error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn validation_refuses_a_queue_in_two_capsules_and_explains_why() {
        let config = load(
            ":queues: [default, shared]\n:capsules: {b: {queues: [shared], concurrency: 1}}\n",
            "development",
        )
        .unwrap();
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("the queue `shared` is in two capsules, `default` and `b`"),
            "{error}"
        );
        assert!(error.contains("working list"), "{error}");
        assert!(error.contains("8.1.3"), "{error}");
    }

    #[test]
    fn validation_refuses_what_the_code_can_get_wrong() {
        let with = |capsules: Vec<Capsule>| WorkerConfig {
            capsules,
            ..WorkerConfig::default()
        };
        let cases = [
            (vec![Capsule::new("a")], "has no queues"),
            (
                vec![Capsule::new("a").queues(["a"]).concurrency(0)],
                "has concurrency 0",
            ),
            (
                vec![
                    Capsule::new("a").queues(["a"]),
                    Capsule::new("a").queues(["b"]),
                ],
                "two capsules are named `a`",
            ),
            (
                vec![Capsule::new("default").queues(["a"])],
                "is the top-level `queues` and `concurrency`",
            ),
        ];
        for (capsules, expected) in cases {
            let error = with(capsules).validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn invalid_yaml_says_so() {
        let error = load(":queues: [a, b\n", "development").unwrap_err();
        assert!(
            error.starts_with("config/jobs.yml: it is not valid YAML"),
            "{error}"
        );
    }
}

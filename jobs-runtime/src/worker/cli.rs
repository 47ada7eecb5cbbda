//! Sidekiq's command-line flags, parsed with clap.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use super::config::WorkerConfig;
use super::logging::{LOG_FORMAT_VAR, LogFormat};
use super::order::QueueSpec;
use crate::error::Error;

/// The config files read when `-C` is not given: the first that exists. `jobs`'s own name
/// first, then the two Sidekiq finds (6.4's `cli.rb`), so a Rails app's `config/sidekiq.yml`
/// is read as it is.
pub(crate) const DEFAULT_CONFIG_FILES: [&str; 3] = [
    "config/jobs.yml",
    "config/sidekiq.yml",
    "config/sidekiq.yml.erb",
];

/// The variable Rails apps size their thread pools with; concurrency when `-c` and the config
/// file leave it unset.
pub(crate) const RAILS_MAX_THREADS: &str = "RAILS_MAX_THREADS";

/// Runs the jobs linked into this binary, taking them from Redis (`REDIS_URL`).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub(crate) struct Flags {
    /// Jobs to run at once [default: the config file's, else RAILS_MAX_THREADS, else 5]
    #[arg(short = 'c', long, value_name = "INT", value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: Option<u32>,

    /// A queue to take jobs from, with an optional weight; repeat for more [default: default]
    #[arg(short = 'q', long = "queue", value_name = "QUEUE[,WEIGHT]", value_parser = QueueSpec::parse)]
    queues: Vec<QueueSpec>,

    /// Sidekiq-style YAML config file [default: the first present of config/jobs.yml,
    /// config/sidekiq.yml, config/sidekiq.yml.erb]
    #[arg(short = 'C', long = "config", value_name = "PATH")]
    config: Option<PathBuf>,

    /// Environment whose section of the config file applies [default: APP_ENV, RAILS_ENV,
    /// RACK_ENV or development]
    #[arg(short = 'e', long, value_name = "ENV")]
    environment: Option<String>,

    /// Seconds shutdown waits for running jobs before handing them back [default: 25]
    #[arg(short = 't', long, value_name = "NUM")]
    timeout: Option<u64>,

    /// A tag naming this process in dashboards
    #[arg(short = 'g', long, value_name = "TAG")]
    tag: Option<String>,

    /// Log at debug level
    #[arg(short = 'v', long)]
    verbose: bool,

    /// Log as `text` lines or `json`, one object per line [default: JOBS_LOG_FORMAT, or text]
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,

    /// Serve the web dashboard at this address: a port (on 127.0.0.1) or IP:PORT
    #[arg(long, value_name = "ADDR", value_parser = parse_web_address)]
    web: Option<std::net::SocketAddr>,

    /// Answer health probes (GET /livez, /readyz) at this address: a port (on 127.0.0.1) or
    /// IP:PORT
    #[arg(long, value_name = "ADDR", value_parser = parse_web_address)]
    health: Option<std::net::SocketAddr>,
}

/// The config file to read when `-C` is not given: the first of [`DEFAULT_CONFIG_FILES`] that
/// `exists` says is there.
fn default_config_file(exists: impl Fn(&Path) -> bool) -> Option<&'static Path> {
    DEFAULT_CONFIG_FILES
        .into_iter()
        .map(Path::new)
        .find(|path| exists(path))
}

/// `RAILS_MAX_THREADS` as a concurrency: a whole number above 0 (Sidekiq's `Integer()` raises on
/// anything else).
fn rails_max_threads(threads: &str) -> Result<usize, Error> {
    threads
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|threads| *threads > 0)
        .ok_or_else(|| Error::Config {
            origin: RAILS_MAX_THREADS.to_owned(),
            reason: format!(
                "it must be a whole number above 0, like 5, not {threads:?} (it sizes \
                 concurrency when neither -c nor the config file does)"
            ),
        })
}

/// `7433` means `127.0.0.1:7433`: the dashboard stays on this machine unless an address says
/// otherwise.
fn parse_web_address(value: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    value
        .parse()
        .map_err(|_| format!("`{value}` is not a port or IP:PORT, like 7433 or 127.0.0.1:7433"))
}

impl Flags {
    /// Parses `args` (the first is the program name).
    pub(crate) fn parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::try_parse_from(args)
    }

    /// The configuration these flags give: defaults, then the config file, then the flags.
    /// `var` reads environment variables.
    pub(crate) fn into_config(
        self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<WorkerConfig, Error> {
        let environment = self
            .environment
            .clone()
            .or_else(|| {
                ["APP_ENV", "RAILS_ENV", "RACK_ENV"]
                    .into_iter()
                    .find_map(&var)
            })
            .unwrap_or_else(|| "development".to_owned());
        let mut config = WorkerConfig {
            environment,
            ..WorkerConfig::default()
        };
        // Left at 0 (a value the file cannot give) to see whether the file sets it.
        config.concurrency = 0;
        let file = match &self.config {
            Some(path) => Some(path.as_path()),
            None => default_config_file(|path| path.is_file()),
        };
        if let Some(path) = file {
            config.load_file_with(path, &var)?;
        }
        if let Some(concurrency) = self.concurrency {
            config.concurrency = concurrency as usize;
        } else if config.concurrency == 0 {
            // Sidekiq's rule (6.4 to 8.x, `cli.rb`): `RAILS_MAX_THREADS` sizes concurrency when
            // neither `-c` nor the config file does; only then is it read.
            config.concurrency = match var(RAILS_MAX_THREADS) {
                Some(threads) => rails_max_threads(&threads)?,
                None => WorkerConfig::default().concurrency,
            };
        }
        if !self.queues.is_empty() {
            config.queues = self.queues;
        }
        if let Some(timeout) = self.timeout {
            config.timeout = Duration::from_secs(timeout);
        }
        if self.tag.is_some() {
            config.tag = self.tag;
        }
        config.verbose |= self.verbose;
        if self.web.is_some() {
            config.web = self.web;
        }
        if self.health.is_some() {
            config.health = self.health;
        }
        config.log_format = match self.log_format {
            Some(format) => format,
            None => match var(LOG_FORMAT_VAR) {
                Some(value) => value.parse().map_err(|reason| Error::Config {
                    origin: LOG_FORMAT_VAR.to_owned(),
                    reason,
                })?,
                None => LogFormat::Text,
            },
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Flags;
    use crate::worker::order::QueueSpec;

    fn config(args: &[&str]) -> crate::worker::WorkerConfig {
        let args = std::iter::once("worker").chain(args.iter().copied());
        Flags::parse_from(args)
            .unwrap()
            .into_config(|_| None)
            .unwrap()
    }

    #[test]
    fn takes_sidekiqs_flags() {
        let config = config(&[
            "-c",
            "12",
            "-q",
            "critical,3",
            "-q",
            "default",
            "-t",
            "8",
            "-g",
            "api",
            "-v",
        ]);
        assert_eq!(config.concurrency, 12);
        assert_eq!(
            config.queues,
            [
                QueueSpec::weighted("critical", 3),
                QueueSpec::new("default")
            ]
        );
        assert_eq!(config.timeout, Duration::from_secs(8));
        assert_eq!(config.tag.as_deref(), Some("api"));
        assert!(config.verbose);
    }

    #[test]
    fn long_flags_work_too() {
        let config = config(&[
            "--concurrency",
            "3",
            "--queue",
            "low",
            "--environment",
            "production",
        ]);
        assert_eq!(config.concurrency, 3);
        assert_eq!(config.environment, "production");
    }

    #[test]
    fn the_environment_comes_from_app_env_when_not_given() {
        let args = ["worker"];
        let from_env = Flags::parse_from(args)
            .unwrap()
            .into_config(|name| (name == "RAILS_ENV").then(|| "staging".to_owned()))
            .unwrap();
        assert_eq!(from_env.environment, "staging");
    }

    #[test]
    fn concurrency_is_the_flag_else_the_file_else_rails_max_threads_else_5() {
        let dir = std::env::temp_dir().join(format!("jobs-cli-{}-threads", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let with_file = dir.join("with.yml");
        std::fs::write(&with_file, ":concurrency: 3\n").unwrap();
        let without = dir.join("without.yml");
        std::fs::write(&without, ":queues: [default]\n").unwrap();
        let (with_file, without) = (with_file.to_str().unwrap(), without.to_str().unwrap());
        let concurrency = |args: &[&str], threads: Option<&str>| {
            let args = std::iter::once("worker").chain(args.iter().copied());
            Flags::parse_from(args)
                .unwrap()
                .into_config(|name| {
                    (name == "RAILS_MAX_THREADS")
                        .then(|| threads.map(str::to_owned))
                        .flatten()
                })
                .map(|config| config.concurrency)
                .map_err(|error| error.to_string())
        };
        assert_eq!(concurrency(&["-C", without], None), Ok(5));
        assert_eq!(concurrency(&["-C", without], Some("9")), Ok(9));
        assert_eq!(concurrency(&["-C", with_file], Some("9")), Ok(3));
        assert_eq!(concurrency(&["-C", with_file, "-c", "2"], Some("9")), Ok(2));
        assert_eq!(concurrency(&["-c", "2"], Some("9")), Ok(2));
        // Read only when needed, as Sidekiq's `Integer(ENV["RAILS_MAX_THREADS"])`.
        assert_eq!(concurrency(&["-c", "2"], Some("many")), Ok(2));
        let error = concurrency(&["-C", without], Some("many")).unwrap_err();
        assert!(
            error.starts_with("RAILS_MAX_THREADS: it must be a whole number above 0"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn q_and_c_apply_to_the_default_capsule_only() {
        let dir = std::env::temp_dir().join(format!("jobs-cli-{}-capsules", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("capsules.yml");
        std::fs::write(
            &file,
            ":concurrency: 5\n:queues: [default]\n:capsules:\n  single: {queues: [single], concurrency: 1}\n",
        )
        .unwrap();
        let flagged = config(&["-C", file.to_str().unwrap(), "-c", "7", "-q", "critical"]);
        assert_eq!(flagged.concurrency, 7);
        assert_eq!(flagged.queues, [QueueSpec::new("critical")]);
        assert_eq!(flagged.capsules.len(), 1);
        assert_eq!(flagged.capsules[0].concurrency, Some(1));
        assert_eq!(flagged.total_concurrency(), 8);
        // A default capsule in the file without a concurrency leaves it to RAILS_MAX_THREADS
        // and 5, as the top-level key would.
        std::fs::write(&file, ":capsules:\n  default: {queues: [a]}\n").unwrap();
        let config = config(&["-C", file.to_str().unwrap()]);
        assert_eq!(
            (config.concurrency, config.queues[0].name.as_str()),
            (5, "a")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_log_format_comes_from_the_flag_else_jobs_log_format() {
        use crate::worker::LogFormat;
        let from = |args: &[&str], var: Option<&str>| {
            let args = std::iter::once("worker").chain(args.iter().copied());
            Flags::parse_from(args).unwrap().into_config(|name| {
                (name == "JOBS_LOG_FORMAT")
                    .then(|| var.map(str::to_owned))
                    .flatten()
            })
        };
        assert_eq!(from(&[], None).unwrap().log_format, LogFormat::Text);
        assert_eq!(from(&[], Some("json")).unwrap().log_format, LogFormat::Json);
        let flag = from(&["--log-format", "text"], Some("json")).unwrap();
        assert_eq!(flag.log_format, LogFormat::Text);
        let error = from(&[], Some("xml")).unwrap_err().to_string();
        assert_eq!(
            error,
            "JOBS_LOG_FORMAT: `xml` is not a log format; use `text` or `json`"
        );
        let error = Flags::parse_from(["worker", "--log-format", "xml"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("use `text` or `json`"), "{error}");
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let error = Flags::parse_from(["worker", "-c", "0"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("invalid value '0' for '--concurrency <INT>'"),
            "{error}"
        );
        let error = Flags::parse_from(["worker", "-q", "low,x"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("must be a whole number"), "{error}");
        let error = Flags::parse_from(["worker", "--concurency", "3"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--concurrency"),
            "suggests the right flag: {error}"
        );
    }

    #[test]
    fn a_missing_config_file_is_an_error_naming_it() {
        let error = Flags::parse_from(["worker", "-C", "nowhere/jobs.yml"])
            .unwrap()
            .into_config(|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("nowhere/jobs.yml: cannot read it"),
            "{error}"
        );
    }

    #[test]
    fn without_c_the_first_config_file_present_is_read() {
        let present = |names: &'static [&'static str]| {
            move |path: &std::path::Path| {
                names.iter().any(|name| path == std::path::Path::new(name))
            }
        };
        let found = |names| super::default_config_file(present(names)).map(|path| path.to_str());
        assert_eq!(found(&[]), None);
        assert_eq!(
            found(&["config/sidekiq.yml.erb"]),
            Some(Some("config/sidekiq.yml.erb"))
        );
        assert_eq!(
            found(&["config/sidekiq.yml", "config/sidekiq.yml.erb"]),
            Some(Some("config/sidekiq.yml"))
        );
        assert_eq!(
            found(&["config/sidekiq.yml", "config/jobs.yml"]),
            Some(Some("config/jobs.yml"))
        );
    }

    #[test]
    fn the_dashboard_binds_loopback_unless_told_otherwise() {
        assert_eq!(config(&[]).web, None);
        assert_eq!(
            config(&["--web", "7433"]).web,
            Some("127.0.0.1:7433".parse().unwrap())
        );
        assert_eq!(
            config(&["--web", "0.0.0.0:80"]).web,
            Some("0.0.0.0:80".parse().unwrap())
        );
        let wrong = Flags::parse_from(["worker", "--web", "example.com"]).unwrap_err();
        assert!(wrong.to_string().contains("like 7433 or 127.0.0.1:7433"));
    }

    #[test]
    fn the_health_endpoint_takes_an_address_as_the_dashboard_does() {
        assert_eq!(config(&[]).health, None);
        assert_eq!(
            config(&["--health", "7434"]).health,
            Some("127.0.0.1:7434".parse().unwrap())
        );
        assert_eq!(
            config(&["--health", "0.0.0.0:7434"]).health,
            Some("0.0.0.0:7434".parse().unwrap())
        );
        let same = config(&["--health", "7433", "--web", "7433"]);
        let error = same.validate().unwrap_err().to_string();
        assert!(error.contains("drop --health"), "{error}");
    }
}

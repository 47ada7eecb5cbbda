//! A Rails app's `config/sidekiq.yml` as it is: the ERB forms that read the environment, and
//! `RAILS_MAX_THREADS`, read by a real worker process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jobs::{Error, Worker};
use redis::AsyncCommands;

use crate::support::jobs::CallLog;
use crate::support::{TestRedis, eventually};

/// A Sidekiq-style file as Rails apps write it.
const SIDEKIQ_YML: &str = r#"# config/sidekiq.yml
<%# sized from the environment, as Rails apps do %>
:concurrency: <%= Integer(ENV.fetch("JOBS_TEST_THREADS", 5)) %>
:timeout: <%= ENV.fetch('JOBS_TEST_TIMEOUT') { 8 } %>
:tag: <%= ENV["JOBS_TEST_TAG"] || "rails" %>
:queues:
  - [<%= ENV["JOBS_TEST_QUEUE"] %>, 2]
  - default
"#;

/// The worker process the tests below start, with the test jobs: `-C` at `JOBS_TEST_CONFIG`
/// when set, else no `-C`, so it finds `config/sidekiq.yml` in its working directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a worker process by the other tests of this module"]
async fn rails_config_child() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by the rails_config tests, not directly"
    );
    let mut args = vec!["worker".to_owned()];
    if let Ok(path) = std::env::var("JOBS_TEST_CONFIG") {
        args.extend(["-C".to_owned(), path]);
    }
    let client = jobs::Client::from_env().expect("REDIS_URL");
    let worker = Worker::from_args(args)
        .expect("the config file")
        .client(&client);
    crate::support::jobs::with_test_jobs(worker, &CallLog::default())
        .run()
        .await
        .expect("the worker runs until stopped");
}

/// How a [`ConfigChild`] comes to its config file.
#[derive(Clone, Copy)]
enum Found {
    /// Named with `-C`.
    ByFlag,
    /// Not named: found at `config/sidekiq.yml`, as Sidekiq finds it.
    InConfigDir,
}

/// A worker process reading `text` as its config file, with `env`; killed by PID when dropped.
/// It runs in a directory of its own, whose `config/sidekiq.yml` is `text`.
struct ConfigChild {
    child: Child,
    dir: PathBuf,
}

impl ConfigChild {
    fn spawn(redis: &TestRedis, name: &str, text: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_found(redis, name, text, env, Found::ByFlag)
    }

    fn spawn_found(
        redis: &TestRedis,
        name: &str,
        text: &str,
        env: &[(&str, &str)],
        found: Found,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("jobs-rails-{}-{name}", std::process::id()));
        std::fs::create_dir_all(dir.join("config")).unwrap();
        let path = dir.join("config/sidekiq.yml");
        std::fs::write(&path, text).unwrap();
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command
            .args([
                "--exact",
                "rails_config::rails_config_child",
                "--ignored",
                "--nocapture",
            ])
            .env("JOBS_TEST_CHILD", "1")
            .env("REDIS_URL", redis.url())
            .env_remove("JOBS_TEST_CONFIG")
            .env_remove("RAILS_MAX_THREADS")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Found::ByFlag = found {
            command.env("JOBS_TEST_CONFIG", &path);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start a worker process");
        Self { child, dir }
    }
}

impl Drop for ConfigChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `info` of the one process in Redis, once it has beaten.
async fn process_info(redis: &TestRedis) -> serde_json::Value {
    let mut raw = redis.raw().await;
    let mut info = None;
    eventually(
        Duration::from_secs(20),
        "the worker's heartbeat",
        async || {
            let processes: Vec<String> = raw.smembers("processes").await.unwrap();
            if let Some(identity) = processes.first() {
                let json: Option<String> = raw.hget(identity, "info").await.unwrap();
                info = json.map(|json| crate::support::parse(&json));
            }
            info.is_some()
        },
    )
    .await;
    info.unwrap()
}

#[tokio::test]
async fn a_worker_finds_config_sidekiq_yml_and_reads_its_erb_from_the_environment() {
    let redis = TestRedis::start();
    let _worker = ConfigChild::spawn_found(
        &redis,
        "erb",
        SIDEKIQ_YML,
        &[("JOBS_TEST_THREADS", "7"), ("JOBS_TEST_QUEUE", "mailers")],
        Found::InConfigDir,
    );
    let info = process_info(&redis).await;
    assert_eq!(info["concurrency"], 7, "{info}");
    assert_eq!(info["tag"], "rails", "{info}");
    let queues = info["queues"].as_array().unwrap();
    assert!(queues.contains(&"mailers".into()), "{info}");
    assert!(queues.contains(&"default".into()), "{info}");
}

#[tokio::test]
async fn rails_max_threads_sizes_concurrency_when_the_file_does_not() {
    let redis = TestRedis::start();
    let _worker = ConfigChild::spawn(
        &redis,
        "max-threads",
        ":queues:\n  - default\n",
        &[("RAILS_MAX_THREADS", "9")],
    );
    assert_eq!(process_info(&redis).await["concurrency"], 9);
}

#[tokio::test]
async fn the_file_wins_over_rails_max_threads() {
    let redis = TestRedis::start();
    let _worker = ConfigChild::spawn(
        &redis,
        "file-wins",
        ":concurrency: 3\n",
        &[("RAILS_MAX_THREADS", "9")],
    );
    assert_eq!(process_info(&redis).await["concurrency"], 3);
}

#[test]
fn other_ruby_in_the_file_is_an_error_naming_the_file_the_line_and_the_forms() {
    let dir = std::env::temp_dir().join(format!("jobs-rails-{}-bad", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sidekiq.yml");
    std::fs::write(
        &path,
        ":concurrency: 5\n<% if Rails.env.production? %>\n:queues: [a]\n<% end %>\n",
    )
    .unwrap();
    let error = Worker::from_args(["worker", "-C", path.to_str().unwrap()]).unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with(path.to_str().unwrap()), "{message}");
    assert!(
        message.contains("line 2: `<% if Rails.env.production? %>` is not supported"),
        "{message}"
    );
    assert!(message.contains("ENV.fetch(\"X\", 5)"), "{message}");

    std::fs::write(
        &path,
        ":concurrency: <%= ENV.fetch(\"JOBS_TEST_SURELY_UNSET_VARIABLE\") %>\n",
    )
    .unwrap();
    let error = Worker::from_args(["worker", "-C", path.to_str().unwrap()]).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("line 1: "), "{message}");
    assert!(
        message.contains("JOBS_TEST_SURELY_UNSET_VARIABLE, which is not set"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

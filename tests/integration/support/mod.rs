//! Test support, shared by every module of the integration binary: a private Redis per test
//! (`redis.rs`), the jobs the tests push and run (`jobs.rs`), the cap tests' ledger in Redis
//! (`ledger.rs`), periodic entries (`periodic.rs`),
//! a fault proxy (`proxy.rs`), a pushing app for the failover tests (`pushes.rs`), a private PostgreSQL for the outbox's tests (`postgres.rs`,
//! feature `postgres`), and helpers for workers in the background, worker processes and
//! Ruby Sidekiq (here).

pub mod cluster;
pub mod jobs;
pub mod ledger;
pub mod periodic;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod proxy;
pub mod pushes;
mod redis;
pub mod sentinel;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// `::jobs` is the crate; `jobs` in this file is the fixtures module.
use ::jobs::{Error, Worker};

pub use redis::{TestRedis, counter, first_entry, free_port, now, parse, sorted_set};

/// Runs a Ruby script with Debian's Sidekiq 6.4 against `redis_url` and returns what it printed
/// after `RESULT:`, parsed as JSON. Fails the test, with the way to install it, when Ruby or
/// Sidekiq is missing.
pub fn ruby(redis_url: &str, script: &str) -> serde_json::Value {
    let program = format!(
        "require 'sidekiq'\nrequire 'sidekiq/api'\nrequire 'json'\n\
         Sidekiq.logger.level = Logger::WARN\n{script}"
    );
    let output = Command::new("ruby")
        .arg("-e")
        .arg(&program)
        .env("REDIS_URL", redis_url)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run ruby ({error}); install Ruby Sidekiq with `apt-get install \
                 ruby-sidekiq`, or run `scripts/test`, which does"
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ruby failed ({}):\n{stdout}\n{stderr}\nscript:\n{program}",
        output.status
    );
    let result = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RESULT:"))
        .unwrap_or_else(|| panic!("ruby printed no RESULT line:\n{stdout}\n{stderr}"));
    parse(result)
}

/// Ruby Sidekiq (Debian's `sidekiq` command) as a child process, killed by its pid when the test
/// ends, pass or fail.
pub struct RubyWorker(std::process::Child);

impl RubyWorker {
    /// Ruby Sidekiq on `redis`, requiring `app` in `dir`, taking from `queues` one job at a
    /// time; its jobs find the path `out` in `JOBS_TEST_OUT`.
    pub fn start(
        redis: &TestRedis,
        dir: &std::path::Path,
        app: &std::path::Path,
        out: &std::path::Path,
        queues: &[&str],
    ) -> Self {
        let mut command = Command::new("sidekiq");
        command.args(["-r", app.to_str().expect("a UTF-8 path"), "-c", "1"]);
        for queue in queues {
            command.args(["-q", queue]);
        }
        Self(
            command
                .env("REDIS_URL", redis.url())
                .env("JOBS_TEST_OUT", out)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Debian's `sidekiq` command (apt-get install ruby-sidekiq)"),
        )
    }
}

impl Drop for RubyWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends the process `pid` a signal by name (`TERM`, `TSTP`, `STOP`, …) with the `kill`
/// command; fails the test if `kill` does.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("the kill command");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Polls `check` every 20 ms until it holds or `limit` passes; fails the test with `what`.
pub async fn eventually(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen within {limit:?}");
}

/// A worker running in the background until [`stop`](Self::stop).
pub struct RunningWorker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl RunningWorker {
    /// Starts `worker` on a task of its own.
    pub fn start(worker: Worker) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(worker.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            task,
        }
    }

    /// Stops the worker and waits for its shutdown, failing the test if it takes over `limit`.
    pub async fn stop(mut self, limit: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(limit, &mut self.task)
            .await
            .expect("the worker stops in time")
            .expect("the worker task did not panic")
            .expect("the worker stopped without an error");
    }
}

/// A worker process: this test binary re-run as `lifecycle::child_worker`, a real process the
/// test can signal and kill, running the test jobs against `redis_url` with short heartbeats
/// (1 s, expiring after 3 s) and recovery sweeps (1 s). Killed (by its pid) when dropped, even
/// on a failed assert.
pub struct ChildWorker {
    child: std::process::Child,
    /// Where its output goes, if it is kept.
    log: Option<std::path::PathBuf>,
}

impl ChildWorker {
    /// Starts one with the given extra environment (`JOBS_TEST_CONCURRENCY`, …).
    pub fn spawn(redis_url: &str, ledger: &std::path::Path, env: &[(&str, &str)]) -> Self {
        Self::spawn_entry("lifecycle::child_worker", redis_url, ledger, env)
    }

    /// [`spawn`](Self::spawn) running another ignored test of this binary as the process
    /// (`capsules::child_worker`, say), given the same environment.
    pub fn spawn_entry(
        entry: &str,
        redis_url: &str,
        ledger: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Self {
        let log = ledger.with_extension(format!("log-{}", free_port()));
        let mut command = Self::command(entry, redis_url);
        command
            .env("JOBS_TEST_LEDGER", ledger)
            .stdout(std::fs::File::create(&log).expect("a log file"));
        for (name, value) in env {
            command.env(name, value);
        }
        Self {
            child: command.spawn().expect("start a worker process"),
            log: Some(log),
        }
    }

    /// [`spawn_entry`](Self::spawn_entry) without a ledger file nor a log (its jobs keep their
    /// ledger elsewhere, in Redis, say): the ignored test `entry` of this binary, with
    /// `JOBS_TEST_CHILD` and `REDIS_URL` alone.
    pub fn spawn_entry_without_ledger(entry: &str, redis_url: &str) -> Self {
        let mut command = Self::command(entry, redis_url);
        command.stdout(Stdio::null());
        Self {
            child: command.spawn().expect("start a worker process"),
            log: None,
        }
    }

    /// This test binary running the ignored test `entry` alone, as a child on `redis_url`.
    fn command(entry: &str, redis_url: &str) -> Command {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command
            .args(["--exact", entry, "--ignored", "--nocapture"])
            .env("JOBS_TEST_CHILD", "1")
            .env("REDIS_URL", redis_url)
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// What the process has logged so far (nothing when its output is not kept).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `TSTP`, `INT`, `KILL`) with the `kill` command.
    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// `kill -9`, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a successful exit; returns how long it took. Fails the test
    /// when the process is still running after `limit` or exits with an error.
    pub fn terminate_within(&mut self, limit: Duration) -> Duration {
        self.signal("TERM");
        let sent = Instant::now();
        let status = self
            .wait_exit(limit)
            .unwrap_or_else(|| panic!("the worker did not exit within {limit:?} of SIGTERM"));
        assert!(status.success(), "the worker exited with {status}");
        sent.elapsed()
    }

    /// Waits for the process to exit by itself; `None` if it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a ledger file says: how often each jid started, in which processes, and which
/// finished.
pub struct LedgerView {
    /// How many times each jid started.
    pub runs: std::collections::HashMap<String, usize>,
    /// The processes each jid started in, in the order it started.
    pub ran_in: std::collections::HashMap<String, Vec<u32>>,
    /// The jids that finished.
    pub done: std::collections::HashSet<String>,
}

impl LedgerView {
    /// Reads the ledger at `path` (empty when it does not exist yet).
    pub fn read(path: &std::path::Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut runs = std::collections::HashMap::new();
        let mut ran_in = std::collections::HashMap::<String, Vec<u32>>::new();
        let mut done = std::collections::HashSet::new();
        for line in text.lines() {
            let mut words = line.split(' ');
            let (Some(event), Some(jid)) = (words.next(), words.next()) else {
                continue;
            };
            let pid = words.next().and_then(|pid| pid.parse::<u32>().ok());
            match event {
                "run" => {
                    *runs.entry(jid.to_owned()).or_insert(0) += 1;
                    ran_in.entry(jid.to_owned()).or_default().extend(pid);
                }
                "done" => {
                    done.insert(jid.to_owned());
                }
                _ => {}
            }
        }
        Self { runs, ran_in, done }
    }

    /// How many jobs started more than once.
    pub fn duplicates(&self) -> usize {
        self.runs.values().filter(|count| **count > 1).count()
    }

    /// The jobs that started again after a run in a process not in `killed`: each such run
    /// was followed by another although its process lived on.
    pub fn rerun_after_a_live_run(&self, killed: &[u32]) -> Vec<String> {
        let mut found: Vec<String> = self
            .ran_in
            .iter()
            .filter(|(_, pids)| {
                pids[..pids.len().saturating_sub(1)]
                    .iter()
                    .any(|pid| !killed.contains(pid))
            })
            .map(|(jid, _)| jid.clone())
            .collect();
        found.sort();
        found
    }
}

/// A fresh, empty ledger path for one test.
pub fn ledger_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "jobs-ledger-{}-{name}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("a ledger directory");
    dir.join("ledger.txt")
}

/// A self-signed certificate for 127.0.0.1, made with the `openssl` command.
pub fn self_signed_certificate(dir: &std::path::Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command (apt-get install openssl)");
    assert!(status.status.success(), "openssl failed: {status:?}");
    (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}

/// The arguments of a `redis-server` that speaks TLS only, on the test's port, with `cert` and
/// `key` (from [`self_signed_certificate`]); clients are not asked for a certificate.
pub fn tls_only<'a>(cert: &'a str, key: &'a str) -> Vec<&'a str> {
    vec![
        "--port",
        "0",
        "--tls-port",
        "{port}",
        "--tls-cert-file",
        cert,
        "--tls-key-file",
        key,
        "--tls-ca-cert-file",
        cert,
        "--tls-auth-clients",
        "no",
    ]
}

/// The log lines a test's own thread writes, at `INFO` and above, without colours: for a test
/// that checks what a worker logged.
#[derive(Clone, Default)]
pub struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Sends this thread's log lines here until the guard is dropped (a current-thread test
    /// runtime: everything it runs logs on this thread).
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        keep_every_callsite_interested();
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// Keeps one always-interested subscriber alive for the rest of the test process (never the
/// default of any thread), so that no callsite's interest is ever cached as `never`: a test
/// that reads what its thread's own subscriber saw calls it before installing that subscriber.
///
/// `tracing` caches each callsite's interest for the whole process when the callsite is first
/// hit. While at most one subscriber is alive (a capture, with no other test's alive), it asks
/// only the hitting thread's own default: a test thread with none (most of them) caches `never`,
/// and the capturing test then sees none of that callsite's events
/// (`active_job::the_log_lines_name_the_wrapped_class` once captured nothing). With this
/// subscriber alive too, every callsite's interest is asked of every live subscriber, and this
/// one always says yes: each event then asks the current thread's default, which is what a
/// capture needs. Threads with no default still drop their events.
pub fn keep_every_callsite_interested() {
    static INTERESTED: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    INTERESTED.get_or_init(|| tracing::Dispatch::new(tracing_subscriber::registry()));
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A capture sees its own thread's event even when another thread, with no subscriber of its
/// own, hit that event's callsite first, while the capture was the only subscriber alive.
#[test]
fn a_captured_log_sees_an_event_another_thread_hit_first() {
    let captured = CapturedLog::default();
    let _guard = captured.install();
    let log = || tracing::info!("seen by the capture");
    std::thread::spawn(log).join().expect("the other thread");
    log();
    assert!(
        captured.text().contains("seen by the capture"),
        "{}",
        captured.text()
    );
}

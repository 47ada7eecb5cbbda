//! Random faults from a seed, for a given time, against two worker processes and a producer:
//! `kill -9` and SIGTERM of workers, `kill -9` of Redis (with its append-only file), reset
//! connections, and network partitions through a proxy. Then every job that was pushed must
//! have run.
//!
//! ```text
//! cargo run --release --example chaos -- --seed 7 --duration 600
//! ```
//!
//! Prints one line: `chaos seed=… duration_s=… faults=… pushed=… done=… lost=… duplicated=…
//! max_recovery_s=…`, and exits with an error when a job was lost. Needs `redis-server`.

// A harness talks to the person running it on standard output.
#![allow(clippy::print_stdout)]

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/integration/support/proxy.rs"]
mod proxy;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jobs::{JobContext, job};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Where jobs write `run|done <jid> <epoch ms> <pid>`, one line per event.
#[derive(Clone)]
struct Ledger(PathBuf);

/// Sleeps `millis`, recording its start and end.
#[job(queue = "chaos")]
async fn chaos_job(#[context] ctx: JobContext, #[state] ledger: Ledger, millis: u64) {
    record(&ledger.0, "run", ctx.jid().as_str());
    tokio::time::sleep(Duration::from_millis(millis)).await;
    record(&ledger.0, "done", ctx.jid().as_str());
}

fn record(path: &Path, event: &str, jid: &str) {
    let line = format!("{event} {jid} {} {}\n", epoch_ms(), std::process::id());
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(line.as_bytes());
    }
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn argument(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|arg| arg == "--worker") {
        let ledger = Ledger(PathBuf::from(argument("--ledger").ok_or("--ledger")?));
        jobs::Worker::new()
            .client(&jobs::Client::from_env()?)
            .queues(["chaos"])
            .concurrency(10)
            .timeout(Duration::from_secs(2))
            .heartbeat(Duration::from_secs(1), Duration::from_secs(3))
            .recovery(Duration::from_secs(1), 3)
            .state(ledger)
            .run()
            .await?;
        return Ok(());
    }
    let seed: u64 = argument("--seed").map_or(Ok(1), |seed| seed.parse())?;
    let duration = Duration::from_secs(argument("--duration").map_or(Ok(60), |d| d.parse())?);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = std::env::temp_dir().join(format!("jobs-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ledger = dir.join("ledger.txt");

    let mut redis = Redis::start(&dir)?;
    let proxy = proxy::FaultProxy::start(redis.port).await;
    let mut workers = [
        Worker::spawn(&proxy.url(), &ledger, &dir)?,
        Worker::spawn(&proxy.url(), &ledger, &dir)?,
    ];
    let client = jobs::Client::builder().url(redis.url()).build()?;
    let producing = tokio::spawn(produce(client.clone(), duration, seed));

    let started = Instant::now();
    let mut faults: Vec<String> = Vec::new();
    let mut kills: Vec<(u64, u32)> = Vec::new();
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..5_000))).await;
        let which = rng.random_range(0..6);
        let victim = rng.random_range(0..2);
        match which {
            0 => {
                kills.push((epoch_ms(), workers[victim].pid()));
                workers[victim].kill9();
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..3_000))).await;
                workers[victim] = Worker::spawn(&proxy.url(), &ledger, &dir)?;
                faults.push("kill9".into());
            }
            1 => {
                workers[victim].signal("TERM");
                workers[victim].wait(Duration::from_secs(10));
                workers[victim] = Worker::spawn(&proxy.url(), &ledger, &dir)?;
                faults.push("sigterm".into());
            }
            2 => {
                redis.kill9();
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
                redis.restart()?;
                faults.push("redis-kill9".into());
            }
            3 => {
                proxy.reset_all();
                faults.push("reset".into());
            }
            4 => {
                proxy.set_blackhole(true);
                tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..4_000))).await;
                proxy.set_blackhole(false);
                proxy.reset_all();
                faults.push("blackhole".into());
            }
            _ => faults.push("none".into()),
        }
    }
    let pushed = producing.await??;
    for worker in &mut workers {
        if !worker.is_running() {
            *worker = Worker::spawn(&proxy.url(), &ledger, &dir)?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut view = View::read(&ledger);
    while Instant::now() < deadline && !pushed.iter().all(|jid| view.done.contains(jid)) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        view = View::read(&ledger);
    }
    for worker in &mut workers {
        worker.signal("TERM");
        worker.wait(Duration::from_secs(10));
    }
    let lost = pushed
        .iter()
        .filter(|jid| !view.done.contains(*jid))
        .count();
    let duplicated = view.runs.values().filter(|runs| runs.len() > 1).count();
    let recovery = view.max_recovery(&kills);
    println!(
        "chaos seed={seed} duration_s={} faults={} kill9={} pushed={} done={} lost={lost} \
         duplicated={duplicated} max_recovery_s={:.1}",
        duration.as_secs(),
        faults.len(),
        kills.len(),
        pushed.len(),
        pushed.iter().filter(|jid| view.done.contains(*jid)).count(),
        recovery.as_secs_f64()
    );
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    if lost > 0 {
        return Err(format!("{lost} jobs lost").into());
    }
    Ok(())
}

/// Pushes about 200 jobs a second until `duration` is over; returns the jids Redis accepted.
async fn produce(
    client: jobs::Client,
    duration: Duration,
    seed: u64,
) -> Result<HashSet<String>, jobs::Error> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut pushed = HashSet::new();
    let started = Instant::now();
    while started.elapsed() < duration {
        let batch = (0..20).map(|_| ChaosJob {
            millis: rng.random_range(0..50),
        });
        if let Ok(jids) = client.perform_bulk(batch).await {
            pushed.extend(jids.into_iter().map(|jid| jid.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(pushed)
}

/// What the ledger says.
struct View {
    runs: HashMap<String, Vec<(u64, u32)>>,
    done: HashSet<String>,
    done_at: HashMap<String, u64>,
}

impl View {
    fn read(path: &Path) -> Self {
        let mut view = Self {
            runs: HashMap::new(),
            done: HashSet::new(),
            done_at: HashMap::new(),
        };
        for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let [event, jid, at, pid] = fields[..] else {
                continue;
            };
            let (Ok(at), Ok(pid)) = (at.parse::<u64>(), pid.parse::<u32>()) else {
                continue;
            };
            match event {
                "run" => view.runs.entry(jid.to_owned()).or_default().push((at, pid)),
                "done" => {
                    view.done.insert(jid.to_owned());
                    view.done_at.entry(jid.to_owned()).or_insert(at);
                }
                _ => {}
            }
        }
        view
    }

    /// For each `kill -9` of a process: the jobs it was running then, and how long until each
    /// ran again; the longest.
    fn max_recovery(&self, kills: &[(u64, u32)]) -> Duration {
        let mut longest = 0;
        for &(killed_at, pid) in kills {
            for (jid, runs) in &self.runs {
                let was_running = runs
                    .iter()
                    .rev()
                    .find(|(at, _)| *at <= killed_at)
                    .is_some_and(|(_, by)| *by == pid)
                    && self.done_at.get(jid).is_none_or(|done| *done > killed_at);
                if !was_running {
                    continue;
                }
                if let Some((again, _)) = runs.iter().find(|(at, _)| *at > killed_at) {
                    longest = longest.max(again - killed_at);
                }
            }
        }
        Duration::from_millis(longest)
    }
}

/// A worker process: this example run with `--worker`.
struct Worker(Child);

impl Worker {
    fn spawn(redis_url: &str, ledger: &Path, dir: &Path) -> std::io::Result<Self> {
        let log = std::fs::File::create(dir.join(format!("worker-{}.log", epoch_ms())))?;
        let child = Command::new(std::env::current_exe()?)
            .args(["--worker", "--ledger"])
            .arg(ledger)
            .env("REDIS_URL", redis_url)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self(child))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.0.id().to_string())
            .status();
    }

    fn wait(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }

    fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A private redis-server with an append-only file, so a `kill -9` loses no acknowledged write.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(dir: &Path) -> std::io::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut redis = Self {
            child: Self::spawn(port, dir)?,
            port,
            dir: dir.to_owned(),
        };
        redis.wait_ready();
        Ok(redis)
    }

    fn spawn(port: u16, dir: &Path) -> std::io::Result<Child> {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    fn wait_ready(&mut self) {
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) -> std::io::Result<()> {
        self.child = Self::spawn(self.port, &self.dir)?;
        self.wait_ready();
        Ok(())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

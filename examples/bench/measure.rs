//! What the benchmark measures with: a private Redis, CPU time, memory, Redis's command counts
//! and latency samples.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Finished;

/// A `redis-server` of the benchmark's own, on a free port, killed when dropped.
pub(crate) struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    /// Starts one with no persistence, as the peers' runs use.
    pub(crate) fn start() -> Result<Self, String> {
        Self::start_with(&[])
    }

    /// Starts one with extra arguments (`--replicaof 127.0.0.1 <port>` for a replica). A server
    /// that exits at once (its port, or a cluster node's bus port at port + 10,000, taken in the
    /// meantime) or does not listen within 5 s is stopped, and another port tried, up to 5.
    pub(crate) fn start_with(extra: &[&str]) -> Result<Self, String> {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|error| {
                    format!(
                        "cannot start redis-server ({error}); install it (apt-get install redis-server)"
                    )
                })?;
            // Dropped (killed) on every path that does not return it.
            let mut redis = Self { child, port };
            match redis.wait_until_listening() {
                Ok(()) => return Ok(redis),
                Err(error) => last_error = error,
            }
        }
        Err(format!(
            "redis-server did not start in 5 tries: {last_error}"
        ))
    }

    /// Waits up to 5 s for the server to accept a connection; an error if it exits first.
    fn wait_until_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "it exited with {status} (port {} or {} taken?)",
                    self.port,
                    u32::from(self.port) + 10_000
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "it did not listen on port {} within 5 s",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // What answered may be another server that took the port while ours exited: it must
        // say our server's process id.
        let pid = format!("process_id:{}\r\n", self.child.id());
        let answer = server_info(self.port);
        if answer.contains(&pid) {
            Ok(())
        } else {
            Err(format!("another process answers on port {}", self.port))
        }
    }

    /// Its port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Its URL.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// What `INFO server` answers on `port` (empty when nothing answers it within a second).
fn server_info(port: u16) -> String {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return String::new();
    };
    let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
        return String::new();
    };
    let _ = connection.set_read_timeout(Some(Duration::from_secs(1)));
    redis::cmd("INFO")
        .arg("server")
        .query(&mut connection)
        .unwrap_or_default()
}

/// A free port of 127.0.0.1 no higher than 55,535: a cluster node also listens on its port +
/// 10,000 (its bus), and exits when that is past the last port.
fn free_port() -> Result<u16, String> {
    for _ in 0..100 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| format!("no free port: {error}"))?
            .port();
        if port <= 55_535 {
            return Ok(port);
        }
    }
    Err("no free port at or below 55,535".to_owned())
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`.
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// This process's resident memory now, in MB, from `/proc/self/status`.
pub(crate) fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Redis's CPU time so far (user and system), in seconds.
pub(crate) async fn redis_cpu(url: &str) -> redis::RedisResult<f64> {
    let mut connection = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut connection)
        .await?;
    Ok(info
        .lines()
        .filter_map(|line| {
            line.strip_prefix("used_cpu_user:")
                .or_else(|| line.strip_prefix("used_cpu_sys:"))
        })
        .filter_map(|value| value.trim().parse::<f64>().ok())
        .sum())
}

/// Redis's count of commands run so far (commands inside scripts included, as the peers'
/// figures count them), without the benchmark's own INFO calls; and of scripts run.
pub(crate) async fn redis_commands(url: &str) -> (u64, u64) {
    let Ok(client) = redis::Client::open(url) else {
        return (0, 0);
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return (0, 0);
    };
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .unwrap_or_default();
    let mut commands = 0;
    let mut scripts = 0;
    for (name, calls) in command_calls(&info) {
        commands += calls;
        if name.starts_with("eval") {
            scripts += calls;
        }
    }
    (commands, scripts)
}

/// Each command's name and count of calls in the reply to `INFO commandstats`, without the
/// benchmark's own calls (`INFO`, `FLUSHDB`, `CONFIG`, `PING`).
pub(crate) fn command_calls(info: &str) -> impl Iterator<Item = (&str, u64)> {
    info.lines().filter_map(|line| {
        let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
        if ["info", "flushdb", "config", "ping"].contains(&name) {
            return None;
        }
        let calls: u64 = stats
            .split(',')
            .find_map(|pair| pair.strip_prefix("calls="))
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0);
        Some((name, calls))
    })
}

/// Runs a worker in this process (queue `bench`, concurrency 10) until the `n` jobs waiting in
/// Redis have finished; the seconds from its start to the end of the last one.
pub(crate) async fn drain_queue(
    client: &jobs::Client,
    n: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let worker = jobs::Worker::new()
        .client(client)
        .queues(["bench"])
        .concurrency(10);
    drain_with(worker, n).await
}

/// Runs `worker` (its client, queues and concurrency set) in this process until the `n` jobs
/// waiting in Redis have finished; the seconds from its start to the end of the last one.
pub(crate) async fn drain_with(
    worker: jobs::Worker,
    n: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let finished = Finished::expect(n);
    let worker = worker.state(finished.clone()).state(Samples::default());
    let started = Instant::now();
    let done = finished.clone();
    worker
        .run_until(async move { done.all_done().await })
        .await?;
    Ok(finished
        .last()
        .map_or_else(|| started.elapsed(), |last| last - started)
        .as_secs_f64())
}

/// Latency samples, in milliseconds.
#[derive(Clone, Default)]
pub(crate) struct Samples(Arc<Mutex<Vec<f64>>>);

impl Samples {
    pub(crate) fn add(&self, waited: chrono::TimeDelta) {
        let millis = waited.num_microseconds().unwrap_or(0) as f64 / 1_000.0;
        self.0.lock().expect("samples").push(millis);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().expect("samples").len()
    }

    /// `(p50, p99, max, mean)` in milliseconds.
    pub(crate) fn summary(&self) -> (f64, f64, f64, f64) {
        let mut millis = self.0.lock().expect("samples").clone();
        if millis.is_empty() {
            return (0.0, 0.0, 0.0, 0.0);
        }
        millis.sort_by(f64::total_cmp);
        let at = |fraction: f64| {
            millis[((millis.len() as f64 * fraction) as usize).min(millis.len() - 1)]
        };
        let mean = millis.iter().sum::<f64>() / millis.len() as f64;
        (at(0.50), at(0.99), at(1.0), mean)
    }
}

//! The health endpoint (`--health ADDR`, and beside the dashboard on `--web`): `/livez` and
//! `/readyz` of a real worker process, quieted with SIGTSTP and cut off from a real Redis.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::jobs::{CallLog, worker};
use crate::support::{RunningWorker, TestRedis, eventually, free_port};

/// The worker process the tests below start: `--health` at `JOBS_TEST_HEALTH`, the test jobs,
/// heartbeat every 1 s expiring after 3 s (so liveness fails 3 s after the last beat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a worker process by the other tests of this module"]
async fn health_child() {
    assert!(
        std::env::var("JOBS_TEST_CHILD").is_ok(),
        "run by the health tests, not directly"
    );
    let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    let address = std::env::var("JOBS_TEST_HEALTH").expect("JOBS_TEST_HEALTH");
    let client = jobs::Client::from_env().expect("REDIS_URL");
    let worker = jobs::Worker::from_args(["worker", "--health", &address])
        .expect("the flags")
        .client(&client);
    crate::support::jobs::with_test_jobs(worker, &CallLog::default())
        .run()
        .await
        .expect("the worker runs until stopped");
}

/// A worker process with `--health` on a free port of loopback; killed when dropped.
struct HealthChild {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl HealthChild {
    fn spawn(redis: &TestRedis) -> Self {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("jobs-health-{}-{port}.log", std::process::id()));
        let child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "health::health_child",
                "--ignored",
                "--nocapture",
            ])
            .env("JOBS_TEST_CHILD", "1")
            .env("REDIS_URL", redis.url())
            .env("JOBS_TEST_HEALTH", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("a log file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start a worker process");
        Self { child, port, log }
    }

    /// Sends a signal by name with the `kill` command.
    fn signal(&self, name: &str) {
        crate::support::signal(self.child.id(), name);
    }

    /// Waits until `path` answers `status`; fails the test with the last answer and the log.
    async fn wait_for(&self, path: &str, status: u16, limit: Duration) -> serde_json::Value {
        let mut last = None;
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            last = probe(self.port, path, "localhost").await;
            if let Some((answered, body)) = &last
                && *answered == status
            {
                return serde_json::from_str(body).expect("a JSON body");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{path} did not answer {status} within {limit:?}; last answer {last:?}\nlog:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for HealthChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `GET path` on `127.0.0.1:port` with `Host: host`: the status and body, `None` when nothing
/// answers.
async fn probe(port: u16, path: &str, host: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .ok()?
        .ok()?;
    let status = answer.get(9..12)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

#[tokio::test]
async fn a_quiet_worker_is_live_but_not_ready() {
    let redis = TestRedis::start();
    let worker = HealthChild::spawn(&redis);
    let ready = worker
        .wait_for("/readyz", 200, Duration::from_secs(20))
        .await;
    assert_eq!(ready["status"], "ok");
    assert!(ready["last_beat_s"].as_f64().is_some(), "{ready}");
    let live = worker.wait_for("/livez", 200, Duration::from_secs(1)).await;
    assert_eq!(live["status"], "ok");
    worker.signal("TSTP");
    let quiet = worker
        .wait_for("/readyz", 503, Duration::from_secs(5))
        .await;
    assert_eq!(quiet["reason"], "quiet: taking no new jobs", "{quiet}");
    let (status, body) = probe(worker.port, "/livez", "localhost")
        .await
        .expect("an answer");
    assert_eq!(status, 200, "a quiet worker is alive: {body}");
}

#[tokio::test]
async fn without_redis_a_worker_turns_unready_then_not_live_and_recovers() {
    let mut redis = TestRedis::start();
    let worker = HealthChild::spawn(&redis);
    worker
        .wait_for("/readyz", 200, Duration::from_secs(20))
        .await;
    worker.wait_for("/livez", 200, Duration::from_secs(1)).await;
    redis.kill();
    let unready = worker
        .wait_for("/readyz", 503, Duration::from_secs(5))
        .await;
    assert!(
        unready["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("PING")),
        "{unready}"
    );
    // The heartbeat's TTL is 3 s: liveness fails once no beat has landed for that long.
    let dead = worker
        .wait_for("/livez", 503, Duration::from_secs(15))
        .await;
    assert!(
        dead["reason"]
            .as_str()
            .is_some_and(|reason| reason.starts_with("no heartbeat has landed for")),
        "{dead}"
    );
    assert!(
        dead["last_beat_s"].as_f64().is_some_and(|age| age >= 3.0),
        "{dead}"
    );
    redis.restart();
    worker
        .wait_for("/livez", 200, Duration::from_secs(20))
        .await;
    worker
        .wait_for("/readyz", 200, Duration::from_secs(20))
        .await;
}

#[tokio::test]
async fn a_taken_health_port_stops_the_worker_before_it_connects() {
    let redis = TestRedis::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    // A Redis nothing answers at: the port is bound before the worker waits for it.
    let nowhere = jobs::Client::builder()
        .url(format!("redis://127.0.0.1:{}/0", free_port()))
        .build()
        .unwrap();
    let run = worker(&redis, &CallLog::default())
        .client(&nowhere)
        .health(address)
        .run_until(std::future::pending());
    let error = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the worker stops at start instead of waiting for Redis")
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("--health: cannot serve the health endpoint at"),
        "{message}"
    );
}

#[tokio::test]
async fn the_dashboard_answers_probes_for_any_host() {
    let redis = TestRedis::start();
    let port = free_port();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let running = RunningWorker::start(worker(&redis, &CallLog::default()).web(address));
    eventually(
        Duration::from_secs(10),
        "the dashboard's /readyz to answer 200",
        async || {
            probe(port, "/readyz", "localhost")
                .await
                .is_some_and(|(status, _)| status == 200)
        },
    )
    .await;
    // A probe names the pod's address or any name; the dashboard's host check refuses names
    // it does not know, and its password would stop a probe, but neither guards the probes.
    let (status, body) = probe(port, "/livez", "worker.internal").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"],
        "ok"
    );
    let (status, _) = probe(port, "/busy", "worker.internal").await.unwrap();
    assert_eq!(status, 403, "the dashboard itself still checks the host");
    let (status, _) = probe(port, "/busy", "localhost").await.unwrap();
    assert_eq!(status, 200);
    running.stop(Duration::from_secs(10)).await;
}

/// The worker's healthcheck in `deploy/docker-compose.yml`, pointed at `port`: the command.
fn compose_healthcheck(port: u16) -> Command {
    let compose =
        yaml_rust2::YamlLoader::load_from_str(include_str!("../../deploy/docker-compose.yml"))
            .expect("docker-compose.yml is YAML");
    let test: Vec<String> = compose[0]["services"]["worker"]["healthcheck"]["test"]
        .as_vec()
        .expect("the worker's healthcheck")
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect();
    assert_eq!(test[..3], ["CMD", "bash", "-c"]);
    let script = test[3].replace("127.0.0.1/7434", &format!("127.0.0.1/{port}"));
    assert_ne!(script, test[3], "the script probes 127.0.0.1:7434");
    let mut command = Command::new("bash");
    command.args(["-c", &script]).stdin(Stdio::null());
    command
}

#[tokio::test]
async fn the_compose_healthcheck_passes_only_while_the_worker_is_live() {
    let mut redis = TestRedis::start();
    let worker = HealthChild::spawn(&redis);
    worker
        .wait_for("/livez", 200, Duration::from_secs(20))
        .await;
    let status = compose_healthcheck(worker.port).status().expect("bash");
    assert!(status.success(), "healthy: {status}");
    redis.kill();
    worker
        .wait_for("/livez", 503, Duration::from_secs(15))
        .await;
    let status = compose_healthcheck(worker.port).status().expect("bash");
    assert!(!status.success(), "unhealthy once no heartbeat lands");
}

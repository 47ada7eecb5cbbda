//! A private `redis-server` per test, and helpers to read what landed in it.
//!
//! Every test starts its own server on a free port of 127.0.0.1, with no persistence, and kills
//! it when the test ends (pass or fail), so tests never touch a developer's Redis and never see
//! each other's keys. A missing `redis-server` fails the test with instructions; nothing skips.
//!
//! This file needs nothing from the rest of `support`, so `tests/todos.rs` includes it alone.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jobs::Client;
use redis::AsyncCommands;

/// A `redis-server` child process owned by one test.
pub struct TestRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
    password: Option<String>,
    extra: Vec<String>,
}

impl TestRedis {
    /// Starts a server with no password.
    pub fn start() -> Self {
        Self::start_with(&[], None)
    }

    /// Starts a server that requires `password`.
    pub fn start_with_password(password: &str) -> Self {
        Self::start_with(&["--requirepass", password], Some(password))
    }

    /// Starts a server with extra command-line arguments; `{port}` in them becomes the port.
    pub fn start_with(extra: &[&str], password: Option<&str>) -> Self {
        let extra: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!("jobs-test-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create the server's directory");
            let mut server = Self {
                child: spawn_server(port, &dir, &extra),
                port,
                dir,
                password: password.map(str::to_owned),
                extra: extra.clone(),
            };
            match server.wait_until_ready() {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and directory, so an
    /// append-only file is replayed.
    pub fn restart_keeping_data(&mut self) {
        self.kill();
        self.respawn();
    }

    /// Kills the server (SIGKILL) and starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::create_dir_all(&self.dir);
        self.respawn();
    }

    fn respawn(&mut self) {
        self.child = spawn_server(self.port, &self.dir, &self.extra);
        if let Err(error) = self.wait_until_ready() {
            panic!(
                "redis-server did not restart on port {}: {error}",
                self.port
            );
        }
    }

    /// Kills the server without starting another.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "it exited with {status} (port {} taken?)",
                    self.port
                ));
            }
            let tls = self.extra.iter().any(|arg| arg == "--tls-port");
            let up = if tls {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                self.answers_ping()
            };
            if up {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err("it did not accept connections within 5 s".to_owned())
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0_u8; 64];
        // A password-protected server answers NOAUTH, which also means it is up; one still
        // loading its append-only file answers LOADING, which does not.
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read(&mut reply).is_ok_and(|read| {
                reply[..read].starts_with(b"+PONG") || reply[..read].starts_with(b"-NOAUTH")
            })
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:<port>/<db>`.
    pub fn url_for_db(&self, db: u8) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/{db}", self.port),
            None => format!("redis://127.0.0.1:{}/{db}", self.port),
        }
    }

    /// The URL of database 0.
    pub fn url(&self) -> String {
        self.url_for_db(0)
    }

    /// A `jobs` client for this server.
    pub fn client(&self) -> Client {
        Client::builder()
            .url(self.url())
            .build()
            .expect("a client for the test server")
    }

    /// A `jobs` client for this server whose keys all start with `<namespace>:`.
    pub fn namespaced_client(&self, namespace: &str) -> Client {
        Client::builder()
            .url(self.url())
            .namespace(namespace)
            .build()
            .expect("a namespaced client for the test server")
    }

    /// A `jobs` client that logs in as a new ACL user `name`, allowed every key and channel and
    /// every command but what `denied` takes away (`-@write`, `-client|unblock`).
    pub async fn client_as(&self, name: &str, denied: &str) -> Client {
        let _: () = redis::cmd("ACL")
            .arg(&[
                "SETUSER", name, "on", ">secret", "~*", "&*", "+@all", denied,
            ])
            .query_async(&mut self.raw().await)
            .await
            .expect("ACL SETUSER");
        Client::builder()
            .url(format!("redis://{name}:secret@127.0.0.1:{}/0", self.port()))
            .build()
            .expect("a client for the ACL user")
    }

    /// A live heartbeat for `identity` as Sidekiq 8 writes it for a process embedded in another
    /// app (a Puma server), which may be quieted but not stopped.
    pub async fn embedded_heartbeat(&self, identity: &str) {
        let info = serde_json::json!({"hostname": "web-1", "pid": 42, "identity": identity,
            "embedded": true, "queues": ["default"], "concurrency": 2, "started_at": now()});
        let _: () = redis::pipe()
            .sadd("processes", identity)
            .hset_multiple(
                identity,
                &[
                    ("info", info.to_string()),
                    ("busy", "0".to_owned()),
                    ("beat", now().to_string()),
                    ("quiet", "false".to_owned()),
                ],
            )
            .query_async(&mut self.raw().await)
            .await
            .expect("write the heartbeat");
    }

    /// Adds `member` to the sorted set `key` (a retry, schedule or dead entry written by hand).
    pub async fn zadd(&self, key: &str, score: f64, member: &str) {
        let _: () = redis::cmd("ZADD")
            .arg(key)
            .arg(score)
            .arg(member)
            .query_async(&mut self.raw().await)
            .await
            .expect("ZADD");
    }

    /// A raw connection, for reading back what `jobs` wrote.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        self.raw_db(0).await
    }

    /// A raw connection, or the error when the server does not answer (it was killed).
    pub async fn try_raw(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// A raw connection to database `db`.
    pub async fn raw_db(&self, db: u8) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url_for_db(db))
            .expect("test URL")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection to the test server")
    }

    /// Every job JSON in `queue:<name>`, oldest first, parsed.
    pub async fn queue(&self, name: &str) -> Vec<serde_json::Value> {
        let mut raw = self.raw().await;
        let mut jobs: Vec<String> = raw
            .lrange(format!("queue:{name}"), 0, -1)
            .await
            .expect("LRANGE");
        jobs.reverse();
        jobs.iter().map(|json| parse(json)).collect()
    }

    /// The jids of the jobs waiting in `queue:<name>`.
    pub async fn queued_jids(&self, name: &str) -> std::collections::HashSet<String> {
        self.queue(name)
            .await
            .iter()
            .map(|job| job["jid"].as_str().expect("a jid").to_owned())
            .collect()
    }

    /// Every key in database 0, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut raw = self.raw().await;
        let mut keys: Vec<String> = raw.keys("*").await.expect("KEYS");
        keys.sort();
        keys
    }

    /// `INFO commandstats` calls of one command.
    pub async fn calls(&self, command: &str) -> u64 {
        let info = self.info("commandstats").await;
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().expect("a call count"))
    }

    /// How many times a worker ran the fetch script (`fetch.lua`): each call reads the sizes of
    /// `paused` and `jobs:caps`, two `SCARD`s, and nothing else a worker runs reads a set's size
    /// (batch and workflow scripts aside).
    pub async fn fetch_script_calls(&self) -> u64 {
        self.calls("scard").await / 2
    }

    /// How many bytes Redis has read from its clients (`total_net_input_bytes`): what clients
    /// sent it, commands, keys and arguments.
    pub async fn bytes_in(&self) -> u64 {
        self.info("stats")
            .await
            .lines()
            .find_map(|line| line.strip_prefix("total_net_input_bytes:"))
            .map(|bytes| bytes.trim().parse().expect("a byte count"))
            .expect("INFO stats names total_net_input_bytes")
    }

    /// One section of `INFO`.
    async fn info(&self, section: &str) -> String {
        let mut raw = self.raw().await;
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut raw)
            .await
            .expect("INFO")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_server(port: u16, dir: &std::path::Path, extra: &[String]) -> Child {
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .args(
            extra
                .iter()
                .map(|arg| arg.replace("{port}", &port.to_string())),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => child,
        Err(error) => panic!(
            "cannot start redis-server ({error}); install it with `apt-get install \
             redis-server`, or run `scripts/test`, which does"
        ),
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Parses job JSON, failing the test with the text when it is not JSON.
pub fn parse(json: &str) -> serde_json::Value {
    serde_json::from_str(json).unwrap_or_else(|error| panic!("not JSON ({error}): {json}"))
}

/// Epoch seconds now, as a float.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The members of a sorted set with their scores, parsed.
pub async fn sorted_set(redis: &TestRedis, key: &str) -> Vec<(serde_json::Value, f64)> {
    let mut raw = redis.raw().await;
    let members: Vec<(String, f64)> = raw.zrange_withscores(key, 0, -1).await.expect("ZRANGE");
    members
        .into_iter()
        .map(|(json, score)| (parse(&json), score))
        .collect()
}

/// A number stored at `key`, or 0.
pub async fn counter(redis: &TestRedis, key: &str) -> u64 {
    let mut raw = redis.raw().await;
    raw.get::<_, Option<u64>>(key)
        .await
        .expect("GET")
        .unwrap_or(0)
}

/// The first entry of the sorted set of `kind` (the newest), which the test put there.
pub async fn first_entry(client: &Client, kind: jobs::api::SetKind) -> jobs::api::SortedEntry {
    jobs::api::JobSet::new(client, kind)
        .page(jobs::api::Page::first(1))
        .await
        .expect("a page of the set")
        .into_iter()
        .next()
        .expect("an entry in the set")
}

//! A private Redis Sentinel deployment per test: a master, one replica (`--replicaof`) and three
//! sentinels (Debian's `redis-sentinel`), each on a free port of 127.0.0.1, with a 1 s
//! `down-after-milliseconds`, so a failover takes a few seconds. Every process is killed by its
//! PID when the deployment is dropped, pass or fail.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TestRedis, eventually, free_port};

/// The name the sentinels know the master by.
pub const MASTER_NAME: &str = "mymaster";

/// A master, a replica and three sentinels watching them.
pub struct TestSentinels {
    /// The master at the start (a replica after a failover, once restarted).
    pub master: TestRedis,
    /// Its replica at the start (the master after a failover).
    pub replica: TestRedis,
    /// The sentinel processes.
    sentinels: Vec<Sentinel>,
}

/// One `redis-sentinel` process.
struct Sentinel {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl TestSentinels {
    /// Starts the deployment and returns once the replica is in sync and every sentinel knows
    /// the replica and the two other sentinels (so a failover can be agreed on).
    pub async fn start() -> Self {
        let master = TestRedis::start();
        let replica = TestRedis::start_with(
            &["--replicaof", "127.0.0.1", &master.port().to_string()],
            None,
        );
        let sentinels = (0..3).map(|_| Sentinel::start(master.port())).collect();
        let deployment = Self {
            master,
            replica,
            sentinels,
        };
        eventually(
            Duration::from_secs(20),
            "the replica to sync and the sentinels to find each other",
            async || deployment.ready().await,
        )
        .await;
        deployment
    }

    /// Whether the replica is in sync and every sentinel sees the replica and the others.
    async fn ready(&self) -> bool {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut self.replica.raw().await)
            .await
            .unwrap_or_default();
        if !info.contains("master_link_status:up") {
            return false;
        }
        for sentinel in &self.sentinels {
            let replicas: Vec<redis::Value> = sentinel
                .query(redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME))
                .await
                .unwrap_or_default();
            let others: Vec<redis::Value> = sentinel
                .query(redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER_NAME))
                .await
                .unwrap_or_default();
            if replicas.len() != 1 || others.len() != 2 {
                return false;
            }
        }
        true
    }

    /// The sentinels' addresses, `127.0.0.1:<port>` each.
    pub fn addresses(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect()
    }

    /// `redis+sentinel://127.0.0.1:<port>,…/mymaster`.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://{}/{MASTER_NAME}",
            self.addresses().join(",")
        )
    }

    /// Asks a sentinel for a failover without waiting for a failure (`SENTINEL FAILOVER`): the
    /// master is demoted to a replica, its clients disconnected.
    pub async fn fail_over(&self) {
        let _: () = self.sentinels[0]
            .query(redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME))
            .await
            .expect("SENTINEL FAILOVER");
    }

    /// The port of the master the first sentinel that answers names now.
    pub async fn master_port(&self) -> Option<u16> {
        for sentinel in &self.sentinels {
            let address: Result<(String, u16), _> = sentinel
                .query(
                    redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(MASTER_NAME),
                )
                .await;
            if let Ok((_, port)) = address {
                return Some(port);
            }
        }
        None
    }
}

impl Sentinel {
    /// Starts a sentinel watching the master on `master_port`.
    fn start(master_port: u16) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("jobs-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the sentinel's directory");
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 5000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.display()
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-sentinel")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start redis-sentinel ({error}); install it with `apt-get install \
                     redis-sentinel`, or run `scripts/test`, which does"
                )
            });
        let sentinel = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sentinel.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-sentinel did not accept connections on port {port} within 5 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        sentinel
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0_u8; 16];
        stream.write_all(b"PING\r\n").is_ok()
            && stream
                .read(&mut reply)
                .is_ok_and(|read| reply[..read].starts_with(b"+PONG"))
    }

    /// Sends `command` to this sentinel.
    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        command.query_async(&mut connection).await
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

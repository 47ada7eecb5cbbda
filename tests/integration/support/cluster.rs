//! A private Redis Cluster per test: six `redis-server --cluster-enabled yes` nodes on free
//! ports of 127.0.0.1, joined by `redis-cli --cluster create … --cluster-replicas 1` into three
//! masters with a replica each, with a 1 s `cluster-node-timeout`, so a failover takes a few
//! seconds. Every node is a [`TestRedis`], killed by its PID when the cluster is dropped, pass
//! or fail.

use std::process::Command;
use std::time::Duration;

use jobs::Client;

use super::{TestRedis, eventually};

/// Three masters and their three replicas.
pub struct TestCluster {
    /// The nodes, in the order they were given to `redis-cli --cluster create` (the first three
    /// start as masters).
    pub nodes: Vec<TestRedis>,
}

impl TestCluster {
    /// Starts the six nodes, joins them, and returns once every node says the cluster is ok
    /// and every replica is in sync with its master.
    pub async fn start() -> Self {
        let nodes: Vec<TestRedis> = (0..6)
            .map(|_| {
                TestRedis::start_with(
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes-{port}.conf",
                        "--cluster-node-timeout",
                        "1000",
                    ],
                    None,
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { nodes };
        eventually(
            Duration::from_secs(30),
            "every node to say the cluster is ok and the replicas to sync",
            async || cluster.ready().await,
        )
        .await;
        cluster
    }

    /// Whether every live node says `cluster_state:ok` and every replica's link is up.
    async fn ready(&self) -> bool {
        for node in &self.nodes {
            let Ok(info) = node_info(node, "CLUSTER", "INFO").await else {
                return false;
            };
            if !info.contains("cluster_state:ok") {
                return false;
            }
            let Ok(replication) = node_info(node, "INFO", "replication").await else {
                return false;
            };
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return false;
            }
        }
        true
    }

    /// `redis+cluster://127.0.0.1:<port>,…`, naming every node.
    pub fn url(&self) -> String {
        let addresses: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("redis+cluster://{}", addresses.join(","))
    }

    /// A client of the cluster.
    pub fn client(&self) -> Client {
        Client::builder()
            .url(self.url())
            .build()
            .expect("a client of the test cluster")
    }

    /// The index in [`nodes`](Self::nodes) of the master serving the slot of `key`, now.
    pub async fn master_of(&self, key: &str) -> usize {
        let mut slot = None;
        for node in &self.nodes {
            if let Ok(mut connection) = node.try_raw().await
                && let Ok(found) = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query_async::<i64>(&mut connection)
                    .await
            {
                slot = Some(found);
                break;
            }
        }
        let slot = slot.expect("a live node to say the key's slot");
        for (index, node) in self.nodes.iter().enumerate() {
            let Ok(mut connection) = node.try_raw().await else {
                continue;
            };
            let Ok(role) = redis::cmd("ROLE")
                .query_async::<Vec<redis::Value>>(&mut connection)
                .await
            else {
                continue;
            };
            if !matches!(role.first(), Some(redis::Value::BulkString(name)) if name == b"master") {
                continue;
            }
            let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut connection)
                .await
                .unwrap_or_default();
            for range in slots {
                let bounds: Vec<i64> = range
                    .iter()
                    .take(2)
                    .filter_map(|value| redis::from_redis_value(value.clone()).ok())
                    .collect();
                // The master of the range: [host, port, id, …].
                let port: Option<i64> = match range.get(2) {
                    Some(redis::Value::Array(node)) => node
                        .get(1)
                        .and_then(|port| redis::from_redis_value(port.clone()).ok()),
                    _ => None,
                };
                if let ([first, last], Some(port)) = (bounds.as_slice(), port)
                    && (*first..=*last).contains(&slot)
                    && port == i64::from(node.port())
                {
                    return index;
                }
            }
        }
        panic!("no master serves the slot of {key}");
    }

    /// The keys of every node that is master now, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for node in &self.nodes {
            let Ok(mut connection) = node.try_raw().await else {
                continue;
            };
            let role: Vec<redis::Value> = redis::cmd("ROLE")
                .query_async(&mut connection)
                .await
                .unwrap_or_default();
            if matches!(role.first(), Some(redis::Value::BulkString(name)) if name == b"master") {
                let found: Vec<String> = redis::cmd("KEYS")
                    .arg("*")
                    .query_async(&mut connection)
                    .await
                    .unwrap_or_default();
                keys.extend(found);
            }
        }
        keys.sort();
        keys
    }
}

/// `first second` sent to `node` (such as `CLUSTER INFO`), as text.
async fn node_info(node: &TestRedis, first: &str, second: &str) -> redis::RedisResult<String> {
    let mut connection = node.try_raw().await?;
    redis::cmd(first)
        .arg(second)
        .query_async(&mut connection)
        .await
}

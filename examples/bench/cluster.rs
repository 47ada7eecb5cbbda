//! `bench cluster [N] [ROUNDS]`: what running on a Redis Cluster costs, against one plain
//! server and private clusters of 1, 2 and 3 masters (no replicas; slots split evenly, joined
//! with `CLUSTER MEET`), alternating in ROUNDS rounds (default 3):
//!
//! - bulk pushes of N jobs (`perform_bulk`, 1,000 to a round trip);
//! - a worker in this process (concurrency 10) draining them.
//!
//! For each: jobs per second, Redis CPU per job (µs, `INFO cpu` of every server, summed), and
//! each master's share of the commands (the balance of work across masters).
//!
//! A last target, `cluster_3_masters_3_shards`, spreads one app over the three masters the way
//! `docs/cluster.md` describes for today's layout: three namespaces whose hash tags land on the
//! three masters, a client and a worker (concurrency 10) for each, the N jobs split evenly
//! between them and drained at once.

use std::time::{Duration, Instant};

use super::figures::rate;
use super::measure::{self, PrivateRedis};
use super::{ARGUMENT, NoOp};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Hash slots in a cluster.
const SLOTS: u32 = 16_384;

/// A target measured: one server, or a cluster of its masters.
struct Target {
    /// What the figures call it.
    name: String,
    /// The servers.
    servers: Vec<PrivateRedis>,
    /// The URL a client is given.
    url: String,
    /// The cluster's node configuration files, removed when it is dropped.
    configs: Vec<std::path::PathBuf>,
    /// The namespaces the jobs are split between, one client and worker each; none: one
    /// client without a namespace.
    shards: Vec<String>,
}

impl Drop for Target {
    fn drop(&mut self) {
        // The servers first, so that none writes its file again.
        self.servers.clear();
        for config in &self.configs {
            let _ = std::fs::remove_file(config);
        }
    }
}

impl Target {
    /// One plain server.
    fn plain() -> Result<Self> {
        let server = PrivateRedis::start()?;
        let url = server.url();
        Ok(Self {
            name: "plain".to_owned(),
            servers: vec![server],
            url,
            configs: Vec::new(),
            shards: Vec::new(),
        })
    }

    /// A cluster of `masters` masters whose jobs are split between one namespace per master,
    /// each chosen so that its hash tag's slot is on that master.
    async fn sharded(masters: usize, dir: &str) -> Result<Self> {
        let mut target = Self::cluster(masters, dir).await?;
        let per = SLOTS / masters as u32;
        let mut shards: Vec<Option<String>> = vec![None; masters];
        let mut connection = connect(&target.servers[0].url()).await?;
        for candidate in 0..10_000 {
            let namespace = format!("shard{candidate}");
            let slot: u32 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(format!("{{{namespace}}}:queue:bench"))
                .query_async(&mut connection)
                .await?;
            let master = ((slot / per) as usize).min(masters - 1);
            shards[master].get_or_insert(namespace);
            if shards.iter().all(Option::is_some) {
                break;
            }
        }
        target.shards = shards
            .into_iter()
            .collect::<Option<Vec<String>>>()
            .ok_or("no namespace found for some master")?;
        target.name = format!("cluster_{masters}_masters_{masters}_shards");
        Ok(target)
    }

    /// The clients the jobs are pushed through and drained by: one per shard, or one.
    fn clients(&self) -> Result<Vec<jobs::Client>> {
        if self.shards.is_empty() {
            return Ok(vec![jobs::Client::builder().url(&self.url).build()?]);
        }
        self.shards
            .iter()
            .map(|namespace| {
                Ok(jobs::Client::builder()
                    .url(&self.url)
                    .namespace(namespace)
                    .build()?)
            })
            .collect()
    }

    /// A cluster of `masters` masters, slots split evenly, in `dir`.
    async fn cluster(masters: usize, dir: &str) -> Result<Self> {
        let mut servers = Vec::new();
        let mut configs = Vec::new();
        // Every node of the run a file of its own: two clusters of the same size are measured.
        static NODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..masters {
            let node = NODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let config = format!("nodes-bench-{}-{node}.conf", std::process::id());
            configs.push(std::path::Path::new(dir).join(&config));
            servers.push(PrivateRedis::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &config,
                "--dir",
                dir,
            ])?);
        }
        let per = SLOTS / masters as u32;
        for (index, server) in servers.iter().enumerate() {
            let first = per * index as u32;
            let last = if index + 1 == masters {
                SLOTS - 1
            } else {
                first + per - 1
            };
            let mut connection = connect(&server.url()).await?;
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query_async::<()>(&mut connection)
                .await?;
            if index > 0 {
                let mut first_node = connect(&servers[0].url()).await?;
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(server.port())
                    .query_async::<()>(&mut first_node)
                    .await?;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for server in &servers {
            loop {
                let mut connection = connect(&server.url()).await?;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut connection)
                    .await?;
                let known = info
                    .lines()
                    .find_map(|line| line.strip_prefix("cluster_known_nodes:"))
                    .and_then(|count| count.trim().parse::<usize>().ok());
                if info.contains("cluster_state:ok") && known == Some(masters) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("the {masters}-master cluster did not form in 30 s").into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let nodes: Vec<String> = servers
            .iter()
            .map(|server| format!("127.0.0.1:{}", server.port()))
            .collect();
        Ok(Self {
            name: format!("cluster_{masters}_masters"),
            servers,
            url: format!("redis+cluster://{}", nodes.join(",")),
            configs,
            shards: Vec::new(),
        })
    }

    /// Empties every server.
    async fn flush(&self) -> Result {
        for server in &self.servers {
            let mut connection = connect(&server.url()).await?;
            redis::cmd("FLUSHALL")
                .query_async::<()>(&mut connection)
                .await?;
        }
        Ok(())
    }

    /// Each server's CPU seconds (user + system) and count of commands so far.
    async fn readings(&self) -> Result<Vec<(f64, u64)>> {
        let mut readings = Vec::new();
        for server in &self.servers {
            let cpu = measure::redis_cpu(&server.url()).await?;
            readings.push((cpu, measure::redis_commands(&server.url()).await.0));
        }
        Ok(readings)
    }
}

/// A plain connection to one server.
async fn connect(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?)
}

/// What one target measured, over the rounds.
#[derive(Default)]
struct Totals {
    /// Seconds spent pushing.
    push_secs: f64,
    /// Seconds spent draining.
    drain_secs: f64,
    /// Redis CPU seconds each server used while draining.
    drain_cpu: Vec<f64>,
    /// Commands each server ran while draining.
    commands: Vec<u64>,
}

/// Prints the figures for `n` jobs a round, over `rounds` rounds.
pub(crate) async fn figures(n: usize, rounds: usize) -> Result {
    let dir = std::env::temp_dir();
    let dir = dir
        .to_str()
        .ok_or("a temporary directory with a UTF-8 path")?;
    let targets = [
        Target::plain()?,
        Target::cluster(1, dir).await?,
        Target::cluster(2, dir).await?,
        Target::cluster(3, dir).await?,
        Target::sharded(3, dir).await?,
    ];
    println!(
        "# bench cluster n={n} rounds={rounds} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let mut totals: Vec<Totals> = targets.iter().map(|_| Totals::default()).collect();
    for _ in 0..rounds {
        for (target, total) in targets.iter().zip(&mut totals) {
            target.flush().await?;
            let clients = target.clients()?;
            // The jobs split evenly between the clients (the first takes the remainder).
            let shares: Vec<usize> = (0..clients.len())
                .map(|index| n / clients.len() + usize::from(index == 0) * (n % clients.len()))
                .collect();
            let started = Instant::now();
            for (client, &share) in clients.iter().zip(&shares) {
                let jobs = (0..share).map(|_| NoOp {
                    date: ARGUMENT.to_owned(),
                });
                client.perform_bulk(jobs).await?;
            }
            total.push_secs += started.elapsed().as_secs_f64();
            let before = target.readings().await?;
            // Every shard's worker at once; the drain lasts until the last one is done.
            let drains = clients
                .iter()
                .zip(&shares)
                .map(|(client, &share)| measure::drain_queue(client, share));
            let mut longest: f64 = 0.0;
            for seconds in futures_util::future::join_all(drains).await {
                longest = longest.max(seconds?);
            }
            total.drain_secs += longest;
            let after = target.readings().await?;
            total.commands.resize(after.len(), 0);
            total.drain_cpu.resize(after.len(), 0.0);
            for (index, ((cpu_after, commands_after), (cpu_before, commands_before))) in
                after.iter().zip(&before).enumerate()
            {
                total.drain_cpu[index] += cpu_after - cpu_before;
                total.commands[index] += commands_after - commands_before;
            }
        }
    }
    let jobs = n * rounds;
    for (target, total) in targets.iter().zip(&totals) {
        let all: u64 = total.commands.iter().sum();
        let shares: Vec<String> = total
            .commands
            .iter()
            .map(|commands| format!("{:.0}", *commands as f64 * 100.0 / all.max(1) as f64))
            .collect();
        // Each server's CPU per job of the whole run: what one master spent for the jobs it
        // served, spread over all of them.
        let cpu_by_server: Vec<String> = total
            .drain_cpu
            .iter()
            .map(|cpu| format!("{:.2}", cpu * 1e6 / jobs as f64))
            .collect();
        println!(
            "RESULT peer=jobs op=cluster target={} n={jobs} workers={} push_jobs_per_s={:.0} \
             process_jobs_per_s={:.0} redis_cpu_us_per_job={:.2} redis_cmds_per_job={:.2} \
             command_share_pct={} redis_cpu_us_per_job_by_server={}",
            target.name,
            target.shards.len().max(1),
            rate(jobs, total.push_secs),
            rate(jobs, total.drain_secs),
            total.drain_cpu.iter().sum::<f64>() * 1e6 / jobs as f64,
            all as f64 / jobs as f64,
            shares.join("/"),
            cpu_by_server.join("/"),
        );
    }
    Ok(())
}

//! `bench sentinel [N]`: what waiting for a replica (`ClientBuilder::wait_replicas`, Redis's
//! `WAIT 1`) costs, against a private master and its replica (`--replicaof`), alternating
//! without and with it in five rounds (the figures are the rounds' medians):
//!
//! - one-at-a-time pushes from one task, and from 10 tasks at once;
//! - bulk pushes, 1,000 to a round trip;
//! - a worker in this process (concurrency 10) draining N jobs, its settles waiting or not.

use std::time::{Duration, Instant};

use super::figures::{flush, rate};
use super::measure::{self, PrivateRedis};
use super::{ARGUMENT, NoOp};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// How many rounds each figure alternates over.
const ROUNDS: usize = 5;

/// The replicas' timeout the figures use.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Prints the figures, `n` jobs each.
pub(crate) async fn figures(n: usize) -> Result {
    // The RDB files of the replica's sync go to the temporary directory, not the current one.
    let dir = std::env::temp_dir();
    let dir = dir
        .to_str()
        .ok_or("a temporary directory with a UTF-8 path")?;
    let master = PrivateRedis::start_with(&["--dir", dir])?;
    let port = master.port().to_string();
    let replica = PrivateRedis::start_with(&["--replicaof", "127.0.0.1", &port, "--dir", dir])?;
    let url = master.url();
    wait_for_sync(&replica.url()).await?;
    let plain = jobs::Client::builder().url(&url).build()?;
    let waiting = jobs::Client::builder()
        .url(&url)
        .wait_replicas(1, TIMEOUT)
        .build()?;
    println!(
        "# bench sentinel n={n} cores={} (a master and one replica on this machine)",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let per_round = (n / ROUNDS).max(1);
    for (op, conc) in [
        ("enqueue", 1),
        ("enqueue_concurrent", 10),
        ("enqueue_bulk", 1),
    ] {
        let mut rates = [Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            for (index, client) in [&plain, &waiting].into_iter().enumerate() {
                flush(&url).await?;
                let secs = push(client, op, per_round, conc).await?;
                rates[index].push(rate(per_round, secs));
            }
        }
        report(op, per_round, conc, rates);
    }
    let mut rates = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (index, client) in [&plain, &waiting].into_iter().enumerate() {
            flush(&url).await?;
            plain.perform_bulk((0..per_round).map(|_| job())).await?;
            let secs = measure::drain_queue(client, per_round).await?;
            rates[index].push(rate(per_round, secs));
        }
    }
    report("process", per_round, 10, rates);
    Ok(())
}

fn job() -> NoOp {
    NoOp {
        date: ARGUMENT.to_owned(),
    }
}

/// Pushes `n` jobs as `op` says; the seconds it took.
async fn push(client: &jobs::Client, op: &str, n: usize, conc: usize) -> Result<f64> {
    let started = Instant::now();
    if op == "enqueue_bulk" {
        // 1,000 to a round trip, each with its own `WAIT`.
        client.perform_bulk((0..n).map(|_| job())).await?;
        return Ok(started.elapsed().as_secs_f64());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..conc {
        let client = client.clone();
        let count = n / conc + usize::from(task < n % conc);
        tasks.spawn(async move {
            for _ in 0..count {
                client.perform_async(job()).await?;
            }
            Ok::<_, jobs::Error>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Prints one figure: the median rate without and with `WAIT 1`.
fn report(op: &str, n: usize, conc: usize, mut rates: [Vec<f64>; 2]) {
    for rates in &mut rates {
        rates.sort_by(f64::total_cmp);
    }
    let (plain, waiting) = (rates[0][ROUNDS / 2], rates[1][ROUNDS / 2]);
    println!(
        "RESULT peer=jobs op={op} n={n} conc={conc} jobs_per_s={plain:.0} \
         with_wait_jobs_per_s={waiting:.0} of_plain={:.2}",
        waiting / plain.max(1e-9)
    );
}

/// Waits until the replica at `url` is in sync with its master.
async fn wait_for_sync(url: &str) -> Result {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut connection = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut connection)
            .await?;
        if info.contains("master_link_status:up") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the replica did not sync within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

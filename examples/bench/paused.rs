//! `bench paused [ROUNDS]`: how soon a pause takes effect, and a resume, against a private
//! Redis, with one worker in this process (concurrency 10, queues `paused-bench` and
//! `paused-other`).
//!
//! - `op=pause_busy`: 20,000 jobs of 5 ms wait and the worker is busy with them; the queue is
//!   paused; how long after `Queue::pause` returned the last of its jobs started (jobs
//!   already taken ahead are handed back, not started), how many started after the pause,
//!   and how many went back to the queue; then how long after `unpause` returned the first
//!   job started again.
//! - `op=pause_idle`: the worker waits in `BLMOVE` on both queues; the queue is paused, then a
//!   job is pushed to it every 10 ms for 3 s: how many started after the pause (the one a
//!   `BLMOVE` issued before the pause may take is handed back); then the resume as above.
//!
//! Each round prints a line; the last line per op gives the median and the largest.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jobs::api::Queue;
use jobs::job;

use super::measure::PrivateRedis;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The paused queue.
const QUEUE: &str = "paused-bench";

/// When each `PausedProbe` started, in this process.
static STARTS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

/// Notes when it started, then sleeps `millis`. No `#[state]`: the other modes' workers run
/// every registered job and do not give this one's.
#[job(queue = "paused-bench")]
async fn paused_probe(millis: u64) {
    if let Ok(mut starts) = STARTS.lock() {
        starts.push(Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

/// The starts after `since`: how many, the last and the first.
fn starts_after(since: Instant) -> (usize, Option<Instant>, Option<Instant>) {
    let starts = STARTS
        .lock()
        .map(|starts| starts.clone())
        .unwrap_or_default();
    let after: Vec<Instant> = starts.into_iter().filter(|at| *at > since).collect();
    (
        after.len(),
        after.iter().max().copied(),
        after.iter().min().copied(),
    )
}

/// What one round measured.
struct Round {
    /// How long after the pause returned the last job started (0 when none did).
    last_start: Duration,
    /// How many jobs started after the pause returned.
    started: usize,
    /// How long after the resume returned the first job started.
    resume: Duration,
}

/// Runs `rounds` rounds of each op and prints their figures.
pub(crate) async fn run(rounds: usize) -> Result {
    let redis = PrivateRedis::start()?;
    let client = jobs::Client::builder().url(redis.url()).build()?;
    println!(
        "# bench paused rounds={rounds} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    for op in ["pause_busy", "pause_idle"] {
        let mut figures = Vec::new();
        for round in 0..rounds {
            flush(&redis.url()).await?;
            let measured = measure(&client, op == "pause_busy").await?;
            println!(
                "RESULT op={op} round={round} last_start_after_pause_ms={:.1} \
                 started_after_pause={} resume_to_first_start_ms={:.1}",
                ms(measured.last_start),
                measured.started,
                ms(measured.resume),
            );
            figures.push(measured);
        }
        let mut last: Vec<f64> = figures.iter().map(|round| ms(round.last_start)).collect();
        let mut resume: Vec<f64> = figures.iter().map(|round| ms(round.resume)).collect();
        println!(
            "RESULT op={op} rounds={rounds} last_start_after_pause_ms_p50={:.1} max={:.1} \
             resume_to_first_start_ms_p50={:.1} max={:.1}",
            median(&mut last),
            last.last().copied().unwrap_or(0.0),
            median(&mut resume),
            resume.last().copied().unwrap_or(0.0),
        );
    }
    Ok(())
}

/// One round: a busy or an idle worker, a pause, a watch of 3 s, a resume.
async fn measure(client: &jobs::Client, busy: bool) -> Result<Round> {
    let total = 20_000;
    if busy {
        PausedProbe::set()
            .client(client)
            .perform_bulk((0..total).map(|_| PausedProbe { millis: 5 }))
            .await?;
    }
    let registry = jobs::Registry::from_registrations(
        jobs::registered_jobs().filter(|job| job.name() == "PausedProbe"),
    )?;
    let worker = jobs::Worker::new()
        .client(client)
        .registry(registry)
        .queues([QUEUE, "paused-other"])
        .concurrency(10);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    // Busy with the jobs, or idle in BLMOVE.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let queue = Queue::new(client, QUEUE);
    queue.pause().await?;
    let paused_at = Instant::now();
    let watch = paused_at + Duration::from_secs(3);
    if busy {
        tokio::time::sleep_until(watch.into()).await;
    } else {
        while Instant::now() < watch {
            PausedProbe::set()
                .client(client)
                .perform_async(PausedProbe { millis: 0 })
                .await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let (started, last, _) = starts_after(paused_at);

    queue.unpause().await?;
    let resumed_at = Instant::now();
    let deadline = resumed_at + Duration::from_secs(10);
    let first = loop {
        if let (_, _, Some(first)) = starts_after(resumed_at) {
            break first;
        }
        if Instant::now() > deadline {
            return Err("no job started within 10 s of the resume".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let _ = stop.send(());
    running.await??;
    Ok(Round {
        last_start: last.map_or(Duration::ZERO, |last| last - paused_at),
        started,
        resume: first - resumed_at,
    })
}

async fn flush(url: &str) -> Result {
    super::figures::flush(url).await?;
    if let Ok(mut starts) = STARTS.lock() {
        starts.clear();
    }
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Sorts `values` and returns the middle one.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

//! `bench active-job [N] [ROUNDS]`: what running a job Rails pushed through ActiveJob costs
//! beside the same job pushed as a plain Sidekiq job, against a private Redis.
//!
//! Both payloads run one Rust job with the same values (a date, a number, keyword arguments):
//! - `decode`: in this process, no Redis: parsing the payload's JSON, reading its arguments
//!   (ActiveJob's envelope unwrapped and its serialized forms turned into plain JSON), and
//!   decoding them into the job, per payload;
//! - `process`: a worker in this process draining N jobs of each kind (concurrency 10), in
//!   `ROUNDS` alternating rounds so a slower moment of the machine weighs on both; CPU per job.

use std::time::Instant;

use jobs::{JobContext, JobState, Payload, job};
use serde::{Deserialize, Serialize};

use super::figures::{flush, rate};
use super::measure::{self, PrivateRedis};
use super::{ARGUMENT, Finished};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The keyword arguments of the benchmark's ActiveJob job.
#[derive(Serialize, Deserialize)]
struct Keywords {
    /// `notify: true`
    notify: bool,
}

/// The job both payloads run: `ScoreBenchJob.perform_later(date, 42, notify: true)`.
#[job(name = "ScoreBenchJob", queue = "bench")]
async fn score_bench(
    #[state] finished: Finished,
    date: chrono::NaiveDate,
    user: i64,
    keywords: Keywords,
) {
    let _ = (date, user, keywords.notify);
    finished.record();
}

/// The job as Rails 6.1's Sidekiq adapter pushes it.
fn active_job_payload() -> Payload {
    let envelope = serde_json::json!({
        "job_class": "ScoreBenchJob",
        "job_id": "0b5e9c1e-5d4b-4f7a-9a51-3c1d8f0e2a11",
        "provider_job_id": null,
        "queue_name": "bench",
        "priority": null,
        "arguments": [
            {"_aj_serialized": "ActiveJob::Serializers::DateSerializer", "value": ARGUMENT},
            42,
            {"notify": true, "_aj_ruby2_keywords": ["notify"]}
        ],
        "executions": 0,
        "exception_executions": {},
        "locale": "en",
        "timezone": "UTC",
        "enqueued_at": "2026-12-06T10:00:00Z"
    });
    let mut payload = Payload::new(jobs::active_job::WRAPPERS[0], vec![envelope]);
    payload.queue = "bench".to_owned();
    payload
        .set("wrapped", "ScoreBenchJob".into())
        .expect("a string");
    payload
}

/// The same job and values as a plain Sidekiq job.
fn plain_payload() -> Payload {
    let mut payload = Payload::new(
        "ScoreBenchJob",
        vec![
            ARGUMENT.into(),
            42.into(),
            serde_json::json!({"notify": true}),
        ],
    );
    payload.queue = "bench".to_owned();
    payload
}

/// Prints the figures, `n` jobs each.
pub(crate) async fn figures(n: usize, rounds: usize) -> Result {
    println!(
        "# bench active-job n={n} rounds={rounds} cores={}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    decode(n)?;
    let redis = PrivateRedis::start()?;
    let url = redis.url();
    let client = jobs::Client::builder().url(&url).build()?;
    let per_round = (n / rounds.max(1)).max(1);
    let mut totals = [(0.0, 0.0); 2];
    for _ in 0..rounds.max(1) {
        for (index, active_job) in [false, true].into_iter().enumerate() {
            let (secs, cpu) = drain(&client, &url, per_round, active_job).await?;
            totals[index].0 += secs;
            totals[index].1 += cpu;
        }
    }
    let total = per_round * rounds.max(1);
    for (index, op) in ["process_plain", "process_active_job"]
        .into_iter()
        .enumerate()
    {
        let (secs, cpu) = totals[index];
        println!(
            "RESULT peer=jobs op={op} n={total} conc=10 jobs_per_s={:.0} cpu_us_per_job={:.1}",
            rate(total, secs),
            cpu * 1e6 / total as f64
        );
    }
    Ok(())
}

/// Reads each payload's JSON, arguments and job `n` times, as a worker does before it runs one.
fn decode(n: usize) -> Result {
    let registration = jobs::registered_jobs()
        .find(|registration| registration.name() == "ScoreBenchJob")
        .ok_or("ScoreBenchJob is not registered")?;
    let mut state = JobState::new();
    state.insert(Finished::default());
    for (op, payload) in [
        ("decode_plain", plain_payload()),
        ("decode_active_job", active_job_payload()),
    ] {
        let json = payload.to_json()?;
        let started = Instant::now();
        for _ in 0..n {
            let payload = Payload::from_json(&json)?;
            let args = jobs::active_job::job_args(&payload)?;
            let context = JobContext::from_payload(&payload);
            // Decoded into the job, not run: the future is dropped unpolled.
            drop(registration.run(args, context, &state)?);
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "RESULT peer=jobs op={op} n={n} bytes={} us_per_job={:.2}",
            json.len(),
            secs * 1e6 / n as f64
        );
    }
    Ok(())
}

/// Pushes `n` payloads of one kind, then times a worker in this process draining them: seconds
/// and CPU seconds.
async fn drain(client: &jobs::Client, url: &str, n: usize, active_job: bool) -> Result<(f64, f64)> {
    flush(url).await?;
    let payloads = (0..n).map(|_| {
        if active_job {
            active_job_payload()
        } else {
            plain_payload()
        }
    });
    client.push_bulk(payloads).await?;
    let cpu = measure::cpu_seconds();
    let secs = measure::drain_queue(client, n).await?;
    Ok((secs, measure::cpu_seconds() - cpu))
}

//! The jobs the tests push and run, and a worker that runs them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use jobs::{JobContext, JobError, job};

use super::{RunningWorker, TestRedis, eventually};

/// The README's job.
#[job(queue = "default", retry = 25)]
pub async fn score_generation(date: NaiveDate) -> Result<(), JobError> {
    let _ = date;
    Ok(())
}

/// A job with every default: queue `default`, `retry: true`.
#[job]
pub async fn send_email(to: String, subject: String) -> Result<(), std::io::Error> {
    let _ = (to, subject);
    Ok(())
}

/// A job with every option that reaches the payload.
#[job(
    queue = "critical",
    retry = false,
    name = "Mailer::Deliver",
    backtrace = true,
    retry_queue = "slow",
    dead = false,
    tags = ["mail", "urgent"],
    timeout = 30
)]
pub async fn deliver(message_id: u64) {
    let _ = message_id;
}

/// A job with no arguments.
#[job(queue = "maintenance")]
pub async fn nightly_cleanup() {}

/// A periodic job, for the fake's tests: at New Year (UTC), on a queue no test worker reads, so
/// that a worker following it does no harm (the [`worker`] here leaves it out).
#[job(cron = "0 0 1 1 *", queue = "yearly", retry = 2, tags = ["report"])]
pub async fn new_year_report() {}

/// What `record_call` saw, shared with the test through `#[state]`.
#[derive(Clone, Default)]
pub struct CallLog(pub Arc<Mutex<Vec<String>>>);

impl CallLog {
    /// Every entry so far.
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().expect("call log").clone()
    }
}

/// Records its label, jid and queue in the shared [`CallLog`].
#[job]
pub async fn record_call(#[context] ctx: JobContext, #[state] log: CallLog, label: String) {
    let entry = format!("{label} jid={} queue={}", ctx.jid(), ctx.queue());
    log.0.lock().expect("call log").push(entry);
}

/// Takes a float, which JSON cannot carry when it is NaN.
#[job]
pub async fn average(value: f64) {
    let _ = value;
}

/// Always fails with its message.
#[job]
pub async fn explode(message: String) -> Result<(), JobError> {
    Err(JobError::msg(message))
}

/// Always panics.
#[job]
pub async fn panic_now(message: String) {
    panic!("{message}");
}

/// Fails through `anyhow`, as many apps do.
#[job]
pub async fn parse_count(text: String) -> anyhow::Result<()> {
    let count: u32 = text.parse()?;
    anyhow::ensure!(count < 10, "count {count} is too large");
    Ok(())
}

/// Records its label in the shared [`CallLog`].
#[job]
pub async fn record(#[state] log: CallLog, label: String) {
    log.0.lock().expect("call log").push(label);
}

/// Records its label once it has held a slot for `millis`: a job the Busy page can catch
/// running (the hostile-input fuzz test gives it odd payloads).
#[job]
pub async fn record_slowly(#[state] log: CallLog, label: String, millis: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    log.0.lock().expect("call log").push(label);
}

/// Records its label; declared for the `high` queue.
#[job(queue = "high")]
pub async fn record_high(#[state] log: CallLog, label: String) {
    log.0.lock().expect("call log").push(label);
}

/// How many `measure_concurrency` jobs run at once, the most seen, and how many finished.
#[derive(Clone, Default)]
pub struct Gauge {
    pub running: Arc<AtomicUsize>,
    pub most: Arc<AtomicUsize>,
    pub finished: Arc<AtomicUsize>,
}

/// Holds a slot for `millis`, tracking how many run at once.
#[job]
pub async fn measure_concurrency(#[state] gauge: Gauge, millis: u64) {
    let now = gauge.running.fetch_add(1, Ordering::SeqCst) + 1;
    gauge.most.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    gauge.running.fetch_sub(1, Ordering::SeqCst);
    gauge.finished.fetch_add(1, Ordering::SeqCst);
}

/// [`measure_concurrency`] with a second argument of any shape, for jobs whose arguments
/// look like something else (a `jobs_recoveries` key, say).
#[job]
pub async fn measure_with_note(#[state] gauge: Gauge, millis: u64, note: serde_json::Value) {
    let _ = note;
    measure_concurrency(gauge, millis).await;
}

/// Records that it started, then sleeps.
#[job]
pub async fn slow(#[state] log: CallLog, millis: u64) {
    log.0
        .lock()
        .expect("call log")
        .push(format!("started {millis}"));
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    log.0
        .lock()
        .expect("call log")
        .push(format!("finished {millis}"));
}

/// Fails the way `how` says: `plain`, `kill`, `discard`, `in_an_hour`, `io`.
#[job(retry = 3)]
pub async fn fail_with(how: String) -> Result<(), JobError> {
    let error = JobError::msg(format!("failed: {how}"));
    Err(match how.as_str() {
        "kill" => error.kill(),
        "discard" => error.discard(),
        "in_an_hour" => error.retry_in(std::time::Duration::from_secs(3600)),
        "io" => JobError::from(std::io::Error::other("disk full")),
        _ => error,
    })
}

/// Fails on its first run; its one retry goes to `slow_lane`.
#[job(retry = 0, retry_queue = "slow_lane")]
pub async fn bury_me() -> Result<(), JobError> {
    Err(JobError::msg("always"))
}

/// Fails, and is dropped rather than kept dead.
#[job(retry = 0, dead = false)]
pub async fn forget_me() -> Result<(), JobError> {
    Err(JobError::msg("gone"))
}

/// Fails with a chain of causes and asks for its backtrace.
#[job(backtrace = true)]
pub async fn with_backtrace() -> Result<(), JobError> {
    let inner = std::io::Error::other("socket closed");
    Err(JobError::from(std::io::Error::other(Wrapped(inner))))
}

/// An error with a cause.
#[derive(Debug)]
pub struct Wrapped(pub std::io::Error);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upload failed")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Runs longer than its timeout.
#[job(timeout = 0.2)]
pub async fn overrun() {
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
}

/// Where fault-test jobs write what ran: a file that outlives worker processes and Redis.
#[derive(Clone, Default)]
pub struct Ledger(pub Option<std::path::PathBuf>);

impl Ledger {
    /// Appends one line (`run <jid> <pid>` or `done <jid> <pid>`, the process that wrote it)
    /// in a single write.
    pub fn write(&self, event: &str, jid: &jobs::Jid) {
        use std::io::Write;
        if let Some(path) = &self.0 {
            let line = format!("{event} {jid} {}\n", std::process::id());
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the ledger");
            file.write_all(line.as_bytes()).expect("write the ledger");
        }
    }
}

/// Records its start and end in the ledger, sleeping `millis` between.
#[job(queue = "faults")]
pub async fn ledgered(#[context] ctx: JobContext, #[state] ledger: Ledger, millis: u64) {
    ledger.write("run", ctx.jid());
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    ledger.write("done", ctx.jid());
}

/// [`ledgered`] that runs beside others whatever the timing: after its `run` line it counts
/// itself in the Redis key `barrier:<group>` (of `$REDIS_URL`, which the child workers are
/// given) and waits, up to 30 s, until `together` jobs of its group have started; then sleeps
/// `millis` and writes `done`. Run `together` at once or more, they overlap; run one at a time,
/// each waits out the 30 s alone.
#[job(queue = "faults")]
pub async fn ledgered_together(
    #[context] ctx: JobContext,
    #[state] ledger: Ledger,
    group: String,
    together: u64,
    millis: u64,
) -> Result<(), JobError> {
    use redis::AsyncCommands;
    ledger.write("run", ctx.jid());
    let url = std::env::var("REDIS_URL").map_err(|_| JobError::msg("REDIS_URL is not set"))?;
    let redis = redis::Client::open(url).map_err(|error| JobError::msg(error.to_string()))?;
    let mut connection = redis
        .get_multiplexed_async_connection()
        .await
        .map_err(|error| JobError::msg(error.to_string()))?;
    let key = format!("barrier:{group}");
    let mut started: u64 = connection
        .incr(&key, 1)
        .await
        .map_err(|error| JobError::msg(error.to_string()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while started < together && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        started = connection
            .get(&key)
            .await
            .map_err(|error| JobError::msg(error.to_string()))?;
    }
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    ledger.write("done", ctx.jid());
    Ok(())
}

/// Records its label, waits `millis`, then pushes a [`Record`] labelled `then` to queue
/// `default` through the Redis at `redis_url`: a job of one queue that gives work to another.
#[job]
pub async fn record_then_push(
    #[state] log: CallLog,
    label: String,
    millis: u64,
    redis_url: String,
    then: String,
) -> Result<(), JobError> {
    log.0.lock().expect("call log").push(label);
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    let client = jobs::Client::builder()
        .url(redis_url)
        .build()
        .map_err(|error| JobError::msg(error.to_string()))?;
    client
        .perform_async(Record { label: then })
        .await
        .map_err(|error| JobError::msg(error.to_string()))?;
    Ok(())
}

/// Kills the process running it: a job that crashes its worker.
#[job(queue = "faults")]
pub async fn abort_process(#[context] ctx: JobContext, #[state] ledger: Ledger) {
    ledger.write("run", ctx.jid());
    std::process::abort();
}

/// Blocks its thread (synchronous code that ignores cancellation) for `millis`.
#[job(queue = "faults")]
pub async fn block_thread(#[context] ctx: JobContext, #[state] ledger: Ledger, millis: u64) {
    ledger.write("run", ctx.jid());
    std::thread::sleep(std::time::Duration::from_millis(millis));
    ledger.write("done", ctx.jid());
}

/// A worker on `redis` that runs every test job, with the shared values they need, a fast
/// scheduler and a short shutdown timeout. It leaves out the `#[job(cron)]` jobs
/// ([`NewYearReport`]): their entries would add their declarations to the Redis traffic some
/// tests count. The periodic tests give their entries explicitly.
pub fn worker(redis: &TestRedis, log: &CallLog) -> jobs::Worker {
    with_test_jobs(jobs::Worker::new().client(&redis.client()), log)
        .poll_interval(std::time::Duration::from_millis(100))
}

/// `worker` given every test job but the `#[job(cron)]` and `#[job(concurrency)]` ones, the shared values they need
/// (`log` among them), a 1-second heartbeat expiring after 3, a 1-second recovery sweep and a
/// 5-second shutdown timeout: the test settings, for workers built from flags too.
pub fn with_test_jobs(worker: jobs::Worker, log: &CallLog) -> jobs::Worker {
    // Nor the class-capped ones (`class_caps.rs`): a worker declaring a class cap writes it to
    // Redis at start, which no other test expects.
    let not_periodic = jobs::registered_jobs()
        .filter(|job| job.options().cron.is_none() && job.options().concurrency.is_none());
    worker
        .registry(jobs::Registry::from_registrations(not_periodic).expect("distinct job names"))
        .state(log.clone())
        .state(Gauge::default())
        .state(Ledger::default())
        .heartbeat(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(3),
        )
        .recovery(std::time::Duration::from_secs(1), 3)
        .timeout(std::time::Duration::from_secs(5))
}

/// Pushes `n` pairs: a `Record` (queue `default`) labelled `low <i>`, then a `RecordHigh`
/// (queue `high`) labelled `high <i>`.
pub async fn push_low_and_high(client: &jobs::Client, n: usize) {
    for i in 0..n {
        client
            .perform_async(Record {
                label: format!("low {i}"),
            })
            .await
            .expect("push a low job");
        client
            .perform_async(RecordHigh {
                label: format!("high {i}"),
            })
            .await
            .expect("push a high job");
    }
}

/// Pushes, in bulk, `n` `RecordHigh` jobs labelled `high 0`, `high 1`… to `high`, then `n`
/// `Record` jobs labelled `low 0`… to `default`.
pub async fn push_high_then_low(client: &jobs::Client, n: usize) {
    client
        .perform_bulk((0..n).map(|i| RecordHigh {
            label: format!("high {i}"),
        }))
        .await
        .expect("push the high jobs");
    client
        .perform_bulk((0..n).map(|i| Record {
            label: format!("low {i}"),
        }))
        .await
        .expect("push the low jobs");
}

/// Pushes, in bulk, `Record` jobs with these labels to `queue`.
pub async fn push_labels_to(client: &jobs::Client, queue: &str, labels: &[String]) {
    Record::set()
        .client(client)
        .queue(queue)
        .perform_bulk(labels.iter().map(|label| Record {
            label: label.clone(),
        }))
        .await
        .expect("push the labelled jobs");
}

/// How many of the labels `ran` are high jobs' (`high …`).
pub fn highs(ran: &[String]) -> usize {
    ran.iter().filter(|label| label.starts_with("high")).count()
}

/// Pushes ledger jobs; returns their jids.
pub async fn push_ledgered(
    redis: &TestRedis,
    jobs: impl IntoIterator<Item = Ledgered>,
) -> std::collections::HashSet<String> {
    redis
        .client()
        .perform_bulk(jobs)
        .await
        .expect("push the jobs")
        .into_iter()
        .map(|jid| jid.to_string())
        .collect()
}

/// Pushes a `Slow` job of `millis` and starts a worker of `concurrency`; returns once the
/// worker's heartbeat shows the job running (what the Busy page and `WorkSet` read).
pub async fn busy_worker(
    redis: &TestRedis,
    log: &CallLog,
    concurrency: usize,
    millis: u64,
) -> RunningWorker {
    let client = redis.client();
    client
        .perform_async(Slow { millis })
        .await
        .expect("push the slow job");
    let running = RunningWorker::start(worker(redis, log).concurrency(concurrency));
    eventually(
        std::time::Duration::from_secs(10),
        "the heartbeat to show the job",
        async || {
            !jobs::api::WorkSet::new(&client)
                .list()
                .await
                .expect("the work set")
                .is_empty()
        },
    )
    .await;
    running
}

/// A unique job (for ten minutes) that records its run in the ledger and sleeps `millis`.
#[job(queue = "faults", unique_for = 600)]
pub async fn unique_ledgered(
    #[context] ctx: JobContext,
    #[state] ledger: Ledger,
    key: String,
    millis: u64,
) {
    assert!(!key.is_empty(), "the key makes the job unique");
    ledger.write("run", ctx.jid());
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    ledger.write("done", ctx.jid());
}

/// A unique job that records its call and always fails; retried once.
#[job(unique_for = 600, retry = 1)]
pub async fn unique_failing(#[state] log: CallLog, key: String) -> Result<(), JobError> {
    log.0.lock().unwrap().push(format!("unique_failing {key}"));
    Err(JobError::msg(format!("{key} failed")))
}

/// A unique job whose uniqueness is its customer alone, whatever the amount.
#[job(unique_for = 600, unique_key = customer)]
pub async fn charge_customer(#[state] log: CallLog, customer: u64, cents: u64) {
    log.0
        .lock()
        .unwrap()
        .push(format!("charge {customer} {cents}"));
}

/// A unique job whose lock is released as it starts; it waits `millis`.
#[job(unique_for = 600, unique_until = "start")]
pub async fn unique_until_start(#[state] log: CallLog, key: String, millis: u64) {
    log.0.lock().unwrap().push(format!("start {key}"));
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

/// A job dropped unrun if it has not started within a second of being due.
#[job(expires_in = 1)]
pub async fn expiring(#[state] log: CallLog, label: String) {
    log.0.lock().unwrap().push(format!("expiring {label}"));
}

/// A job dropped unrun after a second that fails once, then succeeds.
#[job(expires_in = 1, retry = 3)]
pub async fn expiring_flaky(
    #[context] ctx: JobContext,
    #[state] log: CallLog,
    label: String,
) -> Result<(), JobError> {
    log.0
        .lock()
        .unwrap()
        .push(format!("expiring_flaky {label}"));
    if ctx.retry_count().is_none() {
        return Err(JobError::msg("first run fails"));
    }
    Ok(())
}

/// A unique job that pushes itself again while it runs, and records what that push answered.
#[job(unique_for = 60)]
pub async fn push_myself(#[state] log: CallLog, key: String) -> Result<(), jobs::Error> {
    let again = PushMyself::perform_async(key.clone()).await?;
    let answer = if again.is_duplicate() {
        "duplicate"
    } else {
        "queued"
    };
    log.0.lock().unwrap().push(format!("{key}: {answer}"));
    Ok(())
}

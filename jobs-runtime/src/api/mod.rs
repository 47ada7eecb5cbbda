//! The admin API: read and steer what is in Redis, as Sidekiq's `sidekiq/api` does.
//!
//! The dashboard ([`crate::web`]) is built on this module alone, and so can your own tools:
//!
//! ```no_run
//! # async fn example() -> Result<(), jobs_runtime::Error> {
//! use jobs_runtime::Client;
//! use jobs_runtime::api::{Page, Queue, RetrySet, Stats};
//!
//! let client = Client::global()?;
//! let stats = Stats::fetch(&client).await?;
//! println!("{} processed, {} failed, {} retries", stats.processed, stats.failed, stats.retry_size);
//!
//! for queue in Queue::all(&client).await? {
//!     println!("{}: {} jobs, {:.1} s behind", queue.name(), queue.size().await?, queue.latency().await?);
//! }
//!
//! // Retry the failed jobs of one class now.
//! let retries = RetrySet::new(&client);
//! let mut scores = retries.page(Page::first(100)).await?;
//! scores.retain(|entry| entry.record.display_class() == "ScoreGeneration");
//! let moved = retries.retry(&scores).await?;
//! println!("{moved} jobs back in their queues");
//! # Ok(()) }
//! ```
//!
//! [`UniqueLocks`] lists the unique jobs' locks and releases one by hand; deleting or killing a
//! unique job here (or on the dashboard) releases its lock.
//!
//! [`PeriodicSet`] lists the periodic entries worker processes declared, with their next and
//! last runs, and pauses, resumes or enqueues one now.
//!
//! [`Limits`] lists the limiters ([`crate::limit`]) with their use and over-limit counts, and
//! resets one.
//!
//! [`Caps`] lists the global caps on queues with how many of each queue's jobs run now, and
//! sets or clears one (`docs/limits.md`, "Global caps"); the same for job classes
//! ([`ClassCapInfo`]: in use and parked jobs too; clearing sends the parked jobs back at once).
//!
//! [`Batches`] lists the batches (`docs/batches.md`) newest first, with their counts and the
//! moments they reached, lists a batch's failed jobs with their retry or dead entries, and
//! deletes a batch's data.
//!
//! [`Metrics`] reads the execution metrics per job class (Sidekiq 8's Metrics pages).
//!
//! [`Workflows`] lists the workflows ([`crate::Workflow`]) with each step's state.
//!
//! Every change is one atomic Redis step that acts only if the job is still where it was read:
//! a job that a worker or another dashboard moved in the meantime is left alone, and the call
//! says so (`Ok(false)` or a smaller count). Reads never write.

mod batches;
mod caps;
mod limits;
mod metrics;
mod names;
mod page;
mod periodic;
mod process;
mod queue;
mod record;
mod scan;
mod sorted;
mod stats;
mod time;
mod unique;
mod work;
mod workflows;

pub use batches::{
    BatchCallback, BatchFailure, BatchFailures, BatchInfo, Batches, MAX_ENTRY_SCANS,
    MAX_FAILED_LISTED,
};
pub use caps::{CapInfo, Caps, ClassCapInfo};
pub use limits::{LimiterInfo, LimiterListing, Limits, MAX_LIMITERS_LISTED, MAX_SCAN_STEPS};
pub use metrics::{
    ClassMetrics, DeployMark, MAX_CLASS_CHARS, MAX_CLASSES_REPORTED, MAX_FILTER_CHARS, Metrics,
    MetricsPoint, MetricsReport, Period,
};
pub use page::{MAX_PAGE_SIZE, Order, Page};
pub use periodic::{LastRun, PeriodicEntry, PeriodicSet};
pub use process::{Process, ProcessCapsule, ProcessSet};
pub use queue::Queue;
pub use record::JobRecord;
pub use sorted::{
    DeadLimits, DeadSet, JobSet, MAX_SEARCH_MATCHES, MAX_SEARCH_SCANNED, RetrySet, ScheduledSet,
    SearchResult, SetKind, SortedEntry,
};
pub use stats::{DayStats, MAX_HISTORY_DAYS, RedisInfo, Stats};
pub use unique::{MAX_LOCKS_LISTED, UniqueLock, UniqueLocks};
pub use work::{Work, WorkSet};
pub use workflows::Workflows;

//! The runtime behind [`jobs`](https://docs.rs/jobs): use it through `jobs`, whose version pins
//! this crate exactly; on its own it is not semver-stable.
//!
//! # Layout
//!
//! - [`Job`], [`JobOptions`], [`JobError`]: what a job is; `#[job]` implements [`Job`].
//! - [`Payload`]: the job JSON, Sidekiq's format.
//! - [`Client`], [`Setter`], [`ClientMiddleware`]: putting jobs into Redis.
//! - [`Registry`]: every job type linked into the binary.
//! - [`JobContext`], [`JobState`]: what a running job can ask for.
//! - [`Worker`] (and the [`worker`] module): running jobs.
//! - `web` (feature `web`, on by default): the dashboard, an axum router.
//! - [`active_job`], [`GlobalId`]: ActiveJob jobs pushed by Rails, run by Rust jobs.
//! - [`batch`], [`Batch`], [`Bid`]: jobs pushed together under one id, with callbacks when
//!   the batch completes, succeeds or sees a job die.
//! - [`periodic`]: jobs pushed on a cron schedule, once per tick across every worker.
//! - [`unique`]: unique jobs, refused as duplicates while one like them is queued or runs.
//! - `outbox` (feature `postgres`): jobs pushed inside a PostgreSQL transaction, moved to Redis
//!   once it commits.
//! - [`metrics`]: execution metrics per job class, in Sidekiq 8's keys.
//! - [`limit`], [`Limiter`]: limiters (concurrent, bucket, window, leaky, points) shared by
//!   every process; a job over a limit is rescheduled.
//! - [`api`]: reading and steering queues, sets, processes, periodic entries and stats (what the
//!   dashboard shows).
//! - [`workflow`], [`Workflow`]: named steps run in dependency order (chains, fan-ins, small
//!   DAGs), each step a one-job batch.
//! - [`testing`]: fake and inline modes, for tests without Redis.
//! - [`Error`]: the one error type.
//! - `redis::keys` (private): every Redis key name.

#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

pub mod active_job;
pub mod api;
mod backtrace;
pub mod batch;
mod cap;
mod client;
mod context;
mod error;
mod error_class;
mod expiry;
mod jid;
mod job;
mod job_error;
pub mod limit;
pub mod metrics;
mod options;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "postgres")]
pub mod outbox;
mod panic;
mod payload;
pub mod periodic;
mod raw_job;
mod redis;
mod registry;
mod short_id;
mod state;
pub mod testing;
mod timestamp;
pub mod unique;
#[cfg(feature = "web")]
pub mod web;
pub mod worker;
pub mod workflow;

#[doc(hidden)]
pub mod __private {
    //! See `private.rs`.
    #[doc(inline)]
    pub use crate::private_items::*;
}
#[path = "private.rs"]
mod private_items;

pub use active_job::GlobalId;
pub use batch::{Batch, BatchEvent, BatchHandle, BatchStatus, Bid, FailedMember};
pub use client::{
    Client, ClientBuilder, ClientMiddleware, DEFAULT_MAX_PAYLOAD_BYTES, Flow, Pushed, Setter,
};
pub use context::JobContext;
pub use error::Error;
pub use jid::Jid;
pub use job::{ArgCodec, ArgsDecoder, ArgsError, Job, JobArgument, JobFuture, codec};
pub use job_error::{BoxError, IntoJobResult, JobError, RetryOverride};
pub use limit::Limiter;
pub use options::{Backtrace, JobOptions, LogLevel, Retry, UniqueUntil};
pub use payload::Payload;
pub use redis::url::DEFAULT_REDIS_URL;
pub use registry::{Registration, Registry, registered_jobs};
pub use state::{JobState, StateType};
pub use timestamp::Timestamp;
pub use worker::Worker;
pub use workflow::{InvalidWorkflowId, Workflow, WorkflowId};

/// The `chrono` crate, whose `DateTime<Utc>` `perform_at` takes and whose types make good job
/// arguments (with its `serde` feature, which this re-export has on).
pub use chrono;

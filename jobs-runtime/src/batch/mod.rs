//! Batches: jobs pushed together under one id ([`Bid`]), with callbacks pushed once when the
//! batch completes, succeeds or first sees a job die (Sidekiq Pro's batches). The design, its
//! semantics and its keys are in `docs/batches.md`.
//!
//! - [`Batch`]: the builder that creates a batch, and [`Batch::status`] to read one.
//! - [`BatchHandle`]: a running job's batch ([`JobContext::batch`](crate::JobContext::batch)),
//!   to add jobs to it or nest a batch in it.
//! - [`BatchStatus`], [`FailedMember`]: what a batch's state reads as.
//!
//! The worker counts a batch job's outcome in the same round trip as its settle
//! (`member.rs`, `scripts/batch_update.lua`).

mod bid;
mod builder;
mod event;
mod handle;
pub(crate) mod member;
mod push;
mod status;

pub use bid::{Bid, InvalidBid};
pub use builder::{Batch, DEFAULT_RETENTION};
pub use event::BatchEvent;
pub use handle::BatchHandle;
pub(crate) use status::StoredFailure;
pub use status::{BatchStatus, FailedMember};

/// Now, epoch milliseconds, as the batch scripts take it.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

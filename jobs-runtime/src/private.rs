//! What the `#[job]` expansion names, so a user's `Cargo.toml` needs `jobs` and nothing else.
//! Not public API: it changes without notice.

pub use std::boxed::Box;
pub use std::vec::Vec;

pub use chrono::{DateTime, Utc};
pub use inventory;
pub use serde_json::{Error as JsonError, Value, to_value as to_json_value};

pub use crate::active_job::encode::{
    Argument as ActiveJobArgument, BySerde as ActiveJobBySerde, ByTyped as ActiveJobByTyped,
    keywords as active_job_keywords,
};
pub use crate::client::{Pushed, Setter};
pub use crate::context::JobContext;
pub use crate::error::Error;
pub use crate::jid::Jid;
pub use crate::job::{ArgCodec, ArgsDecoder, ArgsError, Job, JobArgument, JobFuture, codec};
pub use crate::job_error::{IntoJobResult, JobError, RetryOverride};
pub use crate::options::{Backtrace, JobOptions, LogLevel, Retry, UniqueUntil};
pub use crate::payload::Payload;
pub use crate::registry::Registration;
pub use crate::state::{JobState, StateType};
pub use crate::worker::Exhausted;

/// What the job function returned, as the worker sees it.
pub fn into_job_result<R: IntoJobResult>(returned: R) -> Result<(), JobError> {
    returned.into_job_result()
}

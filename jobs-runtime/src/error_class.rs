//! Every `error_class` `jobs` names itself, in one place: the twin of `redis/keys.rs`.
//!
//! A failed job carries Sidekiq's `error_class` field into the retry and dead sets, where
//! Sidekiq's Web UI, our dashboard, Ruby code and people's alerts read and filter on it (see
//! "Error classes" in `docs/wire-format.md`; this module and that table change together). Jobs
//! already in those sets carry the strings below, so they never change, even in spelling.
//!
//! Most failures are not named here: a job's own error is stored under its Rust type
//! (`std::io::error::Error`, `anyhow::Error`), see [`JobError`](crate::JobError). These are the
//! failures `jobs` names itself. The worker's own failures say `jobs::`, as a Ruby module would
//! (`jobs::Timeout`). Two names predate that prefix and keep their bare spelling:
//!
//! - [`PANIC`] (`Panic`): Sidekiq's Web UI and Ruby code already show and filter on it; a
//!   `jobs::Panic` would split one kind of failure between two names in every dead set that
//!   holds both old and new entries.
//! - [`JOB_ERROR`] (`JobError`): the name of the public type a plain message becomes, as any
//!   other error is stored under its type's name.

/// The prefix of the classes for the worker's own failures.
#[cfg(test)]
const PREFIX: &str = "jobs::";

/// A job failed with a plain message: `JobError::msg`, a `String` or a `&str`.
pub(crate) const JOB_ERROR: &str = "JobError";

/// A job panicked (or the `Deserialize` code of its arguments did); the message is the panic's.
pub(crate) const PANIC: &str = "Panic";

/// A job's JSON arguments do not decode into its Rust argument types; the message names the
/// argument.
pub(crate) const ARGUMENT_ERROR: &str = "jobs::ArgumentError";

/// A job ran longer than its `timeout` and was cancelled.
pub(crate) const TIMEOUT: &str = "jobs::Timeout";

/// No job with the payload's `class` is registered in the worker that took it.
pub(crate) const UNKNOWN_JOB: &str = "jobs::UnknownJob";

/// An entry of a queue or a sorted set that is not a job (not JSON, or no `class`): it goes to
/// the dead set wrapped in a job whose `class` and `error_class` are both this.
pub(crate) const INVALID_PAYLOAD: &str = "jobs::InvalidPayload";

/// A job handed back by crash recovery more than `max_recoveries` times in a row, presumed to
/// be what kills its processes: it goes to the dead set instead.
pub(crate) const ABANDONED: &str = "jobs::Abandoned";

/// A job asked for a `#[state]` type the worker was not given (a worker refuses to start without
/// it, so in practice only the fake and inline test modes report this class).
pub(crate) const MISSING_STATE: &str = "jobs::MissingState";

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{
        ABANDONED, ARGUMENT_ERROR, INVALID_PAYLOAD, JOB_ERROR, MISSING_STATE, PANIC, PREFIX,
        TIMEOUT, UNKNOWN_JOB,
    };

    /// The worker's own failures.
    const PREFIXED: [&str; 6] = [
        ARGUMENT_ERROR,
        TIMEOUT,
        UNKNOWN_JOB,
        INVALID_PAYLOAD,
        ABANDONED,
        MISSING_STATE,
    ];

    /// The two bare names kept for compatibility.
    const BARE: [&str; 2] = [JOB_ERROR, PANIC];

    #[test]
    fn every_class_is_distinct() {
        let all: Vec<&str> = PREFIXED.iter().chain(&BARE).copied().collect();
        let distinct: HashSet<&str> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
    }

    #[test]
    fn the_workers_own_classes_share_the_prefix_and_the_bare_ones_do_not() {
        for class in PREFIXED {
            let name = class.strip_prefix(PREFIX).unwrap_or_default();
            assert!(
                name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{class} is not `{PREFIX}` and a CamelCase name"
            );
        }
        for class in BARE {
            assert!(!class.contains("::"), "{class}");
        }
    }
}

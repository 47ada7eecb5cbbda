//! Shared application state handed to jobs: a database pool, a config, an HTTP client.

use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::sync::Arc;

use crate::error_class;
use crate::job_error::JobError;

/// Values a worker shares with its jobs, one per type, never serialized.
///
/// A job asks for one with a `#[state]` parameter of that type and gets a clone of it, so keep
/// the values cheap to clone (a pool, or an `Arc`).
///
/// ```
/// # #[derive(Clone)] struct Pool;
/// let state = jobs_runtime::JobState::new().with(Pool).with(String::from("config"));
/// assert!(state.get::<String>().is_some());
/// ```
#[derive(Clone, Default)]
pub struct JobState {
    /// Each value by its type (foldhash, cheaper than SipHash: one look-up a job for a
    /// `#[state]` argument).
    values: Arc<foldhash::HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl JobState {
    /// No state.
    pub fn new() -> Self {
        Self::default()
    }

    /// This state with `value` added (replacing a value of the same type).
    pub fn with<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.insert(value);
        self
    }

    /// Adds `value`, replacing a value of the same type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.values).insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// A clone of the value of type `T`, if there is one.
    pub fn get<T: Clone + 'static>(&self) -> Option<T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref::<T>())
            .cloned()
    }

    /// Whether a value of this type is present.
    pub fn contains(&self, wanted: &StateType) -> bool {
        self.values.contains_key(&(wanted.type_id)())
    }

    /// The value of type `T` for a job that asked for it, or an error saying how to provide it.
    pub fn require<T: Clone + 'static>(&self) -> Result<T, JobError> {
        self.get::<T>().ok_or_else(|| {
            JobError::msg(format!(
                "this job takes a `#[state]` of type `{}`, but the worker was given none; \
                 pass one to the worker's builder with `.state(value)`",
                type_name::<T>()
            ))
            .with_class(error_class::MISSING_STATE)
        })
    }
}

impl fmt::Debug for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobState")
            .field("values", &self.values.len())
            .finish()
    }
}

/// A state type a job asks for, named so that a missing one can be reported before any job runs.
#[derive(Clone, Copy)]
pub struct StateType {
    type_id: fn() -> TypeId,
    type_name: fn() -> &'static str,
}

impl StateType {
    /// The state type `T`.
    pub const fn of<T: 'static>() -> Self {
        Self {
            type_id: TypeId::of::<T>,
            type_name: type_name::<T>,
        }
    }

    /// The Rust name of the type.
    pub fn name(&self) -> &'static str {
        (self.type_name)()
    }
}

impl fmt::Debug for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::{JobState, StateType};
    use crate::error_class;

    #[derive(Clone, Debug, PartialEq)]
    struct Pool(u8);

    #[test]
    fn hands_out_clones_by_type() {
        let state = JobState::new().with(Pool(7));
        assert_eq!(state.get::<Pool>(), Some(Pool(7)));
        assert!(state.contains(&StateType::of::<Pool>()));
        assert!(!state.contains(&StateType::of::<String>()));
    }

    #[test]
    fn a_missing_value_says_how_to_provide_it() {
        let error = JobState::new().require::<Pool>().unwrap_err();
        assert_eq!(error.class(), error_class::MISSING_STATE);
        assert!(error.to_string().contains("`.state(value)`"), "{error}");
    }
}

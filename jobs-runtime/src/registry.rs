//! Every job type linked into the binary, collected through `inventory`.

use std::fmt;

use serde_json::Value;

use crate::context::JobContext;
use crate::error::Error;
use crate::job::{ArgsError, Job, JobFuture};
use crate::job_error::{JobError, RetryOverride};
use crate::options::JobOptions;
use crate::payload::Payload;
use crate::state::{JobState, StateType};
use crate::worker::Exhausted;

/// One job type as the worker sees it: its name, options and a way to run it from JSON.
///
/// `#[job]` submits one for every job type; [`Registry::from_inventory`] collects them.
pub struct Registration {
    name: &'static str,
    rust_type: fn() -> &'static str,
    location: &'static str,
    options: JobOptions,
    state: &'static [StateType],
    reads_context: bool,
    run: fn(Vec<Value>, JobContext, &JobState) -> Result<JobFuture, ArgsError>,
    retry_in: fn(u32, &JobError) -> Option<RetryOverride>,
    retries_exhausted: fn(&Payload, &JobError) -> Exhausted,
}

impl Registration {
    /// The registration of job type `J`, defined at `location` (`file:line`).
    pub const fn of<J: Job>(location: &'static str) -> Self {
        Self {
            name: J::NAME,
            rust_type: std::any::type_name::<J>,
            location,
            options: J::OPTIONS,
            state: J::STATE,
            reads_context: J::READS_CONTEXT,
            run: run_job::<J>,
            retry_in: J::retry_in,
            retries_exhausted: J::retries_exhausted,
        }
    }

    /// The job's own answer to a failure ([`Job::retry_in`]), given the new retry count.
    pub fn retry_in(&self, count: u32, error: &JobError) -> Option<RetryOverride> {
        (self.retry_in)(count, error)
    }

    /// Tells the job its retries ran out ([`Job::retries_exhausted`]).
    pub fn retries_exhausted(&self, job: &Payload, error: &JobError) -> Exhausted {
        (self.retries_exhausted)(job, error)
    }

    /// The wire name (Sidekiq's `class`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Rust path of the job type.
    pub fn rust_type(&self) -> &'static str {
        (self.rust_type)()
    }

    /// Where the job is defined, as `file:line`.
    pub fn location(&self) -> &'static str {
        self.location
    }

    /// The options the job declares.
    pub fn options(&self) -> &JobOptions {
        &self.options
    }

    /// The state types the job asks for.
    pub fn state(&self) -> &'static [StateType] {
        self.state
    }

    /// Whether the job reads its context ([`Job::READS_CONTEXT`]): when not, the worker passes
    /// a context with no facts in it rather than build one.
    pub fn reads_context(&self) -> bool {
        self.reads_context
    }

    /// Decodes `args` and starts the job; the future runs it.
    pub fn run(
        &self,
        args: Vec<Value>,
        context: JobContext,
        state: &JobState,
    ) -> Result<JobFuture, ArgsError> {
        (self.run)(args, context, state)
    }
}

fn run_job<J: Job>(
    args: Vec<Value>,
    context: JobContext,
    state: &JobState,
) -> Result<JobFuture, ArgsError> {
    Ok(J::decode_args(args)?.perform(context, state))
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .field("rust_type", &self.rust_type())
            .field("location", &self.location)
            .field("options", &self.options)
            .finish()
    }
}

inventory::collect!(Registration);

/// Every job type registered in this binary, in no particular order.
pub fn registered_jobs() -> impl Iterator<Item = &'static Registration> {
    inventory::iter::<Registration>.into_iter()
}

/// The job types a worker can run, by wire name.
#[derive(Debug, Default)]
pub struct Registry {
    /// Each job type by its wire name (foldhash, cheaper than SipHash: one look-up a job; the
    /// names are the binary's own, not an attacker's).
    by_name: foldhash::HashMap<&'static str, &'static Registration>,
}

impl Registry {
    /// Every job type linked into this binary; an error when two share a wire name.
    pub fn from_inventory() -> Result<Self, Error> {
        Self::from_registrations(registered_jobs())
    }

    /// A registry of the given job types; an error when two share a wire name.
    pub fn from_registrations(
        registrations: impl IntoIterator<Item = &'static Registration>,
    ) -> Result<Self, Error> {
        let mut by_name = foldhash::HashMap::default();
        for registration in registrations {
            if let Some(first) = by_name.insert(registration.name, registration) {
                return Err(Error::DuplicateJobName {
                    name: registration.name.to_owned(),
                    first: describe(first),
                    second: describe(registration),
                });
            }
        }
        Ok(Self { by_name })
    }

    /// The job type with this wire name.
    pub fn get(&self, name: &str) -> Option<&'static Registration> {
        self.by_name.get(name).copied()
    }

    /// Every registered job type, sorted by wire name.
    pub fn iter(&self) -> impl Iterator<Item = &'static Registration> + '_ {
        let mut all: Vec<_> = self.by_name.values().copied().collect();
        all.sort_by_key(|registration| registration.name);
        all.into_iter()
    }

    /// How many job types there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// `true` when no job type is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

fn describe(registration: &Registration) -> String {
    format!(
        "`{}` ({})",
        registration.rust_type(),
        registration.location()
    )
}

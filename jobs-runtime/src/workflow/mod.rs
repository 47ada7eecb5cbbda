//! Workflows: named steps, each a job that runs once every step it depends on has succeeded
//! (a chain, a fan-in, a small DAG), built on batches.
//!
//! - [`Workflow`]: the builder; [`push`](Workflow::push) checks the steps and starts those
//!   that depend on nothing.
//! - [`Workflow::status`] and [`api::Workflows`](crate::api::Workflows): what the admin API
//!   and the dashboard show ([`WorkflowStatus`]).
//!
//! Each step runs as a one-job batch whose bid is derived from the workflow's id and the step's
//! name, so creating it twice creates it once. The batch's `success` and `death` callbacks are
//! the runtime's own job `Jobs::Workflow::Advance`, which records the event in the workflow
//! (`workflow_advance.lua`) and creates the batches of the steps it made ready. See
//! `docs/batches.md`, "Workflows".

mod advance;
mod builder;
mod graph;
mod id;
mod read;
mod status;
mod step;
mod store;

pub use builder::{DEFAULT_RETENTION, Workflow};
pub use id::{InvalidWorkflowId, WorkflowId};
pub use status::{StepState, StepStatus, WorkflowState, WorkflowStatus, WorkflowSummary};
pub(crate) use store::summaries;

//! What [`Workflow::status`](super::Workflow::status) reads: a workflow's state and each of its
//! steps', for the admin API and the dashboard.

use chrono::{DateTime, Utc};

use super::WorkflowId;

/// A workflow's state as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkflowState {
    /// Steps are still to succeed, and none is dead.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step's job died (its retries ran out, or it had none): the steps that depend on it do
    /// not run. Independent steps carry on. If the dead job is retried by hand and succeeds,
    /// the step succeeds and the workflow runs on.
    Dead,
}

impl WorkflowState {
    /// The state as stored in Redis and shown: `running`, `succeeded` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
        }
    }

    /// The state stored as `text`; anything unknown reads as running.
    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "succeeded" => Self::Succeeded,
            "dead" => Self::Dead,
            _ => Self::Running,
        }
    }
}

/// One step's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StepState {
    /// A step it depends on has not succeeded yet: its job is not pushed.
    Waiting,
    /// Its job is pushed (or about to be) and has not failed: queued or running.
    Pending,
    /// Its job failed and waits to be retried ([`StepStatus::last_error`] says why).
    Retrying,
    /// Its job succeeded.
    Succeeded,
    /// Its job died: the steps that depend on it will not run.
    Dead,
}

impl StepState {
    /// The state as shown: `waiting`, `pending`, `retrying`, `succeeded` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
        }
    }
}

/// One step of a workflow, as [`WorkflowStatus::steps`] lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StepStatus {
    /// The step's name.
    pub name: String,
    /// The names of the steps it runs after.
    pub depends_on: Vec<String>,
    /// Its job's class (Sidekiq's `class`).
    pub class: String,
    /// Its job's jid.
    pub jid: String,
    /// The bid of the one-job batch the step runs as.
    pub bid: String,
    /// Where it is.
    pub state: StepState,
    /// Its job's last error (`<error_class>: <error_message>`) while it is retrying or dead.
    pub last_error: Option<String>,
}

/// A workflow's state, read by [`Workflow::status`](super::Workflow::status).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WorkflowStatus {
    /// The workflow's id.
    pub id: WorkflowId,
    /// What it was created with [`Workflow::new`](super::Workflow::new).
    pub description: String,
    /// When it was pushed.
    pub created_at: DateTime<Utc>,
    /// Its state as a whole.
    pub state: WorkflowState,
    /// When its last step succeeded, once it has.
    pub succeeded_at: Option<DateTime<Utc>>,
    /// When a step first died, if one did.
    pub dead_at: Option<DateTime<Utc>>,
    /// The queue its advance jobs run in.
    pub queue: String,
    /// Every step, in the order they were added.
    pub steps: Vec<StepStatus>,
}

impl WorkflowStatus {
    /// The step named `name`, if there is one.
    pub fn step(&self, name: &str) -> Option<&StepStatus> {
        self.steps.iter().find(|step| step.name == name)
    }
}

/// A workflow as [`api::Workflows::page`](crate::api::Workflows::page) lists it: its hash and
/// how many steps succeeded or died, without each step's state (read one workflow's with
/// [`Workflow::status`](super::Workflow::status)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WorkflowSummary {
    /// The workflow's id.
    pub id: WorkflowId,
    /// What it was created with [`Workflow::new`](super::Workflow::new).
    pub description: String,
    /// When it was pushed.
    pub created_at: DateTime<Utc>,
    /// Its state as a whole.
    pub state: WorkflowState,
    /// When its last step succeeded, once it has.
    pub succeeded_at: Option<DateTime<Utc>>,
    /// When a step first died, if one did.
    pub dead_at: Option<DateTime<Utc>>,
    /// The queue its advance jobs run in.
    pub queue: String,
    /// How many steps it has.
    pub total: usize,
    /// How many of its steps succeeded.
    pub succeeded: usize,
    /// How many of its steps are dead.
    pub dead: usize,
}

//! [`Workflow`]: the builder a user writes, and its push.

use std::collections::HashMap;
use std::time::Duration;

use super::graph::{self, StepDef};
use super::{WorkflowId, store};
use crate::client::{Client, payload_of};
use crate::error::Error;
use crate::job::Job;
use crate::payload::Payload;

/// How long a workflow's keys stay in Redis once it succeeded or died (while it runs they do not
/// expire), unless [`Workflow::retention`] says otherwise: 30 days, as a batch's.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A workflow being put together: named steps, each a job that runs once every step it
/// depends on has succeeded. [`push`](Self::push) checks it and starts the steps that depend on
/// nothing.
///
/// ```no_run
/// # use jobs_runtime::{Job, Workflow};
/// # async fn example<E: Job, T: Job, L: Job, S: Job, P: Job>(
/// #     extract: E, transform: T, load: L, scores: Vec<S>, publish: P,
/// # ) -> Result<(), jobs_runtime::Error> {
/// let wid = Workflow::new("nightly import")
///     .step("extract", extract)
///     .then("transform", transform) // after `extract`
///     .then("load", load) // after `transform`: a chain
///     .group("score", scores) // `score[0]`, `score[1]`, …, all after nothing
///     .step_after("publish", &["load", "score"], publish) // after `load` and all of `score`
///     .push()
///     .await?;
/// # Ok(()) }
/// ```
///
/// A step is retried as any job; while it fails, the steps that depend on it wait. A step whose
/// job dies makes the workflow [dead](super::WorkflowState::Dead) and its dependents never run.
/// See `docs/batches.md`, "Workflows".
#[must_use = "a workflow does nothing until `push` is awaited"]
#[derive(Debug)]
pub struct Workflow {
    description: String,
    client: Option<Client>,
    queue: String,
    retention: Duration,
    steps: Vec<StepDef>,
    /// Each group's name, with the names of its steps.
    groups: HashMap<String, Vec<String>>,
    /// What [`then`](Self::then) runs after: the step or group added last.
    last: Option<String>,
    /// The first job that could not be encoded, returned by `push`.
    error: Option<Error>,
}

impl Workflow {
    /// An empty workflow, described as `description` (shown by the dashboard and the status).
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            client: None,
            queue: "default".to_owned(),
            retention: DEFAULT_RETENTION,
            steps: Vec::new(),
            groups: HashMap::new(),
            last: None,
            error: None,
        }
    }

    /// Pushes through `client` instead of the default one.
    pub fn client(mut self, client: &Client) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// The queue of the workflow's own jobs, which start each step once the steps before it
    /// succeeded (`default` unless set). Only Rust workers may take from it: a Ruby Sidekiq
    /// process taking one of them would fail it (it knows no such class) and retry it until a
    /// Rust worker takes it. The steps' jobs go to their own queues.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Keeps the workflow's keys this long after it succeeded or died, instead of 30 days
    /// (while it runs they do not expire). Its steps' batches keep the longer of this and
    /// [`DEFAULT_RETENTION`] after their last change.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Adds the step `name`, which depends on nothing: it starts when the workflow is pushed.
    pub fn step<J: Job>(self, name: impl Into<String>, job: J) -> Self {
        self.step_after(name, &[], job)
    }

    /// Adds the step `name`, which runs once each of `after` has succeeded: a step's name, or
    /// a [group](Self::group)'s name for all of its steps (a fan-in).
    pub fn step_after<J: Job>(mut self, name: impl Into<String>, after: &[&str], job: J) -> Self {
        match payload_of(&job) {
            Ok(payload) => self.step_payload(name, after, payload),
            Err(error) => {
                self.error.get_or_insert(error);
                self
            }
        }
    }

    /// Adds the step `name`, which runs after the step or group added last (a chain: `.step("a",
    /// a).then("b", b).then("c", c)`); after nothing when it is the first.
    pub fn then<J: Job>(self, name: impl Into<String>, job: J) -> Self {
        let last = self.last.clone();
        let after: Vec<&str> = last.iter().map(String::as_str).collect();
        self.step_after(name, &after, job)
    }

    /// Adds one step per job, named `<group>[0]`, `<group>[1]`, …, each depending on nothing;
    /// a step that names `group` in its dependencies runs once all of them have succeeded
    /// (a fan-in). An empty group holds nobody back.
    pub fn group<J: Job>(
        self,
        group: impl Into<String>,
        jobs: impl IntoIterator<Item = J>,
    ) -> Self {
        self.group_after(group, &[], jobs)
    }

    /// [`group`](Self::group), each of its steps running once each of `after` has succeeded.
    pub fn group_after<J: Job>(
        self,
        group: impl Into<String>,
        after: &[&str],
        jobs: impl IntoIterator<Item = J>,
    ) -> Self {
        self.add_group(
            group.into(),
            after,
            jobs.into_iter().map(|job| payload_of(&job)),
        )
    }

    /// [`group_after`](Self::group_after) with jobs given as payloads.
    pub fn group_payloads(
        self,
        group: impl Into<String>,
        after: &[&str],
        payloads: impl IntoIterator<Item = Payload>,
    ) -> Self {
        self.add_group(group.into(), after, payloads.into_iter().map(Ok))
    }

    fn add_group(
        mut self,
        group: String,
        after: &[&str],
        payloads: impl Iterator<Item = Result<Payload, Error>>,
    ) -> Self {
        let mut members = Vec::new();
        for (position, payload) in payloads.enumerate() {
            let name = format!("{group}[{position}]");
            match payload {
                Ok(payload) => self.add(name.clone(), after, payload),
                Err(error) => {
                    self.error.get_or_insert(error);
                }
            }
            members.push(name);
        }
        self.groups
            .entry(group.clone())
            .or_default()
            .extend(members);
        self.last = Some(group);
        self
    }

    /// [`then`](Self::then) with a job given as a payload.
    pub fn then_payload(self, name: impl Into<String>, payload: Payload) -> Self {
        let last = self.last.clone();
        let after: Vec<&str> = last.iter().map(String::as_str).collect();
        self.step_payload(name, &after, payload)
    }

    /// Adds the step `name` running the job `payload` (for a job built by hand, or with
    /// options a typed job's step cannot take), once each of `after` has succeeded.
    pub fn step_payload(
        mut self,
        name: impl Into<String>,
        after: &[&str],
        payload: Payload,
    ) -> Self {
        let name = name.into();
        self.add(name.clone(), after, payload);
        self.last = Some(name);
        self
    }

    fn add(&mut self, name: String, after: &[&str], payload: Payload) {
        match serde_json::to_value(&payload) {
            Ok(job) => self.steps.push(StepDef {
                name,
                deps: after.iter().map(|dep| (*dep).to_owned()).collect(),
                job,
            }),
            Err(error) => {
                self.error.get_or_insert(Error::Encode {
                    class: payload.class.clone(),
                    reason: error.to_string(),
                });
            }
        }
    }

    /// Checks the workflow, writes it to Redis and starts the steps that depend on nothing;
    /// returns its id. Under [`testing::fake`](crate::testing::fake) every step's job is
    /// recorded, and under [`testing::inline`](crate::testing::inline) run, each after the steps
    /// it depends on (a failure is the push's error), with nothing written to Redis. [`Error::InvalidWorkflow`] (with nothing written) when a step's name is
    /// used twice, a dependency names no step nor group, the steps depend on each other in
    /// a cycle, or a step's job cannot be a batch's job (it does not validate or encode, is
    /// too large, or is unique: `unique_for`), or can expire unrun (`expires_in`, which a batch
    /// counts as a success); client middleware does not run for this check.
    pub async fn push(self) -> Result<WorkflowId, Error> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let invalid = |reason: String| Error::InvalidWorkflow {
            description: self.description.clone(),
            reason,
        };
        let steps = expand_groups(self.steps.clone(), &self.groups).map_err(invalid)?;
        graph::validate(&steps).map_err(invalid)?;
        if self.queue.is_empty() {
            return Err(invalid(
                "its queue has no name; name one with `.queue(..)`".to_owned(),
            ));
        }
        let client = match self.client {
            Some(client) => client,
            None => Client::global()?,
        };
        let wid = WorkflowId::generate();
        // Every step must be able to be a batch's job: a step refused when it starts (at the
        // push, or by an advance later) could never run.
        let now = crate::testing::now();
        for step in &steps {
            let checked = super::step::job(&wid, step)
                .and_then(|job| client.check_batch_member(&job, now).map(|()| job));
            let reason = match checked {
                Ok(job) => super::step::refusal(&job),
                Err(error) => Some(format!("it cannot run as a batch's job: {error}")),
            };
            if let Some(reason) = reason {
                return Err(invalid(format!("the step `{}`: {reason}", step.name)));
            }
        }
        if crate::testing::active().is_some() {
            // `testing::fake` records every step's job and `testing::inline` runs each (the
            // first failure is the push's error), each after its dependencies; nothing is
            // written to Redis.
            for step in graph::in_order(&steps) {
                client.push(super::step::job(&wid, step)?).await?;
            }
            return Ok(wid);
        }
        let workflow = store::NewWorkflow {
            description: &self.description,
            queue: &self.queue,
            retention: self.retention,
            steps: &steps,
        };
        store::create(&client, &wid, &workflow).await?;
        for step in steps.iter().filter(|step| step.deps.is_empty()) {
            super::step::start(
                &client,
                &wid,
                &self.description,
                &self.queue,
                self.retention,
                step,
            )
            .await?;
        }
        Ok(wid)
    }
}

/// `steps` with each dependency on a group replaced by the group's steps; an error when a
/// group has the name of a step.
fn expand_groups(
    mut steps: Vec<StepDef>,
    groups: &HashMap<String, Vec<String>>,
) -> Result<Vec<StepDef>, String> {
    if let Some(step) = steps.iter().find(|step| groups.contains_key(&step.name)) {
        return Err(format!(
            "the step `{}` has the name of a group; give one of them another name",
            step.name
        ));
    }
    for step in &mut steps {
        let mut deps: Vec<String> = Vec::with_capacity(step.deps.len());
        for dep in step.deps.drain(..) {
            let expanded = match groups.get(&dep) {
                Some(members) => members.clone(),
                None => vec![dep],
            };
            for dep in expanded {
                if !deps.contains(&dep) {
                    deps.push(dep);
                }
            }
        }
        step.deps = deps;
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{StepDef, Workflow, expand_groups};
    use crate::error::Error;
    use crate::payload::Payload;

    fn job() -> Payload {
        Payload::new("Noop", vec![])
    }

    /// The reason `push` refuses `workflow` for, before it reaches Redis.
    async fn refusal(workflow: Workflow) -> String {
        match workflow.push().await {
            Err(Error::InvalidWorkflow {
                description,
                reason,
            }) => {
                assert_eq!(description, "nightly");
                reason
            }
            other => panic!("pushed, or another error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn push_refuses_a_cycle_naming_its_steps() {
        let reason = refusal(
            Workflow::new("nightly")
                .step_payload("a", &[], job())
                .step_payload("b", &["a", "c"], job())
                .step_payload("c", &["b"], job()),
        )
        .await;
        assert!(
            reason.contains("cycle (b -> c -> b)") || reason.contains("cycle (c -> b -> c)"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn push_refuses_an_unknown_dependency_naming_the_step() {
        let reason = refusal(
            Workflow::new("nightly")
                .step_payload("a", &[], job())
                .step_payload("b", &["extract"], job()),
        )
        .await;
        assert!(
            reason.starts_with("the step `b` depends on `extract`, which is no step"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn push_refuses_a_name_used_twice() {
        let reason = refusal(
            Workflow::new("nightly")
                .step_payload("a", &[], job())
                .step_payload("a", &[], job()),
        )
        .await;
        assert!(reason.contains("the step `a` is added twice"), "{reason}");
    }

    #[tokio::test]
    async fn under_fake_every_step_is_recorded_after_its_dependencies() {
        let fake = crate::testing::fake();
        let client = crate::client::Client::builder()
            .url("redis://127.0.0.1:1/0")
            .build()
            .unwrap();
        Workflow::new("nightly")
            .client(&client)
            .step_payload("d", &["b", "c"], Payload::new("D", vec![]))
            .step_payload("b", &["a"], Payload::new("B", vec![]))
            .step_payload("c", &["a"], Payload::new("C", vec![]))
            .step_payload("a", &[], Payload::new("A", vec![]))
            .push()
            .await
            .unwrap();
        let classes: Vec<String> = fake
            .queue("default")
            .iter()
            .map(|job| job.payload().class.clone())
            .collect();
        assert_eq!(classes, ["A", "B", "C", "D"]);
    }

    #[test]
    fn then_chains_after_the_step_or_group_added_last() {
        let workflow = Workflow::new("nightly")
            .step_payload("a", &[], job())
            .group_payloads("g", &[], vec![job(), job()])
            .then_payload("d", job());
        let deps: Vec<(&str, Vec<String>)> = workflow
            .steps
            .iter()
            .map(|step| (step.name.as_str(), step.deps.clone()))
            .collect();
        assert_eq!(
            deps,
            [
                ("a", vec![]),
                ("g[0]", vec![]),
                ("g[1]", vec![]),
                ("d", vec!["g".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_dependency_on_a_group_is_one_on_each_of_its_steps() {
        let step = |name: &str, deps: &[&str]| StepDef {
            name: name.to_owned(),
            deps: deps.iter().map(|dep| (*dep).to_owned()).collect(),
            job: serde_json::Value::Null,
        };
        let groups = HashMap::from([("g".to_owned(), vec!["g[0]".to_owned(), "g[1]".to_owned()])]);
        let steps = vec![
            step("g[0]", &[]),
            step("g[1]", &[]),
            step("d", &["g", "x", "g[0]"]),
        ];
        let expanded = expand_groups(steps, &groups).unwrap();
        assert_eq!(expanded[2].deps, ["g[0]", "g[1]", "x"]);
        let clash = expand_groups(vec![step("g", &[])], &groups).unwrap_err();
        assert!(
            clash.contains("the step `g` has the name of a group"),
            "{clash}"
        );
    }
}

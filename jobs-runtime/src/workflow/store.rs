//! A workflow's keys in Redis: written at push, advanced by `workflow_advance.lua`, read for
//! its status.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::WorkflowId;
use super::graph::StepDef;
use super::status::WorkflowState;
use crate::client::Client;
use crate::error::Error;
use crate::redis::scripts;

/// What [`create`] writes.
pub(crate) struct NewWorkflow<'a> {
    pub(crate) description: &'a str,
    pub(crate) queue: &'a str,
    pub(crate) retention: Duration,
    pub(crate) steps: &'a [StepDef],
}

/// Writes the workflow's hash (which does not expire while the workflow runs: the advance
/// sets its expiry once it succeeded or died) and lists it in `workflows` (trimming ids older than the longer
/// of its retention and [`DEFAULT_RETENTION`](super::DEFAULT_RETENTION), as `batch_push.lua`
/// does: a workflow with a short retention does not drop the others; a running workflow is
/// never trimmed), in one script (`workflow_create.lua`).
pub(crate) async fn create(
    client: &Client,
    wid: &WorkflowId,
    workflow: &NewWorkflow<'_>,
) -> Result<(), Error> {
    let keys = client.keys();
    let steps = serde_json::to_string(workflow.steps).map_err(|error| Error::Encode {
        class: format!("the workflow `{}`", workflow.description),
        reason: error.to_string(),
    })?;
    let now = crate::testing::now();
    let created_ms = (now.as_epoch_seconds() * 1000.0).round() as i64;
    // At most about 136 years: an `EXPIRE` that Redis takes, whatever the `Duration`.
    let retention = workflow.retention.as_secs().clamp(1, u64::from(u32::MAX));
    let trim = retention.max(super::DEFAULT_RETENTION.as_secs());
    let key = keys.workflow(wid.as_str());
    let index = keys.workflows();
    let fields = [
        ("description", workflow.description.to_owned()),
        ("created_at", created_ms.to_string()),
        ("state", WorkflowState::Running.as_str().to_owned()),
        ("steps", steps),
        ("total", workflow.steps.len().to_string()),
        ("queue", workflow.queue.to_owned()),
        ("retention", retention.to_string()),
    ];
    let mut invocation = scripts::WORKFLOW_CREATE.prepare_invoke();
    invocation
        .key(&key)
        .key(&index)
        .arg(wid.as_str())
        .arg(now.as_epoch_seconds())
        .arg(now.as_epoch_seconds() - trim as f64)
        .arg(keys.prefix());
    for (field, value) in &fields {
        invocation.arg(*field).arg(value.as_str());
    }
    // Safe to send again: it writes the same hash and score.
    client.redis().script::<i64>(&invocation).await?;
    Ok(())
}

/// What [`advance`] read back after its record.
pub(crate) struct Advanced {
    /// The workflow's state after the record.
    pub(crate) state: WorkflowState,
    /// Its steps.
    pub(crate) steps: Vec<StepDef>,
    /// The steps that succeeded, this one included when it did.
    pub(crate) done: HashSet<String>,
    /// Its description, queue and retention, to start the steps that follow.
    pub(crate) meta: Meta,
}

/// What starting a step needs to know of its workflow.
pub(crate) struct Meta {
    pub(crate) description: String,
    pub(crate) queue: String,
    pub(crate) retention: Duration,
}

/// The workflow event of a step's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The step's batch succeeded.
    Success,
    /// The step's job died.
    Death,
}

impl Event {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Death => "death",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(Self::Success),
            "death" => Some(Self::Death),
            _ => None,
        }
    }
}

/// Records `event` of `step` (idempotent), and reads back what follows; `None` when the
/// workflow is gone. `reason`, for a death, is why the step could not run at all (kept as the
/// step's error, shown while it has no batch).
pub(crate) async fn advance(
    client: &Client,
    wid: &WorkflowId,
    step: &str,
    event: Event,
    reason: Option<&str>,
) -> Result<Option<Advanced>, Error> {
    let keys = client.keys();
    let now_ms = (crate::testing::now().as_epoch_seconds() * 1000.0).round() as i64;
    let mut invocation = scripts::WORKFLOW_ADVANCE.prepare_invoke();
    invocation
        .key(keys.workflow(wid.as_str()))
        .key(keys.workflow_done(wid.as_str()))
        .key(keys.workflow_dead(wid.as_str()))
        .arg(step)
        .arg(event.as_str())
        .arg(now_ms)
        .arg(reason.unwrap_or_default());
    let reply: Option<Vec<Option<String>>> = client.redis().script(&invocation).await?;
    let Some(mut reply) = reply else {
        return Ok(None);
    };
    if reply.len() < 5 {
        return Err(broken(
            client,
            wid,
            "the advance script's reply is too short",
        ));
    }
    let done: HashSet<String> = reply.split_off(5).into_iter().flatten().collect();
    let mut fields = reply.into_iter();
    let mut field = || fields.next().flatten().unwrap_or_default();
    let state = WorkflowState::parse(&field());
    let steps = parse_steps(client, wid, &field())?;
    let hash = HashMap::from([
        ("description".to_owned(), field()),
        ("queue".to_owned(), field()),
        ("retention".to_owned(), field()),
    ]);
    Ok(Some(Advanced {
        state,
        steps,
        done,
        meta: meta(&hash),
    }))
}

/// Everything stored of one workflow: its hash, and its succeeded and dead steps.
pub(crate) struct Stored {
    pub(crate) hash: HashMap<String, String>,
    pub(crate) steps: Vec<StepDef>,
    pub(crate) done: HashSet<String>,
    pub(crate) dead: HashSet<String>,
}

/// Reads a workflow, in one round trip; `None` when there is no such workflow.
pub(crate) async fn read(client: &Client, wid: &WorkflowId) -> Result<Option<Stored>, Error> {
    let keys = client.keys();
    let mut pipe = redis::pipe();
    pipe.hgetall(keys.workflow(wid.as_str()))
        .smembers(keys.workflow_done(wid.as_str()))
        .smembers(keys.workflow_dead(wid.as_str()));
    let (hash, done, dead): (HashMap<String, String>, HashSet<String>, HashSet<String>) =
        client.redis().query(&pipe).await?;
    if hash.is_empty() {
        return Ok(None);
    }
    let steps = parse_steps(client, wid, hash.get("steps").map_or("[]", String::as_str))?;
    Ok(Some(Stored {
        hash,
        steps,
        done,
        dead,
    }))
}

/// The summaries of workflows `wids`, in their order, in one round trip: each one's hash and
/// the sizes of its `done` and `dead` sets. A workflow whose keys are gone, or are not as
/// `jobs` writes them, is left out (with a warning for the latter).
pub(crate) async fn summaries(
    client: &Client,
    wids: &[WorkflowId],
) -> Result<Vec<super::WorkflowSummary>, Error> {
    let keys = client.keys();
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for wid in wids {
        pipe.hgetall(keys.workflow(wid.as_str()))
            .scard(keys.workflow_done(wid.as_str()))
            .scard(keys.workflow_dead(wid.as_str()));
    }
    let replies: Vec<redis::Value> = client.redis().query(&pipe).await?;
    let mut replies = replies.into_iter();
    let mut listed = Vec::with_capacity(wids.len());
    for wid in wids {
        let (Some(hash), Some(done), Some(dead)) = (replies.next(), replies.next(), replies.next())
        else {
            break;
        };
        let read = || -> Result<_, redis::ParsingError> {
            Ok((
                redis::from_redis_value::<HashMap<String, String>>(hash)?,
                redis::from_redis_value::<usize>(done)?,
                redis::from_redis_value::<usize>(dead)?,
            ))
        };
        let (hash, done, dead) = match read() {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(workflow = %wid, %error, "a workflow's keys are not as `jobs` writes them: left out of the list");
                continue;
            }
        };
        if hash.is_empty() {
            continue;
        }
        let meta = meta(&hash);
        listed.push(super::WorkflowSummary {
            id: wid.clone(),
            description: meta.description,
            created_at: time_field(&hash, "created_at").unwrap_or_default(),
            state: WorkflowState::parse(hash.get("state").map_or("", String::as_str)),
            succeeded_at: time_field(&hash, "succeeded_at"),
            dead_at: time_field(&hash, "dead_at"),
            queue: meta.queue,
            total: hash
                .get("total")
                .and_then(|total| total.parse().ok())
                .unwrap_or_default(),
            succeeded: done,
            dead,
        });
    }
    Ok(listed)
}

/// The description, queue and retention of a workflow's hash.
pub(crate) fn meta(hash: &HashMap<String, String>) -> Meta {
    Meta {
        description: hash.get("description").cloned().unwrap_or_default(),
        queue: hash
            .get("queue")
            .cloned()
            .unwrap_or_else(|| "default".to_owned()),
        retention: hash
            .get("retention")
            .and_then(|seconds| seconds.parse().ok())
            .map_or(super::DEFAULT_RETENTION, Duration::from_secs),
    }
}

/// An epoch-milliseconds field of a workflow's hash, as a time.
pub(crate) fn time_field(hash: &HashMap<String, String>, field: &str) -> Option<DateTime<Utc>> {
    let millis: i64 = hash.get(field)?.parse().ok()?;
    DateTime::from_timestamp_millis(millis)
}

fn parse_steps(client: &Client, wid: &WorkflowId, json: &str) -> Result<Vec<StepDef>, Error> {
    serde_json::from_str(json)
        .map_err(|error| broken(client, wid, &format!("its steps are not readable: {error}")))
}

/// A workflow's keys hold what `jobs` never writes (edited by hand, or by another program).
fn broken(client: &Client, wid: &WorkflowId, reason: &str) -> Error {
    Error::Redis {
        url: client.url().to_owned(),
        reason: format!(
            "the workflow {wid} in Redis is not as `jobs` wrote it: {reason}; it cannot be \
             read or advanced. Restore its keys (`workflow:{wid}` and its `:done` / `:dead` \
             sets) from a backup, or delete them and push the workflow again"
        ),
    }
}

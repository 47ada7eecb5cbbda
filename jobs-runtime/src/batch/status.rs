//! Reading a batch's state: [`Batch::status`].

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::client::Client;
use crate::error::Error;

use super::{Batch, BatchEvent, Bid};

/// A batch's state, as [`Batch::status`] reads it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BatchStatus {
    /// The batch's id.
    pub bid: Bid,
    /// Its description, if it was given one.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// How many members were ever registered: jobs, and child batches (one each).
    pub total: u64,
    /// How many members have not succeeded yet.
    pub pending: u64,
    /// How many pending members failed at least once (dead ones included).
    pub failures: u64,
    /// How many pending members died.
    pub dead: u64,
    /// The pending members that failed, each with its last failure, sorted by member.
    pub failed: Vec<FailedMember>,
    /// The parent batch, if this one is nested.
    pub parent: Option<Bid>,
    /// Whether its creation finished (no callback fires before).
    pub sealed: bool,
    /// When `complete` fired, if it did.
    pub complete_at: Option<DateTime<Utc>>,
    /// When `success` fired, if it did.
    pub success_at: Option<DateTime<Utc>>,
    /// When `death` fired, if it did.
    pub death_at: Option<DateTime<Utc>>,
    /// The workflow this batch is a step of, if any.
    pub workflow: Option<String>,
    /// The workflow step this batch is, if any.
    pub step: Option<String>,
    /// How long its keys live after its last change.
    pub retention: Duration,
    /// Its callbacks: each event with the class of the job it pushes.
    pub callbacks: Vec<(BatchEvent, String)>,
}

/// A pending member of a batch that failed, with its last failure.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FailedMember {
    /// The member: a job's jid, or `batch:<bid>` for a child batch.
    pub member: String,
    /// The job's class (`batch` for a child batch).
    pub class: String,
    /// The error's class (`jobs::BatchFailed` or `jobs::BatchDied` for a child batch).
    pub error_class: String,
    /// The error's message.
    pub error_message: String,
    /// When it failed, if known.
    pub failed_at: Option<DateTime<Utc>>,
    /// Whether it died (it will not be retried).
    pub dead: bool,
}

/// A failure as `batch:<bid>:failed` stores it (`batch_events.lua`).
#[derive(serde::Deserialize)]
pub(crate) struct StoredFailure {
    /// The job's class.
    #[serde(default)]
    pub(crate) class: String,
    /// The error's class.
    #[serde(default)]
    pub(crate) error_class: String,
    /// The error's message.
    #[serde(default)]
    pub(crate) error_message: String,
    /// When it failed, epoch seconds.
    #[serde(default)]
    pub(crate) failed_at: Option<f64>,
    /// Whether it died.
    #[serde(default)]
    pub(crate) dead: bool,
}

impl StoredFailure {
    /// The failure stored as `info`; text that is not the JSON the batch scripts write is kept
    /// whole as the message.
    pub(crate) fn parse(info: &str) -> Self {
        serde_json::from_str(info).unwrap_or_else(|_| Self {
            class: String::new(),
            error_class: String::new(),
            error_message: info.to_owned(),
            failed_at: None,
            dead: false,
        })
    }
}

impl FailedMember {
    /// The member `member` whose stored failure is `info` (kept as the message when it is not
    /// the JSON this version writes).
    fn read(member: String, info: &str) -> Self {
        let stored = StoredFailure::parse(info);
        Self {
            member,
            class: stored.class,
            error_class: stored.error_class,
            error_message: stored.error_message,
            failed_at: stored.failed_at.map(|seconds| {
                crate::timestamp::Timestamp::from_epoch_seconds(seconds).to_datetime()
            }),
            dead: stored.dead,
        }
    }
}

impl Batch {
    /// The state of batch `bid` through `client`, or `None` when there is no such batch (never
    /// created, or its retention ran out). One round trip.
    pub async fn status(client: &Client, bid: &Bid) -> Result<Option<BatchStatus>, Error> {
        let [meta, pending, failed, dead] = client.keys().batch_keys(bid.as_str());
        let (fields, pending, failed, dead): (
            HashMap<String, String>,
            u64,
            HashMap<String, String>,
            u64,
        ) = client
            .redis()
            .query(
                redis::pipe()
                    .hgetall(&meta)
                    .scard(&pending)
                    .hgetall(&failed)
                    .scard(&dead),
            )
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let text = |field: &str| fields.get(field).cloned();
        let time = |field: &str| {
            fields
                .get(field)
                .and_then(|ms| ms.parse::<i64>().ok())
                .and_then(DateTime::<Utc>::from_timestamp_millis)
        };
        let mut members: Vec<FailedMember> = failed
            .into_iter()
            .map(|(member, info)| FailedMember::read(member, &info))
            .collect();
        members.sort_by(|a, b| a.member.cmp(&b.member));
        let callbacks = BatchEvent::ALL
            .into_iter()
            .filter_map(|event| {
                let json = fields.get(&format!("cb:{}", event.as_str()))?;
                let class = crate::raw_job::RawJob::parse(json)
                    .ok()
                    .and_then(|job| job.get_as::<String>("class"))
                    .unwrap_or_default();
                Some((event, class))
            })
            .collect();
        Ok(Some(BatchStatus {
            bid: bid.clone(),
            description: text("description"),
            created_at: time("created_at"),
            total: text("total").and_then(|n| n.parse().ok()).unwrap_or(0),
            pending,
            failures: u64::try_from(members.len()).unwrap_or(u64::MAX),
            dead,
            failed: members,
            parent: text("parent").and_then(|parent| parent.parse().ok()),
            sealed: text("sealed").as_deref() == Some("1"),
            complete_at: time("complete_at"),
            success_at: time("success_at"),
            death_at: time("death_at"),
            workflow: text("workflow"),
            step: text("step"),
            retention: Duration::from_secs(
                text("retention")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(super::DEFAULT_RETENTION.as_secs()),
            ),
            callbacks,
        }))
    }
}

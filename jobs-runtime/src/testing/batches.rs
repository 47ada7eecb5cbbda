//! Batches in fake mode: what `batch_push.lua` and `batch_update.lua` do in Redis, done in
//! memory with the same rules (`docs/batches.md`), so a test sees its callbacks run.
//!
//! A batch's jobs are recorded in the fake with their `bid`; when the fake runs one, its
//! outcome updates the batch, and a moment that becomes true (complete, success, death, each
//! once) records its callback job in the fake, for [`Fake::drain`](super::Fake::drain) to run.
//! The fake retries nothing. A batch job that fails is dead when it has no retries
//! (`retry = false` or `0`) or its error kills or discards it: `complete` and `death` fire,
//! `success` never does. Any other failure is a failure, as on a retryable job's first failure
//! in production: the job stays pending, `complete` fires once every pending job failed,
//! `success` and `death` do not.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use std::time::Duration;

use super::Active;
use super::enqueued::EnqueuedJob;
use crate::batch::{BatchEvent, BatchStatus, Bid, DEFAULT_RETENTION, FailedMember};
use crate::error::Error;
use crate::jid::Jid;
use crate::payload::Payload;
use crate::timestamp::Timestamp;

/// The events, in the order they fire when several come true together.
const EVENTS: [&str; 3] = ["complete", "success", "death"];

/// The prefix of a member that is a child batch.
const CHILD_PREFIX: &str = "batch:";

/// Every batch a fake holds, by bid.
#[derive(Debug, Default)]
pub(crate) struct FakeBatches {
    batches: HashMap<String, FakeBatch>,
}

/// One batch in memory: the fields of its hash that matter, and its sets.
#[derive(Debug, Default, Clone)]
pub(crate) struct FakeBatch {
    /// When it was created (on the fake clock).
    created_at: Option<DateTime<Utc>>,
    /// The fields of its hash as created (`description`, `retention`, `workflow`, `step` …).
    fields: HashMap<String, String>,
    /// Its parent batch, if nested.
    parent: Option<String>,
    /// The callback job's JSON, by event (without `enqueued_at`).
    callbacks: HashMap<String, String>,
    /// Members ever registered.
    total: u64,
    /// Members not yet succeeded.
    pending: BTreeSet<String>,
    /// Pending members that failed, with their last failure.
    failed: BTreeMap<String, FailedMember>,
    /// Pending members that died.
    dead: BTreeSet<String>,
    /// Whether its creation finished.
    sealed: bool,
    /// When each event fired (on the fake clock).
    fired: BTreeMap<String, DateTime<Utc>>,
}

impl FakeBatch {
    /// The batch as [`Batch::status`](crate::Batch::status) would read it from Redis.
    pub(crate) fn status(&self, bid: &Bid) -> BatchStatus {
        let field = |name: &str| self.fields.get(name).cloned();
        let count = |len: usize| u64::try_from(len).unwrap_or(u64::MAX);
        BatchStatus {
            bid: bid.clone(),
            description: field("description"),
            created_at: self.created_at,
            total: self.total,
            pending: count(self.pending.len()),
            failures: count(self.failed.len()),
            dead: count(self.dead.len()),
            failed: self.failed.values().cloned().collect(),
            parent: self
                .parent
                .as_deref()
                .and_then(|parent| parent.parse().ok()),
            sealed: self.sealed,
            complete_at: self.fired.get("complete").copied(),
            success_at: self.fired.get("success").copied(),
            death_at: self.fired.get("death").copied(),
            workflow: field("workflow"),
            step: field("step"),
            retention: field("retention")
                .and_then(|seconds| seconds.parse().ok())
                .map_or(DEFAULT_RETENTION, Duration::from_secs),
            callbacks: BatchEvent::ALL
                .into_iter()
                .filter_map(|event| {
                    let json = self.callbacks.get(event.as_str())?;
                    let class = Payload::from_json(json)
                        .map(|payload| payload.class)
                        .unwrap_or_default();
                    Some((event, class))
                })
                .collect(),
        }
    }
}

/// What became of a member when it ran.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// It succeeded.
    Success,
    /// It failed and will be retried: its class, error class and message.
    Failure(Failure),
    /// It failed for good: its class, error class and message.
    Death(Failure),
}

/// A member's failure: its job's class, the error's class and message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Failure {
    /// The job's class (`batch` for a child batch).
    pub(crate) class: String,
    /// The error's class.
    pub(crate) error_class: String,
    /// The error's message.
    pub(crate) error_message: String,
}

impl FakeBatches {
    /// The batch `bid`, if the fake holds it.
    pub(crate) fn get(&self, bid: &str) -> Option<&FakeBatch> {
        self.batches.get(bid)
    }

    /// What `batch_push.lua` answers, and does: `mode` is `create`, `chunk` or `add`; 1 done,
    /// 0 the batch existed (create), -1 no such batch, -2 its success fired, -3 no such parent,
    /// -4 the parent succeeded. The members' jobs are registered pending; the caller records
    /// them. Returns the answer and the callback jobs to record.
    #[allow(
        clippy::too_many_arguments,
        reason = "the arguments of batch_push.lua, as batch::push::send has them"
    )]
    pub(crate) fn push(
        &mut self,
        bid: &str,
        mode: &str,
        seal: bool,
        parent: Option<&str>,
        fields: &[(String, String)],
        members: &[String],
        now: DateTime<Utc>,
    ) -> (i64, Vec<String>) {
        match mode {
            "create" => {
                if self.batches.contains_key(bid) {
                    return (0, Vec::new());
                }
                if let Some(parent) = parent {
                    match self.batches.get_mut(parent) {
                        None => return (-3, Vec::new()),
                        Some(found) if found.fired.contains_key("success") => {
                            return (-4, Vec::new());
                        }
                        Some(found) => {
                            found.total += 1;
                            found.pending.insert(format!("{CHILD_PREFIX}{bid}"));
                        }
                    }
                }
                let mut batch = FakeBatch {
                    parent: parent.map(str::to_owned),
                    created_at: Some(now),
                    ..FakeBatch::default()
                };
                for (field, value) in fields {
                    match field.strip_prefix("cb:") {
                        Some(event) => batch.callbacks.insert(event.to_owned(), value.clone()),
                        None => batch.fields.insert(field.clone(), value.clone()),
                    };
                }
                self.batches.insert(bid.to_owned(), batch);
            }
            _ => match self.batches.get(bid) {
                None => return (-1, Vec::new()),
                Some(found) if mode == "add" && found.fired.contains_key("success") => {
                    return (-2, Vec::new());
                }
                Some(_) => {}
            },
        }
        let Some(batch) = self.batches.get_mut(bid) else {
            return (-1, Vec::new());
        };
        for member in members {
            if batch.pending.insert(member.clone()) {
                batch.total += 1;
            }
        }
        if seal {
            batch.sealed = true;
        }
        let mut callbacks = Vec::new();
        self.check(bid, now, &mut callbacks);
        (1, callbacks)
    }

    /// What `batch_update.lua` does when member `member` of batch `bid` ran with `outcome`:
    /// returns the callback jobs to record. A member no longer pending changes nothing.
    pub(crate) fn settle(
        &mut self,
        bid: &str,
        member: &str,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let mut callbacks = Vec::new();
        self.update(bid, member, outcome, now, &mut callbacks);
        callbacks
    }

    fn update(
        &mut self,
        bid: &str,
        member: &str,
        outcome: Outcome,
        now: DateTime<Utc>,
        callbacks: &mut Vec<String>,
    ) {
        let Some(batch) = self.batches.get_mut(bid) else {
            return;
        };
        if !batch.pending.contains(member) {
            return;
        }
        let failed = |failure: Failure, dead: bool| FailedMember {
            member: member.to_owned(),
            class: failure.class,
            error_class: failure.error_class,
            error_message: failure.error_message,
            failed_at: Some(now),
            dead,
        };
        match outcome {
            Outcome::Success => {
                batch.pending.remove(member);
                batch.failed.remove(member);
                batch.dead.remove(member);
            }
            Outcome::Failure(failure) => {
                batch
                    .failed
                    .insert(member.to_owned(), failed(failure, false));
            }
            Outcome::Death(failure) => {
                batch
                    .failed
                    .insert(member.to_owned(), failed(failure, true));
                batch.dead.insert(member.to_owned());
            }
        }
        self.check(bid, now, callbacks);
    }

    /// Fires the moments of `bid` that became true (each once), collecting their callbacks,
    /// and passes a nested batch's moments to its parent.
    fn check(&mut self, bid: &str, now: DateTime<Utc>, callbacks: &mut Vec<String>) {
        let Some(batch) = self.batches.get_mut(bid) else {
            return;
        };
        if !batch.sealed {
            return;
        }
        let complete = batch
            .pending
            .iter()
            .all(|member| batch.failed.contains_key(member));
        let success = batch.pending.is_empty();
        let death = !batch.dead.is_empty();
        let mut fired = Vec::new();
        for (event, reached) in EVENTS.into_iter().zip([complete, success, death]) {
            if reached && !batch.fired.contains_key(event) {
                batch.fired.insert(event.to_owned(), now);
                if let Some(callback) = batch.callbacks.get(event) {
                    callbacks.push(callback.clone());
                }
                fired.push(event);
            }
        }
        let Some(parent) = batch.parent.clone() else {
            return;
        };
        let member = format!("{CHILD_PREFIX}{bid}");
        for event in fired {
            let failure = |error_class: &str| Failure {
                class: "batch".to_owned(),
                error_class: error_class.to_owned(),
                error_message: format!("batch {bid} reached {event} without success"),
            };
            let outcome = match event {
                "success" => Outcome::Success,
                "death" => Outcome::Death(failure("jobs::BatchDied")),
                _ if success => continue,
                _ => Outcome::Failure(failure("jobs::BatchFailed")),
            };
            self.update(&parent, &member, outcome, now, callbacks);
        }
    }
}

/// Whether the testing mode on now keeps batches itself: fake mode does (in memory, with their
/// callbacks); inline mode does not. `batch::push::refuse_in_testing_mode` refuses a batch
/// only when a mode is on and this is `false`:
///
/// ```ignore
/// if crate::testing::active().is_some() && !crate::testing::batches::handles_batches() { /* refuse */ }
/// ```
pub(crate) fn handles_batches() -> bool {
    matches!(super::active(), Some(Active::Fake(_)))
}

/// In fake mode, what `batch_push.lua` does, in memory; `None` when fake mode is not on (the
/// batch goes to Redis). `mode` is `create`, `chunk` or `add`, `seal` whether this call
/// finishes the batch's creation, `parent` and `fields` the creation's (the batch hash's
/// fields, `cb:<event>` included), `members` the prepared jobs (jid, queue, JSON carrying
/// `bid`). Answers as the script does. The jobs are recorded with their `bid` and the batch
/// kept in memory: running its jobs ([`Fake::drain`](super::Fake::drain)) fires its callbacks
/// as a worker would.
///
/// `batch::push::send` calls it as its first statement:
///
/// ```ignore
/// if let Some(answer) = crate::testing::batches::push(bid.as_str(), mode.as_str(), seal,
///     creation.and_then(|c| c.parent.as_ref()).map(Bid::as_str),
///     creation.map_or(&[][..], |c| &c.fields[..]), members).await { return answer; }
/// ```
pub(crate) async fn push(
    bid: &str,
    mode: &str,
    seal: bool,
    parent: Option<&str>,
    fields: &[(String, String)],
    members: &[(Jid, String, String)],
) -> Option<Result<i64, Error>> {
    let active = super::active()?;
    let Active::Fake(shared) = &active else {
        return None;
    };
    let jids: Vec<String> = members
        .iter()
        .map(|(jid, _, _)| jid.as_str().to_owned())
        .collect();
    let now = shared.now().to_datetime();
    let (answer, callbacks) = shared
        .batches()
        .push(bid, mode, seal, parent, fields, &jids, now);
    if answer == 1 {
        for (_, _, json) in members {
            if let Err(error) = super::deliver(&active, json, None, None).await {
                return Some(Err(error));
            }
        }
    }
    for callback in callbacks {
        record_callback(shared, &callback);
    }
    Some(Ok(answer))
}

/// Records a callback job (its stored JSON) in the fake, stamped `enqueued_at` now, as
/// `batch_events.lua` pushes it. A callback that does not parse is dropped, as the script
/// drops it.
pub(super) fn record_callback(shared: &super::fake::FakeShared, json: &str) {
    let Ok(mut payload) = Payload::from_json(json) else {
        return;
    };
    let now: Timestamp = shared.now();
    payload.enqueued_at = Some(now);
    shared.record(EnqueuedJob { payload, at: None }, None);
}

/// The batch a recorded job belongs to: its `bid`, unless it is a callback.
pub(super) fn bid_of(payload: &Payload) -> Option<&str> {
    payload.extra.get("bid")?.as_str()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::{Failure, FakeBatches, Outcome};

    fn failure() -> Failure {
        Failure {
            class: "ScoreUser".into(),
            error_class: "JobError".into(),
            error_message: "boom".into(),
        }
    }

    fn callbacks() -> Vec<(String, String)> {
        ["complete", "success", "death"]
            .iter()
            .map(|event| (format!("cb:{event}"), (*event).to_owned()))
            .collect()
    }

    fn members(jids: &[&str]) -> Vec<String> {
        jids.iter().map(|jid| (*jid).to_owned()).collect()
    }

    #[test]
    fn success_fires_complete_then_success_once() {
        let mut batches = FakeBatches::default();
        let now = Utc::now();
        let (answer, fired) = batches.push(
            "b",
            "create",
            true,
            None,
            &callbacks(),
            &members(&["a", "b"]),
            now,
        );
        assert_eq!((answer, fired.len()), (1, 0));
        assert!(batches.settle("b", "a", Outcome::Success, now).is_empty());
        assert_eq!(
            batches.settle("b", "b", Outcome::Success, now),
            ["complete", "success"]
        );
        assert!(batches.settle("b", "b", Outcome::Success, now).is_empty());
        assert_eq!(batches.get("b").unwrap().total, 2);
    }

    #[test]
    fn a_death_fires_complete_and_death_never_success() {
        let mut batches = FakeBatches::default();
        let now = Utc::now();
        batches.push(
            "b",
            "create",
            true,
            None,
            &callbacks(),
            &members(&["a", "b"]),
            now,
        );
        assert!(
            batches
                .settle("b", "a", Outcome::Failure(failure()), now)
                .is_empty()
        );
        assert_eq!(
            batches.settle("b", "b", Outcome::Death(failure()), now),
            ["complete", "death"]
        );
        assert!(
            batches
                .settle("b", "a", Outcome::Death(failure()), now)
                .is_empty()
        );
    }

    #[test]
    fn an_empty_batch_succeeds_when_sealed_and_nesting_reaches_the_parent() {
        let mut batches = FakeBatches::default();
        let now = Utc::now();
        batches.push(
            "p",
            "create",
            false,
            None,
            &callbacks(),
            &members(&["x"]),
            now,
        );
        let (answer, fired) = batches.push("c", "create", true, Some("p"), &[], &[], now);
        assert_eq!((answer, fired.len()), (1, 0));
        // The parent is not sealed yet: its moments wait.
        assert_eq!(batches.get("p").unwrap().pending.len(), 1);
        let (_, fired) = batches.push("p", "chunk", true, None, &[], &[], now);
        assert!(fired.is_empty());
        assert_eq!(
            batches.settle("p", "x", Outcome::Success, now),
            ["complete", "success"]
        );
        assert_eq!(
            batches
                .push("q", "create", true, Some("p"), &[], &[], now)
                .0,
            -4
        );
        assert_eq!(batches.push("r", "add", true, None, &[], &[], now).0, -1);
    }
}

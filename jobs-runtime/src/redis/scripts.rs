//! The Lua scripts, one file each under `scripts/`, embedded at build time. Each is one atomic
//! step of a job's life; the files say what they take and return.

use std::sync::LazyLock;

use redis::Script;

use super::Connection;
use super::keys::Keys;
use crate::error::Error;
use crate::raw_job::Splice;
use crate::timestamp::Timestamp;

/// Queues -> this process's working list, a batch at a time (`scripts/fetch.lua`).
pub(crate) static FETCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/fetch.lua")));

/// The text of `scripts/ack.lua` without its comment lines: finished jobs off this process's
/// working list, a few commands for a batch. Sent whole with `EVAL` in the acknowledgements'
/// pipeline (which cannot load a script it finds missing); Redis hashes the text of every
/// `EVAL`, so the comments are left out.
pub(crate) static ACK: LazyLock<String> =
    LazyLock::new(|| without_comments(include_str!("scripts/ack.lua")));

/// `source` without its comment lines (those starting with `--`).
fn without_comments(source: &str) -> String {
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// One given job of a queue -> this process's working list (`scripts/claim.lua`).
pub(crate) static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/claim.lua")));

/// The text of `scripts/settle.lua`, for a pipeline that sends it whole with `EVAL` (a batch
/// job's settle, after its batch's update).
pub(crate) const SETTLE_SOURCE: &str = include_str!("scripts/settle.lua");

/// Working list -> queue, retry or dead, only if still ours (`scripts/settle.lua`).
pub(crate) static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE_SOURCE));

/// A job an idle `BLMOVE` brought from a capped queue -> given a lease, or handed back when the
/// cap is full (`scripts/cap_claim.lua`).
pub(crate) static CAP_CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/cap_claim.lua")));

/// The leases this process holds on one capped queue -> renewed, by Redis's clock
/// (`scripts/cap_renew.lua`), once per beat.
pub(crate) static CAP_RENEW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/cap_renew.lua")));

/// A job of a capped class about to start -> its class lease, or parked in the class's
/// waiting list when the cap is full (`scripts/cap_class_take.lua`).
pub(crate) static CAP_CLASS_TAKE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/cap_class_take.lua")));

/// A capped class's lease -> released, and parked jobs -> back to their queues while there is
/// room (`scripts/cap_class_release.lua`).
pub(crate) static CAP_CLASS_RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/cap_class_release.lua")));

/// A class's cap -> removed, and every parked job of it -> back to its queue
/// (`scripts/cap_class_clear.lua`).
pub(crate) static CAP_CLASS_CLEAR: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/cap_class_clear.lua")));

/// Due schedule/retry members -> their queues (`scripts/promote.lua`); see [`Promotion`].
pub(crate) static PROMOTE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/promote.lua")));

/// A dead process whose jobs were recovered -> forgotten, only if still dead and empty
/// (`scripts/forget.lua`).
pub(crate) static FORGET: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/forget.lua")));

/// Schedule or retry members -> the dead set, trimmed; a killed batch job a death of its batch
/// (`scripts/kill.lua`, after `batch_events.lua`).
pub(crate) static KILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&code_only(&format!(
        "{BATCH_EVENTS}\n{}",
        include_str!("scripts/kill.lua")
    )))
});

/// A periodic entry's definition -> Redis, its state started if new or changed
/// (`scripts/periodic_register.lua`).
pub(crate) static PERIODIC_REGISTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/periodic_register.lua")));

/// A periodic entry no process declared for a day -> removed, if still so
/// (`scripts/periodic_forget.lua`).
pub(crate) static PERIODIC_FORGET: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/periodic_forget.lua")));

/// A periodic entry's due ticks -> claimed and their jobs pushed, in one step
/// (`scripts/periodic_claim.lua`).
pub(crate) static PERIODIC_CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/periodic_claim.lua")));

/// A periodic entry -> paused or resumed, only if it is declared (`scripts/periodic_pause.lua`).
pub(crate) static PERIODIC_PAUSE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/periodic_pause.lua")));

/// The text of `scripts/unique_push.lua`, for a pipeline that loads it before it runs it.
pub(crate) const UNIQUE_PUSH_SOURCE: &str = include_str!("scripts/unique_push.lua");

/// A unique job's lock taken and the job pushed, or a duplicate refused
/// (`scripts/unique_push.lua`).
pub(crate) static UNIQUE_PUSH: LazyLock<Script> = LazyLock::new(|| Script::new(UNIQUE_PUSH_SOURCE));

/// The text of `scripts/outbox_push.lua`, for a pipeline that loads it before it runs it.
#[cfg(feature = "postgres")]
pub(crate) const OUTBOX_PUSH_SOURCE: &str = include_str!("scripts/outbox_push.lua");

/// A job of the outbox pushed and marked as moved, or nothing when it was moved before
/// (`scripts/outbox_push.lua`).
#[cfg(feature = "postgres")]
pub(crate) static OUTBOX_PUSH: LazyLock<Script> = LazyLock::new(|| Script::new(OUTBOX_PUSH_SOURCE));

/// `scripts/unique_release.lua` without its comments: a unique lock released if the given job
/// still holds it. Small enough to send whole with `EVAL` inside pipelines (a pipeline cannot
/// load a script it finds missing), once per unique job acknowledged.
pub(crate) static UNIQUE_RELEASE_SOURCE: LazyLock<String> =
    LazyLock::new(|| code_only(include_str!("scripts/unique_release.lua")));

/// `scripts/unique_ack.lua` without its comments: a unique job acknowledged and its lock
/// released only if it was still in the working list (sent with `EVAL`, in the batched
/// acknowledgements' pipeline).
pub(crate) static UNIQUE_ACK_SOURCE: LazyLock<String> =
    LazyLock::new(|| code_only(include_str!("scripts/unique_ack.lua")));

/// `scripts/unique_remove.lua` without its comments: a unique job removed from where it waits
/// and its lock released, in one step (sent with `EVAL`, in pipelines).
pub(crate) static UNIQUE_REMOVE_SOURCE: LazyLock<String> =
    LazyLock::new(|| code_only(include_str!("scripts/unique_remove.lua")));

/// `scripts/unique_read.lua` without its comments: one unique lock's holder and time to live
/// (sent with `EVAL`, many to a pipeline).
pub(crate) static UNIQUE_READ_SOURCE: LazyLock<String> =
    LazyLock::new(|| code_only(include_str!("scripts/unique_read.lua")));

/// `scripts/batch_events.lua`: the part batch scripts share (a member's outcome applied,
/// callbacks fired, parents told), prepended to each of them.
const BATCH_EVENTS: &str = include_str!("scripts/batch_events.lua");

/// `scripts/batch_update.lua` (after `batch_events.lua`) without its comments: a batch member's
/// outcome counted and the callbacks whose moment came fired. Loaded with `SCRIPT LOAD` at the
/// head of the pipeline that settles the member, then run with `EVALSHA` ([`BATCH_UPDATE`]).
pub(crate) static BATCH_UPDATE_SOURCE: LazyLock<String> = LazyLock::new(|| {
    code_only(&format!(
        "{BATCH_EVENTS}\n{}",
        include_str!("scripts/batch_update.lua")
    ))
});

/// [`BATCH_UPDATE_SOURCE`] as a script, for its hash.
pub(crate) static BATCH_UPDATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&BATCH_UPDATE_SOURCE));

/// One chunk of a batch's jobs registered and pushed; a new batch created, the last chunk
/// sealing it (`scripts/batch_push.lua`, after `batch_events.lua`).
pub(crate) static BATCH_PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&code_only(&format!(
        "{BATCH_EVENTS}\n{}",
        include_str!("scripts/batch_push.lua")
    )))
});

/// A script's text without its comment lines and blank lines, for scripts sent whole with
/// `EVAL` again and again: the comments stay in the file, not on the wire.
fn code_only(source: &str) -> String {
    source
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !line.is_empty() && !line.starts_with("--")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A queue taken off `queues` and its list moved aside, to be read and deleted
/// (`scripts/queue_clear.lua`).
pub(crate) static QUEUE_CLEAR: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/queue_clear.lua")));

/// One call of a limiter: a slot taken if there is room, by Redis's clock
/// (`scripts/limit_acquire.lua`).
pub(crate) static LIMIT_ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/limit_acquire.lua")));

/// `scripts/limit_read.lua` without its comments: one limiter as the dashboard shows it (sent
/// with `EVAL`, many to a pipeline).
pub(crate) static LIMIT_READ_SOURCE: LazyLock<String> =
    LazyLock::new(|| code_only(include_str!("scripts/limit_read.lua")));

/// A limiter's state and counts cleared by hand (`scripts/limit_reset.lua`).
pub(crate) static LIMIT_RESET: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/limit_reset.lua")));

/// A workflow's push -> its hash written, listed in the index, the index trimmed of old ids
/// that are not running (`scripts/workflow_create.lua`).
pub(crate) static WORKFLOW_CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/workflow_create.lua")));

/// A workflow step's success or death -> recorded in the workflow, and the workflow's state,
/// graph and succeeded steps read back (`scripts/workflow_advance.lua`).
pub(crate) static WORKFLOW_ADVANCE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/workflow_advance.lua")));

/// One call of [`PROMOTE`] being put together: members of one sorted set, each going to its
/// queue (or to the dead set) as an edit of its stored text.
pub(crate) struct Promotion<'a> {
    /// The sorted set, the `queues` set and the dead set.
    keys: [String; 3],
    /// The queue lists, in the order the members' positions point into.
    queue_keys: Vec<String>,
    /// Each member with its queue name, its position in `KEYS` (0: dead) and its edit.
    members: Vec<(&'a [u8], &'a str, usize, Splice<'a>)>,
    /// The bytes the call carries so far.
    bytes: usize,
}

/// What one [`Promotion`] did.
#[derive(Debug, Default)]
pub(crate) struct Promoted {
    /// Members moved to their queue (or to the dead set).
    pub(crate) moved: usize,
    /// Members left in their set because their queue's key holds another type.
    pub(crate) left: usize,
    /// Those queues, each with Redis's error.
    pub(crate) unusable: Vec<(String, String)>,
}

impl<'a> Promotion<'a> {
    /// About the most bytes of members and edits one call carries (a single bigger member is
    /// sent alone): small enough that a call never holds Redis or the shared connection for
    /// long, whatever the size of the jobs.
    pub(crate) const MAX_BYTES: usize = 4 << 20;

    /// The most members one call carries.
    pub(crate) const MAX_MEMBERS: usize = 1_000;

    /// An empty call for members of `set`.
    pub(crate) fn new(keys: &Keys, set: &str) -> Self {
        Self {
            keys: [set.to_owned(), keys.queues(), keys.dead()],
            queue_keys: Vec::new(),
            members: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds `member`, to be pushed to `queue_key` (the list of queue `queue`) as `json`.
    pub(crate) fn push(
        &mut self,
        member: &'a [u8],
        queue: &'a str,
        queue_key: String,
        json: &'a [u8],
    ) {
        let position = match self.queue_keys.iter().position(|key| *key == queue_key) {
            Some(position) => position,
            None => {
                self.queue_keys.push(queue_key);
                self.queue_keys.len() - 1
            }
        };
        // KEYS[4] is the first queue list.
        self.add(member, queue, position + 4, json);
    }

    /// Adds `member`, to be moved to the dead set as `entry`.
    pub(crate) fn bury(&mut self, member: &'a [u8], entry: &'a [u8]) {
        self.add(member, "", 0, entry);
    }

    fn add(&mut self, member: &'a [u8], queue: &'a str, target: usize, json: &'a [u8]) {
        let splice = Splice::between(member, json);
        self.bytes += member.len() + splice.insert.len() + queue.len();
        self.members.push((member, queue, target, splice));
    }

    /// Whether a member of `bytes` still fits: into an empty call always, else within
    /// [`MAX_BYTES`](Self::MAX_BYTES) and [`MAX_MEMBERS`](Self::MAX_MEMBERS).
    pub(crate) fn has_room_for(&self, bytes: usize) -> bool {
        self.members.is_empty()
            || (self.members.len() < Self::MAX_MEMBERS && self.bytes + bytes <= Self::MAX_BYTES)
    }

    /// How many bytes of members and edits it carries.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Runs the call; `now` scores members sent to the dead set.
    pub(crate) async fn run(&self, redis: &Connection, now: Timestamp) -> Result<Promoted, Error> {
        if self.members.is_empty() {
            return Ok(Promoted::default());
        }
        let mut invocation = PROMOTE.prepare_invoke();
        for key in self.keys.iter().chain(&self.queue_keys) {
            invocation.key(key);
        }
        invocation.arg(now.as_epoch_seconds());
        for (member, queue, target, splice) in &self.members {
            invocation
                .arg(*member)
                .arg(*queue)
                .arg(*target)
                .arg(splice.keep_start)
                .arg(splice.keep_end)
                .arg(splice.insert);
        }
        let (moved, left, reported): (usize, usize, Vec<String>) =
            redis.script(&invocation).await?;
        let unusable = reported
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        Ok(Promoted {
            moved,
            left,
            unusable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{UNIQUE_RELEASE_SOURCE, code_only};

    #[test]
    fn scripts_sent_whole_lose_their_comments_only() {
        assert_eq!(
            code_only("-- what it does\n--\nlocal a = 1\n\n  -- why\nreturn a -- kept\n"),
            "local a = 1\nreturn a -- kept"
        );
        assert!(UNIQUE_RELEASE_SOURCE.starts_with("local holder"));
        assert!(
            UNIQUE_RELEASE_SOURCE.len() < 200,
            "{}",
            *UNIQUE_RELEASE_SOURCE
        );
    }
}

//! Sending a batch's jobs: chunks of 1,000, each registered and pushed in one atomic step
//! (`scripts/batch_push.lua`).

use crate::client::Client;
use crate::error::Error;
use crate::jid::Jid;
use crate::payload::Payload;
use crate::redis::scripts;
use crate::timestamp::Timestamp;

use super::Bid;

/// How many jobs one call of the script carries.
pub(crate) const CHUNK: usize = 1_000;

/// What a call of `batch_push.lua` does to the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The first chunk of a new batch: creates it (nothing happens if it exists).
    Create,
    /// A later chunk of a batch being created.
    Chunk,
    /// Jobs added to an existing batch by one of its running jobs.
    Add,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Chunk => "chunk",
            Self::Add => "add",
        }
    }
}

/// One job ready for the script: its jid, queue and JSON (carrying `"bid"`).
pub(crate) type Member = (Jid, String, String);

/// What the batch hash starts with, for [`Mode::Create`].
#[derive(Debug)]
pub(crate) struct Creation {
    /// The token of the batch's creations (derived from its bid), so that a chunk sent again
    /// after a lost reply, or by a creation run again, is known as pushed
    /// (`batch_push.lua`).
    pub(crate) token: String,
    /// The parent batch, if nested.
    pub(crate) parent: Option<Bid>,
    /// Field/value pairs of the batch's hash.
    pub(crate) fields: Vec<(String, String)>,
}

/// Turns `payload` into a member of batch `bid`: `"bid"` set, through the client middleware
/// and checks as any push. `None` when a middleware stopped it.
pub(crate) async fn prepare(
    client: &Client,
    bid: &Bid,
    mut payload: Payload,
    now: Timestamp,
) -> Result<Option<Member>, Error> {
    payload
        .extra
        .insert("bid".to_owned(), bid.as_str().to_owned().into());
    client.prepare_batch_member(payload, now).await
}

/// Sends one chunk (number `chunk`, from 1, of a creation; 0 for [`Mode::Add`]); returns the
/// script's answer (see `batch_push.lua`): 1 done, 0 the batch existed (create), negative:
/// refused. `creation` is the creation's, for [`Mode::Create`] and [`Mode::Chunk`]; its
/// fields are written by [`Mode::Create`] only.
pub(crate) async fn send(
    client: &Client,
    bid: &Bid,
    (mode, chunk, seal): (Mode, usize, bool),
    creation: Option<&Creation>,
    members: &[Member],
) -> Result<i64, Error> {
    let keys = client.keys();
    let mut invocation = scripts::BATCH_PUSH.prepare_invoke();
    for key in keys.batch_keys(bid.as_str()) {
        invocation.key(key);
    }
    invocation
        .key(keys.batches())
        .key(keys.queues())
        .key(keys.batch_added(bid.as_str()));
    let mut queues: Vec<&str> = Vec::new();
    for (_, queue, _) in members {
        if !queues.contains(&queue.as_str()) {
            queues.push(queue);
        }
    }
    for queue in &queues {
        invocation.key(keys.queue(queue));
    }
    invocation
        .arg(mode.as_str())
        .arg(super::now_ms())
        .arg(keys.prefix())
        .arg(if seal { "1" } else { "0" });
    let parent = creation
        .and_then(|creation| creation.parent.as_ref())
        .map_or("", Bid::as_str);
    invocation
        .arg(parent)
        .arg(creation.map_or("", |creation| creation.token.as_str()))
        .arg(chunk);
    let fields = match creation {
        Some(creation) if mode == Mode::Create => &creation.fields[..],
        _ => &[][..],
    };
    invocation.arg(fields.len());
    for (field, value) in fields {
        invocation.arg(field).arg(value);
    }
    for (jid, queue, json) in members {
        // KEYS[8] is the first queue list.
        let position = queues.iter().position(|q| q == queue).unwrap_or_default() + 8;
        invocation.arg(position).arg(jid.as_str()).arg(json);
    }
    // Safe to send again after a broken connection: a creation's chunk is pushed once (its
    // number is kept); a job added by a running job once (its jid, derived from the adding
    // job's, is kept in the batch's `added` set).
    client.redis().script::<i64>(&invocation).await
}

/// Refuses a batch while a `jobs::testing` mode is on: its counts and callbacks live in Redis,
/// which those modes keep jobs away from.
pub(crate) fn refuse_in_testing_mode(action: &'static str, bid: &Bid) -> Result<(), Error> {
    match crate::testing::active() {
        None => Ok(()),
        Some(_) => Err(Error::Batch {
            action,
            bid: bid.to_string(),
            reason: "jobs::testing's fake and inline modes do not run batches (a batch's counts \
                     and callbacks live in Redis); test code that makes batches against a Redis \
                     with a worker, outside those modes"
                .to_owned(),
        }),
    }
}

/// The error for a refusal `code` of the script, for batch `bid` (`parent`: its parent).
pub(crate) fn refusal(code: i64, action: &'static str, bid: &Bid, parent: Option<&Bid>) -> Error {
    let parent = parent.map_or_else(String::new, Bid::to_string);
    let reason = match code {
        -1 => "it does not exist (it was never created, or its retention ran out); create a \
               new batch with jobs::Batch::new()"
            .to_owned(),
        -2 => "its success callback already fired, so it takes no more jobs; push them in a \
               new batch (or in a child batch of a batch still running)"
            .to_owned(),
        -3 => format!(
            "its parent batch {parent} does not exist (never created, or its retention ran \
             out); create it without .parent(..), or under a live batch"
        ),
        -4 => format!(
            "its parent batch {parent} already succeeded, so it takes no child batch; create \
             it without .parent(..)"
        ),
        other => format!("the batch script answered {other}, which this version does not know"),
    };
    Error::Batch {
        action,
        bid: bid.to_string(),
        reason,
    }
}

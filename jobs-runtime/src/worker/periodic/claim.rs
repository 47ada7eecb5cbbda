//! Claiming an entry's due ticks and pushing their jobs in one step
//! (`scripts/periodic_claim.lua`), and reading what the script said.

use chrono::{DateTime, Utc};

use super::GRACE;
use crate::client::Client;
use crate::error::Error;
use crate::periodic::{Entry, from_millis};
use crate::redis::scripts;

/// What the claim script said.
#[derive(Debug)]
pub(super) enum Outcome {
    /// It ran: these ticks were pushed, and `last` is the newest tick claimed.
    Ran {
        /// The newest tick claimed.
        last: DateTime<Utc>,
        /// The ticks pushed.
        pushed: Vec<DateTime<Utc>>,
        /// How far this process's clock runs ahead of Redis's (negative: behind).
        ahead: chrono::TimeDelta,
    },
    /// The entry is paused: the ticks up to `last` passed unrun.
    Paused {
        /// The newest tick passed over.
        last: DateTime<Utc>,
    },
    /// Another definition is in force.
    Superseded,
    /// The queue's key holds another type.
    QueueRefused {
        /// Redis's error.
        reason: String,
    },
}

/// Claims `ticks` of `entry` and pushes their jobs, in one step.
pub(super) async fn claim(
    client: &Client,
    entry: &Entry,
    ticks: &[DateTime<crate::periodic::Tz>],
) -> Result<Outcome, Error> {
    let keys = client.keys();
    let mut invocation = scripts::PERIODIC_CLAIM.prepare_invoke();
    invocation
        .key(keys.periodic(&entry.name))
        .key(keys.queue(&entry.queue))
        .key(keys.queues())
        .arg(entry.definition())
        .arg(&entry.queue)
        .arg(entry.catch_up.as_str())
        .arg(GRACE.as_millis() as u64);
    for tick in ticks {
        // A tick whose job a middleware stops, or that cannot be built, is still claimed, and
        // not pushed: it must not hold back the ticks after it.
        let prepared = match entry.payload_for(*tick) {
            Ok(payload) => client.prepare_now(payload).await,
            Err(error) => Err(error),
        };
        let (jid, json) = match prepared {
            Ok(Some((jid, json))) => (jid.to_string(), json),
            Ok(None) => (String::new(), String::new()),
            Err(error) => {
                tracing::error!(entry = %entry.name, %tick, %error, "cannot build a periodic job; its tick passes unrun");
                (String::new(), String::new())
            }
        };
        invocation.arg(tick.timestamp_millis()).arg(jid).arg(json);
    }
    let reply: Vec<redis::Value> = client.redis().script(&invocation).await?;
    Ok(read_outcome(&reply))
}

/// Reads the claim script's reply: `{status, last, Redis's now, ticks or an error…}`.
fn read_outcome(reply: &[redis::Value]) -> Outcome {
    let status = reply.first().and_then(|value| match value {
        redis::Value::Int(status) => Some(*status),
        _ => None,
    });
    let text = |value: &redis::Value| match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        redis::Value::SimpleString(text) => text.clone(),
        redis::Value::Int(number) => number.to_string(),
        _ => String::new(),
    };
    let millis = |value: &redis::Value| from_millis(&text(value));
    let last = reply
        .get(1)
        .and_then(millis)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let ahead = reply
        .get(2)
        .and_then(millis)
        .map_or(chrono::TimeDelta::zero(), |redis_now| {
            Utc::now() - redis_now
        });
    match status {
        Some(1) => Outcome::Ran {
            last,
            pushed: reply
                .get(3..)
                .unwrap_or_default()
                .iter()
                .filter_map(millis)
                .collect(),
            ahead,
        },
        Some(0) => Outcome::Paused { last },
        Some(-1) => Outcome::Superseded,
        _ => Outcome::QueueRefused {
            reason: reply.get(3).map(text).unwrap_or_default(),
        },
    }
}

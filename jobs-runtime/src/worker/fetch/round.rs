//! One fetch round: the fetch script (`scripts/fetch.lua`) moves jobs from the queues into the
//! working list, skipping the paused ones, and says which of the queues asked are paused, in
//! the one round trip a fetch already costs.

use std::collections::HashSet;

use redis::{FromRedisValue, ParsingError, Value};
use tokio::time::Instant;

use crate::error::Error;
use crate::redis::scripts;
use crate::worker::shared::Shared;
use crate::worker::unit::Fetched;

/// What one round took, and what it saw.
#[derive(Debug)]
pub(crate) struct Round {
    /// The jobs moved into the working list, oldest first.
    pub(crate) jobs: Vec<Fetched>,
    /// The queues asked that are named in `paused`.
    pub(crate) paused: HashSet<String>,
    /// When the round was sent: what it says of the paused queues is at least this recent.
    pub(crate) asked_at: Instant,
}

/// Moves up to `wanted` jobs (none: only looks at which queues are paused) from the queues
/// `keys` (named `names`), in that order, into the working list in one atomic step.
pub(crate) async fn run(
    shared: &Shared,
    keys: &[String],
    names: &[String],
    wanted: usize,
) -> Result<Round, Error> {
    let mut invocation = scripts::FETCH.prepare_invoke();
    invocation
        .key(&shared.working)
        .key(shared.keys().workers())
        .key(shared.keys().paused());
    for key in keys {
        invocation.key(key);
    }
    invocation.arg(wanted).arg(&shared.identity);
    for name in names {
        invocation.arg(name);
    }
    let asked_at = Instant::now();
    let reply: Reply = shared.redis().script_once(&invocation).await?;
    let queue = |position: usize| position.checked_sub(1).and_then(|index| names.get(index));
    let mut jobs = Vec::with_capacity(reply.taken.len());
    for (position, json) in reply.taken {
        match queue(position) {
            Some(queue) => jobs.push(Fetched::new(queue.clone(), json)),
            // `json` is the error message of a key the script could not read.
            None => tracing::error!(
                error = %String::from_utf8_lossy(&json),
                "cannot take jobs from a queue"
            ),
        }
    }
    let paused = reply
        .paused
        .into_iter()
        .filter_map(|position| queue(position).cloned())
        .collect();
    Ok(Round {
        jobs,
        paused,
        asked_at,
    })
}

/// The script's reply: its sections by position, later ones ignored (see the script's header).
#[derive(Debug, PartialEq)]
struct Reply {
    /// `{queue position, job}` pairs; position 0 carries an error message instead of a job.
    /// Bytes: one entry that is not UTF-8 must not fail the whole reply (it is buried alone).
    taken: Vec<(usize, Vec<u8>)>,
    /// The positions of the paused queues.
    paused: Vec<usize>,
}

impl FromRedisValue for Reply {
    fn from_redis_value(value: Value) -> Result<Self, ParsingError> {
        let Value::Array(sections) = value else {
            return Err(ParsingError::from(
                "the fetch script's reply is not an array",
            ));
        };
        let mut sections = sections.into_iter();
        let mut section = || sections.next().unwrap_or(Value::Array(Vec::new()));
        let taken = Vec::<(usize, Vec<u8>)>::from_redis_value(section())?;
        let paused = Vec::<usize>::from_redis_value(section())?;
        Ok(Self { taken, paused })
    }
}

#[cfg(test)]
mod tests {
    use redis::{FromRedisValue, Value};

    use super::Reply;

    fn data(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn reads_the_taken_jobs_and_the_paused_positions() {
        let taken = Value::Array(vec![
            Value::Array(vec![Value::Int(1), data("{\"jid\":\"a\"}")]),
            Value::Array(vec![Value::Int(0), data("queue:x: WRONGTYPE")]),
        ]);
        let paused = Value::Array(vec![Value::Int(2), Value::Int(3)]);
        let reply = Reply::from_redis_value(Value::Array(vec![taken, paused])).unwrap();
        assert_eq!(
            reply,
            Reply {
                taken: vec![
                    (1, b"{\"jid\":\"a\"}".to_vec()),
                    (0, b"queue:x: WRONGTYPE".to_vec())
                ],
                paused: vec![2, 3],
            }
        );
    }

    #[test]
    fn ignores_sections_it_does_not_know_and_empty_ones() {
        let empty = || Value::Array(Vec::new());
        let reply =
            Reply::from_redis_value(Value::Array(vec![empty(), empty(), data("later")])).unwrap();
        assert_eq!(
            reply,
            Reply {
                taken: Vec::new(),
                paused: Vec::new(),
            }
        );
        assert!(Reply::from_redis_value(Value::Int(1)).is_err());
    }
}

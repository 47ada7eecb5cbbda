//! One fetch round: the fetch script (`scripts/fetch.lua`) moves jobs from the queues into the
//! working list, skipping the paused ones and taking no more of a capped queue's jobs than its
//! room (each with a lease), and says which of the queues asked are paused and which capped, in
//! the round trip a fetch already costs (a fetch on many queues may take two rounds, the first
//! asking about some of them: `look`).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// The capped queues asked, and the room each had left after this round.
    pub(crate) capped: Vec<Capped>,
    /// When the round was sent: what it says of the paused queues is at least this recent.
    pub(crate) asked_at: Instant,
    /// How many jobs it asked for: the caller's number, or no more than the free slots once it
    /// found a queue capped that the worker had not known of.
    pub(crate) wanted: usize,
    /// How many of its queues, in its order, its jobs reached: the position (from 1) of the
    /// furthest queue it took a job from; 0 when it took none.
    pub(crate) reach: usize,
    /// The positions (from 1, in its order) of the queues it took jobs from, each once.
    pub(crate) sources: Vec<usize>,
    /// The positions (from 1, in its order) of the queues asked that hold jobs after it
    /// (paused ones left out), when it was asked to report them and found no more than it was
    /// asked for; `None` otherwise.
    pub(crate) holders: Option<Vec<usize>>,
}

/// A capped queue, as one round saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capped {
    /// The queue's name.
    pub(crate) queue: String,
    /// Its cap.
    pub(crate) cap: u64,
    /// Its room left after the round: 0 when its jobs wait for a running one to end.
    pub(crate) room: u64,
    /// How many of its jobs wait in it after the round (`LLEN`): a queue with no room is full
    /// (worth asking again soon) only while jobs wait in it.
    pub(crate) waiting: u64,
}

/// The keys the fetch script reads for one queue, made once per fetcher rather than once per
/// round (a worker on 1,000 queues would otherwise format 1,000 key names every round, and
/// 2,000 more for those found capped).
#[derive(Debug)]
pub(crate) struct QueueKeys {
    /// The queue's name (`<q>`).
    pub(crate) name: std::sync::Arc<str>,
    /// Its list, `queue:<q>`.
    pub(crate) list: String,
    /// Its global cap.
    pub(crate) cap: String,
    /// Its cap's leases.
    pub(crate) leases: String,
    /// Whether a round found it capped: from then on rounds pass its cap and leases keys (the
    /// script cannot read a cap whose keys it was not given). Never cleared: a queue that was
    /// capped once costs two keys a round after its cap is cleared.
    known_capped: AtomicBool,
}

impl QueueKeys {
    /// The keys of the queue `name`.
    pub(crate) fn new(shared: &Shared, name: &str) -> Self {
        let keyring = shared.keys();
        Self {
            name: name.into(),
            list: keyring.queue(name),
            cap: keyring.cap_queue(name),
            leases: keyring.cap_queue_leases(name),
            known_capped: AtomicBool::new(false),
        }
    }

    /// Whether rounds pass its cap keys.
    fn known_capped(&self) -> bool {
        self.known_capped.load(Ordering::Relaxed)
    }
}

/// Moves up to `wanted` jobs (none: only looks at which queues are paused or capped) from the
/// queues `queues` into the working list in one atomic step: first as many as `drawn` says
/// from each queue it names (`(index into queues, jobs)`, weighted rounds), then what is still
/// wanted from the queues in their order. A capped queue's job is taken only while fewer than
/// `free` jobs were taken, so that it starts at once.
///
/// A round passes the cap keys of the queues found capped before alone. One that finds another
/// queue capped takes nothing and is sent again with that queue's keys: one more round trip
/// when a worker first meets a cap, so that no round passes over a capped queue's jobs or
/// takes them without a lease; the try sent again takes no more than `free` jobs, as a worker
/// with a capped queue does. Only the last try's messages (keys it could not read) are logged.
/// With `holders` above 0, the round also says which of its queues hold jobs after it, when no
/// more than `holders` do ([`Round::holders`]).
pub(crate) async fn run(
    shared: &Shared,
    queues: &[&QueueKeys],
    drawn: &[(usize, usize)],
    wanted: usize,
    free: usize,
    holders: usize,
) -> Result<Round, Error> {
    let mut wanted = wanted;
    loop {
        let (round, messages, newly_capped) =
            run_once(shared, queues, drawn, wanted, free, holders).await?;
        // The script names only queues whose keys this try was not given (then it took
        // nothing), and each is marked before the next try is sent: so each try passes more
        // keys than the one before, and this ends within as many tries as there are queues,
        // once no cap is set between two tries.
        let mut resend = false;
        for position in newly_capped {
            if let Some(queue) = position.checked_sub(1).and_then(|index| queues.get(index)) {
                queue.known_capped.store(true, Ordering::Relaxed);
                resend = true;
            }
        }
        if !resend {
            for message in messages {
                tracing::error!(
                    error = %String::from_utf8_lossy(&message),
                    "cannot take jobs from a queue"
                );
            }
            return Ok(round);
        }
        // A worker with a capped queue takes no job ahead of its free slots (see
        // `Fetcher::prefetch`): nor does the try that follows the finding.
        wanted = wanted.min(free);
    }
}

/// One call of the fetch script: the round, the messages of the keys it could not read, and
/// the positions (from 1) of the queues it found capped whose cap keys it was not given (then
/// it took no job).
async fn run_once(
    shared: &Shared,
    queues: &[&QueueKeys],
    drawn: &[(usize, usize)],
    wanted: usize,
    free: usize,
    holders: usize,
) -> Result<(Round, Vec<Vec<u8>>, Vec<usize>), Error> {
    let keyring = shared.keys();
    let capped_keys: Vec<(usize, &QueueKeys)> = queues
        .iter()
        .enumerate()
        .filter(|(_, queue)| queue.known_capped())
        .map(|(index, queue)| (index + 1, *queue))
        .collect();
    // Written straight into one buffer: a worker on 1,000 queues passes 1,000 keys a round,
    // which a `ScriptInvocation` would allocate one by one and copy again.
    let size: usize = queues.iter().map(|queue| queue.list.len()).sum::<usize>()
        + capped_keys
            .iter()
            .map(|(_, queue)| queue.cap.len() + queue.leases.len())
            .sum::<usize>();
    // Positions from 1, as the script counts them.
    let mut picks = String::with_capacity(8 * drawn.len());
    for (index, jobs) in drawn {
        let _ = write!(picks, "{} {jobs} ", index + 1);
    }
    let mut positions = String::with_capacity(6 * capped_keys.len());
    for (position, _) in &capped_keys {
        let _ = write!(positions, "{position} ");
    }
    let list_prefix = keyring.queue("");
    let mut command = crate::redis::evalsha(
        &scripts::FETCH,
        4 + queues.len() + 2 * capped_keys.len(),
        9,
        size + picks.len()
            + positions.len()
            + list_prefix.len()
            + shared.working.len()
            + shared.identity.len()
            + 16 * (12 + queues.len() + 2 * capped_keys.len()),
    );
    command
        .arg(&shared.working)
        .arg(keyring.workers())
        .arg(keyring.paused())
        .arg(keyring.caps());
    for queue in queues {
        command.arg(&queue.list);
    }
    for (_, queue) in &capped_keys {
        command.arg(&queue.cap).arg(&queue.leases);
    }
    // Counters for as many leases as jobs could be leased: none is ever used twice.
    let first_lease = shared.leases.reserve(free.min(wanted));
    command
        .arg(wanted)
        .arg(&shared.identity)
        .arg(free)
        .arg(first_lease)
        .arg(shared.leases.lifetime_ms())
        .arg(&picks)
        .arg(&list_prefix)
        .arg(&positions)
        .arg(holders);
    let asked_at = Instant::now();
    let reply: Reply = shared
        .redis()
        .evalsha_once(&scripts::FETCH, &command)
        .await?;
    let queue = |position: usize| {
        position
            .checked_sub(1)
            .and_then(|index| queues.get(index))
            .map(|queue| &queue.name)
    };
    // Only rounds that take from a capped queue grant leases: the others skip the look-ups.
    let mut leases: std::collections::HashMap<usize, String> = reply.leases.into_iter().collect();
    let mut jobs = Vec::with_capacity(reply.taken.len());
    let mut messages = Vec::new();
    let mut reach = 0;
    let mut sources: Vec<usize> = Vec::new();
    for (index, (position, json)) in reply.taken.into_iter().enumerate() {
        match queue(position) {
            Some(queue) => {
                reach = reach.max(position);
                // The jobs come in runs by queue: a few runs a round.
                if sources.last() != Some(&position) && !sources.contains(&position) {
                    sources.push(position);
                }
                let lease = (!leases.is_empty())
                    .then(|| leases.remove(&(index + 1)))
                    .flatten()
                    .map(|member| crate::cap::Lease::new(queue.to_string(), member));
                if let Some(lease) = &lease {
                    shared.leases.hold(&json, lease);
                }
                jobs.push(Fetched::new(queue.clone(), json).with_lease(lease));
            }
            // `json` is the error message of a key the script could not read.
            None => messages.push(json),
        }
    }
    let paused = reply
        .paused
        .into_iter()
        .filter_map(|position| queue(position).map(ToString::to_string))
        .collect();
    let capped = reply
        .capped
        .into_iter()
        .filter_map(|(position, cap, room, waiting)| {
            queue(position).map(|queue| Capped {
                queue: queue.to_string(),
                cap,
                room,
                waiting,
            })
        })
        .collect();
    let round = Round {
        jobs,
        paused,
        capped,
        asked_at,
        wanted,
        reach,
        sources,
        // `[0]`: more than asked for.
        holders: (holders > 0 && reply.holders != [0]).then_some(reply.holders),
    };
    Ok((round, messages, reply.unkeyed))
}

/// The script's reply: its sections by position, later ones ignored (see the script's header).
#[derive(Debug, PartialEq)]
struct Reply {
    /// `{queue position, job}` pairs; position 0 carries an error message instead of a job.
    /// Bytes: one entry that is not UTF-8 must not fail the whole reply (it is buried alone).
    taken: Vec<(usize, Vec<u8>)>,
    /// The positions of the paused queues.
    paused: Vec<usize>,
    /// `{index into taken (1-based), lease member}` for each job taken from a capped queue.
    leases: Vec<(usize, String)>,
    /// `{queue position, cap, room left, jobs waiting}` for each capped queue asked.
    capped: Vec<(usize, u64, u64, u64)>,
    /// The positions of the capped queues whose cap keys the round was not given.
    unkeyed: Vec<usize>,
    /// The positions of the queues holding jobs after the round, when asked and no more than
    /// asked for hold jobs; `[0]` when more do.
    holders: Vec<usize>,
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
        let entries = Vec::<Vec<u8>>::from_redis_value(section())?;
        let paused = Vec::<usize>::from_redis_value(section())?;
        let leases = Vec::<(usize, String)>::from_redis_value(section())?;
        let capped = Vec::<(usize, u64, u64, u64)>::from_redis_value(section())?;
        let runs = Vec::<usize>::from_redis_value(section())?;
        let unkeyed = Vec::<usize>::from_redis_value(section())?;
        let holders = Vec::<usize>::from_redis_value(section())?;
        let taken = with_positions(entries, &runs)?;
        Ok(Self {
            taken,
            paused,
            leases,
            capped,
            unkeyed,
            holders,
        })
    }
}

/// Each of `entries` with the queue position it came from, by `runs` (`{position, count}`
/// flat, in the entries' order: section 5 of the reply).
fn with_positions(
    entries: Vec<Vec<u8>>,
    runs: &[usize],
) -> Result<Vec<(usize, Vec<u8>)>, ParsingError> {
    let counted = runs
        .chunks_exact(2)
        .try_fold(0_usize, |sum, run| sum.checked_add(run[1]));
    if !runs.len().is_multiple_of(2) || counted != Some(entries.len()) {
        return Err(ParsingError::from(
            "the fetch script's reply does not say which queue each of its jobs came from",
        ));
    }
    let positions = runs
        .chunks_exact(2)
        .flat_map(|run| std::iter::repeat_n(run[0], run[1]));
    Ok(positions.zip(entries).collect())
}

#[cfg(test)]
mod tests {
    use redis::{FromRedisValue, Value};

    use super::Reply;

    fn data(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn ints(values: &[i64]) -> Value {
        Value::Array(values.iter().map(|&value| Value::Int(value)).collect())
    }

    fn empty() -> Value {
        Value::Array(Vec::new())
    }

    #[test]
    fn reads_the_taken_jobs_their_queues_and_the_paused_positions() {
        let taken = Value::Array(vec![
            data("{\"jid\":\"a\"}"),
            data("{\"jid\":\"b\"}"),
            data("queue:x: WRONGTYPE"),
            data("{\"jid\":\"c\"}"),
        ]);
        let from = ints(&[1, 2, 0, 1, 3, 1]);
        let reply = Reply::from_redis_value(Value::Array(vec![
            taken,
            ints(&[2, 3]),
            empty(),
            empty(),
            from,
        ]))
        .unwrap();
        assert_eq!(
            reply,
            Reply {
                taken: vec![
                    (1, b"{\"jid\":\"a\"}".to_vec()),
                    (1, b"{\"jid\":\"b\"}".to_vec()),
                    (0, b"queue:x: WRONGTYPE".to_vec()),
                    (3, b"{\"jid\":\"c\"}".to_vec()),
                ],
                paused: vec![2, 3],
                leases: Vec::new(),
                capped: Vec::new(),
                unkeyed: Vec::new(),
                holders: Vec::new(),
            }
        );
    }

    #[test]
    fn reads_the_leases_the_capped_queues_those_without_cap_keys_and_the_holders() {
        let taken = Value::Array(vec![data("{\"jid\":\"a\"}"), data("{\"jid\":\"b\"}")]);
        let leases = Value::Array(vec![Value::Array(vec![Value::Int(2), data("h:1:a|7")])]);
        let capped = Value::Array(vec![ints(&[1, 2, 0, 7]), ints(&[3, 5, 4, 0])]);
        let reply = Reply::from_redis_value(Value::Array(vec![
            taken,
            empty(),
            leases,
            capped,
            ints(&[2, 1, 1, 1]),
            ints(&[4]),
            ints(&[1, 3]),
            data("a later section"),
        ]))
        .unwrap();
        assert_eq!(reply.leases, vec![(2, "h:1:a|7".to_owned())]);
        assert_eq!(reply.capped, vec![(1, 2, 0, 7), (3, 5, 4, 0)]);
        assert_eq!(reply.unkeyed, vec![4]);
        assert_eq!(reply.holders, vec![1, 3]);
        let positions: Vec<usize> = reply.taken.iter().map(|(position, _)| *position).collect();
        assert_eq!(positions, vec![2, 1]);
    }

    #[test]
    fn ignores_sections_it_does_not_know_and_empty_ones() {
        let reply = Reply::from_redis_value(Value::Array(vec![
            empty(),
            empty(),
            empty(),
            empty(),
            empty(),
            empty(),
            empty(),
            data("later"),
        ]))
        .unwrap();
        assert_eq!(
            reply,
            Reply {
                taken: Vec::new(),
                paused: Vec::new(),
                leases: Vec::new(),
                capped: Vec::new(),
                unkeyed: Vec::new(),
                holders: Vec::new(),
            }
        );
        assert!(Reply::from_redis_value(Value::Int(1)).is_err());
    }

    #[test]
    fn a_job_whose_queue_is_not_said_is_an_error() {
        let taken = || Value::Array(vec![data("{}"), data("{}")]);
        let overflowing = Value::Array(vec![
            Value::Int(1),
            Value::Int(i64::MAX),
            Value::Int(1),
            Value::Int(i64::MAX),
            Value::Int(1),
            Value::Int(4),
        ]);
        for from in [
            ints(&[1, 1]),
            ints(&[1, 3]),
            ints(&[1, 1, 2]),
            empty(),
            overflowing,
        ] {
            let reply = Reply::from_redis_value(Value::Array(vec![
                taken(),
                empty(),
                empty(),
                empty(),
                from,
            ]));
            assert!(reply.is_err(), "{reply:?}");
        }
    }
}

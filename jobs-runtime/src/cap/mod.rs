//! Global caps: at most `n` of a queue's jobs running at once, across every process.
//!
//! A cap lives in Redis (`jobs:cap:queue:<name>`, listed in `jobs:caps`), so every worker
//! enforces the same number and a dashboard can set or clear it while workers run. It is
//! enforced where jobs are taken: the fetch script (`scripts/fetch.lua`) drops a capped queue's
//! expired leases, takes at most its free room, and adds one lease per job taken to
//! `jobs:lease:queue:<name>`, all in the step that moves the jobs. A capped queue's jobs that
//! find no room wait in their queue, in their order; other queues keep flowing.
//!
//! A lease is `<identity>|<counter>`, unique per job taken, and runs out after the heartbeat's TTL
//! unless the heartbeat renews it ([`Leases::renew`]): every lease the process holds is renewed,
//! its job running or waiting for a slot ([`Leases`] keeps them all, by the job's bytes). It is
//! released in the step that settles its job: the batched acknowledgement, and `scripts/settle.lua`
//! for a retry, a death, a hand-back or a reschedule; shutdown releases whatever is left. A process
//! killed with `kill -9` stops renewing, so its leases run out one heartbeat TTL after its last
//! renewal; crash recovery drops them sooner ([`forget`]). `docs/limits.md` ("Global caps")
//! describes it for users; the admin API is [`crate::api::Caps`]. Caps per job class are in
//! [`class`]: their leases are held by a running task, never by a pending job (see [`LeaseKind`]).

pub(crate) mod class;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::client::Client;
use crate::error::Error;
use crate::redis::keys::Keys;
use crate::redis::scripts;

/// The separator between a lease's identity and its counter. `scripts/fetch.lua` writes the
/// same character into the members it adds (`ARGV[2] .. '|' .. counter`): the two must match,
/// or [`forget`] would miss the leases of a dead process.
const SEPARATOR: char = '|';

/// What a lease is held on: a queue's cap or a job class's. The two never share a key
/// (`jobs:lease:queue:` and `jobs:lease:class:`), and they are held differently:
///
/// - a **queue** lease is granted when a job is *taken* (the fetch script, a claim) and follows
///   the job while it is pending or running: the sweep of the working list re-attaches it to a
///   job found again (`confirm_leases`), releases it when its job left the list
///   (`release_orphans`), and a hand-back or a settle releases it;
/// - a **class** lease is granted when a job is about to *start* (`cap_class_take.lua`) and held
///   by the running task alone, which releases it when the job's body ended
///   (`cap_class_release.lua`). No pending job ever holds one, so the sweep and the shutdown's
///   hand-back leave class leases alone (only renewal and the final release of everything left
///   see them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum LeaseKind {
    /// On a capped queue (`jobs:lease:queue:<name>`).
    Queue,
    /// On a capped job class (`jobs:lease:class:<Class>`).
    Class,
}

/// A lease one job holds on a cap: on its queue's from when it is taken until it is settled,
/// or on its class's while it runs (see [`LeaseKind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Whether it is on a queue's cap or a class's.
    pub(crate) kind: LeaseKind,
    /// The capped queue, or class.
    pub(crate) name: String,
    /// Its member in the cap's leases: `<identity>|<counter>`.
    pub(crate) member: String,
}

impl Lease {
    /// The lease `member` on `queue`'s cap.
    pub(crate) fn new(queue: impl Into<String>, member: impl Into<String>) -> Self {
        Self {
            kind: LeaseKind::Queue,
            name: queue.into(),
            member: member.into(),
        }
    }

    /// The lease `member` on job class `class`'s cap.
    pub(crate) fn of_class(class: impl Into<String>, member: impl Into<String>) -> Self {
        Self {
            kind: LeaseKind::Class,
            name: class.into(),
            member: member.into(),
        }
    }

    /// Whether it is a queue's lease: the only kind the sweep of the working list and the
    /// hand-backs deal with (see [`LeaseKind`]).
    pub(crate) fn is_queue(&self) -> bool {
        self.kind == LeaseKind::Queue
    }

    /// The sorted set the lease is in.
    pub(crate) fn key(&self, keys: &Keys) -> String {
        leases_key(keys, self.kind, &self.name)
    }

    /// Adds its release (`ZREM`) to `pipeline`. The member is this job's own, so releasing it
    /// never frees another job's slot, whether or not the job was still in the working list.
    pub(crate) fn add_release_to(&self, pipeline: &mut redis::Pipeline, keys: &Keys) {
        pipeline
            .cmd("ZREM")
            .arg(self.key(keys))
            .arg(&self.member)
            .ignore();
    }
}

/// The sorted set of the leases on `name`'s cap, a queue's or a class's.
fn leases_key(keys: &Keys, kind: LeaseKind, name: &str) -> String {
    match kind {
        LeaseKind::Queue => keys.cap_queue_leases(name),
        LeaseKind::Class => keys.cap_class_leases(name),
    }
}

/// Keeps only the queue leases of `noted` (a [`Leases::snapshot`]), dropping the jobs left with
/// none: what the sweep of the working list and the shutdown's hand-back may re-attach to a job
/// or release as orphans. A class lease is its running task's alone (see [`LeaseKind`]).
pub(crate) fn queue_leases_only(noted: &mut HashMap<Vec<u8>, Vec<Lease>>) {
    noted.retain(|_, leases| {
        leases.retain(Lease::is_queue);
        !leases.is_empty()
    });
}

/// This process's side of the caps: its lease counter, its leases' lifetime, the signal that
/// one of its leases was released, and every lease it holds.
#[derive(Debug)]
pub(crate) struct Leases {
    /// How long a lease lives without renewal (the heartbeat TTL).
    lifetime: Duration,
    /// Every lease this process holds (or may hold: a claim whose reply was lost), by the
    /// bytes of the job holding it: added when a fetch round or a claim grants one, removed
    /// once the step releasing it landed. The heartbeat renews all of them, whether their job
    /// runs or waits for a slot; a sweep re-attaches them to the jobs it finds again; shutdown
    /// releases those left.
    held: Mutex<HashMap<Vec<u8>, Vec<Lease>>>,
    /// The next lease counter.
    next: AtomicU64,
    /// Told when a lease of this process was released, so that a fetcher waiting for room on
    /// a full queue asks again at once instead of after its bounded wait.
    freed: tokio::sync::Notify,
}

impl Leases {
    /// Leases living `lifetime` unless renewed.
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            next: AtomicU64::new(0),
            freed: tokio::sync::Notify::new(),
            held: Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Vec<Lease>>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that the job stored as `json` holds `lease` (a fetch round or a claim granted it,
    /// or may have: a claim is noted before it is sent).
    pub(crate) fn hold(&self, json: &[u8], lease: &Lease) {
        self.held()
            .entry(json.to_vec())
            .or_default()
            .push(lease.clone());
    }

    /// Notes that `lease`, held by the job stored as `json`, is released (the step releasing it
    /// landed) or was never granted.
    pub(crate) fn let_go(&self, json: &[u8], lease: &Lease) {
        let mut held = self.held();
        if let Some(leases) = held.get_mut(json) {
            if let Some(index) = leases.iter().position(|known| known == lease) {
                leases.swap_remove(index);
            }
            if leases.is_empty() {
                held.remove(json);
            }
        }
    }

    /// Every lease held now, by the bytes of its job.
    pub(crate) fn snapshot(&self) -> HashMap<Vec<u8>, Vec<Lease>> {
        self.held().clone()
    }

    /// Adds to `pipeline` the release of every lease held, and forgets them all (shutdown,
    /// once no job runs or waits any more); `false` when none was held.
    pub(crate) fn add_release_of_all_to(
        &self,
        pipeline: &mut redis::Pipeline,
        keys: &Keys,
    ) -> bool {
        let held = std::mem::take(&mut *self.held());
        let mut any = false;
        for lease in held.values().flatten() {
            lease.add_release_to(pipeline, keys);
            any = true;
        }
        any
    }

    /// Says that a lease of this process was released (its settle or acknowledgement landed).
    /// Kept until someone waits, so a release just before the wait is not missed.
    pub(crate) fn freed(&self) {
        self.freed.notify_one();
    }

    /// Waits until a lease of this process is released (or was since the last wait).
    pub(crate) async fn wait_freed(&self) {
        self.freed.notified().await;
    }

    /// A lease's lifetime in ms, as the scripts take it.
    pub(crate) fn lifetime_ms(&self) -> u64 {
        u64::try_from(self.lifetime.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Reserves `count` counters for one step's leases; returns the first.
    pub(crate) fn reserve(&self, count: usize) -> u64 {
        self.next.fetch_add(count as u64, Ordering::Relaxed)
    }

    /// The member of the lease numbered `counter` of process `identity`.
    pub(crate) fn member(identity: &str, counter: u64) -> String {
        format!("{identity}{SEPARATOR}{counter}")
    }

    /// Renews every lease held, whether its job runs or waits for a slot: one run of
    /// `scripts/cap_renew.lua` (`EVALSHA`, loaded on `NOSCRIPT`) per capped queue or class, by
    /// Redis's clock; nothing when no lease is held. Called by the heartbeat after each beat: per beat,
    /// never per job. Returns how many leases were renewed.
    pub(crate) async fn renew(&self, client: &Client) -> Result<u64, Error> {
        let mut by_cap: BTreeMap<(LeaseKind, String), Vec<String>> = BTreeMap::new();
        for lease in self.held().values().flatten() {
            by_cap
                .entry((lease.kind, lease.name.clone()))
                .or_default()
                .push(lease.member.clone());
        }
        let keys = client.keys();
        let mut renewed = 0;
        for ((kind, name), members) in by_cap {
            let mut invocation = scripts::CAP_RENEW.prepare_invoke();
            invocation
                .key(leases_key(keys, kind, &name))
                .arg(self.lifetime_ms())
                .arg(members);
            renewed += client.redis().script::<u64>(&invocation).await?;
        }
        Ok(renewed)
    }
}

/// Refuses a cap a queue cannot have: a cap of 0 (it would stop the queue for good: pause it
/// instead) or an empty queue name.
pub(crate) fn check(queue: &str, cap: u32) -> Result<(), Error> {
    let reason = if queue.is_empty() {
        "a queue's name cannot be empty"
    } else if cap == 0 {
        "a cap must be 1 or more: a cap of 0 would let no job of the queue run, ever; to stop a \
         queue for a while, pause it instead"
    } else {
        return Ok(());
    };
    Err(Error::InvalidCap {
        name: queue.to_owned(),
        reason: reason.to_owned(),
    })
}

/// Sets `queue`'s cap to `cap` in one step (`jobs:cap:queue:<name>` and `jobs:caps`); workers
/// apply it from their next fetch round.
pub(crate) async fn set(client: &Client, queue: &str, cap: u32) -> Result<(), Error> {
    check(queue, cap)?;
    let keys = client.keys();
    let mut pipeline = redis::pipe();
    pipeline
        .atomic()
        .cmd("SET")
        .arg(keys.cap_queue(queue))
        .arg(cap)
        .ignore()
        .cmd("SADD")
        .arg(keys.caps())
        .arg(member_of_queue(queue))
        .ignore();
    client.redis().query::<()>(&pipeline).await
}

/// Sets the caps a worker was given (`Worker::cap_queue`, the config file's `caps:`), at its
/// start, before it takes a job. Every cap is checked first, so none is written when one is
/// refused.
pub(crate) async fn apply(client: &Client, caps: &[(String, u32)]) -> Result<(), Error> {
    for (queue, cap) in caps {
        check(queue, *cap)?;
    }
    for (queue, cap) in caps {
        set(client, queue, *cap).await?;
        tracing::info!(%queue, cap, "queue capped across every process");
    }
    Ok(())
}

/// Removes `queue`'s cap: workers take its jobs freely from their next fetch round. The leases
/// of its running jobs are left to be released as they end. `false` when it had none.
pub(crate) async fn clear(client: &Client, queue: &str) -> Result<bool, Error> {
    let keys = client.keys();
    let mut pipeline = redis::pipe();
    pipeline
        .atomic()
        .cmd("DEL")
        .arg(keys.cap_queue(queue))
        .cmd("SREM")
        .arg(keys.caps())
        .arg(member_of_queue(queue))
        .ignore();
    let (deleted,): (u64,) = client.redis().query(&pipeline).await?;
    Ok(deleted > 0)
}

/// Reads the config file's `:caps:` section (queue name to cap) into `caps`, a queue named
/// again replacing its earlier cap; the error says what is wrong.
pub(crate) fn read_section(
    section: &yaml_rust2::Yaml,
    caps: &mut Vec<(String, u32)>,
) -> Result<(), String> {
    use yaml_rust2::Yaml;
    let Yaml::Hash(entries) = section else {
        return Err("`:caps:` must be a map of queue name to cap, like `imports: 2`".to_owned());
    };
    for (queue, cap) in entries {
        let queue = match queue {
            Yaml::String(queue) => queue.clone(),
            Yaml::Integer(queue) => queue.to_string(),
            other => {
                return Err(format!(
                    "`:caps:` has a key that is not a queue name: {other:?}"
                ));
            }
        };
        let cap = match cap {
            Yaml::Integer(cap) => u32::try_from(*cap).ok(),
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "`:caps:` gives the queue `{queue}` a cap that is not a whole number of 1 or more"
            )
        })?;
        check(&queue, cap).map_err(|error| error.to_string())?;
        caps.retain(|(known, _)| *known != queue);
        caps.push((queue, cap));
    }
    Ok(())
}

/// A queue's member in `jobs:caps`: `queue:<name>`.
pub(crate) fn member_of_queue(queue: &str) -> String {
    format!("queue:{queue}")
}

/// The queue a `jobs:caps` member names, if it names one.
pub(crate) fn queue_of_member(member: &str) -> Option<&str> {
    member.strip_prefix("queue:")
}
///  Removes every lease `identity` (a process presumed dead, whose jobs crash recovery hands back)
/// holds, on queues and classes alike, so its slots come back at once rather than when its leases
/// run out. Two round trips, on the recovery path only: the lease sets are small (a cap's worth of
/// members each).
/// Returns how many leases were removed.
pub(crate) async fn forget(client: &Client, identity: &str) -> Result<usize, Error> {
    let keys = client.keys();
    let mut reading = redis::pipe();
    reading
        .cmd("SMEMBERS")
        .arg(keys.caps())
        .cmd("SMEMBERS")
        .arg(keys.class_caps());
    let (queues, classes): (Vec<String>, Vec<String>) = client.redis().query(&reading).await?;
    let members: Vec<String> = queues.into_iter().chain(classes).collect();
    // Queue and class leases alike: a dead process runs nothing any more.
    let sets: Vec<String> = members
        .iter()
        .filter_map(|member| {
            queue_of_member(member)
                .map(|queue| keys.cap_queue_leases(queue))
                .or_else(|| class::of_member(member).map(|class| keys.cap_class_leases(class)))
        })
        .collect();
    if sets.is_empty() {
        return Ok(0);
    }
    let mut reads = redis::pipe();
    for set in &sets {
        reads.cmd("ZRANGE").arg(set).arg(0).arg(-1);
    }
    let held: Vec<Vec<String>> = client.redis().query(&reads).await?;
    let prefix = format!("{identity}{SEPARATOR}");
    let mut removals = redis::pipe();
    let mut count = 0;
    for (set, members) in sets.iter().zip(held) {
        let theirs: Vec<String> = members
            .into_iter()
            .filter(|member| member.starts_with(&prefix))
            .collect();
        if !theirs.is_empty() {
            count += theirs.len();
            removals.cmd("ZREM").arg(set).arg(theirs).ignore();
        }
    }
    if count > 0 {
        client.redis().query::<()>(&removals).await?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::{Leases, check, member_of_queue, queue_of_member};

    #[test]
    fn a_cap_of_zero_is_refused_and_says_why() {
        assert!(check("imports", 1).is_ok());
        let error = check("imports", 0).unwrap_err().to_string();
        assert!(
            error.contains("imports") && error.contains("pause it"),
            "{error}"
        );
        assert!(check("", 3).is_err());
    }

    #[test]
    fn the_config_files_caps_section() {
        let yaml = yaml_rust2::YamlLoader::load_from_str("imports: 3\nmail: 5")
            .unwrap()
            .remove(0);
        let mut caps = vec![("mail".to_owned(), 1)];
        super::read_section(&yaml, &mut caps).unwrap();
        caps.sort();
        assert_eq!(caps, [("imports".to_owned(), 3), ("mail".to_owned(), 5)]);
        let zero = yaml_rust2::YamlLoader::load_from_str("imports: 0")
            .unwrap()
            .remove(0);
        let error = super::read_section(&zero, &mut caps).unwrap_err();
        assert!(error.contains("pause it"), "{error}");
        let list = yaml_rust2::YamlLoader::load_from_str("[imports]")
            .unwrap()
            .remove(0);
        assert!(super::read_section(&list, &mut caps).is_err());
    }

    #[test]
    fn members_and_counters() {
        assert_eq!(member_of_queue("a:b"), "queue:a:b");
        assert_eq!(queue_of_member("queue:a:b"), Some("a:b"));
        assert_eq!(queue_of_member("class:A"), None);
        let leases = Leases::new(std::time::Duration::from_secs(60));
        assert_eq!(leases.reserve(3), 0);
        assert_eq!(leases.reserve(1), 3);
        assert_eq!(Leases::member("h:1:abc", 7), "h:1:abc|7");
        assert_eq!(leases.lifetime_ms(), 60_000);
    }
}

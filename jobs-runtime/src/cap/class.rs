//! Class caps: at most `n` jobs of one job class running at once, across every process
//! (`#[job(concurrency = n)]`, `Worker::cap_class`).
//!
//! Deliberately apart from the fetch path: a class cap is enforced when a job is about to
//! *start*, not when it is taken. The job's task, once it has decoded the job and knows its class
//! (for an ActiveJob job, the wrapped class), sends `scripts/cap_class_take.lua` when that class
//! is capped: in one atomic step it drops the class's expired leases and either adds this job's
//! lease (`jobs:lease:class:<Class>`) and the job runs, or moves the job, by its exact bytes, from
//! the working list to the class's waiting list (`jobs:waiting:class:<Class>`: *parked*) and the
//! task ends without running or settling it. When the job's body ended, whatever the outcome, the
//! task sends `scripts/cap_class_release.lua`, which releases the lease and moves parked jobs,
//! oldest first, back to the right end of their own queue (the next taken), never more than the
//! room. The heartbeat runs the same script once per beat for every capped class this worker runs
//! (with no lease to release), so jobs parked while a holder was killed come back once its lease
//! ran out.
//!
//! Which classes are capped is known without a Redis command per job ([`ClassCaps`]): the caps the
//! worker declares (`#[job(concurrency)]`, `Worker::cap_class`), which it writes at start, and
//! those listed in `jobs:caps:class`, read once per beat (a cap set on the dashboard for another
//! class applies from the next beat). The number itself is read inside the take script, so a
//! changed number applies to the next job at once. Jobs of an uncapped class pay nothing.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use super::{Lease, Leases};
use crate::client::Client;
use crate::error::Error;
use crate::redis::scripts;

/// Refuses a cap a class cannot have: a cap of 0 (it would never run the class) or an empty
/// class name.
pub(crate) fn check(class: &str, cap: u32) -> Result<(), Error> {
    let reason = if class.is_empty() {
        "a job class's name cannot be empty"
    } else if cap == 0 {
        "a cap must be 1 or more: a cap of 0 would let no job of the class run, ever"
    } else {
        return Ok(());
    };
    Err(Error::InvalidCap {
        name: class.to_owned(),
        reason: reason.to_owned(),
    })
}

/// A class's member in `jobs:caps:class`: `class:<Class>`.
pub(crate) fn member_of(class: &str) -> String {
    format!("class:{class}")
}

/// The class a `jobs:caps:class` member names, if it names one.
pub(crate) fn of_member(member: &str) -> Option<&str> {
    member.strip_prefix("class:")
}

/// Sets `class`'s cap to `cap` in one step (`jobs:cap:class:<Class>` and `jobs:caps:class`); the
/// next job of the class to start is held to it.
pub(crate) async fn set(client: &Client, class: &str, cap: u32) -> Result<(), Error> {
    check(class, cap)?;
    let keys = client.keys();
    let mut pipeline = redis::pipe();
    pipeline
        .atomic()
        .cmd("SET")
        .arg(keys.cap_class(class))
        .arg(cap)
        .ignore()
        .cmd("SADD")
        .arg(keys.class_caps())
        .arg(member_of(class))
        .ignore();
    client.redis().query::<()>(&pipeline).await
}

/// Writes the class caps a worker declares (`#[job(concurrency)]`, `Worker::cap_class`) at its
/// start, before it takes a job, over whatever Redis held (as [`super::apply`] does for queues).
/// Every cap is checked first, so none is written when one is refused.
pub(crate) async fn apply(client: &Client, caps: &[(String, u32)]) -> Result<(), Error> {
    for (class, cap) in caps {
        check(class, *cap)?;
    }
    for (class, cap) in caps {
        set(client, class, *cap).await?;
        tracing::info!(%class, cap, "job class capped across every process");
    }
    Ok(())
}

/// Removes `class`'s cap and sends every parked job of it back to its queue, in one step
/// (`scripts/cap_class_clear.lua`); running jobs release their leases as they end. Returns
/// whether it had a cap, and how many parked jobs went back.
pub(crate) async fn clear(client: &Client, class: &str) -> Result<(bool, u64), Error> {
    let keys = client.keys();
    let mut invocation = scripts::CAP_CLASS_CLEAR.prepare_invoke();
    invocation
        .key(keys.cap_class(class))
        .key(keys.class_caps())
        .key(keys.cap_class_waiting(class))
        .key(keys.queues())
        .arg(member_of(class))
        .arg(keys.prefix());
    let (had, moved): (u64, u64) = client.redis().script(&invocation).await?;
    Ok((had > 0, moved))
}

/// What this process knows of the class caps: which classes are capped, so that a job of an
/// uncapped class costs no Redis command; read on every job's start, refreshed once per beat.
#[derive(Debug)]
pub(crate) struct ClassCaps {
    /// The caps the worker declares, written at its start.
    declared: Vec<(String, u32)>,
    /// Every class known to be capped: the declared ones, and those `jobs:caps:class` listed at the
    /// last beat.
    capped: RwLock<HashSet<String>>,
    /// Whether any class is capped at all: the one check a job pays when none is.
    any: AtomicBool,
}

impl ClassCaps {
    /// The class caps `declared` by the worker (its jobs' `concurrency`, then `cap_class`, a
    /// class named again replacing its cap).
    pub(crate) fn new(declared: Vec<(String, u32)>) -> Self {
        let capped: HashSet<String> = declared.iter().map(|(class, _)| class.clone()).collect();
        Self {
            any: AtomicBool::new(!capped.is_empty()),
            capped: RwLock::new(capped),
            declared,
        }
    }

    /// The caps the worker declares, to write at its start.
    pub(crate) fn declared(&self) -> &[(String, u32)] {
        &self.declared
    }

    /// Whether `class` is known to be capped: one atomic load when no class is.
    pub(crate) fn is_capped(&self, class: &str) -> bool {
        self.any.load(Ordering::Relaxed)
            && self
                .capped
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(class)
    }

    /// Rereads the capped classes from `jobs:caps:class` (one `SMEMBERS`, once per beat), keeping
    /// the declared ones; returns every capped class, sorted.
    pub(crate) async fn refresh(&self, client: &Client) -> Result<BTreeSet<String>, Error> {
        let members: Vec<String> = client
            .redis()
            .command(redis::cmd("SMEMBERS").arg(client.keys().class_caps()))
            .await?;
        let mut capped: BTreeSet<String> = members
            .iter()
            .filter_map(|member| of_member(member))
            .map(str::to_owned)
            .collect();
        capped.extend(self.declared.iter().map(|(class, _)| class.clone()));
        self.any.store(!capped.is_empty(), Ordering::Relaxed);
        *self.capped.write().unwrap_or_else(PoisonError::into_inner) =
            capped.iter().cloned().collect();
        Ok(capped)
    }
}

/// What [`take`] did with a job about to start.
#[derive(Debug)]
pub(crate) enum Taken {
    /// It may run: holding this class lease (to [`release`] when its body ended), or none when
    /// the class has no cap any more.
    Run(Option<Lease>),
    /// The class's cap was full: the job went to the class's waiting list, and its lease on its
    /// capped queue, if any, was released with it. Its task ends here.
    Parked,
    /// It was no longer in the working list (recovered elsewhere): nothing was done.
    Gone,
}

/// A job about to start, in the working list as `json`, of capped class `class`, taken from
/// `queue` (holding `queue_lease` on that queue's cap, if any).
pub(crate) struct Starting<'a> {
    /// The job's class (an ActiveJob job's wrapped class).
    pub(crate) class: &'a str,
    /// Its exact bytes.
    pub(crate) json: &'a [u8],
    /// The working list it is in.
    pub(crate) working: &'a str,
    /// The process's identity, for the lease member.
    pub(crate) identity: &'a str,
    /// The lease it holds on its capped queue, if any: released if it is parked.
    pub(crate) queue_lease: Option<&'a Lease>,
}

/// How long a class's step waits before it is sent again after a failure.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How many times a release is sent before its lease is left to run out.
const RELEASE_TRIES: u32 = 3;

/// Gives `job` its class lease, or parks it (`scripts/cap_class_take.lua`): one round trip, only
/// for a job of a capped class. The lease is noted in `leases` before the script is sent, so the
/// heartbeat renews it from the start, and let go unless granted. The step is idempotent by the
/// lease's member, so after a failure (its reply maybe lost) it is sent again, every
/// [`RETRY_AFTER`], until it answers: the job neither runs over the cap nor is lost meanwhile.
pub(crate) async fn take(client: &Client, leases: &Leases, job: &Starting<'_>) -> Taken {
    let keys = client.keys();
    let lease = Lease::of_class(job.class, Leases::member(job.identity, leases.reserve(1)));
    let (queue_leases, queue_member) = match job.queue_lease {
        Some(queue_lease) => (queue_lease.key(keys), queue_lease.member.as_str()),
        // Not read by the script when the member is empty.
        None => (keys.cap_class_leases(job.class), ""),
    };
    let mut invocation = scripts::CAP_CLASS_TAKE.prepare_invoke();
    invocation
        .key(job.working)
        .key(keys.cap_class(job.class))
        .key(keys.cap_class_leases(job.class))
        .key(keys.cap_class_waiting(job.class))
        .key(queue_leases)
        .arg(job.json)
        .arg(&lease.member)
        .arg(leases.lifetime_ms())
        .arg(queue_member);
    leases.hold(job.json, &lease);
    let taken = loop {
        match client.redis().script::<i64>(&invocation).await {
            Ok(taken) => break taken,
            Err(error) => {
                tracing::warn!(class = job.class, %error, "cannot check the job class's cap; trying again");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    };
    if taken != 1 {
        leases.let_go(job.json, &lease);
    }
    match taken {
        1 => Taken::Run(Some(lease)),
        2 => Taken::Run(None),
        0 => {
            if let Some(queue_lease) = job.queue_lease {
                leases.let_go(job.json, queue_lease);
                leases.freed();
            }
            Taken::Parked
        }
        _ => {
            // Recovered elsewhere (its queue lease then runs out within one TTL), or parked by
            // a try whose reply was lost (which released it): no longer this process's to renew.
            if let Some(queue_lease) = job.queue_lease {
                leases.let_go(job.json, queue_lease);
            }
            Taken::Gone
        }
    }
}

/// Releases `lease` (held by the job stored as `json`, whose body ended) and brings parked jobs
/// of its class back to their queues while there is room (`scripts/cap_class_release.lua`), sent
/// up to [`RELEASE_TRIES`] times (it is safe to repeat). The lease is let go in `leases` once the
/// release landed, or after the last try: no longer renewed, it then runs out within one
/// heartbeat TTL (the parked jobs come back by the heartbeat's [`unpark`]). Returns how many
/// parked jobs went back.
pub(crate) async fn release(client: &Client, leases: &Leases, json: &[u8], lease: &Lease) -> u64 {
    let mut tries = 0;
    let moved = loop {
        tries += 1;
        match run_release(client, &lease.name, &lease.member).await {
            Ok(moved) => break moved,
            Err(error) if tries < RELEASE_TRIES => {
                tracing::warn!(class = %lease.name, %error, "cannot release the job class's lease; trying again");
                tokio::time::sleep(RETRY_AFTER).await;
            }
            Err(error) => {
                tracing::warn!(class = %lease.name, %error, "cannot release the job class's lease; it runs out by itself");
                break 0;
            }
        }
    };
    leases.let_go(json, lease);
    moved
}

/// Brings parked jobs of `class` back to their queues while there is room, releasing nothing
/// (the heartbeat's, once per beat and capped class). Returns how many went back.
pub(crate) async fn unpark(client: &Client, class: &str) -> Result<u64, Error> {
    run_release(client, class, "").await
}

/// One run of `scripts/cap_class_release.lua` (`EVALSHA`, loaded on `NOSCRIPT`; safe to repeat).
async fn run_release(client: &Client, class: &str, member: &str) -> Result<u64, Error> {
    let keys = client.keys();
    let mut invocation = scripts::CAP_CLASS_RELEASE.prepare_invoke();
    invocation
        .key(keys.cap_class(class))
        .key(keys.cap_class_leases(class))
        .key(keys.cap_class_waiting(class))
        .key(keys.queues())
        .arg(member)
        .arg(keys.prefix());
    client.redis().script(&invocation).await
}

#[cfg(test)]
mod tests {
    use super::{ClassCaps, check, member_of, of_member};

    #[test]
    fn a_class_cap_of_zero_is_refused() {
        assert!(check("ImportJob", 1).is_ok());
        let error = check("ImportJob", 0).unwrap_err().to_string();
        assert!(
            error.contains("ImportJob") && error.contains("1 or more"),
            "{error}"
        );
        assert!(check("", 2).is_err());
    }

    #[test]
    fn class_members() {
        assert_eq!(member_of("A::B"), "class:A::B");
        assert_eq!(of_member("class:A::B"), Some("A::B"));
        assert_eq!(of_member("queue:imports"), None);
        assert_eq!(super::super::queue_of_member("class:A"), None);
    }

    #[test]
    fn which_classes_are_capped() {
        let none = ClassCaps::new(Vec::new());
        assert!(!none.is_capped("ImportJob"));
        let some = ClassCaps::new(vec![("ImportJob".to_owned(), 2)]);
        assert!(some.is_capped("ImportJob"));
        assert!(!some.is_capped("Other"));
        assert_eq!(some.declared(), [("ImportJob".to_owned(), 2)]);
    }
}

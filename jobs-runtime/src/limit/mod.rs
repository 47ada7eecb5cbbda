//! Limiters: at most so many holders at once, or calls per interval, across every process that
//! shares one Redis, as Sidekiq Enterprise's `Sidekiq::Limiter`. Usable from jobs and from any
//! code with a client.
//!
//! ```no_run
//! use std::time::Duration;
//! use jobs_runtime::Limiter;
//!
//! # async fn charge(_card: &str) -> Result<(), std::io::Error> { Ok(()) }
//! # async fn example(card: &str) -> Result<(), jobs_runtime::JobError> {
//! let stripe = Limiter::concurrent("stripe", 10).lock_timeout(Duration::from_secs(30));
//! // `Err(Error::OverLimit)` when no slot freed up within its wait_timeout (5 s by default).
//! stripe.within_limit(|| async { charge(card).await }).await??;
//! # Ok(()) }
//! ```
//!
//! The five kinds, with the names Enterprise's users know:
//!
//! | Kind | Made with | Allows |
//! |---|---|---|
//! | concurrent | [`Limiter::concurrent`] | `size` holders at once; each hold is a lease of `lock_timeout` |
//! | bucket | [`Limiter::bucket`] | `size` calls per fixed second, minute, hour or UTC day |
//! | window | [`Limiter::window`] | `size` calls in any sliding `interval` |
//! | leaky | [`Limiter::leaky`] | a bucket of `size` drops that drains in `drain_interval`; a call adds a drop |
//! | points | [`Limiter::points`] | a budget of points that refills in `interval`; a call spends its points |
//!
//! Each call is one Lua script run (one round trip) on the limiter's own keys,
//! `jobs:limit:{<name>}` and `jobs:limit:{<name>}:held` (one Cluster slot, by the hash tag), by
//! Redis's clock. A concurrent call adds a second round trip when it ends, to give its lease
//! back. Every call pushes the keys' expiry on (a day, or [`Limiter::ttl`], and at least one
//! interval), so a million dynamic names leave nothing behind once idle.
//!
//! A call that finds no room waits up to its `wait_timeout` (5 s by default) for some, then
//! returns [`Error::OverLimit`]. Inside a job, `?` on it reschedules the job with backoff
//! rather than failing it ([`Reschedule`]). In the testing modes ([`crate::testing`]), limiters
//! live in memory, and a test can force one over its limit.
//!
//! `docs/limits.md` is the whole story: each kind's exact rule, the keys, `kill -9`.

mod memory;
mod redis_store;
mod reschedule;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::client::Client;
use crate::error::Error;

pub(crate) use memory::MemoryLimits;
pub use reschedule::Reschedule;
pub(crate) use reschedule::{OVERRATED, over_limit_of};

/// How long a call waits for room by default.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a concurrent lease lasts by default, should its holder never give it back.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an idle limiter's keys live by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest name a limiter may have, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// The five kinds of limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// At most `size` holders at once.
    Concurrent,
    /// At most `size` calls per fixed window.
    Bucket,
    /// At most `size` calls in any sliding interval.
    Window,
    /// A leaky bucket of `size` drops.
    Leaky,
    /// A budget of `size` points per interval.
    Points,
}

impl Kind {
    /// Its name, as stored in Redis: `concurrent`, `bucket`, `window`, `leaky`, `points`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Concurrent => "concurrent",
            Self::Bucket => "bucket",
            Self::Window => "window",
            Self::Leaky => "leaky",
            Self::Points => "points",
        }
    }

    /// The kind named `name`, as [`as_str`](Self::as_str) writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Concurrent,
            Self::Bucket,
            Self::Window,
            Self::Leaky,
            Self::Points,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bucket limiter's fixed window, counted from the epoch (a day is a UTC day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// Each second.
    Second,
    /// Each minute.
    Minute,
    /// Each hour.
    Hour,
    /// Each UTC day.
    Day,
}

impl Per {
    /// The window's length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        })
    }
}

/// A named limit shared by every process of one Redis; cheap to make and to clone, so make one
/// where it is used (`Limiter::concurrent(format!("customer:{id}"), 2)`) or keep one around.
///
/// Nothing is checked until a call: a name or size it cannot take makes every call fail with
/// [`Error::InvalidLimiter`].
#[derive(Clone)]
pub struct Limiter {
    /// Its name: any text of 1 to [`MAX_NAME_BYTES`] bytes without spaces or braces.
    name: String,
    /// Its kind.
    kind: Kind,
    /// Holders, calls, drops or points.
    size: u64,
    /// A lease's length, a window, a drain or refill time (see `limit_acquire.lua`).
    interval: Duration,
    /// How long a call waits for room.
    wait_timeout: Duration,
    /// How long its idle keys live.
    ttl: Duration,
    /// How a job over this limit is rescheduled.
    reschedule: Reschedule,
    /// Its Redis, when not the global client's.
    client: Option<Client>,
}

impl Limiter {
    fn new(name: impl Into<String>, kind: Kind, size: u64, interval: Duration) -> Self {
        Self {
            name: name.into(),
            kind,
            size,
            interval,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            ttl: DEFAULT_TTL,
            reschedule: Reschedule::default(),
            client: None,
        }
    }

    /// At most `size` holders at once across every process. Each hold is a lease of
    /// [`lock_timeout`](Self::lock_timeout) (30 s by default): a holder that dies without
    /// giving it back (`kill -9`) frees its slot when the lease runs out.
    pub fn concurrent(name: impl Into<String>, size: u64) -> Self {
        Self::new(name, Kind::Concurrent, size, DEFAULT_LOCK_TIMEOUT)
    }

    /// At most `size` calls per second, minute, hour or UTC day, in fixed windows: `size` calls
    /// at 12:42:51.999 and `size` more at 12:42:52.000 are allowed.
    pub fn bucket(name: impl Into<String>, size: u64, per: Per) -> Self {
        Self::new(name, Kind::Bucket, size, per.duration())
    }

    /// At most `size` calls in any sliding `interval` (each call is remembered for `interval`).
    pub fn window(name: impl Into<String>, size: u64, interval: Duration) -> Self {
        Self::new(name, Kind::Window, size, interval)
    }

    /// A leaky bucket: each call adds a drop to a bucket of `size` drops that drains at an even
    /// rate, all of it in `drain_interval`; a call that would overflow it waits. Bursts of up
    /// to `size`, then `size` per `drain_interval`, evenly spread.
    pub fn leaky(name: impl Into<String>, size: u64, drain_interval: Duration) -> Self {
        Self::new(name, Kind::Leaky, size, drain_interval)
    }

    /// A budget of `budget` points that refills at an even rate, all of it in `interval`; each
    /// call spends its points ([`within_limit_costing`](Self::within_limit_costing); 1 with
    /// [`within_limit`](Self::within_limit)).
    pub fn points(name: impl Into<String>, budget: u64, interval: Duration) -> Self {
        Self::new(name, Kind::Points, budget, interval)
    }

    /// How long a concurrent lease lasts (30 s by default): keep every hold shorter, or a
    /// second holder may take the slot while the first still runs.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        if self.kind == Kind::Concurrent {
            self.interval = timeout;
        }
        self
    }

    /// How long a call waits for room before it gives up with [`Error::OverLimit`] (5 s by
    /// default; zero gives up at once). A rate limiter whose room comes back later than that
    /// gives up at once, without waiting.
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// How long the limiter's keys live once it is idle (a day by default; never less than
    /// one interval, so no state it still needs is lost).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How a job over this limit is rescheduled (see [`Reschedule`]).
    pub fn reschedule(mut self, reschedule: Reschedule) -> Self {
        self.reschedule = reschedule;
        self
    }

    /// Uses `client`'s Redis (and namespace) rather than [`Client::global`]'s.
    pub fn client(mut self, client: &Client) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its size: holders, calls, drops or points.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its interval: a concurrent lease's length, a bucket's window, the sliding window, the
    /// leaky bucket's drain time or the points' refill time.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Runs `work` once there is room (waiting up to the `wait_timeout`), and returns what it
    /// returns; [`Error::OverLimit`] when there was no room in time, and `work` did not run.
    /// A concurrent slot is given back when `work` ends, panics or is dropped.
    pub async fn within_limit<F, Fut, T>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.within_limit_costing(1, work).await
    }

    /// [`within_limit`](Self::within_limit), spending `points` of a points limiter's budget
    /// (other kinds count every call as one). A points call of 0 points, or of more than the
    /// budget, is [`Error::InvalidLimiter`].
    pub async fn within_limit_costing<F, Fut, T>(&self, points: u64, work: F) -> Result<T, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let cost = if self.kind == Kind::Points { points } else { 1 };
        self.check(cost)?;
        let store = Store::for_call(self)?;
        let lease = self.acquire(&store, cost).await?;
        let out = work().await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        Ok(out)
    }

    /// Takes a slot, waiting for one up to the `wait_timeout`; the lease to give back, for a
    /// concurrent limiter.
    async fn acquire(&self, store: &Store, cost: u64) -> Result<Option<Lease>, Error> {
        let id = format!("{:016x}", rand::random::<u64>());
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        let mut pause = MIN_POLL;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match store.acquire(self, cost, &id, left).await? {
                Answer::Granted => {
                    return Ok((self.kind == Kind::Concurrent).then(|| Lease {
                        store: store.clone(),
                        name: self.name.clone(),
                        id,
                        released: false,
                    }));
                }
                Answer::Wait(Some(wait)) => {
                    tokio::time::sleep(wait.min(left) + Duration::from_millis(1)).await;
                }
                Answer::Wait(None) => {
                    // A holder may end at any moment: look again soon, less often as it lasts.
                    let jitter = Duration::from_millis(rand::random_range(0..5));
                    tokio::time::sleep((pause + jitter).min(left)).await;
                    pause = (pause * 2).min(MAX_POLL);
                }
                Answer::Over(retry_after) => {
                    return Err(Error::OverLimit {
                        limiter: self.name.clone(),
                        limit: self.describe(),
                        retry_after,
                        reschedule: self.reschedule,
                    });
                }
            }
        }
    }

    /// The limit in words: `3 at once`, `10 per second`, `10 per 60s`.
    pub fn describe(&self) -> String {
        describe(self.kind, self.size, self.interval)
    }

    /// Checks the name and size, and that a call of `cost` can ever fit.
    fn check(&self, cost: u64) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidLimiter {
            name: self.name.clone(),
            reason,
        };
        check_name(&self.name).map_err(invalid)?;
        if self.size == 0 {
            return Err(invalid("its size must be at least 1".to_owned()));
        }
        if self.interval.is_zero() {
            return Err(invalid("its interval must be longer than zero".to_owned()));
        }
        if cost == 0 {
            return Err(invalid(
                "a call of 0 points would take nothing; spend at least 1".to_owned(),
            ));
        }
        if cost > self.size {
            return Err(invalid(format!(
                "a call of {cost} points can never fit a budget of {}",
                self.size
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("size", &self.size)
            .field("interval", &self.interval)
            .field("wait_timeout", &self.wait_timeout)
            .field("ttl", &self.ttl)
            .field("reschedule", &self.reschedule)
            .finish_non_exhaustive()
    }
}

/// The first pause of a concurrent call waiting for a holder to end.
const MIN_POLL: Duration = Duration::from_millis(5);

/// The longest pause between two looks of a waiting concurrent call.
const MAX_POLL: Duration = Duration::from_millis(100);

/// A limit in words, for messages and the dashboard.
pub(crate) fn describe(kind: Kind, size: u64, interval: Duration) -> String {
    let every = match interval.as_secs() {
        1 if interval.subsec_nanos() == 0 => "second".to_owned(),
        60 if interval.subsec_nanos() == 0 => "minute".to_owned(),
        3_600 if interval.subsec_nanos() == 0 => "hour".to_owned(),
        86_400 if interval.subsec_nanos() == 0 => "day".to_owned(),
        _ => format!("{interval:?}"),
    };
    match kind {
        Kind::Concurrent => format!("{size} at once"),
        Kind::Bucket => format!("{size} per {every}"),
        Kind::Window => format!("{size} in any {every}"),
        Kind::Leaky => format!("{size} drops, drained every {every}"),
        Kind::Points => format!("{size} points per {every}"),
    }
}

/// Checks a limiter's name: 1 to [`MAX_NAME_BYTES`] bytes, no whitespace, control characters or
/// braces (the braces make the hash tag of its keys).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a limiter needs a name, like `stripe` or `customer:42`".to_owned());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "a name is at most {MAX_NAME_BYTES} bytes, this one {}",
            name.len()
        ));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '{' || c == '}')
    {
        return Err(
            "a name has no spaces, control characters or braces (`customer:42` is fine)".to_owned(),
        );
    }
    Ok(())
}

/// What one attempt to take a slot answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The slot is taken.
    Granted,
    /// No room yet; there is room again after this long (`None`: unknown, look again soon).
    Wait(Option<Duration>),
    /// No room within the time the caller may still wait: over limit (counted as such), with
    /// when there is room again, if known.
    Over(Option<Duration>),
}

/// Where a call's limiter lives: Redis, or memory in a testing mode.
#[derive(Clone)]
pub(crate) enum Store {
    /// The Redis of this client.
    Redis(Client),
    /// The memory of the testing mode on for the caller.
    Memory(std::sync::Arc<MemoryLimits>),
}

impl Store {
    /// The store for a call of `limiter`: the testing mode's, when one is on, else its client's.
    fn for_call(limiter: &Limiter) -> Result<Self, Error> {
        if let Some(memory) = crate::testing::limits() {
            return Ok(Self::Memory(memory));
        }
        match &limiter.client {
            Some(client) => Ok(Self::Redis(client.clone())),
            None => Ok(Self::Redis(Client::global()?)),
        }
    }

    /// One attempt to take a slot of `cost` with `id`, the caller able to wait `left` more.
    async fn acquire(
        &self,
        limiter: &Limiter,
        cost: u64,
        id: &str,
        left: Duration,
    ) -> Result<Answer, Error> {
        match self {
            Self::Redis(client) => redis_store::acquire(client, limiter, cost, id, left).await,
            Self::Memory(memory) => Ok(memory.acquire(limiter, cost, id, left)),
        }
    }
}

/// A concurrent slot held: given back by [`release`](Self::release), or when dropped (a
/// panic, a cancelled call) by a task of its own.
struct Lease {
    store: Store,
    name: String,
    id: String,
    released: bool,
}

impl Lease {
    /// Gives the slot back (only this lease's: a lease that ran out and was taken by another
    /// holder is not touched). A failure to reach Redis is logged; the lease then runs out.
    async fn release(mut self) {
        self.released = true;
        release(&self.store, &self.name, &self.id).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (store, name, id) = (self.store.clone(), self.name.clone(), self.id.clone());
        match &store {
            Store::Memory(memory) => memory.release(&name, &id),
            Store::Redis(_) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move { release(&store, &name, &id).await });
                }
            }
        }
    }
}

/// Removes the lease `id` of the limiter `name`.
async fn release(store: &Store, name: &str, id: &str) {
    match store {
        Store::Redis(client) => {
            if let Err(error) = redis_store::release(client, name, id).await {
                tracing::warn!(limiter = name, %error, "cannot give a concurrent slot back; it runs out with its lock_timeout");
            }
        }
        Store::Memory(memory) => memory.release(name, id),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Kind, Limiter, Per, check_name, describe};

    #[test]
    fn names_are_checked() {
        assert!(check_name("stripe").is_ok());
        assert!(check_name("customer:42").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("a{b}").is_err());
        assert!(check_name(&"x".repeat(201)).is_err());
    }

    #[test]
    fn limits_read_as_words() {
        assert_eq!(
            describe(Kind::Concurrent, 3, Duration::from_secs(30)),
            "3 at once"
        );
        assert_eq!(
            describe(Kind::Bucket, 10, Per::Second.duration()),
            "10 per second"
        );
        assert_eq!(
            describe(Kind::Window, 5, Duration::from_millis(1500)),
            "5 in any 1.5s"
        );
        assert_eq!(Kind::from_name("leaky"), Some(Kind::Leaky));
        assert_eq!(Kind::from_name("nope"), None);
    }

    #[test]
    fn a_lock_timeout_is_a_concurrent_limiters_interval() {
        let stripe = Limiter::concurrent("stripe", 3).lock_timeout(Duration::from_secs(9));
        assert_eq!(stripe.interval(), Duration::from_secs(9));
        let bucket = Limiter::bucket("b", 3, Per::Minute).lock_timeout(Duration::from_secs(9));
        assert_eq!(bucket.interval(), Duration::from_secs(60));
    }

    #[test]
    fn an_empty_limiter_is_refused() {
        assert!(Limiter::concurrent("a", 0).check(1).is_err());
        assert!(
            Limiter::points("a", 10, Duration::from_secs(1))
                .check(11)
                .is_err()
        );
        assert!(
            Limiter::points("a", 10, Duration::from_secs(1))
                .check(10)
                .is_ok()
        );
        assert!(
            Limiter::points("a", 10, Duration::from_secs(1))
                .check(0)
                .is_err()
        );
    }
}

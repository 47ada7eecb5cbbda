//! Every Redis key name `jobs` reads or writes, in one place.
//!
//! The names are Sidekiq's (see `docs/wire-format.md`), so Ruby and Rust processes sharing one
//! Redis see each other's data. An optional namespace prefixes every key with `<namespace>:`, as
//! Sidekiq 6's `redis-namespace` did.
//!
//! On a Redis Cluster every key starts with one hash tag, `{jobs}:` or `{<namespace>}:`, so
//! that all of them share one hash slot and every script's keys are in it (see
//! `docs/cluster.md`); Sidekiq does not run on a cluster, so no Ruby process reads them there.

/// Builds the key names for one namespace (or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    /// `""` without a namespace, `"<namespace>:"` with one; on a cluster `"{jobs}:"` or
    /// `"{<namespace>}:"`.
    prefix: String,
    /// The namespace given, if any.
    namespace: Option<String>,
}

impl Keys {
    /// Key names under `namespace`, or Sidekiq's bare names when it is `None`.
    pub(crate) fn new(namespace: Option<&str>) -> Self {
        let prefix = namespace.map(|ns| format!("{ns}:")).unwrap_or_default();
        Self {
            prefix,
            namespace: namespace.map(str::to_owned),
        }
    }

    /// Key names for a Redis Cluster: every one starts with the hash tag `{<namespace>}:`, or
    /// `{jobs}:` without a namespace.
    pub(crate) fn cluster(namespace: Option<&str>) -> Self {
        let tag = namespace.unwrap_or(super::cluster::TAG);
        Self {
            prefix: format!("{{{tag}}}:"),
            namespace: namespace.map(str::to_owned),
        }
    }

    /// What every key starts with: `""`, or `"<namespace>:"` (for a script that builds a key
    /// from a job's own fields).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace, if any.
    pub(crate) fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// `queue:<name>`: the list a queue's jobs wait in (pushed on the left, taken from the right).
    pub(crate) fn queue(&self, name: &str) -> String {
        format!("{}queue:{name}", self.prefix)
    }

    /// `queues`: the set of every queue name ever pushed to.
    pub(crate) fn queues(&self) -> String {
        format!("{}queues", self.prefix)
    }

    /// `paused`: the set of paused queue names (Sidekiq Pro writes it, Sidekiq 8 reads it);
    /// workers take no job from a queue named in it. Pausing never touches `queues` nor the
    /// queue's list, so every reader still lists the queue with its size.
    pub(crate) fn paused(&self) -> String {
        format!("{}paused", self.prefix)
    }

    /// `schedule`: the sorted set of jobs to run later, scored by run time in epoch seconds.
    pub(crate) fn schedule(&self) -> String {
        format!("{}schedule", self.prefix)
    }

    /// `retry`: the sorted set of failed jobs, scored by their next attempt in epoch seconds.
    pub(crate) fn retry(&self) -> String {
        format!("{}retry", self.prefix)
    }

    /// `dead`: the sorted set of jobs whose retries ran out, scored by time of death.
    pub(crate) fn dead(&self) -> String {
        format!("{}dead", self.prefix)
    }

    /// `processes`: the set of live process identities.
    pub(crate) fn processes(&self) -> String {
        format!("{}processes", self.prefix)
    }

    /// `stat:processed` or `stat:failed`: a lifetime counter.
    pub(crate) fn stat(&self, counter: Counter) -> String {
        format!("{}stat:{}", self.prefix, counter.name())
    }

    /// `stat:processed:YYYY-MM-DD` or `stat:failed:YYYY-MM-DD`: a daily counter (UTC date).
    pub(crate) fn daily_stat(&self, counter: Counter, date: chrono::NaiveDate) -> String {
        format!(
            "{}stat:{}:{}",
            self.prefix,
            counter.name(),
            date.format("%Y-%m-%d")
        )
    }

    /// `<identity>`: a process's heartbeat hash (Sidekiq's), expiring unless refreshed.
    pub(crate) fn process(&self, identity: &str) -> String {
        format!("{}{identity}", self.prefix)
    }

    /// `<identity>:work`: what a process is running, one field per job (Sidekiq 6.4.2+).
    pub(crate) fn process_work(&self, identity: &str) -> String {
        format!("{}{identity}:work", self.prefix)
    }

    /// `<identity>:workers`: the same, under the name Sidekiq 6.4.0 and 6.4.1 read.
    pub(crate) fn process_workers(&self, identity: &str) -> String {
        format!("{}{identity}:workers", self.prefix)
    }

    /// `<identity>-signals`: signals a dashboard sends a process (`TSTP`, `TERM`, `TTIN`).
    pub(crate) fn process_signals(&self, identity: &str) -> String {
        format!("{}{identity}-signals", self.prefix)
    }

    /// `jobs:workers`: every `jobs` process that may own a working list; crash recovery reads it
    /// instead of scanning the keyspace. Sidekiq prunes `processes`, so `jobs` keeps its own.
    pub(crate) fn workers(&self) -> String {
        format!("{}jobs:workers", self.prefix)
    }

    /// `jobs:recovering:<identity>`: a short lock, so one live process recovers a dead one's
    /// working list.
    pub(crate) fn recovering(&self, identity: &str) -> String {
        format!("{}jobs:recovering:{identity}", self.prefix)
    }

    /// `jobs:alive:<identity>`: a process's own liveness, renewed every couple of seconds from
    /// a thread of its own and expiring after `liveness_ttl` (10 s): crash recovery presumes a
    /// process dead when it is gone, long before Sidekiq's 60 s heartbeat hash expires.
    pub(crate) fn alive(&self, identity: &str) -> String {
        format!("{}jobs:alive:{identity}", self.prefix)
    }

    /// `jobs:working:<identity>`: the jobs one process has taken and not yet finished (reliable
    /// fetch). Not a `queue:` key, so Sidekiq never lists it as a queue.
    pub(crate) fn working(&self, identity: &str) -> String {
        format!("{}jobs:working:{identity}", self.prefix)
    }

    /// `jobs:periodic`: every periodic entry's name, scored by when a process last declared it
    /// (epoch ms); an entry no process declared for a day is removed.
    pub(crate) fn periodic_index(&self) -> String {
        format!("{}jobs:periodic", self.prefix)
    }

    /// `jobs:periodic:<name>`: one periodic entry's definition and state (its last tick, the
    /// last job pushed for it, whether it is paused).
    pub(crate) fn periodic(&self, name: &str) -> String {
        format!("{}jobs:periodic:{name}", self.prefix)
    }

    /// `jobs:unique:<digest>`: a unique job's lock, holding the jid of the job that took it and
    /// expiring after its `unique_for`.
    pub(crate) fn unique(&self, digest: &str) -> String {
        format!("{}jobs:unique:{digest}", self.prefix)
    }

    /// The `SCAN` pattern of every unique lock (the namespace is glob-escaped).
    pub(crate) fn unique_pattern(&self) -> String {
        format!("{}jobs:unique:*", escape_glob(&self.prefix))
    }

    /// `jobs:outbox:<jid>`: the mark that a job of the outbox (`jobs::outbox`) reached Redis,
    /// so a move repeated after a crash pushes it no second time. Set in the step that pushes
    /// the job, deleted once its row is gone from the table, and expiring after a day in case
    /// that deletion never comes.
    #[cfg(feature = "postgres")]
    pub(crate) fn outbox_moved(&self, jid: &str) -> String {
        format!("{}jobs:outbox:{jid}", self.prefix)
    }

    /// `jobs:clearing:<token>`: a queue's list moved aside while it is cleared (read for its
    /// unique jobs' locks, then deleted); it expires, should the clearing stop half-way.
    pub(crate) fn clearing(&self, token: &str) -> String {
        format!("{}jobs:clearing:{token}", self.prefix)
    }

    /// `jobs:stat:expired`: how many jobs were dropped because they had not started within
    /// their `expires_in`.
    pub(crate) fn expired(&self) -> String {
        format!("{}jobs:stat:expired", self.prefix)
    }

    /// `jobs:stat:overrated`: how many times a job was rescheduled because a limiter it took
    /// was over its limit (Sidekiq Enterprise's "overrated").
    pub(crate) fn overrated(&self) -> String {
        format!("{}jobs:stat:overrated", self.prefix)
    }

    /// `jobs:limit:{<name>}`: one limiter's hash (its kind and size, its state, its counts).
    /// The braces make the name a hash tag, so a limiter's keys share one Cluster slot.
    pub(crate) fn limit(&self, name: &str) -> String {
        format!("{}jobs:limit:{{{name}}}", self.prefix)
    }

    /// `jobs:limit:{<name>}:held`: one limiter's sorted set: a concurrent limiter's leases
    /// scored by when they run out, or a window limiter's calls scored by when they were made
    /// (epoch ms).
    pub(crate) fn limit_held(&self, name: &str) -> String {
        format!("{}jobs:limit:{{{name}}}:held", self.prefix)
    }

    /// `jobs:caps`: the set of the queues' global caps, one member per capped queue:
    /// `queue:<name>` (see [`cap_queue`](Self::cap_queue)). Read by the fetch script first, so
    /// that a Redis with no queue cap pays one command per fetch round and nothing more; listed
    /// by the dashboard.
    pub(crate) fn caps(&self) -> String {
        format!("{}jobs:caps", self.prefix)
    }

    /// `jobs:caps:class`: the set of the job classes' global caps, one member per capped class:
    /// `class:<Class>` (see [`cap_class`](Self::cap_class)). Apart from [`caps`](Self::caps), so
    /// that a class cap costs the fetch of every worker nothing: only the heartbeat reads it.
    pub(crate) fn class_caps(&self) -> String {
        format!("{}jobs:caps:class", self.prefix)
    }

    /// `jobs:cap:queue:<name>`: a queue's global cap, the most of its jobs running at once
    /// across every process (an integer string). The `queue:` segment keeps a queue's cap
    /// apart from any other kind of cap.
    pub(crate) fn cap_queue(&self, name: &str) -> String {
        format!("{}jobs:cap:queue:{name}", self.prefix)
    }

    /// `jobs:lease:queue:<name>`: the leases of a capped queue's running jobs, a sorted set of
    /// `<identity>|<counter>` scored by when each runs out (epoch ms, Redis's clock). Another
    /// prefix than the cap's, so that no queue name makes one key the other's.
    pub(crate) fn cap_queue_leases(&self, name: &str) -> String {
        format!("{}jobs:lease:queue:{name}", self.prefix)
    }

    /// `jobs:cap:class:<Class>`: a job class's global cap, the most of its jobs running at once
    /// across every process (an integer string). A future Cluster layout (issue #19) would name
    /// the three per-class keys with the hash tag `{class:<Class>}`.
    pub(crate) fn cap_class(&self, class: &str) -> String {
        format!("{}jobs:cap:class:{class}", self.prefix)
    }

    /// `jobs:lease:class:<Class>`: the leases of a capped class's running jobs, a sorted set of
    /// `<identity>|<counter>` scored by when each runs out (epoch ms, Redis's clock).
    pub(crate) fn cap_class_leases(&self, class: &str) -> String {
        format!("{}jobs:lease:class:{class}", self.prefix)
    }

    /// `jobs:waiting:class:<Class>`: a capped class's parked jobs, a list of their exact bytes,
    /// parked on the left and brought back from the right (oldest first).
    pub(crate) fn cap_class_waiting(&self, class: &str) -> String {
        format!("{}jobs:waiting:class:{class}", self.prefix)
    }

    /// `batch:<bid>`: a batch's hash: `description`, `created_at` (epoch ms), `total`,
    /// `parent`, `sealed`, `retention`, the callbacks (`cb:complete`, `cb:success`,
    /// `cb:death`), when each fired (`complete_at`, `success_at`, `death_at`) and a workflow
    /// step's `workflow` and `step` (see `docs/batches.md`). The Lua scripts build a parent's
    /// keys as `<prefix>batch:<bid>` too (`scripts/batch_events.lua`).
    pub(crate) fn batch(&self, bid: &str) -> String {
        format!("{}batch:{bid}", self.prefix)
    }

    /// `batch:<bid>:pending`: the set of a batch's members that have not succeeded (jids, and
    /// `batch:<child bid>` for a nested batch).
    pub(crate) fn batch_pending(&self, bid: &str) -> String {
        format!("{}batch:{bid}:pending", self.prefix)
    }

    /// `batch:<bid>:failed`: a hash of a batch's pending members that failed at least once,
    /// each to the JSON of its last failure.
    pub(crate) fn batch_failed(&self, bid: &str) -> String {
        format!("{}batch:{bid}:failed", self.prefix)
    }

    /// `batch:<bid>:dead`: the set of a batch's pending members that died (retries exhausted,
    /// discarded, or buried by recovery).
    pub(crate) fn batch_dead(&self, bid: &str) -> String {
        format!("{}batch:{bid}:dead", self.prefix)
    }

    /// `batch:<bid>:added`: the set of every jid ever added to a batch by its running jobs
    /// (`BatchHandle`, whose jids are derived from the adding job's), so an add sent again, or
    /// made again by a job that runs again, pushes nothing. Expires with the batch's keys.
    pub(crate) fn batch_added(&self, bid: &str) -> String {
        format!("{}batch:{bid}:added", self.prefix)
    }

    /// A batch's four keys, in the order its scripts take them: [`batch`](Self::batch),
    /// [`batch_pending`](Self::batch_pending), [`batch_failed`](Self::batch_failed),
    /// [`batch_dead`](Self::batch_dead).
    pub(crate) fn batch_keys(&self, bid: &str) -> [String; 4] {
        [
            self.batch(bid),
            self.batch_pending(bid),
            self.batch_failed(bid),
            self.batch_dead(bid),
        ]
    }

    /// `batches`: every batch's bid, scored by its creation (epoch seconds), for listing;
    /// trimmed of batches older than the retention when a batch is created.
    pub(crate) fn batches(&self) -> String {
        format!("{}batches", self.prefix)
    }

    /// The `SCAN` pattern of every limiter's hash (the namespace is glob-escaped).
    pub(crate) fn limit_pattern(&self) -> String {
        format!("{}jobs:limit:{{*}}", escape_glob(&self.prefix))
    }

    /// `j|%y%m%d|%-H:%M`: Sidekiq 8's execution metrics of one UTC minute, a hash of
    /// `<Class>|p`, `<Class>|f` and `<Class>|ms` (for example `j|250214|8:05`).
    pub(crate) fn metrics_minute(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        format!("{}j|{}", self.prefix, at.format("%y%m%d|%-H:%M"))
    }

    /// `j|%y%m%d|%-H:<tens of minutes>`: Sidekiq 8's 10-minute rollup of the same fields, the
    /// minute key less its last digit (`j|250214|8:4` for 08:40 to 08:49).
    pub(crate) fn metrics_ten_minutes(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        let mut key = self.metrics_minute(at);
        key.pop();
        key
    }

    /// `h|<Class>-%-d-%-H:%-M`: Sidekiq 8's run-time histogram of one class in one UTC minute, a
    /// `BITFIELD` of 26 `u16` counters (for example `h|HardJob-14-8:5`).
    pub(crate) fn metrics_histogram(
        &self,
        class: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> String {
        format!("{}h|{class}-{}", self.prefix, at.format("%-d-%-H:%-M"))
    }

    /// `%Y%m%d-marks`: Sidekiq's deploy marks of one UTC day, a hash of ISO 8601 minute to label.
    pub(crate) fn deploy_marks(&self, date: chrono::NaiveDate) -> String {
        format!("{}{}-marks", self.prefix, date.format("%Y%m%d"))
    }

    /// `workflow:<wid>`: a workflow's hash (`description`, `created_at` in epoch ms, `state`,
    /// `steps` as JSON, `total`, `queue`, `retention`, `succeeded_at`, `dead_at`); see
    /// `docs/batches.md`, "Workflows".
    pub(crate) fn workflow(&self, wid: &str) -> String {
        format!("{}workflow:{wid}", self.prefix)
    }

    /// `workflow:<wid>:done`: the set of a workflow's steps that succeeded.
    pub(crate) fn workflow_done(&self, wid: &str) -> String {
        format!("{}workflow:{wid}:done", self.prefix)
    }

    /// `workflow:<wid>:dead`: the set of a workflow's steps whose job died.
    pub(crate) fn workflow_dead(&self, wid: &str) -> String {
        format!("{}workflow:{wid}:dead", self.prefix)
    }

    /// `workflows`: every workflow's id, scored by creation (epoch seconds), for listing.
    pub(crate) fn workflows(&self) -> String {
        format!("{}workflows", self.prefix)
    }
}

/// `text` with Redis's glob characters escaped, so a `MATCH` pattern finds it literally.
pub(crate) fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Sidekiq's two job counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    /// Every job run, failed or not.
    Processed,
    /// Every failed run.
    Failed,
}

impl Counter {
    fn name(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Counter, Keys};

    #[test]
    fn bare_names_match_sidekiq() {
        let keys = Keys::new(None);
        assert_eq!(keys.queue("default"), "queue:default");
        assert_eq!(keys.queues(), "queues");
        assert_eq!(keys.paused(), "paused");
        assert_eq!(keys.schedule(), "schedule");
        assert_eq!(keys.retry(), "retry");
        assert_eq!(keys.dead(), "dead");
        assert_eq!(keys.processes(), "processes");
        assert_eq!(keys.stat(Counter::Processed), "stat:processed");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        assert_eq!(
            keys.daily_stat(Counter::Failed, day),
            "stat:failed:2026-01-05"
        );
        assert_eq!(keys.working("host:1:abc"), "jobs:working:host:1:abc");
        assert_eq!(keys.process("host:1:abc"), "host:1:abc");
        assert_eq!(keys.process_work("host:1:abc"), "host:1:abc:work");
        assert_eq!(keys.process_signals("host:1:abc"), "host:1:abc-signals");
        assert_eq!(keys.workers(), "jobs:workers");
        assert_eq!(keys.recovering("h:1:a"), "jobs:recovering:h:1:a");
        assert_eq!(keys.periodic_index(), "jobs:periodic");
        assert_eq!(keys.periodic("nightly"), "jobs:periodic:nightly");
        assert_eq!(keys.unique("ab12"), "jobs:unique:ab12");
        assert_eq!(keys.unique_pattern(), "jobs:unique:*");
        assert_eq!(keys.expired(), "jobs:stat:expired");
        assert_eq!(keys.clearing("ab"), "jobs:clearing:ab");
        #[cfg(feature = "postgres")]
        assert_eq!(keys.outbox_moved("ab12"), "jobs:outbox:ab12");
        assert_eq!(keys.overrated(), "jobs:stat:overrated");
        assert_eq!(keys.batch("b1"), "batch:b1");
        assert_eq!(
            keys.batch_keys("b1"),
            [
                "batch:b1",
                "batch:b1:pending",
                "batch:b1:failed",
                "batch:b1:dead"
            ]
        );
        assert_eq!(keys.batches(), "batches");
        assert_eq!(keys.limit("customer:7"), "jobs:limit:{customer:7}");
        assert_eq!(keys.limit_held("stripe"), "jobs:limit:{stripe}:held");
        assert_eq!(keys.limit_pattern(), "jobs:limit:{*}");
        assert_eq!(keys.caps(), "jobs:caps");
        assert_eq!(keys.class_caps(), "jobs:caps:class");
        assert_eq!(keys.cap_queue("imports"), "jobs:cap:queue:imports");
        assert_eq!(keys.cap_queue_leases("imports"), "jobs:lease:queue:imports");
        assert_ne!(keys.cap_queue("a:leases"), keys.cap_queue_leases("a"));
        assert_eq!(keys.cap_class("ImportJob"), "jobs:cap:class:ImportJob");
        assert_eq!(keys.cap_class_leases("A::B"), "jobs:lease:class:A::B");
        assert_eq!(keys.cap_class_waiting("A"), "jobs:waiting:class:A");
        assert_ne!(keys.cap_class("A"), keys.cap_queue("A"));
        assert_eq!(keys.namespace(), None);
    }

    #[test]
    fn workflow_keys() {
        let keys = Keys::new(Some("shop"));
        assert_eq!(keys.workflow("w1"), "shop:workflow:w1");
        assert_eq!(keys.workflow_done("w1"), "shop:workflow:w1:done");
        assert_eq!(keys.workflow_dead("w1"), "shop:workflow:w1:dead");
        assert_eq!(keys.workflows(), "shop:workflows");
    }

    #[test]
    fn metrics_keys_match_sidekiq_8() {
        use chrono::TimeZone;
        let keys = Keys::new(None);
        let at = chrono::Utc.with_ymd_and_hms(2025, 2, 14, 8, 5, 30).unwrap();
        assert_eq!(keys.metrics_minute(at), "j|250214|8:05");
        assert_eq!(keys.metrics_ten_minutes(at), "j|250214|8:0");
        assert_eq!(keys.metrics_histogram("HardJob", at), "h|HardJob-14-8:5");
        let later = chrono::Utc.with_ymd_and_hms(2025, 2, 4, 18, 43, 0).unwrap();
        assert_eq!(keys.metrics_minute(later), "j|250204|18:43");
        assert_eq!(keys.metrics_ten_minutes(later), "j|250204|18:4");
        assert_eq!(keys.metrics_histogram("A::B", later), "h|A::B-4-18:43");
        assert_eq!(keys.deploy_marks(later.date_naive()), "20250204-marks");
        let spaced = Keys::new(Some("shop"));
        assert_eq!(spaced.metrics_minute(at), "shop:j|250214|8:05");
        assert_eq!(spaced.metrics_ten_minutes(at), "shop:j|250214|8:0");
        assert_eq!(spaced.metrics_histogram("X", at), "shop:h|X-14-8:5");
    }

    #[test]
    fn on_a_cluster_every_key_carries_one_hash_tag() {
        let keys = Keys::cluster(None);
        assert_eq!(keys.queue("mail"), "{jobs}:queue:mail");
        assert_eq!(keys.retry(), "{jobs}:retry");
        assert_eq!(keys.working("h:1:a"), "{jobs}:jobs:working:h:1:a");
        assert_eq!(keys.namespace(), None);
        let spaced = Keys::cluster(Some("shop"));
        assert_eq!(spaced.queue("mail"), "{shop}:queue:mail");
        assert_eq!(spaced.prefix(), "{shop}:");
        assert_eq!(spaced.namespace(), Some("shop"));
    }

    #[test]
    fn a_namespace_prefixes_every_key() {
        let keys = Keys::new(Some("shop"));
        assert_eq!(keys.queue("mail"), "shop:queue:mail");
        assert_eq!(keys.queues(), "shop:queues");
        assert_eq!(keys.schedule(), "shop:schedule");
        assert_eq!(keys.working("h:1:a"), "shop:jobs:working:h:1:a");
        #[cfg(feature = "postgres")]
        assert_eq!(keys.outbox_moved("ab12"), "shop:jobs:outbox:ab12");
        assert_eq!(keys.namespace(), Some("shop"));
        assert_eq!(
            Keys::new(Some("a*b")).unique_pattern(),
            "a\\*b:jobs:unique:*"
        );
    }
}

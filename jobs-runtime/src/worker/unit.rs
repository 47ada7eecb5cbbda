//! A unit of work: one job in this process's working list, exactly as it was taken (Sidekiq's
//! `UnitOfWork`), and the two fields the worker itself adds to a job, its recovery counts.
//!
//! A leaf: it imports nothing from the rest of the worker (only the cap's
//! [`Lease`](crate::cap::Lease)), so every other file can use it.

use std::sync::Arc;

/// The payload key counting how often a job was recovered from a dead process (`recovery.rs`
/// writes it; the fetcher reads it to run a job one crash from the dead set alone).
pub(crate) const RECOVERIES: &str = "jobs_recoveries";

/// The payload key counting how often a job was recovered from a dead process whose last
/// heartbeat did not list it as running: taken ahead and never started, or started since that
/// beat (`recovery.rs` writes it; only the first such recovery leaves [`RECOVERIES`] as it was).
pub(crate) const UNSEEN_RECOVERIES: &str = "jobs_recovered_unseen";

/// A job taken from a queue, exactly as it was stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fetched {
    /// The queue it was taken from (`<q>` of `queue:<q>`): shared, not copied, by the jobs of
    /// a round and the in-flight table's copy.
    pub(crate) queue: Arc<str>,
    /// Its JSON, byte for byte, as bytes: an entry need not be UTF-8 to be taken, run or
    /// buried, and these bytes are the key for removing it from the working list. Shared, not
    /// copied, with the in-flight table that lists it while it runs (`in_flight.rs`).
    pub(crate) json: bytes::Bytes,
    /// The lease it holds on its queue's global cap, released when it is settled; `None` for a
    /// queue with no cap (and for a job found in the working list without its fetch reply).
    pub(crate) lease: Option<crate::cap::Lease>,
}

impl Fetched {
    /// A job of `queue` stored as `json`.
    pub(crate) fn new(queue: impl Into<Arc<str>>, json: impl Into<bytes::Bytes>) -> Self {
        Self {
            queue: queue.into(),
            json: json.into(),
            lease: None,
        }
    }

    /// The same job, holding `lease`.
    pub(crate) fn with_lease(mut self, lease: Option<crate::cap::Lease>) -> Self {
        self.lease = lease;
        self
    }

    /// How often this job was recovered from a dead process: its top-level `jobs_recoveries`,
    /// 0 for most jobs (and for entries that are not JSON objects).
    pub(crate) fn recoveries(&self) -> u32 {
        recoveries(&self.json)
    }

    /// The JSON as text, for logs and the work hash (invalid UTF-8 shown as `\u{fffd}`).
    pub(crate) fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.json)
    }
}

/// [`Fetched::recoveries`] of a job's JSON. Most jobs never name the key, and are not parsed;
/// those that do are read at the top level only, so a key inside the arguments counts for
/// nothing.
fn recoveries(json: &[u8]) -> u32 {
    // Every job taken is looked at here before it starts, so the look must cost about one pass
    // over its bytes, whether or not they are UTF-8: memchr's vectorised search of bytes.
    static NAMED: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(RECOVERIES));
    if NAMED.find(json).is_none() {
        return 0;
    }
    /// The one top-level field read; serde skips the others without keeping them.
    #[derive(serde::Deserialize)]
    struct TopLevel {
        #[serde(default, rename = "jobs_recoveries")]
        recoveries: Option<serde_json::Value>,
    }
    serde_json::from_slice::<TopLevel>(json)
        .ok()
        .and_then(|top| top.recoveries)
        .and_then(|count| count.as_u64())
        .map_or(0, |count| u32::try_from(count).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::recoveries;

    #[test]
    fn reads_the_recovery_count_from_the_json() {
        assert_eq!(recoveries(br#"{"class":"A","jobs_recoveries":2}"#), 2);
        assert_eq!(
            recoveries(br#"{"class":"A","jobs_recoveries": 12,"x":1}"#),
            12
        );
        assert_eq!(recoveries(br#"{"class":"A"}"#), 0);
        assert_eq!(recoveries(b"\xff{\"jobs_recoveries\":3}"), 0);
        // Bytes that are not UTF-8 inside a string do not hide the key from the search.
        assert_eq!(recoveries(b"{\"x\":\"\xff\",\"jobs_recoveries\":3}"), 3);
    }

    #[test]
    fn a_count_inside_the_arguments_is_not_the_jobs() {
        let json = br#"{"class":"A","args":[{"jobs_recoveries":9}],"jid":"j","queue":"q"}"#;
        assert_eq!(recoveries(json), 0);
        let both = br#"{"class":"A","args":[{"jobs_recoveries":9}],"jobs_recoveries":1}"#;
        assert_eq!(recoveries(both), 1);
    }
}

//! A unit of work: one job in this process's working list, exactly as it was taken (Sidekiq's
//! `UnitOfWork`), and the one field the worker itself adds to a job, its recovery count.
//!
//! A leaf: it imports nothing from the rest of the worker, so every other file can use it.

/// The payload key counting how often a job was recovered from a dead process (`recovery.rs`
/// writes it; the fetcher reads it to run a job one crash from the dead set alone).
pub(crate) const RECOVERIES: &str = "jobs_recoveries";

/// A job taken from a queue, exactly as it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fetched {
    /// The queue it was taken from (`<q>` of `queue:<q>`).
    pub(crate) queue: String,
    /// Its JSON, byte for byte: the key for removing it from the working list.
    pub(crate) json: String,
}

impl Fetched {
    /// How often this job was recovered from a dead process: 0 for most jobs, read without
    /// parsing the whole JSON.
    pub(crate) fn recoveries(&self) -> u32 {
        recoveries(&self.json)
    }
}

/// [`Fetched::recoveries`] of a job's JSON.
fn recoveries(json: &str) -> u32 {
    let key = format!("\"{RECOVERIES}\":");
    json.split_once(&key)
        .map(|(_, rest)| {
            rest.trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::recoveries;

    #[test]
    fn reads_the_recovery_count_from_the_json() {
        assert_eq!(recoveries(r#"{"class":"A","jobs_recoveries":2}"#), 2);
        assert_eq!(
            recoveries(r#"{"class":"A","jobs_recoveries": 12,"x":1}"#),
            12
        );
        assert_eq!(recoveries(r#"{"class":"A"}"#), 0);
    }
}

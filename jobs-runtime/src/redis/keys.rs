//! Every Redis key name `jobs` reads or writes, in one place.
//!
//! The names are Sidekiq's (see `docs/wire-format.md`), so Ruby and Rust processes sharing one
//! Redis see each other's data. An optional namespace prefixes every key with `<namespace>:`, as
//! Sidekiq 6's `redis-namespace` did.

/// Builds the key names for one namespace (or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    /// `""` without a namespace, `"<namespace>:"` with one.
    prefix: String,
}

impl Keys {
    /// Key names under `namespace`, or Sidekiq's bare names when it is `None`.
    pub(crate) fn new(namespace: Option<&str>) -> Self {
        let prefix = namespace.map(|ns| format!("{ns}:")).unwrap_or_default();
        Self { prefix }
    }

    /// The namespace, if any, without its trailing colon.
    pub(crate) fn namespace(&self) -> Option<&str> {
        self.prefix.strip_suffix(':')
    }

    /// `queue:<name>`: the list a queue's jobs wait in (pushed on the left, taken from the right).
    pub(crate) fn queue(&self, name: &str) -> String {
        format!("{}queue:{name}", self.prefix)
    }

    /// `queues`: the set of every queue name ever pushed to.
    pub(crate) fn queues(&self) -> String {
        format!("{}queues", self.prefix)
    }

    /// `schedule`: the sorted set of jobs to run later, scored by run time in epoch seconds.
    pub(crate) fn schedule(&self) -> String {
        format!("{}schedule", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn bare_names_match_sidekiq() {
        let keys = Keys::new(None);
        assert_eq!(keys.queue("default"), "queue:default");
        assert_eq!(keys.queues(), "queues");
        assert_eq!(keys.schedule(), "schedule");
        assert_eq!(keys.namespace(), None);
    }

    #[test]
    fn a_namespace_prefixes_every_key() {
        let keys = Keys::new(Some("shop"));
        assert_eq!(keys.queue("mail"), "shop:queue:mail");
        assert_eq!(keys.queues(), "shop:queues");
        assert_eq!(keys.schedule(), "shop:schedule");
        assert_eq!(keys.namespace(), Some("shop"));
    }
}

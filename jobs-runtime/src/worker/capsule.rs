//! Capsules: pools of concurrency within one process, each with its own queues (Sidekiq 7's
//! `config.capsule` and `:capsules:`).
//!
//! The top-level `queues` and `concurrency` are the capsule named [`DEFAULT_CAPSULE`]; each
//! other [`Capsule`] gets a fetcher of its own, with its own slots and queue order, sharing the
//! process's working list, heartbeat and everything else. A queue belongs to one capsule only:
//! each fetcher rebuilds its pending jobs from the shared working list by queue, and two
//! fetchers on one queue would each adopt the jobs the other had taken (Sidekiq ran such jobs
//! twice until 8.1.3). `docs/capsules.md` tells the whole story.

use std::collections::HashSet;
use std::sync::Arc;

use yaml_rust2::Yaml;

use super::config::{bad, key_name, queues, show, whole};
use super::drain::Drain;
use super::order::{self, QueueOrder, QueueSpec};

/// The name of the capsule made of the top-level `queues` and `concurrency` (Sidekiq's too).
pub const DEFAULT_CAPSULE: &str = "default";

/// How many jobs of a capsule other than the default one run at once when it names no
/// concurrency (Sidekiq's default).
pub const DEFAULT_CONCURRENCY: usize = 5;

/// One capsule: a name, its queues and how many of their jobs run at once.
///
/// ```no_run
/// # async fn example() -> Result<(), jobs_runtime::Error> {
/// use jobs_runtime::{Worker, worker::Capsule};
///
/// Worker::new()
///     .queues(["critical", "default"])
///     .concurrency(10)
///     // The `single` queue's jobs run one at a time, beside the ten others.
///     .capsule(Capsule::new("single").queues(["single"]).concurrency(1))
///     .run()
///     .await
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capsule {
    /// Its name, shown in logs, the heartbeat and the Busy page; unique within a process.
    pub name: String,
    /// Its queues, with weights as the top-level queues take them; none of them may be
    /// another capsule's.
    pub queues: Vec<QueueSpec>,
    /// How many of its jobs run at once, at least 1; `None` when not given: the default
    /// capsule then keeps the top-level concurrency, any other runs
    /// [`DEFAULT_CONCURRENCY`] (5).
    pub concurrency: Option<usize>,
}

impl Capsule {
    /// A capsule with no queue and no concurrency yet (see [`concurrency`](Self::concurrency)).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            queues: Vec::new(),
            concurrency: None,
        }
    }

    /// Takes jobs from these queues in strict order (earlier queues first), replacing the list.
    #[must_use]
    pub fn queues<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.queues = names.into_iter().map(QueueSpec::new).collect();
        self
    }

    /// Takes jobs from these weighted queues, replacing the list.
    #[must_use]
    pub fn weighted_queues(mut self, queues: impl IntoIterator<Item = QueueSpec>) -> Self {
        self.queues = queues.into_iter().collect();
        self
    }

    /// Runs at most this many of its jobs at once (0 is refused when the worker starts).
    /// Without it, the capsule `default` keeps the top-level concurrency and any other runs
    /// [`DEFAULT_CONCURRENCY`] (5) at once.
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// How many of its jobs run at once: its concurrency, or [`DEFAULT_CONCURRENCY`] when it
    /// names none (the default capsule's is always named, by
    /// [`WorkerConfig::all_capsules`](super::WorkerConfig::all_capsules)).
    pub(crate) fn slots(&self) -> usize {
        self.concurrency.unwrap_or(DEFAULT_CONCURRENCY)
    }

    /// Sidekiq 7's mode for these weights: `strict` when all are 0, `random` when all are 1,
    /// otherwise `weighted`.
    pub(crate) fn mode(&self) -> &'static str {
        if self.queues.iter().all(|spec| spec.weight == 0) {
            "strict"
        } else if self.queues.iter().all(|spec| spec.weight == 1) {
            "random"
        } else {
            "weighted"
        }
    }

    /// Its queues, each once (a repeated queue keeps its first place and the larger weight,
    /// as in its [`QueueOrder`]).
    pub(crate) fn weights(&self) -> Vec<(String, u32)> {
        order::unique(&self.queues)
            .into_iter()
            .map(|spec| (spec.name, spec.weight))
            .collect()
    }
}

/// Checks a process's capsules, the default one first: names given and distinct, concurrency
/// above 0, at least one queue each, and no queue in two capsules. The reason names the
/// capsule and says what to change.
pub(crate) fn check(capsules: &[Capsule]) -> Result<(), String> {
    let mut names = HashSet::new();
    let mut owners: Vec<(&str, &str)> = Vec::new();
    for (position, capsule) in capsules.iter().enumerate() {
        let name = capsule.name.as_str();
        if name.trim().is_empty() {
            return Err("a capsule has no name; give each one a name, like `single`".to_owned());
        }
        if position > 0 && name == DEFAULT_CAPSULE {
            return Err(format!(
                "the capsule `{DEFAULT_CAPSULE}` is the top-level `queues` and `concurrency`; \
                 set those (or give `Worker::capsule` the capsule `{DEFAULT_CAPSULE}`, which \
                 sets them) instead of adding a second one"
            ));
        }
        if !names.insert(name) {
            return Err(format!(
                "two capsules are named `{name}`; give each capsule a name of its own"
            ));
        }
        if capsule.concurrency == Some(0) {
            return Err(format!(
                "the capsule `{name}` has concurrency 0; it must run at least 1 job at once"
            ));
        }
        if capsule.queues.is_empty() {
            return Err(format!(
                "the capsule `{name}` has no queues; name at least one, like `queues: [{name}]`"
            ));
        }
        for spec in &capsule.queues {
            match owners.iter().find(|(queue, _)| *queue == spec.name) {
                Some((_, owner)) if *owner != name => {
                    return Err(format!(
                        "the queue `{queue}` is in two capsules, `{owner}` and `{name}`; put it \
                         in one: each capsule's fetcher rebuilds its pending jobs from the \
                         process's working list by queue, so two fetchers on one queue would \
                         each take up the other's jobs and run them twice (Sidekiq had this bug \
                         until 8.1.3)",
                        queue = spec.name
                    ));
                }
                Some(_) => {}
                None => owners.push((&spec.name, name)),
            }
        }
    }
    Ok(())
}

/// `:capsules:` of a config file: a map of capsule names to `{queues: [...], concurrency: n}`.
/// The capsule `default` may leave either out (the top-level value stays); any other needs
/// both. An empty key (nothing, or every entry commented out) is no capsule.
pub(super) fn from_yaml(value: &Yaml) -> Result<Vec<Capsule>, String> {
    let expected = "a map of capsule names to their `queues` and `concurrency`, like \
                    `single: {queues: [single], concurrency: 1}`";
    let entries = match value {
        Yaml::Null => return Ok(Vec::new()),
        Yaml::Hash(entries) => entries,
        _ => return Err(bad("capsules", value, expected)),
    };
    let mut read = Vec::new();
    for (key, settings) in entries {
        let name = match key {
            Yaml::String(name) => name.strip_prefix(':').unwrap_or(name).to_owned(),
            Yaml::Integer(number) => number.to_string(),
            _ => return Err(bad("capsules", key, expected)),
        };
        let Yaml::Hash(settings) = settings else {
            return Err(format!(
                "`:capsules:` → `{name}` must be a map with `queues` and `concurrency`, not {}",
                show(settings)
            ));
        };
        let mut capsule = Capsule::new(name.clone());
        let mut has_queues = false;
        for (key, value) in settings {
            match key_name(key) {
                Some("queues") => {
                    capsule.queues = queues(value)
                        .map_err(|reason| format!("`:capsules:` → `{name}`: {reason}"))?;
                    has_queues = true;
                }
                Some("concurrency") => {
                    let concurrency = whole(value)
                        .filter(|n| *n > 0)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            format!(
                                "`:capsules:` → `{name}`: `concurrency` must be a whole number \
                                 above 0, like 1, not {}",
                                show(value)
                            )
                        })?;
                    capsule.concurrency = Some(concurrency);
                }
                _ => {
                    return Err(format!(
                        "`:capsules:` → `{name}`: unknown key {}; a capsule takes `queues` and \
                         `concurrency`",
                        show(key)
                    ));
                }
            }
        }
        // The default capsule keeps the top-level value of what it leaves out.
        if name != DEFAULT_CAPSULE {
            if !has_queues {
                return Err(format!(
                    "`:capsules:` → `{name}` has no `queues`; name at least one, like \
                     `queues: [{name}]`"
                ));
            }
            if capsule.concurrency.is_none() {
                return Err(format!(
                    "`:capsules:` → `{name}` has no `concurrency`: how many of its jobs run at \
                     once, like `concurrency: 1`"
                ));
            }
        }
        if read
            .iter()
            .any(|known: &Capsule| known.name == capsule.name)
        {
            return Err(format!(
                "`:capsules:` names `{name}` twice (`{name}:` and `:{name}:` are the same name)"
            ));
        }
        read.push(capsule);
    }
    Ok(read)
}

/// What one capsule's fetcher knows of its capsule.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// The capsule's name, for logs.
    pub(crate) name: String,
    /// How many of its jobs run at once: the size of its slots.
    pub(crate) concurrency: usize,
    /// Its position among the process's capsules (the default one is 0).
    pub(crate) index: usize,
    /// The queues whose entries in the working list are its own, when the process has several
    /// capsules; `None` when it is the only one, and every entry is its own.
    owned: Option<HashSet<String>>,
    /// Tells, in `Worker::drain`, when every capsule of the process is idle at once.
    pub(crate) drain: Arc<Drain>,
}

impl Scope {
    /// Whether an entry of the working list whose job names `queue` belongs to this capsule:
    /// one of its queues, or any when it is the process's only capsule.
    pub(crate) fn owns(&self, queue: &str) -> bool {
        self.owned
            .as_ref()
            .is_none_or(|queues| queues.contains(queue))
    }
}

/// A capsule ready to run: its scope and its queue order.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// What its fetcher knows of it.
    pub(crate) scope: Scope,
    /// Its queues, and the order to take from them in.
    pub(crate) order: QueueOrder,
    /// Its queues with their weights, each once, in order (for the heartbeat).
    pub(crate) weights: Vec<(String, u32)>,
    /// Sidekiq 7's mode name for its weights (for the heartbeat).
    pub(crate) mode: &'static str,
}

/// The plans of a process's capsules (already [checked](check)), the default one first.
pub(crate) fn plans(capsules: &[Capsule]) -> Vec<Plan> {
    let drain = Arc::new(Drain::new(capsules.len()));
    let several = capsules.len() > 1;
    capsules
        .iter()
        .enumerate()
        .map(|(index, capsule)| {
            let weights = capsule.weights();
            let owned = several.then(|| weights.iter().map(|(name, _)| name.clone()).collect());
            Plan {
                scope: Scope {
                    name: capsule.name.clone(),
                    concurrency: capsule.slots(),
                    index,
                    owned,
                    drain: Arc::clone(&drain),
                },
                order: QueueOrder::new(&capsule.queues),
                weights,
                mode: capsule.mode(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Capsule, check, plans};
    use crate::worker::order::QueueSpec;

    fn default() -> Capsule {
        Capsule::new("default").queues(["default"]).concurrency(5)
    }

    #[test]
    fn distinct_capsules_pass() {
        let single = Capsule::new("single").queues(["single"]).concurrency(1);
        assert_eq!(check(&[default(), single]), Ok(()));
    }

    #[test]
    fn every_mistake_is_named() {
        let cases = [
            (Capsule::new("default").queues(["x"]), "is the top-level"),
            (Capsule::new(" ").queues(["x"]), "has no name"),
            (
                Capsule::new("a").queues(["x"]).concurrency(0),
                "concurrency 0",
            ),
            (Capsule::new("a"), "has no queues"),
            (
                Capsule::new("a").queues(["x", "default"]),
                "in two capsules",
            ),
        ];
        for (capsule, expected) in cases {
            let error = check(&[default(), capsule]).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let twice = [
            default(),
            Capsule::new("a").queues(["x"]),
            Capsule::new("a").queues(["y"]),
        ];
        assert!(
            check(&twice)
                .unwrap_err()
                .contains("two capsules are named `a`")
        );
    }

    #[test]
    fn a_queue_in_two_capsules_says_why_it_is_refused() {
        let error = check(&[default(), Capsule::new("b").queues(["default"])]).unwrap_err();
        assert!(error.contains("`default` and `b`"), "{error}");
        assert!(error.contains("run them twice"), "{error}");
    }

    #[test]
    fn modes_and_weights_follow_sidekiq() {
        assert_eq!(default().mode(), "strict");
        let random = Capsule::new("r")
            .weighted_queues([QueueSpec::weighted("a", 1), QueueSpec::weighted("b", 1)]);
        assert_eq!(random.mode(), "random");
        let weighted = Capsule::new("w").weighted_queues([
            QueueSpec::weighted("a", 3),
            QueueSpec::weighted("b", 1),
            QueueSpec::weighted("a", 5),
        ]);
        assert_eq!(weighted.mode(), "weighted");
        assert_eq!(
            weighted.weights(),
            [("a".to_owned(), 5), ("b".to_owned(), 1)]
        );
    }

    #[test]
    fn only_one_capsule_owns_every_entry() {
        let alone = plans(&[default()]);
        assert!(alone[0].scope.owns("anything"));
        let two = plans(&[default(), Capsule::new("single").queues(["single"])]);
        assert!(two[0].scope.owns("default") && !two[0].scope.owns("single"));
        assert!(two[1].scope.owns("single") && !two[1].scope.owns("default"));
        assert!(!two[1].scope.owns("elsewhere"));
    }
}

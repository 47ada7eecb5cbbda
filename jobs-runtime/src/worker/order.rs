//! Which queue to take from first, as Sidekiq decides.
//!
//! All weights 0 (the default, `-q a -q b`): **strict**, the declared order, so earlier queues
//! are always drained first. Otherwise **weighted**: each fetch orders the queues as Sidekiq's
//! shuffle of a list in which a queue of weight `w` appears `w` times (0 counts as 1) would,
//! and takes the first non-empty queue, so a queue's chance of going first is proportional to
//! its weight.
//!
//! The order of first appearances in such a shuffle is a draw without replacement in which
//! each next queue is picked with a chance proportional to its weight among those left. That
//! draw is made directly, in O(n log n) for n queues (each queue gets the key `ln(u) / w` for
//! a uniform `u`, largest first: Efraimidis and Spirakis), instead of shuffling a list of
//! the weights' sum (up to 1,000 per queue) and removing its repeats (O(n²) for n queues of
//! weight 1). A worker on 1,000 weighted queues spent most of its fetch there.

use rand::Rng;

/// The largest queue weight: weights are relative (and Sidekiq's shuffle, which the order
/// follows, would hold a queue this many times).
pub(crate) const MAX_WEIGHT: u32 = 1_000;

/// A queue and its weight, as `-q name,weight` or `[name, weight]` give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// The queue's name.
    pub name: String,
    /// Its weight; 0 means "strict order" when every queue has 0.
    pub weight: u32,
}

impl QueueSpec {
    /// A queue with weight 0.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            weight: 0,
        }
    }

    /// A queue with a weight.
    pub fn weighted(name: impl Into<String>, weight: u32) -> Self {
        Self {
            name: name.into(),
            weight,
        }
    }

    /// Parses `name` or `name,weight`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (name, weight) = match text.split_once(',') {
            Some((name, weight)) => {
                let weight = weight
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|weight| *weight <= MAX_WEIGHT)
                    .ok_or_else(|| {
                        format!(
                            "the weight in `{text}` must be a whole number from 0 to \
                             {MAX_WEIGHT}, like `critical,3`"
                        )
                    })?;
                (name.trim(), weight)
            }
            None => (text.trim(), 0),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!(
                "`{text}` is not a queue name: use a name without spaces, like `critical`"
            ));
        }
        Ok(Self::weighted(name, weight))
    }
}

/// `specs` with each queue once: a repeated name keeps its first place and the larger weight.
pub(crate) fn unique(specs: &[QueueSpec]) -> Vec<QueueSpec> {
    let mut unique: Vec<QueueSpec> = Vec::new();
    for spec in specs {
        match unique.iter_mut().find(|seen| seen.name == spec.name) {
            Some(seen) => seen.weight = seen.weight.max(spec.weight),
            None => unique.push(spec.clone()),
        }
    }
    unique
}

/// The queues a worker takes from, and in which order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueOrder {
    /// The queue names, in declared order.
    names: Vec<String>,
    /// `None`: strict. `Some`: each queue's weight, 1 to [`MAX_WEIGHT`], by position.
    weighted: Option<Vec<u32>>,
    /// The queue names, most likely taken from first: in declared order when strict, heaviest
    /// first (ties in declared order) when weighted.
    preferred: Vec<String>,
}

impl QueueOrder {
    /// The order for these queues; a repeated name keeps its first place (and the larger
    /// weight), as [`unique`] says.
    pub(crate) fn new(specs: &[QueueSpec]) -> Self {
        let unique = unique(specs);
        let strict = unique.iter().all(|spec| spec.weight == 0);
        let weighted = (!strict).then(|| {
            unique
                .iter()
                .map(|spec| spec.weight.clamp(1, MAX_WEIGHT))
                .collect()
        });
        let mut by_weight: Vec<&QueueSpec> = unique.iter().collect();
        if weighted.is_some() {
            by_weight.sort_by_key(|spec| std::cmp::Reverse(spec.weight.clamp(1, MAX_WEIGHT)));
        }
        let preferred = by_weight.iter().map(|spec| spec.name.clone()).collect();
        Self {
            names: unique.into_iter().map(|spec| spec.name).collect(),
            weighted,
            preferred,
        }
    }

    /// The queue names, in declared order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The queue names, most likely taken from first: declared order when strict, heaviest
    /// first when weighted. The idle wait blocks on the first ones only.
    pub(crate) fn preferred(&self) -> &[String] {
        &self.preferred
    }

    /// Whether the order is strict.
    pub(crate) fn is_strict(&self) -> bool {
        self.weighted.is_none()
    }

    /// Positions into [`names`](Self::names), in the order to try for one fetch.
    pub(crate) fn next(&self, rng: &mut impl Rng) -> Vec<usize> {
        match &self.weighted {
            None => (0..self.names.len()).collect(),
            Some(weights) => {
                // `ln(u) / w` for `u` in (0, 1]: the largest key goes first.
                let mut keyed: Vec<(f64, usize)> = weights
                    .iter()
                    .enumerate()
                    .map(|(position, weight)| {
                        let uniform = 1.0 - rng.random::<f64>();
                        (uniform.ln() / f64::from(*weight), position)
                    })
                    .collect();
                keyed.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
                keyed.into_iter().map(|(_, position)| position).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::{QueueOrder, QueueSpec};

    #[test]
    fn no_weights_means_strict_declared_order() {
        let order = QueueOrder::new(&[QueueSpec::new("critical"), QueueSpec::new("default")]);
        assert!(order.is_strict());
        assert_eq!(order.next(&mut StdRng::seed_from_u64(1)), [0, 1]);
        assert_eq!(order.preferred(), ["critical", "default"]);
    }

    #[test]
    fn the_heaviest_queues_are_preferred_ties_in_declared_order() {
        let order = QueueOrder::new(&[
            QueueSpec::weighted("low", 1),
            QueueSpec::weighted("high", 5),
            QueueSpec::weighted("other", 1),
            QueueSpec::weighted("mid", 3),
        ]);
        assert_eq!(order.preferred(), ["high", "mid", "low", "other"]);
        assert_eq!(order.names(), ["low", "high", "other", "mid"]);
    }

    #[test]
    fn weights_make_the_first_queue_proportional() {
        let order = QueueOrder::new(&[QueueSpec::weighted("a", 3), QueueSpec::weighted("b", 1)]);
        let mut rng = StdRng::seed_from_u64(42);
        let firsts = (0..10_000).filter(|_| order.next(&mut rng)[0] == 0).count();
        assert!((7_200..7_800).contains(&firsts), "{firsts} of 10,000");
    }

    #[test]
    fn weights_order_the_later_queues_too() {
        // Sidekiq's shuffle of [a, a, b, c] puts b second in a third of fetches: after a
        // (a chance of 1/2), b or c alike; after c (1/4), b once in three.
        let order = QueueOrder::new(&[
            QueueSpec::weighted("a", 2),
            QueueSpec::weighted("b", 1),
            QueueSpec::weighted("c", 1),
        ]);
        let mut rng = StdRng::seed_from_u64(7);
        let mut seconds = 0;
        for _ in 0..12_000 {
            let next = order.next(&mut rng);
            assert_eq!(next.len(), 3);
            if next[1] == 1 {
                seconds += 1;
            }
        }
        assert!((3_700..4_300).contains(&seconds), "{seconds} of 12,000");
    }

    #[test]
    fn a_thousand_weighted_queues_each_appear_once() {
        let specs: Vec<QueueSpec> = (0..1_000)
            .map(|index| QueueSpec::weighted(format!("q{index}"), 1))
            .collect();
        let order = QueueOrder::new(&specs);
        let mut next = order.next(&mut StdRng::seed_from_u64(3));
        next.sort_unstable();
        assert_eq!(next, (0..1_000).collect::<Vec<_>>());
    }

    #[test]
    fn parses_names_and_weights() {
        assert_eq!(
            QueueSpec::parse("critical,3"),
            Ok(QueueSpec::weighted("critical", 3))
        );
        assert_eq!(QueueSpec::parse("low"), Ok(QueueSpec::new("low")));
        assert!(
            QueueSpec::parse("low,x")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(QueueSpec::parse(",2").is_err());
    }

    #[test]
    fn a_repeated_queue_keeps_its_first_place() {
        let order = QueueOrder::new(&[
            QueueSpec::new("a"),
            QueueSpec::new("b"),
            QueueSpec::new("a"),
        ]);
        assert_eq!(order.names(), ["a", "b"]);
    }
}

//! Which queue to take from first, as Sidekiq decides.
//!
//! All weights 0 (the default, `-q a -q b`): **strict**, the declared order, so earlier queues
//! are always drained first. Otherwise **weighted**: each fetch shuffles a list in which a queue
//! of weight `w` appears `w` times (0 counts as 1) and takes the first non-empty queue, so a
//! queue's chance of going first is proportional to its weight.

use rand::Rng;
use rand::seq::SliceRandom;

/// The largest queue weight: weights are relative, and each fetch shuffles a list this long
/// per queue.
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
    names: Vec<String>,
    /// `None`: strict. `Some`: each queue's position repeated by its weight.
    weighted: Option<Vec<usize>>,
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
                .enumerate()
                .flat_map(|(position, spec)| {
                    std::iter::repeat_n(position, spec.weight.clamp(1, MAX_WEIGHT) as usize)
                })
                .collect()
        });
        Self {
            names: unique.into_iter().map(|spec| spec.name).collect(),
            weighted,
        }
    }

    /// The queue names, in declared order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the order is strict.
    pub(crate) fn is_strict(&self) -> bool {
        self.weighted.is_none()
    }

    /// Positions into [`names`](Self::names), in the order to try for one fetch.
    pub(crate) fn next(&self, rng: &mut impl Rng) -> Vec<usize> {
        match &self.weighted {
            None => (0..self.names.len()).collect(),
            Some(expanded) => {
                let mut shuffled = expanded.clone();
                shuffled.shuffle(rng);
                let mut order = Vec::with_capacity(self.names.len());
                for position in shuffled {
                    if !order.contains(&position) {
                        order.push(position);
                    }
                }
                order
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
    }

    #[test]
    fn weights_make_the_first_queue_proportional() {
        let order = QueueOrder::new(&[QueueSpec::weighted("a", 3), QueueSpec::weighted("b", 1)]);
        let mut rng = StdRng::seed_from_u64(42);
        let firsts = (0..10_000).filter(|_| order.next(&mut rng)[0] == 0).count();
        assert!((7_200..7_800).contains(&firsts), "{firsts} of 10,000");
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

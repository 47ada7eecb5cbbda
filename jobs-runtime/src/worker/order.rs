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
//!
//! A round takes many jobs at once, and each of them stands for one of Sidekiq's fetches: so
//! each job of a weighted round is drawn a queue of its own ([`QueueOrder::picks`]: the first
//! queue of such a shuffle, a queue of weight `w` drawn with a chance of `w` over the weights'
//! sum), and only the jobs whose queue falls short go to the round's [`QueueOrder::next`]
//! order. A round of 40 jobs from two queues weighted 3 and 1 thus takes about 30 and 10, as
//! 40 of Sidekiq's fetches would, where a round in one order alone would take all 40 from the
//! queue that came first.

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

/// Which queues one fetch round takes from, and how many jobs from each ([`QueueOrder::draw`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Draw {
    /// Positions into [`QueueOrder::names`], in the order to take from.
    pub(crate) order: Vec<usize>,
    /// Weighted: `(index into order, jobs)`, the jobs drawn to each queue, by index; empty
    /// when strict.
    pub(crate) drawn: Vec<(usize, usize)>,
    /// Weighted: each queue's index in `order`, by position; empty when strict (or when no
    /// job was drawn).
    pub(crate) rank: Vec<usize>,
}

/// The queues a worker takes from, and in which order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueOrder {
    /// The queue names, in declared order.
    names: Vec<String>,
    /// `None`: strict. `Some`: each queue's weight, 1 to [`MAX_WEIGHT`], by position.
    weighted: Option<Vec<u32>>,
    /// Weighted: the weights' running sums, by position (the last is their sum), for
    /// [`picks`](Self::picks); empty when strict.
    running_sums: Vec<u64>,
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
        let running_sums = weighted
            .iter()
            .flatten()
            .scan(0u64, |sum: &mut u64, weight: &u32| {
                *sum += u64::from(*weight);
                Some(*sum)
            })
            .collect();
        Self {
            names: unique.into_iter().map(|spec| spec.name).collect(),
            weighted,
            running_sums,
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

    /// One round's draw for `wanted` jobs: [`next`](Self::next)'s order, and
    /// [`picks`](Self::picks)'s jobs per queue, each named by its index in that order and
    /// sorted by it.
    pub(crate) fn draw(&self, wanted: usize, rng: &mut impl Rng) -> Draw {
        let order = self.next(rng);
        let picks = self.picks(wanted, rng);
        let mut drawn = Vec::with_capacity(picks.len());
        let mut rank = Vec::new();
        if !picks.is_empty() {
            rank = vec![0; order.len()];
            for (index, &position) in order.iter().enumerate() {
                rank[position] = index;
            }
            drawn.extend(
                picks
                    .into_iter()
                    .map(|(position, jobs)| (rank[position], jobs)),
            );
            drawn.sort_unstable();
        }
        Draw { order, drawn, rank }
    }

    /// Weighted: a queue for each of `count` jobs, each drawn on its own with a chance
    /// proportional to its weight (the queue one of Sidekiq's fetches tries first), as
    /// `(position, jobs drawn)` pairs by position. Strict: none, the order alone decides.
    pub(crate) fn picks(&self, count: usize, rng: &mut impl Rng) -> Vec<(usize, usize)> {
        let Some(&total) = self.running_sums.last() else {
            return Vec::new();
        };
        let mut drawn: Vec<usize> = (0..count)
            .map(|_| {
                let point = rng.random_range(0..total);
                self.running_sums.partition_point(|&sum| sum <= point)
            })
            .collect();
        drawn.sort_unstable();
        let mut picks: Vec<(usize, usize)> = Vec::new();
        for position in drawn {
            match picks.last_mut() {
                Some((last, jobs)) if *last == position => *jobs += 1,
                _ => picks.push((position, 1)),
            }
        }
        picks
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
    fn each_job_of_a_round_is_drawn_a_queue_in_proportion() {
        let order = QueueOrder::new(&[
            QueueSpec::weighted("a", 3),
            QueueSpec::weighted("b", 1),
            QueueSpec::weighted("c", 0),
        ]);
        let mut rng = StdRng::seed_from_u64(11);
        let mut drawn = [0usize; 3];
        for _ in 0..1_000 {
            let picks = order.picks(40, &mut rng);
            assert_eq!(picks.iter().map(|(_, jobs)| jobs).sum::<usize>(), 40);
            assert!(picks.windows(2).all(|pair| pair[0].0 < pair[1].0));
            for (position, jobs) in picks {
                drawn[position] += jobs;
            }
        }
        // 40,000 jobs at 3 : 1 : 1 (weight 0 counts as 1): 24,000, 8,000, 8,000 expected.
        assert!((23_400..24_600).contains(&drawn[0]), "{drawn:?}");
        assert!((7_600..8_400).contains(&drawn[1]), "{drawn:?}");
        assert!((7_600..8_400).contains(&drawn[2]), "{drawn:?}");
    }

    #[test]
    fn a_draw_names_each_queue_by_its_place_in_the_order() {
        let order = QueueOrder::new(&[
            QueueSpec::weighted("a", 1),
            QueueSpec::weighted("b", 5),
            QueueSpec::weighted("c", 2),
        ]);
        let mut rng = StdRng::seed_from_u64(5);
        let draw = order.draw(30, &mut rng);
        let mut sorted = draw.order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2]);
        assert_eq!(draw.drawn.iter().map(|(_, jobs)| jobs).sum::<usize>(), 30);
        assert!(draw.drawn.windows(2).all(|pair| pair[0].0 < pair[1].0));
        // Drawn again with the same seed, the picks by position match the draw's by index.
        let mut rng = StdRng::seed_from_u64(5);
        let again = order.next(&mut rng);
        let picks = order.picks(30, &mut rng);
        let mut by_position: Vec<(usize, usize)> = draw
            .drawn
            .iter()
            .map(|&(index, jobs)| (again[index], jobs))
            .collect();
        by_position.sort_unstable();
        assert_eq!(by_position, picks);
    }

    #[test]
    fn strict_order_draws_no_queue_per_job() {
        let order = QueueOrder::new(&[QueueSpec::new("a"), QueueSpec::new("b")]);
        assert!(order.picks(40, &mut StdRng::seed_from_u64(1)).is_empty());
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

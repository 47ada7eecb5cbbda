//! One fetch's look at the queues: a round of the fetch script over all of them, or, weighted
//! on more than [`FIRST_LOOK`] queues, a first round over a few and a second over all only when
//! the first falls short.
//!
//! A weighted round draws each job a queue of its own and takes the jobs whose queue falls short
//! from the first queues of its order that have jobs ([`QueueOrder::draw`]). A first look asks
//! the first [`FIRST_LOOK`] queues of that order and the queues drawn jobs beyond them: it takes
//! what one look at all the queues would, as long as those first queues hold what the drawn
//! ones lack, and a busy worker on a thousand queues sends Redis about a hundred keys a round
//! instead of 1,000. The second round, when one is needed, asks all the queues in the
//! same order for what is still wanted.
//!
//! [`QueueOrder::draw`]: crate::worker::order::QueueOrder::draw

use std::collections::HashSet;

use crate::error::Error;
use crate::worker::order::Draw;
use crate::worker::shared::Shared;

use super::round::{self, QueueKeys, Round};

/// How many queues of its order a weighted round looks at first, when there are more.
pub(super) const FIRST_LOOK: usize = 32;

/// Which queues a round asked about: what it says of their pauses and caps replaces what was
/// known of them.
#[derive(Debug)]
pub(super) enum Asked {
    /// Every queue of the fetcher.
    All,
    /// These, by position in the fetcher's queues (`QueueOrder::names`).
    Some(Vec<usize>),
}

/// What one fetch's rounds took and saw.
#[derive(Debug)]
pub(super) struct Looked {
    /// The rounds that answered, in the order they ran, each with the queues it asked about.
    pub(super) rounds: Vec<(Asked, Round)>,
    /// The error of the round that failed, the last one run: it may have moved jobs whose
    /// reply never came.
    pub(super) error: Option<Error>,
    /// Whether first looks pay, as this fetch found; `None` when it cannot tell (strict order,
    /// [`FIRST_LOOK`] queues or fewer, nothing wanted, or no answer). A first look that fell
    /// short says no; a look at all the queues says yes when it took at least one job and
    /// every job it took came from the queues a first look would have asked.
    pub(super) first_looks_pay: Option<bool>,
}

/// Takes up to `wanted` jobs (of a capped queue only while fewer than `free` were taken) from
/// `keys` (the fetcher's queues, by position) in `draw`'s order and numbers; with `first`, a
/// weighted fetch on more than [`FIRST_LOOK`] queues that wants jobs looks first at a few.
pub(super) async fn look(
    shared: &Shared,
    keys: &[QueueKeys],
    strict: bool,
    draw: &Draw,
    wanted: usize,
    free: usize,
    first: bool,
) -> Looked {
    let queues: Vec<&QueueKeys> = draw.order.iter().map(|&position| &keys[position]).collect();
    let first_look =
        (!strict && wanted > 0 && queues.len() > FIRST_LOOK).then(|| FirstLook::new(draw));
    let first_look = match first_look {
        Some(first_look) if first => first_look,
        first_look => {
            return look_at_all(shared, keys, &queues, draw, wanted, free, first_look).await;
        }
    };
    let asked: Vec<&QueueKeys> = first_look
        .positions
        .iter()
        .map(|&position| &keys[position])
        .collect();
    let round = match round::run(shared, &asked, &first_look.drawn, wanted, free).await {
        Ok(round) => round,
        Err(error) => {
            return Looked {
                rounds: Vec::new(),
                error: Some(error),
                first_looks_pay: None,
            };
        }
    };
    let took = round.jobs.len();
    // Fewer than asked when the look found a cap the worker had not known of (`round::run`).
    let wanted = round.wanted;
    let mut rounds = vec![(Asked::Some(first_look.positions), round)];
    if took >= wanted {
        return Looked {
            rounds,
            error: None,
            first_looks_pay: Some(true),
        };
    }
    // What the first look took of its drawn jobs is taken: the rest come in order.
    let error = match round::run(
        shared,
        &queues,
        &[],
        wanted - took,
        free.saturating_sub(took),
    )
    .await
    {
        Ok(round) => {
            rounds.push((Asked::All, round));
            None
        }
        Err(error) => Some(error),
    };
    Looked {
        rounds,
        error,
        first_looks_pay: Some(false),
    }
}

/// One round over all of `queues` (`keys`' queues in `draw`'s order); `first_look`, the first
/// look it could have been, says whether first looks pay.
async fn look_at_all(
    shared: &Shared,
    keys: &[QueueKeys],
    queues: &[&QueueKeys],
    draw: &Draw,
    wanted: usize,
    free: usize,
    first_look: Option<FirstLook>,
) -> Looked {
    match round::run(shared, queues, &draw.drawn, wanted, free).await {
        Ok(round) => {
            let first_looks_pay = first_look.map(|first_look| {
                let asked = first_look.names(keys);
                !round.jobs.is_empty()
                    && round
                        .jobs
                        .iter()
                        .all(|job| asked.contains(job.queue.as_str()))
            });
            Looked {
                rounds: vec![(Asked::All, round)],
                error: None,
                first_looks_pay,
            }
        }
        Err(error) => Looked {
            rounds: Vec::new(),
            error: Some(error),
            first_looks_pay: None,
        },
    }
}

/// The queues a weighted round on more than [`FIRST_LOOK`] queues looks at first: the first
/// [`FIRST_LOOK`] of its order, then those beyond them it drew jobs for, in the same order.
#[derive(Debug)]
struct FirstLook {
    /// The queues, by position in the fetcher's queues, in the order to take from.
    positions: Vec<usize>,
    /// The draw's `(index into positions, jobs)`: its indices into the round's order
    /// renumbered.
    drawn: Vec<(usize, usize)>,
}

impl FirstLook {
    /// The first look of `draw` (over more than [`FIRST_LOOK`] queues).
    fn new(draw: &Draw) -> Self {
        let mut positions: Vec<usize> = draw.order[..FIRST_LOOK].to_vec();
        let drawn = draw
            .drawn
            .iter()
            .map(|&(index, jobs)| {
                if index < FIRST_LOOK {
                    (index, jobs)
                } else {
                    positions.push(draw.order[index]);
                    (positions.len() - 1, jobs)
                }
            })
            .collect();
        Self { positions, drawn }
    }

    /// The names of the queues it asks (`keys` being the fetcher's queues).
    fn names<'a>(&self, keys: &'a [QueueKeys]) -> HashSet<&'a str> {
        self.positions
            .iter()
            .map(|&position| keys[position].name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{FIRST_LOOK, FirstLook};
    use crate::worker::order::Draw;

    #[test]
    fn a_first_look_asks_the_first_queues_and_those_drawn_beyond_them() {
        // 40 queues in the order 39, 38, … 0; jobs drawn to the 3rd (2 jobs), the 35th (1) and
        // the 40th (4) of that order.
        let draw = Draw {
            order: (0..40).rev().collect(),
            drawn: vec![(2, 2), (34, 1), (39, 4)],
        };
        let first = FirstLook::new(&draw);
        let expected: Vec<usize> = (8..40).rev().chain([5, 0]).collect();
        assert_eq!(first.positions, expected);
        assert_eq!(first.drawn, [(2, 2), (FIRST_LOOK, 1), (FIRST_LOOK + 1, 4)]);
    }
}

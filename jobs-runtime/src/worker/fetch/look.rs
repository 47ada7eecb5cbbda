//! One fetch's look at the queues: a round of the fetch script over all of them, or, on more
//! queues than a first look asks, a first round over some and a second over all only when the
//! first falls short.
//!
//! In strict order a round takes from the queues in their order until it has its jobs, so a
//! round over the first queues takes what a round over all of them would, whenever it fills
//! (but for a queue past them capped since the worker last looked at it: a round over all
//! would have found the cap and taken no more than the free slots; the next look at all does).
//! A strict first look asks the queues up to the furthest one the last fetch took from, and
//! [`FIRST_LOOK`] more ([`Span::Strict`]): every queue ahead of the jobs is still asked, and a
//! worker on a thousand queues whose jobs wait in the first few sends Redis a few dozen keys a
//! round instead of 1,000.
//!
//! A weighted round draws each job a queue of its own and takes the jobs whose queue falls short
//! from the first queues of its order that have jobs ([`QueueOrder::draw`]). A first look asks
//! the first [`FIRST_LOOK`] queues of that order, the queues drawn jobs beyond them, and the
//! queues known to hold jobs ([`Holders`]: those the last look at all found, when it found no
//! more than [`FIRST_LOOK`], and those first looks took from since). It takes what one look at
//! all the queues would, as long as the queues it asks hold what the drawn ones lack and those
//! it skips hold nothing: with the holders known, unless a skipped queue got jobs since the
//! last look at all. Such a queue's jobs are taken once a round draws it a job or puts it
//! among the first of its order, and it is known to hold jobs from the next look at all, about
//! a second later (one comes once the pauses known are a second old). A busy worker on a
//! thousand queues sends Redis about a hundred keys a round instead of 1,000, whether its jobs
//! are spread over the queues or wait in a few of them. The second round, when one is needed,
//! asks all the queues in the same order for what is still wanted.
//!
//! [`QueueOrder::draw`]: crate::worker::order::QueueOrder::draw

use std::collections::HashSet;

use crate::error::Error;
use crate::worker::order::Draw;
use crate::worker::shared::Shared;

use super::round::{self, QueueKeys, Round};

/// How many queues of its order a weighted round looks at first, when there are more; how many
/// a strict one looks at past the furthest one the last fetch took from.
pub(super) const FIRST_LOOK: usize = 32;

/// Which queues a first look asks, by the order's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Span {
    /// Weighted: the first [`FIRST_LOOK`] queues of the round's order, and those beyond them
    /// it drew jobs for or knows to hold jobs.
    Weighted {
        /// The queues known to hold jobs, by position in the fetcher's queues, sorted: at most
        /// [`FIRST_LOOK`] of them ([`Holders`]); empty when not known.
        holders: Vec<usize>,
    },
    /// Strict: the first `reach` + [`FIRST_LOOK`] queues, `reach` being how many queues of the
    /// order the last fetch that took jobs reached (1 + the position of the furthest one it
    /// took from).
    Strict {
        /// How many queues the last fetch that took jobs reached.
        reach: usize,
    },
}

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
    /// Whether first looks pay, as this fetch found; `None` when it cannot tell (no first look
    /// to ask fewer queues than all: weighted on [`FIRST_LOOK`] queues or fewer, strict within
    /// [`FIRST_LOOK`] of the last; nothing wanted; or no answer). A first look that fell
    /// short says no; a look at all the queues says yes when it took at least one job and
    /// every job it took came from the queues a first look would have asked.
    pub(super) first_looks_pay: Option<bool>,
    /// Strict order: how many queues of the order this fetch's jobs reached (1 + the position
    /// of the furthest queue it took from), for the next fetch's [`Span::Strict`]; `None` when
    /// weighted, or when it took no job.
    pub(super) reach: Option<usize>,
    /// Weighted, on more than [`FIRST_LOOK`] queues: what this fetch saw of the queues
    /// holding jobs, for the next fetches' [`Span::Weighted`]; `None` when strict, on fewer
    /// queues, or when no round answered.
    pub(super) seen: Option<Seen>,
}

/// What a weighted fetch saw of which queues hold jobs (by position in the fetcher's queues).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    /// A round over all the queues found these holding jobs after it, and no others: at most
    /// [`FIRST_LOOK`], sorted.
    Exactly(Vec<usize>),
    /// A round over all the queues found more than [`FIRST_LOOK`] holding jobs.
    TooMany,
    /// A first look took jobs from these.
    TookFrom(Vec<usize>),
}

/// The queues a weighted fetcher knows to hold jobs, which its first looks ask beside the first
/// of the order and the drawn ones. With them asked, a first look takes what a look at all
/// would, as long as no other queue got jobs since the last look at all; without them, a
/// worker whose jobs wait in one of 1,000 queues would find them in a first look only when a
/// round drew that queue, and would pass all 1,000 keys a round.
///
/// Each look at all says which queues hold jobs, when no more than [`FIRST_LOOK`] do; a
/// first look adds those it took from (a queue that got jobs since, found by a draw). More
/// than [`FIRST_LOOK`] is not known: the first of each round's order then mostly hold jobs
/// themselves.
#[derive(Debug, Default)]
pub(super) struct Holders {
    /// The queues, by position, sorted; `None` when not known.
    known: Option<Vec<usize>>,
}

impl Holders {
    /// The queues known to hold jobs, for a first look: none when not known.
    pub(super) fn span(&self) -> Span {
        Span::Weighted {
            holders: self.known.clone().unwrap_or_default(),
        }
    }

    /// Keeps what a fetch saw.
    pub(super) fn learn(&mut self, seen: Seen) {
        match seen {
            Seen::Exactly(holders) => self.known = Some(holders),
            Seen::TooMany => self.known = None,
            Seen::TookFrom(positions) => {
                if let Some(known) = &mut self.known {
                    for position in positions {
                        if let Err(at) = known.binary_search(&position) {
                            known.insert(at, position);
                        }
                    }
                    if known.len() > FIRST_LOOK {
                        self.known = None;
                    }
                }
            }
        }
    }
}

/// Takes up to `wanted` jobs (of a capped queue only while fewer than `free` were taken) from
/// `keys` (the fetcher's queues, by position) in `draw`'s order and numbers; with `first`, a
/// fetch that wants jobs from more queues than `span`'s first look asks looks first at those.
pub(super) async fn look(
    shared: &Shared,
    keys: &[QueueKeys],
    span: &Span,
    draw: &Draw,
    wanted: usize,
    free: usize,
    first: bool,
) -> Looked {
    let first_look = FirstLook::new(draw, span).filter(|_| wanted > 0);
    let first_look = match first_look {
        Some(first_look) if first => first_look,
        first_look => return look_at_all(shared, keys, draw, wanted, free, first_look, span).await,
    };
    let asked: Vec<&QueueKeys> = first_look
        .positions
        .iter()
        .map(|&position| &keys[position])
        .collect();
    let round = match round::run(shared, &asked, &first_look.drawn, wanted, free, 0).await {
        Ok(round) => round,
        Err(error) => return Looked::failed(error),
    };
    let took = round.jobs.len();
    // Fewer than asked when the look found a cap the worker had not known of (`round::run`).
    let wanted = round.wanted;
    // A strict first look asks the first queues of the order: its positions are the order's.
    let first_reach = round.reach;
    let took_from = seen_by_first_look(span, &round, &first_look.positions);
    let mut rounds = vec![(Asked::Some(first_look.positions), round)];
    if took >= wanted {
        return Looked {
            rounds,
            error: None,
            first_looks_pay: Some(true),
            reach: strict_reach(span, [first_reach]),
            seen: took_from,
        };
    }
    // What the first look took of its drawn jobs is taken: the rest come in order.
    let queues = in_order(keys, draw);
    let (error, reach, seen) = match round::run(
        shared,
        &queues,
        &[],
        wanted - took,
        free.saturating_sub(took),
        holders_wanted(span, draw),
    )
    .await
    {
        Ok(round) => {
            let reach = round.reach;
            let seen = seen_by_all(span, draw, &round);
            rounds.push((Asked::All, round));
            (None, strict_reach(span, [first_reach, reach]), seen)
        }
        Err(error) => (Some(error), strict_reach(span, [first_reach]), took_from),
    };
    Looked {
        rounds,
        error,
        first_looks_pay: Some(false),
        reach,
        seen,
    }
}

impl Looked {
    /// A fetch whose first round failed with `error`.
    fn failed(error: Error) -> Self {
        Self {
            rounds: Vec::new(),
            error: Some(error),
            first_looks_pay: None,
            reach: None,
            seen: None,
        }
    }
}

/// Strict order: how many queues of the order the rounds' jobs reached, from each round's
/// [`Round::reach`](round::Round::reach) (its positions being the order's: all the queues, or
/// the first of them); `None` when weighted, or when no round took a job.
fn strict_reach(span: &Span, reaches: impl IntoIterator<Item = usize>) -> Option<usize> {
    match span {
        Span::Strict { .. } => reaches.into_iter().max().filter(|&reach| reach > 0),
        Span::Weighted { .. } => None,
    }
}

/// How many queues holding jobs a round over all the queues reports ([`round::run`]): as many
/// as a weighted fetcher keeps ([`Holders`]), when it has more queues than a first look asks;
/// none otherwise.
fn holders_wanted(span: &Span, draw: &Draw) -> usize {
    match span {
        Span::Weighted { .. } if draw.order.len() > FIRST_LOOK => FIRST_LOOK,
        Span::Weighted { .. } | Span::Strict { .. } => 0,
    }
}

/// What a weighted round over all the queues (in `draw`'s order) saw of those holding jobs;
/// `None` when it was not asked ([`holders_wanted`]).
fn seen_by_all(span: &Span, draw: &Draw, round: &Round) -> Option<Seen> {
    if holders_wanted(span, draw) == 0 {
        return None;
    }
    Some(match &round.holders {
        Some(holders) => {
            let mut positions = in_fetcher(holders, &draw.order);
            positions.sort_unstable();
            Seen::Exactly(positions)
        }
        None => Seen::TooMany,
    })
}

/// The queues a weighted first look (asking `asked`, by position in the fetcher's queues, in
/// its order) took jobs from; `None` when strict.
fn seen_by_first_look(span: &Span, round: &Round, asked: &[usize]) -> Option<Seen> {
    match span {
        Span::Weighted { .. } => Some(Seen::TookFrom(in_fetcher(&round.sources, asked))),
        Span::Strict { .. } => None,
    }
}

/// A round's `positions` (from 1, in its order) as positions in the fetcher's queues, `asked`
/// being the round's queues by position in the fetcher's queues.
fn in_fetcher(positions: &[usize], asked: &[usize]) -> Vec<usize> {
    positions
        .iter()
        .filter_map(|&position| asked.get(position.checked_sub(1)?).copied())
        .collect()
}

/// `keys` (the fetcher's queues) in `draw`'s order.
fn in_order<'a>(keys: &'a [QueueKeys], draw: &Draw) -> Vec<&'a QueueKeys> {
    draw.order.iter().map(|&position| &keys[position]).collect()
}

/// One round over all of `keys`' queues in `draw`'s order; `first_look`, the first look it
/// could have been (by `span`), says whether first looks pay.
async fn look_at_all(
    shared: &Shared,
    keys: &[QueueKeys],
    draw: &Draw,
    wanted: usize,
    free: usize,
    first_look: Option<FirstLook>,
    span: &Span,
) -> Looked {
    let queues = in_order(keys, draw);
    let holders = holders_wanted(span, draw);
    match round::run(shared, &queues, &draw.drawn, wanted, free, holders).await {
        Ok(round) => {
            let first_looks_pay = first_look.map(|first_look| {
                !round.jobs.is_empty() && first_look.would_have_taken(keys, &round)
            });
            let reach = strict_reach(span, [round.reach]);
            let seen = seen_by_all(span, draw, &round);
            Looked {
                rounds: vec![(Asked::All, round)],
                error: None,
                first_looks_pay,
                reach,
                seen,
            }
        }
        Err(error) => Looked::failed(error),
    }
}

/// The queues a round looks at first, when it has more: weighted, the first [`FIRST_LOOK`] of
/// its order, then those beyond them it drew jobs for or knows to hold jobs, in the same
/// order; strict, the first of its order ([`Span`]).
#[derive(Debug)]
struct FirstLook {
    /// The queues, by position in the fetcher's queues, in the order to take from.
    positions: Vec<usize>,
    /// The draw's `(index into positions, jobs)`: its indices into the round's order
    /// renumbered.
    drawn: Vec<(usize, usize)>,
    /// Whether it asks the first queues of the order alone (strict).
    prefix: bool,
}

impl FirstLook {
    /// The first look of `draw` by `span`; `None` when it would ask every queue.
    fn new(draw: &Draw, span: &Span) -> Option<Self> {
        match span {
            Span::Weighted { holders } if draw.order.len() > FIRST_LOOK => {
                Some(Self::weighted(draw, holders))
            }
            &Span::Strict { reach } if draw.order.len() > reach.saturating_add(FIRST_LOOK) => {
                Some(Self {
                    positions: draw.order[..reach + FIRST_LOOK].to_vec(),
                    drawn: Vec::new(),
                    prefix: true,
                })
            }
            Span::Weighted { .. } | Span::Strict { .. } => None,
        }
    }

    /// The weighted first look of `draw` (over more than [`FIRST_LOOK`] queues), `holders`
    /// being the queues known to hold jobs.
    fn weighted(draw: &Draw, holders: &[usize]) -> Self {
        // The indices into the order past the first queues: drawn, or holding jobs.
        let mut beyond: Vec<usize> = draw
            .drawn
            .iter()
            .map(|&(index, _)| index)
            .chain(
                holders
                    .iter()
                    .filter_map(|&position| draw.rank.get(position).copied()),
            )
            .filter(|&index| index >= FIRST_LOOK)
            .collect();
        beyond.sort_unstable();
        beyond.dedup();
        let positions = draw.order[..FIRST_LOOK]
            .iter()
            .copied()
            .chain(beyond.iter().map(|&index| draw.order[index]))
            .collect();
        let drawn = draw
            .drawn
            .iter()
            .map(|&(index, jobs)| {
                if index < FIRST_LOOK {
                    (index, jobs)
                } else {
                    (
                        FIRST_LOOK + beyond.partition_point(|&other| other < index),
                        jobs,
                    )
                }
            })
            .collect();
        Self {
            positions,
            drawn,
            prefix: false,
        }
    }

    /// Whether every job `round` (a round over all the queues, `keys` being the fetcher's)
    /// took came from the queues this look asks.
    fn would_have_taken(&self, keys: &[QueueKeys], round: &Round) -> bool {
        if self.prefix {
            // The first queues of the order: the round's furthest job within them.
            return round.reach <= self.positions.len();
        }
        let asked: HashSet<&str> = self
            .positions
            .iter()
            .map(|&position| &*keys[position].name)
            .collect();
        round.jobs.iter().all(|job| asked.contains(&*job.queue))
    }
}

#[cfg(test)]
mod tests {
    use super::{FIRST_LOOK, FirstLook, Holders, Seen, Span};
    use crate::worker::order::Draw;

    /// 40 queues in the order 39, 38, … 0; jobs drawn to the 3rd (2 jobs), the 35th (1) and
    /// the 40th (4) of that order.
    fn weighted_draw() -> Draw {
        Draw {
            order: (0..40).rev().collect(),
            drawn: vec![(2, 2), (34, 1), (39, 4)],
            rank: (0..40).rev().collect(),
        }
    }

    #[test]
    fn a_first_look_asks_the_first_queues_and_those_drawn_beyond_them() {
        let draw = weighted_draw();
        let first = FirstLook::new(
            &draw,
            &Span::Weighted {
                holders: Vec::new(),
            },
        )
        .unwrap();
        let expected: Vec<usize> = (8..40).rev().chain([5, 0]).collect();
        assert_eq!(first.positions, expected);
        assert_eq!(first.drawn, [(2, 2), (FIRST_LOOK, 1), (FIRST_LOOK + 1, 4)]);
    }

    #[test]
    fn a_weighted_first_look_also_asks_the_queues_known_to_hold_jobs_in_order() {
        // Queue 1 is 39th in the order, queue 20 20th (among the first asked anyway), queue 0
        // 40th (drawn too).
        let draw = weighted_draw();
        let holders = vec![0, 1, 20];
        let first = FirstLook::new(&draw, &Span::Weighted { holders }).unwrap();
        let expected: Vec<usize> = (8..40).rev().chain([5, 1, 0]).collect();
        assert_eq!(first.positions, expected);
        // The 40th queue's drawn jobs now point past queue 1, asked before it.
        assert_eq!(first.drawn, [(2, 2), (FIRST_LOOK, 1), (FIRST_LOOK + 2, 4)]);
    }

    #[test]
    fn the_holders_a_look_at_all_found_grow_with_first_looks_until_there_are_too_many() {
        let holders_of = |holders: &Holders| match holders.span() {
            Span::Weighted { holders } => holders,
            Span::Strict { .. } => unreachable!("a weighted span"),
        };
        let mut holders = Holders::default();
        // Not known before a look at all: first looks take only what they learn from those.
        holders.learn(Seen::TookFrom(vec![5]));
        assert!(holders_of(&holders).is_empty());
        holders.learn(Seen::Exactly(vec![3, 9]));
        assert_eq!(holders_of(&holders), [3, 9]);
        holders.learn(Seen::TookFrom(vec![9, 5, 1]));
        assert_eq!(holders_of(&holders), [1, 3, 5, 9]);
        // A look at all replaces them.
        holders.learn(Seen::Exactly(vec![7]));
        assert_eq!(holders_of(&holders), [7]);
        // More than a first look's worth: not kept.
        holders.learn(Seen::TookFrom((100..100 + FIRST_LOOK).collect()));
        assert!(holders_of(&holders).is_empty());
        holders.learn(Seen::Exactly(vec![2]));
        holders.learn(Seen::TooMany);
        assert!(holders_of(&holders).is_empty());
    }

    #[test]
    fn a_strict_first_look_asks_the_queues_up_to_the_furthest_reached_and_more() {
        let draw = Draw {
            order: (0..100).collect(),
            drawn: Vec::new(),
            rank: Vec::new(),
        };
        let first = FirstLook::new(&draw, &Span::Strict { reach: 10 }).unwrap();
        assert_eq!(first.positions, (0..10 + FIRST_LOOK).collect::<Vec<_>>());
        assert!(first.drawn.is_empty());
        // Reaching within FIRST_LOOK of the last queue: the look is at all of them.
        assert!(
            FirstLook::new(
                &draw,
                &Span::Strict {
                    reach: 100 - FIRST_LOOK
                }
            )
            .is_none()
        );
        assert!(FirstLook::new(&draw, &Span::Strict { reach: usize::MAX }).is_none());
    }
}

//! Which slice of a long list to read.

/// The most entries one read returns; a larger request is cut to this.
pub const MAX_PAGE_SIZE: usize = 1_000;

/// Which end of a list comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// The newest first: the most recently pushed job of a queue, the latest time of a set.
    #[default]
    NewestFirst,
    /// The oldest first: the next job a worker takes, the earliest time of a set.
    OldestFirst,
}

/// A slice of a queue or sorted set: skip `offset` entries, then take up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Entries to skip.
    pub offset: usize,
    /// Entries to take, at most [`MAX_PAGE_SIZE`].
    pub count: usize,
    /// Which end comes first.
    pub order: Order,
}

impl Page {
    /// The first `count` entries, newest first.
    pub fn first(count: usize) -> Self {
        Self {
            offset: 0,
            count: count.min(MAX_PAGE_SIZE),
            order: Order::NewestFirst,
        }
    }

    /// Page `number` (from 1) of pages of `size` entries, in `order`.
    pub fn numbered(number: usize, size: usize, order: Order) -> Self {
        let size = size.clamp(1, MAX_PAGE_SIZE);
        Self {
            offset: number.max(1).saturating_sub(1).saturating_mul(size),
            count: size,
            order,
        }
    }

    /// The inclusive index range to read from a list or set of `len` entries stored oldest
    /// first (a sorted set by score, or a queue from its right end), or `None` when the page
    /// lies past the end.
    pub(crate) fn oldest_first_range(&self, len: usize) -> Option<(isize, isize)> {
        let count = self.count.min(MAX_PAGE_SIZE);
        if count == 0 || self.offset >= len {
            return None;
        }
        let last = (self.offset + count).min(len) - 1;
        let (start, stop) = match self.order {
            Order::OldestFirst => (self.offset, last),
            Order::NewestFirst => (len - 1 - last, len - 1 - self.offset),
        };
        Some((to_index(start), to_index(stop)))
    }
}

fn to_index(value: usize) -> isize {
    isize::try_from(value).unwrap_or(isize::MAX)
}

#[cfg(test)]
mod tests {
    use super::{Order, Page};

    #[test]
    fn pages_count_from_either_end() {
        let newest = Page::numbered(1, 2, Order::NewestFirst);
        assert_eq!(newest.oldest_first_range(5), Some((3, 4)));
        let second = Page::numbered(2, 2, Order::NewestFirst);
        assert_eq!(second.oldest_first_range(5), Some((1, 2)));
        let last = Page::numbered(3, 2, Order::NewestFirst);
        assert_eq!(last.oldest_first_range(5), Some((0, 0)));
        let oldest = Page::numbered(3, 2, Order::OldestFirst);
        assert_eq!(oldest.oldest_first_range(5), Some((4, 4)));
        assert_eq!(
            Page::numbered(4, 2, Order::OldestFirst).oldest_first_range(5),
            None
        );
        assert_eq!(Page::first(10).oldest_first_range(0), None);
    }

    #[test]
    fn page_sizes_are_capped() {
        assert_eq!(Page::first(1_000_000).count, super::MAX_PAGE_SIZE);
        assert_eq!(Page::numbered(0, 0, Order::NewestFirst).count, 1);
    }
}

//! One module per tab. Handlers read through [`crate::api`] only.

pub(crate) mod batches;
pub(crate) mod busy;
pub(crate) mod dashboard;
pub(crate) mod limits;
pub(crate) mod metrics;
pub(crate) mod periodic;
pub(crate) mod queues;
pub(crate) mod sets;
pub(crate) mod workflows;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::failure::Failure;
use crate::api::Order;

/// Entries on one page of a list.
pub(crate) const PAGE_SIZE: usize = 25;

/// The longest filter a list accepts.
pub(crate) const MAX_FILTER_CHARS: usize = 100;

/// The query of a paginated list: `?page=2&order=asc&substr=…`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    page: Option<usize>,
    order: Option<String>,
    substr: Option<String>,
}

impl ListQuery {
    /// The page number, from 1.
    pub(crate) fn page(&self) -> usize {
        self.page.unwrap_or(1).clamp(1, 1_000_000)
    }

    /// `asc` lists the oldest first; anything else the newest first.
    pub(crate) fn order(&self) -> Order {
        match self.order.as_deref() {
            Some("asc") => Order::OldestFirst,
            _ => Order::NewestFirst,
        }
    }

    /// The order's name in a link.
    pub(crate) fn order_name(&self) -> &'static str {
        match self.order() {
            Order::OldestFirst => "asc",
            Order::NewestFirst => "desc",
        }
    }

    /// The filter, trimmed; refused when longer than [`MAX_FILTER_CHARS`].
    pub(crate) fn filter(&self) -> Result<&str, Failure> {
        let filter = self.substr.as_deref().unwrap_or_default().trim();
        if filter.chars().count() > MAX_FILTER_CHARS {
            return Err(Failure::bad_request(format!(
                "the filter is longer than {MAX_FILTER_CHARS} characters"
            )));
        }
        Ok(filter)
    }

    /// This query's page of `items`, already in the order shown, in pages of `size`: for the
    /// lists read whole and paged in memory (queue names, processes, search results).
    pub(crate) fn slice<T>(&self, items: Vec<T>, size: usize) -> Vec<T> {
        items
            .into_iter()
            .skip((self.page() - 1).saturating_mul(size))
            .take(size)
            .collect()
    }
}

/// `text` made safe as one segment of a path: every byte but letters and digits escaped.
pub(crate) fn segment(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::ListQuery;

    #[test]
    fn a_page_of_a_list_read_whole() {
        let on = |page: Option<usize>| ListQuery {
            page,
            ..ListQuery::default()
        };
        let items: Vec<u32> = (1..=7).collect();
        assert_eq!(on(None).slice(items.clone(), 3), vec![1, 2, 3]);
        assert_eq!(on(Some(3)).slice(items.clone(), 3), vec![7]);
        assert_eq!(on(Some(4)).slice(items.clone(), 3), Vec::<u32>::new());
        assert_eq!(on(Some(0)).slice(items.clone(), 3), vec![1, 2, 3]);
        assert_eq!(on(Some(usize::MAX)).slice(items, 3), Vec::<u32>::new());
    }
}

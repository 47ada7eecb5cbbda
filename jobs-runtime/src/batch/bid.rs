//! A batch's id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::short_id;

/// A batch id: 14 characters of URL-safe base64 (`A-Z a-z 0-9 - _`), Sidekiq Pro's shape, from
/// 84 random bits.
///
/// ```
/// let bid = jobs_runtime::Bid::generate();
/// assert_eq!(bid.as_str().len(), 14);
/// assert_eq!(bid.as_str().parse::<jobs_runtime::Bid>().unwrap(), bid);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bid(String);

/// Why a text is not a [`Bid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a batch id: a bid is 14 characters of URL-safe base64 (A-Z, a-z, 0-9, - \
     and _), like `Bid::generate()` makes"
)]
pub struct InvalidBid {
    /// The text that was given.
    pub text: String,
}

impl Bid {
    /// A new random bid: 84 random bits as 14 URL-safe base64 characters.
    pub fn generate() -> Self {
        Self(short_id::generate())
    }

    /// The bid as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Bid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Bid {
    type Err = InvalidBid;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if short_id::is_valid(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidBid {
                text: text.to_owned(),
            })
        }
    }
}

impl Serialize for Bid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::Bid;

    #[test]
    fn a_generated_bid_is_14_url_safe_characters() {
        for _ in 0..1_000 {
            let bid = Bid::generate();
            assert_eq!(bid.as_str().len(), 14, "{bid}");
            assert!(
                bid.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{bid}"
            );
        }
    }

    #[test]
    fn generated_bids_differ() {
        let bids: HashSet<Bid> = (0..10_000).map(|_| Bid::generate()).collect();
        assert_eq!(bids.len(), 10_000);
    }

    #[test]
    fn a_bid_reads_back_from_its_text() {
        let bid = Bid::generate();
        assert_eq!(bid.to_string().parse::<Bid>().unwrap(), bid);
        assert_eq!(
            "b-Zx_09azAZ1-2".parse::<Bid>().unwrap().as_str(),
            "b-Zx_09azAZ1-2"
        );
    }

    #[test]
    fn other_text_is_refused_with_what_a_bid_is() {
        for text in [
            "",
            "short",
            "fifteen_chars_x",
            "with space 123",
            "plus+slash/xxx",
        ] {
            let error = text.parse::<Bid>().unwrap_err();
            assert!(error.to_string().contains("14 characters"), "{error}");
        }
    }

    #[test]
    fn a_bid_is_a_json_string() {
        let bid = Bid::generate();
        let json = serde_json::to_string(&bid).unwrap();
        assert_eq!(json, format!("\"{bid}\""));
        assert_eq!(serde_json::from_str::<Bid>(&json).unwrap(), bid);
        assert!(serde_json::from_str::<Bid>("\"nope\"").is_err());
    }
}

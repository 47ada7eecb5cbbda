//! Workflow ids, and the bid of each step's batch.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::short_id;

/// A workflow's id: 14 characters of URL-safe base64 (`A-Z a-z 0-9 - _`) from 84 random bits,
/// the shape of a bid. Made by [`generate`](Self::generate), or parsed (`str::parse`,
/// [`parse`](Self::parse)), which refuses any other shape: an id is part of Redis key names,
/// so `abc:done` must not name another key.
///
/// ```
/// use jobs_runtime::WorkflowId;
/// let wid = WorkflowId::generate();
/// assert_eq!(wid.as_str().parse::<WorkflowId>().unwrap(), wid);
/// assert!(WorkflowId::parse("abc:done").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkflowId(String);

/// Why a text is not a [`WorkflowId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a workflow id: an id is 14 characters of URL-safe base64 (A-Z, a-z, 0-9, - \
     and _), like `WorkflowId::generate()` makes"
)]
pub struct InvalidWorkflowId {
    /// The text that was given.
    pub text: String,
}

impl WorkflowId {
    /// A new random id.
    pub fn generate() -> Self {
        Self(short_id::generate())
    }

    /// `text` as a workflow id, when it has an id's shape (for a URL's or a form's id: the
    /// dashboard answers 404 for an [`InvalidWorkflowId`]).
    pub fn parse(text: &str) -> Result<Self, InvalidWorkflowId> {
        if short_id::is_valid(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidWorkflowId {
                text: text.to_owned(),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for WorkflowId {
    type Err = InvalidWorkflowId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for WorkflowId {
    type Error = InvalidWorkflowId;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<WorkflowId> for String {
    fn from(wid: WorkflowId) -> Self {
        wid.0
    }
}

impl AsRef<str> for WorkflowId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bid of step `step`'s batch in workflow `wid`: the same for the same pair, so creating a
/// step's batch twice (two advances racing, or one repeated after a crash) creates it once.
/// 14 characters of URL-safe base64, from the first 84 bits of SHA-256 over both.
pub(crate) fn step_bid_text(wid: &WorkflowId, step: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"jobs-workflow-step\0");
    hasher.update(wid.as_str().as_bytes());
    hasher.update(b"\0");
    hasher.update(step.as_bytes());
    let digest = hasher.finalize();
    let mut text = URL_SAFE_NO_PAD.encode(&digest[..11]);
    text.truncate(short_id::LENGTH);
    text
}

#[cfg(test)]
mod tests {
    use super::{WorkflowId, step_bid_text};

    #[test]
    fn ids_have_the_shape_of_a_bid() {
        let id = WorkflowId::generate();
        assert_eq!(id.as_str().len(), 14);
        assert_eq!(id.as_str().parse::<WorkflowId>().unwrap(), id);
        assert!(
            id.as_str()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(id, WorkflowId::generate());
    }

    #[test]
    fn an_id_of_another_shape_is_refused_however_it_comes() {
        for text in [
            "abc:done",
            "",
            "abcdefghijklm",
            "abcdefghijklmno",
            "abcdefghijklm:",
        ] {
            let json = serde_json::to_string(text).unwrap();
            assert!(
                serde_json::from_str::<WorkflowId>(&json).is_err(),
                "{text:?} deserialized"
            );
        }
        let id = WorkflowId::generate();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<WorkflowId>(&json).unwrap(), id);
    }

    #[test]
    fn a_steps_bid_depends_on_the_workflow_and_the_step_only() {
        let wid: WorkflowId = "abcdefghijklmn".parse().unwrap();
        let bid = step_bid_text(&wid, "a");
        assert_eq!(bid.len(), 14);
        assert_eq!(bid, step_bid_text(&wid, "a"));
        assert_ne!(bid, step_bid_text(&wid, "b"));
        assert_ne!(bid, step_bid_text(&"abcdefghijklmo".parse().unwrap(), "a"));
    }
}

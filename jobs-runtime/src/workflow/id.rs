//! Workflow ids, and the bid of each step's batch.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A workflow's id: 14 characters of URL-safe base64 from 84 random bits, the shape of a bid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkflowId(String);

impl WorkflowId {
    /// A new random id.
    pub fn generate() -> Self {
        let bytes: [u8; 11] = rand::random();
        let mut text = URL_SAFE_NO_PAD.encode(bytes);
        text.truncate(14);
        Self(text)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for WorkflowId {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for WorkflowId {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
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
    text.truncate(14);
    text
}

#[cfg(test)]
mod tests {
    use super::{WorkflowId, step_bid_text};

    #[test]
    fn ids_have_the_shape_of_a_bid() {
        let id = WorkflowId::generate();
        assert_eq!(id.as_str().len(), 14);
        assert!(
            id.as_str()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(id, WorkflowId::generate());
    }

    #[test]
    fn a_steps_bid_depends_on_the_workflow_and_the_step_only() {
        let wid = WorkflowId::from("abcdefghijklmn");
        let bid = step_bid_text(&wid, "a");
        assert_eq!(bid.len(), 14);
        assert_eq!(bid, step_bid_text(&wid, "a"));
        assert_ne!(bid, step_bid_text(&wid, "b"));
        assert_ne!(bid, step_bid_text(&WorkflowId::from("abcdefghijklmo"), "a"));
    }
}

//! The moments of a batch that fire callbacks.

use std::fmt;

/// A moment of a batch's life that fires its callback, once (see `docs/batches.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchEvent {
    /// Every job ran at least once (some may be waiting to retry).
    Complete,
    /// Every job succeeded, retries included.
    Success,
    /// A job died for the first time (its retries ran out, it was discarded, or recovery
    /// buried it).
    Death,
}

impl BatchEvent {
    /// Every event, in the order they fire when several come true together.
    pub const ALL: [Self; 3] = [Self::Complete, Self::Success, Self::Death];

    /// Its name on the wire: `complete`, `success` or `death` (the `event` of a callback's
    /// `batch_callback`, and the prefix of the batch hash's `<event>_at` and `cb:<event>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Success => "success",
            Self::Death => "death",
        }
    }
}

impl std::str::FromStr for BatchEvent {
    type Err = String;

    /// Reads `complete`, `success` or `death`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|event| event.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not a batch event: complete, success or death"))
    }
}

impl fmt::Display for BatchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

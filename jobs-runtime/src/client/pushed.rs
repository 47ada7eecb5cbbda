//! What a push did: [`Pushed`].

use std::fmt;
use std::ops::Deref;

use crate::jid::Jid;

/// What a push did: the job was pushed, or (for a unique job) it was refused because a job
/// with the same class, queue and arguments holds the lock.
///
/// A duplicate is an answer, not an error: the work is queued, by the job that holds the lock,
/// so `ScoreGeneration::perform_async(today).await?` in a controller goes on as it would after
/// a push. Match on it where a duplicate matters:
///
/// ```no_run
/// # async fn example(client: jobs_runtime::Client) -> Result<(), jobs_runtime::Error> {
/// use jobs_runtime::{Payload, Pushed};
/// let job = Payload::new("ScoreGeneration", vec!["2026-12-06".into()]);
/// match client.push(job).await? {
///     Pushed::Queued(jid) => println!("queued as {jid}"),
///     Pushed::Duplicate(holder) => println!("already queued as {holder}"),
/// }
/// # Ok(()) }
/// ```
///
/// It dereferences to [`jid`](Pushed::jid), the jid of the job that will do the work (the one
/// pushed, or the one holding the lock), so code written for a bare jid reads on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pushed {
    /// The job was pushed (to its queue, or to the schedule) under this jid.
    Queued(Jid),
    /// Nothing was pushed: a job with the same uniqueness holds the lock; this is its jid.
    Duplicate(Jid),
}

impl Pushed {
    /// The jid of the job that will do the work: the one pushed, or for a duplicate, the one
    /// holding the lock.
    pub fn jid(&self) -> &Jid {
        match self {
            Self::Queued(jid) | Self::Duplicate(jid) => jid,
        }
    }

    /// Whether the push was refused as a duplicate.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate(_))
    }

    /// The new job's jid, or `None` for a duplicate.
    pub fn queued(&self) -> Option<&Jid> {
        match self {
            Self::Queued(jid) => Some(jid),
            Self::Duplicate(_) => None,
        }
    }

    /// [`jid`](Pushed::jid), owned.
    pub fn into_jid(self) -> Jid {
        match self {
            Self::Queued(jid) | Self::Duplicate(jid) => jid,
        }
    }
}

impl Deref for Pushed {
    type Target = Jid;

    fn deref(&self) -> &Jid {
        self.jid()
    }
}

impl fmt::Display for Pushed {
    /// The jid, as [`Jid`] shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.jid(), f)
    }
}

impl From<Pushed> for Jid {
    fn from(pushed: Pushed) -> Self {
        pushed.into_jid()
    }
}

impl PartialEq<Jid> for Pushed {
    fn eq(&self, other: &Jid) -> bool {
        self.jid() == other
    }
}

impl PartialEq<Pushed> for Jid {
    fn eq(&self, other: &Pushed) -> bool {
        self == other.jid()
    }
}

impl AsRef<str> for Pushed {
    fn as_ref(&self) -> &str {
        self.jid().as_str()
    }
}

impl PartialEq<str> for Pushed {
    fn eq(&self, other: &str) -> bool {
        self.jid().as_str() == other
    }
}

impl PartialEq<&str> for Pushed {
    fn eq(&self, other: &&str) -> bool {
        self.jid().as_str() == *other
    }
}

//! Unique locks in memory, for the testing modes: a push of a unique job takes its lock here as
//! it would in Redis, and a duplicate is refused the same way.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::jid::Jid;
use crate::payload::Payload;
use crate::timestamp::Timestamp;
use crate::unique::{Held, Request, UniqueUntil};

/// What taking a lock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The lock was free (or had run out): taken now.
    Now,
    /// This very job holds it already: a push sent twice, which pushes nothing twice.
    Already,
    /// Another job holds it: its jid.
    By(Jid),
}

/// The locks held, by digest: the holder's jid and when the lock runs out.
#[derive(Debug, Default)]
pub(crate) struct Locks {
    held: Mutex<HashMap<String, (Jid, Timestamp)>>,
}

impl Locks {
    /// Takes `request`'s lock for `jid` at `now`, as `scripts/unique_push.lua` does.
    pub(crate) fn take(&self, request: &Request, jid: &Jid, now: Timestamp) -> Taken {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((holder, until)) = held.get(&request.digest)
            && until.as_epoch_seconds() > now.as_epoch_seconds()
        {
            return if holder == jid {
                Taken::Already
            } else {
                Taken::By(holder.clone())
            };
        }
        #[allow(clippy::cast_precision_loss)]
        let until =
            Timestamp::from_epoch_seconds(now.as_epoch_seconds() + request.ttl_ms as f64 / 1e3);
        held.insert(request.digest.clone(), (jid.clone(), until));
        Taken::Now
    }

    /// Releases the lock `payload` holds, if it still holds it.
    pub(crate) fn release(&self, payload: &Payload) {
        if let Some(lock) = Held::of_payload(payload) {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            if held
                .get(&lock.digest)
                .is_some_and(|(holder, _)| *holder == payload.jid)
            {
                held.remove(&lock.digest);
            }
        }
    }

    /// Releases the lock of `payload` if it is released when its job starts.
    pub(crate) fn release_at_start(&self, payload: &Payload) {
        if Held::of_payload(payload).is_some_and(|lock| lock.until == UniqueUntil::Start) {
            self.release(payload);
        }
    }
}

//! Unique locks in memory, for the testing modes: a push of a unique job takes its lock here as
//! it would in Redis, and a duplicate is refused the same way.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::jid::Jid;
use crate::payload::Payload;
use crate::timestamp::Timestamp;
use crate::unique::{Held, Request, UniqueUntil};

/// The locks held, by digest: the holder's jid and when the lock runs out.
#[derive(Debug, Default)]
pub(crate) struct Locks {
    held: Mutex<HashMap<String, (Jid, Timestamp)>>,
}

impl Locks {
    /// Takes `request`'s lock for `jid` at `now`; `Err` with the holder's jid when another job
    /// holds it and it has not run out.
    pub(crate) fn take(&self, request: &Request, jid: &Jid, now: Timestamp) -> Result<(), Jid> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((holder, until)) = held.get(&request.digest)
            && holder != jid
            && until.as_epoch_seconds() > now.as_epoch_seconds()
        {
            return Err(holder.clone());
        }
        #[allow(clippy::cast_precision_loss)]
        let until =
            Timestamp::from_epoch_seconds(now.as_epoch_seconds() + request.ttl_ms as f64 / 1e3);
        held.insert(request.digest.clone(), (jid.clone(), until));
        Ok(())
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

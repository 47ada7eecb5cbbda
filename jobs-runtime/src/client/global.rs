//! The process-wide default client.

use std::sync::{PoisonError, RwLock};

use super::Client;
use crate::error::Error;

static DEFAULT: RwLock<Option<Client>> = RwLock::new(None);

/// The installed client, or one made from the environment and kept for next time.
pub(super) fn get() -> Result<Client, Error> {
    if let Some(client) = DEFAULT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return Ok(client.clone());
    }
    let mut slot = DEFAULT.write().unwrap_or_else(PoisonError::into_inner);
    match slot.as_ref() {
        Some(client) => Ok(client.clone()),
        None => Ok(slot.insert(Client::from_env()?).clone()),
    }
}

/// Makes `client` the default.
pub(super) fn set(client: Client) {
    *DEFAULT.write().unwrap_or_else(PoisonError::into_inner) = Some(client);
}

//! Declaring a process's periodic entries (`scripts/periodic_register.lua`), and removing the
//! entries no process declares any more (`scripts/periodic_forget.lua`).

use chrono::{DateTime, Utc};

use super::{FORGET_AFTER, GRACE, STALE_AFTER};
use crate::client::Client;
use crate::error::Error;
use crate::periodic::from_millis;
use crate::redis::scripts;

/// What one declaration learnt.
pub(super) struct Declared {
    /// This process's definition is the one in force.
    pub(super) in_force: bool,
    /// The newest tick claimed, by any process.
    pub(super) last: Option<DateTime<Utc>>,
}

/// Declares one entry (`scripts/periodic_register.lua`).
pub(super) async fn register(
    client: &Client,
    name: &str,
    definition: &str,
    take_over: bool,
) -> Result<Declared, Error> {
    let keys = client.keys();
    let mut register = scripts::PERIODIC_REGISTER.prepare_invoke();
    register
        .key(keys.periodic(name))
        .key(keys.periodic_index())
        .arg(name)
        .arg(definition)
        .arg(if take_over { "1" } else { "0" })
        .arg(GRACE.as_millis() as u64)
        .arg(STALE_AFTER.as_millis() as u64);
    let (in_force, last): (i64, String) = client.redis().script(&register).await?;
    Ok(Declared {
        in_force: in_force == 1,
        last: from_millis(&last),
    })
}

/// Removes the entries no process declared for [`FORGET_AFTER`], a hundred at a time.
pub(super) async fn forget_stale(client: &Client) -> Result<(), Error> {
    let keys = client.keys();
    let redis = client.redis();
    let cutoff = Utc::now().timestamp_millis() - FORGET_AFTER.as_millis() as i64;
    let stale: Vec<String> = redis
        .command(
            redis::cmd("ZRANGEBYSCORE")
                .arg(keys.periodic_index())
                .arg("-inf")
                .arg(cutoff)
                .arg("LIMIT")
                .arg(0)
                .arg(100),
        )
        .await?;
    for name in stale {
        let mut forget = scripts::PERIODIC_FORGET.prepare_invoke();
        forget
            .key(keys.periodic_index())
            .key(keys.periodic(&name))
            .arg(&name)
            .arg(cutoff);
        if redis.script::<i64>(&forget).await? == 1 {
            tracing::info!(entry = %name, "removed a periodic entry no process declares any more");
        }
    }
    Ok(())
}

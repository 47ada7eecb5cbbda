//! Limiters in Redis: one script run per attempt (`scripts/limit_acquire.lua`), one `ZREM` to
//! give a concurrent lease back.

use std::time::Duration;

use super::{Answer, Limiter};
use crate::client::Client;
use crate::error::Error;
use crate::redis::scripts;

/// One attempt to take a slot of `cost` for `limiter`, with `id`, the caller able to wait
/// `left` more. Run once: a second run after a lost reply could take a second slot.
pub(super) async fn acquire(
    client: &Client,
    limiter: &Limiter,
    cost: u64,
    id: &str,
    left: Duration,
) -> Result<Answer, Error> {
    let keys = client.keys();
    let mut invocation = scripts::LIMIT_ACQUIRE.prepare_invoke();
    invocation
        .key(keys.limit(&limiter.name))
        .key(keys.limit_held(&limiter.name))
        .arg(limiter.kind.as_str())
        .arg(limiter.size)
        .arg(millis(limiter.interval).max(1))
        .arg(cost)
        .arg(id)
        .arg(millis(left))
        .arg(millis(limiter.ttl));
    let (status, wait): (i64, i64) = client.redis().script_once(&invocation).await?;
    let wait = u64::try_from(wait).ok().map(Duration::from_millis);
    Ok(match status {
        1 => Answer::Granted,
        0 => Answer::Wait(wait),
        _ => Answer::Over(wait),
    })
}

/// Gives the concurrent lease `id` of the limiter `name` back.
pub(super) async fn release(client: &Client, name: &str, id: &str) -> Result<(), Error> {
    let mut command = redis::cmd("ZREM");
    command.arg(client.keys().limit_held(name)).arg(id);
    client.redis().command::<i64>(&command).await.map(drop)
}

/// The longest time passed to Redis: ten years, in ms (Lua's numbers are floats, and a time to
/// live must stay an integer Redis takes).
const MAX_MILLIS: u64 = 10 * 365 * 24 * 60 * 60 * 1000;

/// `duration` in whole milliseconds, at most ten years.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .min(MAX_MILLIS)
}

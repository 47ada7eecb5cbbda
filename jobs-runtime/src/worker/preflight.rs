//! Checks of the Redis server a worker makes once it answers, before any job is taken, from one
//! `INFO` read through [`RedisInfo`]: a version too old for reliable fetch stops the worker with
//! an error that says so; an eviction policy that may drop queues is logged, as Sidekiq does.

use super::shared::Shared;
use crate::api::RedisInfo;
use crate::error::Error;

/// The oldest Redis with `LMOVE` and `BLMOVE`, which reliable fetch is built on.
const OLDEST_REDIS: (u32, u32) = (6, 2);

/// Refuses a Redis older than [`OLDEST_REDIS`] and warns unless it never evicts. A server that
/// does not answer `INFO` or leaves a field out (a proxy, a compatible server) is given the
/// benefit of the doubt on that point.
pub(super) async fn check(shared: &Shared) -> Result<(), Error> {
    let info = match RedisInfo::fetch(&shared.client).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, "cannot read INFO; skipping the checks of the server");
            return Ok(());
        }
    };
    if is_too_old(&info.version) {
        return Err(Error::UnsupportedRedis {
            url: shared.client.url().to_owned(),
            version: info.version,
        });
    }
    let policy = info.maxmemory_policy;
    if policy.starts_with("volatile-") {
        tracing::warn!(
            %policy,
            "Redis's maxmemory-policy is not noeviction: under memory pressure it evicts keys \
             that expire first, and heartbeats expire, so live processes look dead and their \
             jobs run twice (and queues with a TTL vanish); set `maxmemory-policy noeviction`"
        );
    } else if !policy.is_empty() && policy != "noeviction" {
        tracing::warn!(
            %policy,
            "Redis's maxmemory-policy is not noeviction: under memory pressure it may evict \
             whole queues without telling anyone; set `maxmemory-policy noeviction`"
        );
    }
    Ok(())
}

/// Whether `version` (`7.0.15`) is older than [`OLDEST_REDIS`]; one that cannot be read is not.
fn is_too_old(version: &str) -> bool {
    let mut parts = version.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) < OLDEST_REDIS,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_too_old;

    #[test]
    fn versions_before_6_2_are_too_old() {
        assert!(is_too_old("5.0.14"));
        assert!(is_too_old("6.0.16"));
        assert!(!is_too_old("6.2.0"));
        assert!(!is_too_old("7.0.15"));
        assert!(!is_too_old("10.0.0"));
        assert!(!is_too_old(""));
        assert!(!is_too_old("unknown"));
    }
}

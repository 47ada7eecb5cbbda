//! Checks of the Redis server a worker makes once it answers, before any job is taken: a
//! version too old for reliable fetch stops the worker with an error that says so; an eviction
//! policy that may drop queues is logged.

use super::Shared;
use crate::error::Error;

/// The oldest Redis with `LMOVE` and `BLMOVE`, which reliable fetch is built on.
const OLDEST_REDIS: (u32, u32) = (6, 2);

/// Refuses a Redis older than [`OLDEST_REDIS`]; a server that does not report its version (a
/// proxy, a compatible server) is given the benefit of the doubt.
pub(super) async fn check_version(shared: &Shared) -> Result<(), Error> {
    let info: String = match shared
        .redis()
        .command(redis::cmd("INFO").arg("server"))
        .await
    {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, "cannot read the Redis version; going on");
            return Ok(());
        }
    };
    let Some(version) = reported_version(&info) else {
        return Ok(());
    };
    if parse_major_minor(version).is_some_and(|found| found < OLDEST_REDIS) {
        return Err(Error::UnsupportedRedis {
            url: shared.client.url().to_owned(),
            version: version.to_owned(),
        });
    }
    Ok(())
}

/// Warns, as Sidekiq does, when Redis may evict keys under memory pressure: it would drop whole
/// queues silently.
pub(super) async fn warn_unless_noeviction(shared: &Shared) {
    let reply: Result<Vec<String>, Error> = shared
        .redis()
        .command(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
        .await;
    if let Ok(reply) = reply
        && let Some(policy) = reply.get(1)
        && policy != "noeviction"
    {
        tracing::warn!(
            %policy,
            "Redis's maxmemory-policy is not noeviction: under memory pressure it may evict \
             whole queues without telling anyone; set `maxmemory-policy noeviction`"
        );
    }
}

/// `redis_version` from an `INFO server` reply.
fn reported_version(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(str::trim)
}

/// `(major, minor)` of a version such as `7.0.15`.
fn parse_major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::{OLDEST_REDIS, parse_major_minor, reported_version};

    #[test]
    fn reads_the_version_from_info_server() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(reported_version(info), Some("7.0.15"));
        assert_eq!(reported_version("# Server\r\n"), None);
    }

    #[test]
    fn versions_before_6_2_are_too_old() {
        let too_old = |version| parse_major_minor(version).is_some_and(|v| v < OLDEST_REDIS);
        assert!(too_old("5.0.14"));
        assert!(too_old("6.0.16"));
        assert!(!too_old("6.2.0"));
        assert!(!too_old("7.0.15"));
        assert!(!too_old("10.0.0"));
        assert!(!too_old("unknown"));
    }
}

//! Redis Sentinel: `redis+sentinel://` URLs, and finding the master the sentinels name.
//!
//! The URL names the sentinels and the master, in the form other Redis clients use:
//!
//! ```text
//! redis+sentinel://[[user]:password@]host1[:port1][,host2[:port2]…]/<master-name>[/db][?sentinel_password=…]
//! ```
//!
//! A port left out is Sentinel's own, 26379. The user and password are the master's (and its
//! replicas'), sent to whichever server is master; the sentinels get `sentinel_password`, if
//! given, else no password. TLS to sentinels (`rediss+sentinel://`) is not supported.

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};

use super::hosts::{self, Credentials, Kind};
use redis::{ConnectionAddr, RedisError};

/// The scheme of a Sentinel URL.
pub(crate) const SCHEME: &str = "redis+sentinel://";

/// Sentinel's own port, used when a sentinel's address names none.
pub(crate) const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// What a `redis+sentinel://` URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// The sentinels' addresses, host and port, in the order given.
    pub(crate) sentinels: Vec<(String, u16)>,
    /// The name the sentinels know the master by (`sentinel monitor <name> …`).
    pub(crate) master: String,
    /// The database number on the master.
    pub(crate) db: i64,
    /// The master's ACL user, if any.
    pub(crate) username: Option<String>,
    /// The master's password, if any.
    pub(crate) password: Option<String>,
    /// The sentinels' password, if any.
    pub(crate) sentinel_password: Option<String>,
}

/// Sentinel URLs.
const KIND: Kind = Kind {
    scheme: SCHEME,
    tls_scheme: "rediss+sentinel://",
    name: "Sentinel",
    no_tls: Some("TLS to sentinels (rediss+sentinel://) is not supported; use redis+sentinel://"),
};

/// Whether `url` is a Sentinel URL (or meant to be one: `rediss+sentinel://` is refused with a
/// reason rather than read as a plain URL).
pub(crate) fn is_sentinel_url(url: &str) -> bool {
    KIND.matches(url)
}

/// Reads a `redis+sentinel://` URL; the error says what is wrong with it, in a few words.
pub(crate) fn parse(url: &str) -> Result<SentinelUrl, String> {
    let rest = KIND.rest(url)?;
    // The credentials end at the last `@` before the path, so that a `?`, `&` or `@` typed
    // unescaped in a password stays in it. An `@` after the path, outside the value of
    // `sentinel_password` (which may hold one), can only end a password holding a `/`:
    // refused, so that no error below quotes what could be part of a password.
    let slash = rest.find('/').unwrap_or(rest.len());
    let secret = hosts::secret_start(rest).unwrap_or(rest.len());
    if rest
        .get(slash..secret)
        .is_some_and(|between| between.contains('@'))
    {
        return Err(
            "an `@` after the first `/`: write a `/` in a password as %2F, and an `@` in the \
             master's name as %40"
                .to_owned(),
        );
    }
    let head = &rest[..slash];
    let (userinfo, rest) = match head.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Credentials { username, password } = hosts::credentials(userinfo)?;
    let sentinels = hosts::addresses(hosts, DEFAULT_SENTINEL_PORT, "sentinel")?;
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    let master = segments.next().map(hosts::decode).transpose()?.ok_or(
        "it names no master: add its name as the path, like redis+sentinel://host:26379/mymaster",
    )?;
    let db = match segments.next() {
        None => 0,
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or_else(|| {
                format!("the database `{db}` after the master's name is not a number")
            })?,
    };
    if let Some(extra) = segments.next() {
        return Err(format!(
            "unexpected `/{extra}` after the master's name and database"
        ));
    }
    let mut sentinel_password = None;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        match pair.split_once('=') {
            Some(("sentinel_password", value)) => {
                sentinel_password = hosts::non_empty(hosts::decode(value)?);
            }
            // Not quoted: a password with an `&` typed unescaped would show in it.
            _ => {
                return Err(
                    "an unknown parameter: the only one is sentinel_password (write an `&` in \
                     its password as %26)"
                        .to_owned(),
                );
            }
        }
    }
    Ok(SentinelUrl {
        sentinels,
        master,
        db,
        username,
        password,
        sentinel_password,
    })
}

/// A Sentinel URL with its passwords replaced by `***`; `None` if `url` is not one.
pub(crate) fn redact(url: &str) -> Option<String> {
    hosts::redact(url, SCHEME)
}

/// The redis crate's client that asks the sentinels for the master.
pub(crate) fn client(url: &SentinelUrl) -> Result<SentinelClient, RedisError> {
    let sentinels = url
        .sentinels
        .iter()
        .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
    let mut builder =
        SentinelClientBuilder::new(sentinels, &url.master, SentinelServerType::Master)?
            .set_client_to_redis_db(url.db);
    if let Some(username) = &url.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &url.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(password) = &url.sentinel_password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    builder.build()
}

/// The `redis+sentinel://` URL for `sentinels` (`host:port` each) and `master`, as
/// [`ClientBuilder::sentinel`](crate::ClientBuilder::sentinel) builds it.
pub(crate) fn url_for(sentinels: &[String], master: &str) -> String {
    format!("{SCHEME}{}/{master}", sentinels.join(","))
}

#[cfg(test)]
mod tests {
    use super::{SentinelUrl, parse, redact, url_for};

    fn sentinels(addresses: &[(&str, u16)]) -> Vec<(String, u16)> {
        addresses
            .iter()
            .map(|(host, port)| ((*host).to_owned(), *port))
            .collect()
    }

    #[test]
    fn reads_the_sentinels_the_master_and_the_database() {
        let url =
            parse("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,sentinel-3/mymaster/2").unwrap();
        assert_eq!(
            url,
            SentinelUrl {
                sentinels: sentinels(&[
                    ("10.0.0.1", 26379),
                    ("10.0.0.2", 26380),
                    ("sentinel-3", 26379)
                ]),
                master: "mymaster".to_owned(),
                db: 2,
                username: None,
                password: None,
                sentinel_password: None,
            }
        );
    }

    #[test]
    fn reads_passwords_for_the_master_and_for_the_sentinels() {
        let url =
            parse("redis+sentinel://:p%40ss@[::1]:5000/cache?sentinel_password=s3cret").unwrap();
        assert_eq!(url.sentinels, sentinels(&[("::1", 5000)]));
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert_eq!(url.username, None);
        assert_eq!(url.sentinel_password.as_deref(), Some("s3cret"));
        assert_eq!(url.db, 0);
        let url = parse("REDIS+SENTINEL://app:pw@s1/cache/").unwrap();
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("pw"));
    }

    #[test]
    fn refuses_what_it_cannot_use_and_says_why() {
        for (url, reason) in [
            ("redis+sentinel://s1:26379", "names no master"),
            ("redis+sentinel://s1:26379/", "names no master"),
            ("redis+sentinel://s1:port/mymaster", "not a port number"),
            ("redis+sentinel://s1,,s2/mymaster", "address is empty"),
            ("redis+sentinel://s1/mymaster/x", "is not a number"),
            (
                "redis+sentinel://s1/mymaster/0/extra",
                "unexpected `/extra`",
            ),
            (
                "redis+sentinel://s1/mymaster?password=x",
                "unknown parameter",
            ),
            ("rediss+sentinel://s1/mymaster", "not supported"),
        ] {
            let error = parse(url).unwrap_err();
            assert!(error.contains(reason), "{url}: {error}");
        }
    }

    #[test]
    fn a_password_typed_unescaped_never_shows_in_an_error() {
        // `?`, `@` and `&` cannot end the password: it ends at the last `@` before the path.
        let parsed = parse("redis+sentinel://:se?cr@t&x@s1:26379/mymaster").unwrap();
        assert_eq!(parsed.password.as_deref(), Some("se?cr@t&x"));
        assert_eq!(parsed.sentinels, sentinels(&[("s1", 26379)]));
        assert_eq!(parsed.master, "mymaster");
        // A `/` in it cannot be told from the path: refused, quoting nothing of it.
        for url in [
            "redis+sentinel://:hunter/2@s1/mymaster",
            "redis+sentinel://app:hunter/tw/o@s1/mymaster",
            "redis+sentinel://s1/mymaster?sentinel_password=hunter&two",
            "redis+sentinel://s1/mymaster?sentinel_password=x&hunter=two",
            "redis+sentinel://app:hunter/tw?o@s1/m",
            "redis+sentinel://:hunt?er/two@s1/m",
            "redis+sentinel://hunter/tw/zz?o@s1/m",
            "redis+sentinel://:hunt&pass=x/two@s1/m",
        ] {
            let error = parse(url).unwrap_err();
            assert!(
                !error.contains("hunt") && !error.contains("tw"),
                "{url}: {error}"
            );
        }
        // An `@` in the sentinels' password is theirs; no redacted form shows any of it.
        let parsed = parse("redis+sentinel://s1/mymaster?sentinel_password=p@ssw0rd").unwrap();
        assert_eq!(parsed.sentinel_password.as_deref(), Some("p@ssw0rd"));
        assert_eq!(parsed.sentinels, sentinels(&[("s1", 26379)]));
        assert!(parse("redis+sentinel://s1/mymaster?sentinel_password=p@ss&w0rd").is_err());
        for url in [
            "redis+sentinel://s1/mymaster?sentinel_password=p@xqw0rd",
            "redis+sentinel://s1/mymaster?sentinel_password=p@xq&w0rd",
            "redis+sentinel://:hun/xq@s1/m?sentinel_password=p@zz",
            // Text like a secret parameter inside the password itself.
            "redis+sentinel://:xq?pass=zz@s1/m",
            "redis+sentinel://:xq/w0rd&pass=zz@s1/m",
            // A secret parameter's name escaped.
            "redis+sentinel://s1/m?sentinel%5Fpassword=xq",
        ] {
            let redacted = redact(url).unwrap();
            assert!(
                !redacted.contains("xq") && !redacted.contains("w0rd") && !redacted.contains("zz"),
                "{url}: {redacted}"
            );
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis+sentinel://:hunter2@s1:26379,s2:26379/mymaster/1").unwrap(),
            "redis+sentinel://:***@s1:26379,s2:26379/mymaster/1"
        );
        assert_eq!(
            redact("redis+sentinel://app:hunter2@s1/m?sentinel_password=t0p").unwrap(),
            "redis+sentinel://app:***@s1/m?sentinel_password=***"
        );
        assert_eq!(
            redact("redis+sentinel://hunter2@s1/m").unwrap(),
            "redis+sentinel://***@s1/m"
        );
        assert_eq!(
            redact("redis+sentinel://s1:26379/m").unwrap(),
            "redis+sentinel://s1:26379/m"
        );
        assert_eq!(redact("redis://s1/0"), None);
    }

    #[test]
    fn the_builder_form_makes_a_url_that_reads_back() {
        let url = url_for(&["a:1".to_owned(), "b:2".to_owned()], "mymaster");
        assert_eq!(url, "redis+sentinel://a:1,b:2/mymaster");
        let parsed = parse(&url).unwrap();
        assert_eq!(parsed.sentinels, sentinels(&[("a", 1), ("b", 2)]));
        assert_eq!(parsed.master, "mymaster");
    }
}

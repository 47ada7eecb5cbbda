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

/// Whether `url` is a Sentinel URL (or meant to be one: `rediss+sentinel://` is refused with a
/// reason rather than read as a plain URL).
pub(crate) fn is_sentinel_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with(SCHEME) || lower.starts_with("rediss+sentinel://")
}

/// Reads a `redis+sentinel://` URL; the error says what is wrong with it, in a few words.
pub(crate) fn parse(url: &str) -> Result<SentinelUrl, String> {
    let Some(rest) = strip_scheme(url) else {
        return Err(
            if url.to_ascii_lowercase().starts_with("rediss+sentinel://") {
                "TLS to sentinels (rediss+sentinel://) is not supported; use redis+sentinel://"
                    .to_owned()
            } else {
                format!("a Sentinel URL starts with {SCHEME}")
            },
        );
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, password)) => (non_empty(decode(user)?), non_empty(decode(password)?)),
            // A lone user part is a password, as in Sidekiq's redis-client and `redis-cli -u`.
            None => (None, non_empty(decode(userinfo)?)),
        },
    };
    let sentinels = hosts
        .split(',')
        .map(address)
        .collect::<Result<Vec<_>, _>>()?;
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    let master = segments.next().map(decode).transpose()?.ok_or(
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
            Some(("sentinel_password", value)) => sentinel_password = non_empty(decode(value)?),
            _ => {
                return Err(format!(
                    "unknown parameter `{}`; the only one is sentinel_password",
                    pair.split('=').next().unwrap_or(pair)
                ));
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

/// `url` after [`SCHEME`], matched without regard to case.
fn strip_scheme(url: &str) -> Option<&str> {
    url.get(..SCHEME.len())
        .filter(|scheme| scheme.eq_ignore_ascii_case(SCHEME))
        .map(|_| &url[SCHEME.len()..])
}

/// One sentinel's `host[:port]`; an IPv6 host goes in brackets, `[::1]:26379`.
fn address(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("the sentinel address `{text}` lacks its closing `]`"))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(format!(
            "a sentinel address is empty in `{text}`; list them as host1:26379,host2:26379"
        ));
    }
    let port = match port {
        None => DEFAULT_SENTINEL_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("the port of the sentinel `{text}` is not a port number"))?,
    };
    Ok((host.to_owned(), port))
}

/// `text` with its `%XX` escapes decoded.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let byte = text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or("a `%` in it is not followed by two hex digits")?;
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| "a `%` escape in it is not UTF-8".to_owned())
}

/// `Some(text)` unless it is empty.
fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// A Sentinel URL with its passwords replaced by `***`; `None` if `url` is not one.
pub(crate) fn redact(url: &str) -> Option<String> {
    let rest = strip_scheme(url)?;
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (rest, None),
    };
    let mut redacted = SCHEME.to_owned();
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => redacted.push_str(&format!("{user}:***@")),
                None => redacted.push_str("***@"),
            }
            redacted.push_str(hosts);
        }
        None => redacted.push_str(authority),
    }
    if let Some(path) = path {
        redacted.push('/');
        redacted.push_str(path);
    }
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    Some(redacted)
}

/// Whether a query parameter's name suggests a secret.
fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "auth", "token", "secret"]
        .iter()
        .any(|word| name.contains(word))
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
                "unknown parameter `password`",
            ),
            ("rediss+sentinel://s1/mymaster", "not supported"),
        ] {
            let error = parse(url).unwrap_err();
            assert!(error.contains(reason), "{url}: {error}");
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

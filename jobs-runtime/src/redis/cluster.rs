//! Redis Cluster: `redis+cluster://` URLs, the client, and the hash slot `jobs` works in.
//!
//! The URL names some of the cluster's nodes (the client learns the rest from them):
//!
//! ```text
//! redis+cluster://[[user]:password@]host1[:port1][,host2[:port2]…][/]
//! ```
//!
//! A port left out is 6379. A cluster has one database, so the URL names none. Every key
//! `jobs` writes carries one hash tag, `{jobs}` (or `{<namespace>}`), so every atomic step's
//! keys share a slot and every script runs as it does on one server; the master of that slot
//! holds all of them (see `docs/cluster.md` for what that means and what comes next).
//! `rediss+cluster://` speaks TLS to every node (feature `tls`), checking their certificates
//! unless the URL ends with `#insecure`, as `rediss://` URLs do.

use std::time::Duration;

use redis::RedisError;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_routing::{Route, SlotAddr};

use super::Timeouts;
use super::hosts::{self, Credentials, Kind};

/// The scheme of a Cluster URL.
pub(crate) const SCHEME: &str = "redis+cluster://";

/// Redis's own port, used when a node's address names none.
const DEFAULT_PORT: u16 = 6379;

/// The hash tag of every key without a namespace.
pub(crate) const TAG: &str = "jobs";

/// What a `redis+cluster://` URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterUrl {
    /// The nodes to start from, host and port, in the order given.
    pub(crate) nodes: Vec<(String, u16)>,
    /// The user and password every node is sent.
    pub(crate) credentials: Credentials,
    /// How the nodes are spoken to.
    pub(crate) transport: Transport,
}

/// Plain TCP or TLS, to every node of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `redis+cluster://`.
    Plain,
    /// `rediss+cluster://`: TLS, each node's certificate checked.
    Tls,
    /// `rediss+cluster://…#insecure`: TLS, no certificate checked (a self-signed one).
    TlsInsecure,
}

/// The fragment that turns off the certificate check, as in the redis crate's `rediss://` URLs.
const INSECURE: &str = "#insecure";

/// Cluster URLs.
const KIND: Kind = Kind {
    scheme: SCHEME,
    tls_scheme: "rediss+cluster://",
    name: "Cluster",
    no_tls: None,
};

/// Whether `url` is a Cluster URL, `redis+cluster://` or `rediss+cluster://`.
pub(crate) fn is_cluster_url(url: &str) -> bool {
    KIND.matches(url)
}

/// Reads a `redis+cluster://` URL; the error says what is wrong with it, in a few words.
pub(crate) fn parse(url: &str) -> Result<ClusterUrl, String> {
    let (rest, tls) = KIND.rest_and_tls(url)?;
    let (rest, insecure) = match rest.len().checked_sub(INSECURE.len()) {
        Some(at) if rest.is_char_boundary(at) && rest[at..].eq_ignore_ascii_case(INSECURE) => {
            (&rest[..at], true)
        }
        _ => (rest, false),
    };
    let transport = match (tls, insecure) {
        (false, false) => Transport::Plain,
        (false, true) => {
            return Err("`#insecure` is for TLS: write rediss+cluster://".to_owned());
        }
        (true, _) if !cfg!(feature = "tls") => {
            return Err(
                "rediss+cluster:// URLs need the `tls` feature of jobs (on by default)".to_owned(),
            );
        }
        (true, false) => Transport::Tls,
        (true, true) => Transport::TlsInsecure,
    };
    // The errors quote nothing of the URL: a password with a `?` or `/` typed unescaped
    // would show in them.
    if rest.contains('?') {
        return Err(
            "a Cluster URL takes no `?` parameters (write a `?` in a password as %3F)".to_owned(),
        );
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() && path != "0" {
        return Err(
            "a cluster has one database, so nothing but `/0` may follow its nodes (separate \
             apps with a namespace; write a `/` in a password as %2F)"
                .to_owned(),
        );
    }
    let (userinfo, list) = hosts::split_userinfo(authority);
    Ok(ClusterUrl {
        nodes: hosts::addresses(list, DEFAULT_PORT, "node")?,
        credentials: hosts::credentials(userinfo)?,
        transport,
    })
}

/// A Cluster URL with its password replaced by `***`; `None` if `url` is not one.
pub(crate) fn redact(url: &str) -> Option<String> {
    hosts::redact(url, SCHEME).or_else(|| hosts::redact(url, KIND.tls_scheme))
}

/// The `redis+cluster://` URL for `nodes` (`host:port` each), as
/// [`ClientBuilder::cluster`](crate::ClientBuilder::cluster) builds it.
pub(crate) fn url_for(nodes: &[String]) -> String {
    format!("{SCHEME}{}", nodes.join(","))
}

/// The redis crate's client for the cluster, whose commands wait `response` for a reply.
pub(crate) fn client(
    url: &ClusterUrl,
    timeouts: Timeouts,
    response: Duration,
) -> Result<ClusterClient, RedisError> {
    let (scheme, fragment) = match url.transport {
        Transport::Plain => ("redis", ""),
        Transport::Tls => ("rediss", ""),
        Transport::TlsInsecure => ("rediss", INSECURE),
    };
    // The crate speaks to the nodes it learns of as to the first: TLS, and how it checks.
    let nodes = url
        .nodes
        .iter()
        .map(|(host, port)| format!("{scheme}://{}:{port}/{fragment}", bracketed(host)));
    // No retries of the crate's own: it would send a command again after a broken connection
    // or a redirection, a fetch or a push included, which may have run (see `Connection`'s
    // rules for sending again). It still refreshes its slots after either, and `Connection`
    // sends again what is safe to.
    let mut builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(timeouts.connect)
        .response_timeout(response)
        .retries(0);
    if let Some(username) = &url.credentials.username {
        builder = builder.username(username);
    }
    if let Some(password) = &url.credentials.password {
        builder = builder.password(password);
    }
    builder.build()
}

/// A connection to the master of the slot of `prefix`'s hash tag, alone, with `url`'s
/// credentials and transport; replies are awaited `response`. The master is found through
/// `link`, the shared cluster connection (`CLUSTER KEYSLOT`, then `CLUSTER SLOTS`, whose
/// addresses are those the nodes announce). When the slot moves (a failover), the connection's
/// commands fail with `MOVED` or a broken connection, and its owner opens another. `None` when
/// the master gives no address of its own (an empty or `?` host: a node that never learned its
/// IP, as a one-node cluster's): the caller then opens a cluster connection.
pub(crate) async fn master_connection(
    url: &ClusterUrl,
    prefix: &str,
    mut link: super::Link,
    connect: Duration,
    response: Duration,
) -> Result<Option<redis::aio::MultiplexedConnection>, RedisError> {
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(prefix)
        .query_async(&mut link)
        .await?;
    let ranges: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut link)
        .await?;
    let Some(master) = ranges.iter().find_map(|range| master_of(range, slot)) else {
        return Err(RedisError::from((
            redis::ErrorKind::Client,
            "no master serves the slot of jobs' hash tag",
            format!("slot {slot}"),
        )));
    };
    let Some((host, port)) = master else {
        return Ok(None);
    };
    let (scheme, fragment) = match url.transport {
        Transport::Plain => ("redis", ""),
        Transport::Tls => ("rediss", ""),
        Transport::TlsInsecure => ("rediss", "insecure"),
    };
    let mut address = url::Url::parse(&format!("{scheme}://{}:{port}/", bracketed(&host)))
        .map_err(|error| {
            RedisError::from((
                redis::ErrorKind::Client,
                "the slot's master has an address that is not a host",
                error.to_string(),
            ))
        })?;
    // Both fail only for a URL without a host, which this one has.
    if let Some(username) = &url.credentials.username {
        let _ = address.set_username(username);
    }
    if let Some(password) = &url.credentials.password {
        let _ = address.set_password(Some(password));
    }
    if !fragment.is_empty() {
        address.set_fragment(Some(fragment));
    }
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response));
    redis::Client::open(address.as_str())?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map(Some)
}

/// Of a `CLUSTER SLOTS` range, `[first, last, [host, port, …], replicas…]` that holds `slot`
/// (`None` for any other, or one that cannot be read): its master's host and port, or `None`
/// when the master gives no address of its own.
fn master_of(range: &[redis::Value], slot: i64) -> Option<Option<(String, u16)>> {
    let bound = |index: usize| {
        range
            .get(index)
            .and_then(|value| redis::from_redis_value_ref::<i64>(value).ok())
    };
    let (first, last) = (bound(0)?, bound(1)?);
    if !(first..=last).contains(&slot) {
        return None;
    }
    let redis::Value::Array(master) = range.get(2)? else {
        return None;
    };
    let port: u16 = redis::from_redis_value_ref(master.get(1)?).ok()?;
    // An empty, `?` or null host: the node knows no address of its own to give.
    let host: Option<String> = master
        .first()
        .and_then(|host| redis::from_redis_value_ref(host).ok());
    Some(
        host.filter(|host| !host.is_empty() && host != "?")
            .map(|host| (host, port)),
    )
}

/// An IPv6 host in brackets, for a URL.
fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The master of the slot whose keys start with `prefix` (`{jobs}:` or `{<namespace>}:`).
pub(crate) fn route(prefix: &str) -> Route {
    Route::with_key(prefix, SlotAddr::Master)
}

#[cfg(test)]
mod tests {
    use super::{ClusterUrl, Transport, parse, redact, url_for};
    use crate::redis::hosts::Credentials;

    #[test]
    fn reads_the_nodes_and_the_password() {
        assert_eq!(
            parse("redis+cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002").unwrap(),
            ClusterUrl {
                nodes: vec![
                    ("10.0.0.1".to_owned(), 7000),
                    ("10.0.0.2".to_owned(), 6379),
                    ("::1".to_owned(), 7002),
                ],
                credentials: Credentials::default(),
                transport: Transport::Plain,
            }
        );
        let url = parse("REDIS+CLUSTER://app:p%40ss@n1:7000/").unwrap();
        assert_eq!(url.credentials.username.as_deref(), Some("app"));
        assert_eq!(url.credentials.password.as_deref(), Some("p@ss"));
        assert_eq!(
            parse("redis+cluster://s3cret@n1/0")
                .unwrap()
                .credentials
                .password
                .as_deref(),
            Some("s3cret")
        );
    }

    #[test]
    fn refuses_what_it_cannot_use_and_says_why() {
        for (url, reason) in [
            ("redis+cluster://n1:7000/2", "one database"),
            ("redis+cluster://:pa/ss@n1:7000", "one database"),
            ("redis+cluster://:pa?ss@n1:7000", "no `?` parameters"),
            ("redis+cluster://n1:port", "not a port number"),
            ("redis+cluster://n1,,n2", "address is empty"),
            ("redis+cluster://n1:7000#insecure", "`#insecure` is for TLS"),
            ("rediss+cluster://n1:7000#other", "not a port number"),
        ] {
            let error = parse(url).unwrap_err();
            assert!(error.contains(reason), "{url}: {error}");
        }
    }

    #[test]
    #[cfg(feature = "tls")]
    fn rediss_speaks_tls_checked_unless_insecure() {
        let checked = parse("rediss+cluster://:pw@n1:7000,n2:7001").unwrap();
        assert_eq!(checked.transport, Transport::Tls);
        assert_eq!(checked.nodes.len(), 2);
        assert_eq!(checked.credentials.password.as_deref(), Some("pw"));
        let insecure = parse("REDISS+CLUSTER://n1:7000/#INSECURE").unwrap();
        assert_eq!(insecure.transport, Transport::TlsInsecure);
        assert_eq!(insecure.nodes, vec![("n1".to_owned(), 7000)]);
        assert_eq!(
            redact("rediss+cluster://app:hunter2@n1:7000#insecure").unwrap(),
            "rediss+cluster://app:***@n1:7000#insecure"
        );
    }

    #[test]
    fn passwords_are_redacted_and_the_builder_form_reads_back() {
        assert_eq!(
            redact("redis+cluster://:hunter2@n1:7000,n2:7001").unwrap(),
            "redis+cluster://:***@n1:7000,n2:7001"
        );
        assert_eq!(redact("redis://n1/0"), None);
        // Typed unescaped, a `?` or `/` in the password does not show either.
        assert_eq!(
            redact("redis+cluster://:pa?ss@n1:7000").unwrap(),
            "redis+cluster://:***@n1:7000"
        );
        assert_eq!(
            redact("redis+cluster://app:pa/ss@n1:7000").unwrap(),
            "redis+cluster://app:***@n1:7000"
        );
        for url in [
            "redis+cluster://:hun?ter2@n1:7000",
            "redis+cluster://:hun/ter2@n1:7000",
        ] {
            assert!(!parse(url).unwrap_err().contains("ter2"), "{url}");
        }
        // Text like a secret parameter inside the password: the password is hidden whole.
        assert_eq!(
            redact("redis+cluster://user:hun&token=ter2@n1:7000").unwrap(),
            "redis+cluster://user:***@n1:7000"
        );
        let url = url_for(&["a:1".to_owned(), "b:2".to_owned()]);
        assert_eq!(url, "redis+cluster://a:1,b:2");
        assert_eq!(parse(&url).unwrap().nodes.len(), 2);
    }
}

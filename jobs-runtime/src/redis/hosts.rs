//! The parts that URLs naming several servers share (`redis+sentinel://`, `redis+cluster://`):
//! `[[user]:password@]host1[:port1][,host2[:port2]…]`, `%XX` escapes, and redaction. The `url`
//! crate cannot read them: a comma-separated list of hosts is not a URL authority.

/// A kind of URL that names several servers.
pub(super) struct Kind {
    /// Its scheme: `redis+sentinel://`.
    pub(super) scheme: &'static str,
    /// Its TLS form.
    pub(super) tls_scheme: &'static str,
    /// What errors call it: `Sentinel`.
    pub(super) name: &'static str,
    /// Why the TLS form is refused, when it is: `None` where it is read
    /// ([`rest_and_tls`](Self::rest_and_tls)).
    pub(super) no_tls: Option<&'static str>,
}

impl Kind {
    /// Whether `url` is of this kind (or meant to be: its TLS form counts).
    pub(super) fn matches(&self, url: &str) -> bool {
        strip_scheme(url, self.scheme).is_some() || strip_scheme(url, self.tls_scheme).is_some()
    }

    /// The URL after its scheme, or why it is not of this kind (its TLS form included, when
    /// that is refused).
    pub(super) fn rest<'a>(&self, url: &'a str) -> Result<&'a str, String> {
        let (rest, tls) = self.rest_and_tls(url)?;
        match (tls, self.no_tls) {
            (true, Some(refused)) => Err(refused.to_owned()),
            _ => Ok(rest),
        }
    }

    /// The URL after its scheme, and whether that scheme was the TLS form.
    pub(super) fn rest_and_tls<'a>(&self, url: &'a str) -> Result<(&'a str, bool), String> {
        if let Some(rest) = strip_scheme(url, self.scheme) {
            return Ok((rest, false));
        }
        if let Some(rest) = strip_scheme(url, self.tls_scheme) {
            return Ok((rest, true));
        }
        Err(format!("a {} URL starts with {}", self.name, self.scheme))
    }
}

/// The URL after `scheme`, matched without regard to case.
pub(super) fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    url.get(..scheme.len())
        .filter(|found| found.eq_ignore_ascii_case(scheme))
        .map(|_| &url[scheme.len()..])
}

/// The user and password of a `[[user]:password@]` part; a lone user part is a password, as in
/// Sidekiq's redis-client and `redis-cli -u`.
pub(super) fn credentials(userinfo: Option<&str>) -> Result<Credentials, String> {
    Ok(match userinfo {
        None => Credentials::default(),
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, password)) => Credentials {
                username: non_empty(decode(user)?),
                password: non_empty(decode(password)?),
            },
            None => Credentials {
                username: None,
                password: non_empty(decode(userinfo)?),
            },
        },
    })
}

/// A user and a password, each if given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The ACL user.
    pub(crate) username: Option<String>,
    /// The password.
    pub(crate) password: Option<String>,
}

/// `authority` split at its last `@` into the user part, if any, and the hosts.
pub(super) fn split_userinfo(authority: &str) -> (Option<&str>, &str) {
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    }
}

/// Every `host[:port]` of a comma-separated list; an IPv6 host goes in brackets, `[::1]:6379`.
/// A port left out is `default_port`; `role` names the servers in errors ("sentinel", "node").
pub(super) fn addresses(
    hosts: &str,
    default_port: u16,
    role: &str,
) -> Result<Vec<(String, u16)>, String> {
    hosts
        .split(',')
        .map(|text| address(text, default_port, role))
        .collect()
}

/// One `host[:port]`.
fn address(text: &str, default_port: u16, role: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("the {role} address `{text}` lacks its closing `]`"))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(format!(
            "a {role} address is empty in `{text}`; list them as host1:{default_port},host2:{default_port}"
        ));
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("the port of the {role} `{text}` is not a port number"))?,
    };
    Ok((host.to_owned(), port))
}

/// `text` with its `%XX` escapes decoded.
pub(super) fn decode(text: &str) -> Result<String, String> {
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
pub(super) fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// A URL of `scheme` with its passwords replaced by `***`; `None` if `url` is not of
/// `scheme`. From the first query parameter after the first `/` whose name suggests a secret
/// (`?sentinel_password=`), everything is hidden, so an `&` or `@` typed unescaped in its value
/// shows nothing. The user part ends at the last `@` before that: a password typed with `?`,
/// `/` or `@` unescaped is still hidden (with whatever else comes before that `@`). When that
/// cannot be told (no `@` before the secret parameter, one after it), everything is hidden.
pub(super) fn redact(url: &str, scheme: &str) -> Option<String> {
    let rest = strip_scheme(url, scheme)?;
    let (head, tail) = rest.split_at(secret_start(rest).unwrap_or(rest.len()));
    let mut redacted = scheme.to_owned();
    match head.rsplit_once('@') {
        Some((userinfo, after)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => redacted.push_str(&format!("{user}:***@")),
                None => redacted.push_str("***@"),
            }
            redacted.push_str(after);
        }
        // An `@` only after the secret parameter: in its value, or ending a password that holds
        // a `/` and text like a parameter. Either way, nothing of it may show.
        None if tail.contains('@') => {
            redacted.push_str("***");
            return Some(redacted);
        }
        None => redacted.push_str(head),
    }
    if let Some((name, _)) = tail.split_once('=') {
        redacted.push_str(name);
        redacted.push_str("=***");
    }
    Some(redacted)
}

/// Where the first query parameter whose name suggests a secret starts in `rest` (the URL after
/// its scheme), at its `?` or `&`, if there is one after the first `/` (before it, such text is
/// part of the user and password): a name without `@`, `/`, `?` or `&`, followed by `=`.
pub(super) fn secret_start(rest: &str) -> Option<usize> {
    let slash = rest.find('/')?;
    rest[slash..]
        .match_indices(['?', '&'])
        .map(|(at, _)| slash + at)
        .find(|&at| {
            rest[at + 1..].split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && !name.contains(['@', '/', '?', '&']) && is_secret(name)
            })
        })
}

/// Whether a query parameter's name suggests a secret.
pub(super) fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "auth", "token", "secret"]
        .iter()
        .any(|word| name.contains(word))
}

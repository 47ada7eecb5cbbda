//! Where the Redis URL comes from, and how it is shown without its password.

use crate::error::Error;

/// The URL used when neither `REDIS_PROVIDER` nor `REDIS_URL` is set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// The Redis URL from the environment, as Sidekiq finds it: the variable `REDIS_PROVIDER` names,
/// else `REDIS_URL`, else [`DEFAULT_REDIS_URL`].
pub(crate) fn url_from_env() -> Result<String, Error> {
    url_from(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
}

/// [`url_from_env`] over any source of variables, for tests.
pub(crate) fn url_from(var: impl Fn(&str) -> Option<String>) -> Result<String, Error> {
    if let Some(provider) = var("REDIS_PROVIDER") {
        if provider.contains(':') {
            return Err(Error::RedisProvider {
                value: redact(&provider),
                reason: "it must hold the *name* of the variable with the URL (such as \
                         REDISTOGO_URL), not the URL itself; put the URL in REDIS_URL instead"
                    .to_owned(),
            });
        }
        return var(&provider).ok_or_else(|| Error::RedisProvider {
            value: provider.clone(),
            reason: format!("the variable {provider} it names is not set"),
        });
    }
    Ok(var("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned()))
}

/// `url` with its password (if any) replaced by `***`, fit for logs and error messages; so is
/// the value of any query parameter whose name suggests a secret (`password`, `auth`, `token`).
///
/// A lone user part with no colon (`redis://secret@host`) is hidden too. Sidekiq's
/// redis-client and `redis-cli -u` send it as the password, so it often is one, typed without
/// the leading `:`. redis-rs reads it as an ACL user name and sends no AUTH without a password,
/// so hiding it costs only the sight of a user name that logs in to nothing.
pub(crate) fn redact(url: &str) -> String {
    if let Some(redacted) = super::sentinel::redact(url).or_else(|| super::cluster::redact(url)) {
        return redacted;
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let mut redacted = false;
            // Both only fail for URLs that cannot have a user or password, which this one has.
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
                redacted = true;
            } else if !parsed.username().is_empty() {
                let _ = parsed.set_username("***");
                redacted = true;
            }
            let secret = |name: &str| {
                let name = name.to_ascii_lowercase();
                ["pass", "auth", "token", "secret"]
                    .iter()
                    .any(|word| name.contains(word))
            };
            if parsed.query_pairs().any(|(name, _)| secret(&name)) {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(name, value)| {
                        let value = if secret(&name) { "***".into() } else { value };
                        (name.into_owned(), value.into_owned())
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
                redacted = true;
            }
            // Untouched URLs are shown exactly as given.
            if redacted {
                parsed.to_string()
            } else {
                url.to_owned()
            }
        }
        // Unparsable: show only the scheme, in case the rest holds a secret.
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…"),
            None => "(unparsable URL)".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{DEFAULT_REDIS_URL, redact, url_from};

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn falls_back_to_the_default_url() {
        assert_eq!(url_from(env(&[])).unwrap(), DEFAULT_REDIS_URL);
    }

    #[test]
    fn reads_redis_url() {
        let url = url_from(env(&[("REDIS_URL", "redis://cache:6380/2")])).unwrap();
        assert_eq!(url, "redis://cache:6380/2");
    }

    #[test]
    fn redis_provider_names_the_variable_to_read() {
        let vars = env(&[
            ("REDIS_PROVIDER", "REDISCLOUD_URL"),
            ("REDISCLOUD_URL", "redis://cloud:1/0"),
            ("REDIS_URL", "redis://ignored/0"),
        ]);
        assert_eq!(url_from(vars).unwrap(), "redis://cloud:1/0");
    }

    #[test]
    fn redis_provider_holding_a_url_is_refused_without_leaking_the_password() {
        let error = url_from(env(&[("REDIS_PROVIDER", "redis://:hunter2@h:1/0")])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("put the URL in REDIS_URL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn redis_provider_naming_an_unset_variable_says_so() {
        let error = url_from(env(&[("REDIS_PROVIDER", "MISSING_URL")])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("MISSING_URL it names is not set")
        );
    }

    #[test]
    fn a_lone_user_part_is_redacted_as_a_password() {
        assert_eq!(
            redact("redis://s3cret@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(redact("rediss://p%40ss@cache/0"), "rediss://***@cache/0");
        assert_eq!(redact("redis://user:@cache/0"), "redis://***@cache/0");
        assert_eq!(
            redact("redis://user:hunter2@cache/0"),
            "redis://user:***@cache/0",
            "a user name beside a password is kept"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://user:hunter2@cache:6379/1"),
            "redis://user:***@cache:6379/1"
        );
        assert_eq!(redact("rediss://:s3cret@cache/0"), "rediss://:***@cache/0");
        assert_eq!(redact("redis://cache:6379/0"), "redis://cache:6379/0");
        assert_eq!(
            redact("redis://cache:6379/0?password=hunter2&protocol=resp3&AuthToken=t0k"),
            "redis://cache:6379/0?password=***&protocol=resp3&AuthToken=***"
        );
    }
}

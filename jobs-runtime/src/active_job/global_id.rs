//! Rails's GlobalID: the `gid://app/Model/id` URI ActiveJob stores for a record argument.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The key of the one-key object ActiveJob stores for a record: `{"_aj_globalid": "gid://…"}`.
pub(crate) const GLOBALID_KEY: &str = "_aj_globalid";

/// A Rails GlobalID, `gid://app/Model/id`: how ActiveJob passes a record (an ActiveRecord
/// model, or anything that includes `GlobalID::Identification`) to a job.
///
/// Rails looks the record up before the job runs; a Rust job gets the identifier and looks the
/// record up itself (`gid.model == "User"`, `gid.parse_id::<i64>()`).
///
/// It deserializes from the URI string or from ActiveJob's `{"_aj_globalid": "gid://…"}`
/// object, and serializes as the URI string.
///
/// ```
/// use jobs_runtime::GlobalId;
///
/// let gid: GlobalId = "gid://shop/User/42".parse().unwrap();
/// assert_eq!((gid.app.as_str(), gid.model.as_str(), gid.id.as_str()), ("shop", "User", "42"));
/// assert_eq!(gid.parse_id::<i64>().unwrap(), 42);
/// assert_eq!(gid.to_string(), "gid://shop/User/42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GlobalId {
    /// The application (`GlobalID.app`, the URI's host).
    pub app: String,
    /// The model's class name, such as `User` or `Admin::Account`.
    pub model: String,
    /// The record's id, unescaped; the parts of a composite key are joined with `/`.
    pub id: String,
    /// The URI's query parameters, unescaped (empty for most records).
    pub params: BTreeMap<String, String>,
}

impl GlobalId {
    /// The GlobalID of record `id` of `model` in `app`, with no parameters.
    pub fn new(app: impl Into<String>, model: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            model: model.into(),
            id: id.into(),
            params: BTreeMap::new(),
        }
    }

    /// The id parsed as `T` (such as `i64` or `uuid::Uuid`).
    pub fn parse_id<T: FromStr>(&self) -> Result<T, T::Err> {
        self.id.parse()
    }
}

/// A string that is not a GlobalID URI, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalIdError {
    message: String,
}

impl fmt::Display for GlobalIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GlobalIdError {}

impl FromStr for GlobalId {
    type Err = GlobalIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |why: &str| GlobalIdError {
            message: format!("`{text}` is not a GlobalID (gid://app/Model/id): {why}"),
        };
        let rest = text
            .strip_prefix("gid://")
            .ok_or_else(|| fail("it does not start with gid://"))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut parts = location.splitn(3, '/');
        let app = parts.next().unwrap_or_default();
        let model = parts.next().unwrap_or_default();
        let id = parts.next().unwrap_or_default().trim_end_matches('/');
        if app.is_empty() {
            return Err(fail("it names no app"));
        }
        if model.is_empty() {
            return Err(fail("it names no model"));
        }
        if id.is_empty() {
            return Err(fail("it has no model id"));
        }
        let id = id.split('/').map(unescape).collect::<Vec<_>>().join("/");
        let params = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (unescape(key), unescape(value))
            })
            .collect();
        Ok(Self {
            app: app.to_owned(),
            model: unescape(model),
            id,
            params,
        })
    }
}

impl fmt::Display for GlobalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gid://{}/{}/", self.app, escape(&self.model))?;
        let parts: Vec<String> = self.id.split('/').map(escape).collect();
        f.write_str(&parts.join("/"))?;
        for (index, (key, value)) in self.params.iter().enumerate() {
            let separator = if index == 0 { '?' } else { '&' };
            write!(f, "{separator}{}={}", escape(key), escape(value))?;
        }
        Ok(())
    }
}

/// Ruby's `CGI.unescape`, which GlobalID applies to the id: `%XX` and `+` for a space.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Ruby's `CGI.escape`, as GlobalID builds the id: unreserved characters kept, a space as `+`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' | b':' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

impl Serialize for GlobalId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GlobalId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(GlobalIdVisitor)
    }
}

struct GlobalIdVisitor;

impl<'de> Visitor<'de> for GlobalIdVisitor {
    type Value = GlobalId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GlobalID: a `gid://app/Model/id` string or {\"_aj_globalid\": \"gid://…\"}")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<GlobalId, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GlobalId, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == GLOBALID_KEY && found.is_none() {
                let text: String = map.next_value()?;
                found = Some(text.parse().map_err(de::Error::custom)?);
            } else {
                return Err(de::Error::custom(format!(
                    "a GlobalID object has only the key `{GLOBALID_KEY}`, not `{key}`"
                )));
            }
        }
        found.ok_or_else(|| de::Error::missing_field(GLOBALID_KEY))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::GlobalId;

    #[test]
    fn reads_the_uri_and_the_active_job_object() {
        let gid: GlobalId = serde_json::from_value(json!("gid://app/User/42")).unwrap();
        assert_eq!(gid, GlobalId::new("app", "User", "42"));
        let wrapped: GlobalId =
            serde_json::from_value(json!({"_aj_globalid": "gid://app/User/42"})).unwrap();
        assert_eq!(wrapped, gid);
        assert_eq!(
            serde_json::to_value(&gid).unwrap(),
            json!("gid://app/User/42")
        );
    }

    #[test]
    fn unescapes_ids_namespaces_and_params() {
        let gid: GlobalId = "gid://my-app/Admin::Account/a%2Bb+c/7?tenant=x%20y"
            .parse()
            .unwrap();
        assert_eq!(gid.model, "Admin::Account");
        assert_eq!(gid.id, "a+b c/7");
        assert_eq!(gid.params.get("tenant").map(String::as_str), Some("x y"));
        let again: GlobalId = gid.to_string().parse().unwrap();
        assert_eq!(again, gid);
    }

    #[test]
    fn refuses_what_is_not_a_global_id() {
        for text in [
            "http://app/User/1",
            "gid://app/User",
            "gid:///User/1",
            "gid://app//1",
        ] {
            let error = text.parse::<GlobalId>().unwrap_err().to_string();
            assert!(error.contains("is not a GlobalID"), "{text}: {error}");
        }
        assert!(serde_json::from_value::<GlobalId>(json!({"id": 1})).is_err());
        assert!(serde_json::from_value::<GlobalId>(json!(42)).is_err());
    }
}

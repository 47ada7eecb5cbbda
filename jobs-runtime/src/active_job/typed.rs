//! The Rust values ActiveJob stores in a form of its own rather than as plain JSON: a Ruby
//! `Date`, `Time` or record, which plain JSON could not tell apart from a string. Also the serde
//! `with` module that writes those forms for a field nested in an argument.
//!
//! Rails 6.1's serializers (`serializers/*.rb`) write them as:
//!
//! | Rust | Ruby | stored |
//! |---|---|---|
//! | `chrono::NaiveDate` | `Date` | `{"_aj_serialized": "ActiveJob::Serializers::DateSerializer", "value": "2026-12-06"}` |
//! | `DateTime<Utc>` | `ActiveSupport::TimeWithZone` | `{"_aj_serialized": "…TimeWithZoneSerializer", "value": "2026-12-06T10:00:00.000000000Z"}` |
//! | `DateTime<FixedOffset>` | `Time` (its offset kept) | `{"_aj_serialized": "…TimeSerializer", "value": "2026-12-06T11:00:00.000000000+01:00"}` |
//! | [`GlobalId`] | the record | `{"_aj_globalid": "gid://shop/User/42"}` |
//!
//! and `Option` (`nil`) and `Vec` (an Array) of those.

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::arguments::{SERIALIZED_KEY, plain_value};
use super::global_id::{GLOBALID_KEY, GlobalId};

/// Rails's serializer of a `Date`.
pub(super) const DATE_SERIALIZER: &str = "ActiveJob::Serializers::DateSerializer";
/// Rails's serializer of a `Time`.
pub(super) const TIME_SERIALIZER: &str = "ActiveJob::Serializers::TimeSerializer";
/// Rails's serializer of an `ActiveSupport::TimeWithZone` (what `Time.current` returns).
pub(super) const TIME_WITH_ZONE_SERIALIZER: &str = "ActiveJob::Serializers::TimeWithZoneSerializer";

/// A Rust type ActiveJob stores as a Ruby type of its own: `NaiveDate` as a `Date`,
/// `DateTime<Utc>` as an `ActiveSupport::TimeWithZone`, `DateTime<FixedOffset>` as a `Time`,
/// [`GlobalId`] as the record, and `Option` and `Vec` of those.
///
/// An argument of one of these types of an `active_job` job is pushed in that form; a field of
/// one of them inside an argument takes `#[serde(with = "jobs::active_job::typed")]`.
/// Sealed: the forms are the ones Rails's own serializers read.
pub trait Typed: sealed::Sealed {
    /// The value as ActiveJob serializes it.
    fn to_active_job(&self) -> Value;
}

mod sealed {
    /// Keeps [`Typed`](super::Typed) to the types this file implements it for.
    pub trait Sealed {}
}

/// `{"_aj_serialized": serializer, "value": value}`.
fn serialized(serializer: &str, value: String) -> Value {
    let mut form = Map::new();
    form.insert(SERIALIZED_KEY.to_owned(), Value::from(serializer));
    form.insert("value".to_owned(), Value::String(value));
    Value::Object(form)
}

impl sealed::Sealed for NaiveDate {}
impl Typed for NaiveDate {
    /// Ruby's `Date#iso8601`: `2026-12-06`.
    fn to_active_job(&self) -> Value {
        serialized(DATE_SERIALIZER, self.format("%Y-%m-%d").to_string())
    }
}

impl sealed::Sealed for DateTime<Utc> {}
impl Typed for DateTime<Utc> {
    /// `iso8601(9)`, as Rails's `TimeObjectSerializer` writes it: `2026-12-06T10:00:00.000000000Z`.
    fn to_active_job(&self) -> Value {
        let value = self.to_rfc3339_opts(SecondsFormat::Nanos, true);
        serialized(TIME_WITH_ZONE_SERIALIZER, value)
    }
}

impl sealed::Sealed for DateTime<FixedOffset> {}
impl Typed for DateTime<FixedOffset> {
    /// `iso8601(9)` with the offset: `2026-12-06T11:00:00.000000000+01:00`.
    fn to_active_job(&self) -> Value {
        let value = self.to_rfc3339_opts(SecondsFormat::Nanos, false);
        serialized(TIME_SERIALIZER, value)
    }
}

impl sealed::Sealed for GlobalId {}
impl Typed for GlobalId {
    /// `{"_aj_globalid": "gid://…"}`.
    fn to_active_job(&self) -> Value {
        let mut form = Map::new();
        form.insert(GLOBALID_KEY.to_owned(), Value::String(self.to_string()));
        Value::Object(form)
    }
}

impl<T: Typed> sealed::Sealed for Option<T> {}
impl<T: Typed> Typed for Option<T> {
    /// `None` is `nil`.
    fn to_active_job(&self) -> Value {
        self.as_ref().map_or(Value::Null, Typed::to_active_job)
    }
}

impl<T: Typed> sealed::Sealed for Vec<T> {}
impl<T: Typed> Typed for Vec<T> {
    /// An Array of the forms.
    fn to_active_job(&self) -> Value {
        Value::Array(self.iter().map(Typed::to_active_job).collect())
    }
}

/// The key [`serialize`] adds to each form it writes while an argument of an `active_job` job
/// is encoded ([`encoding`]), so that `serialize.rs` can tell the forms Rust made from an
/// object of the same shape that came from elsewhere (request input in a `serde_json::Value` or
/// a `HashMap`), which it refuses as Rails refuses a Hash with a reserved key. Its value is
/// [`marker`], random per process, so input cannot carry it. `serialize.rs` removes it: it is
/// never stored, and outside [`encoding`] it is never written.
const MARKER_KEY: &str = "_jobs_typed_form";

/// The value of [`MARKER_KEY`]: 128 random bits, in hex, drawn once per process.
fn marker() -> &'static str {
    static MARKER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARKER.get_or_init(|| {
        let bits: u128 = rand::random();
        format!("{bits:032x}")
    })
}

thread_local! {
    /// How many [`encoding`] calls this thread is inside.
    static ENCODING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Runs `encode`, the serde encoding of an argument of an `active_job` job that
/// `serialize.rs` then serializes, with the forms [`serialize`] writes marked.
pub(super) fn encoding<R>(encode: impl FnOnce() -> R) -> R {
    /// Leaves the marking on a panic too.
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            ENCODING.with(|depth| depth.set(depth.get().saturating_sub(1)));
        }
    }
    ENCODING.with(|depth| depth.set(depth.get().saturating_add(1)));
    let _leave = Leave;
    encode()
}

/// `value` (what [`Typed::to_active_job`] wrote) with every object in it marked as a form
/// Rust made.
fn mark(value: Value) -> Value {
    match value {
        Value::Object(mut object) => {
            object.insert(MARKER_KEY.to_owned(), Value::from(marker()));
            Value::Object(object)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(mark).collect()),
        other => other,
    }
}

/// Removes the mark of [`encoding`] from `object`; `true` when it had one.
pub(super) fn take_mark(object: &mut Map<String, Value>) -> bool {
    match object.get(MARKER_KEY) {
        Some(Value::String(value)) if value == marker() => {
            object.remove(MARKER_KEY);
            true
        }
        _ => false,
    }
}

/// Whether `object` is a form [`Typed`] writes, which an argument carries as it is: a
/// GlobalID of a well-formed URI, or a Date, Time or TimeWithZone with a string `value`.
pub(super) fn is_form(object: &Map<String, Value>) -> bool {
    if let (1, Some(Value::String(uri))) = (object.len(), object.get(GLOBALID_KEY)) {
        return uri.parse::<GlobalId>().is_ok();
    }
    let serializer = object.get(SERIALIZED_KEY).and_then(Value::as_str);
    object.len() == 2
        && serializer.is_some_and(|name| {
            [DATE_SERIALIZER, TIME_SERIALIZER, TIME_WITH_ZONE_SERIALIZER].contains(&name)
        })
        && object.get("value").is_some_and(Value::is_string)
}

/// Serde's `serialize_with` for a field of a [`Typed`] type nested in an argument of an
/// `active_job` job: writes the form ActiveJob stores, so Ruby reads a `Date` (a `Time`, a
/// record) where plain JSON would give it a string.
///
/// ```
/// use chrono::NaiveDate;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Period {
///     #[serde(with = "jobs_runtime::active_job::typed")]
///     start: NaiveDate,
///     #[serde(with = "jobs_runtime::active_job::typed", default)]
///     end: Option<NaiveDate>,
/// }
///
/// let period = Period { start: NaiveDate::from_ymd_opt(2026, 12, 6).unwrap(), end: None };
/// assert_eq!(
///     serde_json::to_string(&period).unwrap(),
///     r#"{"start":{"_aj_serialized":"ActiveJob::Serializers::DateSerializer","value":"2026-12-06"},"end":null}"#
/// );
/// let read: Period = serde_json::from_str(r#"{"start":"2026-12-06"}"#).unwrap();
/// assert_eq!(read.start, period.start);
/// ```
pub fn serialize<T: Typed, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    let form = value.to_active_job();
    if ENCODING.with(std::cell::Cell::get) > 0 {
        mark(form).serialize(serializer)
    } else {
        form.serialize(serializer)
    }
}

/// Serde's `deserialize_with` for such a field: reads the plain value (`"2026-12-06"`) or the
/// form ActiveJob stores, as a Rust job reads its arguments.
pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: DeserializeOwned,
    D: Deserializer<'de>,
{
    let value = Value::deserialize(deserializer)?;
    let plain = plain_value(&value).map_err(de::Error::custom)?;
    serde_json::from_value(plain).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
    use serde_json::json;

    use super::{Typed, deserialize, is_form};
    use crate::GlobalId;

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 6).unwrap()
    }

    #[test]
    fn writes_the_forms_rails_serializers_write() {
        assert_eq!(
            date().to_active_job(),
            json!({"_aj_serialized": "ActiveJob::Serializers::DateSerializer", "value": "2026-12-06"})
        );
        let instant = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 5).unwrap()
            + chrono::TimeDelta::milliseconds(250);
        assert_eq!(
            instant.to_active_job(),
            json!({"_aj_serialized": "ActiveJob::Serializers::TimeWithZoneSerializer",
                   "value": "2026-12-06T10:00:05.250000000Z"})
        );
        let berlin: DateTime<FixedOffset> =
            instant.with_timezone(&FixedOffset::east_opt(3600).unwrap());
        assert_eq!(
            berlin.to_active_job(),
            json!({"_aj_serialized": "ActiveJob::Serializers::TimeSerializer",
                   "value": "2026-12-06T11:00:05.250000000+01:00"})
        );
        let user = GlobalId::new("shop", "User", "42");
        assert_eq!(
            user.to_active_job(),
            json!({"_aj_globalid": "gid://shop/User/42"})
        );
        assert_eq!(None::<NaiveDate>.to_active_job(), json!(null));
        assert_eq!(
            vec![Some(user), None].to_active_job(),
            json!([{"_aj_globalid": "gid://shop/User/42"}, null])
        );
    }

    #[test]
    fn knows_its_own_forms_only() {
        for form in [
            date().to_active_job(),
            Utc::now().to_active_job(),
            GlobalId::new("shop", "User", "42").to_active_job(),
        ] {
            assert!(is_form(form.as_object().unwrap()), "{form}");
        }
        for other in [
            json!({"_aj_globalid": "not a gid"}),
            json!({"_aj_globalid": "gid://a/B/1", "extra": 1}),
            json!({"_aj_serialized": "ActiveJob::Serializers::SymbolSerializer", "value": "x"}),
            json!({"_aj_serialized": "ActiveJob::Serializers::DateSerializer", "value": 1}),
            json!({"value": "2026-12-06"}),
        ] {
            assert!(!is_form(other.as_object().unwrap()), "{other}");
        }
    }

    #[test]
    fn reads_the_plain_value_and_the_form() {
        let read = |value: serde_json::Value| -> Result<NaiveDate, serde_json::Error> {
            deserialize(value)
        };
        assert_eq!(read(json!("2026-12-06")).unwrap(), date());
        assert_eq!(read(date().to_active_job()).unwrap(), date());
        let error =
            read(json!({"_aj_serialized": "ActiveJob::Serializers::DateSerializer", "value": 1}))
                .unwrap_err()
                .to_string();
        assert!(
            error.starts_with("ActiveJob value is a Ruby Date"),
            "{error}"
        );
    }
}

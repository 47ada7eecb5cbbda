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
//! | `DateTime<Tz>` of any other zone (`FixedOffset`, `Local`, `chrono_tz::Tz`) | `Time` (its offset kept) | `{"_aj_serialized": "…TimeSerializer", "value": "2026-12-06T11:00:00.000000000+01:00"}` |
//! | [`GlobalId`] | the record | `{"_aj_globalid": "gid://shop/User/42"}` |
//!
//! and `Option` (`nil`), `Box`/`Arc` (the value), `Vec`, `VecDeque`, arrays, slices,
//! `BTreeSet` and `HashSet` (an Array) of those, and tuples of up to four [`Element`]s (an
//! Array, each element in its form: a typed value or a plain scalar).

use std::any::TypeId;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
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
/// `DateTime<Utc>` as an `ActiveSupport::TimeWithZone`, a `DateTime` of any other zone
/// (`FixedOffset`, `Local`, `chrono_tz::Tz`) as a `Time` with its offset, [`GlobalId`] as the
/// record; `Option`, `Box`, `Arc`, `Vec`, `VecDeque`, arrays, `BTreeSet` and `HashSet` of
/// those; and tuples of up to four [`Element`]s (typed values or plain scalars).
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
    /// Keeps [`Element`](super::Element) to the types this file implements it for.
    pub trait SealedElement {}
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

impl<Tz: TimeZone + 'static> sealed::Sealed for DateTime<Tz> {}
impl<Tz: TimeZone + 'static> Typed for DateTime<Tz>
where
    Tz::Offset: fmt::Display,
{
    /// `iso8601(9)`, as Rails's `TimeObjectSerializer` writes it. `DateTime<Utc>` is an
    /// `ActiveSupport::TimeWithZone` (`Time.current`), `2026-12-06T10:00:00.000000000Z`, which
    /// Rails reads in the app's zone; any other zone (`FixedOffset`, `Local`, `chrono_tz::Tz`)
    /// a `Time` with the offset it has at that instant, `2026-12-06T11:00:00.000000000+01:00`
    /// (the zone's name is not kept, as ActiveJob keeps none).
    fn to_active_job(&self) -> Value {
        if TypeId::of::<Tz>() == TypeId::of::<Utc>() {
            let value = self.to_rfc3339_opts(SecondsFormat::Nanos, true);
            serialized(TIME_WITH_ZONE_SERIALIZER, value)
        } else {
            let value = self.to_rfc3339_opts(SecondsFormat::Nanos, false);
            serialized(TIME_SERIALIZER, value)
        }
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

impl<T: Typed + ?Sized> sealed::Sealed for Box<T> {}
impl<T: Typed + ?Sized> Typed for Box<T> {
    /// The boxed value's form.
    fn to_active_job(&self) -> Value {
        T::to_active_job(self)
    }
}

impl<T: Typed + ?Sized> sealed::Sealed for Arc<T> {}
impl<T: Typed + ?Sized> Typed for Arc<T> {
    /// The shared value's form.
    fn to_active_job(&self) -> Value {
        T::to_active_job(self)
    }
}

impl<T: Typed> sealed::Sealed for [T] {}
impl<T: Typed> Typed for [T] {
    /// An Array of the forms.
    fn to_active_job(&self) -> Value {
        Value::Array(self.iter().map(Typed::to_active_job).collect())
    }
}

impl<T: Typed, const N: usize> sealed::Sealed for [T; N] {}
impl<T: Typed, const N: usize> Typed for [T; N] {
    /// An Array of the forms.
    fn to_active_job(&self) -> Value {
        self.as_slice().to_active_job()
    }
}

impl<T: Typed> sealed::Sealed for VecDeque<T> {}
impl<T: Typed> Typed for VecDeque<T> {
    /// An Array of the forms.
    fn to_active_job(&self) -> Value {
        Value::Array(self.iter().map(Typed::to_active_job).collect())
    }
}

impl<T: Typed> sealed::Sealed for BTreeSet<T> {}
impl<T: Typed> Typed for BTreeSet<T> {
    /// An Array of the forms, in the set's order.
    fn to_active_job(&self) -> Value {
        Value::Array(self.iter().map(Typed::to_active_job).collect())
    }
}

impl<T: Typed, S> sealed::Sealed for HashSet<T, S> {}
impl<T: Typed, S> Typed for HashSet<T, S> {
    /// An Array of the forms, in the set's (arbitrary) order, as serde writes a set.
    fn to_active_job(&self) -> Value {
        Value::Array(self.iter().map(Typed::to_active_job).collect())
    }
}

/// An element of a tuple that is pushed element by element: a [`Typed`] value in its form, or
/// a plain scalar (`bool`, an integer up to 64 bits, `f32`/`f64`, `char`, `String`) as serde
/// writes it. A tuple of up to four such elements, `(NaiveDate, GlobalId)` or
/// `(NaiveDate, i64)`, is [`Typed`]; a tuple with any other element (a struct, a map,
/// `Vec<String>`, `Option<String>`) goes through serde as a whole, its dates, times and
/// records as strings. Sealed, as [`Typed`] is.
pub trait Element: sealed::SealedElement {
    /// The element as ActiveJob serializes it.
    fn to_active_job_element(&self) -> Value;
}

impl<T: Typed> sealed::SealedElement for T {}
impl<T: Typed> Element for T {
    fn to_active_job_element(&self) -> Value {
        self.to_active_job()
    }
}

/// [`Element`] for plain scalars, which serialize as `Value::from` writes them.
macro_rules! scalar_elements {
    ($($scalar:ty),*) => {$(
        impl sealed::SealedElement for $scalar {}
        impl Element for $scalar {
            fn to_active_job_element(&self) -> Value {
                Value::from(*self)
            }
        }
    )*};
}

scalar_elements!(
    bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64
);

impl sealed::SealedElement for String {}
impl Element for String {
    fn to_active_job_element(&self) -> Value {
        Value::String(self.clone())
    }
}

impl sealed::SealedElement for char {}
impl Element for char {
    fn to_active_job_element(&self) -> Value {
        Value::String(self.to_string())
    }
}

/// [`Typed`] for tuples of [`Element`]s: an Array, each element in its form.
macro_rules! tuples {
    ($(($($name:ident . $index:tt),+)),*) => {$(
        impl<$($name: Element),+> sealed::Sealed for ($($name,)+) {}
        impl<$($name: Element),+> Typed for ($($name,)+) {
            /// An Array, each element as ActiveJob serializes it.
            fn to_active_job(&self) -> Value {
                Value::Array(vec![$(self.$index.to_active_job_element()),+])
            }
        }
    )*};
}

tuples!((A.0), (A.0, B.1), (A.0, B.1, C.2), (A.0, B.1, C.2, D.3));

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
    use chrono::{DateTime, FixedOffset, NaiveDate, Offset as _, TimeZone, Utc};
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
    fn containers_of_typed_values_are_arrays_of_forms() {
        use std::collections::{BTreeSet, HashSet, VecDeque};
        let form = date().to_active_job();
        assert_eq!(Box::new(date()).to_active_job(), form);
        assert_eq!(std::sync::Arc::new(date()).to_active_job(), form);
        assert_eq!([date(), date()].to_active_job(), json!([form, form]));
        assert_eq!(VecDeque::from([date()]).to_active_job(), json!([form]));
        assert_eq!(BTreeSet::from([date()]).to_active_job(), json!([form]));
        assert_eq!(HashSet::from([date()]).to_active_job(), json!([form]));
        assert_eq!(
            Box::new([Some(date()), None]).to_active_job(),
            json!([form, null])
        );
    }

    #[test]
    fn a_tuple_s_elements_each_take_their_form() {
        let user = GlobalId::new("shop", "User", "42");
        let user_form = json!({"_aj_globalid": "gid://shop/User/42"});
        let form = date().to_active_job();
        assert_eq!((date(),).to_active_job(), json!([form]));
        assert_eq!(
            (date(), user.clone()).to_active_job(),
            json!([form, user_form])
        );
        // Plain scalars beside typed values go as serde writes them.
        assert_eq!(
            (date(), "text".to_owned(), 42_i64, 1.5_f64).to_active_job(),
            json!([form, "text", 42, 1.5])
        );
        assert_eq!(
            (true, 'x', u64::MAX, Some(user)).to_active_job(),
            json!([true, "x", u64::MAX, user_form])
        );
        assert_eq!((f64::NAN, -3_i8).to_active_job(), json!([null, -3]));
        assert_eq!(vec![(date(), 1_u32)].to_active_job(), json!([[form, 1]]));
    }

    #[test]
    fn a_time_of_any_zone_is_a_time_with_its_offset() {
        let instant = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 5).unwrap();
        let berlin = instant.with_timezone(&chrono_tz::Europe::Berlin);
        assert_eq!(
            berlin.to_active_job(),
            json!({"_aj_serialized": "ActiveJob::Serializers::TimeSerializer",
                   "value": "2026-12-06T11:00:05.000000000+01:00"})
        );
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 10, 0, 0).unwrap();
        assert_eq!(
            summer
                .with_timezone(&chrono_tz::Europe::Berlin)
                .to_active_job()["value"],
            "2026-07-01T12:00:00.000000000+02:00"
        );
        let local = instant.with_timezone(&chrono::Local);
        let value = local.to_active_job();
        assert_eq!(
            value["_aj_serialized"],
            "ActiveJob::Serializers::TimeSerializer"
        );
        let read = DateTime::parse_from_rfc3339(value["value"].as_str().unwrap()).unwrap();
        assert_eq!(read, instant);
        assert_eq!(read.offset(), &local.offset().fix());
        // UTC is still Rails's `Time.current`, a TimeWithZone.
        assert_eq!(
            instant.to_active_job()["_aj_serialized"],
            "ActiveJob::Serializers::TimeWithZoneSerializer"
        );
        assert_eq!(
            instant.fixed_offset().to_active_job()["value"],
            "2026-12-06T10:00:05.000000000+00:00"
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

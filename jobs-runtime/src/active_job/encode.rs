//! How the `#[job]` expansion encodes an argument of an `active_job` job: a [`Typed`] value
//! (a date, a time, a record) in its ActiveJob form, any other through serde and then as
//! ActiveJob serializes plain JSON (`serialize.rs`).
//!
//! The macro sees only the argument's type as written (an alias, say), so the choice is left
//! to the compiler, by autoref specialization: the expansion calls
//!
//! ```ignore
//! (&Argument::new(&self.date, codec::<T>(), "date")).active_job_argument()
//! ```
//!
//! with both traits below in scope. Method lookup tries the receiver `&Argument<T>` before
//! `&&Argument<T>`: [`ByTyped`] is implemented for `Argument<T>` (its `&self` is
//! `&Argument<T>`) when `T: Typed`, so it wins for those types; [`BySerde`] is implemented for
//! `&Argument<T>` (its `&self` is `&&Argument<T>`), for every `T`, so it is reached by one more
//! autoref, for the rest. It works because the expansion's types are concrete: in generic code
//! it would always pick [`BySerde`]. Serde's side encodes with the argument's [`ArgCodec`],
//! whose construction is where an argument type that is not serializable is reported, once.

use serde_json::Value;

use super::Typed;
use super::{serialize, typed};
use crate::job::ArgCodec;

/// One argument of an `active_job` job, for the expansion to encode; see the module docs.
#[derive(Debug)]
pub struct Argument<'a, T> {
    value: &'a T,
    codec: ArgCodec<T>,
    name: &'static str,
}

impl<'a, T> Argument<'a, T> {
    /// The argument `name` of the job function, holding `value`, of the type `codec` encodes.
    pub fn new(value: &'a T, codec: ArgCodec<T>, name: &'static str) -> Self {
        Self { value, codec, name }
    }
}

/// Encodes a [`Typed`] argument in its ActiveJob form.
pub trait ByTyped {
    /// The argument as ActiveJob stores it.
    fn active_job_argument(&self) -> Result<Value, serde_json::Error>;
}

impl<T: Typed> ByTyped for Argument<'_, T> {
    fn active_job_argument(&self) -> Result<Value, serde_json::Error> {
        Ok(self.value.to_active_job())
    }
}

/// Encodes any other argument through serde, then as ActiveJob serializes plain JSON.
pub trait BySerde {
    /// The argument as ActiveJob stores it.
    fn active_job_argument(&self) -> Result<Value, serde_json::Error>;
}

impl<T> BySerde for &Argument<'_, T> {
    fn active_job_argument(&self) -> Result<Value, serde_json::Error> {
        let plain = typed::encoding(|| (self.codec.encode)(self.value))?;
        serialize::argument(plain).map_err(|reason| named(self.name, &reason))
    }
}

/// Encodes the `#[keywords]` argument `name`: a struct whose fields become Ruby's keyword
/// arguments.
pub fn keywords<T>(
    value: &T,
    codec: ArgCodec<T>,
    name: &'static str,
) -> Result<Value, serde_json::Error> {
    let plain = typed::encoding(|| (codec.encode)(value))?;
    serialize::keywords(plain).map_err(|reason| named(name, &reason))
}

/// An error about argument `name`.
fn named(name: &str, reason: &str) -> serde_json::Error {
    <serde_json::Error as serde::ser::Error>::custom(format!("argument `{name}`: {reason}"))
}

// The calls are spelled as the expansion spells them, `(&Argument::new(…))`: for a typed value
// the borrow is one the compiler would add, for the rest it is what selects `BySerde`.
#[cfg(test)]
#[allow(clippy::needless_borrow)]
mod tests {
    use std::collections::HashMap;

    use chrono::NaiveDate;
    use serde_json::json;

    use super::{Argument, BySerde as _, ByTyped as _, keywords};
    use crate::job::codec;

    /// An alias, as a user may write one: the macro cannot see through it, the compiler can.
    type Day = NaiveDate;

    #[test]
    fn typed_values_take_their_form_and_the_rest_goes_through_serde() {
        let day: Day = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        let date_form = json!({"_aj_serialized": "ActiveJob::Serializers::DateSerializer",
                               "value": "2026-12-06"});
        assert_eq!(
            (&Argument::new(&day, codec::<Day>(), "day"))
                .active_job_argument()
                .unwrap(),
            date_form
        );
        let days = Some(vec![day]);
        assert_eq!(
            (&Argument::new(&days, codec::<Option<Vec<Day>>>(), "days"))
                .active_job_argument()
                .unwrap(),
            json!([date_form])
        );
        // A tuple of typed and plain elements: each element in its form.
        let pair = (Box::new(day), 7_i64);
        assert_eq!(
            (&Argument::new(&pair, codec::<(Box<Day>, i64)>(), "pair"))
                .active_job_argument()
                .unwrap(),
            json!([date_form, 7])
        );
        let local = chrono::Utc::now().with_timezone(&chrono::Local);
        assert_eq!(
            (&Argument::new(&local, codec::<chrono::DateTime<chrono::Local>>(), "at"))
                .active_job_argument()
                .unwrap()["_aj_serialized"],
            "ActiveJob::Serializers::TimeSerializer"
        );
        // A tuple with an element of neither kind goes through serde, as before.
        let other = (day, vec!["a".to_owned()]);
        assert_eq!(
            (&Argument::new(&other, codec::<(Day, Vec<String>)>(), "other"))
                .active_job_argument()
                .unwrap(),
            json!(["2026-12-06", ["a"]])
        );
        let text = "2026-12-06".to_owned();
        assert_eq!(
            (&Argument::new(&text, codec::<String>(), "text"))
                .active_job_argument()
                .unwrap(),
            json!("2026-12-06")
        );
        let hash = HashMap::from([("k".to_owned(), 1)]);
        assert_eq!(
            (&Argument::new(&hash, codec::<HashMap<String, i32>>(), "hash"))
                .active_job_argument()
                .unwrap(),
            json!({"k": 1, "_aj_symbol_keys": []})
        );
    }

    #[test]
    fn errors_name_the_argument() {
        let hash = HashMap::from([("_aj_globalid".to_owned(), 1)]);
        let error = (&Argument::new(&hash, codec::<HashMap<String, i32>>(), "meta"))
            .active_job_argument()
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("argument `meta`: a hash has the key `_aj_globalid`"),
            "{error}"
        );
        let error = keywords(&3, codec::<i32>(), "options")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("argument `options`: keyword arguments are given as an object"),
            "{error}"
        );
    }
}

//! A Rust job's plain JSON arguments turned into what `ActiveJob::Arguments.serialize` writes
//! (Rails 6.1's `arguments.rb`): the inverse of `arguments.rs`.
//!
//! `nil`, booleans, numbers and strings are themselves; an array is its elements, serialized;
//! an object is a Hash with string keys, marked `"_aj_symbol_keys": []` as Rails marks one, its
//! values serialized. The forms [`Typed`](super::Typed) writes (a Date, a Time, a record)
//! through `#[serde(with = "jobs::active_job::typed")]` are kept as they are: they carry the
//! mark `typed::encoding` has them written with, which is removed here. Any other hash with one
//! of the keys ActiveJob reserves for its forms cannot be serialized, as Rails raises
//! `ActiveJob::SerializationError` for it, even one shaped as a valid form (request input
//! naming a record).

use serde_json::{Map, Value};

use super::arguments::{RESERVED_KEYS, RUBY2_KEYWORDS_KEY, SYMBOL_KEYS_KEY};
use super::typed::{is_form, take_mark};
use crate::payload::kind;

/// One positional argument, serialized; the error says which hash key is reserved, and where.
pub(crate) fn argument(value: Value) -> Result<Value, String> {
    serialize(value, &mut String::new())
}

/// The keyword arguments of a job, given as one object (a struct with a field per keyword):
/// a Hash marked `"_aj_ruby2_keywords": [its keys]`, which Ruby passes to `perform` as
/// keywords (Rails 6.1's form for a `ruby2_keywords` hash).
pub(crate) fn keywords(value: Value) -> Result<Value, String> {
    let Value::Object(object) = value else {
        return Err(format!(
            "keyword arguments are given as an object, a struct with a field per keyword, not \
             {}",
            kind(&value)
        ));
    };
    let names: Vec<Value> = object.keys().cloned().map(Value::String).collect();
    let mut hash = hash(object, &mut String::new())?;
    hash.insert(RUBY2_KEYWORDS_KEY.to_owned(), Value::Array(names));
    Ok(Value::Object(hash))
}

fn serialize(value: Value, path: &mut String) -> Result<Value, String> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| nested(path, format!("[{index}]"), |path| serialize(item, path)))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(mut object) => {
            if take_mark(&mut object) && is_form(&object) {
                return Ok(Value::Object(object));
            }
            let mut hash = hash(object, path)?;
            hash.insert(SYMBOL_KEYS_KEY.to_owned(), Value::Array(Vec::new()));
            Ok(Value::Object(hash))
        }
        plain => Ok(plain),
    }
}

/// A hash's entries, serialized, without its marker.
fn hash(object: Map<String, Value>, path: &mut String) -> Result<Map<String, Value>, String> {
    let mut hash = Map::new();
    for (key, value) in object {
        if RESERVED_KEYS.contains(&key.as_str()) {
            let at = if path.is_empty() {
                String::new()
            } else {
                format!(" (at `{path}`)")
            };
            return Err(format!(
                "a hash{at} has the key `{key}`, which ActiveJob reserves for its own forms, so \
                 Rails would refuse it too (ActiveJob::SerializationError): rename the key"
            ));
        }
        let value = nested(path, format!(".{key}"), |path| serialize(value, path))?;
        hash.insert(key, value);
    }
    Ok(hash)
}

/// Runs `run` with `step` added to `path`.
fn nested<T>(path: &mut String, step: String, run: impl FnOnce(&mut String) -> T) -> T {
    let length = path.len();
    path.push_str(&step);
    let result = run(path);
    path.truncate(length);
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{argument, keywords};
    use crate::active_job::Typed;

    #[test]
    fn plain_values_are_themselves() {
        for value in [
            json!(null),
            json!(true),
            json!(42),
            json!(1.5),
            json!("text"),
        ] {
            assert_eq!(argument(value.clone()).unwrap(), value);
        }
        assert_eq!(argument(json!([1, ["two"]])).unwrap(), json!([1, ["two"]]));
    }

    #[test]
    fn every_object_is_a_hash_with_string_keys() {
        assert_eq!(
            argument(json!({"name": "x", "nested": [{"level": 2}]})).unwrap(),
            json!({"name": "x", "nested": [{"level": 2, "_aj_symbol_keys": []}],
                   "_aj_symbol_keys": []})
        );
    }

    #[derive(serde::Serialize)]
    struct Period {
        #[serde(with = "crate::active_job::typed")]
        on: chrono::NaiveDate,
        #[serde(with = "crate::active_job::typed")]
        users: Vec<crate::GlobalId>,
    }

    fn period() -> Period {
        Period {
            on: chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap(),
            users: vec![crate::GlobalId::new("shop", "User", "42")],
        }
    }

    #[test]
    fn typed_forms_inside_are_kept_without_their_mark() {
        let date = period().on.to_active_job();
        let user = json!({"_aj_globalid": "gid://shop/User/42"});
        let encoded =
            crate::active_job::typed::encoding(|| serde_json::to_value(period())).unwrap();
        assert_ne!(encoded["on"], date, "marked while encoding");
        assert_eq!(
            argument(encoded).unwrap(),
            json!({"on": date, "users": [user], "_aj_symbol_keys": []})
        );
        // Outside an `active_job` argument's encoding, the `with` module writes no mark.
        assert_eq!(
            serde_json::to_value(period()).unwrap(),
            json!({"on": date, "users": [user]})
        );
    }

    #[test]
    fn a_valid_form_not_made_by_typed_is_refused() {
        let user = json!({"_aj_globalid": "gid://shop/Admin/1"});
        let date = period().on.to_active_job();
        for (value, at) in [
            (user.clone(), ""),
            (json!({"owner": user}), " (at `.owner`)"),
            (json!([date]), " (at `[0]`)"),
        ] {
            let error = argument(value.clone()).unwrap_err();
            assert!(
                error.starts_with(&format!("a hash{at} has the key `_aj_")),
                "{value}: {error}"
            );
        }
        // A mark of another value is an ordinary key, and the reserved key still refused.
        let forged = json!({"_aj_globalid": "gid://shop/Admin/1", "_jobs_typed_form": "0"});
        assert!(argument(forged).is_err());
    }

    #[test]
    fn a_reserved_key_is_refused_with_where_it_is() {
        let error = argument(json!({"meta": [{"_aj_globalid": "not a gid"}]})).unwrap_err();
        assert_eq!(
            error,
            "a hash (at `.meta[0]`) has the key `_aj_globalid`, which ActiveJob reserves for its \
             own forms, so Rails would refuse it too (ActiveJob::SerializationError): rename the key"
        );
        for key in [
            "_aj_serialized",
            "_aj_symbol_keys",
            "_aj_ruby2_keywords",
            "_aj_hash_with_indifferent_access",
        ] {
            let error = argument(json!({ key: 1 })).unwrap_err();
            assert!(
                error.starts_with(&format!("a hash has the key `{key}`")),
                "{error}"
            );
        }
        // Any other key starting `_aj_` is an ordinary key, as in Rails.
        assert!(argument(json!({"_aj_other": 1})).is_ok());
    }

    #[test]
    fn keywords_are_a_ruby2_keywords_hash() {
        assert_eq!(
            keywords(json!({"notify": true, "meta": {"a": 1}})).unwrap(),
            json!({"notify": true, "meta": {"a": 1, "_aj_symbol_keys": []},
                   "_aj_ruby2_keywords": ["meta", "notify"]})
        );
        let error = keywords(json!(5)).unwrap_err();
        assert!(error.ends_with("not a number"), "{error}");
        assert!(keywords(json!({"_aj_serialized": 1})).is_err());
    }
}

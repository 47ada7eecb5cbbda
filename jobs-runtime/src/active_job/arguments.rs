//! ActiveJob's serialized arguments turned into the plain JSON a Rust job's arguments read,
//! following `ActiveJob::Arguments.deserialize` (Rails 6.1 to 7.x, `arguments.rb` and
//! `serializers/*.rb`).

use serde_json::{Map, Value};

use super::global_id::GLOBALID_KEY;
use super::typed::{DATE_SERIALIZER, TIME_SERIALIZER, TIME_WITH_ZONE_SERIALIZER};
use crate::job::ArgsError;

/// The key of an object a serializer wrote (`{"_aj_serialized": "…Serializer", …}`).
pub(super) const SERIALIZED_KEY: &str = "_aj_serialized";
/// Lists the keys of a hash that were symbols.
pub(super) const SYMBOL_KEYS_KEY: &str = "_aj_symbol_keys";
/// Lists the keys of a keyword-arguments hash (all symbols).
pub(super) const RUBY2_KEYWORDS_KEY: &str = "_aj_ruby2_keywords";
/// Marks a `HashWithIndifferentAccess`.
pub(super) const INDIFFERENT_KEY: &str = "_aj_hash_with_indifferent_access";

/// The hash keys ActiveJob keeps for its own forms (Rails 6.1's `RESERVED_KEYS`): a hash with
/// one of them cannot be an argument.
pub(super) const RESERVED_KEYS: [&str; 5] = [
    GLOBALID_KEY,
    SYMBOL_KEYS_KEY,
    RUBY2_KEYWORDS_KEY,
    SERIALIZED_KEY,
    INDIFFERENT_KEY,
];

/// The serializers whose `value` a Rust job reads as it is, and what each one stored.
const VALUE_SERIALIZERS: [(&str, &str, Expect); 7] = [
    (DATE_SERIALIZER, "Date", Expect::Text),
    (TIME_SERIALIZER, "Time", Expect::Text),
    (
        "ActiveJob::Serializers::DateTimeSerializer",
        "DateTime",
        Expect::Text,
    ),
    (
        TIME_WITH_ZONE_SERIALIZER,
        "ActiveSupport::TimeWithZone",
        Expect::Text,
    ),
    (
        "ActiveJob::Serializers::SymbolSerializer",
        "Symbol",
        Expect::Text,
    ),
    (
        "ActiveJob::Serializers::BigDecimalSerializer",
        "BigDecimal",
        Expect::Text,
    ),
    (
        "ActiveJob::Serializers::DurationSerializer",
        "ActiveSupport::Duration",
        Expect::Number,
    ),
];

/// The JSON type a serializer's `value` has.
#[derive(Clone, Copy)]
enum Expect {
    Text,
    Number,
}

/// The positional arguments of a Rust job, from an ActiveJob envelope's `arguments`: every
/// serialized form becomes plain JSON (see `docs/active-job.md`); a form that is broken is an
/// error naming the argument.
pub(crate) fn deserialize(arguments: &[Value]) -> Result<Vec<Value>, ArgsError> {
    arguments
        .iter()
        .enumerate()
        .map(|(index, argument)| {
            let position = index + 1;
            plain(argument, &mut Path::root(Some(position)))
        })
        .collect()
}

/// One value as plain JSON, read by the same rules as an argument: what the serde `with`
/// module [`typed`](super::typed) reads.
pub(super) fn plain_value(value: &Value) -> Result<Value, ArgsError> {
    plain(value, &mut Path::root(None))
}

/// What ActiveJob stored for each argument, for an argument error: `Date, Integer, keywords
/// (notify, at)`.
pub(crate) fn describe(arguments: &[Value]) -> String {
    let kinds: Vec<String> = arguments
        .iter()
        .enumerate()
        .map(|(index, argument)| format!("#{} {}", index + 1, kind(argument)))
        .collect();
    if kinds.is_empty() {
        "none".to_owned()
    } else {
        kinds.join(", ")
    }
}

/// The keyword names when the last argument is a keyword-arguments hash.
pub(crate) fn keywords(arguments: &[Value]) -> Option<Vec<String>> {
    let Value::Object(last) = arguments.last()? else {
        return None;
    };
    last.get(RUBY2_KEYWORDS_KEY)?;
    Some(
        last.keys()
            .filter(|key| !key.starts_with("_aj_"))
            .cloned()
            .collect(),
    )
}

fn kind(argument: &Value) -> String {
    match argument {
        Value::Null => "nil".to_owned(),
        Value::Bool(_) => "Boolean".to_owned(),
        Value::Number(number) if number.is_f64() => "Float".to_owned(),
        Value::Number(_) => "Integer".to_owned(),
        Value::String(_) => "String".to_owned(),
        Value::Array(_) => "Array".to_owned(),
        Value::Object(object) => {
            if object.len() == 1 && object.contains_key(GLOBALID_KEY) {
                return "GlobalID".to_owned();
            }
            if let Some(serializer) = object.get(SERIALIZED_KEY) {
                let name = serializer.as_str().unwrap_or("?");
                return VALUE_SERIALIZERS
                    .iter()
                    .find(|(known, _, _)| *known == name)
                    .map_or_else(
                        || format!("custom ({name})"),
                        |(_, ruby, _)| (*ruby).to_owned(),
                    );
            }
            if object.contains_key(RUBY2_KEYWORDS_KEY) {
                let names: Vec<&str> = object
                    .keys()
                    .filter(|key| !key.starts_with("_aj_"))
                    .map(String::as_str)
                    .collect();
                return format!("keywords ({})", names.join(", "));
            }
            "Hash".to_owned()
        }
    }
}

/// Where in the arguments a value is, for errors: `argument #2`, `argument #2 at .start[0]`;
/// `value at .start[0]` for a value read on its own.
struct Path {
    position: Option<usize>,
    inner: String,
}

impl Path {
    fn root(position: Option<usize>) -> Self {
        Self {
            position,
            inner: String::new(),
        }
    }

    fn error(&self, what: impl std::fmt::Display) -> ArgsError {
        let at = if self.inner.is_empty() {
            String::new()
        } else {
            format!(" at `{}`", self.inner)
        };
        let whose = match self.position {
            Some(position) => format!("argument #{position}"),
            None => "value".to_owned(),
        };
        ArgsError::new(format!("ActiveJob {whose}{at} {what}"))
    }

    fn nested<T>(&mut self, step: String, run: impl FnOnce(&mut Self) -> T) -> T {
        let length = self.inner.len();
        self.inner.push_str(&step);
        let result = run(self);
        self.inner.truncate(length);
        result
    }
}

/// One argument as plain JSON, as `ActiveJob::Arguments#deserialize_argument` reads it.
fn plain(argument: &Value, path: &mut Path) -> Result<Value, ArgsError> {
    match argument {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| path.nested(format!("[{index}]"), |path| plain(item, path)))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(object) => {
            // Rails: a one-key `_aj_globalid` hash is a record; any hash with
            // `_aj_serialized` is a serializer's.
            if object.len() == 1
                && let Some(gid) = object.get(GLOBALID_KEY)
            {
                return match gid {
                    Value::String(text) => Ok(Value::String(text.clone())),
                    other => Err(path.error(format!(
                        "is a GlobalID whose `{GLOBALID_KEY}` is {other}, not a string"
                    ))),
                };
            }
            if let Some(serializer) = object.get(SERIALIZED_KEY) {
                return serialized(object, serializer, path);
            }
            hash(object, path)
        }
        other => Ok(other.clone()),
    }
}

/// A serializer's object: the `value` of the ones a Rust type reads directly, else the object
/// as it is (Range, Module, an app's own serializer), for a struct with its fields to read.
fn serialized(
    object: &Map<String, Value>,
    serializer: &Value,
    path: &mut Path,
) -> Result<Value, ArgsError> {
    let Value::String(name) = serializer else {
        return Err(path.error(format!(
            "names its serializer with {serializer}, not a class name"
        )));
    };
    let Some((_, ruby, expect)) = VALUE_SERIALIZERS.iter().find(|(known, _, _)| known == name)
    else {
        return Ok(Value::Object(object.clone()));
    };
    match (object.get("value"), expect) {
        (Some(value @ Value::String(_)), Expect::Text)
        | (Some(value @ Value::Number(_)), Expect::Number) => Ok(value.clone()),
        (Some(other), _) => Err(path.error(format!(
            "is a Ruby {ruby} ({name}) whose `value` is {other}, not a {}",
            match expect {
                Expect::Text => "string",
                Expect::Number => "number",
            }
        ))),
        (None, _) => Err(path.error(format!("is a Ruby {ruby} ({name}) with no `value`"))),
    }
}

/// A hash: its values read in turn, its markers (symbol keys, keywords, indifferent access)
/// dropped: in JSON every key is a string anyway.
fn hash(object: &Map<String, Value>, path: &mut Path) -> Result<Value, ArgsError> {
    let mut plain_object = Map::new();
    for (key, value) in object {
        if [SYMBOL_KEYS_KEY, RUBY2_KEYWORDS_KEY, INDIFFERENT_KEY].contains(&key.as_str()) {
            continue;
        }
        let value = path.nested(format!(".{key}"), |path| plain(value, path))?;
        plain_object.insert(key.clone(), value);
    }
    Ok(Value::Object(plain_object))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{describe, deserialize, keywords};

    fn serialized(serializer: &str, value: serde_json::Value) -> serde_json::Value {
        json!({"_aj_serialized": format!("ActiveJob::Serializers::{serializer}"), "value": value})
    }

    #[test]
    fn turns_every_serialized_form_into_plain_json() {
        let arguments = vec![
            json!(1),
            json!("text"),
            json!(null),
            json!(1.5),
            serialized("DateSerializer", json!("2026-12-06")),
            serialized("TimeSerializer", json!("2026-12-06T10:00:00.000000000Z")),
            serialized(
                "TimeWithZoneSerializer",
                json!("2026-12-06T11:00:00.000000000+01:00"),
            ),
            serialized("SymbolSerializer", json!("gold")),
            serialized("DurationSerializer", json!(3600)),
            json!({"_aj_globalid": "gid://app/User/42"}),
            json!({"a": [serialized("SymbolSerializer", json!("x"))], "_aj_symbol_keys": ["a"]}),
            json!({"b": 2, "_aj_hash_with_indifferent_access": true}),
            json!({"notify": true, "_aj_ruby2_keywords": ["notify"]}),
        ];
        assert_eq!(
            deserialize(&arguments).unwrap(),
            vec![
                json!(1),
                json!("text"),
                json!(null),
                json!(1.5),
                json!("2026-12-06"),
                json!("2026-12-06T10:00:00.000000000Z"),
                json!("2026-12-06T11:00:00.000000000+01:00"),
                json!("gold"),
                json!(3600),
                json!("gid://app/User/42"),
                json!({"a": ["x"]}),
                json!({"b": 2}),
                json!({"notify": true}),
            ]
        );
        assert_eq!(keywords(&arguments), Some(vec!["notify".to_owned()]));
        assert!(
            describe(&arguments).starts_with("#1 Integer, #2 String, #3 nil, #4 Float, #5 Date")
        );
    }

    #[test]
    fn keeps_the_objects_of_other_serializers() {
        let range = json!({"_aj_serialized": "ActiveJob::Serializers::RangeSerializer",
                           "begin": 1, "end": 5, "exclude_end": false});
        assert_eq!(
            deserialize(std::slice::from_ref(&range)).unwrap(),
            vec![range]
        );
    }

    #[test]
    fn names_the_argument_whose_form_is_broken() {
        let error = deserialize(&[
            json!(1),
            json!({"at": serialized("DateSerializer", json!(20261206)), "_aj_symbol_keys": ["at"]}),
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "ActiveJob argument #2 at `.at` is a Ruby Date (ActiveJob::Serializers::DateSerializer) \
             whose `value` is 20261206, not a string"
        );
        let error = deserialize(&[json!({"_aj_globalid": 42})])
            .unwrap_err()
            .to_string();
        assert!(error.contains("argument #1 is a GlobalID"), "{error}");
        let error = deserialize(&[
            json!([{"_aj_serialized": "ActiveJob::Serializers::DurationSerializer"}]),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("argument #1 at `[0]` is a Ruby ActiveSupport::Duration"),
            "{error}"
        );
    }
}

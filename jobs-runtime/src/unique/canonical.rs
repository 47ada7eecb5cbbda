//! The canonical JSON of a job's arguments, so two pushes of equal arguments take the same lock:
//! object keys sorted, numbers spelled one way (`1`, `1.0` and `1e0` are all `1`), no spaces.

use std::fmt::Write;

use serde_json::Value;

/// `value` in canonical form.
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut sorted: Vec<(&String, &Value)> = fields.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, item)) in sorted.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write(item, out);
            }
            out.push('}');
        }
    }
}

/// A whole number as an integer, whatever its spelling; any other number in Rust's shortest
/// form that reads back as the same `f64`.
fn write_number(number: &serde_json::Number, out: &mut String) {
    if let Some(integer) = number.as_i64() {
        let _ = write!(out, "{integer}");
    } else if let Some(integer) = number.as_u64() {
        let _ = write!(out, "{integer}");
    } else if let Some(float) = number.as_f64() {
        // Within ±2^53 every whole float is exactly an integer; beyond, floats are spelled as
        // floats (an integer written as `1e20` and as `100000000000000000000` differ there, as
        // they do for Ruby, which reads the first as a Float and the second as an Integer).
        if float.fract() == 0.0 && float.abs() < 9_007_199_254_740_992.0 {
            let _ = write!(out, "{}", float as i64);
        } else {
            let _ = write!(out, "{float:?}");
        }
    }
}

fn write_string(text: &str, out: &mut String) {
    // serde_json's escaping is one fixed form (`\n`, `\u001f`, no escaped `/`).
    out.push_str(&Value::String(text.to_owned()).to_string());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::canonical;

    fn of(text: &str) -> String {
        canonical(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn key_order_and_spacing_do_not_matter() {
        assert_eq!(
            of(r#"{"b": 1, "a": {"y": [1, 2], "x": null}}"#),
            r#"{"a":{"x":null,"y":[1,2]},"b":1}"#
        );
        assert_eq!(of(r#"{"a":1,"b":2}"#), of(r#"{ "b":2 , "a":1 }"#));
    }

    #[test]
    fn a_number_has_one_spelling() {
        assert_eq!(of("[1, 1.0, 1e0, 10E-1, -0.0, 100e-2]"), "[1,1,1,1,0,1]");
        assert_eq!(of("[0.5, 2.5e-3]"), "[0.5,0.0025]");
        assert_ne!(of("[1]"), of("[1.5]"));
        assert_ne!(of(r#"["1"]"#), of("[1]"));
    }

    #[test]
    fn strings_are_escaped_one_way() {
        assert_eq!(canonical(&json!(["a\"b\n\u{1f}é"])), r#"["a\"b\n\u001fé"]"#);
    }
}

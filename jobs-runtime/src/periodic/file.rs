//! Periodic entries from a config file's `periodic:` section, Sidekiq-style:
//!
//! ```yaml
//! periodic:
//!   nightly_scores:
//!     cron: "0 3 * * *"
//!     class: ScoreGeneration
//!     args: ["2026-11-22"]
//!     queue: default
//!     timezone: Europe/Berlin
//!     catch_up: one        # or none
//!     enabled: true
//! ```

use serde_json::{Map, Number, Value};
use yaml_rust2::Yaml;

use super::{CatchUp, Periodic, parse_cron, parse_zone};

/// One periodic entry of a config file: a class and fixed arguments, for a job of any
/// language.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FileEntry {
    /// The entry's name (its key under `periodic:`).
    pub name: String,
    /// The cron expression (`cron`).
    pub cron: String,
    /// The job's class (`class`).
    pub class: String,
    /// The job's arguments (`args`; default none).
    pub args: Vec<Value>,
    /// The queue (`queue`; default `default`).
    pub queue: Option<String>,
    /// The IANA time zone (`timezone`; default `UTC`).
    pub timezone: Option<String>,
    /// What to do after downtime (`catch_up`: `one` or `none`; default `one`).
    pub catch_up: CatchUp,
    /// Whether it runs (`enabled`; default `true`).
    pub enabled: bool,
    /// The file it came from.
    pub origin: String,
}

impl FileEntry {
    /// The entry as the worker runs it.
    pub fn to_periodic(&self) -> Periodic {
        let mut entry = Periodic::class(&self.name, &self.cron, &self.class, self.args.clone())
            .catch_up(self.catch_up)
            .enabled(self.enabled)
            .origin(&self.origin);
        if let Some(queue) = &self.queue {
            entry = entry.queue(queue);
        }
        if let Some(zone) = &self.timezone {
            entry = entry.timezone(zone);
        }
        entry
    }
}

/// Reads a `periodic:` section; the error names the entry and the key, and says what is
/// allowed (the file's path is added by the caller).
pub(crate) fn read_section(section: &Yaml, origin: &str) -> Result<Vec<FileEntry>, String> {
    let Yaml::Hash(entries) = section else {
        return Err(
            "`:periodic:` must be a map of entries, each with a `cron` and a `class`".to_owned(),
        );
    };
    let mut read = Vec::new();
    for (name, fields) in entries {
        let Yaml::String(name) = name else {
            return Err(format!(
                "`:periodic:` has a key that is not a name: {name:?}"
            ));
        };
        read.push(
            read_entry(name, fields, origin)
                .map_err(|reason| format!("periodic entry `{name}`: {reason}"))?,
        );
    }
    Ok(read)
}

/// Reads the entry `name` of the file `origin`; the error says what is wrong with it.
fn read_entry(name: &str, fields: &Yaml, origin: &str) -> Result<FileEntry, String> {
    let Yaml::Hash(fields) = fields else {
        return Err("it must be a map with `cron` and `class`".to_owned());
    };
    let mut entry = FileEntry {
        name: name.to_owned(),
        cron: String::new(),
        class: String::new(),
        args: Vec::new(),
        queue: None,
        timezone: None,
        catch_up: CatchUp::One,
        enabled: true,
        origin: origin.to_owned(),
    };
    for (key, value) in fields {
        let key = match key {
            Yaml::String(key) => key.strip_prefix(':').unwrap_or(key),
            _ => return Err(format!("{key:?} is not a key")),
        };
        let text = || match value {
            Yaml::String(text) => Ok(text.clone()),
            _ => Err(format!("`{key}` must be a string")),
        };
        match key {
            "cron" => entry.cron = text()?,
            "class" => entry.class = text()?,
            "queue" => entry.queue = Some(text()?),
            "timezone" | "tz" => entry.timezone = Some(text()?),
            "args" => {
                entry.args = match to_json(value)? {
                    Value::Array(args) => args,
                    Value::Null => Vec::new(),
                    one => vec![one],
                }
            }
            "catch_up" => {
                entry.catch_up = CatchUp::parse(&text()?)
                    .ok_or_else(|| "`catch_up` must be `one` or `none`".to_owned())?;
            }
            "enabled" => {
                entry.enabled = match value {
                    Yaml::Boolean(flag) => *flag,
                    _ => return Err("`enabled` must be true or false".to_owned()),
                };
            }
            other => {
                return Err(format!(
                    "unknown key `{other}`; an entry has cron, class, args, queue, timezone, \
                     catch_up and enabled"
                ));
            }
        }
    }
    if entry.cron.is_empty() {
        return Err("it has no `cron`, like `cron: \"0 3 * * *\"`".to_owned());
    }
    if entry.class.is_empty() {
        return Err("it has no `class`, the job's class name".to_owned());
    }
    parse_cron(&entry.cron)?;
    if let Some(zone) = &entry.timezone {
        parse_zone(zone)?;
    }
    Ok(entry)
}

/// A YAML value as JSON, for a job's arguments.
fn to_json(value: &Yaml) -> Result<Value, String> {
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Boolean(flag) => Value::Bool(*flag),
        Yaml::Integer(number) => Value::Number((*number).into()),
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("`{text}` is not a number JSON can hold"))?,
        Yaml::String(text) => Value::String(text.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(pairs) => {
            let mut object = Map::new();
            for (key, value) in pairs {
                let Yaml::String(key) = key else {
                    return Err(format!(
                        "an argument's map has a key that is not text: {key:?}"
                    ));
                };
                object.insert(key.clone(), to_json(value)?);
            }
            Value::Object(object)
        }
        _ => return Err("an argument is neither text, a number, a list nor a map".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use yaml_rust2::YamlLoader;

    use super::*;

    fn read(text: &str) -> Result<Vec<FileEntry>, String> {
        let yaml = YamlLoader::load_from_str(text).unwrap().remove(0);
        read_section(&yaml, "config/jobs.yml")
    }

    #[test]
    fn reads_every_key() {
        let entries = read(
            r#"
nightly_scores:
  cron: "0 3 * * *"
  class: ScoreGeneration
  args: ["2026-11-22", 3, 1.5, {by: day}]
  queue: low
  timezone: Europe/Berlin
  catch_up: none
  enabled: false
"#,
        )
        .unwrap();
        assert_eq!(entries.len(), 1);
        let entry = &entries[0];
        assert_eq!(entry.name, "nightly_scores");
        assert_eq!(entry.class, "ScoreGeneration");
        assert_eq!(
            Value::Array(entry.args.clone()),
            serde_json::json!(["2026-11-22", 3, 1.5, {"by": "day"}])
        );
        assert_eq!(entry.queue.as_deref(), Some("low"));
        assert_eq!(entry.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(entry.catch_up, CatchUp::None);
        assert!(!entry.enabled);
        assert!(entry.to_periodic().validate().is_ok());
    }

    #[test]
    fn errors_name_the_entry_and_what_is_wrong() {
        let bad_cron = read("digest:\n  cron: \"0 3 * *\"\n  class: Digest\n").unwrap_err();
        assert!(bad_cron.contains("periodic entry `digest`"), "{bad_cron}");
        assert!(bad_cron.contains("has 4 fields"), "{bad_cron}");
        let bad_zone =
            read("digest:\n  cron: \"@daily\"\n  class: D\n  timezone: Moon/Base\n").unwrap_err();
        assert!(bad_zone.contains("Moon/Base"), "{bad_zone}");
        let no_class = read("digest:\n  cron: \"@daily\"\n").unwrap_err();
        assert!(no_class.contains("no `class`"), "{no_class}");
        let unknown = read("digest:\n  cron: \"@daily\"\n  class: D\n  every: 5\n").unwrap_err();
        assert!(unknown.contains("unknown key `every`"), "{unknown}");
    }
}

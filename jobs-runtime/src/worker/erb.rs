//! The ERB that Rails apps put in `config/sidekiq.yml`, expanded before the YAML is read.
//!
//! Sidekiq runs the file through Ruby's ERB. `jobs` has no Ruby interpreter, and no Rust crate
//! evaluates this subset of Ruby without running arbitrary code, so this small expander reads
//! exactly the forms Rails apps use to take settings from the environment:
//!
//! * `<%= ENV.fetch("X", 5) %>` and `<%= ENV.fetch("X") { 5 } %>`: `X`, else the default;
//! * `<%= ENV.fetch("X") %>`: `X`, else an error (Ruby raises `KeyError`);
//! * `<%= ENV["X"] || 5 %>`: `X`, else the default;
//! * `<%= ENV["X"] %>`: `X`, else nothing (Ruby prints `nil` as an empty string);
//! * `<%= Integer(…) %>` around any of these: the value, which must be a whole number;
//! * `<%# … %>`: a comment, dropped.
//!
//! Names take single or double quotes; defaults are whole numbers or quoted strings. Anything
//! else between `<%` and `%>` is an error naming the line, the text and these forms.

/// The forms the expander reads, for error messages.
pub(crate) const SUPPORTED: &str = "`<%= ENV.fetch(\"X\", 5) %>`, `<%= ENV.fetch(\"X\") { 5 } %>`, \
                                    `<%= ENV.fetch(\"X\") %>`, `<%= ENV[\"X\"] || 5 %>`, \
                                    `<%= ENV[\"X\"] %>`, `<%= Integer(…) %>` around one of \
                                    these, and `<%# comments %>`";

/// Expands the ERB tags of `text`, reading variables with `var`. The error is the reason,
/// naming the line; the caller names the file.
pub(crate) fn expand(text: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut line = 1;
    while let Some(start) = rest.find("<%") {
        out.push_str(&rest[..start]);
        line += rest[..start].matches('\n').count();
        let tag = &rest[start + 2..];
        let Some(end) = tag.find("%>") else {
            return Err(format!(
                "line {line}: `<%` is not closed with `%>`; the ERB jobs reads is {SUPPORTED}"
            ));
        };
        let body = &tag[..end];
        if body.starts_with('#') {
            // A comment.
        } else if let Some(expression) = body.strip_prefix('=') {
            let value = evaluate(expression, var).map_err(|why| match why {
                Why::Unsupported => format!(
                    "line {line}: `<%{body}%>` is not supported; jobs runs no Ruby, and the ERB \
                     it reads is {SUPPORTED}"
                ),
                Why::Missing(name) => format!(
                    "line {line}: `<%{body}%>` needs the environment variable {name}, which is \
                     not set, and gives no default (Ruby raises KeyError)"
                ),
                Why::NotInteger(value) => format!(
                    "line {line}: `<%{body}%>` gives {value:?}, which is not a whole number \
                     (Ruby's Integer() raises)"
                ),
            })?;
            out.push_str(&value.unwrap_or_default());
        } else {
            return Err(format!(
                "line {line}: `<%{body}%>` is not supported; jobs runs no Ruby, and the ERB it \
                 reads is {SUPPORTED}"
            ));
        }
        line += body.matches('\n').count();
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Why an expression has no value.
#[derive(Debug)]
enum Why {
    /// Not one of the supported forms.
    Unsupported,
    /// `ENV.fetch` of an unset variable without a default.
    Missing(String),
    /// `Integer()` of something else.
    NotInteger(String),
}

/// The value of one `<%= %>` expression; `None` is Ruby's `nil`.
fn evaluate(expression: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, Why> {
    let mut cursor = Cursor(expression);
    let value = if cursor.eat("Integer") {
        cursor.expect("(")?;
        let value = env(&mut cursor, var)?;
        cursor.expect(")")?;
        let value = value.unwrap_or_else(|| "nil".to_owned());
        let digits = value.trim().replace('_', "");
        if digits.parse::<i64>().is_err() {
            return Err(Why::NotInteger(value));
        }
        Some(digits.trim_start_matches('+').to_owned())
    } else {
        env(&mut cursor, var)?
    };
    if !cursor.0.trim().is_empty() {
        return Err(Why::Unsupported);
    }
    Ok(value)
}

/// `ENV.fetch(…)`, `ENV.fetch(…) { … }`, `ENV[…] || …` or `ENV[…]`.
fn env(
    cursor: &mut Cursor<'_>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, Why> {
    cursor.expect("ENV")?;
    if cursor.eat(".fetch") {
        cursor.expect("(")?;
        let name = cursor.string()?;
        let mut default = None;
        if cursor.eat(",") {
            default = Some(cursor.literal()?);
        }
        cursor.expect(")")?;
        if default.is_none() && cursor.eat("{") {
            default = Some(cursor.literal()?);
            cursor.expect("}")?;
        }
        match (var(&name), default) {
            (Some(value), _) => Ok(Some(value)),
            (None, Some(default)) => Ok(Some(default)),
            (None, None) => Err(Why::Missing(name)),
        }
    } else {
        cursor.expect("[")?;
        let name = cursor.string()?;
        cursor.expect("]")?;
        let default = if cursor.eat("||") {
            Some(cursor.literal()?)
        } else {
            None
        };
        Ok(var(&name).or(default))
    }
}

/// What is left of an expression to read.
struct Cursor<'a>(&'a str);

impl Cursor<'_> {
    /// Skips spaces, then `token` if it is next.
    fn eat(&mut self, token: &str) -> bool {
        self.0 = self.0.trim_start();
        match self.0.strip_prefix(token) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), Why> {
        self.eat(token).then_some(()).ok_or(Why::Unsupported)
    }

    /// A string in single or double quotes, without escapes.
    fn string(&mut self) -> Result<String, Why> {
        self.0 = self.0.trim_start();
        let quote = self.0.chars().next().filter(|c| *c == '"' || *c == '\'');
        let quote = quote.ok_or(Why::Unsupported)?;
        let body = &self.0[1..];
        let end = body.find(quote).ok_or(Why::Unsupported)?;
        let text = &body[..end];
        if text.contains('\\') || (quote == '"' && text.contains("#{")) {
            return Err(Why::Unsupported);
        }
        self.0 = &body[end + 1..];
        Ok(text.to_owned())
    }

    /// A quoted string or a whole number, as ERB prints it.
    fn literal(&mut self) -> Result<String, Why> {
        self.0 = self.0.trim_start();
        if self.0.starts_with(['"', '\'']) {
            return self.string();
        }
        let sign = usize::from(self.0.starts_with('-'));
        let length = self.0[sign..]
            .find(|c: char| !(c.is_ascii_digit() || c == '_'))
            .unwrap_or(self.0.len() - sign);
        if length == 0 || self.0[sign..].starts_with('_') {
            return Err(Why::Unsupported);
        }
        let number = self.0[..sign + length].replace('_', "");
        self.0 = &self.0[sign + length..];
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn with_env(text: &str) -> Result<String, String> {
        let var = |name: &str| match name {
            "SET" => Some("12".to_owned()),
            "EMPTY" => Some(String::new()),
            "WORD" => Some("ten".to_owned()),
            _ => None,
        };
        expand(text, &var)
    }

    #[test]
    fn fetch_with_a_default_reads_the_variable_or_the_default() {
        assert_eq!(
            with_env("c: <%= ENV.fetch(\"SET\", 5) %>").unwrap(),
            "c: 12"
        );
        assert_eq!(
            with_env("c: <%= ENV.fetch(\"UNSET\", 5) %>").unwrap(),
            "c: 5"
        );
        assert_eq!(
            with_env("c: <%=ENV.fetch( 'UNSET' ,'low')%>").unwrap(),
            "c: low"
        );
        assert_eq!(
            with_env("c: <%= ENV.fetch(\"UNSET\", -1_0) %>").unwrap(),
            "c: -10"
        );
    }

    #[test]
    fn fetch_with_a_block_reads_the_variable_or_the_block() {
        assert_eq!(with_env("<%= ENV.fetch(\"SET\") { 5 } %>").unwrap(), "12");
        assert_eq!(with_env("<%= ENV.fetch('UNSET') {5} %>").unwrap(), "5");
        assert_eq!(
            with_env("<%= ENV.fetch('UNSET') { \"x\" } %>").unwrap(),
            "x"
        );
    }

    #[test]
    fn fetch_without_a_default_of_an_unset_variable_names_it_and_the_line() {
        assert_eq!(with_env("<%= ENV.fetch('SET') %>").unwrap(), "12");
        let error = with_env("a: 1\nb: <%= ENV.fetch(\"UNSET\") %>\n").unwrap_err();
        assert!(error.starts_with("line 2: "), "{error}");
        assert!(error.contains("UNSET, which is not set"), "{error}");
        assert!(error.contains("KeyError"), "{error}");
    }

    #[test]
    fn index_with_or_reads_the_variable_or_the_default() {
        assert_eq!(with_env("<%= ENV[\"SET\"] || 5 %>").unwrap(), "12");
        assert_eq!(with_env("<%= ENV['UNSET'] || 5 %>").unwrap(), "5");
        // An empty string is true in Ruby: it wins over the default.
        assert_eq!(with_env("<%= ENV['EMPTY'] || 5 %>").unwrap(), "");
    }

    #[test]
    fn index_alone_prints_nothing_for_an_unset_variable() {
        assert_eq!(with_env("x: <%= ENV['SET'] %>!").unwrap(), "x: 12!");
        assert_eq!(with_env("x: <%= ENV[\"UNSET\"] %>!").unwrap(), "x: !");
    }

    #[test]
    fn integer_wraps_any_form_and_must_give_a_whole_number() {
        assert_eq!(
            with_env("<%= Integer(ENV.fetch(\"SET\", 5)) %>").unwrap(),
            "12"
        );
        assert_eq!(
            with_env("<%= Integer(ENV.fetch('UNSET', 5)) %>").unwrap(),
            "5"
        );
        assert_eq!(
            with_env("<%= Integer(ENV['UNSET'] || '7') %>").unwrap(),
            "7"
        );
        let error = with_env("<%= Integer(ENV.fetch('WORD', 5)) %>").unwrap_err();
        assert!(
            error.contains("\"ten\", which is not a whole number"),
            "{error}"
        );
        let error = with_env("<%= Integer(ENV['UNSET']) %>").unwrap_err();
        assert!(error.contains("\"nil\""), "{error}");
    }

    #[test]
    fn comments_are_dropped_and_plain_text_is_kept() {
        assert_eq!(with_env("a<%# anything %>b").unwrap(), "ab");
        assert_eq!(with_env("no tags: 50%\n").unwrap(), "no tags: 50%\n");
    }

    #[test]
    fn anything_else_is_an_error_naming_the_line_the_text_and_the_forms() {
        for text in [
            "a: 1\n\n<% if true %>\nb: 2\n<% end %>\n",
            "a: 1\n\n<%= 5 + 5 %>",
            "a: 1\n\n<%= ENV.fetch(\"X\", 5).to_i %>",
            "a: 1\n\n<%= ENV[\"X#{1}\"] %>",
            "a: 1\n\n<%= ENV['X'] %",
        ] {
            let error = with_env(text).unwrap_err();
            assert!(error.starts_with("line 3: "), "{text:?}: {error}");
            assert!(error.contains("ENV.fetch(\"X\", 5)"), "{text:?}: {error}");
        }
        let error = with_env("<% if true %>").unwrap_err();
        assert!(
            error.contains("`<% if true %>` is not supported"),
            "{error}"
        );
    }

    #[test]
    fn lines_are_counted_across_tags() {
        let error = with_env("a: <%= ENV['SET'] %>\n<%# two\nlines %>\n<%= x %>").unwrap_err();
        assert!(error.starts_with("line 4: "), "{error}");
    }
}

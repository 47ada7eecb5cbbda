//! The options inside `#[job(...)]`.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr};

use crate::combine;

/// Every option `#[job]` takes, for the "expected one of" message.
const OPTIONS: &str = "`queue`, `retry`, `name`, `backtrace`, `retry_queue`, `retry_for`, \
                       `retry_in`, `retries_exhausted`, `dead`, `tags`, `timeout`, `cron`, `unique_for`, `unique_until`, `unique_key`, \
                       `expires_in`, `log_level`, `active_job`, `concurrency`, `crate`";

/// The longest `unique_for` or `expires_in`, in seconds: a year (the runtime's `MAX_PERIOD`).
const MAX_PERIOD_SECONDS: u64 = 365 * 24 * 60 * 60;

/// The option names, in the order the docs list them.
const KEYS: [&str; 20] = [
    "queue",
    "retry",
    "name",
    "backtrace",
    "retry_queue",
    "retry_for",
    "retry_in",
    "retries_exhausted",
    "dead",
    "tags",
    "timeout",
    "cron",
    "unique_for",
    "unique_until",
    "unique_key",
    "expires_in",
    "log_level",
    "active_job",
    "concurrency",
    "crate",
];

/// A value of `key`, for messages.
fn example(key: &str) -> &'static str {
    match key {
        "queue" | "retry_queue" => "\"critical\"",
        "retry" => "5",
        "name" => "\"ScoreGenerationJob\"",
        "backtrace" => "true",
        "dead" => "false",
        "tags" => "[\"billing\"]",
        "timeout" => "30",
        "cron" => "\"0 3 * * *\"",
        "unique_for" => "600",
        "unique_until" => "\"start\"",
        "unique_key" => "user_id",
        "retry_in" => "backoff",
        "retries_exhausted" => "notify_support",
        "expires_in" | "retry_for" => "3600",
        "log_level" => "\"warn\"",
        "concurrency" => "2",
        _ => "my_jobs",
    }
}

/// `retry = …`.
pub(crate) enum RetryOption {
    /// `true`: the worker's maximum (25).
    Default,
    /// A whole number of retries.
    Times(u32),
    /// `false`.
    Disabled,
}

/// `backtrace = …`.
pub(crate) enum BacktraceOption {
    /// `true`.
    All,
    /// `false`.
    Off,
    /// A number of lines.
    Lines(u32),
}

/// `unique_until = …`.
#[derive(Clone, Copy)]
pub(crate) enum UniqueUntilOption {
    /// `"success"`.
    Success,
    /// `"start"`.
    Start,
}

/// The parsed options; each is `None` when not given or not readable.
#[derive(Default)]
pub(crate) struct JobArgs {
    pub(crate) queue: Option<String>,
    pub(crate) retry: Option<RetryOption>,
    /// `name`, as its literal (for the error when it is no Ruby class name).
    pub(crate) name: Option<LitStr>,
    pub(crate) backtrace: Option<BacktraceOption>,
    pub(crate) retry_queue: Option<String>,
    pub(crate) dead: Option<bool>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) timeout_millis: Option<u64>,
    /// The cron expression, as its literal (for errors on it).
    pub(crate) cron: Option<LitStr>,
    /// `unique_for`, in seconds.
    pub(crate) unique_for: Option<u64>,
    /// `unique_until`, with its token (for the error when `unique_for` is missing).
    pub(crate) unique_until: Option<(UniqueUntilOption, LitStr)>,
    /// `unique_key`: an argument's name, or the path of a function of the job.
    pub(crate) unique_key: Option<syn::Path>,
    /// `expires_in`, in seconds.
    pub(crate) expires_in: Option<u64>,
    /// `retry_for`, in seconds.
    pub(crate) retry_for: Option<u64>,
    /// `retry_in`: the path of a `fn(u32, &JobError) -> Option<RetryOverride>`.
    pub(crate) retry_in: Option<syn::Path>,
    /// `retries_exhausted`: the path of a `fn(&Payload, &JobError) -> Exhausted`.
    pub(crate) retries_exhausted: Option<syn::Path>,
    /// `log_level`: `debug`, `info`, `warn` or `error`, as written.
    pub(crate) log_level: Option<String>,
    /// `active_job`: the flag's token, for errors about it.
    pub(crate) active_job: Option<Span>,
    /// `concurrency`: at most this many of the class's jobs run at once, across every process
    /// (a class cap, `docs/limits.md`); 1 or more.
    pub(crate) concurrency: Option<u32>,
    pub(crate) crate_path: Option<syn::Path>,
    /// `crate` was written but not read (a bad value, or a syntax error before it): where `jobs`
    /// is cannot be known, so nothing may be emitted that names it.
    pub(crate) crate_unread: bool,
}

impl JobArgs {
    /// Parses the attribute's tokens into the options that could be read, and every mistake
    /// found: independent ones are all reported, combined.
    pub(crate) fn parse(tokens: TokenStream) -> (Self, Option<syn::Error>) {
        let names_crate = tokens
            .clone()
            .into_iter()
            .any(|token| matches!(token, TokenTree::Ident(ident) if ident == "crate"));
        let mut args = Self::default();
        let mut errors = None;
        let parser = syn::meta::parser(|meta| {
            if let Err(error) = args.parse_one(&meta) {
                combine(&mut errors, error);
            }
            Ok(())
        });
        if let Err(error) = parser.parse2(tokens) {
            combine(&mut errors, error);
        }
        if args.unique_for.is_none() {
            let needs = |span: proc_macro2::Span, key: &str| {
                syn::Error::new(
                    span,
                    format!(
                        "`{key}` needs `unique_for`, the most seconds a job holds its lock: add \
                         `unique_for = 600`, say"
                    ),
                )
            };
            if let Some((_, token)) = &args.unique_until {
                combine(&mut errors, needs(token.span(), "unique_until"));
            }
            if let Some(path) = &args.unique_key {
                combine(&mut errors, needs(path.span(), "unique_key"));
            }
        }
        if args.active_job.is_some() {
            for error in args.active_job_errors() {
                combine(&mut errors, error);
            }
        }
        args.crate_unread = names_crate && args.crate_path.is_none();
        (args, errors)
    }

    /// The options that do not go with `active_job`: a `name` that is no Ruby class name (Rails
    /// looks the class up by it).
    fn active_job_errors(&self) -> Vec<syn::Error> {
        let mut errors = Vec::new();
        if let Some(name) = &self.name
            && !is_ruby_class_name(&name.value())
        {
            errors.push(syn::Error::new(
                name.span(),
                "the `name` of an `active_job` job is the Ruby class Rails runs it as, so it must \
                 be a Ruby class name, like \"ScoreGenerationJob\" or \"Reports::DailyJob\"",
            ));
        }
        errors
    }

    /// No options but `crate`: the job as if the attribute were bare, which is what the
    /// expansion falls back to when an option is wrong.
    pub(crate) fn defaults(&self) -> Self {
        Self {
            crate_path: self.crate_path.clone(),
            ..Self::default()
        }
    }

    /// `active_job`, a flag: written with a value, it is still taken as given, so that the
    /// value is the only error.
    fn parse_active_job(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let token = meta.path.span();
        if meta.input.peek(syn::Token![=]) {
            let value: Expr = meta.value()?.parse()?;
            self.active_job.get_or_insert(token);
            return Err(syn::Error::new_spanned(
                value,
                "`active_job` is a flag and takes no value: write `#[job(active_job)]`",
            ));
        }
        set(meta, &mut self.active_job, token)
    }

    fn parse_one(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = meta.path.get_ident().map(ToString::to_string);
        let Some(key) = key.filter(|key| KEYS.contains(&key.as_str())) else {
            let error = unknown(meta);
            // Skip the value, so the next option is still read and checked.
            skip_value(meta)?;
            return Err(error);
        };
        let key = key.as_str();
        if key == "active_job" {
            return self.parse_active_job(meta);
        }
        if !meta.input.peek(syn::Token![=]) {
            return Err(syn::Error::new(
                meta.path.span(),
                format!("`{key}` needs a value, like `{key} = {}`", example(key)),
            ));
        }
        let value: Expr = meta.value()?.parse()?;
        match key {
            "queue" => set(meta, &mut self.queue, queue_name(&value, "queue")?),
            "retry" => set(meta, &mut self.retry, retry(&value)?),
            "name" => set(meta, &mut self.name, wire_name(&value)?),
            "backtrace" => set(meta, &mut self.backtrace, backtrace(&value)?),
            "retry_queue" => set(
                meta,
                &mut self.retry_queue,
                queue_name(&value, "retry_queue")?,
            ),
            "retry_for" => set(meta, &mut self.retry_for, period(&value, "retry_for")?),
            "retry_in" => set(meta, &mut self.retry_in, hook_fn(&value, "retry_in")?),
            "retries_exhausted" => set(
                meta,
                &mut self.retries_exhausted,
                hook_fn(&value, "retries_exhausted")?,
            ),
            "dead" => set(meta, &mut self.dead, boolean(&value, "dead")?),
            "tags" => set(meta, &mut self.tags, tags(&value)?),
            "timeout" => set(meta, &mut self.timeout_millis, timeout(&value)?),
            "cron" => set(meta, &mut self.cron, cron(&value)?),
            "unique_for" => set(meta, &mut self.unique_for, period(&value, "unique_for")?),
            "unique_until" => set(meta, &mut self.unique_until, unique_until(&value)?),
            "unique_key" => set(meta, &mut self.unique_key, unique_key(&value)?),
            "expires_in" => set(meta, &mut self.expires_in, period(&value, "expires_in")?),
            "log_level" => set(meta, &mut self.log_level, log_level(&value)?),
            "concurrency" => set(meta, &mut self.concurrency, concurrency(&value)?),
            _ => set(meta, &mut self.crate_path, crate_path(&value)?),
        }
    }
}

/// Whether `name` is a Ruby class name: constants (an ASCII capital, then letters, digits and
/// `_`) joined by `::`.
fn is_ruby_class_name(name: &str) -> bool {
    name.split("::").all(|constant| {
        let mut chars = constant.chars();
        chars.next().is_some_and(|first| first.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn unknown(meta: &ParseNestedMeta<'_>) -> syn::Error {
    let shown = meta
        .path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect::<Vec<_>>()
        .join("::");
    let hint = KEYS.iter().find(|key| close(key, &shown)).map_or_else(
        || format!("expected one of {OPTIONS}"),
        |key| format!("did you mean `{key}`? The options are {OPTIONS}"),
    );
    syn::Error::new_spanned(
        &meta.path,
        format!("unknown `job` option `{shown}`; {hint}"),
    )
}

/// Whether `typed` is one edit (insertion, deletion, substitution) or a case change away from
/// `key`: the typos worth a "did you mean".
fn close(key: &str, typed: &str) -> bool {
    let typed = typed.to_lowercase();
    let (a, b): (Vec<char>, Vec<char>) = (key.chars().collect(), typed.chars().collect());
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short
        .iter()
        .zip(long.iter())
        .take_while(|(x, y)| x == y)
        .count();
    let suffix = short[prefix..]
        .iter()
        .rev()
        .zip(long[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    long.len() - prefix - suffix <= 1
}

/// Consumes what follows an unknown option's name: `= expr`, `(…)`, or nothing.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _ = meta.input.parse::<proc_macro2::Group>()?;
    }
    Ok(())
}

/// Stores an option, refusing a second occurrence.
fn set<T>(meta: &ParseNestedMeta<'_>, slot: &mut Option<T>, value: T) -> syn::Result<()> {
    if slot.is_some() {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        return Err(syn::Error::new(
            meta.path.span(),
            format!("duplicate `job` option `{key}`: give it once"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

fn string(value: &Expr, key: &str, example: &str) -> syn::Result<LitStr> {
    match literal(value) {
        Some(Lit::Str(text)) => Ok(text.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{key}` expects a string, like `{key} = {example}`"),
        )),
    }
}

fn queue_name(value: &Expr, key: &str) -> syn::Result<String> {
    let text = string(value, key, "\"critical\"")?;
    let name = text.value();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(syn::Error::new(
            text.span(),
            format!("`{key}` must be a non-empty queue name without spaces, like \"critical\""),
        ));
    }
    Ok(name)
}

fn wire_name(value: &Expr) -> syn::Result<LitStr> {
    let text = string(value, "name", "\"ScoreGenerationJob\"")?;
    if text.value().trim().is_empty() {
        return Err(syn::Error::new(
            text.span(),
            "`name` must not be empty: it is the class name workers look the job up by",
        ));
    }
    Ok(text)
}

fn retry(value: &Expr) -> syn::Result<RetryOption> {
    let expected = "`retry` expects a whole number of retries, `true` (25) or `false` (never)";
    if negative(value) {
        return Err(syn::Error::new_spanned(
            value,
            "`retry` cannot be negative: write `retry = 0` to send a failed job straight to the \
             dead set, or `retry = false` to drop it",
        ));
    }
    match literal(value) {
        Some(Lit::Bool(flag)) if flag.value => Ok(RetryOption::Default),
        Some(Lit::Bool(_)) => Ok(RetryOption::Disabled),
        Some(Lit::Int(number)) => count(number, "retry", "retries").map(RetryOption::Times),
        _ => Err(syn::Error::new_spanned(value, expected)),
    }
}

/// `-…`: a negative number.
fn negative(value: &Expr) -> bool {
    matches!(value, Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Neg(_)))
}

/// A whole-number option value, which must fit a `u32`.
fn count(number: &syn::LitInt, key: &str, what: &str) -> syn::Result<u32> {
    match number.base10_parse::<u64>() {
        Ok(value) => u32::try_from(value).map_err(|_| {
            syn::Error::new(
                number.span(),
                format!(
                    "`{key} = {value}` is out of range: at most {} {what}",
                    u32::MAX
                ),
            )
        }),
        Err(error) => Err(syn::Error::new(
            number.span(),
            format!("`{key}` expects a whole number of {what}: {error}"),
        )),
    }
}

/// `concurrency = n`: a whole number of 1 or more (a cap of 0 would never run the class).
fn concurrency(value: &Expr) -> syn::Result<u32> {
    let expected = "`concurrency` expects a whole number of jobs of 1 or more, like \
                    `concurrency = 2`: at most that many of this class run at once, across \
                    every process";
    if negative(value) {
        return Err(syn::Error::new_spanned(value, expected));
    }
    match literal(value) {
        Some(Lit::Int(number)) => match count(number, "concurrency", "jobs")? {
            0 => Err(syn::Error::new(
                number.span(),
                "`concurrency = 0` would let no job of this class run, ever: write 1 or more",
            )),
            cap => Ok(cap),
        },
        _ => Err(syn::Error::new_spanned(value, expected)),
    }
}

fn backtrace(value: &Expr) -> syn::Result<BacktraceOption> {
    let expected = "`backtrace` expects `true`, `false` or a number of lines";
    match literal(value) {
        Some(Lit::Bool(flag)) if flag.value => Ok(BacktraceOption::All),
        Some(Lit::Bool(_)) => Ok(BacktraceOption::Off),
        Some(Lit::Int(number)) => count(number, "backtrace", "lines").map(BacktraceOption::Lines),
        _ => Err(syn::Error::new_spanned(value, expected)),
    }
}

fn boolean(value: &Expr, key: &str) -> syn::Result<bool> {
    match literal(value) {
        Some(Lit::Bool(flag)) => Ok(flag.value),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{key}` expects `true` or `false`"),
        )),
    }
}

fn tags(value: &Expr) -> syn::Result<Vec<String>> {
    let expected = "`tags` expects a list of strings, like `tags = [\"billing\", \"nightly\"]`";
    let Expr::Array(list) = value else {
        return Err(syn::Error::new_spanned(value, expected));
    };
    list.elems
        .iter()
        .map(|element| match literal(element) {
            Some(Lit::Str(text)) => Ok(text.value()),
            _ => Err(syn::Error::new_spanned(element, expected)),
        })
        .collect()
}

fn timeout(value: &Expr) -> syn::Result<u64> {
    let expected = "`timeout` expects a number of seconds of at least 0.001, like `timeout = 30` or \
                    `timeout = 2.5`";
    let seconds = match literal(value) {
        Some(Lit::Int(number)) => number.base10_parse::<f64>().ok(),
        Some(Lit::Float(number)) => number.base10_parse::<f64>().ok(),
        _ => None,
    };
    match seconds {
        Some(seconds) if (0.001..1e12).contains(&seconds) => Ok((seconds * 1000.0).round() as u64),
        _ => Err(syn::Error::new_spanned(value, expected)),
    }
}

/// A cron expression, checked as the worker checks it (`jobs::periodic::parse_cron`): 5
/// fields, or 6 with seconds first, or a nickname such as `@daily`.
fn cron(value: &Expr) -> syn::Result<LitStr> {
    let Some(Lit::Str(text)) = literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            "`cron` expects a cron expression in a string, like `cron = \"0 3 * * *\"`",
        ));
    };
    let expression = text.value();
    let trimmed = expression.trim();
    let fields = trimmed.split_whitespace().count();
    let parsed = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(trimmed);
    let reason = if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
        format!(
            "it has {fields} fields; a cron expression has 5 (minute hour day-of-month month \
             day-of-week) or 6 (seconds first)"
        )
    } else if let Err(error) = parsed {
        error.to_string()
    } else {
        return Ok(text.clone());
    };
    Err(syn::Error::new(
        text.span(),
        format!("`{trimmed}` is not a cron expression: {reason}"),
    ))
}

/// `unique_for`, `expires_in` or `retry_for`: a whole number of seconds, from 1 to a year.
fn period(value: &Expr, key: &str) -> syn::Result<u64> {
    let expected = format!(
        "`{key}` expects a whole number of seconds from 1 to {MAX_PERIOD_SECONDS} (a year), like \
         `{key} = {}`",
        example(key)
    );
    let Some(Lit::Int(number)) = literal(value) else {
        return Err(syn::Error::new_spanned(value, expected));
    };
    match number.base10_parse::<u64>() {
        Ok(0) => Err(syn::Error::new(
            number.span(),
            format!(
                "`{key} = 0` is not a period: leave `{key}` out to turn it off, or give at least 1 second"
            ),
        )),
        Ok(seconds) if seconds > MAX_PERIOD_SECONDS => Err(syn::Error::new(
            number.span(),
            format!(
                "`{key} = {seconds}` is more than a year ({MAX_PERIOD_SECONDS} seconds): the \
                 value is in seconds, not milliseconds"
            ),
        )),
        Ok(seconds) => Ok(seconds),
        Err(_) => Err(syn::Error::new(number.span(), expected)),
    }
}

fn unique_until(value: &Expr) -> syn::Result<(UniqueUntilOption, LitStr)> {
    let expected = "`unique_until` expects \"success\" (the default: the lock is released when the \
                    job succeeds) or \"start\" (when it starts)";
    let Some(Lit::Str(text)) = literal(value) else {
        return Err(syn::Error::new_spanned(value, expected));
    };
    match text.value().as_str() {
        "success" => Ok((UniqueUntilOption::Success, text.clone())),
        "start" => Ok((UniqueUntilOption::Start, text.clone())),
        _ => Err(syn::Error::new(text.span(), expected)),
    }
}

/// `log_level`: one of Sidekiq's (Ruby `Logger`'s) level names.
fn log_level(value: &Expr) -> syn::Result<String> {
    let expected = "`log_level` expects \"debug\", \"info\", \"warn\" or \"error\": the least \
                    severe level logged for the job (\"warn\" drops its start and done lines)";
    let Some(Lit::Str(text)) = literal(value) else {
        return Err(syn::Error::new_spanned(value, expected));
    };
    match text.value().as_str() {
        level @ ("debug" | "info" | "warn" | "error") => Ok(level.to_owned()),
        _ => Err(syn::Error::new(text.span(), expected)),
    }
}

fn unique_key(value: &Expr) -> syn::Result<syn::Path> {
    match value {
        Expr::Path(path) if path.qself.is_none() => Ok(path.path.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            "`unique_key` expects the name of one of the job's arguments (`unique_key = user_id`) \
             or the path of a function taking `&` the job type and returning what makes it \
             unique (`unique_key = by_customer`)",
        )),
    }
}

/// `retry_in` or `retries_exhausted`: the path of a function.
fn hook_fn(value: &Expr, key: &str) -> syn::Result<syn::Path> {
    let signature = if key == "retry_in" {
        "`fn(count: u32, error: &JobError) -> Option<RetryOverride>`"
    } else {
        "`fn(job: &Payload, error: &JobError) -> Exhausted`"
    };
    match value {
        Expr::Path(path) if path.qself.is_none() => Ok(path.path.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`{key}` expects the path of a function {signature}, like `{key} = {}`",
                example(key)
            ),
        )),
    }
}

fn crate_path(value: &Expr) -> syn::Result<syn::Path> {
    match value {
        Expr::Path(path) if path.qself.is_none() => Ok(path.path.clone()),
        _ => match literal(value) {
            Some(Lit::Str(text)) => text.parse(),
            _ => Err(syn::Error::new_spanned(
                value,
                "`crate` expects the path `jobs` is known by, like `crate = my_jobs`",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::concurrency;

    fn parse(value: &str) -> syn::Result<u32> {
        concurrency(&syn::parse_str(value).expect("an expression"))
    }

    #[test]
    fn concurrency_is_a_whole_number_of_1_or_more() {
        assert_eq!(parse("1").unwrap(), 1);
        assert_eq!(parse("1_000").unwrap(), 1_000);
        let zero = parse("0").unwrap_err().to_string();
        assert!(zero.contains("no job of this class run"), "{zero}");
        for bad in ["\"2\"", "-1", "2.5", "true", "n"] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(
                error.contains("whole number of jobs of 1 or more"),
                "{bad}: {error}"
            );
        }
        assert!(parse("4294967296").is_err(), "over u32");
    }
}

//! The options inside `#[job(...)]`.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr};

/// Every option `#[job]` takes, for the "expected one of" message.
const OPTIONS: &str = "`queue`, `retry`, `name`, `backtrace`, `retry_queue`, `dead`, `tags`, \
                       `timeout`, `crate`";

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

/// The parsed options; each is `None` when not given.
#[derive(Default)]
pub(crate) struct JobArgs {
    pub(crate) queue: Option<String>,
    pub(crate) retry: Option<RetryOption>,
    pub(crate) name: Option<String>,
    pub(crate) backtrace: Option<BacktraceOption>,
    pub(crate) retry_queue: Option<String>,
    pub(crate) dead: Option<bool>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) timeout_millis: Option<u64>,
    pub(crate) crate_path: Option<syn::Path>,
}

impl JobArgs {
    /// Parses the attribute's tokens. Independent mistakes are all reported, combined.
    pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Self> {
        let mut args = Self::default();
        let mut errors: Option<syn::Error> = None;
        let parser = syn::meta::parser(|meta| {
            if let Err(error) = args.parse_one(&meta) {
                match &mut errors {
                    Some(all) => all.combine(error),
                    None => errors = Some(error),
                }
            }
            Ok(())
        });
        parser.parse2(tokens)?;
        match errors {
            Some(error) => Err(error),
            None => Ok(args),
        }
    }

    fn parse_one(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let Some(key) = meta.path.get_ident().map(ToString::to_string) else {
            return Err(unknown(meta));
        };
        let key = key.as_str();
        if !matches!(
            key,
            "queue"
                | "retry"
                | "name"
                | "backtrace"
                | "retry_queue"
                | "dead"
                | "tags"
                | "timeout"
                | "crate"
        ) {
            return Err(unknown(meta));
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
            "dead" => set(meta, &mut self.dead, boolean(&value, "dead")?),
            "tags" => set(meta, &mut self.tags, tags(&value)?),
            "timeout" => set(meta, &mut self.timeout_millis, timeout(&value)?),
            _ => set(meta, &mut self.crate_path, crate_path(&value)?),
        }
    }
}

fn unknown(meta: &ParseNestedMeta<'_>) -> syn::Error {
    let shown = meta
        .path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect::<Vec<_>>()
        .join("::");
    syn::Error::new(
        meta.path.span(),
        format!("unknown `job` option `{shown}`; expected one of {OPTIONS}"),
    )
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
        _ => Err(syn::Error::new(
            value.span(),
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

fn wire_name(value: &Expr) -> syn::Result<String> {
    let text = string(value, "name", "\"ScoreGenerationJob\"")?;
    let name = text.value();
    if name.trim().is_empty() {
        return Err(syn::Error::new(
            text.span(),
            "`name` must not be empty: it is the class name workers look the job up by",
        ));
    }
    Ok(name)
}

fn retry(value: &Expr) -> syn::Result<RetryOption> {
    let expected = "`retry` expects a whole number of retries, `true` (25) or `false` (never)";
    match literal(value) {
        Some(Lit::Bool(flag)) if flag.value => Ok(RetryOption::Default),
        Some(Lit::Bool(_)) => Ok(RetryOption::Disabled),
        Some(Lit::Int(number)) => number
            .base10_parse::<u32>()
            .map(RetryOption::Times)
            .map_err(|_| syn::Error::new(number.span(), expected)),
        _ => Err(syn::Error::new(value.span(), expected)),
    }
}

fn backtrace(value: &Expr) -> syn::Result<BacktraceOption> {
    let expected = "`backtrace` expects `true`, `false` or a number of lines";
    match literal(value) {
        Some(Lit::Bool(flag)) if flag.value => Ok(BacktraceOption::All),
        Some(Lit::Bool(_)) => Ok(BacktraceOption::Off),
        Some(Lit::Int(number)) => number
            .base10_parse::<u32>()
            .map(BacktraceOption::Lines)
            .map_err(|_| syn::Error::new(number.span(), expected)),
        _ => Err(syn::Error::new(value.span(), expected)),
    }
}

fn boolean(value: &Expr, key: &str) -> syn::Result<bool> {
    match literal(value) {
        Some(Lit::Bool(flag)) => Ok(flag.value),
        _ => Err(syn::Error::new(
            value.span(),
            format!("`{key}` expects `true` or `false`"),
        )),
    }
}

fn tags(value: &Expr) -> syn::Result<Vec<String>> {
    let expected = "`tags` expects a list of strings, like `tags = [\"billing\", \"nightly\"]`";
    let Expr::Array(list) = value else {
        return Err(syn::Error::new(value.span(), expected));
    };
    list.elems
        .iter()
        .map(|element| match literal(element) {
            Some(Lit::Str(text)) => Ok(text.value()),
            _ => Err(syn::Error::new(element.span(), expected)),
        })
        .collect()
}

fn timeout(value: &Expr) -> syn::Result<u64> {
    let expected = "`timeout` expects a number of seconds greater than 0, like `timeout = 30` or \
                    `timeout = 2.5`";
    let seconds = match literal(value) {
        Some(Lit::Int(number)) => number.base10_parse::<f64>().ok(),
        Some(Lit::Float(number)) => number.base10_parse::<f64>().ok(),
        _ => None,
    };
    match seconds {
        Some(seconds) if seconds > 0.0 && seconds < 1e12 => Ok((seconds * 1000.0).round() as u64),
        _ => Err(syn::Error::new(value.span(), expected)),
    }
}

fn crate_path(value: &Expr) -> syn::Result<syn::Path> {
    match value {
        Expr::Path(path) if path.qself.is_none() => Ok(path.path.clone()),
        _ => match literal(value) {
            Some(Lit::Str(text)) => text.parse(),
            _ => Err(syn::Error::new(
                value.span(),
                "`crate` expects the path `jobs` is known by, like `crate = my_jobs`",
            )),
        },
    }
}

//! The `#[job]` attribute of [`jobs`](https://docs.rs/jobs). Use it through `jobs`, whose
//! version pins this crate exactly; on its own it is not semver-stable.
//!
//! The attribute works in three steps, one module each: `args` parses the options,
//! `input` and `validate` check the function, `expand` writes the code. On an error, `fallback`
//! writes what can still be known of the job beside it. `paths` is the only place the paths it
//! emits are spelled.

mod args;
mod expand;
mod fallback;
mod input;
mod paths;
mod validate;

use proc_macro::TokenStream;

/// Turns an `async fn` into a background job. Documented, with every option and the code it
/// stands for, on `jobs::job`.
#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::job(args.into(), item.into()).into()
}

/// Adds `error` to the errors collected so far.
fn combine(errors: &mut Option<syn::Error>, error: syn::Error) {
    match errors {
        Some(all) => all.combine(error),
        None => *errors = Some(error),
    }
}

//! What `#[job]` emits beside its errors when the function cannot be a job, so that each
//! mistake is reported once.
//!
//! Emitting the errors alone would drop the function and the job type, and every use of either
//! would add an error of its own ("use of undeclared type `SendEmail`"). So the function is kept,
//! and next to it goes a stand-in for the job type: a struct of its name whose `perform_*`
//! methods take the arguments as the function declares them (its generics included), plus
//! `set()` and an `impl Job`. Their bodies are unreachable: the crate does not compile, so none of
//! them runs. Calls then type-check against the function as written (rustc reports an error in
//! a type once, though the stand-in repeats the type). Not covered: a struct literal with
//! fields, and `set().perform_*(…)`, which needs `From` of the arguments. The argument types may
//! be what is wrong (`&str`, `impl Trait`, a generic `T`), so neither fields nor an `impl From`
//! can be written with them in general.
//!
//! Two cases emit less:
//!
//! - a method (it takes `self`): the function alone, since nothing else may sit in an `impl`
//!   block;
//! - an unreadable `crate = …` option: no `impl`s, since they would name a crate that may not
//!   exist.
//!
//! When only an option is wrong, the function is fine, and `expand` emits the whole job with
//! default options instead.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Ident;

use crate::args::JobArgs;
use crate::input::JobFn;
use crate::paths::Paths;

/// The function, the stand-in job type and `errors`.
pub(crate) fn stand_in(args: &JobArgs, job: &JobFn, errors: Option<syn::Error>) -> TokenStream {
    let errors = errors.map(|error| error.to_compile_error());
    // Without the qualifiers already reported, which rustc would report a second time.
    let mut item = job.item.clone();
    item.sig.constness = None;
    item.sig.abi = None;
    if job.is_method() {
        return quote!(#item #errors);
    }
    let vis = &item.vis;
    let job_ident = job.type_ident();
    let doc = format!(
        "Stands in for the job type of `{}` while `#[job]` reports an error.",
        item.sig.ident
    );
    let impls = (!args.crate_unread).then(|| {
        let paths = Paths::new(args.crate_path.as_ref());
        impls(job, &job_ident, &paths)
    });
    quote! {
        #item

        #[doc = #doc]
        #vis struct #job_ident {}

        #impls

        #errors
    }
}

/// The stand-in's `perform_*` methods, `set()` and `impl Job`, all unreachable.
fn impls(job: &JobFn, job_ident: &Ident, paths: &Paths) -> TokenStream {
    let p = paths.private();
    let vis = &job.item.vis;
    // The function's own generics and argument types, so a call that fits the function fits
    // its stand-in too.
    let generics = &job.item.sig.generics;
    let where_clause = &generics.where_clause;
    let types: Vec<&syn::Type> = job.argument_types().collect();
    let result = quote!(::core::result::Result<#p::Pushed, #p::Error>);
    let inline_result = quote!(::core::result::Result<#p::Jid, #p::Error>);
    let unreachable = quote!(::core::unreachable!());
    let doc = "Stands in for the `perform_*` method of this name while `#[job]` reports an error.";
    let name = job_ident.to_string();
    quote! {
        impl #job_ident {
            #[doc = #doc]
            #vis async fn perform_async #generics (#(_: #types),*) -> #result #where_clause {
                #unreachable
            }

            #[doc = #doc]
            #vis async fn perform_in #generics (
                _: ::core::time::Duration,
                #(_: #types),*
            ) -> #result #where_clause {
                #unreachable
            }

            #[doc = #doc]
            #vis async fn perform_at #generics (
                _: #p::DateTime<#p::Utc>,
                #(_: #types),*
            ) -> #result #where_clause {
                #unreachable
            }

            #[doc = #doc]
            #vis async fn perform_inline #generics (
                #(_: #types),*
            ) -> #inline_result #where_clause {
                #unreachable
            }

            #[doc = #doc]
            #vis async fn perform_bulk(
                _: impl ::core::iter::IntoIterator<Item = Self>,
            ) -> ::core::result::Result<#p::Vec<#p::Pushed>, #p::Error> {
                #unreachable
            }

            #[doc = #doc]
            #vis fn set() -> #p::Setter<Self> {
                #unreachable
            }
        }

        const _: () = {
            #[automatically_derived]
            impl #p::Job for #job_ident {
                const NAME: &'static str = #name;
                const OPTIONS: #p::JobOptions = #p::JobOptions::DEFAULT;

                fn encode_args(
                    &self,
                ) -> ::core::result::Result<#p::Vec<#p::Value>, #p::JsonError> {
                    #unreachable
                }

                fn decode_args(
                    _: #p::Vec<#p::Value>,
                ) -> ::core::result::Result<Self, #p::ArgsError> {
                    #unreachable
                }

                fn perform(self, _: #p::JobContext, _: &#p::JobState) -> #p::JobFuture {
                    #unreachable
                }
            }
        };
    }
}

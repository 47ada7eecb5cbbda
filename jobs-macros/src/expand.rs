//! Turns a checked job function into the function, its job type and the glue.
//!
//! Everything with logic in it (JSON, Redis, retries) lives in the runtime; the expansion only
//! names it. See the `#[job]` docs for the code this produces.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, ReturnType};

use crate::args::{BacktraceOption, JobArgs, RetryOption, UniqueUntilOption};
use crate::combine;
use crate::fallback;
use crate::input::{JobFn, Role};
use crate::paths::Paths;
use crate::validate::{Param, validate};

/// The whole attribute: parse, validate, expand. On any error, every error found, next to as
/// much of the job as is still known, so that uses of the function and of its job type do not
/// add errors of their own.
pub(crate) fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    let Ok(item_fn) = syn::parse2::<ItemFn>(item.clone()) else {
        let compile_error = not_a_fn(item.clone()).to_compile_error();
        return quote!(#item #compile_error);
    };
    let (args, option_errors) = JobArgs::parse(args);
    let (job_fn, marker_errors) = JobFn::new(item_fn);
    let checked = validate(&job_fn, args.active_job.is_some());
    let (args, option_errors) = match (&checked, args.cron.clone()) {
        (Ok(params), Some(cron)) if having(Role::Argument, params).next().is_some() => {
            let takes: Vec<String> = having(Role::Argument, params)
                .map(|param| format!("`{}`", param.ident))
                .collect();
            let error = syn::Error::new(
                cron.span(),
                format!(
                    "`cron` pushes the job with no arguments, but this job takes {}; compute them \
                     from the tick with `Worker::periodic(name, cron, |tick| …)` instead",
                    takes.join(", ")
                ),
            );
            let mut errors = option_errors;
            combine(&mut errors, error);
            (args, errors)
        }
        _ => (args, option_errors),
    };
    match (option_errors, marker_errors, checked) {
        (None, None, Ok(params)) => expand(&args, &job_fn, &params),
        (Some(errors), None, Ok(params)) if !args.crate_unread => {
            // Only options are wrong: the whole job as if they were not given (tokio's
            // `DEFAULT_ERROR_CONFIG`), so the options are all that is reported.
            let expansion = expand(&args.defaults(), &job_fn, &params);
            let errors = errors.to_compile_error();
            quote!(#expansion #errors)
        }
        (option_errors, marker_errors, checked) => {
            let mut errors = option_errors;
            for error in marker_errors.into_iter().chain(checked.err()) {
                combine(&mut errors, error);
            }
            fallback::stand_in(&args, &job_fn, errors)
        }
    }
}

/// The error for `#[job]` on something other than a function, on that item's keyword and name.
fn not_a_fn(item: TokenStream) -> syn::Error {
    let example = "`#[job]` goes on an `async fn`, such as `async fn score_generation(date: \
                   NaiveDate)`";
    let (what, tokens) = match syn::parse2::<syn::Item>(item) {
        Ok(syn::Item::Struct(item)) => ("a struct", keyword_and(&item.struct_token, &item.ident)),
        Ok(syn::Item::Enum(item)) => ("an enum", keyword_and(&item.enum_token, &item.ident)),
        Ok(syn::Item::Union(item)) => ("a union", keyword_and(&item.union_token, &item.ident)),
        Ok(syn::Item::Trait(item)) => ("a trait", keyword_and(&item.trait_token, &item.ident)),
        Ok(syn::Item::Impl(item)) => (
            "an `impl` block",
            keyword_and(&item.impl_token, &item.self_ty),
        ),
        Ok(syn::Item::Mod(item)) => ("a module", keyword_and(&item.mod_token, &item.ident)),
        Ok(syn::Item::Const(item)) => ("a constant", keyword_and(&item.const_token, &item.ident)),
        Ok(syn::Item::Static(item)) => ("a static", keyword_and(&item.static_token, &item.ident)),
        Ok(syn::Item::Type(item)) => ("a type alias", keyword_and(&item.type_token, &item.ident)),
        Ok(syn::Item::Use(item)) => ("a `use`", quote!(#item)),
        _ => return syn::Error::new(Span::call_site(), example),
    };
    syn::Error::new_spanned(tokens, format!("{example}, not on {what}"))
}

/// An item's keyword and name, to point an error at.
fn keyword_and(keyword: &impl ToTokens, name: &impl ToTokens) -> TokenStream {
    quote!(#keyword #name)
}

/// The parameters that have `role`, in order.
fn having(role: Role, params: &[Param]) -> impl Iterator<Item = &Param> {
    params.iter().filter(move |param| param.role == role)
}

fn expand(args: &JobArgs, job: &JobFn, params: &[Param]) -> TokenStream {
    let paths = Paths::new(args.crate_path.as_ref());
    let p = paths.private();
    let item = &job.item;
    let vis = &item.vis;
    let fn_ident = &item.sig.ident;
    let job_ident = job.type_ident();
    let wire_name = args
        .name
        .as_ref()
        .map_or_else(|| job_ident.to_string(), syn::LitStr::value);

    let arguments: Vec<&Param> = having(Role::Argument, params).collect();
    let arg_idents: Vec<&Ident> = arguments.iter().map(|param| &param.ident).collect();
    let arg_types: Vec<&syn::Type> = arguments.iter().map(|param| &param.ty).collect();
    let arg_names: Vec<String> = arg_idents.iter().map(ToString::to_string).collect();
    let arg_count = arguments.len();
    let codecs: Vec<TokenStream> = arguments
        .iter()
        .map(|param| {
            let ty = &param.ty;
            let span = ty.span();
            let p_at = paths.private_at(span);
            quote_spanned!(span=> #p_at::codec::<#ty>())
        })
        .collect();

    let options = options(args, &p);
    let state_types: Vec<&syn::Type> = having(Role::State, params).map(|param| &param.ty).collect();
    let state_const = (!state_types.is_empty()).then(|| {
        quote! {
            const STATE: &'static [#p::StateType] = &[#(#p::StateType::of::<#state_types>()),*];
        }
    });

    // Without a `#[context]` parameter the worker need not build one for each job.
    let context_const = having(Role::Context, params).next().is_none().then(|| {
        quote!(
            const READS_CONTEXT: bool = false;
        )
    });

    let encode_body = if arg_count == 0 {
        quote!(::core::result::Result::Ok(#p::Vec::new()))
    } else if args.active_job.is_some() {
        active_job_encode_body(&arguments, &codecs, &p)
    } else {
        quote! {
            let mut __jobs_args = #p::Vec::with_capacity(#arg_count);
            #( __jobs_args.push((#codecs.encode)(&self.#arg_idents)?); )*
            ::core::result::Result::Ok(__jobs_args)
        }
    };
    let decode_body = if arg_count == 0 {
        quote! {
            #p::ArgsDecoder::new(__jobs_args, 0)?;
            ::core::result::Result::Ok(Self {})
        }
    } else {
        quote! {
            let mut __jobs_args = #p::ArgsDecoder::new(__jobs_args, #arg_count)?;
            ::core::result::Result::Ok(Self {
                #( #arg_idents: __jobs_args.next(#codecs, #arg_names)?, )*
            })
        }
    };

    let perform = perform_fn(params, fn_ident, item, &paths);
    let unique_key = unique_key_fn(args, &arguments, &p);
    let retry_hooks = retry_hook_fns(args, &p);
    let from_impl = from_impl(&job_ident, &arg_idents, &arg_types);
    let inherent = inherent_impl(vis, &job_ident, &arg_idents, &arg_types, &p, &wire_name);

    let struct_doc = if args.active_job.is_some() {
        format!(
            "The job `{fn_ident}` runs, as a value: one call with its arguments.\n\n\
             Push it with [`{job_ident}::perform_async`] and friends. Generated by `#[job]`; it \
             is pushed as the ActiveJob job `{wire_name}`, for Rails to run."
        )
    } else {
        format!(
            "The job `{fn_ident}` runs, as a value: one call with its arguments.\n\n\
             Push it with [`{job_ident}::perform_async`] and friends. Generated by `#[job]`; its \
             wire name (Sidekiq's `class`) is `{wire_name}`."
        )
    };
    let field_docs: Vec<String> = arg_names
        .iter()
        .map(|name| format!("The `{name}` argument."))
        .collect();

    quote! {
        // A worker awaits the function, so it is `async` even when its body awaits nothing;
        // clippy's pedantic `unused_async` would then advise dropping the `async` that `#[job]`
        // requires.
        #[allow(clippy::unused_async)]
        #item

        #[doc = #struct_doc]
        #vis struct #job_ident {
            #( #[doc = #field_docs] #vis #arg_idents: #arg_types, )*
        }

        #inherent

        const _: () = {
            #[automatically_derived]
            impl #p::Job for #job_ident {
                const NAME: &'static str = #wire_name;
                const OPTIONS: #p::JobOptions = #options;
                #state_const
                #context_const

                fn encode_args(
                    &self,
                ) -> ::core::result::Result<#p::Vec<#p::Value>, #p::JsonError> {
                    #encode_body
                }

                fn decode_args(
                    __jobs_args: #p::Vec<#p::Value>,
                ) -> ::core::result::Result<Self, #p::ArgsError> {
                    #decode_body
                }

                #perform

                #unique_key

                #retry_hooks
            }

            #from_impl

            #p::inventory::submit! {
                #p::Registration::of::<#job_ident>(
                    ::core::concat!(::core::file!(), ":", ::core::line!())
                )
            }
        };
    }
}

/// `Job::encode_args` of an `active_job` job: each argument as ActiveJob serializes it, chosen
/// by the runtime's autoref specialization (`jobs-runtime/src/active_job/encode.rs`); the
/// `#[keywords]` argument as keyword arguments.
fn active_job_encode_body(
    arguments: &[&Param],
    codecs: &[TokenStream],
    p: &TokenStream,
) -> TokenStream {
    let count = arguments.len();
    let encoded = arguments.iter().zip(codecs).map(|(param, codec)| {
        let ident = &param.ident;
        let name = ident.to_string();
        if param.keywords {
            quote!(#p::active_job_keywords(&self.#ident, #codec, #name)?)
        } else {
            quote!((&#p::ActiveJobArgument::new(&self.#ident, #codec, #name)).active_job_argument()?)
        }
    });
    quote! {
        // Both are needed for the choice; a job whose arguments all take one leaves the other
        // unused.
        #[allow(unused_imports)]
        use #p::{ActiveJobBySerde as _, ActiveJobByTyped as _};
        let mut __jobs_args = #p::Vec::with_capacity(#count);
        #( __jobs_args.push(#encoded); )*
        ::core::result::Result::Ok(__jobs_args)
    }
}

/// `JobOptions::DEFAULT.with_queue(…)…` for the options given.
fn options(args: &JobArgs, p: &TokenStream) -> TokenStream {
    let mut options = quote!(#p::JobOptions::DEFAULT);
    if let Some(queue) = &args.queue {
        options = quote!(#options.with_queue(#queue));
    }
    if let Some(retry) = &args.retry {
        let retry = match retry {
            RetryOption::Default => quote!(#p::Retry::Default),
            RetryOption::Times(times) => quote!(#p::Retry::Times(#times)),
            RetryOption::Disabled => quote!(#p::Retry::Disabled),
        };
        options = quote!(#options.with_retry(#retry));
    }
    if let Some(backtrace) = &args.backtrace {
        let backtrace = match backtrace {
            BacktraceOption::All => quote!(#p::Backtrace::All),
            BacktraceOption::Off => quote!(#p::Backtrace::Off),
            BacktraceOption::Lines(lines) => quote!(#p::Backtrace::Lines(#lines)),
        };
        options = quote!(#options.with_backtrace(#backtrace));
    }
    if let Some(queue) = &args.retry_queue {
        options = quote!(#options.with_retry_queue(#queue));
    }
    if let Some(seconds) = args.retry_for {
        options = quote!(#options.with_retry_for(::core::time::Duration::from_secs(#seconds)));
    }
    if let Some(dead) = args.dead {
        options = quote!(#options.with_dead(#dead));
    }
    if let Some(tags) = &args.tags {
        options = quote!(#options.with_tags(&[#(#tags),*]));
    }
    if let Some(millis) = args.timeout_millis {
        options = quote!(#options.with_timeout(::core::time::Duration::from_millis(#millis)));
    }
    if let Some(cap) = args.concurrency {
        options = quote!(#options.with_concurrency(#cap));
    }
    if let Some(cron) = &args.cron {
        options = quote!(#options.with_cron(#cron));
    }
    if let Some(seconds) = args.unique_for {
        options = quote!(#options.with_unique_for(::core::time::Duration::from_secs(#seconds)));
    }
    if let Some((UniqueUntilOption::Start, _)) = &args.unique_until {
        options = quote!(#options.with_unique_until(#p::UniqueUntil::Start));
    }
    if let Some(seconds) = args.expires_in {
        options = quote!(#options.with_expires_in(::core::time::Duration::from_secs(#seconds)));
    }
    if let Some(level) = &args.log_level {
        let level = match level.as_str() {
            "debug" => quote!(Debug),
            "info" => quote!(Info),
            "warn" => quote!(Warn),
            _ => quote!(Error),
        };
        options = quote!(#options.with_log_level(#p::LogLevel::#level));
    }
    if args.active_job.is_some() {
        options = quote!(#options.with_active_job());
    }
    options
}

/// `Job::unique_key` for `unique_key = …`: the named argument's JSON, or what the named function
/// returns for the job, as JSON.
fn unique_key_fn(args: &JobArgs, arguments: &[&Param], p: &TokenStream) -> Option<TokenStream> {
    let path = args.unique_key.as_ref()?;
    let argument = path
        .get_ident()
        .and_then(|ident| arguments.iter().find(|param| param.ident == *ident));
    let value = match argument {
        Some(param) => {
            let (ident, ty) = (&param.ident, &param.ty);
            quote!((#p::codec::<#ty>().encode)(&self.#ident))
        }
        None => {
            // Called on a plain reference rather than `self`, so that a name that is neither an
            // argument nor a function gets rustc's "cannot find function", on the user's token.
            let span = path.span();
            quote_spanned!(span=> {
                let __jobs_job: &Self = self;
                #p::to_json_value(&#path(__jobs_job))
            })
        }
    };
    Some(quote! {
        fn unique_key(
            &self,
        ) -> ::core::option::Option<::core::result::Result<#p::Value, #p::JsonError>> {
            ::core::option::Option::Some(#value)
        }
    })
}

/// `Job::retry_in` and `Job::retries_exhausted` for `retry_in = …` and `retries_exhausted = …`:
/// calls of the named functions, spanned on the user's path so that a wrong name or signature
/// is reported there.
fn retry_hook_fns(args: &JobArgs, p: &TokenStream) -> TokenStream {
    let mut hooks = TokenStream::new();
    if let Some(path) = &args.retry_in {
        let span = path.span();
        let call = quote_spanned!(span=> #path(__jobs_count, __jobs_error));
        hooks.extend(quote! {
            fn retry_in(
                __jobs_count: u32,
                __jobs_error: &#p::JobError,
            ) -> ::core::option::Option<#p::RetryOverride> {
                #call
            }
        });
    }
    if let Some(path) = &args.retries_exhausted {
        let span = path.span();
        let call = quote_spanned!(span=> #path(__jobs_job, __jobs_error));
        hooks.extend(quote! {
            fn retries_exhausted(
                __jobs_job: &#p::Payload,
                __jobs_error: &#p::JobError,
            ) -> #p::Exhausted {
                #call
            }
        });
    }
    hooks
}

/// `Job::perform`: unpacks the call, fetches state, runs the function, converts its result.
fn perform_fn(params: &[Param], fn_ident: &Ident, item: &ItemFn, paths: &Paths) -> TokenStream {
    let p = paths.private();
    let arg_idents = having(Role::Argument, params).map(|param| &param.ident);
    let states: Vec<&Param> = having(Role::State, params).collect();
    let context = having(Role::Context, params).next();
    let state_lookups = states.iter().map(|param| {
        let (ident, ty) = (&param.ident, &param.ty);
        let span = ty.span();
        quote_spanned!(span=> let #ident = __jobs_state.require::<#ty>();)
    });
    let state_checks = states.iter().map(|param| {
        let ident = &param.ident;
        quote!(let #ident = #ident?;)
    });
    let context_param = match context {
        Some(_) => quote!(__jobs_context),
        None => quote!(_),
    };
    let context_binding = context.map(|param| {
        let ident = &param.ident;
        quote!(let #ident = __jobs_context;)
    });
    let state_param = if states.is_empty() {
        quote!(_)
    } else {
        quote!(__jobs_state)
    };
    let call_args = params.iter().map(|param| &param.ident);
    // The conversion of what the function returned is spelled entirely on the return type, so
    // a return type that is not `()` or `Result<(), E>` is reported there, once.
    let return_span = match &item.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => fn_ident.span(),
    };
    let p_return = paths.private_at(return_span);
    let returned = Ident::new("__jobs_returned", return_span);
    let into_result = quote_spanned!(return_span=> #p_return::into_job_result(#returned));

    quote! {
        fn perform(
            self,
            #context_param: #p::JobContext,
            #state_param: &#p::JobState,
        ) -> #p::JobFuture {
            let Self { #(#arg_idents),* } = self;
            #context_binding
            #(#state_lookups)*
            #p::Box::pin(async move {
                #(#state_checks)*
                let #returned = #fn_ident(#(#call_args),*).await;
                #into_result
            })
        }
    }
}

/// `From<args>` for the job type, so `set().perform_async(today)` takes the bare arguments.
fn from_impl(job_ident: &Ident, idents: &[&Ident], types: &[&syn::Type]) -> TokenStream {
    let (pattern, ty) = match (idents, types) {
        ([ident], [ty]) => (quote!(#ident), quote!(#ty)),
        _ => (quote!((#(#idents),*)), quote!((#(#types),*))),
    };
    quote! {
        #[automatically_derived]
        impl ::core::convert::From<#ty> for #job_ident {
            fn from(#pattern: #ty) -> Self {
                Self { #(#idents),* }
            }
        }
    }
}

/// A name for a generated parameter that no job argument already has.
fn fresh(name: &str, taken: &[&Ident]) -> Ident {
    if taken.iter().any(|ident| *ident == name) {
        Ident::new(&format!("__jobs_{name}"), Span::call_site())
    } else {
        Ident::new(name, Span::call_site())
    }
}

/// `perform_async` and friends, taking the arguments positionally.
fn inherent_impl(
    vis: &syn::Visibility,
    job_ident: &Ident,
    idents: &[&Ident],
    types: &[&syn::Type],
    p: &TokenStream,
    wire_name: &str,
) -> TokenStream {
    let delay = fresh("delay", idents);
    let time = fresh("time", idents);
    let result = quote!(::core::result::Result<#p::Pushed, #p::Error>);
    let errors_doc = "# Errors\n\nWhen Redis cannot be reached or refuses the write, or a client \
                      middleware stops the job. A unique job refused as a duplicate is no error: \
                      see `Pushed`.";
    let async_doc = format!(
        "Pushes a `{wire_name}` job to run as soon as a worker takes it; returns its jid (or, \
         for a unique job refused as a duplicate, the jid of the job holding the lock).\n\n\
         {errors_doc}"
    );
    let in_doc = format!("Pushes a `{wire_name}` job to run after `{delay}`.\n\n{errors_doc}");
    let at_doc = format!(
        "Pushes a `{wire_name}` job to run at `{time}` (now, if that is not in the future).\n\n\
         {errors_doc}"
    );
    let inline_doc = "Runs the job here and now, after the same JSON round trip as a push, \
                      without Redis.\n\n# Errors\n\nWhen the job fails or panics, or an \
                      argument does not survive JSON.";
    let bulk_doc = format!(
        "Pushes many `{wire_name}` jobs, 1,000 to a round trip; returns what became of each.\n\n\
         {errors_doc}"
    );
    let set_doc = "Options for one push (queue, retry, delay, tags, client), then `perform_*`.";
    quote! {
        impl #job_ident {
            #[doc = #async_doc]
            #[allow(clippy::too_many_arguments)]
            #vis async fn perform_async(#(#idents: #types),*) -> #result {
                #p::Setter::<Self>::new().perform_async(Self { #(#idents),* }).await
            }

            #[doc = #in_doc]
            #[allow(clippy::too_many_arguments)]
            #vis async fn perform_in(
                #delay: ::core::time::Duration,
                #(#idents: #types),*
            ) -> #result {
                #p::Setter::<Self>::new().perform_in(#delay, Self { #(#idents),* }).await
            }

            #[doc = #at_doc]
            #[allow(clippy::too_many_arguments)]
            #vis async fn perform_at(
                #time: #p::DateTime<#p::Utc>,
                #(#idents: #types),*
            ) -> #result {
                #p::Setter::<Self>::new().perform_at(#time, Self { #(#idents),* }).await
            }

            #[doc = #inline_doc]
            #[allow(clippy::too_many_arguments)]
            #vis async fn perform_inline(
                #(#idents: #types),*
            ) -> ::core::result::Result<#p::Jid, #p::Error> {
                #p::Setter::<Self>::new().perform_inline(Self { #(#idents),* }).await
            }

            #[doc = #bulk_doc]
            #vis async fn perform_bulk(
                jobs: impl ::core::iter::IntoIterator<Item = Self>,
            ) -> ::core::result::Result<#p::Vec<#p::Pushed>, #p::Error> {
                #p::Setter::<Self>::new().perform_bulk(jobs).await
            }

            #[doc = #set_doc]
            #[must_use]
            #vis fn set() -> #p::Setter<Self> {
                #p::Setter::new()
            }
        }
    }
}

//! The rules a job function must follow, each reported on the token that breaks it.

use syn::{GenericArgument, Ident, Pat, PathArguments, ReturnType, Signature, Type};

use crate::combine;
use crate::input::{Input, JobFn, Role};

/// A parameter that passed the rules.
pub(crate) struct Param {
    pub(crate) role: Role,
    /// `#[keywords]`: the argument goes to Ruby as keyword arguments.
    pub(crate) keywords: bool,
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// Checks the function, for a job that is `active_job` or not; on success, its parameters in
/// order.
pub(crate) fn validate(job: &JobFn, active_job: bool) -> syn::Result<Vec<Param>> {
    let mut errors = None;
    check_signature(&job.item.sig, &mut errors);
    check_keywords(job, active_job, &mut errors);
    let mut params = Vec::new();
    let mut context_seen = false;
    for input in &job.inputs {
        match input {
            Input::Receiver(receiver) => combine(
                &mut errors,
                syn::Error::new_spanned(
                    receiver,
                    "a `#[job]` must be a free function, not a method: `self` cannot be stored \
                     as JSON; move the function out of the `impl` block",
                ),
            ),
            Input::Typed {
                role,
                keywords,
                pat,
                ty,
            } => {
                if *role == Role::Context {
                    if context_seen {
                        combine(
                            &mut errors,
                            syn::Error::new_spanned(
                                pat,
                                "only one parameter can be `#[context]`: remove this one and \
                                 use the first",
                            ),
                        );
                    }
                    context_seen = true;
                }
                let ident = plain_name(pat).map_err(|error| combine(&mut errors, error));
                if let Err(error) = check_type(ty, *role) {
                    combine(&mut errors, error);
                }
                if let Ok(ident) = ident {
                    params.push(Param {
                        role: *role,
                        keywords: keywords.is_some(),
                        ident,
                        ty: (**ty).clone(),
                    });
                }
            }
        }
    }
    if let ReturnType::Type(_, ty) = &job.item.sig.output
        && let Type::ImplTrait(bad) = &**ty
    {
        combine(
            &mut errors,
            syn::Error::new_spanned(
                bad,
                "a job returns `()` or `Result<(), E>`, not `impl Trait`: name the type",
            ),
        );
    }
    match errors {
        Some(error) => Err(error),
        None => Ok(params),
    }
}

/// `#[keywords]` goes on the last job argument of an `active_job` job, where Ruby takes keyword
/// arguments.
fn check_keywords(job: &JobFn, active_job: bool, errors: &mut Option<syn::Error>) {
    let params: Vec<(&Role, &Option<syn::Attribute>, &Pat)> = job
        .inputs
        .iter()
        .filter_map(|input| match input {
            Input::Typed {
                role,
                keywords,
                pat,
                ..
            } => Some((role, keywords, &**pat)),
            Input::Receiver(_) => None,
        })
        .collect();
    let last_argument = params
        .iter()
        .rposition(|(role, _, _)| **role == Role::Argument);
    for (index, (role, keywords, pat)) in params.iter().enumerate() {
        let Some(attr) = keywords else {
            continue;
        };
        let message = if **role != Role::Argument {
            let marker = if **role == Role::State {
                "state"
            } else {
                "context"
            };
            format!(
                "`#[keywords]` marks a job argument that Ruby receives as keyword arguments; a \
                 `#[{marker}]` parameter is not sent to Ruby"
            )
        } else if !active_job {
            "`#[keywords]` sends this argument to Ruby as keyword arguments, which only an \
             ActiveJob job takes: add `active_job` to `#[job(...)]`"
                .to_owned()
        } else if Some(index) != last_argument {
            format!(
                "`#[keywords]` goes on the last job argument, as Ruby's keyword arguments come \
                 after the positional ones: move `{}` to the end",
                quote::quote!(#pat)
            )
        } else {
            continue;
        };
        combine(errors, syn::Error::new_spanned(attr, message));
    }
}

fn check_signature(sig: &Signature, errors: &mut Option<syn::Error>) {
    if let Some(token) = &sig.constness {
        combine(
            errors,
            syn::Error::new(token.span, "a `#[job]` function cannot be `const`"),
        );
    }
    if let Some(token) = &sig.unsafety {
        combine(
            errors,
            syn::Error::new(
                token.span,
                "a `#[job]` function cannot be `unsafe`: a worker calls it with no one to uphold \
                 its safety contract",
            ),
        );
    }
    if let Some(abi) = &sig.abi {
        combine(
            errors,
            syn::Error::new_spanned(abi, "a `#[job]` function cannot have an `extern` ABI"),
        );
    }
    if sig.asyncness.is_none() {
        combine(
            errors,
            syn::Error::new(
                sig.fn_token.span,
                format!(
                    "a `#[job]` function must be `async`: write `async fn {}(…)`",
                    sig.ident
                ),
            ),
        );
    }
    if !sig.generics.params.is_empty() {
        let lifetimes_only = sig.generics.lifetimes().count() == sig.generics.params.len();
        let message = if lifetimes_only {
            "a `#[job]` function cannot have lifetime parameters: its arguments are stored as \
             JSON, so they must be owned"
        } else {
            "a `#[job]` function cannot be generic: its arguments are decoded from JSON by a \
             worker that must know their concrete types"
        };
        combine(errors, syn::Error::new_spanned(&sig.generics, message));
    }
    if let Some(clause) = &sig.generics.where_clause {
        combine(
            errors,
            syn::Error::new_spanned(
                clause,
                "a `#[job]` function cannot have a `where` clause: its argument types are \
                 concrete, so any bound either holds or is a mistake; remove it",
            ),
        );
    }
    if let Some(variadic) = &sig.variadic {
        combine(
            errors,
            syn::Error::new_spanned(variadic, "a `#[job]` function cannot be variadic"),
        );
    }
}

/// The parameter's name, when it is a plain name (`date` or `mut date`).
fn plain_name(pat: &Pat) -> syn::Result<Ident> {
    match pat {
        Pat::Ident(binding) if binding.by_ref.is_none() && binding.subpat.is_none() => {
            Ok(binding.ident.clone())
        }
        _ => Err(syn::Error::new_spanned(
            pat,
            "a job parameter must be a plain name, like `date: NaiveDate`: each argument \
             becomes a field of the job type; destructure it inside the function",
        )),
    }
}

/// Refuses borrowed, `impl Trait` and lifetime-carrying types, on the offending part.
fn check_type(ty: &Type, role: Role) -> syn::Result<()> {
    match ty {
        Type::Reference(reference) => Err(syn::Error::new_spanned(
            reference,
            borrowed_message(&reference.elem, role),
        )),
        Type::ImplTrait(bad) => Err(syn::Error::new_spanned(
            bad,
            "a job parameter needs a concrete type: `impl Trait` cannot be decoded from JSON",
        )),
        Type::Paren(inner) => check_type(&inner.elem, role),
        Type::Group(inner) => check_type(&inner.elem, role),
        Type::Array(array) => check_type(&array.elem, role),
        Type::Slice(slice) => check_type(&slice.elem, role),
        Type::Tuple(tuple) => tuple
            .elems
            .iter()
            .try_for_each(|element| check_type(element, role)),
        Type::Path(path) => {
            if let Some(qself) = &path.qself {
                check_type(&qself.ty, role)?;
            }
            for segment in &path.path.segments {
                if let PathArguments::AngleBracketed(generics) = &segment.arguments {
                    for argument in &generics.args {
                        match argument {
                            GenericArgument::Lifetime(lifetime) => {
                                return Err(syn::Error::new_spanned(
                                    lifetime,
                                    lifetime_message(lifetime, segment, role),
                                ));
                            }
                            GenericArgument::Type(inner) => check_type(inner, role)?,
                            _ => {}
                        }
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Why a lifetime in a parameter's type is refused, and the owned type to take instead.
fn lifetime_message(lifetime: &syn::Lifetime, segment: &syn::PathSegment, role: Role) -> String {
    let owned = if segment.ident == "Cow" {
        let borrowed = match &segment.arguments {
            PathArguments::AngleBracketed(generics) => generics.args.iter().find_map(|arg| {
                if let GenericArgument::Type(ty) = arg {
                    Some(ty)
                } else {
                    None
                }
            }),
            _ => None,
        };
        match borrowed {
            Some(Type::Path(path)) if path.path.is_ident("str") => {
                format!("take `String` instead of `Cow<{lifetime}, str>`")
            }
            Some(Type::Slice(slice)) => {
                let element = &slice.elem;
                format!(
                    "take `Vec<{}>` instead of `Cow<{lifetime}, [{}]>`",
                    quote::quote!(#element),
                    quote::quote!(#element)
                )
            }
            _ => format!("take the owned type instead of `Cow<{lifetime}, …>`"),
        }
    } else {
        format!("remove `{lifetime}` and take a type that owns its data")
    };
    match role {
        Role::Argument => format!(
            "a job argument cannot borrow: it is stored in Redis as JSON and decoded later by a \
             worker; {owned}"
        ),
        _ => format!("a job parameter cannot carry a lifetime; {owned}"),
    }
}

fn borrowed_message(target: &Type, role: Role) -> String {
    match role {
        Role::State => "a `#[state]` parameter gets its own clone of the worker's value: take \
                        `T`, not `&T` (wrap the value in an `Arc` if it is costly to clone)"
            .to_owned(),
        Role::Context => "take the context by value: `ctx: JobContext`".to_owned(),
        Role::Argument => {
            let owned = match target {
                Type::Path(path) if path.path.is_ident("str") => "`String` instead of `&str`",
                Type::Slice(_) => "`Vec<T>` instead of `&[T]`",
                _ => "`T` instead of `&T`",
            };
            format!(
                "a job argument cannot borrow: it is stored in Redis as JSON and decoded later \
                 by a worker; take {owned}"
            )
        }
    }
}

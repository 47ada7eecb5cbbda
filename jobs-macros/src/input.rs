//! A typed view of the function under `#[job]`: its parameters sorted by role, and the one
//! marked `#[keywords]`.

use syn::{Attribute, FnArg, Ident, ItemFn, Pat, Receiver, Type};

use crate::combine;

/// What a parameter is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A job argument: stored in the payload as JSON.
    Argument,
    /// `#[state]`: a clone of the worker's shared value of this type.
    State,
    /// `#[context]`: the running job's [`JobContext`].
    Context,
}

/// One parameter of the job function.
pub(crate) enum Input {
    /// `self`, `&self`, …: always an error, kept to point at.
    Receiver(Receiver),
    /// `pattern: Type`.
    Typed {
        role: Role,
        /// `#[keywords]`, as written (for errors on it): the argument is passed to Ruby as
        /// keyword arguments.
        keywords: Option<Attribute>,
        pat: Box<Pat>,
        ty: Box<Type>,
    },
}

/// The job function, with the `#[state]`/`#[context]`/`#[keywords]` markers taken off its
/// parameters so it can be emitted as the user wrote it.
pub(crate) struct JobFn {
    pub(crate) item: ItemFn,
    pub(crate) inputs: Vec<Input>,
}

impl JobFn {
    /// Sorts the parameters; malformed markers are errors, combined. A parameter with a
    /// malformed marker still gets the role the marker names.
    pub(crate) fn new(mut item: ItemFn) -> (Self, Option<syn::Error>) {
        let mut errors: Option<syn::Error> = None;
        let mut inputs = Vec::new();
        for input in &mut item.sig.inputs {
            match input {
                FnArg::Receiver(receiver) => inputs.push(Input::Receiver(receiver.clone())),
                FnArg::Typed(typed) => inputs.push(Input::Typed {
                    role: take_role(&mut typed.attrs, &mut errors),
                    keywords: take_keywords(&mut typed.attrs, &mut errors),
                    pat: typed.pat.clone(),
                    ty: typed.ty.clone(),
                }),
            }
        }
        (Self { item, inputs }, errors)
    }

    /// The job type's name: the function's, in UpperCamelCase, at its span.
    pub(crate) fn type_ident(&self) -> Ident {
        let fn_ident = &self.item.sig.ident;
        Ident::new(&upper_camel(fn_ident), fn_ident.span())
    }

    /// Whether the function takes `self`: then it sits in an `impl` or `trait` block.
    pub(crate) fn is_method(&self) -> bool {
        self.inputs
            .iter()
            .any(|input| matches!(input, Input::Receiver(_)))
    }

    /// The types of the job arguments, as written, in order.
    pub(crate) fn argument_types(&self) -> impl Iterator<Item = &Type> {
        self.inputs.iter().filter_map(|input| match input {
            Input::Typed {
                role: Role::Argument,
                ty,
                ..
            } => Some(&**ty),
            _ => None,
        })
    }
}

/// Removes `#[state]` or `#[context]` from a parameter's attributes and says which it was.
fn take_role(attrs: &mut Vec<Attribute>, errors: &mut Option<syn::Error>) -> Role {
    let mut role = Role::Argument;
    let mut marker: Option<&'static str> = None;
    attrs.retain(|attr| {
        let this = if attr.path().is_ident("state") {
            ("state", Role::State)
        } else if attr.path().is_ident("context") {
            ("context", Role::Context)
        } else {
            return true;
        };
        if attr.meta.require_path_only().is_err() {
            let message = format!("`#[{}]` takes no arguments: write `#[{}]`", this.0, this.0);
            combine(errors, syn::Error::new_spanned(&attr.meta, message));
        } else if let Some(first) = marker {
            let message = format!(
                "a parameter is either `#[{first}]` or `#[{}]`, not both",
                this.0
            );
            combine(errors, syn::Error::new_spanned(attr, message));
        }
        marker = Some(this.0);
        role = this.1;
        false
    });
    role
}

/// Removes `#[keywords]` from a parameter's attributes and returns it.
fn take_keywords(attrs: &mut Vec<Attribute>, errors: &mut Option<syn::Error>) -> Option<Attribute> {
    let mut found: Option<Attribute> = None;
    attrs.retain(|attr| {
        if !attr.path().is_ident("keywords") {
            return true;
        }
        if attr.meta.require_path_only().is_err() {
            let message = "`#[keywords]` takes no arguments: write `#[keywords]`";
            combine(errors, syn::Error::new_spanned(&attr.meta, message));
        } else if found.is_some() {
            let message = "`#[keywords]` is given twice: write it once";
            combine(errors, syn::Error::new_spanned(attr, message));
        }
        found.get_or_insert_with(|| attr.clone());
        false
    });
    found
}

/// `score_generation` -> `ScoreGeneration`.
fn upper_camel(ident: &Ident) -> String {
    let name = ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;
    use syn::Ident;

    use super::upper_camel;

    #[test]
    fn names_the_job_type_in_upper_camel_case() {
        for (function, job) in [
            ("score_generation", "ScoreGeneration"),
            ("send_email2", "SendEmail2"),
            ("_private_job", "PrivateJob"),
            ("cleanup", "Cleanup"),
        ] {
            assert_eq!(upper_camel(&Ident::new(function, Span::call_site())), job);
        }
    }
}

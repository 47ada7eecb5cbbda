//! A typed view of the function under `#[job]`: its parameters sorted by role.

use syn::{Attribute, FnArg, ItemFn, Pat, Receiver, Type};

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
        pat: Box<Pat>,
        ty: Box<Type>,
    },
}

/// The job function, with the `#[state]`/`#[context]` markers taken off its parameters so it can
/// be emitted as the user wrote it.
pub(crate) struct JobFn {
    pub(crate) item: ItemFn,
    pub(crate) inputs: Vec<Input>,
}

impl JobFn {
    /// Sorts the parameters; malformed markers are errors, combined.
    pub(crate) fn new(mut item: ItemFn) -> (Self, Option<syn::Error>) {
        let mut errors: Option<syn::Error> = None;
        let mut inputs = Vec::new();
        for input in &mut item.sig.inputs {
            match input {
                FnArg::Receiver(receiver) => inputs.push(Input::Receiver(receiver.clone())),
                FnArg::Typed(typed) => {
                    let role = match take_role(&mut typed.attrs) {
                        Ok(role) => role,
                        Err(error) => {
                            combine(&mut errors, error);
                            Role::Argument
                        }
                    };
                    inputs.push(Input::Typed {
                        role,
                        pat: typed.pat.clone(),
                        ty: typed.ty.clone(),
                    });
                }
            }
        }
        (Self { item, inputs }, errors)
    }
}

/// Removes `#[state]` or `#[context]` from a parameter's attributes and says which it was.
fn take_role(attrs: &mut Vec<Attribute>) -> syn::Result<Role> {
    let mut role = Role::Argument;
    let mut marker: Option<&'static str> = None;
    let mut error: Option<syn::Error> = None;
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
            combine(&mut error, syn::Error::new_spanned(&attr.meta, message));
        } else if let Some(first) = marker {
            let message = format!(
                "a parameter is either `#[{first}]` or `#[{}]`, not both",
                this.0
            );
            combine(&mut error, syn::Error::new_spanned(attr, message));
        }
        marker = Some(this.0);
        role = this.1;
        false
    });
    match error {
        Some(error) => Err(error),
        None => Ok(role),
    }
}

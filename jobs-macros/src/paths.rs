//! The one place that spells the paths the expansion names.
//!
//! Generated code names only `::core::…` and `<jobs>::__private::…`, where `<jobs>` is `::jobs`
//! or the `crate = …` option, so a user's `Cargo.toml` needs `jobs` alone and shadowing
//! `Result`, `Box` or `String` in their module changes nothing.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};

/// The paths of one expansion.
pub(crate) struct Paths {
    krate: TokenStream,
}

impl Paths {
    /// Paths rooted at `crate_path`, or at `::jobs`.
    pub(crate) fn new(crate_path: Option<&syn::Path>) -> Self {
        let krate = match crate_path {
            Some(path) => path.to_token_stream(),
            None => quote!(::jobs),
        };
        Self { krate }
    }

    /// `<jobs>::__private`.
    pub(crate) fn private(&self) -> TokenStream {
        let krate = &self.krate;
        quote!(#krate::__private)
    }

    /// `<jobs>::__private` with every token at `span`, so a compile error in the code around it
    /// points at the user's token.
    pub(crate) fn private_at(&self, span: Span) -> TokenStream {
        respan(self.private(), span)
    }
}

/// `tokens` with every span set to `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut new = Group::new(group.delimiter(), respan(group.stream(), span));
                new.set_span(span);
                TokenTree::Group(new)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

//! Error collection: every diagnostic is gathered so users see all of them at once.

use std::cell::{Cell, RefCell};
use std::fmt::Display;

use proc_macro2::{Punct, Spacing, Span, TokenStream, TokenTree};
use quote::ToTokens;

/// Where an error points: one token, or a range of tokens (a whole attribute or type).
///
/// Stable proc macros cannot join spans; an error built from a first and a last token
/// (as `syn::Error::new_spanned` does) still underlines everything between them.
#[derive(Clone, Copy)]
pub(crate) struct Loc {
    pub start: Span,
    pub end: Span,
}

impl Loc {
    /// The range covered by `tokens` (the call site if there are none).
    pub(crate) fn of(tokens: impl ToTokens) -> Self {
        let mut iter = tokens.into_token_stream().into_iter();
        let Some(first) = iter.next() else {
            return Span::call_site().into();
        };
        let start = match &first {
            TokenTree::Group(g) => g.span_open(),
            t => t.span(),
        };
        let last = iter.last().unwrap_or(first);
        let end = match &last {
            TokenTree::Group(g) => g.span_close(),
            t => t.span(),
        };
        Loc { start, end }
    }
}

impl From<Span> for Loc {
    fn from(span: Span) -> Self {
        Loc {
            start: span,
            end: span,
        }
    }
}

impl ToTokens for Loc {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for span in [self.start, self.end] {
            let mut p = Punct::new('#', Spacing::Alone);
            p.set_span(span);
            tokens.extend([TokenTree::Punct(p)]);
        }
    }
}

/// Collects spanned errors during parsing and checking (the serde_derive pattern).
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
    deferred: Cell<bool>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Record an error at `loc` (a span, or a range from [`Loc::of`]).
    pub(crate) fn error(&self, loc: impl Into<Loc>, msg: impl Display) {
        self.errors
            .borrow_mut()
            .push(syn::Error::new_spanned(loc.into(), msg));
    }

    /// Record an error spanning the given tokens.
    pub(crate) fn error_spanned(&self, tokens: impl ToTokens, msg: impl Display) {
        self.errors
            .borrow_mut()
            .push(syn::Error::new_spanned(tokens, msg));
    }

    /// Report `msg` on `tokens` if there are any; true when there are none (the rule holds).
    pub(crate) fn refuse(&self, tokens: Option<impl ToTokens>, msg: impl Display) -> bool {
        match tokens {
            Some(t) => {
                self.error_spanned(t, msg);
                false
            }
            None => true,
        }
    }

    /// Record an already built error.
    pub(crate) fn syn_error(&self, err: syn::Error) {
        self.errors.borrow_mut().push(err);
    }

    pub(crate) fn error_count(&self) -> usize {
        self.errors.borrow().len()
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.borrow().is_empty() || self.deferred.get()
    }

    /// The code is wrong in a way rustc itself reports well (a duplicate method name):
    /// generate no `Flow` impl, but add no message of our own.
    pub(crate) fn defer_to_rustc(&self) {
        self.deferred.set(true);
    }

    /// The messages collected so far (for unit tests).
    #[cfg(test)]
    pub(crate) fn messages(&self) -> Vec<String> {
        self.errors.borrow().iter().map(|e| e.to_string()).collect()
    }

    /// All collected errors as `compile_error!` invocations (empty if none).
    pub(crate) fn into_compile_errors(self) -> TokenStream {
        let errors = self.errors.into_inner();
        let mut out = TokenStream::new();
        for e in errors {
            out.extend(e.to_compile_error());
        }
        out
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate within a small edit distance, or the only one `name` abbreviates
/// (`mins` for `minutes`), if any.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let close = candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    close.or_else(|| {
        let prefix: String = name.chars().take(3).collect();
        let mut abbreviated = candidates
            .iter()
            .filter(|c| prefix.chars().count() == 3 && c.starts_with(&prefix) && **c != name);
        match (abbreviated.next(), abbreviated.next()) {
            (Some(c), None) => Some(*c),
            _ => None,
        }
    })
}

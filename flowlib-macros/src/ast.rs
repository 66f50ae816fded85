//! The intermediate representation of a `#[flow]` impl block: its steps, their
//! attributes and their signatures, keeping the original syntax nodes for spans.

use quote::ToTokens;
use syn::{FnArg, Ident, ImplItem, ItemImpl, ReturnType, Type};

use crate::attr::{parse_step_attrs, StepAttrs};
use crate::ctxt::{Ctxt, Loc};

/// One parameter of a step method (besides `&mut self`), in declaration order.
pub(crate) enum StepArg {
    /// `ctx: &mut Ctx` (or `&Ctx`).
    Ctx { loc: Loc },
    /// `inputs: Inputs<Self>`: the step is a join.
    Inputs { loc: Loc },
    /// The foreach item: `item: &T` (by reference) or `item: T` (cloned).
    Item {
        /// `T`, without the reference.
        elem: Box<Type>,
        by_ref: bool,
        /// The parameter's whole type.
        loc: Loc,
    },
}

/// One `#[step]` method.
pub(crate) struct Step {
    pub ident: Ident,
    pub name: String,
    pub attrs: StepAttrs,
    pub args: Vec<StepArg>,
    /// The declared return type (`None` for `()`).
    pub output: Option<Type>,
    /// The signature is one generated code can call (its own errors are reported).
    pub callable: bool,
    pub doc: String,
    /// The fields the body can observe or change through `self.field`; `None` when `self`
    /// is used any other way (passed along, a method call, `{self:?}`...), i.e. possibly
    /// every field. Fields outside the set are neither loaded nor stored by the task.
    pub uses: Option<Vec<String>>,
    /// For `#[cache]` steps: the step's code as tokens (signature and body; hashed into the
    /// task's cache key at run time) and whether the body reads its position
    /// (`ctx.index()`, `ctx.index_path()`, `ctx.task_id()`), which then joins the key.
    pub cache: Option<CacheCode>,
}

/// What the cache key takes from a `#[cache]` step's source.
pub(crate) struct CacheCode {
    pub tokens: String,
    pub position: bool,
}

impl Step {
    pub(crate) fn inputs_loc(&self) -> Option<Loc> {
        self.args.iter().find_map(|a| match a {
            StepArg::Inputs { loc } => Some(*loc),
            _ => None,
        })
    }

    /// The foreach item parameter: its element type, whether it is taken by reference, and
    /// where its type is.
    pub(crate) fn item(&self) -> Option<(&Type, bool, Loc)> {
        self.args.iter().find_map(|a| match a {
            StepArg::Item { elem, by_ref, loc } => Some((&**elem, *by_ref, *loc)),
            _ => None,
        })
    }

    /// Where to point at the step as a whole: its `#[step]` attribute, or its name.
    pub(crate) fn loc(&self) -> Loc {
        self.attrs.step.unwrap_or_else(|| self.ident.span().into())
    }
}

/// The whole flow.
pub(crate) struct FlowIr {
    pub self_ty: Type,
    pub flow_name: String,
    pub steps: Vec<Step>,
    /// Methods of the impl block that are not steps, and whether they carry a step
    /// attribute other than `#[step]` (that mistake is already reported).
    pub other_methods: Vec<(String, bool)>,
    /// The impl block is one a `Flow` impl can be generated for (an inherent, non-generic
    /// impl of a named type); when false, that problem is the error to report.
    pub implementable: bool,
}

/// Names a step may not take: they would shadow the items `#[flow]` and
/// `#[derive(FlowState)]` generate on the type, or clash with the CLI.
pub(crate) const RESERVED_STEP_NAMES: &[&str] = &[
    "graph", "load", "main", "run", "runs", "resume", "step", "steps", "show", "check", "dump",
    "verify", "gc", "flow", "name", "params", "inputs", "input", "ctx", "index", "task", "_",
];

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

fn is_named(ty: &Type, name: &str) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == name)
}

fn doc_of(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &attr.meta {
            if let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
            {
                lines.push(s.value().trim().to_string());
            }
        }
    }
    lines.join("\n").trim().to_string()
}

pub(crate) fn doc_of_attrs(attrs: &[syn::Attribute]) -> String {
    doc_of(attrs)
}

/// Build the IR from the impl block. Problems are recorded in `cx`.
pub(crate) fn parse_flow(cx: &Ctxt, item: &ItemImpl) -> FlowIr {
    let (flow_name, implementable) = flow_name(cx, item);
    let mut steps: Vec<Step> = Vec::new();
    let mut other_methods = Vec::new();
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let attrs = parse_step_attrs(cx, &method.attrs);
        if attrs.step.is_none() {
            other_methods.push(other_method(cx, method, &attrs));
            continue;
        }
        let name = method.sig.ident.to_string();
        let raw_name = name.strip_prefix("r#").unwrap_or(&name).to_string();
        if steps.iter().any(|s| s.name == raw_name) {
            // rustc reports the duplicate method itself (E0592), pointing at both.
            cx.defer_to_rustc();
            continue;
        }
        steps.push(parse_step(cx, method, attrs, raw_name));
    }

    if steps.is_empty() {
        cx.error_spanned(
            &item.self_ty,
            "a flow needs steps: mark methods with `#[step(start, next = ...)]`, `#[step(next = ...)]` and `#[step(end)]`",
        );
    }

    FlowIr {
        self_ty: (*item.self_ty).clone(),
        flow_name,
        steps,
        other_methods,
        implementable,
    }
}

/// The flow's type name, and whether a `Flow` impl can be generated for the block.
fn flow_name(cx: &Ctxt, item: &ItemImpl) -> (String, bool) {
    let mut implementable = cx.refuse(
        item.trait_.as_ref().map(|(_, path, _)| path),
        "`#[flow]` goes on an inherent impl block (`impl MyFlow { ... }`), not a trait impl",
    );
    implementable &= cx.refuse(
        (!item.generics.params.is_empty()).then_some(&item.generics),
        "a flow cannot be generic: remove the type parameters",
    );
    let flow_name = match last_segment(&item.self_ty) {
        Some(s) => s.ident.to_string(),
        None => {
            cx.error_spanned(
                &item.self_ty,
                "`#[flow]` needs a named struct type: `impl MyFlow { ... }`",
            );
            implementable = false;
            String::from("Flow")
        }
    };
    (flow_name, implementable)
}

/// A method without `#[step]`: its name, and whether it carries step attributes (an error,
/// reported here).
fn other_method(cx: &Ctxt, method: &syn::ImplItemFn, attrs: &StepAttrs) -> (String, bool) {
    for (name, loc) in &attrs.other_attrs {
        cx.error(
            *loc,
            format!(
                "`#[{name}]` only applies to steps: add `#[step(...)]` to `{}`",
                method.sig.ident
            ),
        );
    }
    let name = method.sig.ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name).to_string();
    (name, !attrs.other_attrs.is_empty())
}

fn parse_step(cx: &Ctxt, method: &syn::ImplItemFn, attrs: StepAttrs, raw_name: String) -> Step {
    let sig = &method.sig;
    step_name_is_not_reserved(cx, sig, &raw_name);
    let mut callable = plain_fn(cx, sig);
    let (args, args_ok) = parse_args(cx, sig, &raw_name);
    callable &= args_ok;
    callable &= at_most_one_of_each_arg(cx, &args);
    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some((**ty).clone()),
    };
    let attrs_cache = CacheAttrs {
        cache: attrs.cache.as_ref().map(|c| c.loc),
        checkpoint: attrs.checkpoint_loc,
    };
    Step {
        ident: sig.ident.clone(),
        name: raw_name,
        attrs,
        args,
        output,
        callable,
        doc: doc_of(&method.attrs),
        uses: self_field_uses(method.block.to_token_stream()),
        cache: cache_code(cx, method, &attrs_cache),
    }
}

/// The rules of `#[cache]` (a cached step is deterministic by declaration: no
/// `#[checkpoint]`, no `ctx.attempt()`) and what its key takes from the source.
fn cache_code(cx: &Ctxt, method: &syn::ImplItemFn, attrs: &CacheAttrs) -> Option<CacheCode> {
    let cache = attrs.cache?;
    if attrs.checkpoint.is_some() {
        cx.error(
            cache,
            "a `#[cache]` step cannot also be `#[checkpoint]`: a checkpointed step resumes from saved progress, so its result is not a function of its inputs alone; remove one of them",
        );
    }
    let body = method.block.to_token_stream();
    if let Some(call) = method_call(body.clone(), "attempt") {
        cx.error(
            call,
            "a `#[cache]` step cannot read `ctx.attempt()`: its result would depend on the attempt number, and a cached result is reused by every attempt of every later run; remove `#[cache]` or the call",
        );
    }
    let position = ["index", "index_path", "task_id"]
        .iter()
        .any(|m| method_call(body.clone(), m).is_some());
    let mut tokens = method.sig.to_token_stream().to_string();
    tokens.push(' ');
    tokens.push_str(&body.to_string());
    Some(CacheCode { tokens, position })
}

/// The `#[cache]` and `#[checkpoint]` attributes of a step, by location.
struct CacheAttrs {
    cache: Option<Loc>,
    checkpoint: Option<Loc>,
}

/// The first `.name(` method call in `ts`, by the span of `name`.
fn method_call(ts: proc_macro2::TokenStream, name: &str) -> Option<proc_macro2::Span> {
    use proc_macro2::{Delimiter, TokenTree};
    let tokens: Vec<TokenTree> = ts.into_iter().collect();
    for (i, tt) in tokens.iter().enumerate() {
        match tt {
            TokenTree::Ident(id) if id == name => {
                let dot =
                    i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '.');
                let call = matches!(tokens.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis);
                if dot && call {
                    return Some(id.span());
                }
            }
            TokenTree::Group(g) => {
                if let Some(s) = method_call(g.stream(), name) {
                    return Some(s);
                }
            }
            _ => {}
        }
    }
    None
}

fn step_name_is_not_reserved(cx: &Ctxt, sig: &syn::Signature, raw_name: &str) {
    if RESERVED_STEP_NAMES.contains(&raw_name) || raw_name.starts_with("__") {
        cx.error(
            sig.ident.span(),
            format!(
                "`{raw_name}` is a reserved name and cannot be a step: rename the method (reserved: {}, and names starting with `__`)",
                RESERVED_STEP_NAMES.join(", ")
            ),
        );
    }
}

/// A step is a plain function: not async, generic, unsafe or variadic.
fn plain_fn(cx: &Ctxt, sig: &syn::Signature) -> bool {
    let mut ok = cx.refuse(
        sig.asyncness.as_ref(),
        "steps cannot be `async`: remove `async` and use a runtime inside the step if you need async I/O",
    );
    ok &= cx.refuse(
        (!sig.generics.params.is_empty()).then_some(&sig.generics),
        "steps cannot be generic: remove the type parameters",
    );
    ok &= cx.refuse(
        sig.unsafety.as_ref(),
        "steps cannot be `unsafe fn`: remove `unsafe`",
    );
    ok &= cx.refuse(sig.variadic.as_ref(), "steps cannot be variadic");
    ok
}

/// The parameters besides `self`, and whether generated code can pass them all.
fn parse_args(cx: &Ctxt, sig: &syn::Signature, raw_name: &str) -> (Vec<StepArg>, bool) {
    let mut args = Vec::new();
    let mut ok = true;
    let mut has_self = false;
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                has_self = true;
                ok &= receiver_is_mut_self(cx, r);
            }
            FnArg::Typed(pt) => {
                let (arg, arg_ok) = parse_typed_arg(cx, &pt.ty);
                args.extend(arg);
                ok &= arg_ok;
            }
        }
    }
    if !has_self {
        cx.error(
            sig.ident.span(),
            format!("a step takes `&mut self`: write `fn {raw_name}(&mut self, ...)`"),
        );
        ok = false;
    }
    (args, ok)
}

fn receiver_is_mut_self(cx: &Ctxt, r: &syn::Receiver) -> bool {
    // `ty` is always filled in: `&mut Self` for both `&mut self` and `self: &mut Self`.
    let mut_ref =
        matches!(&*r.ty, Type::Reference(t) if t.mutability.is_some() && is_named(&t.elem, "Self"));
    if !mut_ref {
        cx.error_spanned(
            r,
            "a step takes `&mut self`: the step reads and writes the flow's artifacts through it",
        );
    }
    mut_ref
}

/// What a typed parameter is, if anything, and whether generated code can pass it.
fn parse_typed_arg(cx: &Ctxt, ty: &Type) -> (Option<StepArg>, bool) {
    let loc = Loc::of(ty);
    match ty {
        Type::ImplTrait(_) => {
            cx.error(
                loc,
                "steps cannot be generic: name a concrete type instead of `impl Trait`",
            );
            (None, false)
        }
        Type::Reference(r) if is_named(&r.elem, "Ctx") => (Some(StepArg::Ctx { loc }), true),
        _ if is_named(ty, "Inputs") => (Some(StepArg::Inputs { loc }), true),
        _ if is_named(ty, "Ctx") => {
            cx.error(loc, "take the context by reference: `ctx: &mut Ctx`");
            (None, false)
        }
        Type::Reference(r) => {
            let read_only = r.mutability.is_none();
            if !read_only {
                cx.error(loc, "the foreach item is read-only: take it as `&T` or `T`");
            }
            let item = StepArg::Item {
                elem: r.elem.clone(),
                by_ref: true,
                loc,
            };
            (Some(item), read_only)
        }
        _ => {
            let item = StepArg::Item {
                elem: Box::new(ty.clone()),
                by_ref: false,
                loc,
            };
            (Some(item), true)
        }
    }
}

fn at_most_one_of_each_arg(cx: &Ctxt, args: &[StepArg]) -> bool {
    let mut ok = true;
    let extra = |f: fn(&StepArg) -> bool| args.iter().filter(|a| f(a)).nth(1).map(arg_loc);
    if let Some(loc) = extra(|a| matches!(a, StepArg::Ctx { .. })) {
        cx.error(
            loc,
            "a step takes at most one `&mut Ctx`: remove this parameter",
        );
        ok = false;
    }
    if let Some(loc) = extra(|a| matches!(a, StepArg::Inputs { .. })) {
        cx.error(
            loc,
            "a step takes at most one `Inputs<Self>`: remove this parameter",
        );
        ok = false;
    }
    if let Some(loc) = extra(|a| matches!(a, StepArg::Item { .. })) {
        cx.error(
            loc,
            "a step takes at most one foreach item parameter (besides `ctx: &mut Ctx` or `inputs: Inputs<Self>`): remove this parameter",
        );
        ok = false;
    }
    ok
}

fn arg_loc(arg: &StepArg) -> Loc {
    match arg {
        StepArg::Ctx { loc } | StepArg::Inputs { loc } | StepArg::Item { loc, .. } => *loc,
    }
}

/// The field names a method body reaches through `self.<field>`; `None` if `self` is used
/// in any other way. Token-level and conservative: anything that is not plainly a field
/// access (a method call on `self`, `self` passed or matched as a whole, `self` captured by
/// a format string) means "every field".
pub(crate) fn self_field_uses(body: proc_macro2::TokenStream) -> Option<Vec<String>> {
    use proc_macro2::{Delimiter, TokenTree};
    fn scan(
        ts: proc_macro2::TokenStream,
        out: &mut std::collections::BTreeSet<String>,
    ) -> Option<()> {
        let tokens: Vec<TokenTree> = ts.into_iter().collect();
        for (i, tt) in tokens.iter().enumerate() {
            match tt {
                TokenTree::Ident(id) if id == "self" => {
                    let dot = matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '.');
                    let field = match tokens.get(i + 2) {
                        Some(TokenTree::Ident(f)) if dot => f.to_string(),
                        _ => return None,
                    };
                    // `self.f(...)` or `self.f::<T>(...)` is a method call: it may touch anything.
                    match tokens.get(i + 3) {
                        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => {
                            return None
                        }
                        Some(TokenTree::Punct(p)) if p.as_char() == ':' => return None,
                        _ => {}
                    }
                    out.insert(field.strip_prefix("r#").unwrap_or(&field).to_string());
                }
                TokenTree::Group(g) => scan(g.stream(), out)?,
                // `format!("{self:?}")` captures `self` from inside a string.
                TokenTree::Literal(l) => {
                    let text = l.to_string();
                    if text.contains("{self") {
                        return None;
                    }
                }
                _ => {}
            }
        }
        Some(())
    }
    let mut out = std::collections::BTreeSet::new();
    scan(body, &mut out)?;
    Some(out.into_iter().collect())
}

#[cfg(test)]
mod uses_tests {
    use super::self_field_uses;
    use quote::quote;

    fn uses(ts: proc_macro2::TokenStream) -> Option<Vec<String>> {
        self_field_uses(ts)
    }

    #[test]
    fn field_accesses_are_collected() {
        assert_eq!(
            uses(quote!({
                self.a = self.b.len() + self.c.iter().count();
                let x = |v| self.r#d + v;
                println!("{}", self.e);
            })),
            Some(vec![
                "a".into(),
                "b".into(),
                "c".into(),
                "d".into(),
                "e".into()
            ])
        );
        assert_eq!(uses(quote!({ Ok(()) })), Some(vec![]));
    }

    #[test]
    fn anything_else_means_every_field() {
        assert_eq!(uses(quote!({ self.helper() })), None);
        assert_eq!(uses(quote!({ self.helper::<u8>() })), None);
        assert_eq!(uses(quote!({ Self::helper(self) })), None);
        assert_eq!(
            uses(quote!({
                let s = &mut *self;
            })),
            None
        );
        assert_eq!(
            uses(quote!({
                let Self { a, .. } = self;
            })),
            None
        );
        assert_eq!(
            uses(quote!({
                println!("{self:?}");
            })),
            None
        );
        assert_eq!(
            uses(quote!({
                std::mem::take(self);
            })),
            None
        );
    }
}

//! The intermediate representation of a `#[flow]` impl block: its steps, their
//! attributes and their signatures, keeping the original syntax nodes for spans.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ImplItem, ItemImpl, Pat, Type};

use crate::attr::{parse_step_attrs, StepAttrs};
use crate::ctxt::Ctxt;

/// One parameter of a step method (besides `&mut self`), in declaration order.
pub(crate) enum StepArg {
    /// `ctx: &mut Ctx` (or `&Ctx`).
    Ctx,
    /// `inputs: Inputs<Self>`: the step is a join.
    Inputs { span: Span },
    /// The foreach item: `item: &T` (by reference) or `item: T` (cloned).
    Item {
        /// `T`, without the reference.
        elem: Type,
        by_ref: bool,
        span: Span,
    },
}

/// One `#[step]` method.
pub(crate) struct Step {
    pub ident: Ident,
    pub name: String,
    pub attrs: StepAttrs,
    pub args: Vec<StepArg>,
    pub doc: String,
}

impl Step {
    pub(crate) fn inputs_span(&self) -> Option<Span> {
        self.args.iter().find_map(|a| match a {
            StepArg::Inputs { span } => Some(*span),
            _ => None,
        })
    }

    pub(crate) fn item(&self) -> Option<(&Type, bool, Span)> {
        self.args.iter().find_map(|a| match a {
            StepArg::Item { elem, by_ref, span } => Some((elem, *by_ref, *span)),
            _ => None,
        })
    }

    /// Span used to point at the step as a whole: its `#[step]` attribute, or its name.
    pub(crate) fn span(&self) -> Span {
        self.attrs.step.unwrap_or_else(|| self.ident.span())
    }
}

/// The whole flow.
pub(crate) struct FlowIr {
    pub self_ty: Type,
    pub flow_name: String,
    pub steps: Vec<Step>,
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
    if let Some((_, path, _)) = &item.trait_ {
        cx.error_spanned(
            path,
            "`#[flow]` goes on an inherent impl block (`impl MyFlow { ... }`), not a trait impl",
        );
    }
    if !item.generics.params.is_empty() {
        cx.error_spanned(&item.generics, "a flow cannot be generic");
    }
    let flow_name = last_segment(&item.self_ty)
        .map(|s| s.ident.to_string())
        .unwrap_or_else(|| {
            cx.error_spanned(&item.self_ty, "`#[flow]` needs a named struct type");
            String::from("Flow")
        });

    let mut steps: Vec<Step> = Vec::new();
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let attrs = parse_step_attrs(cx, &method.attrs);
        if attrs.step.is_none() {
            for (name, span) in &attrs.other_attrs {
                cx.error(
                    *span,
                    format!(
                        "`#[{name}]` only applies to steps: add `#[step(...)]` to `{}`",
                        method.sig.ident
                    ),
                );
            }
            continue;
        }
        let sig = &method.sig;
        let name = sig.ident.to_string();
        let raw_name = name.strip_prefix("r#").unwrap_or(&name).to_string();

        if RESERVED_STEP_NAMES.contains(&raw_name.as_str()) || raw_name.starts_with("__") {
            cx.error(
                sig.ident.span(),
                format!(
                    "`{raw_name}` is a reserved name and cannot be a step; reserved: {}, and names starting with `__`",
                    RESERVED_STEP_NAMES.join(", ")
                ),
            );
        }
        if let Some(prev) = steps.iter().find(|s| s.name == raw_name) {
            let mut e = syn::Error::new(
                sig.ident.span(),
                format!("duplicate step name `{raw_name}`"),
            );
            e.combine(syn::Error::new(prev.ident.span(), "first defined here"));
            cx.syn_error(e);
            continue;
        }
        if let Some(a) = &sig.asyncness {
            cx.error(
                a.span(),
                "steps cannot be `async`; use a runtime inside the step if you need async I/O",
            );
        }
        if !sig.generics.params.is_empty() {
            cx.error_spanned(&sig.generics, "steps cannot be generic");
        }
        if let Some(u) = &sig.unsafety {
            cx.error(u.span(), "steps cannot be `unsafe fn`");
        }

        let mut args = Vec::new();
        let mut has_self = false;
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => {
                    has_self = true;
                    if r.reference.is_none() || r.mutability.is_none() {
                        cx.error_spanned(r, "a step takes `&mut self`: the step reads and writes the flow's artifacts through it");
                    }
                }
                FnArg::Typed(pt) => {
                    if let Pat::Ident(pi) = &*pt.pat {
                        let _ = &pi.ident;
                    }
                    let ty = &*pt.ty;
                    match ty {
                        Type::Reference(r) if is_named(&r.elem, "Ctx") => args.push(StepArg::Ctx),
                        _ if is_named(ty, "Inputs") => {
                            args.push(StepArg::Inputs { span: pt.span() })
                        }
                        _ if is_named(ty, "Ctx") => {
                            cx.error_spanned(ty, "take the context by reference: `ctx: &mut Ctx`");
                        }
                        Type::Reference(r) => {
                            if r.mutability.is_some() {
                                cx.error_spanned(
                                    ty,
                                    "the foreach item is read-only: take it as `&T` or `T`",
                                );
                            }
                            args.push(StepArg::Item {
                                elem: (*r.elem).clone(),
                                by_ref: true,
                                span: ty.span(),
                            });
                        }
                        _ => args.push(StepArg::Item {
                            elem: ty.clone(),
                            by_ref: false,
                            span: ty.span(),
                        }),
                    }
                }
            }
        }
        if !has_self {
            cx.error(sig.ident.span(), "a step takes `&mut self`");
        }
        let counts = |f: fn(&StepArg) -> bool| args.iter().filter(|a| f(a)).count();
        if counts(|a| matches!(a, StepArg::Ctx)) > 1 {
            cx.error(sig.ident.span(), "a step takes at most one `&mut Ctx`");
        }
        if counts(|a| matches!(a, StepArg::Inputs { .. })) > 1 {
            cx.error(sig.ident.span(), "a step takes at most one `Inputs<Self>`");
        }
        let items: Vec<Span> = args
            .iter()
            .filter_map(|a| match a {
                StepArg::Item { span, .. } => Some(*span),
                _ => None,
            })
            .collect();
        if items.len() > 1 {
            cx.error(
                items[1],
                "a step takes at most one foreach item parameter (besides `ctx: &mut Ctx` or `inputs: Inputs<Self>`)",
            );
        }

        steps.push(Step {
            ident: sig.ident.clone(),
            name: raw_name,
            attrs,
            args,
            doc: doc_of(&method.attrs),
        });
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
    }
}

//! Code generation for `#[flow]`: the `Flow` impl (graph spec and step dispatch), and the
//! glue functions that make rustc report field and type mistakes at the user's code.
//!
//! Everything is generated inside one `const _: () = { ... };` block:
//!
//! - one accessor per `foreach` step (`__flowlib_foreach_N`), the only code that touches
//!   the foreach field: a missing field, a field that is not iterable or an item type that
//!   differs from the element type is reported once, on the user's tokens;
//! - one setter per `#[catch(field = ...)]` (`__flowlib_catch_N`), likewise;
//! - one dispatch function per step (`__flowlib_step_N`), which checks the return type;
//! - the `Flow` impl, calling only those functions. When the flow has errors it is a
//!   stub, so code using the flow (`flowlib::main::<MyFlow>`) reports nothing more.
//!
//! The functions are generated even when the graph is invalid, so type mistakes are
//! reported together with graph mistakes.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{ItemImpl, Type};

use crate::ast::{FlowIr, Step, StepArg};
use crate::check::{Analysis, FrameKind};
use crate::ctxt::Loc;

/// The user's impl block with our method attributes removed.
pub(crate) fn strip_step_attrs(mut item: ItemImpl) -> ItemImpl {
    for impl_item in &mut item.items {
        if let syn::ImplItem::Fn(m) = impl_item {
            m.attrs.retain(|a| !crate::attr::is_step_attr(a));
        }
    }
    item
}

/// The user's type tokens with `Self` replaced by the flow type, so they can be used
/// outside the impl block. The replacement keeps the span of `Self`.
fn without_self(ty: &Type, self_ty: &Type) -> TokenStream {
    fn walk(ts: TokenStream, self_ty: &Type) -> TokenStream {
        ts.into_iter()
            .flat_map(|tt| -> Vec<TokenTree> {
                match tt {
                    TokenTree::Ident(i) if i == "Self" => {
                        let span = i.span();
                        respan(self_ty.to_token_stream(), span)
                            .into_iter()
                            .collect()
                    }
                    TokenTree::Group(g) => {
                        let mut ng = Group::new(g.delimiter(), walk(g.stream(), self_ty));
                        ng.set_span(g.span());
                        vec![TokenTree::Group(ng)]
                    }
                    other => vec![other],
                }
            })
            .collect()
    }
    walk(ty.to_token_stream(), self_ty)
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), respan(g.stream(), span));
                ng.set_span(span);
                TokenTree::Group(ng)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// The foreach step whose `next` is `consumer` (from the IR, so also for invalid graphs).
fn foreach_source(ir: &FlowIr, consumer: &Step) -> Option<usize> {
    ir.steps.iter().position(|s| {
        s.attrs.foreach.is_some() && s.attrs.next.iter().any(|n| *n == consumer.name.as_str())
    })
}

/// The step run for each item of foreach step `i` that takes the item as a parameter.
fn item_consumer(ir: &FlowIr, i: usize) -> Option<&Step> {
    ir.steps[i]
        .attrs
        .next
        .iter()
        .filter_map(|n| ir.steps.iter().find(|s| *n == s.name.as_str()))
        .find(|s| s.item().is_some() && foreach_source(ir, s) == Some(i))
}

/// Everything `#[flow]` generates besides the user's impl block. `an` is the analysis of a
/// valid flow; without it the `Flow` impl is a stub that never runs.
pub(crate) fn expand(ir: &FlowIr, an: Option<&Analysis>) -> TokenStream {
    let mut helpers = TokenStream::new();
    if ir.steps.iter().any(|s| s.attrs.foreach.is_some()) {
        helpers.extend(foreach_helpers());
    }
    let has_catch_field = ir
        .steps
        .iter()
        .any(|s| s.attrs.catch.as_ref().is_some_and(|c| c.field.is_some()));
    if has_catch_field {
        helpers.extend(catch_helper());
    }

    let mut fns = TokenStream::new();
    for (i, step) in ir.steps.iter().enumerate() {
        if let Some(field) = &step.attrs.foreach {
            fns.extend(foreach_fn(ir, i, step, field));
        }
        if let Some(field) = step.attrs.catch.as_ref().and_then(|c| c.field.as_ref()) {
            fns.extend(catch_fn(ir, i, field));
        }
        if let Some(f) = dispatch_fn(ir, i, step) {
            fns.extend(f);
        }
    }

    let flow_impl = match an {
        Some(an) => flow_impl(ir, an),
        None => stub_flow_impl(ir),
    };

    quote! {
        #[doc(hidden)]
        #[allow(
            dead_code,
            unused_variables,
            unused_mut,
            unreachable_code,
            non_snake_case,
            non_camel_case_types,
            clippy::all
        )]
        const _: () = {
            #helpers
            #fns
            #flow_impl
        };
    }
}

/// The traits the foreach accessors go through.
fn foreach_helpers() -> TokenStream {
    // Local traits over `ForeachField`: with `do_not_recommend`, a field that is not
    // iterable is reported as one error on the field with this message, instead of the
    // nested `IntoIterator` bound of `ForeachField`'s blanket impl. The item type is a
    // trait parameter, not an associated type, so that no projection of a non-iterable
    // type is left to fail a second time.
    let on_unimplemented = quote! {
        #[diagnostic::on_unimplemented(
            message = "`foreach` cannot iterate over a field of type `{Self}`",
            label = "not iterable by reference",
            note = "a foreach field must yield `&T` items when iterated by reference: Vec<T>, [T; N], VecDeque<T>, BTreeSet<T>, ..."
        )]
    };
    // In a module, so that these names cannot capture the user's types in the tokens
    // interpolated into this block.
    quote! {
        mod __flowlib {
            #on_unimplemented
            pub trait ForeachField<T> {
                fn __flowlib_len(&self) -> usize;
                fn __flowlib_item(&self, index: usize, name: &'static str) -> ::core::result::Result<T, ::flowlib::__private::StepError>;
            }
            #[diagnostic::do_not_recommend]
            impl<F: ::flowlib::__private::ForeachField + ?::core::marker::Sized> ForeachField<<F as ::flowlib::__private::ForeachField>::Item> for F {
                fn __flowlib_len(&self) -> usize {
                    ::flowlib::__private::foreach_len(self)
                }
                fn __flowlib_item(&self, index: usize, name: &'static str) -> ::core::result::Result<<F as ::flowlib::__private::ForeachField>::Item, ::flowlib::__private::StepError> {
                    ::flowlib::__private::foreach_item(self, index, name)
                }
            }
            #on_unimplemented
            pub trait ForeachLen {
                fn __flowlib_len(&self) -> usize;
            }
            #[diagnostic::do_not_recommend]
            impl<F: ::flowlib::__private::ForeachField + ?::core::marker::Sized> ForeachLen for F {
                fn __flowlib_len(&self) -> usize {
                    ::flowlib::__private::foreach_len(self)
                }
            }
        }
    }
}

/// The function the catch setters share.
fn catch_helper() -> TokenStream {
    quote! {
        fn __flowlib_set_caught<F: 'static>(field: &mut F, message: &str) {
            if let ::core::option::Option::Some(f) = (field as &mut dyn ::core::any::Any)
                .downcast_mut::<::core::option::Option<::std::string::String>>()
            {
                *f = ::core::option::Option::Some(::std::string::String::from(message));
            }
        }
    }
}

/// The foreach accessor of split step `i` over `field`: with no index, the field's length;
/// with one, the item at that index as the consumer's type.
/// Its local `fn foreach` carries its bound on the user's `foreach` key, so that rustc's
/// "required by a bound in `foreach`" note points there.
fn foreach_fn(ir: &FlowIr, i: usize, step: &Step, field: &syn::Ident) -> TokenStream {
    let self_ty = &ir.self_ty;
    let name = format_ident!("__flowlib_foreach_{}", i);
    let field_name = field.to_string();
    let field_name = field_name.strip_prefix("r#").unwrap_or(&field_name);
    let key = step.attrs.foreach_key.unwrap_or_else(|| field.span());
    let call = quote_spanned! {field.span()=>
        foreach(&__state.#field, __index, #field_name)
    };
    match item_consumer(ir, i).and_then(|c| c.item()) {
        Some((elem, by_ref, _)) => {
            foreach_item_fn(self_ty, &name, key, &call, &owned_item(elem, by_ref))
        }
        None => foreach_len_fn(self_ty, &name, key, &call),
    }
}

/// The owned item type behind a by-reference item parameter: `&str` borrows a `String`
/// item and `&[T]` a `Vec<T>` one (the call passes `&item`, which derefs to them); any
/// other `&T` borrows a `T`.
fn owned_item(elem: &syn::Type, by_ref: bool) -> syn::Type {
    let span = elem.span();
    match elem {
        syn::Type::Path(p) if by_ref && p.qself.is_none() && p.path.is_ident("str") => {
            syn::parse_quote_spanned!(span=> ::std::string::String)
        }
        syn::Type::Slice(s) if by_ref => {
            let inner = &s.elem;
            syn::parse_quote_spanned!(span=> ::std::vec::Vec<#inner>)
        }
        _ => elem.clone(),
    }
}

/// The accessor of a foreach whose consumer takes the item as `elem`.
fn foreach_item_fn(
    self_ty: &syn::Type,
    name: &syn::Ident,
    key: Span,
    call: &TokenStream,
    elem: &syn::Type,
) -> TokenStream {
    let bound = quote_spanned!(key=> __flowlib::ForeachField<T>);
    let foreach = quote_spanned!(key=> foreach);
    let elem_span = Loc::of(elem).start;
    let elem = without_self(elem, self_ty);
    // `let x: T = x` on the user's item type: an element type that differs is
    // reported there as "expected `T`, found `U`".
    let check = quote_spanned! {elem_span=>
        let __x: #elem = __x;
    };
    quote! {
        fn #name(
            __state: &#self_ty,
            __index: ::core::option::Option<usize>,
        ) -> (usize, ::core::option::Option<::core::result::Result<#elem, ::flowlib::__private::StepError>>) {
            fn #foreach<F: #bound + ?::core::marker::Sized, T>(
                field: &F,
                index: ::core::option::Option<usize>,
                name: &'static str,
            ) -> (usize, ::core::option::Option<::core::result::Result<T, ::flowlib::__private::StepError>>) {
                // The length only when asked for: counting may walk the collection.
                match index {
                    ::core::option::Option::None => (field.__flowlib_len(), ::core::option::Option::None),
                    ::core::option::Option::Some(i) => (0, ::core::option::Option::Some(field.__flowlib_item(i, name))),
                }
            }
            let (__len, __item) = #call;
            (__len, __item.map(|__r| __r.map(|__x| { #check __x })))
        }
    }
}

/// The accessor of a foreach whose consumer takes no item: the length only.
fn foreach_len_fn(
    self_ty: &syn::Type,
    name: &syn::Ident,
    key: Span,
    call: &TokenStream,
) -> TokenStream {
    let bound = quote_spanned!(key=> __flowlib::ForeachLen);
    let foreach = quote_spanned!(key=> foreach);
    quote! {
        fn #name(
            __state: &#self_ty,
            __index: ::core::option::Option<usize>,
        ) -> (usize, ::core::option::Option<::core::result::Result<(), ::flowlib::__private::StepError>>) {
            fn #foreach<F: #bound + ?::core::marker::Sized>(
                field: &F,
                index: ::core::option::Option<usize>,
                _: &'static str,
            ) -> (usize, ::core::option::Option<::core::result::Result<(), ::flowlib::__private::StepError>>) {
                match index {
                    ::core::option::Option::None => (field.__flowlib_len(), ::core::option::Option::None),
                    ::core::option::Option::Some(_) => (0, ::core::option::Option::Some(::core::result::Result::Ok(()))),
                }
            }
            #call
        }
    }
}

/// The catch setter of step `i`, storing the error message in `field`.
fn catch_fn(ir: &FlowIr, i: usize, field: &syn::Ident) -> TokenStream {
    let self_ty = &ir.self_ty;
    let name = format_ident!("__flowlib_catch_{}", i);
    let body = quote_spanned! {field.span()=>
        let __field = &mut __state.#field;
        ::flowlib::__private::assert_catch_field(&*__field);
        __flowlib_set_caught(__field, __message);
    };
    quote! {
        fn #name(__state: &mut #self_ty, __message: &str) {
            #body
        }
    }
}

/// `fn __flowlib_step_N(__this, __call)`: fetch the arguments, call the step, convert its
/// result. `None` for a step generated code cannot call (its error is reported elsewhere).
fn dispatch_fn(ir: &FlowIr, i: usize, step: &Step) -> Option<TokenStream> {
    if !step.callable {
        return None;
    }
    let self_ty = &ir.self_ty;
    let ident = &step.ident;
    let name = format_ident!("__flowlib_step_{}", i);
    let mut lets = TokenStream::new();
    let mut ctx_let = TokenStream::new();
    let mut args = Vec::new();
    for arg in &step.args {
        match arg {
            StepArg::Ctx { loc } => {
                // Borrowed last: it holds `__call` until the step returns.
                ctx_let = quote!(let __ctx = __call.ctx(););
                args.push(quote_spanned!(loc.start=> __ctx));
            }
            StepArg::Inputs { loc } => {
                lets.extend(quote!(let __inputs = __call.take_inputs();));
                args.push(quote_spanned!(loc.start=> __inputs));
            }
            StepArg::Item { by_ref, loc, .. } => {
                let split = foreach_source(ir, step)?;
                let accessor = format_ident!("__flowlib_foreach_{}", split);
                lets.extend(quote! {
                    let __item = {
                        // The split's state decoded once per process when the executor has
                        // it, else this task's own copy of the field.
                        let __source = __call.item_source(&*__this);
                        match #accessor(&*__source, ::core::option::Option::Some(__call.item_index())).1 {
                            ::core::option::Option::Some(__r) => __r?,
                            ::core::option::Option::None => ::core::unreachable!(),
                        }
                    };
                });
                args.push(if *by_ref {
                    quote_spanned!(loc.start=> &__item)
                } else {
                    quote_spanned!(loc.start=> __item)
                });
            }
        }
    }
    // `<R as IntoStepResult>` on the user's return type: a wrong type is reported there.
    let convert = match &step.output {
        Some(ty @ (Type::Path(_) | Type::Tuple(_) | Type::Paren(_) | Type::Group(_))) => {
            let ty = without_self(ty, self_ty);
            quote!(<#ty as ::flowlib::__private::IntoStepResult>::into_step_result(__result))
        }
        Some(ty) => {
            let span = Loc::of(ty).start;
            quote_spanned!(span=> ::flowlib::__private::IntoStepResult::into_step_result(__result))
        }
        None => quote!(::flowlib::__private::IntoStepResult::into_step_result(
            __result
        )),
    };
    // Spanned on the step's name: a mistake in an argument is reported on the user's method.
    let call = quote_spanned!(ident.span()=> <#self_ty>::#ident(__this, #(#args),*));
    Some(quote! {
        fn #name(
            __this: &mut #self_ty,
            __call: &mut ::flowlib::__private::StepCall<'_, #self_ty>,
        ) -> ::core::result::Result<(), ::flowlib::__private::StepError> {
            #lets
            #ctx_let
            let __result = #call;
            #convert
        }
    })
}

/// The `Flow` impl of a flow with errors: it satisfies `F: Flow` bounds in the user's code
/// so that only the real mistakes are reported. It never runs: the crate does not compile.
fn stub_flow_impl(ir: &FlowIr) -> TokenStream {
    let self_ty = &ir.self_ty;
    let flow_name = &ir.flow_name;
    quote! {
        impl ::flowlib::__private::Flow for #self_ty {
            const NAME: &'static str = #flow_name;

            fn graph() -> &'static ::flowlib::__private::Graph {
                ::core::unreachable!("the flow has compile errors")
            }

            fn __run_step(
                &mut self,
                _: usize,
                _: &mut ::flowlib::__private::StepCall<'_, Self>,
            ) -> ::core::result::Result<(), ::flowlib::__private::StepError> {
                ::core::unreachable!("the flow has compile errors")
            }

            fn __foreach_len(&self, _: usize) -> ::core::option::Option<usize> {
                ::core::unreachable!("the flow has compile errors")
            }

            fn __set_caught(&mut self, _: usize, _: &str) {
                ::core::unreachable!("the flow has compile errors")
            }
        }
    }
}

/// `Some(value)` or `None`, as tokens.
fn option(value: Option<impl ToTokens>) -> TokenStream {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

/// A field name without its `r#`.
fn field_name(field: &syn::Ident) -> String {
    let f = field.to_string();
    f.strip_prefix("r#").unwrap_or(&f).to_string()
}

/// The `Flow` impl for a validated graph.
fn flow_impl(ir: &FlowIr, an: &Analysis) -> TokenStream {
    let self_ty = &ir.self_ty;
    let flow_name = &ir.flow_name;

    let mut step_defs = Vec::new();
    let mut arms = Vec::new();
    let mut foreach_arms = Vec::new();
    let mut catch_arms = Vec::new();
    let mut item_digest_arms = Vec::new();

    for (i, step) in ir.steps.iter().enumerate() {
        step_defs.push(step_def(ir, an, i, step));
        let a = &step.attrs;
        let step_fn = format_ident!("__flowlib_step_{}", i);
        arms.push(quote!(#i => #step_fn(self, __call),));
        if a.foreach.is_some() {
            let accessor = format_ident!("__flowlib_foreach_{}", i);
            foreach_arms.push(quote! {
                #i => ::core::option::Option::Some(#accessor(self, ::core::option::Option::None).0),
            });
        }
        // A cached step's key holds the digest of its foreach item (not its position).
        if let (Some(field), Some(_)) = (
            a.foreach.as_ref(),
            item_consumer(ir, i).and_then(|c| c.cache.as_ref()),
        ) {
            item_digest_arms.push(quote! {
                #i => ::core::option::Option::Some(::flowlib::__private::foreach_item_digest(&self.#field, __index)),
            });
        }
        if a.catch.as_ref().is_some_and(|c| c.field.is_some()) {
            let setter = format_ident!("__flowlib_catch_{}", i);
            catch_arms.push(quote!(#i => #setter(self, __message),));
        }
    }

    quote! {
        /// The fields through the `Flow` bound: without `#[derive(FlowState)]`, only the
        /// impl itself reports the missing supertrait.
        fn __flowlib_fields<F: ::flowlib::__private::Flow>() -> &'static [::flowlib::__private::FieldInfo] {
            F::FIELDS
        }

        impl ::flowlib::__private::Flow for #self_ty {
            const NAME: &'static str = #flow_name;

            fn graph() -> &'static ::flowlib::__private::Graph {
                static GRAPH: ::std::sync::OnceLock<::flowlib::__private::Graph> = ::std::sync::OnceLock::new();
                static STEPS: &[::flowlib::__private::StepDef] = &[#(#step_defs),*];
                GRAPH.get_or_init(|| ::flowlib::__private::build_graph(#flow_name, STEPS, __flowlib_fields::<Self>()))
            }

            fn __run_step(
                &mut self,
                __step: usize,
                __call: &mut ::flowlib::__private::StepCall<'_, Self>,
            ) -> ::core::result::Result<(), ::flowlib::__private::StepError> {
                match __step {
                    #(#arms)*
                    _ => ::core::result::Result::Err(::flowlib::__private::unknown_step(__step)),
                }
            }

            fn __foreach_len(&self, __step: usize) -> ::core::option::Option<usize> {
                match __step {
                    #(#foreach_arms)*
                    _ => ::core::option::Option::None,
                }
            }

            fn __foreach_item_digest(
                &self,
                __step: usize,
                __index: usize,
            ) -> ::core::option::Option<::core::result::Result<::flowlib::__private::Digest, ::std::string::String>> {
                match __step {
                    #(#item_digest_arms)*
                    _ => ::core::option::Option::None,
                }
            }

            fn __set_caught(&mut self, __step: usize, __message: &str) {
                match __step {
                    #(#catch_arms)*
                    _ => {}
                }
            }
        }
    }
}

/// The `StepDef` of step `i`: its place in the graph and its attributes.
fn step_def(ir: &FlowIr, an: &Analysis, i: usize, step: &Step) -> TokenStream {
    let name = &step.name;
    let doc = &step.doc;
    let a = &step.attrs;
    let start = a.start.is_some();
    let end = a.end.is_some();
    let next = &an.next[i];
    let preds = &an.preds[i];
    let foreach = option(a.foreach.as_ref().map(field_name));
    let join = option(an.closes[i].map(|frame| {
        let split = frame.split;
        let kind = match frame.kind {
            FrameKind::Foreach => quote!(::flowlib::__private::JoinKind::Foreach),
            FrameKind::Branch => quote!(::flowlib::__private::JoinKind::Branch),
        };
        quote!(::flowlib::__private::JoinDef { split: #split, kind: #kind })
    }));
    let closed_by = option(an.closed_by[i]);
    let depth = an.depth[i];
    let takes_item = step.item().is_some();
    let cpu = a.cpu.unwrap_or(1);
    let gpu = a.gpu.unwrap_or(0);
    let memory = option(a.memory);
    let retry = option(a.retry.as_ref().map(|r| {
        let (t, d, p) = (r.times, r.delay_ms, r.platform);
        quote!(::flowlib::__private::RetryDef { times: #t, delay_ms: #d, platform: #p })
    }));
    let timeout = option(a.timeout_ms);
    let catch = option(a.catch.as_ref().map(|c| {
        let field = option(c.field.as_ref().map(field_name));
        quote!(::flowlib::__private::CatchDef { field: #field })
    }));
    let checkpoint = a.checkpoint;
    let cache = option(step.cache.as_ref().map(|c| {
        let code = &c.tokens;
        let position = c.position;
        let version = option(a.cache.as_ref().and_then(|c| c.version.as_ref()));
        quote!(::flowlib::__private::CacheDef { code: #code, version: #version, position: #position })
    }));
    let slurm = option(a.slurm.as_ref().map(|s| {
        let partition = option(s.partition.as_ref());
        let account = option(s.account.as_ref());
        let qos = option(s.qos.as_ref());
        let constraint = option(s.constraint.as_ref());
        let time = option(s.time_ms);
        let extra = &s.extra;
        let max_parallel = option(s.max_parallel);
        quote!(::flowlib::__private::SlurmDef {
            partition: #partition,
            account: #account,
            qos: #qos,
            constraint: #constraint,
            time_ms: #time,
            extra: &[#(#extra),*],
            max_parallel: #max_parallel,
        })
    }));
    let kubernetes = option(a.kubernetes.as_ref().map(|k| {
        let image = option(k.image.as_ref());
        let namespace = option(k.namespace.as_ref());
        let service_account = option(k.service_account.as_ref());
        let gpu_vendor = option(k.gpu_vendor.as_ref());
        let max_parallel = option(k.max_parallel);
        let sel = k.node_selector.iter().map(|(a, b)| quote!((#a, #b)));
        let tol = k
            .tolerations
            .iter()
            .map(|(a, b, c, d)| quote!((#a, #b, #c, #d)));
        let secrets = &k.secrets;
        quote!(::flowlib::__private::KubernetesDef {
            image: #image,
            namespace: #namespace,
            service_account: #service_account,
            node_selector: &[#(#sel),*],
            tolerations: &[#(#tol),*],
            gpu_vendor: #gpu_vendor,
            secrets: &[#(#secrets),*],
            max_parallel: #max_parallel,
        })
    }));
    let batch = option(a.batch.as_ref().map(|b| {
        let queue = option(b.queue.as_ref());
        let job_definition = option(b.job_definition.as_ref());
        let image = option(b.image.as_ref());
        quote!(::flowlib::__private::BatchDef {
            queue: #queue,
            job_definition: #job_definition,
            image: #image,
        })
    }));
    // The fields the task must load and store: what the body touches through
    // `self.field`, plus what generated code reads (the foreach field of a split, the
    // source field of a foreach item).
    let uses = option(step.uses.as_ref().map(|u| quote!(&[#(#u),*])));
    // Read-only by generated code: the foreach field of a split (its length is taken
    // after the step), the source field of a foreach item.
    let own_foreach = option(a.foreach.as_ref().map(field_name));
    let item_source = option(
        step.item()
            .and_then(|_| foreach_source(ir, step))
            .and_then(|src| ir.steps[src].attrs.foreach.as_ref())
            .map(field_name),
    );
    quote! {
        ::flowlib::__private::StepDef {
            name: #name,
            doc: #doc,
            start: #start,
            end: #end,
            next: &[#(#next),*],
            preds: &[#(#preds),*],
            foreach: #foreach,
            join: #join,
            closed_by: #closed_by,
            depth: #depth,
            takes_item: #takes_item,
            resources: ::flowlib::__private::ResourcesDef { cpu: #cpu, memory: #memory, gpu: #gpu },
            retry: #retry,
            timeout_ms: #timeout,
            catch: #catch,
            checkpoint: #checkpoint,
            cache: #cache,
            slurm: #slurm,
            kubernetes: #kubernetes,
            batch: #batch,
            uses: #uses,
            foreach_read: #own_foreach,
            item_source: #item_source,
        }
    }
}

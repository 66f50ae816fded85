//! Code generation for `#[flow]`: the `Flow` impl (graph spec and step dispatch) and the
//! hidden type-check items that make rustc point at the user's code.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ItemImpl;

use crate::ast::{FlowIr, StepArg};
use crate::check::{Analysis, FrameKind};

/// The user's impl block with our method attributes removed.
pub(crate) fn strip_step_attrs(mut item: ItemImpl) -> ItemImpl {
    for impl_item in &mut item.items {
        if let syn::ImplItem::Fn(m) = impl_item {
            m.attrs.retain(|a| !crate::attr::is_step_attr(a));
        }
    }
    item
}

/// Type-check items that only need the IR (emitted even when the graph has errors, so
/// field and type mistakes are reported together with graph mistakes).
pub(crate) fn checks(ir: &FlowIr) -> TokenStream {
    let self_ty = &ir.self_ty;
    let mut body = TokenStream::new();
    for (i, step) in ir.steps.iter().enumerate() {
        if let Some(field) = &step.attrs.foreach {
            body.extend(quote_spanned! {field.span()=>
                ::flowlib::__private::assert_foreach_field(&__state.#field);
            });
            // The consumer's item type must be the field's element type.
            for consumer in &ir.steps {
                let Some((elem, _, _)) = consumer.item() else {
                    continue;
                };
                let targets_consumer = step.attrs.next.iter().any(|n| *n == consumer.name.as_str());
                if !targets_consumer {
                    continue;
                }
                let elem_span = syn::spanned::Spanned::span(elem);
                let item_expr = quote_spanned! {elem_span=>
                    ::flowlib::__private::foreach_item_type(&__state.#field)
                };
                body.extend(quote_spanned! {elem_span=>
                    let _: #elem = #item_expr;
                });
            }
        }
        if let Some(catch) = &step.attrs.catch {
            if let Some(field) = &catch.field {
                body.extend(quote_spanned! {field.span()=>
                    ::flowlib::__private::assert_catch_field(&__state.#field);
                });
            }
        }
        let _ = i;
    }
    if body.is_empty() {
        return TokenStream::new();
    }
    quote! {
        #[doc(hidden)]
        #[allow(unused_variables, unreachable_code, clippy::all, non_snake_case)]
        const _: () = {
            fn __flowlib_type_checks(__state: &#self_ty) {
                #body
            }
        };
    }
}

/// The `Flow` impl for a validated graph.
pub(crate) fn flow_impl(ir: &FlowIr, an: &Analysis) -> TokenStream {
    let self_ty = &ir.self_ty;
    let flow_name = &ir.flow_name;

    let mut step_defs = Vec::new();
    let mut arms = Vec::new();
    let mut foreach_arms = Vec::new();
    let mut catch_arms = Vec::new();

    for (i, step) in ir.steps.iter().enumerate() {
        let name = &step.name;
        let doc = &step.doc;
        let a = &step.attrs;
        let start = a.start.is_some();
        let end = a.end.is_some();
        let next = &an.next[i];
        let preds = &an.preds[i];
        let foreach = match &a.foreach {
            Some(f) => {
                let f = f.to_string();
                quote!(::core::option::Option::Some(#f))
            }
            None => quote!(::core::option::Option::None),
        };
        let join = match an.closes[i] {
            Some(frame) => {
                let split = frame.split;
                let kind = match frame.kind {
                    FrameKind::Foreach => quote!(::flowlib::__private::JoinKind::Foreach),
                    FrameKind::Branch => quote!(::flowlib::__private::JoinKind::Branch),
                };
                quote!(::core::option::Option::Some(::flowlib::__private::JoinDef { split: #split, kind: #kind }))
            }
            None => quote!(::core::option::Option::None),
        };
        let closed_by = match an.closed_by[i] {
            Some(j) => quote!(::core::option::Option::Some(#j)),
            None => quote!(::core::option::Option::None),
        };
        let depth = an.depth[i];
        let takes_item = step.item().is_some();
        let cpu = a.cpu.unwrap_or(1);
        let gpu = a.gpu.unwrap_or(0);
        let memory = match a.memory {
            Some(m) => quote!(::core::option::Option::Some(#m)),
            None => quote!(::core::option::Option::None),
        };
        let retry = match &a.retry {
            Some(r) => {
                let (t, d) = (r.times, r.delay_ms);
                quote!(::core::option::Option::Some(::flowlib::__private::RetryDef { times: #t, delay_ms: #d }))
            }
            None => quote!(::core::option::Option::None),
        };
        let timeout = match a.timeout_ms {
            Some(t) => quote!(::core::option::Option::Some(#t)),
            None => quote!(::core::option::Option::None),
        };
        let catch = match &a.catch {
            Some(c) => {
                let field = match &c.field {
                    Some(f) => {
                        let f = f.to_string();
                        quote!(::core::option::Option::Some(#f))
                    }
                    None => quote!(::core::option::Option::None),
                };
                quote!(::core::option::Option::Some(::flowlib::__private::CatchDef { field: #field }))
            }
            None => quote!(::core::option::Option::None),
        };
        let checkpoint = a.checkpoint;
        step_defs.push(quote! {
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
            }
        });

        // Dispatch arm.
        let ident = &step.ident;
        let mut prelude = TokenStream::new();
        let mut args = Vec::new();
        for arg in &step.args {
            match arg {
                StepArg::Ctx => args.push(quote!(__call.ctx())),
                StepArg::Inputs { .. } => args.push(quote!(__call.take_inputs())),
                StepArg::Item { by_ref, .. } => {
                    let Some(split) = an.consumer_of[i] else {
                        continue;
                    };
                    let field = ir.steps[split]
                        .attrs
                        .foreach
                        .as_ref()
                        .expect("foreach step");
                    let field_name = field.to_string();
                    let item = format_ident!("__item");
                    prelude.extend(quote! {
                        let #item = ::flowlib::__private::foreach_item(&self.#field, __call.item_index(), #field_name)?;
                    });
                    if *by_ref {
                        args.push(quote!(&#item));
                    } else {
                        args.push(quote!(#item));
                    }
                }
            }
        }
        arms.push(quote! {
            #i => {
                #prelude
                ::flowlib::__private::IntoStepResult::into_step_result(Self::#ident(self, #(#args),*))
            }
        });
        if let Some(field) = &a.foreach {
            foreach_arms.push(quote! {
                #i => ::core::option::Option::Some(::flowlib::__private::foreach_len(&self.#field)),
            });
        }
        if let Some(c) = &a.catch {
            if let Some(field) = &c.field {
                catch_arms.push(quote! {
                    #i => { self.#field = ::core::option::Option::Some(::std::string::String::from(__message)); }
                });
            }
        }
    }

    quote! {
        impl ::flowlib::Flow for #self_ty {
            const NAME: &'static str = #flow_name;

            fn graph() -> &'static ::flowlib::Graph {
                static GRAPH: ::std::sync::OnceLock<::flowlib::Graph> = ::std::sync::OnceLock::new();
                static STEPS: &[::flowlib::__private::StepDef] = &[#(#step_defs),*];
                GRAPH.get_or_init(|| ::flowlib::__private::build_graph(#flow_name, STEPS, <Self as ::flowlib::FlowState>::FIELDS))
            }

            #[allow(unreachable_code, clippy::needless_borrow, clippy::unit_arg)]
            fn __run_step(
                &mut self,
                __step: usize,
                __call: &mut ::flowlib::__private::StepCall<'_, Self>,
            ) -> ::core::result::Result<(), ::flowlib::StepError> {
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

            #[allow(unused_variables)]
            fn __set_caught(&mut self, __step: usize, __message: &str) {
                match __step {
                    #(#catch_arms)*
                    _ => {}
                }
            }
        }
    }
}

//! `#[derive(FlowState)]`: every named field becomes an artifact; `#[param(...)]` fields
//! also become command-line parameters.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::ast::doc_of_attrs;
use crate::ctxt::Ctxt;

const PARAM_KEYS: &[&str] = &["default", "help", "required", "name"];

/// Command-line flags every `run` already has: a parameter may not reuse them.
const RESERVED_FLAGS: &[&str] = &[
    "help",
    "version",
    "datastore",
    "max-workers",
    "max-memory",
    "origin",
    "quiet",
    "format",
    "run-id",
];

struct Param {
    flag: String,
    help: String,
    default: Option<syn::Expr>,
    required: bool,
}

pub(crate) fn derive(input: DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let ident = &input.ident;
    if !input.generics.params.is_empty() {
        cx.error_spanned(&input.generics, "a flow state cannot be generic");
    }
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named.named.iter().collect::<Vec<_>>(),
            other => {
                cx.error_spanned(
                    other,
                    "FlowState needs a struct with named fields: every field is an artifact",
                );
                Vec::new()
            }
        },
        _ => {
            cx.error(
                ident.span(),
                "FlowState can only be derived for a struct with named fields",
            );
            Vec::new()
        }
    };

    let mut infos = Vec::new();
    let mut encode_arms = Vec::new();
    let mut decode_arms = Vec::new();
    let mut json_arms = Vec::new();
    let mut default_stmts = Vec::new();
    let mut set_arms = Vec::new();
    let mut asserts = Vec::new();
    let mut flags: Vec<String> = Vec::new();

    for (i, field) in fields.iter().enumerate() {
        let fident = field.ident.as_ref().expect("named field");
        let name = fident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name).to_string();
        let ty = &field.ty;
        let ty_str = quote!(#ty).to_string().replace(' ', "");
        let doc = doc_of_attrs(&field.attrs);
        let param = parse_param(&cx, field, &name, &doc);

        let ty_span = ty.span();
        asserts.push(quote_spanned! {ty_span=>
            ::flowlib::__private::assert_artifact::<#ty>();
        });
        encode_arms.push(quote! {
            #i => (&::flowlib::__private::Tag::<#ty>::NEW).encode_field(&self.#fident, __w),
        });
        decode_arms.push(quote! {
            #i => { self.#fident = (&::flowlib::__private::Tag::<#ty>::NEW).decode_field(__r)?; ::core::result::Result::Ok(()) }
        });
        json_arms.push(quote! {
            #i => ::flowlib::__private::to_json(&self.#fident),
        });

        let param_info = match &param {
            Some(p) => {
                if let Some(prev) = flags.iter().find(|f| **f == p.flag) {
                    cx.error(
                        fident.span(),
                        format!("two parameters use the flag `--{prev}`"),
                    );
                }
                flags.push(p.flag.clone());
                let flag = &p.flag;
                let help = &p.help;
                let required = p.required;
                let is_bool = matches!(ty, syn::Type::Path(tp) if tp.path.is_ident("bool"));
                if let Some(expr) = &p.default {
                    let value = match expr {
                        syn::Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(_),
                            ..
                        }) => {
                            quote_spanned!(expr.span()=> ::core::convert::Into::into(#expr))
                        }
                        _ => quote!(#expr),
                    };
                    default_stmts.push(quote_spanned! {expr.span()=>
                        self.#fident = #value;
                    });
                }
                set_arms.push(quote! {
                    #i => { self.#fident = (&::flowlib::__private::Tag::<#ty>::NEW).parse_param(__value)?; ::core::result::Result::Ok(()) }
                });
                quote!(::core::option::Option::Some(::flowlib::ParamInfo { flag: #flag, help: #help, required: #required, is_bool: #is_bool }))
            }
            None => quote!(::core::option::Option::None),
        };
        infos.push(quote! {
            ::flowlib::FieldInfo { name: #name, ty: #ty_str, doc: #doc, param: #param_info }
        });
    }

    let errors = cx.into_compile_errors();
    if !errors.is_empty() {
        return errors;
    }

    quote! {
        impl ::flowlib::FlowState for #ident {
            const FIELDS: &'static [::flowlib::FieldInfo] = &[#(#infos),*];

            #[allow(unreachable_code)]
            fn __encode_field(
                &self,
                __i: usize,
                __w: &mut ::flowlib::__private::FieldWriter<'_>,
            ) -> ::core::result::Result<(), ::flowlib::__private::EncodeError> {
                #[allow(unused_imports)]
                use ::flowlib::__private::{ViaBulk as _, ViaSerde as _};
                match __i {
                    #(#encode_arms)*
                    _ => ::core::result::Result::Err(::flowlib::__private::EncodeError::no_field(__i)),
                }
            }

            #[allow(unreachable_code)]
            fn __decode_field(
                &mut self,
                __i: usize,
                __r: &mut ::flowlib::__private::FieldReader<'_>,
            ) -> ::core::result::Result<(), ::flowlib::__private::DecodeError> {
                #[allow(unused_imports)]
                use ::flowlib::__private::{ViaBulk as _, ViaSerde as _};
                match __i {
                    #(#decode_arms)*
                    _ => ::core::result::Result::Err(::flowlib::__private::DecodeError::no_field(__i)),
                }
            }

            fn __field_json(&self, __i: usize) -> ::core::result::Result<::flowlib::__private::JsonValue, ::std::string::String> {
                match __i {
                    #(#json_arms)*
                    _ => ::core::result::Result::Err(::std::format!("no field #{}", __i)),
                }
            }

            fn __apply_param_defaults(&mut self) {
                #(#default_stmts)*
            }

            #[allow(unused_variables)]
            fn __set_param(&mut self, __i: usize, __value: &str) -> ::core::result::Result<(), ::std::string::String> {
                #[allow(unused_imports)]
                use ::flowlib::__private::{ParseViaFromStr as _, ParseViaJson as _};
                match __i {
                    #(#set_arms)*
                    _ => ::core::result::Result::Err(::std::format!("field #{} is not a parameter", __i)),
                }
            }
        }

        #[doc(hidden)]
        #[allow(clippy::all)]
        const _: () = {
            fn __flowlib_artifact_checks() {
                #(#asserts)*
            }
        };
    }
}

fn parse_param(cx: &Ctxt, field: &syn::Field, name: &str, doc: &str) -> Option<Param> {
    let mut param: Option<Param> = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("param")) {
        if param.is_some() {
            cx.error(attr.span(), "duplicate `#[param]` attribute");
            continue;
        }
        let mut p = Param {
            flag: name.replace('_', "-"),
            help: doc.lines().next().unwrap_or("").to_string(),
            default: None,
            required: false,
        };
        let mut seen: Vec<String> = Vec::new();
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            let res = attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
                if seen.contains(&key) {
                    cx.error(meta.path.span(), format!("duplicate key `{key}`"));
                }
                seen.push(key.clone());
                match key.as_str() {
                    "default" => {
                        p.default = Some(meta.value()?.parse()?);
                        Ok(())
                    }
                    "help" => {
                        let lit: LitStr = meta.value()?.parse()?;
                        p.help = lit.value();
                        Ok(())
                    }
                    "name" => {
                        let lit: LitStr = meta.value()?.parse()?;
                        let v = lit.value();
                        if v.is_empty()
                            || v.starts_with('-')
                            || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                        {
                            cx.error(lit.span(), "a parameter name is letters, digits, `-` and `_`, without leading dashes");
                        }
                        p.flag = v;
                        Ok(())
                    }
                    "required" => {
                        p.required = true;
                        Ok(())
                    }
                    _ => {
                        cx.error(
                            meta.path.span(),
                            format!("unknown `#[param]` key `{key}`; valid keys are: {}", PARAM_KEYS.join(", ")),
                        );
                        if meta.input.peek(syn::Token![=]) {
                            let _: syn::Expr = meta.value()?.parse()?;
                        }
                        Ok(())
                    }
                }
            });
            if let Err(e) = res {
                cx.syn_error(e);
            }
        }
        if p.required && p.default.is_some() {
            cx.error(
                attr.span(),
                "a parameter cannot be both `required` and have a `default`",
            );
        }
        if RESERVED_FLAGS.contains(&p.flag.as_str()) {
            cx.error(
                field.ident.as_ref().map(|i| i.span()).unwrap_or_else(|| attr.span()),
                format!(
                    "parameter `--{}` clashes with a built-in flag; rename the field or use `#[param(name = \"...\")]` (built-in: {})",
                    p.flag,
                    RESERVED_FLAGS.join(", ")
                ),
            );
        }
        param = Some(p);
    }
    param
}

//! `#[derive(FlowState)]`: every named field becomes an artifact; `#[param(...)]` fields
//! also become command-line parameters.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::ast::doc_of_attrs;
use crate::attr::{key_of, unknown_key};
use crate::ctxt::{Ctxt, Loc};

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
    let fields = named_fields(&cx, &input);
    let mut code = FieldCode::default();
    let mut flags: Vec<String> = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        code.add_field(&cx, i, field, &mut flags);
    }

    let has_errors = cx.has_errors();
    let errors = cx.into_compile_errors();
    if !has_errors {
        flow_state_impl(ident, &code)
    } else if input.generics.params.is_empty() {
        // A stub, so that `#[flow]` and the user's code add no "not a flow state" error.
        let stub = stub_impl(ident);
        quote!(#errors #stub)
    } else {
        errors
    }
}

/// The fields of a struct with named fields; an error for anything else.
fn named_fields<'a>(cx: &Ctxt, input: &'a DeriveInput) -> Vec<&'a syn::Field> {
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named.named.iter().collect(),
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
                input.ident.span(),
                "FlowState can only be derived for a struct with named fields",
            );
            Vec::new()
        }
    }
}

/// The per-field pieces of the generated `FlowState` impl.
#[derive(Default)]
struct FieldCode {
    infos: Vec<TokenStream>,
    encode_arms: Vec<TokenStream>,
    decode_arms: Vec<TokenStream>,
    json_arms: Vec<TokenStream>,
    clone_arms: Vec<TokenStream>,
    lazy_install_arms: Vec<TokenStream>,
    lazy_blob_arms: Vec<TokenStream>,
    default_stmts: Vec<TokenStream>,
    set_arms: Vec<TokenStream>,
    asserts: Vec<TokenStream>,
}

impl FieldCode {
    /// Field number `i`; `flags` holds the parameter flags of the fields before it.
    fn add_field(&mut self, cx: &Ctxt, i: usize, field: &syn::Field, flags: &mut Vec<String>) {
        let fident = field.ident.as_ref().expect("named field");
        let name = fident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name).to_string();
        let ty = &field.ty;
        let ty_str = quote!(#ty).to_string().replace(' ', "");
        let doc = doc_of_attrs(&field.attrs);
        let param = parse_param(cx, field, &name, &doc);

        // `&__state.field` as `&dyn Artifact`, its first token on the start of the field's
        // type and its last on the end: rustc underlines the whole type.
        let loc = Loc::of(ty);
        let amp = quote_spanned!(loc.start=> & __state .);
        let mut field_end = fident.clone();
        field_end.set_span(loc.end);
        self.asserts.push(quote! {
            let _: &dyn __flowlib::Artifact = #amp #field_end;
        });
        self.encode_arms.push(quote! {
            #i => (&::flowlib::__private::Tag::<#ty>::NEW).encode_field(&self.#fident, __w),
        });
        self.decode_arms.push(quote! {
            #i => { self.#fident = (&::flowlib::__private::Tag::<#ty>::NEW).decode_field(__r)?; ::core::result::Result::Ok(()) }
        });
        self.json_arms.push(quote! {
            #i => (&::flowlib::__private::Tag::<#ty>::NEW).field_json(&self.#fident),
        });
        self.lazy_install_arms.push(quote! {
            #i => (&::flowlib::__private::Tag::<#ty>::NEW).lazy_install(&mut self.#fident, __blob, __source),
        });
        self.lazy_blob_arms.push(quote! {
            #i => (&::flowlib::__private::Tag::<#ty>::NEW).lazy_blob(&self.#fident),
        });
        self.clone_arms.push(quote! {
            #i => (&::flowlib::__private::Tag::<#ty>::NEW).clone_field_from(&mut self.#fident, &__src.#fident),
        });
        let param_info = match &param {
            Some(p) => {
                flag_is_unique(cx, fident, &p.flag, flags);
                self.add_param(i, field, p)
            }
            None => quote!(::core::option::Option::None),
        };
        self.infos.push(quote! {
            ::flowlib::__private::field_info(#name, #ty_str, #doc, #param_info)
        });
    }

    /// The default and setter of a parameter field; returns its `ParamInfo`.
    fn add_param(&mut self, i: usize, field: &syn::Field, p: &Param) -> TokenStream {
        let fident = field.ident.as_ref().expect("named field");
        let ty = &field.ty;
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
            self.default_stmts.push(quote_spanned! {expr.span()=>
                self.#fident = #value;
            });
        }
        self.set_arms.push(quote! {
            #i => { self.#fident = (&::flowlib::__private::Tag::<#ty>::NEW).parse_param(__value)?; ::core::result::Result::Ok(()) }
        });
        quote!(::core::option::Option::Some(::flowlib::__private::param_info(#flag, #help, #required, #is_bool)))
    }
}

/// Two parameters may not share a command-line flag.
fn flag_is_unique(cx: &Ctxt, fident: &syn::Ident, flag: &str, flags: &mut Vec<String>) {
    if let Some(prev) = flags.iter().find(|f| **f == flag) {
        cx.error(
            fident.span(),
            format!(
                "two parameters use the flag `--{prev}`: rename one with `#[param(name = \"...\")]`"
            ),
        );
    }
    flags.push(flag.to_string());
}

/// The `FlowState` impl for a state with compile errors: it has no fields and is never
/// called, but keeps the rest of the crate free of follow-up errors.
fn stub_impl(ident: &syn::Ident) -> TokenStream {
    quote! {
        #[doc(hidden)]
        const _: () = {
            impl ::flowlib::__private::FlowState for #ident {
                const FIELDS: &'static [::flowlib::__private::FieldInfo] = &[];
                fn __encode_field(&self, _: usize, _: &mut ::flowlib::__private::FieldWriter<'_>) -> ::core::result::Result<(), ::flowlib::__private::EncodeError> {
                    ::core::unreachable!("the flow state has compile errors")
                }
                fn __decode_field(&mut self, _: usize, _: &mut ::flowlib::__private::FieldReader<'_>) -> ::core::result::Result<(), ::flowlib::__private::DecodeError> {
                    ::core::unreachable!("the flow state has compile errors")
                }
                fn __field_json(&self, _: usize) -> ::core::result::Result<::flowlib::__private::JsonValue, ::std::string::String> {
                    ::core::unreachable!("the flow state has compile errors")
                }
                fn __apply_param_defaults(&mut self) {
                    ::core::unreachable!("the flow state has compile errors")
                }
                fn __set_param(&mut self, _: usize, _: &str) -> ::core::result::Result<(), ::std::string::String> {
                    ::core::unreachable!("the flow state has compile errors")
                }
            }
        };
    }
}

/// The traits the generated impl dispatches through. In a module, so that these names
/// cannot capture the user's types and default expressions interpolated next to it.
fn helper_module() -> TokenStream {
    quote! {
        mod __flowlib {
            /// Reports a field that cannot be stored as one error on its type, instead of
            /// one per missing trait (Serialize, Deserialize, Send).
            #[diagnostic::on_unimplemented(
                message = "`{Self}` cannot be stored as an artifact",
                label = "this field's type must implement Serialize, Deserialize and Send",
                note = "add `#[derive(Serialize, Deserialize)]` (re-exported by `flowlib::prelude`) to the type"
            )]
            pub trait Artifact {}
            #[diagnostic::do_not_recommend]
            impl<T: ::flowlib::__private::Artifact> Artifact for T {}

            /// A field as JSON (`Tag<T>` by value: found first).
            pub trait Json<T> {
                fn field_json(&self, value: &T) -> ::core::result::Result<::flowlib::__private::JsonValue, ::std::string::String>;
            }
            impl<T: ::flowlib::__private::Serialize> Json<T> for ::flowlib::__private::Tag<T> {
                fn field_json(&self, value: &T) -> ::core::result::Result<::flowlib::__private::JsonValue, ::std::string::String> {
                    ::flowlib::__private::to_json(value)
                }
            }

            /// Found by autoref only after every real codec (by value, then `&`), that is
            /// only for a field type that is not an artifact: the `&dyn Artifact` check
            /// reports that on the field, and these keep the methods free of follow-up
            /// errors. Never called: the crate does not compile.
            pub trait NotAnArtifact<T> {
                fn encode_field(&mut self, _: &T, _: &mut ::flowlib::__private::FieldWriter<'_>) -> ::core::result::Result<(), ::flowlib::__private::EncodeError> {
                    ::core::unreachable!()
                }
                fn decode_field(&mut self, _: &mut ::flowlib::__private::FieldReader<'_>) -> ::core::result::Result<T, ::flowlib::__private::DecodeError> {
                    ::core::unreachable!()
                }
                fn field_json(&mut self, _: &T) -> ::core::result::Result<::flowlib::__private::JsonValue, ::std::string::String> {
                    ::core::unreachable!()
                }
                fn parse_param(&mut self, _: &str) -> ::core::result::Result<T, ::std::string::String> {
                    ::core::unreachable!()
                }
            }
            impl<T> NotAnArtifact<T> for &::flowlib::__private::Tag<T> {}
        }
    }
}

/// `match __i { arms, _ => fallback }`.
fn field_match(arms: &[TokenStream], fallback: TokenStream) -> TokenStream {
    quote! {
        match __i {
            #(#arms)*
            _ => #fallback,
        }
    }
}

fn flow_state_impl(ident: &syn::Ident, code: &FieldCode) -> TokenStream {
    let FieldCode {
        infos,
        encode_arms,
        decode_arms,
        json_arms,
        clone_arms,
        lazy_install_arms,
        lazy_blob_arms,
        default_stmts,
        set_arms,
        asserts,
    } = code;
    let helpers = helper_module();
    let no_field = |error: TokenStream| quote!(::core::result::Result::Err(#error::no_field(__i)));
    let encode_match = field_match(
        encode_arms,
        no_field(quote!(::flowlib::__private::EncodeError)),
    );
    let decode_match = field_match(
        decode_arms,
        no_field(quote!(::flowlib::__private::DecodeError)),
    );
    let codec_imports = quote! {
        #[allow(unused_imports)]
        use ::flowlib::__private::{ViaBulk as _, ViaSerde as _};
        use __flowlib::NotAnArtifact as _;
    };
    quote! {
        #[doc(hidden)]
        #[allow(dead_code, unused_variables, non_camel_case_types, clippy::all)]
        const _: () = {
            #helpers

            impl ::flowlib::__private::FlowState for #ident {
                const FIELDS: &'static [::flowlib::__private::FieldInfo] = &[#(#infos),*];

                #[allow(unreachable_code)]
                fn __encode_field(
                    &self,
                    __i: usize,
                    __w: &mut ::flowlib::__private::FieldWriter<'_>,
                ) -> ::core::result::Result<(), ::flowlib::__private::EncodeError> {
                    #codec_imports
                    #encode_match
                }

                #[allow(unreachable_code)]
                fn __decode_field(
                    &mut self,
                    __i: usize,
                    __r: &mut ::flowlib::__private::FieldReader<'_>,
                ) -> ::core::result::Result<(), ::flowlib::__private::DecodeError> {
                    #codec_imports
                    #decode_match
                }

                fn __field_json(&self, __i: usize) -> ::core::result::Result<::flowlib::__private::JsonValue, ::std::string::String> {
                    #[allow(unused_imports)]
                    use __flowlib::{Json as _, NotAnArtifact as _};
                    match __i {
                        #(#json_arms)*
                        _ => ::core::result::Result::Err(::std::format!("no field #{}", __i)),
                    }
                }

                fn __apply_param_defaults(&mut self) {
                    #(#default_stmts)*
                }

                fn __lazy_install(&mut self, __i: usize, __blob: ::flowlib::__private::BlobRef, __source: &::flowlib::__private::LazySource) -> bool {
                    #[allow(unused_imports)]
                    use ::flowlib::__private::{LazyField as _, NotLazy as _};
                    match __i {
                        #(#lazy_install_arms)*
                        _ => false,
                    }
                }

                fn __lazy_blob(&self, __i: usize) -> ::core::option::Option<::flowlib::__private::StoredBlob> {
                    #[allow(unused_imports)]
                    use ::flowlib::__private::{LazyField as _, NotLazy as _};
                    match __i {
                        #(#lazy_blob_arms)*
                        _ => ::core::option::Option::None,
                    }
                }

                fn __clone_field_from(&mut self, __src: &Self, __i: usize) -> bool {
                    #[allow(unused_imports)]
                    use ::flowlib::__private::{CloneNotClone as _, CloneViaClone as _};
                    match __i {
                        #(#clone_arms)*
                        _ => false,
                    }
                }

                fn __set_param(&mut self, __i: usize, __value: &str) -> ::core::result::Result<(), ::std::string::String> {
                    #[allow(unused_imports)]
                    use ::flowlib::__private::{ParseViaFromStr as _, ParseViaJson as _};
                    #[allow(unused_imports)]
                    use __flowlib::NotAnArtifact as _;
                    match __i {
                        #(#set_arms)*
                        _ => ::core::result::Result::Err(::std::format!("field #{} is not a parameter", __i)),
                    }
                }
            }

            fn __flowlib_artifact_checks(__state: &#ident) {
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
                let key = key_of(&meta);
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
                    _ => unknown_key(cx, &meta, "param", PARAM_KEYS),
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
                    "parameter `--{}` clashes with a built-in flag of `run`: rename the field or give the flag another name with `#[param(name = \"...\")]` (built-in: {})",
                    p.flag,
                    RESERVED_FLAGS.join(", ")
                ),
            );
        }
        param = Some(p);
    }
    param
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(input: DeriveInput) -> String {
        derive(input).to_string()
    }

    #[test]
    fn param_mistakes_are_reported_with_a_stub_impl() {
        let out = errors_of(syn::parse_quote! {
            struct S {
                #[param(defualt = 1)]
                a: u32,
                #[param(default = "x")]
                datastore: String,
            }
        });
        assert!(
            out.contains("unknown `#[param]` key `defualt` (did you mean `default`?)"),
            "{out}"
        );
        assert!(
            out.contains("parameter `--datastore` clashes with a built-in flag"),
            "{out}"
        );
        // The stub keeps `#[flow]` and user code free of "not a flow state" errors.
        assert!(
            out.contains("impl :: flowlib :: __private :: FlowState for S"),
            "{out}"
        );
        let no_fields = "const FIELDS : & 'static [:: flowlib :: __private :: FieldInfo] = & [] ;";
        assert!(out.contains(no_fields), "{out}");
    }

    #[test]
    fn valid_state_has_no_errors() {
        let out = errors_of(syn::parse_quote! {
            struct S {
                #[param(default = 0.5, help = "h")]
                a: f64,
                #[param(required, name = "in")]
                input: String,
                b: Vec<u8>,
            }
        });
        assert!(!out.contains("compile_error"), "{out}");
    }
}

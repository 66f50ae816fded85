//! `#[kubernetes(image = "...", namespace = "...", service_account = "...",
//! node_selector = { "disktype": "ssd" }, tolerations = ["gpu=true:NoSchedule"],
//! gpu_vendor = "nvidia", secrets = ["aws-creds"], max_parallel = 8)]`.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitStr, Token};

use super::{each_key, once, parse_u32, unknown_key, StepAttrs};
use crate::ctxt::Ctxt;

const KEYS: &[&str] = &[
    "image",
    "namespace",
    "service_account",
    "node_selector",
    "tolerations",
    "gpu_vendor",
    "secrets",
    "max_parallel",
];

/// `#[kubernetes(...)]`.
#[derive(Default)]
pub(crate) struct Kubernetes {
    pub image: Option<String>,
    pub namespace: Option<String>,
    pub service_account: Option<String>,
    pub node_selector: Vec<(String, String)>,
    /// (key, operator, value, effect).
    pub tolerations: Vec<(String, String, String, String)>,
    pub gpu_vendor: Option<String>,
    pub secrets: Vec<String>,
    pub max_parallel: Option<u32>,
}

pub(super) fn parse(cx: &Ctxt, attr: &Attribute, out: &mut StepAttrs) {
    let mut k = Kubernetes::default();
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        let (mut sel, mut tol, mut sec) = (None, None, None);
        each_key(cx, attr, |key, meta| match key {
            "image" => once(cx, meta, "kubernetes", &mut k.image, |m| {
                word(cx, m, "image", |v| {
                    (!v.chars().any(char::is_whitespace))
                        .then_some(())
                        .ok_or("an image reference has no spaces, like \"ghcr.io/acme/flow:1.2\"")
                })
            }),
            "namespace" => once(cx, meta, "kubernetes", &mut k.namespace, |m| {
                word(cx, m, "namespace", dns_label)
            }),
            "service_account" => once(cx, meta, "kubernetes", &mut k.service_account, |m| {
                word(cx, m, "service_account", dns_subdomain)
            }),
            "gpu_vendor" => once(cx, meta, "kubernetes", &mut k.gpu_vendor, |m| {
                word(cx, m, "gpu_vendor", |v| {
                    dns_label(v).map_err(|_| {
                        "a GPU vendor is one lowercase word (`nvidia`, `amd`, `intel`): GPUs are requested as `<vendor>.com/gpu`"
                    })
                })
            }),
            "max_parallel" => once(cx, meta, "kubernetes", &mut k.max_parallel, |m| {
                parse_u32(cx, m, "max_parallel", 1)
            }),
            "node_selector" => once(cx, meta, "kubernetes", &mut sel, |m| node_selector(cx, m)),
            "tolerations" => once(cx, meta, "kubernetes", &mut tol, |m| {
                strings(cx, m, "tolerations", "[\"gpu=true:NoSchedule\"]").map(|v| {
                    v.map(|v| {
                        v.into_iter()
                            .filter_map(|s| match toleration(&s.value()) {
                                Ok(t) => Some(t),
                                Err(e) => {
                                    cx.error(s.span(), e);
                                    None
                                }
                            })
                            .collect()
                    })
                })
            }),
            "secrets" => once(cx, meta, "kubernetes", &mut sec, |m| {
                strings(cx, m, "secrets", "[\"aws-credentials\"]").map(|v| {
                    v.map(|v| {
                        v.into_iter()
                            .filter_map(|s| match dns_subdomain(&s.value()) {
                                Ok(()) => Some(s.value()),
                                Err(e) => {
                                    cx.error(s.span(), format!("secret `{}`: {e}", s.value()));
                                    None
                                }
                            })
                            .collect()
                    })
                })
            }),
            _ => unknown_key(cx, meta, "kubernetes", KEYS),
        });
        k.node_selector = sel.unwrap_or_default();
        k.tolerations = tol.unwrap_or_default();
        k.secrets = sec.unwrap_or_default();
    }
    out.kubernetes = Some(k);
}

/// A non-empty string literal that `check` accepts.
fn word(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    what: &str,
    check: impl Fn(&str) -> Result<(), &'static str>,
) -> syn::Result<Option<String>> {
    let expr: syn::Expr = meta.value()?.parse()?;
    match &expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => {
            let v = s.value();
            if v.trim().is_empty() {
                cx.error(s.span(), format!("`{what}` must not be empty"));
                return Ok(None);
            }
            match check(&v) {
                Ok(()) => Ok(Some(v)),
                Err(e) => {
                    cx.error(s.span(), format!("`{what}` = \"{v}\": {e}"));
                    Ok(None)
                }
            }
        }
        other => {
            cx.error_spanned(
                other,
                format!("`{what}` must be a string, like `{what} = \"...\"`"),
            );
            Ok(None)
        }
    }
}

/// `["a", "b"]`.
fn strings(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    what: &str,
    example: &str,
) -> syn::Result<Option<Vec<LitStr>>> {
    let expr: syn::Expr = meta.value()?.parse()?;
    let syn::Expr::Array(arr) = &expr else {
        cx.error_spanned(
            &expr,
            format!("`{what}` must be a list of strings, like `{what} = {example}`"),
        );
        return Ok(None);
    };
    let mut out = Vec::new();
    for e in &arr.elems {
        match e {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => out.push(s.clone()),
            other => cx.error_spanned(other, format!("each item of `{what}` must be a string")),
        }
    }
    Ok(Some(out))
}

/// `{ "disktype": "ssd", "zone": "a" }`.
fn node_selector(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Option<Vec<(String, String)>>> {
    let input = meta.value()?;
    if !input.peek(syn::token::Brace) {
        let expr: syn::Expr = input.parse()?;
        cx.error_spanned(
            &expr,
            "`node_selector` is a map of node labels, like `node_selector = { \"disktype\": \"ssd\" }`",
        );
        return Ok(None);
    }
    let content;
    syn::braced!(content in input);
    let mut out: Vec<(String, String)> = Vec::new();
    while !content.is_empty() {
        let key: LitStr = content.parse()?;
        if content.peek(Token![:]) {
            content.parse::<Token![:]>()?;
        } else {
            content.parse::<Token![=]>()?;
        }
        let value: LitStr = content.parse()?;
        if let Err(e) = label_key(&key.value()) {
            cx.error(key.span(), format!("node label `{}`: {e}", key.value()));
        } else if let Err(e) = label_value(&value.value()) {
            cx.error(
                value.span(),
                format!("node label value `{}`: {e}", value.value()),
            );
        } else if out.iter().any(|(k, _)| *k == key.value()) {
            cx.error(
                key.span(),
                format!("node label `{}` is given twice", key.value()),
            );
        } else {
            out.push((key.value(), value.value()));
        }
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(Some(out))
}

/// kubectl's taint syntax: `key[=value]:Effect` (`Exists` when there is no value).
pub(crate) fn toleration(s: &str) -> Result<(String, String, String, String), String> {
    let (kv, effect) = s.rsplit_once(':').ok_or_else(|| {
        format!("toleration `{s}` needs an effect, like \"gpu=true:NoSchedule\" (kubectl's taint syntax)")
    })?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(format!(
            "toleration `{s}`: the effect is NoSchedule, PreferNoSchedule or NoExecute, not `{effect}`"
        ));
    }
    let (key, op, value) = match kv.split_once('=') {
        Some((k, v)) => (k, "Equal", v),
        None => (kv, "Exists", ""),
    };
    label_key(key).map_err(|e| format!("toleration `{s}`: key `{key}`: {e}"))?;
    if op == "Equal" {
        label_value(value).map_err(|e| format!("toleration `{s}`: value `{value}`: {e}"))?;
    }
    Ok((key.into(), op.into(), value.into(), effect.into()))
}

fn dns_label(v: &str) -> Result<(), &'static str> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    ok.then_some(()).ok_or(
        "a Kubernetes name is lowercase letters, digits and `-` (at most 63), like \"ml-jobs\"",
    )
}

fn dns_subdomain(v: &str) -> Result<(), &'static str> {
    let ok = v.len() <= 253 && v.split('.').all(|l| dns_label(l).is_ok());
    ok.then_some(())
        .ok_or("a Kubernetes name is lowercase letters, digits, `-` and `.`, like \"flow-runner\"")
}

fn label_key(k: &str) -> Result<(), &'static str> {
    let name = match k.rsplit_once('/') {
        Some((prefix, name)) => {
            dns_subdomain(prefix).map_err(|_| "its prefix (before `/`) must be a DNS subdomain")?;
            name
        }
        None => k,
    };
    label_value(name)?;
    (!name.is_empty())
        .then_some(())
        .ok_or("a label key must not be empty")
}

fn label_value(v: &str) -> Result<(), &'static str> {
    let ok = v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !v.starts_with(|c: char| !c.is_ascii_alphanumeric())
        && !v.ends_with(|c: char| !c.is_ascii_alphanumeric());
    ok.then_some(()).ok_or(
        "at most 63 letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_use_kubectls_taint_syntax() {
        assert_eq!(
            toleration("gpu=true:NoSchedule").unwrap(),
            (
                "gpu".into(),
                "Equal".into(),
                "true".into(),
                "NoSchedule".into()
            )
        );
        assert_eq!(
            toleration("nvidia.com/gpu:NoExecute").unwrap().1,
            "Exists".to_string()
        );
        assert!(toleration("gpu=true")
            .unwrap_err()
            .contains("needs an effect"));
        assert!(toleration("gpu:Sometimes")
            .unwrap_err()
            .contains("NoSchedule"));
        assert!(toleration("Bad Key:NoSchedule").is_err());
    }
}

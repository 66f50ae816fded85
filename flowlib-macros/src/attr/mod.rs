//! Parsing of the step attributes: `#[step]`, `#[resources]`, `#[retry]`, `#[timeout]`,
//! `#[catch]`, `#[checkpoint]` and `#[cache]`. Every problem is recorded in the [`Ctxt`]; parsing goes on
//! so that all mistakes are reported in one compilation.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitInt, LitStr, Token};

use crate::ctxt::{did_you_mean, Ctxt, Loc};

mod kubernetes;
pub(crate) use kubernetes::Kubernetes;

/// The attribute names `#[flow]` consumes on methods.
pub(crate) const STEP_ATTRS: &[&str] = &[
    "step",
    "resources",
    "retry",
    "timeout",
    "catch",
    "checkpoint",
    "cache",
    "slurm",
    "kubernetes",
    "batch",
];

const STEP_KEYS: &[&str] = &["start", "end", "join", "next", "foreach"];
const RESOURCE_KEYS: &[&str] = &["cpu", "memory", "gpu"];
const RETRY_KEYS: &[&str] = &["times", "delay", "platform"];
const SLURM_KEYS: &[&str] = &[
    "partition",
    "account",
    "qos",
    "constraint",
    "time",
    "extra",
    "max_parallel",
];
const BATCH_KEYS: &[&str] = &["queue", "job_definition", "image"];
const TIMEOUT_KEYS: &[&str] = &["seconds", "minutes", "hours"];
const CATCH_KEYS: &[&str] = &["field"];
const CACHE_KEYS: &[&str] = &["version"];

/// Everything the attributes of one method say.
#[derive(Default)]
pub(crate) struct StepAttrs {
    /// The `#[step]` attribute, if present.
    pub step: Option<Loc>,
    /// `#[step(...)]` had a mistake of its own (already reported): rules about what it
    /// lacks would only repeat it.
    pub step_errors: bool,
    pub start: Option<Span>,
    pub end: Option<Span>,
    pub join: Option<Span>,
    pub next: Vec<Ident>,
    /// Span of the `next = ...` item.
    pub next_span: Option<Span>,
    pub foreach: Option<Ident>,
    /// The `foreach` key itself.
    pub foreach_key: Option<Span>,
    pub cpu: Option<u32>,
    pub memory: Option<u64>,
    pub gpu: Option<u32>,
    pub retry: Option<Retry>,
    pub timeout_ms: Option<u64>,
    pub catch: Option<Catch>,
    pub checkpoint: bool,
    /// Where `#[checkpoint]` is (for the rule that a cached step takes none).
    pub checkpoint_loc: Option<Loc>,
    pub cache: Option<Cache>,
    pub slurm: Option<Slurm>,
    pub kubernetes: Option<Kubernetes>,
    pub batch: Option<Batch>,
    /// The non-`step` attributes, to complain when `#[step]` is missing.
    pub other_attrs: Vec<(String, Loc)>,
}

pub(crate) struct Retry {
    pub times: u32,
    pub delay_ms: u64,
    pub platform: u32,
}

/// `#[slurm(...)]`.
#[derive(Default)]
pub(crate) struct Slurm {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub constraint: Option<String>,
    pub time_ms: Option<u64>,
    pub extra: Vec<String>,
    pub max_parallel: Option<u32>,
}

/// `#[batch(...)]`.
#[derive(Default)]
pub(crate) struct Batch {
    pub queue: Option<String>,
    pub job_definition: Option<String>,
    pub image: Option<String>,
}

/// `#[cache]` or `#[cache(version = "2")]`.
pub(crate) struct Cache {
    pub version: Option<String>,
    pub loc: Loc,
}

pub(crate) struct Catch {
    pub field: Option<Ident>,
}

/// Whether `attr` is one of ours (and so must be stripped from the output).
pub(crate) fn is_step_attr(attr: &Attribute) -> bool {
    attr.path()
        .get_ident()
        .is_some_and(|i| STEP_ATTRS.contains(&i.to_string().as_str()))
}

/// Parse all of our attributes on one method.
pub(crate) fn parse_step_attrs(cx: &Ctxt, attrs: &[Attribute]) -> StepAttrs {
    let mut out = StepAttrs::default();
    let mut seen: Vec<String> = Vec::new();
    for attr in attrs.iter().filter(|a| is_step_attr(a)) {
        let name = attr
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        if seen.contains(&name) {
            cx.error(
                Loc::of(attr),
                format!(
                    "duplicate `#[{name}]` attribute: a step takes it once, remove one of them"
                ),
            );
            continue;
        }
        seen.push(name.clone());
        match name.as_str() {
            "step" => {
                let before = cx.error_count();
                parse_step(cx, attr, &mut out);
                out.step_errors = cx.error_count() > before;
            }
            "resources" => parse_resources(cx, attr, &mut out),
            "retry" => parse_retry(cx, attr, &mut out),
            "timeout" => parse_timeout(cx, attr, &mut out),
            "catch" => parse_catch(cx, attr, &mut out),
            "checkpoint" => parse_checkpoint(cx, attr, &mut out),
            "cache" => parse_cache(cx, attr, &mut out),
            "slurm" => parse_slurm(cx, attr, &mut out),
            "kubernetes" => kubernetes::parse(cx, attr, &mut out),
            "batch" => parse_batch(cx, attr, &mut out),
            _ => unreachable!("filtered by is_step_attr"),
        }
        if name != "step" {
            out.other_attrs.push((name, Loc::of(attr)));
        }
    }
    out
}

/// The key of a nested `key = value` item (`a::b` for a path).
pub(crate) fn key_of(meta: &ParseNestedMeta) -> String {
    meta.path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// Run `f` on each item of `attr`'s list with its key. A syntax error stops the list and is
/// recorded; returns false then.
fn each_key(
    cx: &Ctxt,
    attr: &Attribute,
    mut f: impl FnMut(&str, &ParseNestedMeta) -> syn::Result<()>,
) -> bool {
    match attr.parse_nested_meta(|meta| f(&key_of(&meta), &meta)) {
        Ok(()) => true,
        Err(e) => {
            cx.syn_error(e);
            false
        }
    }
}

/// Report an unknown key, listing the valid ones, and skip its value so parsing continues.
pub(crate) fn unknown_key(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    attr: &str,
    valid: &[&str],
) -> syn::Result<()> {
    let key = key_of(meta);
    let hint = did_you_mean(&key, valid.iter().copied())
        .or_else(|| alias(attr, &key))
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    cx.error(
        meta.path.span(),
        format!(
            "unknown `#[{attr}]` key `{key}`{hint}; valid keys are: {}",
            valid.join(", ")
        ),
    );
    skip_value(meta)
}

/// Keys other tools use for what a flowlib key does.
fn alias(attr: &str, key: &str) -> Option<&'static str> {
    Some(match (attr, key) {
        ("step", "after" | "then" | "to" | "goto" | "successor" | "successors") => "next",
        ("step", "first" | "begin") => "start",
        ("step", "last" | "finish") => "end",
        ("step", "for_each" | "each" | "map" | "over") => "foreach",
        ("resources", "cores" | "cpus" | "threads") => "cpu",
        ("resources", "mem" | "ram") => "memory",
        ("resources", "gpus") => "gpu",
        ("retry", "attempts" | "retries" | "max_retries" | "tries" | "count") => "times",
        ("retry", "backoff" | "wait" | "interval" | "sleep") => "delay",
        ("retry", "system" | "infra" | "infrastructure" | "preemption" | "spot") => "platform",
        ("slurm", "queue" | "p") => "partition",
        ("slurm", "project" | "a" | "A") => "account",
        ("slurm", "time_limit" | "walltime" | "t") => "time",
        ("slurm", "args" | "flags" | "options" | "sbatch") => "extra",
        ("slurm", "array_parallel" | "throttle" | "max_workers" | "parallel") => "max_parallel",
        ("kubernetes", "container" | "container_image" | "docker_image") => "image",
        ("kubernetes", "ns") => "namespace",
        ("kubernetes", "serviceaccount" | "service_account_name" | "sa") => "service_account",
        ("kubernetes", "node_selectors" | "nodeselector" | "labels") => "node_selector",
        ("kubernetes", "toleration" | "taints") => "tolerations",
        ("kubernetes", "gpu_type" | "vendor") => "gpu_vendor",
        ("kubernetes", "secret" | "env_from") => "secrets",
        ("kubernetes", "parallelism" | "throttle" | "parallel") => "max_parallel",
        ("batch", "partition" | "jobqueue") => "queue",
        ("batch", "definition" | "jobdef" | "job_def" | "job_definition_name") => "job_definition",
        ("batch", "container" | "container_image" | "docker_image") => "image",
        ("timeout", "secs" | "sec" | "s") => "seconds",
        ("timeout", "mins" | "min" | "m") => "minutes",
        ("timeout", "hrs" | "hr" | "h") => "hours",
        ("catch", "var" | "to" | "into" | "store" | "error" | "message") => "field",
        _ => return None,
    })
}

fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _ = meta.parse_nested_meta(|inner| skip_value(&inner));
    }
    Ok(())
}

/// Set `slot` from the key's value with `parse`, once: a repeated key is reported and its
/// value skipped.
fn once<T>(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    attr: &str,
    slot: &mut Option<T>,
    parse: impl FnOnce(&ParseNestedMeta) -> syn::Result<Option<T>>,
) -> syn::Result<()> {
    if slot.is_some() {
        cx.error(meta.path.span(), dup_key_message(attr, &key_of(meta)));
        return skip_value(meta);
    }
    *slot = parse(meta)?;
    Ok(())
}

fn dup_key_message(attr: &str, key: &str) -> String {
    format!("duplicate key `{key}` in `#[{attr}]`: give each key once")
}

/// A `#[step]` key that takes no value.
fn flag(cx: &Ctxt, meta: &ParseNestedMeta, slot: &mut Option<Span>) -> syn::Result<()> {
    once(cx, meta, "step", slot, |meta| {
        if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
            let key = key_of(meta);
            cx.error(
                meta.path.span(),
                format!("`{key}` takes no value: write `#[step({key}, ...)]`"),
            );
            skip_value(meta)?;
            return Ok(None);
        }
        Ok(Some(meta.path.span()))
    })
}

fn parse_step(cx: &Ctxt, attr: &Attribute, out: &mut StepAttrs) {
    out.step = Some(Loc::of(attr));
    if matches!(attr.meta, syn::Meta::Path(_)) {
        // `#[step]` alone: a plain step without `next`; the checker reports what is missing.
        return;
    }
    let mut foreach: Option<Ident> = None;
    let mut next_seen = false;
    each_key(cx, attr, |key, meta| match key {
        "start" => flag(cx, meta, &mut out.start),
        "end" => flag(cx, meta, &mut out.end),
        "join" => flag(cx, meta, &mut out.join),
        "next" => {
            if std::mem::replace(&mut next_seen, true) {
                cx.error(meta.path.span(), dup_key_message("step", "next"));
                return skip_value(meta);
            }
            out.next_span = Some(meta.path.span());
            parse_next(cx, meta, &mut out.next)
        }
        "foreach" => once(cx, meta, "step", &mut foreach, |meta| {
            let field = parse_foreach(cx, meta)?;
            if field.is_some() {
                out.foreach_key = Some(meta.path.span());
            }
            Ok(field)
        }),
        _ => unknown_key(cx, meta, "step", STEP_KEYS),
    });
    out.foreach = foreach;
}

/// `next = a` or `next = [a, b]`.
fn parse_next(cx: &Ctxt, meta: &ParseNestedMeta, next: &mut Vec<Ident>) -> syn::Result<()> {
    let value = meta.value()?;
    if value.peek(syn::token::Bracket) {
        let content;
        syn::bracketed!(content in value);
        let idents = content.parse_terminated(Ident::parse_any_ident, Token![,])?;
        if idents.is_empty() {
            cx.error(meta.path.span(), "`next = []` names no step");
        }
        next.extend(idents);
    } else {
        next.push(value.call(Ident::parse_any_ident)?);
    }
    Ok(())
}

/// `foreach = field`; `None` (reported) for a string.
fn parse_foreach(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Option<Ident>> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        cx.error(
            lit.span(),
            format!(
                "`foreach` takes a field name, not a string: write `foreach = {}`",
                lit.value()
            ),
        );
        return Ok(None);
    }
    Ok(Some(value.call(Ident::parse_any_ident)?))
}

trait ParseAnyIdent {
    fn parse_any_ident(input: syn::parse::ParseStream) -> syn::Result<Ident>;
}

impl ParseAnyIdent for Ident {
    fn parse_any_ident(input: syn::parse::ParseStream) -> syn::Result<Ident> {
        use syn::ext::IdentExt;
        let lookahead = input.lookahead1();
        if lookahead.peek(Ident::peek_any) {
            Ident::parse_any(input)
        } else {
            Err(syn::Error::new(input.span(), "expected a step name"))
        }
    }
}

fn parse_u32(cx: &Ctxt, meta: &ParseNestedMeta, what: &str, min: u32) -> syn::Result<Option<u32>> {
    let value = meta.value()?;
    let expr: syn::Expr = value.parse()?;
    match &expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => match i.base10_parse::<u32>() {
            Ok(v) if v >= min => Ok(Some(v)),
            Ok(v) => {
                cx.error(
                    i.span(),
                    format!("`{what}` must be at least {min}, got {v}"),
                );
                Ok(None)
            }
            Err(_) => {
                cx.error(i.span(), format!("`{what}` must be a whole number"));
                Ok(None)
            }
        },
        other => {
            cx.error_spanned(
                other,
                format!("`{what}` must be an integer literal, like `{what} = 2`"),
            );
            Ok(None)
        }
    }
}

fn parse_resources(cx: &Ctxt, attr: &Attribute, out: &mut StepAttrs) {
    if matches!(attr.meta, syn::Meta::Path(_)) {
        cx.error(
            Loc::of(attr),
            "`#[resources]` needs at least one of: cpu, memory, gpu (e.g. `#[resources(cpu = 2, memory = \"4GiB\")]`)",
        );
        return;
    }
    each_key(cx, attr, |key, meta| match key {
        "cpu" => once(cx, meta, "resources", &mut out.cpu, |m| {
            parse_u32(cx, m, "cpu", 1)
        }),
        "gpu" => once(cx, meta, "resources", &mut out.gpu, |m| {
            parse_u32(cx, m, "gpu", 0)
        }),
        "memory" => once(cx, meta, "resources", &mut out.memory, |m| {
            parse_memory_value(cx, m)
        }),
        _ => unknown_key(cx, meta, "resources", RESOURCE_KEYS),
    });
}

/// `memory = "4GiB"`.
fn parse_memory_value(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Option<u64>> {
    let expr: syn::Expr = meta.value()?.parse()?;
    match &expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => match parse_memory(&s.value()) {
            Ok(bytes) => return Ok(Some(bytes)),
            Err(msg) => cx.error(s.span(), msg),
        },
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => cx.error(
            i.span(),
            format!(
                "`memory` needs a unit: write `memory = \"{}MiB\"` (units: B, KiB, MiB, GiB, TiB)",
                i.base10_digits()
            ),
        ),
        other => cx.error_spanned(
            other,
            "`memory` must be a string with a binary unit, like `memory = \"4GiB\"`",
        ),
    }
    Ok(None)
}

/// A `memory = "..."` string in bytes. The shared grammar reads a plain number as bytes
/// (for the CLI); in a step a bare `"4096"` is almost surely a forgotten unit, as the
/// integer literal form is, so it is refused here.
fn parse_memory(text: &str) -> Result<u64, String> {
    let number = text.trim();
    if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "memory size `{text}` has no unit: write \"{number}MiB\" or \"{number}GiB\" (units: B, KiB, MiB, GiB, TiB)"
        ));
    }
    match flowlib_units::parse_size(text) {
        Ok(0) => Err(format!("memory size `{text}` must be at least 1 byte")),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(e.to_string()),
    }
}

/// A duration string in whole milliseconds, rounded to the nearest.
fn parse_duration(text: &str) -> Result<u64, String> {
    let d = flowlib_units::parse_duration(text).map_err(|e| e.to_string())?;
    // The grammar caps durations at 2^64 ns, so the milliseconds fit.
    Ok(u64::try_from((d.as_nanos() + 500_000) / 1_000_000).unwrap_or(u64::MAX))
}

fn parse_duration_value(cx: &Ctxt, meta: &ParseNestedMeta, what: &str) -> syn::Result<Option<u64>> {
    let expr: syn::Expr = meta.value()?.parse()?;
    match &expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => match parse_duration(&s.value()) {
            Ok(ms) => Ok(Some(ms)),
            Err(msg) => {
                cx.error(s.span(), msg);
                Ok(None)
            }
        },
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => {
            cx.error(
                i.span(),
                format!(
                    "`{what}` needs a unit: write `{what} = \"{}s\"` (units: ms, s, m, h, d)",
                    i.base10_digits()
                ),
            );
            Ok(None)
        }
        other => {
            cx.error_spanned(
                other,
                format!("`{what}` must be a duration string like \"30s\""),
            );
            Ok(None)
        }
    }
}

fn parse_retry(cx: &Ctxt, attr: &Attribute, out: &mut StepAttrs) {
    let mut times: Option<u32> = None;
    let mut delay: Option<u64> = None;
    let mut platform: Option<u32> = None;
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        each_key(cx, attr, |key, meta| match key {
            "times" => once(cx, meta, "retry", &mut times, |m| {
                parse_u32(cx, m, "times", 0)
            }),
            "platform" => once(cx, meta, "retry", &mut platform, |m| {
                parse_u32(cx, m, "platform", 0)
            }),
            "delay" => once(cx, meta, "retry", &mut delay, |m| {
                parse_duration_value(cx, m, "delay")
            }),
            _ => unknown_key(cx, meta, "retry", RETRY_KEYS),
        });
    }
    out.retry = Some(Retry {
        times: times.unwrap_or(3),
        delay_ms: delay.unwrap_or(1_000),
        platform: platform.unwrap_or(3),
    });
}

/// `#[slurm(partition = "gpu", account = "ml", qos = "high", constraint = "a100",
/// time = "2h", extra = ["--exclusive"], max_parallel = 8)]`.
fn parse_slurm(cx: &Ctxt, attr: &Attribute, out: &mut StepAttrs) {
    let mut s = Slurm::default();
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        let mut extra: Option<Vec<String>> = None;
        each_key(cx, attr, |key, meta| match key {
            "partition" => once(cx, meta, "slurm", &mut s.partition, |m| {
                slurm_word(cx, m, "partition")
            }),
            "account" => once(cx, meta, "slurm", &mut s.account, |m| {
                slurm_word(cx, m, "account")
            }),
            "qos" => once(cx, meta, "slurm", &mut s.qos, |m| slurm_word(cx, m, "qos")),
            "constraint" => once(cx, meta, "slurm", &mut s.constraint, |m| {
                slurm_word(cx, m, "constraint")
            }),
            "time" => once(
                cx,
                meta,
                "slurm",
                &mut s.time_ms,
                |m| match parse_duration_value(cx, m, "time")? {
                    Some(0) => {
                        cx.error(m.path.span(), "a Slurm time limit must be longer than zero");
                        Ok(None)
                    }
                    v => Ok(v),
                },
            ),
            "max_parallel" => once(cx, meta, "slurm", &mut s.max_parallel, |m| {
                parse_u32(cx, m, "max_parallel", 1)
            }),
            "extra" => once(cx, meta, "slurm", &mut extra, |m| slurm_extra(cx, m)),
            _ => unknown_key(cx, meta, "slurm", SLURM_KEYS),
        });
        s.extra = extra.unwrap_or_default();
    }
    out.slurm = Some(s);
}

/// `#[batch(queue = "gpu-spot", job_definition = "flowlib", image = "123.dkr.ecr.../flow:1")]`.
fn parse_batch(cx: &Ctxt, attr: &Attribute, out: &mut StepAttrs) {
    let mut b = Batch::default();
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        each_key(cx, attr, |key, meta| match key {
            "queue" => once(cx, meta, "batch", &mut b.queue, |m| {
                batch_word(cx, m, "queue")
            }),
            "job_definition" => once(cx, meta, "batch", &mut b.job_definition, |m| {
                batch_word(cx, m, "job_definition")
            }),
            "image" => once(cx, meta, "batch", &mut b.image, |m| {
                batch_word(cx, m, "image")
            }),
            _ => unknown_key(cx, meta, "batch", BATCH_KEYS),
        });
    }
    out.batch = Some(b);
}

/// A string value without whitespace: an AWS Batch name, ARN or image reference.
fn batch_word(cx: &Ctxt, meta: &ParseNestedMeta, what: &str) -> syn::Result<Option<String>> {
    let expr: syn::Expr = meta.value()?.parse()?;
    match &expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => {
            let v = s.value();
            if v.trim().is_empty() {
                cx.error(s.span(), format!("`{what}` must not be empty"));
                Ok(None)
            } else if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                cx.error(
                    s.span(),
                    format!(
                        "`{what}` must be one word (no spaces): an AWS Batch name, ARN or image"
                    ),
                );
                Ok(None)
            } else {
                Ok(Some(v))
            }
        }
        other => {
            cx.error_spanned(
                other,
                format!("`{what}` must be a string, like `{what} = \"flowlib\"`"),
            );
            Ok(None)
        }
    }
}

/// A string value without whitespace (it becomes one `sbatch` argument).
fn slurm_word(cx: &Ctxt, meta: &ParseNestedMeta, what: &str) -> syn::Result<Option<String>> {
    let expr: syn::Expr = meta.value()?.parse()?;
    match &expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => {
            let v = s.value();
            if v.trim().is_empty() {
                cx.error(s.span(), format!("`{what}` must not be empty"));
                Ok(None)
            } else if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                cx.error(
                    s.span(),
                    format!("`{what}` must be one word (no spaces): it becomes `--{what}=<value>`"),
                );
                Ok(None)
            } else {
                Ok(Some(v))
            }
        }
        other => {
            cx.error_spanned(
                other,
                format!("`{what}` must be a string, like `{what} = \"gpu\"`"),
            );
            Ok(None)
        }
    }
}

/// `extra = ["--exclusive", "--nodes=2"]`: each an `sbatch` option starting with `-`.
fn slurm_extra(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Option<Vec<String>>> {
    let expr: syn::Expr = meta.value()?.parse()?;
    let syn::Expr::Array(arr) = &expr else {
        cx.error_spanned(
            &expr,
            "`extra` must be a list of sbatch options, like `extra = [\"--exclusive\"]`",
        );
        return Ok(None);
    };
    let mut out = Vec::new();
    for e in &arr.elems {
        match e {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => {
                let v = s.value();
                if !v.starts_with('-') {
                    cx.error(
                        s.span(),
                        format!("`{v}` is not an sbatch option: each item of `extra` starts with `-`, like \"--exclusive\""),
                    );
                } else if v.contains('\n') || v.contains('\0') {
                    cx.error(s.span(), "an sbatch option cannot contain a newline");
                } else {
                    out.push(v);
                }
            }
            other => cx.error_spanned(other, "each item of `extra` must be a string literal"),
        }
    }
    Ok(Some(out))
}

fn parse_timeout(cx: &Ctxt, attr: &Attribute, out: &mut StepAttrs) {
    if matches!(attr.meta, syn::Meta::Path(_)) {
        cx.error(
            Loc::of(attr),
            "`#[timeout]` needs a duration: `#[timeout(\"30m\")]` or `#[timeout(minutes = 30)]`",
        );
        return;
    }
    // `#[timeout("30m")]`
    if let Ok(lit) = attr.parse_args::<LitStr>() {
        match parse_duration(&lit.value()) {
            Ok(0) => cx.error(lit.span(), "a timeout must be longer than zero"),
            Ok(ms) => out.timeout_ms = Some(ms),
            Err(msg) => cx.error(lit.span(), msg),
        }
        return;
    }
    let mut total: u64 = 0;
    let mut seen: Vec<String> = Vec::new();
    let parsed = each_key(cx, attr, |key, meta| {
        let mult = match key {
            "seconds" => 1_000,
            "minutes" => 60_000,
            "hours" => 3_600_000,
            _ => return unknown_key(cx, meta, "timeout", TIMEOUT_KEYS),
        };
        if seen.iter().any(|k| k == key) {
            cx.error(meta.path.span(), dup_key_message("timeout", key));
            return skip_value(meta);
        }
        seen.push(key.to_string());
        let lit: LitInt = meta.value()?.parse()?;
        match lit.base10_parse::<u64>() {
            Ok(v) => total += v * mult,
            Err(e) => cx.syn_error(e),
        }
        Ok(())
    });
    if !parsed {
        return;
    }
    if total == 0 && seen.is_empty() {
        return;
    }
    if total == 0 {
        cx.error(Loc::of(attr), "a timeout must be longer than zero");
        return;
    }
    out.timeout_ms = Some(total);
}

fn parse_catch(cx: &Ctxt, attr: &Attribute, out: &mut StepAttrs) {
    let mut field: Option<Ident> = None;
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        each_key(cx, attr, |key, meta| match key {
            "field" => once(cx, meta, "catch", &mut field, |m| {
                Ok(Some(m.value()?.call(Ident::parse_any_ident)?))
            }),
            _ => unknown_key(cx, meta, "catch", CATCH_KEYS),
        });
    }
    out.catch = Some(Catch { field });
}

fn parse_checkpoint(cx: &Ctxt, attr: &Attribute, out: &mut StepAttrs) {
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        cx.error(Loc::of(attr), "`#[checkpoint]` takes no arguments");
    }
    out.checkpoint = true;
    out.checkpoint_loc = Some(Loc::of(attr));
}

fn parse_cache(cx: &Ctxt, attr: &Attribute, out: &mut StepAttrs) {
    let mut version: Option<String> = None;
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        each_key(cx, attr, |key, meta| match key {
            "version" => {
                once(cx, meta, "cache", &mut version, |m| {
                    let v = m.value()?;
                    if v.peek(LitStr) {
                        let lit: LitStr = v.parse()?;
                        if lit.value().is_empty() {
                            cx.error(lit.span(), "a cache version cannot be empty: write `#[cache(version = \"2\")]`");
                        }
                        Ok(Some(lit.value()))
                    } else if v.peek(LitInt) {
                        let lit: LitInt = v.parse()?;
                        Ok(Some(lit.base10_digits().to_string()))
                    } else {
                        let e: syn::Expr = v.parse()?;
                        cx.error(
                            e.span(),
                            "`version` takes a string or an integer: `#[cache(version = \"2\")]`",
                        );
                        Ok(None)
                    }
                })
            }
            _ => unknown_key(cx, meta, "cache", CACHE_KEYS),
        });
    }
    out.cache = Some(Cache {
        version,
        loc: Loc::of(attr),
    });
}

#[cfg(test)]
mod tests;

//! The shape of each step: its `next` targets, the one start and one end step, and the
//! rules on a single step's attributes and signature.

use std::collections::{BTreeSet, HashMap};

use proc_macro2::Span;

use crate::ast::{FlowIr, Step};
use crate::attr::StepAttrs;
use crate::ctxt::{did_you_mean, Ctxt};

/// Each step's `next` targets as indices; false when some target is not a step.
pub(super) fn resolve_next(cx: &Ctxt, ir: &FlowIr) -> (Vec<Vec<usize>>, bool) {
    let steps = &ir.steps;
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut ok = true;
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for target in &s.attrs.next {
            let t = target.to_string();
            let t = t.strip_prefix("r#").unwrap_or(&t);
            match index.get(t) {
                Some(&j) if seen.insert(j) => next[i].push(j),
                Some(_) => {
                    cx.error(
                        target.span(),
                        format!("step `{t}` is listed twice in `next`"),
                    );
                    ok = false;
                }
                None => {
                    next_target_is_a_step(cx, ir, target, t);
                    ok = false;
                }
            }
        }
    }
    (next, ok)
}

/// `next = t` names no step: say so, unless `t` is a method whose mistake is reported.
fn next_target_is_a_step(cx: &Ctxt, ir: &FlowIr, target: &syn::Ident, t: &str) {
    if let Some((_, reported)) = ir.other_methods.iter().find(|(m, _)| m == t) {
        if !reported {
            cx.error(
                target.span(),
                format!("`{t}` is a method but not a step: mark it `#[step(...)]`"),
            );
        }
        return;
    }
    let names: Vec<&str> = ir.steps.iter().map(|s| s.name.as_str()).collect();
    let hint = did_you_mean(t, names.iter().copied())
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    cx.error(
        target.span(),
        format!(
            "unknown step `{t}` in `next`{hint}; the steps of this flow are: {}",
            names.join(", ")
        ),
    );
}

pub(super) fn one_start_step(cx: &Ctxt, ir: &FlowIr, starts: &[usize]) -> bool {
    match starts.len() {
        0 => cx.error_spanned(
            &ir.self_ty,
            "this flow has no start step: mark the first step `#[step(start, next = ...)]`",
        ),
        1 => return true,
        _ => report_extra(
            cx,
            &ir.steps,
            starts,
            |a| a.start,
            |first, s| {
                format!("a flow has exactly one start step, but `{first}` and `{s}` are both marked `start`: remove `start` from `{s}`")
            },
        ),
    }
    false
}

pub(super) fn one_end_step(cx: &Ctxt, ir: &FlowIr, ends: &[usize], dangling: &[usize]) -> bool {
    match ends.len() {
        0 if !dangling.is_empty() => {
            // The usual cause: the last step was not marked `end`. One error per such step.
            for s in dangling.iter().map(|&i| &ir.steps[i]) {
                cx.error(
                    s.loc(),
                    format!(
                        "step `{}` has no `next` and the flow has no end step: mark it `#[step(end)]` if it is the last step, or add `next = <step>`",
                        s.name
                    ),
                );
            }
        }
        0 => cx.error_spanned(
            &ir.self_ty,
            "this flow has no end step: mark the last step `#[step(end)]`",
        ),
        1 => return true,
        _ => report_extra(
            cx,
            &ir.steps,
            ends,
            |a| a.end,
            |first, s| {
                format!("a flow has exactly one end step, but `{first}` and `{s}` are both marked `end`: give `{s}` a `next` instead")
            },
        ),
    }
    false
}

/// Report each of the `marked` steps after the first, at its mark.
fn report_extra(
    cx: &Ctxt,
    steps: &[Step],
    marked: &[usize],
    mark: fn(&StepAttrs) -> Option<Span>,
    message: impl Fn(&str, &str) -> String,
) {
    let Some((&first, rest)) = marked.split_first() else {
        return;
    };
    for s in rest.iter().map(|&i| &steps[i]) {
        let span = mark(&s.attrs).expect("marked");
        cx.error(span, message(&steps[first].name, &s.name));
    }
}

pub(super) fn end_step_has_no_next(cx: &Ctxt, s: &Step) -> bool {
    let (Some(_), Some(span)) = (s.attrs.end, s.attrs.next_span) else {
        return true;
    };
    cx.error(
        span,
        format!(
            "the end step `{}` cannot have `next`: nothing runs after the end, remove `next = ...` (or `end` if a step should follow)",
            s.name
        ),
    );
    false
}

pub(super) fn start_step_is_not_end(cx: &Ctxt, s: &Step) -> bool {
    let (Some(_), Some(start)) = (s.attrs.end, s.attrs.start) else {
        return true;
    };
    cx.error(
        start,
        "a step cannot be both `start` and `end`; a flow needs at least two steps",
    );
    false
}

/// A step without `next` in a flow that has an end step (`dangling`).
pub(super) fn step_has_next(cx: &Ctxt, s: &Step, dangling: bool) -> bool {
    if !dangling {
        return true;
    }
    cx.error(
        s.loc(),
        format!(
            "step `{}` has no `next`: add `next = <step>` to its `#[step(...)]`",
            s.name
        ),
    );
    false
}

pub(super) fn foreach_has_one_next(cx: &Ctxt, s: &Step, next: &[usize]) -> bool {
    let a = &s.attrs;
    match &a.foreach {
        Some(field) if next.len() > 1 || a.next.len() > 1 => {
            cx.error(
                field.span(),
                format!(
                    "a `foreach` step has exactly one `next` (the step run for each item), but `{}` has {}: keep one and branch in that step if needed",
                    s.name,
                    a.next.len()
                ),
            );
            false
        }
        _ => true,
    }
}

pub(super) fn end_step_does_not_foreach(cx: &Ctxt, s: &Step) -> bool {
    match (&s.attrs.foreach, s.attrs.end) {
        (Some(field), Some(_)) => {
            cx.error(field.span(), "the end step cannot start a `foreach`");
            false
        }
        _ => true,
    }
}

pub(super) fn join_does_not_split(cx: &Ctxt, s: &Step) -> bool {
    let a = &s.attrs;
    let splits = a.foreach.is_some() || a.next.len() > 1;
    match a.join {
        Some(join) if splits => {
            cx.error(
                join,
                format!(
                    "step `{}` both joins and splits: join here with a single `next = <step>`, and split in that next step",
                    s.name
                ),
            );
            false
        }
        _ => true,
    }
}

pub(super) fn start_step_is_not_join(cx: &Ctxt, s: &Step) -> bool {
    let (Some(_), Some(start)) = (s.attrs.join, s.attrs.start) else {
        return true;
    };
    cx.error(
        start,
        "the start step cannot be a join: there is nothing before it to join",
    );
    false
}

/// A signature rule: the graph stays well formed, so it does not stop the graph rules.
pub(super) fn join_takes_inputs(cx: &Ctxt, s: &Step) {
    if let (Some(join), None) = (s.attrs.join, s.inputs_loc()) {
        cx.error(
            join,
            format!(
                "join step `{}` needs an inputs parameter: `fn {}(&mut self, inputs: Inputs<Self>)`",
                s.name, s.name
            ),
        );
    }
}

/// A signature rule, like [`join_takes_inputs`].
pub(super) fn only_joins_take_inputs(cx: &Ctxt, s: &Step) {
    if let (None, Some(loc)) = (s.attrs.join, s.inputs_loc()) {
        cx.error(
            loc,
            format!(
                "step `{}` takes `Inputs` but is not a join: mark it `#[step(join, ...)]` or remove the parameter",
                s.name
            ),
        );
    }
}

//! Graph validation. Every rule reports a spanned error on the offending code and all
//! errors are collected, so one compilation shows every mistake in the flow.
//!
//! Besides validating, this computes what the runtime needs to schedule the graph:
//! predecessors, the split each join closes, and each step's foreach depth.

mod graph;
mod shape;
mod splits;
#[cfg(test)]
mod tests;

use crate::ast::{FlowIr, Step};
use crate::attr::StepAttrs;
use crate::ctxt::Ctxt;
use graph::{topo_order, Graph};
use shape::{
    end_step_does_not_foreach, end_step_has_no_next, foreach_has_one_next, join_does_not_split,
    join_takes_inputs, one_end_step, one_start_step, only_joins_take_inputs, resolve_next,
    start_step_is_not_end, start_step_is_not_join, step_has_next,
};
use splits::SplitWalk;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FrameKind {
    Foreach,
    Branch,
}

/// An open split on the way from `start` to a step.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Frame {
    pub split: usize,
    pub kind: FrameKind,
}

/// The validated graph.
pub(crate) struct Analysis {
    pub next: Vec<Vec<usize>>,
    pub preds: Vec<Vec<usize>>,
    /// For join steps: the split step they close and its kind.
    pub closes: Vec<Option<Frame>>,
    /// For split steps: the join that closes them.
    pub closed_by: Vec<Option<usize>>,
    /// Number of enclosing foreach splits (the length of the task's index path).
    pub depth: Vec<usize>,
}

/// Check the flow; returns the analysis when the graph is well formed.
///
/// The rules run in this order, and report in it: first the shape of each step, then the
/// graph (only for a well-formed shape), then the splits and joins (only for a graph every
/// step of which is reachable and acyclic).
pub(crate) fn check(cx: &Ctxt, ir: &FlowIr) -> Option<Analysis> {
    let steps = &ir.steps;
    if steps.is_empty() {
        return None;
    }
    let (next, mut ok) = resolve_next(cx, ir);
    // A `#[step(...)]` with a mistake of its own may have lost its `next`: graph rules would
    // only report consequences of that mistake.
    ok &= !steps.iter().any(|s| s.attrs.step_errors);
    let starts = marked(steps, |a| a.start.is_some());
    let ends = marked(steps, |a| a.end.is_some());
    // Steps with neither `next` nor `end` (and no mistake in their `#[step]` already
    // reported): the step after them is missing.
    let dangling = marked(steps, |a| {
        a.end.is_none() && a.next.is_empty() && a.next_span.is_none() && !a.step_errors
    });
    ok &= one_start_step(cx, ir, &starts);
    ok &= one_end_step(cx, ir, &ends, &dangling);
    for (i, s) in steps.iter().enumerate() {
        ok &= end_step_has_no_next(cx, s);
        ok &= start_step_is_not_end(cx, s);
        ok &= step_has_next(cx, s, dangling.contains(&i) && !ends.is_empty());
        ok &= foreach_has_one_next(cx, s, &next[i]);
        ok &= end_step_does_not_foreach(cx, s);
        ok &= join_does_not_split(cx, s);
        ok &= start_step_is_not_join(cx, s);
        join_takes_inputs(cx, s);
        only_joins_take_inputs(cx, s);
    }
    if !ok {
        return None;
    }

    let graph = Graph::new(cx, steps, next, starts[0], ends[0]);
    if !graph.nothing_points_at_start() {
        return None;
    }
    let all_reachable = graph.every_step_is_reachable();
    if !graph.is_acyclic() || !all_reachable {
        return None;
    }

    let order = topo_order(&graph.next, &graph.preds);
    let mut walk = SplitWalk::new(&graph);
    let mut ok = true;
    for &i in order.iter().filter(|&&i| i != graph.start) {
        ok &= walk.visit(i);
    }
    let frames_ok = ok;
    ok &= walk.end_step_is_outside_splits(frames_ok);
    if ok {
        ok &= walk.every_split_is_joined(&order);
    }
    if frames_ok {
        ok &= walk.items_follow_a_foreach();
    }
    ok.then(|| walk.into_analysis())
}

/// The indices of the steps whose attributes satisfy `pred`.
fn marked(steps: &[Step], pred: impl Fn(&StepAttrs) -> bool) -> Vec<usize> {
    (0..steps.len())
        .filter(|&i| pred(&steps[i].attrs))
        .collect()
}

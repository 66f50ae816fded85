//! Graph validation. Every rule reports a spanned error on the offending code and all
//! errors are collected, so one compilation shows every mistake in the flow.
//!
//! Besides validating, this computes what the runtime needs to schedule the graph:
//! predecessors, the split each join closes, and each step's foreach depth.

use std::collections::{BTreeSet, HashMap};

use proc_macro2::Span;

use crate::ast::{FlowIr, Step};
use crate::attr::StepAttrs;
use crate::ctxt::{did_you_mean, Ctxt, Loc};

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

/// Each step's `next` targets as indices; false when some target is not a step.
fn resolve_next(cx: &Ctxt, ir: &FlowIr) -> (Vec<Vec<usize>>, bool) {
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

fn one_start_step(cx: &Ctxt, ir: &FlowIr, starts: &[usize]) -> bool {
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

fn one_end_step(cx: &Ctxt, ir: &FlowIr, ends: &[usize], dangling: &[usize]) -> bool {
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

fn end_step_has_no_next(cx: &Ctxt, s: &Step) -> bool {
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

fn start_step_is_not_end(cx: &Ctxt, s: &Step) -> bool {
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
fn step_has_next(cx: &Ctxt, s: &Step, dangling: bool) -> bool {
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

fn foreach_has_one_next(cx: &Ctxt, s: &Step, next: &[usize]) -> bool {
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

fn end_step_does_not_foreach(cx: &Ctxt, s: &Step) -> bool {
    match (&s.attrs.foreach, s.attrs.end) {
        (Some(field), Some(_)) => {
            cx.error(field.span(), "the end step cannot start a `foreach`");
            false
        }
        _ => true,
    }
}

fn join_does_not_split(cx: &Ctxt, s: &Step) -> bool {
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

fn start_step_is_not_join(cx: &Ctxt, s: &Step) -> bool {
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
fn join_takes_inputs(cx: &Ctxt, s: &Step) {
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
fn only_joins_take_inputs(cx: &Ctxt, s: &Step) {
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

/// The edges of a flow whose steps are each well formed.
struct Graph<'a> {
    cx: &'a Ctxt,
    steps: &'a [Step],
    next: Vec<Vec<usize>>,
    preds: Vec<Vec<usize>>,
    start: usize,
    end: usize,
}

impl<'a> Graph<'a> {
    fn new(
        cx: &'a Ctxt,
        steps: &'a [Step],
        next: Vec<Vec<usize>>,
        start: usize,
        end: usize,
    ) -> Self {
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
        for (i, ns) in next.iter().enumerate() {
            for &j in ns {
                preds[j].push(i);
            }
        }
        Graph {
            cx,
            steps,
            next,
            preds,
            start,
            end,
        }
    }

    fn nothing_points_at_start(&self) -> bool {
        let steps = self.steps;
        let start = &steps[self.start];
        let Some(&p) = self.preds[self.start].first() else {
            return true;
        };
        self.cx.error(
            next_span_to(&steps[p], &start.name),
            format!(
                "`next = {}` points back at the start step, which runs only once, first: point `next` at another step",
                start.name
            ),
        );
        false
    }

    fn every_step_is_reachable(&self) -> bool {
        let mut reached = vec![false; self.steps.len()];
        let mut stack = vec![self.start];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut reached[i], true) {
                continue;
            }
            stack.extend(self.next[i].iter().copied());
        }
        let mut ok = true;
        for (s, _) in self.steps.iter().zip(reached).filter(|(_, r)| !r) {
            self.cx.error(
                s.ident.span(),
                format!(
                    "step `{}` is unreachable from the start step `{}`: name it in some step's `next`, or remove it",
                    s.name, self.steps[self.start].name
                ),
            );
            ok = false;
        }
        ok
    }

    fn is_acyclic(&self) -> bool {
        let steps = self.steps;
        let Some((from, to, path)) = find_cycle(&self.next, self.start) else {
            return true;
        };
        let cycle: Vec<&str> = path.iter().map(|&i| steps[i].name.as_str()).collect();
        self.cx.error(
            next_span_to(&steps[from], &steps[to].name),
            format!(
                "`next = {}` creates a cycle ({} -> {}): a flow is acyclic, so point `next` forward and loop inside a step instead",
                steps[to].name,
                cycle.join(" -> "),
                steps[to].name
            ),
        );
        false
    }
}

/// The splits open along every path, computed step by step in topological order, with
/// the rules about where joins may be.
struct SplitWalk<'g, 'a> {
    g: &'g Graph<'a>,
    frames: Vec<Option<Vec<Frame>>>,
    closes: Vec<Option<Frame>>,
    closed_by: Vec<Option<usize>>,
    /// For the step right after a foreach: that foreach.
    consumer_of: Vec<Option<usize>>,
    /// Splits some error already mentions: later rules stay quiet about them, so one
    /// mistake gives one message.
    reported: BTreeSet<usize>,
}

impl<'g, 'a> SplitWalk<'g, 'a> {
    fn new(g: &'g Graph<'a>) -> Self {
        let n = g.steps.len();
        let mut frames = vec![None; n];
        frames[g.start] = Some(Vec::new());
        SplitWalk {
            g,
            frames,
            closes: vec![None; n],
            closed_by: vec![None; n],
            consumer_of: vec![None; n],
            reported: BTreeSet::new(),
        }
    }

    fn mentions_reported(&self, f: &[Frame]) -> bool {
        f.iter().any(|fr| self.reported.contains(&fr.split))
    }

    /// Compute the frames of step `i` (its predecessors are done); false on a broken rule.
    fn visit(&mut self, i: usize) -> bool {
        let steps = self.g.steps;
        // Frames arriving from each predecessor.
        let incoming: Vec<(usize, Vec<Frame>)> = self.g.preds[i]
            .iter()
            .map(|&p| {
                let f = self.frames[p].as_ref().unwrap();
                (p, successor_frames(&steps[p], p, f))
            })
            .collect();
        let first = incoming[0].1.clone();
        let Some(join) = steps[i].attrs.join else {
            self.frames[i] = Some(first);
            if incoming.len() > 1 {
                return self.several_incoming_means_join(i, &incoming);
            }
            let p = incoming[0].0;
            if steps[p].attrs.foreach.is_some() {
                self.consumer_of[i] = Some(p);
            }
            return true;
        };
        if !self.join_merges_one_split(i, join, &incoming) {
            self.frames[i] = Some(first);
            return false;
        }
        let Some(top) = first.last().copied() else {
            self.join_has_a_split(i, join);
            self.frames[i] = Some(Vec::new());
            return false;
        };
        let mut ok = self.split_is_closed_once(i, join, top);
        ok &= self.foreach_join_has_one_incoming(i, join, top);
        ok &= self.branch_join_is_reached_by_every_arm(i, join, top);
        self.closes[i] = Some(top);
        let mut f = first;
        f.pop();
        self.frames[i] = Some(f);
        ok
    }

    fn several_incoming_means_join(&self, i: usize, incoming: &[(usize, Vec<Frame>)]) -> bool {
        let steps = self.g.steps;
        if !incoming.iter().any(|(_, f)| self.mentions_reported(f)) {
            let names: Vec<String> = incoming
                .iter()
                .map(|(p, _)| format!("`{}`", steps[*p].name))
                .collect();
            self.g.cx.error(
                steps[i].ident.span(),
                format!(
                    "step `{}` has several incoming steps ({}) but is not a join: mark it `#[step(join, ...)]` and take `inputs: Inputs<Self>`",
                    steps[i].name,
                    names.join(", ")
                ),
            );
        }
        false
    }

    fn join_merges_one_split(
        &mut self,
        i: usize,
        join: Span,
        incoming: &[(usize, Vec<Frame>)],
    ) -> bool {
        let steps = self.g.steps;
        let first = &incoming[0].1;
        let Some((p, other)) = incoming.iter().find(|(_, f)| f != first) else {
            return true;
        };
        if !self.mentions_reported(first) && !self.mentions_reported(other) {
            self.g.cx.error(
                join,
                format!(
                    "join `{}` merges steps from different splits (`{}` and `{}`): a join closes exactly one split, so join each split separately",
                    steps[i].name, steps[incoming[0].0].name, steps[*p].name
                ),
            );
        }
        self.reported
            .extend(first.iter().chain(other).map(|f| f.split));
        false
    }

    fn join_has_a_split(&self, i: usize, join: Span) {
        self.g.cx.error(
            join,
            format!(
                "join `{}` has no split to close (no `foreach` or `next = [a, b]` comes before it): remove `join` and the `inputs` parameter",
                self.g.steps[i].name
            ),
        );
    }

    fn split_is_closed_once(&mut self, i: usize, join: Span, top: Frame) -> bool {
        let steps = self.g.steps;
        let Some(other) = self.closed_by[top.split] else {
            self.closed_by[top.split] = Some(i);
            return true;
        };
        if !self.reported.contains(&top.split) {
            self.g.cx.error(
                join,
                format!(
                    "the split at `{}` is already closed by `{}`: every arm of a split must reach the same join",
                    steps[top.split].name, steps[other].name
                ),
            );
        }
        self.reported.insert(top.split);
        false
    }

    fn foreach_join_has_one_incoming(&mut self, i: usize, join: Span, top: Frame) -> bool {
        let preds = &self.g.preds[i];
        if top.kind != FrameKind::Foreach || preds.len() == 1 {
            return true;
        }
        self.g.cx.error(
            join,
            format!(
                "join `{}` closes the foreach at `{}` and must have exactly one incoming step, found {}",
                self.g.steps[i].name,
                self.g.steps[top.split].name,
                preds.len()
            ),
        );
        self.reported.insert(top.split);
        false
    }

    fn branch_join_is_reached_by_every_arm(&mut self, i: usize, join: Span, top: Frame) -> bool {
        let (steps, next) = (self.g.steps, &self.g.next);
        let (preds, arms) = (&self.g.preds[i], &next[top.split]);
        if top.kind != FrameKind::Branch || preds.len() == arms.len() {
            return true;
        }
        // Name the arms that never get here.
        let missing: Vec<String> = arms
            .iter()
            .filter(|&&arm| !reaches(next, arm, i))
            .map(|&arm| format!("`{}`", steps[arm].name))
            .collect();
        let what = if missing.is_empty() {
            format!("{} of its {} arms reach it", preds.len(), arms.len())
        } else if missing.len() == 1 {
            format!("its arm {} never reaches it", missing[0])
        } else {
            format!("its arms {} never reach it", missing.join(", "))
        };
        self.g.cx.error(
            join,
            format!(
                "join `{}` closes the branch at `{}`, but {what}: every arm of a branch must end in its join",
                steps[i].name, steps[top.split].name
            ),
        );
        self.reported.insert(top.split);
        false
    }

    /// The end step reached inside a split: point at the edge that enters it (reported
    /// only when the joins are otherwise right).
    fn end_step_is_outside_splits(&mut self, report: bool) -> bool {
        let (steps, end) = (self.g.steps, self.g.end);
        let Some(top) = self.frames[end].as_ref().and_then(|f| f.last()).copied() else {
            return true;
        };
        if report && !self.reported.contains(&top.split) {
            let what = match top.kind {
                FrameKind::Foreach => "foreach",
                FrameKind::Branch => "branch",
            };
            let into_end = self.g.preds[end].first().copied().unwrap_or(top.split);
            self.g.cx.error(
                next_span_to(&steps[into_end], &steps[end].name),
                format!(
                    "`next = {}` reaches the end step inside the {what} opened at `{}`: close the split first with a `#[step(join, next = {})]` step taking `inputs: Inputs<Self>`",
                    steps[end].name, steps[top.split].name, steps[end].name
                ),
            );
            self.reported.insert(top.split);
        }
        false
    }

    /// Splits never joined (when the end step is not inside them, something else is
    /// already wrong; this is the fallback message, given for the first such split).
    fn every_split_is_joined(&self, order: &[usize]) -> bool {
        let steps = self.g.steps;
        let unjoined = order.iter().map(|&i| (i, &steps[i])).find(|&(i, s)| {
            let splits = s.attrs.foreach.is_some() || self.g.next[i].len() > 1;
            splits && self.closed_by[i].is_none() && !self.reported.contains(&i)
        });
        let Some((_, s)) = unjoined else {
            return true;
        };
        let what = if s.attrs.foreach.is_some() {
            "foreach"
        } else {
            "branch"
        };
        self.g.cx.error(
            s.loc(),
            format!(
                "the {what} opened at `{}` is never joined: add a `#[step(join, ...)]` step taking `inputs: Inputs<Self>` that every arm reaches",
                s.name
            ),
        );
        false
    }

    /// Item parameters belong to the step right after a foreach.
    fn items_follow_a_foreach(&self) -> bool {
        let mut ok = true;
        for (i, s) in self.g.steps.iter().enumerate() {
            if let (Some((_, _, loc)), None) = (s.item(), self.consumer_of[i]) {
                self.g.cx.error(
                    loc,
                    format!(
                        "step `{}` takes a foreach item parameter but does not follow a `foreach`: only the step named by a foreach's `next` receives an item, so remove this parameter",
                        s.name
                    ),
                );
                ok = false;
            }
        }
        ok
    }

    fn into_analysis(self) -> Analysis {
        let depth = self
            .frames
            .iter()
            .map(|f| {
                f.as_ref()
                    .map(|f| f.iter().filter(|fr| fr.kind == FrameKind::Foreach).count())
                    .unwrap_or(0)
            })
            .collect();
        Analysis {
            next: self.g.next.clone(),
            preds: self.g.preds.clone(),
            closes: self.closes,
            closed_by: self.closed_by,
            depth,
        }
    }
}

/// Frames seen by the successors of step `p` whose own frames are `f`.
fn successor_frames(step: &Step, p: usize, f: &[Frame]) -> Vec<Frame> {
    let mut out = f.to_vec();
    if step.attrs.foreach.is_some() {
        out.push(Frame {
            split: p,
            kind: FrameKind::Foreach,
        });
    } else if step.attrs.next.len() > 1 {
        out.push(Frame {
            split: p,
            kind: FrameKind::Branch,
        });
    }
    out
}

/// The `next` target named `target` in `step`, or its `#[step]` attribute.
fn next_span_to(step: &Step, target: &str) -> Loc {
    step.attrs
        .next
        .iter()
        .find(|i| *i == target)
        .map(|i| i.span().into())
        .unwrap_or_else(|| step.loc())
}

/// Whether `to` can be reached from `from` (the graph is acyclic here).
fn reaches(next: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; next.len()];
    let mut stack = vec![from];
    while let Some(i) = stack.pop() {
        if i == to {
            return true;
        }
        if !std::mem::replace(&mut seen[i], true) {
            stack.extend(next[i].iter().copied());
        }
    }
    false
}

/// Find a cycle reachable from `start`; returns the closing edge and the path around it.
fn find_cycle(next: &[Vec<usize>], start: usize) -> Option<(usize, usize, Vec<usize>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Grey,
        Black,
    }
    let mut color = vec![Color::White; next.len()];
    let mut path: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        next: &[Vec<usize>],
        color: &mut [Color],
        path: &mut Vec<usize>,
    ) -> Option<(usize, usize, Vec<usize>)> {
        color[i] = Color::Grey;
        path.push(i);
        for &j in &next[i] {
            match color[j] {
                Color::Grey => {
                    let pos = path.iter().position(|&x| x == j).unwrap();
                    return Some((i, j, path[pos..].to_vec()));
                }
                Color::White => {
                    if let Some(c) = visit(j, next, color, path) {
                        return Some(c);
                    }
                }
                Color::Black => {}
            }
        }
        path.pop();
        color[i] = Color::Black;
        None
    }
    let found = visit(start, next, &mut color, &mut path);
    if found.is_some() {
        return found;
    }
    // Cycles among steps not reachable from start are reported as unreachable instead.
    None
}

fn topo_order(next: &[Vec<usize>], preds: &[Vec<usize>]) -> Vec<usize> {
    let mut indeg: Vec<usize> = preds.iter().map(|p| p.len()).collect();
    let mut queue: std::collections::VecDeque<usize> =
        (0..next.len()).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(next.len());
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &j in &next[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                queue.push_back(j);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::parse_flow;

    /// Parse and check an impl block: the messages, and whether the flow is implementable.
    fn run(item: syn::ItemImpl) -> (Vec<String>, Option<Analysis>, bool) {
        let cx = Ctxt::new();
        let ir = parse_flow(&cx, &item);
        let an = check(&cx, &ir);
        let failed = cx.has_errors();
        (cx.messages(), an, failed)
    }

    /// The single message of a flow with one mistake.
    fn one_error(item: syn::ItemImpl) -> String {
        let (msgs, an, failed) = run(item);
        assert!(failed, "expected an error");
        assert!(an.is_none() || msgs.len() == 1);
        assert_eq!(msgs.len(), 1, "expected exactly one message, got {msgs:#?}");
        msgs.into_iter().next().unwrap()
    }

    #[test]
    fn linear_flow_is_valid() {
        let (msgs, an, failed) = run(syn::parse_quote! {
            impl F {
                #[step(start, next = b)] fn a(&mut self) -> Result<()> { Ok(()) }
                #[step(next = c)] fn b(&mut self) {}
                #[step(end)] fn c(&mut self) -> Result<()> { Ok(()) }
            }
        });
        assert!(msgs.is_empty(), "{msgs:?}");
        assert!(!failed);
        let an = an.unwrap();
        assert_eq!(an.next, vec![vec![1], vec![2], vec![]]);
        assert_eq!(an.preds, vec![vec![], vec![0], vec![1]]);
        assert_eq!(an.depth, vec![0, 0, 0]);
    }

    #[test]
    fn nested_foreach_and_branch_frames() {
        let (msgs, an, _) = run(syn::parse_quote! {
            impl F {
                #[step(start, next = outer, foreach = xs)] fn start(&mut self) {}
                #[step(next = inner, foreach = ys)] fn outer(&mut self, x: &u32) {}
                #[step(next = [l, r])] fn inner(&mut self, y: u32) {}
                #[step(next = merge)] fn l(&mut self) {}
                #[step(next = merge)] fn r(&mut self) {}
                #[step(join, next = join_inner)] fn merge(&mut self, inputs: Inputs<Self>) {}
                #[step(join, next = join_outer)] fn join_inner(&mut self, inputs: Inputs<Self>) {}
                #[step(join, next = end)] fn join_outer(&mut self, inputs: Inputs<Self>, ctx: &mut Ctx) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msgs.is_empty(), "{msgs:?}");
        let an = an.unwrap();
        assert_eq!(an.depth, vec![0, 1, 2, 2, 2, 2, 1, 0, 0]);
        assert_eq!(an.closed_by[0], Some(7));
        assert_eq!(an.closed_by[1], Some(6));
        assert_eq!(an.closed_by[2], Some(5));
        assert_eq!(
            an.closes[5],
            Some(Frame {
                split: 2,
                kind: FrameKind::Branch
            })
        );
        assert_eq!(
            an.closes[7],
            Some(Frame {
                split: 0,
                kind: FrameKind::Foreach
            })
        );
    }

    #[test]
    fn unknown_next_target_suggests() {
        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = fti)] fn start(&mut self) {}
                #[step(next = end)] fn fit(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("unknown step `fti`"), "{msg}");
        assert!(msg.contains("did you mean `fit`?"), "{msg}");
    }

    #[test]
    fn start_and_end_counts() {
        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(next = end)] fn a(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("no start step"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = end)] fn a(&mut self) {}
                #[step(start, next = end)] fn b(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("exactly one start step"), "{msg}");

        // No end step: the dangling step is named, once.
        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = b)] fn a(&mut self) {}
                #[step] fn b(&mut self) {}
            }
        });
        assert!(
            msg.contains("step `b` has no `next` and the flow has no end step"),
            "{msg}"
        );

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = a)] fn start(&mut self) {}
                #[step(next = b)] fn a(&mut self) {}
                #[step(next = a)] fn b(&mut self) {}
            }
        });
        assert!(msg.contains("no end step"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = [a, b])] fn start(&mut self) {}
                #[step(end)] fn a(&mut self) {}
                #[step(end)] fn b(&mut self) {}
            }
        });
        assert!(msg.contains("exactly one end step"), "{msg}");
    }

    #[test]
    fn next_rules() {
        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = end)] fn start(&mut self) {}
                #[step(end, next = start)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("cannot have `next`"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = a)] fn start(&mut self) {}
                #[step] fn a(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("step `a` has no `next`"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = [a, b], foreach = xs)] fn start(&mut self) {}
                #[step(next = b)] fn a(&mut self, x: &u8) {}
                #[step(join, next = end)] fn b(&mut self, inputs: Inputs<Self>) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("exactly one `next`"), "{msg}");
    }

    #[test]
    fn unreachable_and_cycles() {
        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = end)] fn start(&mut self) {}
                #[step(next = end)] fn orphan(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("`orphan` is unreachable"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = a)] fn start(&mut self) {}
                #[step(next = b)] fn a(&mut self) {}
                #[step(next = [a, end])] fn b(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("creates a cycle (a -> b -> a)"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = a)] fn start(&mut self) {}
                #[step(next = start)] fn a(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("points back at the start step"), "{msg}");
    }

    #[test]
    fn joins_close_exactly_their_split() {
        // A branch join reached by one arm only: the missing arm is named, and the step
        // where the arms meet is not reported as well.
        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = [left, right])] fn start(&mut self) {}
                #[step(next = merge)] fn left(&mut self) {}
                #[step(next = end)] fn right(&mut self) {}
                #[step(join, next = end)] fn merge(&mut self, inputs: Inputs<Self>) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("its arm `right` never reaches it"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = merge)] fn start(&mut self) {}
                #[step(join, next = end)] fn merge(&mut self, inputs: Inputs<Self>) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("has no split to close"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = [fan, plain])] fn start(&mut self) {}
                #[step(next = fit, foreach = xs)] fn fan(&mut self) {}
                #[step(next = merge)] fn fit(&mut self, x: &f64) {}
                #[step(next = merge)] fn plain(&mut self) {}
                #[step(join, next = end)] fn merge(&mut self, inputs: Inputs<Self>) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("merges steps from different splits"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = [a, b])] fn start(&mut self) {}
                #[step(next = m)] fn a(&mut self) {}
                #[step(next = m)] fn b(&mut self) {}
                #[step(join, next = fit, foreach = xs)] fn m(&mut self, inputs: Inputs<Self>) {}
                #[step(next = j)] fn fit(&mut self, x: &f64) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("both joins and splits"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = fit, foreach = xs)] fn start(&mut self) {}
                #[step(next = end)] fn fit(&mut self, x: &f64) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(
            msg.contains("reaches the end step inside the foreach opened at `start`"),
            "{msg}"
        );
    }

    #[test]
    fn step_signatures() {
        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = fit, foreach = xs)] fn start(&mut self) {}
                #[step(next = pick)] fn fit(&mut self, x: &f64) {}
                #[step(join, next = end)] fn pick(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(
            msg.contains("join step `pick` needs an inputs parameter"),
            "{msg}"
        );

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = end)] fn start(&mut self, inputs: Inputs<Self>) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("takes `Inputs` but is not a join"), "{msg}");

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = fit)] fn start(&mut self) {}
                #[step(next = end)] fn fit(&mut self, x: &f64) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("does not follow a `foreach`"), "{msg}");

        for receiver in [
            quote::quote!(&self),
            quote::quote!(self),
            quote::quote!(mut self),
        ] {
            let msg = one_error(syn::parse_quote! {
                impl F {
                    #[step(start, next = end)] fn start(#receiver) {}
                    #[step(end)] fn end(&mut self) {}
                }
            });
            assert!(msg.contains("a step takes `&mut self`"), "{msg}");
        }
        let (msgs, _, _) = run(syn::parse_quote! {
            impl F {
                #[step(start, next = end)] fn start(self: &mut Self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msgs.is_empty(), "{msgs:?}");
    }

    #[test]
    fn names() {
        // rustc reports duplicate methods itself: no message, but no `Flow` impl either.
        let (msgs, _, failed) = run(syn::parse_quote! {
            impl F {
                #[step(start, next = end)] fn start(&mut self) {}
                #[step(next = end)] fn start(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msgs.is_empty(), "{msgs:?}");
        assert!(failed);

        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = run)] fn start(&mut self) {}
                #[step(next = end)] fn run(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("`run` is a reserved name"), "{msg}");
    }

    #[test]
    fn a_bad_step_attribute_does_not_cascade() {
        // `nxt` loses the `next`: neither "no next" nor "`end` is unreachable" follows.
        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = fit)] fn start(&mut self) {}
                #[step(nxt = end)] fn fit(&mut self) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(
            msg.contains("unknown `#[step]` key `nxt` (did you mean `next`?)"),
            "{msg}"
        );
    }

    #[test]
    fn every_mistake_is_collected() {
        let (msgs, an, _) = run(syn::parse_quote! {
            impl F {
                #[step(start, next = fit, foreach = xs)] fn start(&mut self) {}
                #[step(next = pik)]
                #[resources(cpu = 2, memory = "4GB")]
                #[retry(times = 3, dealy = "1s")]
                fn fit(&mut self, x: &f64) {}
                #[step(join, next = end)] fn pick(&mut self) {}
                #[step(end)] #[timeout("1 fortnight")] fn end(&mut self) {}
            }
        });
        assert!(an.is_none());
        let all = msgs.join("\n");
        for needle in [
            "did you mean \"4GiB\"",
            "unknown `#[retry]` key `dealy` (did you mean `delay`?)",
            "invalid duration unit `fortnight`",
            "unknown step `pik` in `next` (did you mean `pick`?)",
            "join step `pick` needs an inputs parameter",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in {all}");
        }
        assert_eq!(msgs.len(), 5, "{all}");
    }
}

//! Splits and joins: the splits open at each step, and where the joins that close them
//! may be.

use std::collections::BTreeSet;

use proc_macro2::Span;

use super::graph::{next_span_to, reaches, Graph};
use super::{Analysis, Frame, FrameKind};
use crate::ast::Step;

/// The splits open along every path, computed step by step in topological order, with
/// the rules about where joins may be.
pub(super) struct SplitWalk<'g, 'a> {
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
    pub(super) fn new(g: &'g Graph<'a>) -> Self {
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
    pub(super) fn visit(&mut self, i: usize) -> bool {
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
    pub(super) fn end_step_is_outside_splits(&mut self, report: bool) -> bool {
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
    pub(super) fn every_split_is_joined(&self, order: &[usize]) -> bool {
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
    pub(super) fn items_follow_a_foreach(&self) -> bool {
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

    pub(super) fn into_analysis(self) -> Analysis {
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

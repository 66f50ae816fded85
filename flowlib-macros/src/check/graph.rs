//! The graph of a flow whose steps are each well formed: the start step, reachability,
//! cycles, and the graph walks the other rules use.

use crate::ast::Step;
use crate::ctxt::{Ctxt, Loc};

/// The edges of a flow whose steps are each well formed.
pub(super) struct Graph<'a> {
    pub(super) cx: &'a Ctxt,
    pub(super) steps: &'a [Step],
    pub(super) next: Vec<Vec<usize>>,
    pub(super) preds: Vec<Vec<usize>>,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl<'a> Graph<'a> {
    pub(super) fn new(
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

    pub(super) fn nothing_points_at_start(&self) -> bool {
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

    pub(super) fn every_step_is_reachable(&self) -> bool {
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

    pub(super) fn is_acyclic(&self) -> bool {
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

/// The `next` target named `target` in `step`, or its `#[step]` attribute.
pub(super) fn next_span_to(step: &Step, target: &str) -> Loc {
    step.attrs
        .next
        .iter()
        .find(|i| *i == target)
        .map(|i| i.span().into())
        .unwrap_or_else(|| step.loc())
}

/// Whether `to` can be reached from `from` (the graph is acyclic here).
pub(super) fn reaches(next: &[Vec<usize>], from: usize, to: usize) -> bool {
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

pub(super) fn topo_order(next: &[Vec<usize>], preds: &[Vec<usize>]) -> Vec<usize> {
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

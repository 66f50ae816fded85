//! A join's inputs, pinned compactly: what the driver holds per input of a join while it
//! waits, and what the join task is handed.
//!
//! A join over 100,000 foreach items holds, per input, the manifest its commit record pins,
//! its attempt and its run (48 bytes) and a view pointer (8 bytes, set while the driver keeps
//! the view): the step and index of input `i` are the join's (`within.child(i)` of the
//! foreach body's last step, or the `i`-th arm of a branch), so they are not stored per
//! input. [`Pinned`] is one input expanded, made on demand.

use std::sync::Arc;

use crate::meta::committed::{Idx, Pinned, TaskAt};
use crate::meta::{Committed, IndexPath};
use crate::store::BlobRef;

/// The inputs of one join, in the order of the graph's inputs rule.
#[derive(Debug)]
pub(crate) struct Pins {
    names: Names,
    /// The runs the inputs come from (this run, origins of reused tasks): a handful.
    runs: Vec<Arc<str>>,
    slots: Vec<Slot>,
    /// The views the driver keeps (`None` past its budget: the join reads the record).
    views: Vec<Option<Arc<Committed>>>,
}

/// How the inputs' step and index are known.
#[derive(Debug)]
enum Names {
    /// Input `i` is `step` at `within.child(i)`.
    Foreach { step: Arc<str>, within: IndexPath },
    /// Input `i` is `steps[i]` at `index`.
    Branch { steps: Vec<Arc<str>>, index: Idx },
    /// Each input's own (a join resolved from a spec, where any list can come).
    Each(Vec<(Arc<str>, Idx)>),
}

/// One input: which attempt of which run, by the manifest its commit record pins.
#[derive(Debug, Clone)]
struct Slot {
    manifest: BlobRef,
    attempt: u32,
    /// Into `runs`; `UNSET` until the input committed.
    run: u32,
}

const UNSET: u32 = u32::MAX;

impl Slot {
    fn unset() -> Slot {
        Slot {
            manifest: BlobRef {
                digest: crate::store::Digest::of(&[]),
                size: 0,
            },
            attempt: 0,
            run: UNSET,
        }
    }
}

impl Default for Pins {
    /// A join over nothing.
    fn default() -> Pins {
        Pins {
            names: Names::Each(Vec::new()),
            runs: Vec::new(),
            slots: Vec::new(),
            views: Vec::new(),
        }
    }
}

impl Pins {
    /// The `n` inputs of a foreach join: the items of the body's last step `step`, split at
    /// `within`, none committed yet.
    pub(crate) fn foreach(step: Arc<str>, within: IndexPath, n: usize) -> Pins {
        Pins {
            names: Names::Foreach { step, within },
            runs: Vec::new(),
            slots: vec![Slot::unset(); n],
            views: vec![None; n],
        }
    }

    /// The inputs of a branch join at `index`: the last step of each arm, in order.
    pub(crate) fn branch(steps: Vec<Arc<str>>, index: &IndexPath) -> Pins {
        let n = steps.len();
        Pins {
            names: Names::Branch {
                steps,
                index: Idx::of(index.clone()),
            },
            runs: Vec::new(),
            slots: vec![Slot::unset(); n],
            views: vec![None; n],
        }
    }

    /// Inputs given one by one, each committed.
    pub(crate) fn of(inputs: impl IntoIterator<Item = Pinned>) -> Pins {
        let mut pins = Pins::default();
        let mut each = Vec::new();
        for p in inputs {
            let run = pins.run_of(&p.task.run);
            pins.slots.push(Slot {
                manifest: p.manifest,
                attempt: p.task.attempt,
                run,
            });
            pins.views.push(p.view);
            each.push((p.task.step, p.task.index));
        }
        pins.names = Names::Each(each);
        pins
    }

    fn run_of(&mut self, run: &Arc<str>) -> u32 {
        match self.runs.iter().position(|r| r == run) {
            Some(i) => i as u32,
            None => {
                self.runs.push(run.clone());
                (self.runs.len() - 1) as u32
            }
        }
    }

    /// Input `i` committed as `c`, whose view is kept or not. False when the join has no
    /// input `i`, or `c` is not input `i` (another step or index), or has no attempt.
    pub(crate) fn set(&mut self, i: usize, c: Arc<Committed>, keep: bool) -> bool {
        let (Some(task), Some(manifest)) = (&c.task, c.manifest) else {
            return false;
        };
        if i >= self.slots.len() || !self.is_place(i, task) {
            return false;
        }
        let run = self.run_of(&task.run);
        let slot = &mut self.slots[i];
        slot.manifest = manifest;
        slot.attempt = task.attempt;
        slot.run = run;
        self.views[i] = keep.then_some(c);
        true
    }

    /// Whether `task` has the step and index of input `i`.
    fn is_place(&self, i: usize, task: &TaskAt) -> bool {
        match &self.names {
            Names::Foreach { step, within } => {
                let idx = task.index.as_slice();
                *task.step == **step && idx.split_last() == Some((&(i as u32), &within.0[..]))
            }
            Names::Branch { steps, index } => *task.step == *steps[i] && task.index == *index,
            Names::Each(_) => false,
        }
    }

    /// Number of inputs.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// True for a join over nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every input committed.
    pub(crate) fn is_complete(&self) -> bool {
        self.slots.iter().all(|s| s.run != UNSET)
    }

    /// The step input `i` comes from.
    pub(crate) fn step(&self, i: usize) -> Option<&Arc<str>> {
        if i >= self.len() {
            return None;
        }
        Some(match &self.names {
            Names::Foreach { step, .. } => step,
            Names::Branch { steps, .. } => &steps[i],
            Names::Each(each) => &each[i].0,
        })
    }

    /// The view of input `i` the driver kept, if it did.
    pub(crate) fn view(&self, i: usize) -> Option<&Arc<Committed>> {
        self.views.get(i)?.as_ref()
    }

    /// Every view kept.
    pub(crate) fn views(&self) -> impl Iterator<Item = &Arc<Committed>> + '_ {
        self.views.iter().flatten()
    }

    /// Input `i`, expanded (`None` past the end, or not committed yet).
    pub(crate) fn get(&self, i: usize) -> Option<Pinned> {
        let slot = self.slots.get(i).filter(|s| s.run != UNSET)?;
        let (step, index) = match &self.names {
            Names::Foreach { step, within } => (step.clone(), Idx::child_of(&within.0, i as u32)),
            Names::Branch { steps, index } => (steps[i].clone(), index.clone()),
            Names::Each(each) => each[i].clone(),
        };
        Some(Pinned {
            task: TaskAt {
                run: self.runs[slot.run as usize].clone(),
                step,
                index,
                attempt: slot.attempt,
            },
            manifest: slot.manifest,
            view: self.views[i].clone(),
        })
    }

    /// Inputs `range`, expanded.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> Vec<Pinned> {
        range.filter_map(|i| self.get(i)).collect()
    }

    /// Every input, expanded one at a time.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Pinned> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Artifacts, AttemptStatus};
    use crate::store::Digest;

    fn committed(run: &str, step: &str, index: &[u32], attempt: u32) -> Arc<Committed> {
        let id = format!("{run}/{step}/{index:?}@{attempt}");
        Arc::new(Committed {
            task: Some(TaskAt {
                run: run.into(),
                step: step.into(),
                index: Idx::of(IndexPath(index.to_vec())),
                attempt,
            }),
            manifest: Some(BlobRef {
                digest: Digest::of(id.as_bytes()),
                size: id.len() as u64,
            }),
            artifacts: Artifacts::default(),
            foreach_count: None,
            status: AttemptStatus::Ok,
        })
    }

    fn id(t: &TaskAt) -> String {
        format!("{}:{}@{}", t.run, t.task_id(), t.attempt)
    }

    #[test]
    fn a_foreach_joins_inputs_expand_to_the_tasks_that_committed() {
        let within = IndexPath(vec![2, 7, 1]);
        let mut pins = Pins::foreach("work".into(), within, 3);
        assert!(!pins.is_complete());
        assert!(pins.get(0).is_none(), "not committed yet");
        let c0 = committed("R", "work", &[2, 7, 1, 0], 0);
        assert!(pins.set(0, c0.clone(), true));
        assert!(
            !pins.set(1, committed("R", "work", &[2, 7, 1, 2], 0), false),
            "another item"
        );
        assert!(!pins.set(1, committed("R", "other", &[2, 7, 1, 1], 0), false));
        assert!(pins.set(1, committed("origin", "work", &[2, 7, 1, 1], 3), false));
        assert!(!pins.is_complete());
        assert!(pins.set(2, committed("R", "work", &[2, 7, 1, 2], 1), false));
        assert!(pins.is_complete());
        assert!(!pins.set(3, committed("R", "work", &[2, 7, 1, 3], 0), false));
        let got: Vec<(String, u32, bool)> = pins
            .iter()
            .map(|p| (id(&p.task), p.task.attempt, p.view.is_some()))
            .collect();
        let want: Vec<(String, u32, bool)> = [("R", 0, 0), ("origin", 1, 3), ("R", 2, 1)]
            .iter()
            .map(|&(run, i, a)| {
                let t = committed(run, "work", &[2, 7, 1, i], a);
                (id(t.task.as_ref().unwrap()), a, i == 0)
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            pins.get(1).unwrap().manifest,
            committed("origin", "work", &[2, 7, 1, 1], 3)
                .manifest
                .unwrap()
        );
        assert_eq!(pins.views().count(), 1);
        assert!(Arc::ptr_eq(pins.view(0).unwrap(), &c0));
        assert_eq!(pins.step(2).map(|s| &**s), Some("work"));
        assert_eq!(pins.runs.len(), 2, "runs are held once");
    }

    #[test]
    fn a_branch_joins_inputs_are_its_arms_in_order() {
        let mut pins = Pins::branch(vec!["a".into(), "b".into()], &IndexPath(vec![4]));
        assert!(!pins.set(0, committed("R", "b", &[4], 0), false));
        assert!(pins.set(1, committed("R", "b", &[4], 0), false));
        assert!(pins.set(0, committed("R", "a", &[4], 2), true));
        let ids: Vec<String> = pins.iter().map(|p| p.task.task_id()).collect();
        assert_eq!(ids, ["a/4", "b/4"]);
        assert_eq!(pins.step(1).map(|s| &**s), Some("b"));
    }

    #[test]
    fn inputs_given_one_by_one_keep_each_its_own_place() {
        let list = [
            committed("R", "work", &[0], 0),
            committed("O", "other", &[5, 1], 2),
        ];
        let pins = Pins::of(list.iter().map(|c| Pinned::of(c.clone(), false).unwrap()));
        let got: Vec<String> = pins.iter().map(|p| id(&p.task)).collect();
        let want: Vec<String> = list.iter().map(|c| id(c.task.as_ref().unwrap())).collect();
        assert_eq!(got, want);
        assert!(pins.is_complete());
        assert_eq!(pins.views().count(), 0);
    }

    #[test]
    fn an_input_costs_the_driver_56_bytes() {
        let view = std::mem::size_of::<Option<Arc<Committed>>>();
        assert_eq!(std::mem::size_of::<Slot>() + view, 56);
    }
}

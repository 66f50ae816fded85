//! The inputs of a join step, loaded on demand.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::meta::{Committed, IndexPath, Pinned, Pins};

/// One input of a join: the state of one incoming task.
///
/// Derefs to the state, so `input.score` reads the `score` artifact of that task.
#[derive(Debug)]
pub struct Input<S> {
    pub(crate) state: S,
    pub(crate) step: Arc<str>,
    pub(crate) index: IndexPath,
}

impl<S> Input<S> {
    /// The step that produced this input.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The foreach index of the producing task (for foreach joins).
    pub fn index(&self) -> Option<usize> {
        self.index.0.last().map(|&i| i as usize)
    }

    /// The task id that produced this input.
    pub fn task_id(&self) -> String {
        crate::meta::task_id(&self.step, &self.index)
    }

    /// Take the state out.
    pub fn into_inner(self) -> S {
        self.state
    }
}

impl<S> Deref for Input<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.state
    }
}

/// The inputs of a join step: one per incoming task, in order (foreach index order for a
/// foreach join, declaration order of the arms for a branch join).
///
/// Inputs are loaded on demand, one at a time, so a join over a foreach of a million items
/// holds one input state in memory, not a million (and, past a budget, reads the records of
/// its inputs a few dozen at a time as it goes: see `ARCHITECTURE.md`). Fields an input inherited unchanged
/// from the split are cloned from one decoded copy instead of decoded again (for `Clone`
/// types). Iterating with [`iter`](Inputs::iter) panics if an input cannot be read (a
/// missing or corrupted blob); flowlib turns that into a failure of the join task that
/// names the artifact. Use [`try_iter`](Inputs::try_iter) to handle such errors yourself.
pub struct Inputs<S> {
    /// Each input, pinned (shared with the task's resolved inputs: no copy per input).
    pub(crate) refs: Arc<Pins>,
    pub(crate) loader: Option<Arc<dyn LoadInput<S>>>,
    pub(crate) template: OnceLock<Option<S>>,
    /// The fields an input loads (all when `None`): see [`select`](Inputs::select).
    pub(crate) only: Option<Arc<[usize]>>,
}

/// The payload `Inputs::get` unwinds with when an input cannot be read.
#[derive(Debug)]
pub(crate) struct UnreadableInput(pub(crate) String);

/// Loads join inputs from the store; implemented by the task layer, which knows the run.
/// Inputs are named by their place in the join's inputs.
pub(crate) trait LoadInput<S>: Send + Sync {
    /// The split's state (its fields in `only`, or all), from which inputs clone the
    /// fields they share with it.
    fn template(&self, only: Option<&[usize]>) -> Option<S>;
    /// The committed view of input `i`: kept by the driver, or read from the store.
    fn view(&self, i: usize) -> Result<Arc<Committed>>;
    /// Load input `i` (its fields in `only`, or all), cloning shared fields from `template`.
    fn load(&self, i: usize, template: Option<&S>, only: Option<&[usize]>) -> Result<S>;
    /// Decode field `field` of input `i` into `into`.
    fn load_field(&self, i: usize, field: usize, into: &mut S) -> Result<()>;
}

/// The task id of an input.
fn input_id(p: &Pinned) -> String {
    crate::meta::task_id(&p.task.step, &p.task.index.path())
}

impl<S> Inputs<S> {
    pub(crate) fn new(refs: Arc<Pins>, loader: Arc<dyn LoadInput<S>>) -> Self {
        Inputs {
            refs,
            loader: Some(loader),
            template: OnceLock::new(),
            only: None,
        }
    }

    /// These inputs, loading only `fields` of each (the others keep their default value).
    ///
    /// An input is the whole state of a task, so by default loading it decodes every field
    /// it has, including those it inherited unchanged from the split (cloned, not decoded,
    /// but cloned once per input). A join that reads one number of each of 100,000 inputs
    /// reads only that number this way, as Metaflow's `inp.x` loads only `x`. Naming a
    /// field the state does not have is an error.
    ///
    /// ```no_run
    /// # use flowlib::prelude::*;
    /// # #[derive(FlowState, Default, Serialize, Deserialize)] struct Train { data: Vec<f64>, score: f64, best: f64 }
    /// # impl Train {
    /// fn pick(&mut self, inputs: Inputs<Self>) -> Result<()> {
    ///     // `data`, which every input inherited from the split, is not loaded 1,000 times.
    ///     self.best = inputs.select(&["score"])?.iter().map(|i| i.score).fold(f64::MIN, f64::max);
    ///     Ok(())
    /// }
    /// # }
    /// ```
    pub fn select(&self, fields: &[&str]) -> Result<Inputs<S>>
    where
        S: crate::flow::FlowState,
    {
        let only = fields
            .iter()
            .map(|n| {
                S::field_index(n).ok_or_else(|| {
                    Error::invalid(format!(
                        "Inputs::select: `{n}` is not a field of this flow's state"
                    ))
                })
            })
            .collect::<Result<Arc<[usize]>>>()?;
        Ok(Inputs {
            refs: self.refs.clone(),
            loader: self.loader.clone(),
            template: OnceLock::new(),
            only: Some(only),
        })
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// True for a foreach over an empty collection.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// The task ids of the inputs, without loading them.
    pub fn task_ids(&self) -> Vec<String> {
        self.refs.iter().map(|p| input_id(&p)).collect()
    }

    /// Metaflow's `merge_artifacts`: copy into `target` every field on which all inputs
    /// agree, and fail naming the fields on which they differ unless `exclude` lists them.
    ///
    /// Agreement is decided by content digest, so nothing is decoded to compare; only the
    /// agreed fields are decoded, once, from the first input. A join over nothing merges
    /// nothing. Naming in `exclude` a field the state does not have is an error.
    ///
    /// ```no_run
    /// # use flowlib::prelude::*;
    /// # #[derive(FlowState, Default, Serialize, Deserialize)] struct Train { data: Vec<f64>, score: f64, best: f64 }
    /// # impl Train {
    /// fn pick(&mut self, inputs: Inputs<Self>) -> Result<()> {
    ///     self.best = inputs.iter().map(|i| i.score).fold(f64::MIN, f64::max);
    ///     inputs.merge_artifacts(self, &["score", "best"])?; // `data` agrees: copied
    ///     Ok(())
    /// }
    /// # }
    /// ```
    pub fn merge_artifacts(&self, target: &mut S, exclude: &[&str]) -> Result<()>
    where
        S: crate::flow::FlowState,
    {
        if let Some(bad) = exclude.iter().find(|n| S::field_index(n).is_none()) {
            return Err(Error::invalid(format!(
                "merge_artifacts: `{bad}` is not a field of this flow's state"
            )));
        }
        if self.refs.is_empty() {
            return Ok(());
        }
        let loader = self
            .loader
            .as_ref()
            .ok_or_else(|| Error::internal("these inputs have no datastore to load from"))?;
        // Each input's view once, in order (read a few dozen at a time when the driver did
        // not keep it), compared field by field with the first input's.
        let fields: Vec<(usize, &str)> = S::FIELDS
            .iter()
            .enumerate()
            .filter(|(_, f)| !exclude.contains(&f.name))
            .map(|(i, f)| (i, f.name))
            .collect();
        let digests = |v: &Committed| -> Vec<_> {
            let blob = |name| v.artifacts.get(name).map(|b| b.digest);
            fields.iter().map(|(_, name)| blob(name)).collect()
        };
        let want = digests(&*loader.view(0)?);
        let mut same = vec![true; fields.len()];
        for i in 1..self.refs.len() {
            let got = digests(&*loader.view(i)?);
            for (k, g) in got.iter().enumerate() {
                same[k] &= *g == want[k];
            }
        }
        let mut differ = Vec::new();
        let mut agreed = Vec::new();
        for (k, (i, name)) in fields.iter().enumerate() {
            match (same[k], want[k]) {
                (true, Some(_)) => agreed.push(*i),
                (true, None) => {}
                (false, _) => differ.push(format!("`{name}`")),
            }
        }
        if !differ.is_empty() {
            return Err(Error::invalid(format!(
                "merge_artifacts: the {} inputs differ on {}; exclude those fields (merge_artifacts(self, &[...])) or merge them yourself",
                self.refs.len(),
                differ.join(", ")
            )));
        }
        for i in agreed {
            loader.load_field(0, i, target)?;
        }
        Ok(())
    }

    fn template(&self) -> Option<&S> {
        let loader = self.loader.as_ref()?;
        self.template
            .get_or_init(|| loader.template(self.only.as_deref()))
            .as_ref()
    }

    /// Load input `i`.
    pub fn try_get(&self, i: usize) -> Option<Result<Input<S>>> {
        let r = self.refs.get(i)?;
        let Some(loader) = &self.loader else {
            return Some(Err(Error::internal(
                "these inputs have no datastore to load from",
            )));
        };
        let state = loader.load(i, self.template(), self.only.as_deref());
        Some(state.map(|state| Input {
            state,
            step: r.task.step.clone(),
            index: r.task.index.path(),
        }))
    }

    /// Load input `i`; panics if it cannot be read (see the type's docs).
    pub fn get(&self, i: usize) -> Option<Input<S>> {
        self.try_get(i).map(|r| {
            r.unwrap_or_else(|e| {
                // Unwinds out of the step body; the task layer reports it as the join's
                // ordinary error (naming the input and artifact), not as a panic.
                std::panic::panic_any(UnreadableInput(crate::error::chain(&e)))
            })
        })
    }

    /// The input coming from step `name` (for branch joins).
    pub fn from_step(&self, name: &str) -> Option<Input<S>> {
        let i =
            (0..self.refs.len()).position(|i| self.refs.step(i).is_some_and(|s| **s == *name))?;
        self.get(i)
    }

    /// Iterate over the inputs, loading each on demand; panics if one cannot be read.
    pub fn iter(&self) -> impl Iterator<Item = Input<S>> + '_ {
        (0..self.refs.len()).filter_map(move |i| self.get(i))
    }

    /// Iterate over the inputs, loading each on demand, with load errors as values.
    pub fn try_iter(&self) -> impl Iterator<Item = Result<Input<S>>> + '_ {
        (0..self.refs.len()).filter_map(move |i| self.try_get(i))
    }

    /// Load every input at once.
    pub fn load_all(&self) -> Result<Vec<Input<S>>> {
        self.try_iter().collect()
    }
}

impl<S> fmt::Debug for Inputs<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.refs.iter().map(|p| input_id(&p)).collect();
        f.debug_struct("Inputs").field("tasks", &ids).finish()
    }
}

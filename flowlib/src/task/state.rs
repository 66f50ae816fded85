//! Reading a task's state from committed artifacts and storing it back: only the fields
//! a step can see are decoded, only the ones it could change are encoded again; a foreach
//! item's split state is decoded once per process for all its items.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::error::{Result, Site};
use crate::flow::{Flow, LoadInput};
use bytes::Bytes;

use crate::meta::{Committed, Inline, Pins, TaskAt};
use crate::store::cas::{self, What};
use crate::store::{BlobRef, Datastore, Digest};
use crate::task::spec::read_input;

/// What every task of a run shares in one process. Built by [`RunContext::new`] only.
pub(crate) struct RunContext {
    pub(crate) ds: Datastore,
    pub(crate) flow: &'static str,
    pub(crate) run_id: String,
    /// Blobs of the parameters: they override inherited values in every task.
    pub(crate) params: BTreeMap<String, BlobRef>,
    pub(crate) host: String,
    /// Split states decoded once per process and shared by their foreach tasks, keyed by
    /// the digest of the foreach field's blob.
    pub(crate) splits: Mutex<SplitCache>,
    /// Values loaded through `Lazy` fields, shared by this process's tasks.
    pub(crate) lazy: Arc<crate::flow::lazy::LazyCache>,
}

/// A few recently used split states (each holds one foreach field, decoded).
#[derive(Default)]
pub(crate) struct SplitCache {
    entries: Vec<(Digest, Arc<dyn std::any::Any + Send + Sync>)>,
}

impl SplitCache {
    const CAPACITY: usize = 16;
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("flow", &self.flow)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl RunContext {
    /// The context of run `run_id` of flow `flow`, whose parameters are `params`.
    pub(crate) fn new(
        ds: Datastore,
        flow: &'static str,
        run_id: String,
        params: BTreeMap<String, BlobRef>,
    ) -> RunContext {
        RunContext {
            ds,
            flow,
            run_id,
            params,
            host: crate::meta::hostname(),
            splits: Mutex::default(),
            lazy: Arc::default(),
        }
    }
}

/// The split state holding field `field` (only) as stored in `blob`, decoded once.
pub(super) fn shared_split<F: Flow>(
    run: &RunContext,
    field: usize,
    (blob, inline): (BlobRef, Option<&Bytes>),
    site: &Site,
) -> Result<Arc<Mutex<F>>> {
    {
        let cache = run.splits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, v)) = cache.entries.iter().find(|(d, _)| *d == blob.digest) {
            if let Ok(state) = v.clone().downcast::<Mutex<F>>() {
                return Ok(state);
            }
        }
    }
    let mut state = F::default();
    let what = What::new(F::FIELDS[field].name, site.clone());
    cas::load_decoded(&run.ds, blob, inline, &what, &mut |r| {
        state.__decode_field(field, r)
    })?;
    let state = Arc::new(Mutex::new(state));
    let mut cache = run.splits.lock().unwrap_or_else(|e| e.into_inner());
    if cache.entries.len() >= SplitCache::CAPACITY {
        cache.entries.remove(0);
    }
    cache.entries.push((blob.digest, state.clone()));
    Ok(state)
}

/// The blob a field of a task's input has, with its bytes when they are held inline: the
/// run's parameter value for parameters (an object, also held inline by the input when its
/// task stored it), else the committed artifact.
pub(super) fn input_blob<'a>(
    run: &'a RunContext,
    from: &'a Committed,
    field: &crate::flow::FieldInfo,
) -> Option<(BlobRef, Option<&'a Bytes>)> {
    let held = from.artifacts.held(field.name).map(|(b, i)| (*b, i));
    match field.param.and(run.params.get(field.name)) {
        // The input's inline copy of the same value goes with it: a view that passes the
        // parameter on then shares its entry with the input's.
        Some(p) => Some((*p, held.filter(|(b, _)| b == p).and_then(|(_, i)| i))),
        None => held,
    }
}

/// Load a state from committed artifacts, applying the run's parameters.
pub(crate) fn load_state<F: Flow>(run: &RunContext, from: &Committed, site: &Site) -> Result<F> {
    load_fields::<F>(run, from, None, None, site)
}

/// Load the fields in `only` (all when `None`); others keep their default.
pub(crate) fn load_fields<F: Flow>(
    run: &RunContext,
    from: &Committed,
    only: Option<&[usize]>,
    template: Option<(&F, &Committed)>,
    site: &Site,
) -> Result<F> {
    let mut state = F::default();
    for (i, field) in F::FIELDS.iter().enumerate() {
        if only.is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        // A field added to the state after the input was written keeps its default.
        let Some((blob, inline)) = input_blob(run, from, field) else {
            continue;
        };
        if let Some((t, t_from)) = template {
            let same = input_blob(run, t_from, field).is_some_and(|(b, _)| b == blob);
            if same && state.__clone_field_from(t, i) {
                continue;
            }
        }
        let source = crate::flow::LazySource {
            ds: run.ds.clone(),
            cache: run.lazy.clone(),
            artifact: field.name,
            site: site.clone(),
            inline: inline.cloned(),
        };
        if state.__lazy_install(i, blob, &source) {
            continue;
        }
        let what = What::new(field.name, site.clone());
        cas::load_decoded(&run.ds, blob, inline, &what, &mut |r| {
            state.__decode_field(i, r)
        })?;
    }
    Ok(state)
}

pub(super) fn describe(task: &Option<TaskAt>, run: &str) -> Site {
    match task {
        Some(t) if *t.run == *run => Site::task(None, t.task_id()),
        Some(t) => Site::task(Some(&t.run), t.task_id()),
        None => Site::detail(Some(run), "initial state"),
    }
}

/// A task's artifacts as stored: name → blob, and the bytes of the small ones, which its
/// manifest holds inline.
#[derive(Debug, Default)]
pub(super) struct Fields {
    pub(super) artifacts: BTreeMap<String, BlobRef>,
    pub(super) inline: Inline,
}

impl Fields {
    /// Artifact `name` is `blob`, whose bytes are `inline` when it is held inline.
    pub(super) fn insert(&mut self, name: &str, blob: BlobRef, inline: Option<Bytes>) {
        self.artifacts.insert(name.to_string(), blob);
        if let Some(bytes) = inline {
            self.inline.insert(blob.digest, bytes);
        }
    }
}

/// Encode and store the fields the step could change; pass the others through (with
/// their inline bytes). Small values are held inline, not stored.
pub(super) fn store_state<F: Flow>(
    run: &RunContext,
    state: &F,
    base: &Committed,
    only: Option<&[usize]>,
    task: &str,
) -> Result<Fields> {
    let mut out = Fields::default();
    for (i, field) in F::FIELDS.iter().enumerate() {
        let base_in = input_blob(run, base, field);
        if only.is_some_and(|o| !o.contains(&i)) {
            if let Some((b, inline)) = base_in {
                out.insert(field.name, b, inline.cloned());
                continue;
            }
        }
        // A `Lazy` input the step neither read nor changed passes on by reference.
        if let Some((b, inline)) = state.__lazy_blob(i) {
            out.insert(field.name, b, inline);
            continue;
        }
        let what = What::new(field.name, Site::task(None, task));
        let (blob, inline) =
            cas::put_or_inline(&run.ds, base_in.map(|(b, _)| b), &what, &mut |w| {
                state.__encode_field(i, w)
            })?;
        out.insert(field.name, blob, inline);
    }
    Ok(out)
}

/// Loads a join's inputs on demand for [`Inputs`](crate::Inputs).
pub(super) struct JoinLoader {
    pub(super) run: Arc<RunContext>,
    /// The split step's output: the join's own starting state.
    pub(super) base: Arc<Committed>,
    pub(super) join: &'static str,
    /// The join's inputs, pinned: an input the driver kept no view of is read by its pin.
    pub(super) inputs: Arc<Pins>,
    /// Views read ahead of the input asked for: the first one's place, and each view
    /// (`None`: not read, or its read failed, so asking for it reads it alone).
    pub(super) ahead: Mutex<(usize, Vec<Option<Arc<Committed>>>)>,
}

/// How many inputs a join reads at once when the driver kept no view of them: one round
/// trip per 16 on the store's I/O pool, and at most this many views held.
pub(super) const READ_AHEAD: usize = 64;

impl JoinLoader {
    pub(super) fn new(
        run: Arc<RunContext>,
        base: Arc<Committed>,
        join: &'static str,
        inputs: Arc<Pins>,
    ) -> JoinLoader {
        JoinLoader {
            run,
            base,
            join,
            inputs,
            ahead: Mutex::new((0, Vec::new())),
        }
    }

    fn site(&self, i: usize, what: &str) -> Site {
        let id = self.inputs.get(i).map(|p| p.task.task_id());
        Site::detail(
            None,
            format!(
                "input {} of join {}{what}",
                id.unwrap_or_else(|| i.to_string()),
                self.join
            ),
        )
    }
}

impl<F: Flow> LoadInput<F> for JoinLoader {
    fn template(&self, only: Option<&[usize]>) -> Option<F> {
        let site = Site::detail(None, "the split (join template)");
        load_fields::<F>(&self.run, &self.base, only, None, &site).ok()
    }

    fn view(&self, i: usize) -> Result<Arc<Committed>> {
        self.view_of(i)
    }

    fn load(&self, i: usize, template: Option<&F>, only: Option<&[usize]>) -> Result<F> {
        let view = self.view_of(i)?;
        let template = template.map(|t| (t, &*self.base));
        load_fields::<F>(&self.run, &view, only, template, &self.site(i, ""))
    }

    fn load_field(&self, i: usize, field: usize, into: &mut F) -> Result<()> {
        let view = self.view_of(i)?;
        let f = &F::FIELDS[field];
        let Some((blob, inline)) = input_blob(&self.run, &view, f) else {
            return Ok(());
        };
        let what = What::new(f.name, self.site(i, " (merge_artifacts)"));
        cas::load_decoded(&self.run.ds, blob, inline, &what, &mut |r| {
            into.__decode_field(field, r)
        })
    }
}

impl JoinLoader {
    /// The view of input `i`: the driver's, else read with the next few dozen inputs.
    fn view_of(&self, i: usize) -> Result<Arc<Committed>> {
        if let Some(v) = self.inputs.view(i) {
            return Ok(v.clone());
        }
        let p = self.inputs.get(i).ok_or_else(|| {
            crate::error::Error::internal(format!("join {} has no input {i}", self.join))
        })?;
        let (ds, flow) = (&self.run.ds, self.run.flow);
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        let (start, views) = &*ahead;
        if let Some(Some(v)) = i.checked_sub(*start).and_then(|k| views.get(k)) {
            return Ok(v.clone());
        }
        if i.checked_sub(*start).is_some_and(|k| k < views.len()) {
            // Its read failed in the batch: read it alone, for its own error.
            return read_input(ds, flow, &p);
        }
        let end = (i + READ_AHEAD).min(self.inputs.len());
        let read = crate::store::par_io(&self.inputs.slice(i..end), |p| {
            Ok(match &p.view {
                Some(_) => None,
                None => read_input(ds, flow, p).ok(),
            })
        })?;
        *ahead = (i, read);
        match &ahead.1[0] {
            Some(v) => Ok(v.clone()),
            None => read_input(ds, flow, &p),
        }
    }
}

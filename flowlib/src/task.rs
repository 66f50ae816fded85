//! The single entry point that executes one task attempt: read the inputs from the store,
//! run the step, store the artifacts, write the manifest, then commit create-only.
//! The thread executor calls it in-process; other backends call it through `<exe> step`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Once};
use std::time::Instant;

use bytes::Bytes;
use object_store::PutMode;

use crate::cas::{self, What};
use crate::checkpoint::Checkpoint;
use crate::client::successful;
use crate::datastore::Datastore;
use crate::digest::{BlobRef, Digest};
use crate::error::{chain, Error, Result};
use crate::flow::{Ctx, Flow, InputLoader, InputRef, Inputs, StepCall};
use crate::graph::JoinKind;
use crate::metadata::{
    now_rfc3339, paths, task_id, AttemptStatus, CommitRecord, IndexPath, TaskManifest, TaskRef,
    Timings, METADATA_VERSION,
};

/// A committed task's artifacts, as the scheduler and readers know them.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    /// The attempt that produced them (`None` for a run's initial state).
    pub(crate) task: Option<TaskRef>,
    pub(crate) artifacts: BTreeMap<String, BlobRef>,
    pub(crate) foreach_count: Option<u64>,
    pub(crate) status: AttemptStatus,
}

/// What every task of a run shares.
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
}

/// A few recently used split states (each holds one foreach field, decoded).
#[derive(Default)]
pub(crate) struct SplitCache {
    entries: Vec<(Digest, Arc<dyn std::any::Any + Send + Sync>)>,
}

impl SplitCache {
    const CAPACITY: usize = 16;
}

/// The split state holding field `field` (only) as stored in `blob`, decoded once.
fn shared_split<F: Flow>(
    run: &RunContext,
    field: usize,
    blob: BlobRef,
    context: &str,
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
    let what = What::new(F::FIELDS[field].name, context.to_string());
    cas::load_decoded(&run.ds, blob, &what, &mut |r| {
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

/// One task attempt to execute.
pub(crate) struct TaskSpec {
    pub(crate) step: usize,
    pub(crate) index: IndexPath,
    pub(crate) attempt: u32,
    /// The state the step starts from.
    pub(crate) base: Arc<Committed>,
    /// Join inputs, in order.
    pub(crate) inputs: Vec<(usize, IndexPath, Arc<Committed>)>,
    /// Runs whose checkpoints this task may load, newest first (the current run first).
    pub(crate) checkpoint_sources: Vec<String>,
}

/// How an attempt ended.
pub(crate) enum Outcome {
    /// Committed with status ok or caught.
    Committed(Arc<Committed>),
    /// The attempt failed; its failure is committed.
    Failed(String),
    /// The scheduler fenced this attempt (timeout) before it could commit.
    Fenced,
}

thread_local! {
    static PANIC_INFO: RefCell<Option<String>> = const { RefCell::new(None) };
    static IN_STEP: RefCell<bool> = const { RefCell::new(false) };
}

/// Record where step panics happen (for the error message) instead of printing them:
/// the run summary reports them with their task.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let in_step = IN_STEP.with(|f| *f.borrow());
            if in_step {
                let loc = info
                    .location()
                    .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                PANIC_INFO.with(|p| *p.borrow_mut() = Some(loc));
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    };
    let loc = PANIC_INFO
        .with(|p| p.borrow_mut().take())
        .unwrap_or_default();
    format!("panicked{loc}: {msg}")
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The blob a field of a task's input has: the run's parameter value for parameters, else
/// the committed artifact.
fn input_blob<'a>(
    run: &'a RunContext,
    from: &'a Committed,
    field: &crate::flow::FieldInfo,
) -> Option<&'a BlobRef> {
    if field.param.is_some() {
        run.params
            .get(field.name)
            .or_else(|| from.artifacts.get(field.name))
    } else {
        from.artifacts.get(field.name)
    }
}

/// Load a state from committed artifacts, applying the run's parameters.
pub(crate) fn load_state<F: Flow>(run: &RunContext, from: &Committed, context: &str) -> Result<F> {
    load_fields::<F>(run, from, None, None, context)
}

/// Load a join input, cloning fields it shares with the split's state from `template`.
pub(crate) fn load_state_from_template<F: Flow>(
    run: &RunContext,
    from: &Committed,
    template: Option<(&F, &Committed)>,
    context: &str,
) -> Result<F> {
    load_fields::<F>(run, from, None, template, context)
}

/// Load the fields in `only` (all when `None`); others keep their default.
pub(crate) fn load_fields<F: Flow>(
    run: &RunContext,
    from: &Committed,
    only: Option<&[usize]>,
    template: Option<(&F, &Committed)>,
    context: &str,
) -> Result<F> {
    let mut state = F::default();
    for (i, field) in F::FIELDS.iter().enumerate() {
        if only.is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        // A field added to the state after the input was written keeps its default.
        let Some(blob) = input_blob(run, from, field) else {
            continue;
        };
        if let Some((t, t_from)) = template {
            if input_blob(run, t_from, field) == Some(blob) && state.__clone_field_from(t, i) {
                continue;
            }
        }
        let what = What::new(field.name, context.to_string());
        cas::load_decoded(&run.ds, *blob, &what, &mut |r| state.__decode_field(i, r))?;
    }
    Ok(state)
}

fn describe(task: &Option<TaskRef>, run: &str) -> String {
    match task {
        Some(t) if t.run == run => format!(" of task {}", t.task_id()),
        Some(t) => format!(" of run {} task {}", t.run, t.task_id()),
        None => format!(" of run {run} initial state"),
    }
}

/// Execute one attempt of one task and commit its outcome.
pub(crate) fn execute<F: Flow>(
    run: &Arc<RunContext>,
    spec: &TaskSpec,
    cancel: Arc<AtomicBool>,
) -> Result<Outcome> {
    install_panic_hook();
    let graph = F::graph();
    let step = &graph.steps()[spec.step];
    let task = task_id(step.name, &spec.index);
    let started = now_rfc3339();
    let t0 = Instant::now();
    let mut timings = Timings::default();

    let mut parents: Vec<TaskRef> = Vec::new();
    if let Some(t) = &spec.base.task {
        parents.push(t.clone());
    }
    for (_, _, c) in &spec.inputs {
        if let Some(t) = &c.task {
            if !parents.contains(t) {
                parents.push(t.clone());
            }
        }
    }

    // Load the fields the step can see; the others pass through by reference. A foreach
    // item comes from the split's state, decoded once per process for all its items.
    let context = describe(&spec.base.task, &run.run_id);
    let item_source: Option<Arc<Mutex<F>>> = step.item_source.and_then(|fi| {
        let blob = *input_blob(run, &spec.base, &F::FIELDS[fi])?;
        shared_split::<F>(run, fi, blob, &context).ok()
    });
    let fields = step.field_set.as_deref();
    let load: Option<Vec<usize>> = fields.map(|set| {
        let mut v = set.to_vec();
        v.extend(step.foreach_read);
        if item_source.is_none() {
            v.extend(step.item_source);
        }
        v
    });
    let loaded = load_fields::<F>(run, &spec.base, load.as_deref(), None, &context);
    timings.load_ms = ms_since(t0);
    let mut state = match loaded {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("cannot load inputs: {}", chain(&e));
            return finish_failed(run, spec, step.name, &task, parents, started, timings, msg);
        }
    };
    let inputs = if step.is_join() {
        let refs = spec
            .inputs
            .iter()
            .map(|(s, idx, c)| InputRef {
                step: graph.steps()[*s].name,
                index: idx.clone(),
                committed: c.clone(),
            })
            .collect();
        let loader = Arc::new(InputLoader {
            run: run.clone(),
            base: spec.base.clone(),
            join: step.name,
        });
        Some(Inputs::new(refs, loader))
    } else {
        None
    };

    // Run the step.
    let mut ctx = Ctx {
        flow: F::NAME,
        run_id: run.run_id.clone(),
        step: step.name,
        index: spec.index.clone(),
        attempt: spec.attempt,
        cancel: cancel.clone(),
        checkpoint: Some(Checkpoint {
            ds: run.ds.clone(),
            flow: F::NAME,
            step: step.name,
            index: spec.index.clone(),
            attempt: spec.attempt,
            sources: spec.checkpoint_sources.clone(),
            cancel: cancel.clone(),
            declared: step.checkpoint,
            seq: 0,
            last: None,
            saves: 0,
        }),
    };
    let item_index = spec.index.0.last().map(|&i| i as usize);
    let t1 = Instant::now();
    let result = {
        let mut call = StepCall {
            ctx: &mut ctx,
            item_index,
            inputs,
            item_source,
        };
        IN_STEP.with(|f| *f.borrow_mut() = true);
        let r = panic::catch_unwind(AssertUnwindSafe(|| state.__run_step(spec.step, &mut call)));
        IN_STEP.with(|f| *f.borrow_mut() = false);
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(chain(e.as_ref())),
            Err(payload) => Err(panic_message(payload)),
        }
    };
    timings.step_ms = ms_since(t1);

    crate::failpoint::hold("before-store", &task);
    let t2 = Instant::now();
    let (artifacts, status, error, foreach_count) = match result {
        Ok(()) => match store_state(run, &state, &spec.base, fields, &task) {
            Ok(arts) => {
                // Parameters are read-only: a step that changes one fails.
                if let Some(name) = F::FIELDS
                    .iter()
                    .filter(|f| f.param.is_some())
                    .map(|f| f.name)
                    .find(|n| run.params.get(*n).is_some_and(|b| arts.get(*n) != Some(b)))
                {
                    let msg =
                        format!("the step changed parameter `{name}`; parameters are read-only");
                    timings.store_ms = ms_since(t2);
                    return finish_failed(
                        run, spec, step.name, &task, parents, started, timings, msg,
                    );
                }
                let count = state.__foreach_len(spec.step).map(|n| n as u64);
                (arts, AttemptStatus::Ok, None, count)
            }
            Err(e) => {
                let msg = format!("cannot store artifacts: {}", chain(&e));
                timings.store_ms = ms_since(t2);
                return finish_failed(run, spec, step.name, &task, parents, started, timings, msg);
            }
        },
        Err(msg) if step.catch.is_some() => {
            // Caught: pass the inputs on unchanged, with the error in the catch field.
            let mut arts = spec.base.artifacts.clone();
            for (name, blob) in &run.params {
                arts.insert(name.clone(), *blob);
            }
            if let Some(Some(field)) = step.catch {
                let mut marker = F::default();
                marker.__set_caught(spec.step, &msg);
                if let Some(i) = F::field_index(field) {
                    let what = What::new(field, format!(" of task {task}"));
                    match cas::put_encoded(&run.ds, None, &what, &mut |w| {
                        marker.__encode_field(i, w)
                    }) {
                        Ok(b) => {
                            arts.insert(field.to_string(), b);
                        }
                        Err(e) => {
                            let m = format!(
                                "{msg}; and the caught error could not be stored: {}",
                                chain(&e)
                            );
                            return finish_failed(
                                run, spec, step.name, &task, parents, started, timings, m,
                            );
                        }
                    }
                }
            }
            let count = if step.foreach.is_some() {
                match load_state::<F>(run, &spec.base, &describe(&spec.base.task, &run.run_id)) {
                    Ok(s) => s.__foreach_len(spec.step).map(|n| n as u64),
                    Err(_) => Some(0),
                }
            } else {
                None
            };
            (arts, AttemptStatus::Caught, Some(msg), count)
        }
        Err(msg) => {
            return finish_failed(run, spec, step.name, &task, parents, started, timings, msg);
        }
    };
    timings.store_ms = ms_since(t2);

    let manifest = TaskManifest {
        version: METADATA_VERSION,
        flow: F::NAME.to_string(),
        run: run.run_id.clone(),
        step: step.name.to_string(),
        index: spec.index.clone(),
        attempt: spec.attempt,
        parents,
        artifacts,
        foreach_count,
        status,
        error: error.clone(),
        started,
        finished: now_rfc3339(),
        timings,
        host: run.host.clone(),
        pid: std::process::id(),
    };
    let committed = commit(run, &manifest)?;
    Ok(match committed {
        true => Outcome::Committed(Arc::new(Committed {
            task: Some(TaskRef {
                run: run.run_id.clone(),
                step: manifest.step,
                index: manifest.index,
                attempt: manifest.attempt,
            }),
            artifacts: manifest.artifacts,
            foreach_count,
            status,
        })),
        false => Outcome::Fenced,
    })
}

/// Encode and store the fields the step could change; pass the others through.
fn store_state<F: Flow>(
    run: &RunContext,
    state: &F,
    base: &Committed,
    only: Option<&[usize]>,
    task: &str,
) -> Result<BTreeMap<String, BlobRef>> {
    let mut out = BTreeMap::new();
    for (i, field) in F::FIELDS.iter().enumerate() {
        let base_blob = input_blob(run, base, field).copied();
        if only.is_some_and(|o| !o.contains(&i)) {
            if let Some(b) = base_blob {
                out.insert(field.name.to_string(), b);
                continue;
            }
        }
        let what = What::new(field.name, format!(" of task {task}"));
        let blob = cas::put_encoded(&run.ds, base_blob, &what, &mut |w| {
            state.__encode_field(i, w)
        })?;
        out.insert(field.name.to_string(), blob);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn finish_failed(
    run: &RunContext,
    spec: &TaskSpec,
    step: &str,
    _task: &str,
    parents: Vec<TaskRef>,
    started: String,
    timings: Timings,
    error: String,
) -> Result<Outcome> {
    let manifest = TaskManifest {
        version: METADATA_VERSION,
        flow: run.flow.to_string(),
        run: run.run_id.clone(),
        step: step.to_string(),
        index: spec.index.clone(),
        attempt: spec.attempt,
        parents,
        artifacts: BTreeMap::new(),
        foreach_count: None,
        status: AttemptStatus::Failed,
        error: Some(error.clone()),
        started,
        finished: now_rfc3339(),
        timings,
        host: run.host.clone(),
        pid: std::process::id(),
    };
    match commit(run, &manifest)? {
        true => Ok(Outcome::Failed(error)),
        false => Ok(Outcome::Fenced),
    }
}

/// Write the manifest, then the commit record create-only. Returns false when the attempt
/// was already fenced (someone else committed this attempt number first).
pub(crate) fn commit(run: &RunContext, manifest: &TaskManifest) -> Result<bool> {
    let bytes = Bytes::from(serde_json::to_vec_pretty(manifest).expect("manifest serializes"));
    let m_ref = BlobRef {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
    };
    let m_rel = paths::manifest(&m_ref.digest);
    let task = task_id(&manifest.step, &manifest.index);
    crate::failpoint::hold("before-manifest", &task);
    if !run.ds.create(&m_rel, bytes.clone())? {
        // Same address, different bytes: a damaged copy. Replace it.
        run.ds.put_bytes(&m_rel, bytes, PutMode::Overwrite)?;
    }
    crate::failpoint::hold("before-commit", &task);
    let record = CommitRecord {
        version: METADATA_VERSION,
        attempt: manifest.attempt,
        status: manifest.status,
        manifest: Some(m_ref),
        error: manifest.error.clone(),
        committed: now_rfc3339(),
        writer: writer_id(),
    };
    let c_rel = paths::commit(
        run.flow,
        &run.run_id,
        &manifest.step,
        &manifest.index,
        manifest.attempt,
    );
    let won = run.ds.create_json(&c_rel, &record)?;
    if won {
        crate::failpoint::hold("after-commit", &task);
    }
    Ok(won)
}

/// Identifies this writer in commit records, so two writers never produce identical bytes.
fn writer_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!(
        "{}:{}:{:08x}",
        crate::metadata::hostname(),
        std::process::id(),
        h.finish() as u32
    )
}

/// Fence an attempt: commit it as timed out, create-only. Returns false if the attempt
/// committed first (then its own commit stands).
pub(crate) fn fence(
    run: &RunContext,
    step: &str,
    index: &IndexPath,
    attempt: u32,
    error: &str,
) -> Result<bool> {
    let record = CommitRecord {
        version: METADATA_VERSION,
        attempt,
        status: AttemptStatus::TimedOut,
        manifest: None,
        error: Some(error.to_string()),
        committed: now_rfc3339(),
        writer: writer_id(),
    };
    let c_rel = paths::commit(run.flow, &run.run_id, step, index, attempt);
    run.ds.create_json(&c_rel, &record)
}

/// Read a committed attempt's manifest, verifying it against its commit record.
pub(crate) fn read_commit(
    ds: &Datastore,
    flow: &str,
    run: &str,
    step: &str,
    index: &IndexPath,
    attempt: u32,
) -> Result<Option<(CommitRecord, Option<TaskManifest>)>> {
    let c_rel = paths::commit(flow, run, step, index, attempt);
    let Some(record) = ds.get_json::<CommitRecord>(&c_rel)? else {
        return Ok(None);
    };
    let Some(m_ref) = record.manifest else {
        return Ok(Some((record, None)));
    };
    let manifest = read_manifest(ds, m_ref, &task_id(step, index))?;
    Ok(Some((record, Some(manifest))))
}

/// Read a manifest by its digest, verifying it.
pub(crate) fn read_manifest(ds: &Datastore, m_ref: BlobRef, task: &str) -> Result<TaskManifest> {
    let m_rel = paths::manifest(&m_ref.digest);
    let bytes = ds.get_bytes(&m_rel)?.ok_or_else(|| {
        Error::metadata(
            ds.path(&m_rel),
            format!("the manifest of task {task} is missing"),
        )
    })?;
    if Digest::of(&bytes) != m_ref.digest || bytes.len() as u64 != m_ref.size {
        return Err(Error::metadata(
            ds.path(&m_rel),
            format!(
                "the manifest of task {task} is corrupted (it does not hash to {})",
                m_ref.digest
            ),
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::metadata(ds.path(&m_rel), format!("invalid JSON: {e}")))
}

/// How [`run_task`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskOutcome {
    /// The step succeeded (or its failure was caught) and the attempt is committed.
    Committed,
    /// The step failed; the failure is committed with its error.
    Failed(String),
    /// Another writer had already committed (or fenced) this attempt: nothing was changed.
    AlreadyCommitted,
}

/// Run one task of an existing run: read its committed inputs from the store, run the step,
/// store its artifacts, write its manifest and commit create-only. This is the entry point
/// the thread executor uses in-process and that execution backends reach through
/// `<exe> step <name> --run <id> --task <index> --attempt <n>`.
///
/// `task` is `step` or `step/2.5`. Concurrent calls for the same attempt are safe: exactly
/// one commits, the others get [`TaskOutcome::AlreadyCommitted`].
pub fn run_task<F: Flow>(
    ds: &Datastore,
    run_id: &str,
    task: &str,
    attempt: u32,
) -> Result<TaskOutcome> {
    crate::metadata::validate_run_id(run_id)?;
    let (step_name, index) = crate::client::parse_task_id(task)?;
    let graph = F::graph();
    let step = graph
        .step(step_name)
        .ok_or_else(|| Error::invalid(format!("flow {} has no step `{step_name}`", F::NAME)))?;
    if index.0.len() != step.depth {
        return Err(Error::invalid(format!(
            "step `{step_name}` is inside {} foreach split(s): its index has {} part(s)",
            step.depth, step.depth
        )));
    }
    let info = ds.run_info(F::NAME, run_id)?;
    let ok = successful(ds.task_attempts(F::NAME, run_id)?);
    let committed = |s: usize, p: &IndexPath| -> Result<Arc<Committed>> {
        let name = graph.steps()[s].name;
        let a = ok.get(&(name.to_string(), p.clone())).ok_or_else(|| {
            Error::not_found(format!(
                "input task {} of run {run_id} is not committed",
                task_id(name, p)
            ))
        })?;
        let m = a
            .manifest
            .as_ref()
            .expect("successful attempts have manifests");
        Ok(Arc::new(Committed {
            task: Some(a.source.clone()),
            artifacts: m.artifacts.clone(),
            foreach_count: m.foreach_count,
            status: a.status,
        }))
    };
    let (base, inputs) = if step.is_start {
        let initial = Arc::new(Committed {
            task: None,
            artifacts: info.record.initial.clone(),
            foreach_count: None,
            status: AttemptStatus::Ok,
        });
        (initial, Vec::new())
    } else if let Some((split, kind)) = step.join {
        let base = committed(split, &index)?;
        let inputs = match kind {
            JoinKind::Foreach => {
                let pred = step.preds[0];
                let n = base.foreach_count.unwrap_or(0) as u32;
                (0..n)
                    .map(|i| committed(pred, &index.child(i)).map(|c| (pred, index.child(i), c)))
                    .collect::<Result<Vec<_>>>()?
            }
            JoinKind::Branch => step
                .preds
                .iter()
                .map(|&p| committed(p, &index).map(|c| (p, index.clone(), c)))
                .collect::<Result<Vec<_>>>()?,
        };
        (base, inputs)
    } else {
        let pred = step.preds[0];
        let pp = if graph.steps()[pred].foreach.is_some() {
            index.parent()
        } else {
            index.clone()
        };
        (committed(pred, &pp)?, Vec::new())
    };
    let params: BTreeMap<_, _> = F::FIELDS
        .iter()
        .filter(|f| f.param.is_some())
        .filter_map(|f| {
            info.record
                .initial
                .get(f.name)
                .map(|b| (f.name.to_string(), *b))
        })
        .collect();
    let ctx = Arc::new(RunContext {
        ds: ds.clone(),
        flow: F::NAME,
        run_id: run_id.to_string(),
        params,
        host: crate::metadata::hostname(),
        splits: Default::default(),
    });
    let spec = TaskSpec {
        step: step.index,
        index: index.clone(),
        attempt,
        base,
        inputs,
        checkpoint_sources: vec![run_id.to_string()],
    };
    Ok(
        match execute::<F>(&ctx, &spec, Arc::new(AtomicBool::new(false)))? {
            Outcome::Committed(_) => TaskOutcome::Committed,
            Outcome::Failed(e) => TaskOutcome::Failed(e),
            Outcome::Fenced => TaskOutcome::AlreadyCommitted,
        },
    )
}

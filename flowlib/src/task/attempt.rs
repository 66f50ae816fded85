//! One task attempt: load → call → store → commit. Every executor runs a task through
//! [`execute`], in-process (threads) or through `<exe> step --spec <digest>` (remote).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{chain, Error, Result, Site};
use crate::flow::card::{Card, CardRecord};
use crate::flow::checkpoint::Checkpoint;
use crate::flow::{Ctx, Flow, Inputs, Step, StepCall};
use crate::meta::commit::commit;
use crate::meta::logs;
use crate::meta::metrics::MetricSummary;
use crate::meta::{
    now_rfc3339, AttemptStatus, Committed, Parents, TaskManifest, TaskRef, Timings,
    METADATA_VERSION,
};
use crate::store::cas::{self, What};
use crate::store::layout;
use crate::task::call::call_step;
use crate::task::spec::{Resolved, TaskSpec};
use crate::task::state::{
    describe, input_blob, load_fields, load_state, shared_split, store_state, Fields, JoinLoader,
    RunContext,
};

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Committed with status ok or caught.
    Committed(Arc<Committed>),
    /// Taken from the cache of a `#[cache]` step: the task `from` computed it (in an
    /// earlier run, or this one); the hit is recorded, nothing ran.
    Cached {
        committed: Arc<Committed>,
        from: TaskRef,
    },
    /// The attempt failed; its failure is committed.
    Failed(String),
    /// Another writer committed or fenced (timed out) this attempt first.
    Fenced,
    /// The attempt's process or job died without recording itself; its watcher recorded it
    /// `lost` with this reason. `platform`: the machine or the engine failed (node lost,
    /// preempted, could not start), not the task's code, so it counts against the
    /// platform retry budget.
    Lost { error: String, platform: bool },
}

/// Execute one attempt of the task `spec` describes and commit its outcome. `resolved`
/// holds its inputs when the caller already has them in memory (the thread executor);
/// otherwise they are read by their pinned manifest digests.
pub(crate) fn execute<F: Flow>(
    run: &Arc<RunContext>,
    spec: &TaskSpec,
    resolved: Option<Resolved>,
    cancel: Arc<AtomicBool>,
) -> Result<Outcome> {
    let graph = F::graph();
    let step = graph.step(&spec.task.step).ok_or_else(|| {
        Error::internal(format!(
            "the task spec names step `{}`, which flow {} of this binary does not have",
            spec.task.step,
            F::NAME
        ))
    })?;
    let t = &spec.task;
    let span = tracing::info_span!(
        "flowlib.task",
        run_id = t.run.as_str(),
        flow = F::NAME,
        step = t.step.as_str(),
        task = crate::meta::task_id(&t.step, &t.index).as_str(),
        attempt = i64::from(t.attempt),
        status = tracing::field::Empty,
    );
    let _entered = span.enter();
    let outcome = execute_in_span::<F>(run, spec, step, resolved, cancel);
    span.record(
        "status",
        match &outcome {
            Ok(Outcome::Committed(c)) => c.status.to_string(),
            Ok(Outcome::Failed(_)) => "failed".to_string(),
            Ok(Outcome::Cached { .. }) => "cached".to_string(),
            Ok(Outcome::Fenced) => "fenced".to_string(),
            Ok(Outcome::Lost { .. }) => "lost".to_string(),
            Err(_) => "error".to_string(),
        },
    );
    outcome
}

fn execute_in_span<F: Flow>(
    run: &Arc<RunContext>,
    spec: &TaskSpec,
    step: &Step,
    resolved: Option<Resolved>,
    cancel: Arc<AtomicBool>,
) -> Result<Outcome> {
    let graph = F::graph();
    let mut attempt = Attempt::new(run, spec, step);
    let resolved = match resolved {
        Some(r) => r,
        None => match spec.resolve(&run.ds, graph) {
            Ok(r) => r,
            Err(e) => return attempt.fail(format!("cannot read inputs: {}", chain(&e))),
        },
    };
    attempt.parents = resolved.parents();

    let t0 = Instant::now();
    let loaded = load::<F>(run, step, &resolved);
    attempt.timings.load_ms = ms_since(t0);
    let (mut state, item_source) = match loaded {
        Ok(v) => v,
        Err(e) => return attempt.fail(format!("cannot load inputs: {}", chain(&e))),
    };
    let inputs = step
        .is_join()
        .then(|| join_inputs::<F>(run, step, &resolved));

    let mut ctx = context::<F>(run, spec, step, cancel);
    let t1 = Instant::now();
    let result = {
        let mut call = StepCall {
            ctx: &mut ctx,
            item_index: spec.task.index.0.last().map(|&i| i as usize),
            inputs,
            item_source,
        };
        call_step(&mut state, step.index, &mut call)
    };
    attempt.timings.step_ms = ms_since(t1);
    // The card goes before the commit record: a committed task's card is complete.
    let card = std::mem::take(&mut ctx.card);
    let result = match (store_card(run, spec, card), result) {
        (Ok(()), r) => r,
        (Err(e), Ok(())) => Err(format!("cannot store the task's card: {}", chain(&e))),
        (Err(e), Err(msg)) => Err(format!(
            "{msg}; and the task's card could not be stored: {}",
            chain(&e)
        )),
    };
    // The rest of the points are written before the commit, so the commit record's
    // summaries match the stored points.
    if let Some(m) = ctx.metrics.take() {
        attempt.metrics = m.finish();
    }
    if let Some(l) = ctx.log.take().and_then(|t| t.stream.into_inner()) {
        l.flush();
        if l.written() {
            attempt.logs = Some(logs::prefix(run.flow, &spec.task));
        }
    }

    crate::failpoint::hold("before-store", &attempt.task_id);
    let t2 = Instant::now();
    let stored = match result {
        Ok(()) => store_ok::<F>(run, step, &attempt.task_id, &resolved.base, &state),
        Err(msg) if step.catch.is_some() => {
            store_caught::<F>(run, step, &attempt.task_id, &resolved.base, msg)
        }
        Err(msg) => Err(msg),
    };
    attempt.timings.store_ms = ms_since(t2);
    match stored {
        Ok(s) => attempt.commit(s, &resolved.base, step.closed_by.is_some()),
        Err(msg) => attempt.fail(msg),
    }
}

/// What a successful (or caught) attempt stores.
struct Stored {
    fields: Fields,
    status: AttemptStatus,
    error: Option<String>,
    foreach_count: Option<u64>,
}

/// The parts of an attempt's manifest known before its outcome.
struct Attempt<'a> {
    run: &'a RunContext,
    spec: &'a TaskSpec,
    task_id: String,
    parents: Parents,
    started: String,
    timings: Timings,
    /// Where the attempt's output is stored, when it is.
    logs: Option<String>,
    /// The metrics its step logged, summarized.
    metrics: BTreeMap<String, MetricSummary>,
}

impl<'a> Attempt<'a> {
    fn new(run: &'a RunContext, spec: &'a TaskSpec, step: &Step) -> Self {
        Attempt {
            run,
            spec,
            task_id: crate::meta::task_id(step.name, &spec.task.index),
            parents: Parents::new(),
            started: now_rfc3339(),
            timings: Timings::default(),
            logs: captured().then(|| logs::prefix(run.flow, &spec.task)),
            metrics: BTreeMap::new(),
        }
    }

    fn manifest(&self, stored: Stored) -> TaskManifest {
        TaskManifest {
            version: METADATA_VERSION,
            flow: self.run.flow.to_string(),
            run: self.spec.task.run.clone(),
            step: self.spec.task.step.clone(),
            index: self.spec.task.index.clone(),
            attempt: self.spec.task.attempt,
            parents: self.parents.clone(),
            artifacts: stored.fields.artifacts,
            inline: stored.fields.inline,
            foreach_count: stored.foreach_count,
            status: stored.status,
            error: stored.error,
            started: self.started.clone(),
            finished: now_rfc3339(),
            timings: self.timings.clone(),
            host: self.run.host.clone(),
            pid: std::process::id(),
            logs: self.logs.clone(),
            cached_from: None,
        }
    }

    /// Commit a successful or caught attempt that started from `base` (`split`: of a
    /// foreach or branch step).
    fn commit(mut self, stored: Stored, base: &Committed, split: bool) -> Result<Outcome> {
        let manifest = self.manifest(stored);
        let metrics = std::mem::take(&mut self.metrics);
        let Some(pin) = commit(&self.run.ds, &manifest, metrics)? else {
            return Ok(Outcome::Fenced);
        };
        let task = TaskRef {
            run: manifest.run.clone(),
            step: manifest.step.clone(),
            index: manifest.index.clone(),
            attempt: manifest.attempt,
        };
        // The view the driver keeps until the task's successors start: compact.
        Ok(Outcome::Committed(Arc::new(Committed::over(
            base, task, pin, manifest, split,
        ))))
    }

    /// Commit a failed attempt with its error.
    fn fail(mut self, error: String) -> Result<Outcome> {
        let manifest = self.manifest(Stored {
            fields: Fields::default(),
            status: AttemptStatus::Failed,
            error: Some(error.clone()),
            foreach_count: None,
        });
        let metrics = std::mem::take(&mut self.metrics);
        Ok(match commit(&self.run.ds, &manifest, metrics)? {
            Some(_) => Outcome::Failed(error),
            None => Outcome::Fenced,
        })
    }
}

/// Store the card a step built, create-only (a card already there is an earlier writer's
/// of this same attempt: kept).
fn store_card(run: &RunContext, spec: &TaskSpec, card: Card) -> Result<()> {
    if card.is_empty() {
        return Ok(());
    }
    let t = &spec.task;
    let rel = layout::card(run.flow, &t.run, &t.step, &t.index.dir_name(), t.attempt);
    run.ds
        .create_json(
            &rel,
            &CardRecord {
                task: t.clone(),
                card,
            },
        )
        .map(|_| ())
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Load the fields the step can see; the others pass through by reference. A foreach
/// item comes from the split's state, decoded once per process for all its items.
#[allow(clippy::type_complexity)]
fn load<F: Flow>(
    run: &RunContext,
    step: &Step,
    r: &Resolved,
) -> Result<(F, Option<Arc<Mutex<F>>>)> {
    let site = describe(&r.base.task, &run.run_id);
    let item_source: Option<Arc<Mutex<F>>> = step.item_source.and_then(|fi| {
        let blob = input_blob(run, &r.base, &F::FIELDS[fi])?;
        shared_split::<F>(run, fi, blob, &site).ok()
    });
    let load: Option<Vec<usize>> = step.field_set.as_deref().map(|set| {
        let mut v = set.to_vec();
        v.extend(step.foreach_read);
        if item_source.is_none() {
            v.extend(step.item_source);
        }
        v
    });
    let state = load_fields::<F>(run, &r.base, load.as_deref(), None, &site)?;
    Ok((state, item_source))
}

fn join_inputs<F: Flow>(run: &Arc<RunContext>, step: &Step, r: &Resolved) -> Inputs<F> {
    let loader = JoinLoader::new(run.clone(), r.base.clone(), step.name, r.inputs.clone());
    Inputs::new(r.inputs.clone(), Arc::new(loader))
}

/// Whether this process's output is captured whole by a watcher (the processes executor or
/// a batch job's wrapper set `FLOWLIB_CAPTURED=1` when they start `step --spec`).
pub(crate) fn captured() -> bool {
    static CAPTURED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CAPTURED.get_or_init(|| std::env::var_os(CAPTURED_ENV).is_some_and(|v| v == "1"))
}

/// Set to `1` in the environment of a task process whose stdout and stderr are captured.
pub(crate) const CAPTURED_ENV: &str = "FLOWLIB_CAPTURED";

fn context<F: Flow>(
    run: &RunContext,
    spec: &TaskSpec,
    step: &Step,
    cancel: Arc<AtomicBool>,
) -> Ctx {
    let log = (!captured()).then(|| crate::flow::LogTarget {
        ds: run.ds.clone(),
        stream: std::sync::OnceLock::new(),
    });
    Ctx {
        log,
        card: Card::default(),
        metrics: Some(crate::meta::metrics::MetricLog::new(
            &run.ds,
            F::NAME,
            &spec.task,
        )),
        flow: F::NAME,
        run_id: run.run_id.clone(),
        step: step.name,
        index: spec.task.index.clone(),
        attempt: spec.task.attempt,
        cancel: cancel.clone(),
        checkpoint: Some(Checkpoint {
            ds: run.ds.clone(),
            flow: F::NAME,
            step: step.name,
            index: spec.task.index.clone(),
            attempt: spec.task.attempt,
            sources: spec.checkpoint_sources.clone(),
            cancel,
            declared: step.checkpoint,
            seq: 0,
            last: None,
            saves: 0,
            current: None,
        }),
    }
}

/// Store the state a step left; fail the attempt if it changed a parameter.
fn store_ok<F: Flow>(
    run: &RunContext,
    step: &Step,
    task: &str,
    base: &Committed,
    state: &F,
) -> Result<Stored, String> {
    let fields = store_state(run, state, base, step.field_set.as_deref(), task)
        .map_err(|e| format!("cannot store artifacts: {}", chain(&e)))?;
    // Parameters are read-only: a step that changes one fails.
    let changed = F::FIELDS
        .iter()
        .filter(|f| f.param.is_some())
        .map(|f| f.name)
        .find(|n| {
            run.params
                .get(*n)
                .is_some_and(|b| fields.artifacts.get(*n) != Some(b))
        });
    if let Some(name) = changed {
        return Err(format!(
            "the step changed parameter `{name}`; parameters are read-only"
        ));
    }
    Ok(Stored {
        fields,
        status: AttemptStatus::Ok,
        error: None,
        foreach_count: state.__foreach_len(step.index).map(|n| n as u64),
    })
}

/// A `#[catch]` step failed: pass the inputs on unchanged, with the error in the catch field.
fn store_caught<F: Flow>(
    run: &RunContext,
    step: &Step,
    task: &str,
    base: &Committed,
    msg: String,
) -> Result<Stored, String> {
    let mut fields = Fields {
        artifacts: base.artifacts.to_map(),
        inline: base.artifacts.inline(),
    };
    for (name, blob) in &run.params {
        fields.insert(name, *blob, None);
    }
    if let Some(Some(field)) = step.catch {
        let mut marker = F::default();
        marker.__set_caught(step.index, &msg);
        if let Some(i) = F::field_index(field) {
            let what = What::new(field, Site::task(None, task));
            let (blob, bytes) =
                cas::put_or_inline(&run.ds, None, &what, &mut |w| marker.__encode_field(i, w))
                    .map_err(|e| {
                        format!(
                            "{msg}; and the caught error could not be stored: {}",
                            chain(&e)
                        )
                    })?;
            fields.insert(field, blob, bytes);
        }
    }
    let foreach_count = if step.foreach.is_some() {
        match load_state::<F>(run, base, &describe(&base.task, &run.run_id)) {
            Ok(s) => s.__foreach_len(step.index).map(|n| n as u64),
            Err(_) => Some(0),
        }
    } else {
        None
    };
    // Only the bytes of what the manifest names (a parameter may have replaced a value).
    let named: std::collections::HashSet<_> = fields.artifacts.values().map(|b| b.digest).collect();
    fields.inline.retain(|d, _| named.contains(d));
    Ok(Stored {
        fields,
        status: AttemptStatus::Caught,
        error: Some(msg),
        foreach_count,
    })
}

//! Starting runs: a fresh `run`, or a `resume` that reuses an origin run's committed tasks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::cas::{self, What};
use crate::client::{successful, TaskAttempt};
use crate::datastore::Datastore;
use crate::digest::BlobRef;
use crate::error::{Error, Result};
use crate::executor::{end_record, Limits, Prefilled, RunSummary, Scheduler};
use crate::flow::Flow;
use crate::graph::{Graph, JoinKind};
use crate::metadata::{
    hostname, new_run_id, now_rfc3339, paths, username, validate_run_id, AttemptStatus, IndexPath,
    ResumeInfo, ReuseRecord, ReusedTask, RunRecord, StepShape, METADATA_VERSION,
};
use crate::progress::ProgressMode;
use crate::task::{load_state, Committed, RunContext};

/// Options of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Capacity.
    pub limits: Limits,
    /// Progress display.
    pub progress: ProgressMode,
    /// Parameter values from the command line: (field name, raw text).
    pub params: Vec<(String, String)>,
    /// The command line, recorded in the run record.
    pub argv: Vec<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            limits: Limits::detect(None, None),
            progress: ProgressMode::Quiet,
            params: Vec::new(),
            argv: std::env::args().collect(),
        }
    }
}

/// What to resume.
#[derive(Clone, Debug, Default)]
pub struct ResumeOptions {
    /// The run to resume (default: the latest run of the flow).
    pub origin: Option<String>,
    /// Re-run this step and everything downstream of it (default: only failed or missing tasks).
    pub step: Option<String>,
}

/// Apply command-line parameter values to a state.
fn apply_params<F: Flow>(
    state: &mut F,
    params: &[(String, String)],
    given: &mut HashSet<String>,
) -> Result<()> {
    for (name, raw) in params {
        let i = F::field_index(name)
            .filter(|&i| F::FIELDS[i].param.is_some())
            .ok_or_else(|| Error::invalid(format!("flow {} has no parameter `{name}`", F::NAME)))?;
        let flag = F::FIELDS[i].param.map(|p| p.flag).unwrap_or(name.as_str());
        state.__set_param(i, raw).map_err(|e| {
            Error::invalid(format!(
                "invalid value {raw:?} for --{flag} ({}): {e}",
                F::FIELDS[i].ty
            ))
        })?;
        given.insert(name.clone());
    }
    Ok(())
}

fn params_json<F: Flow>(state: &F) -> BTreeMap<String, serde_json::Value> {
    F::FIELDS
        .iter()
        .enumerate()
        .filter(|(_, f)| f.param.is_some())
        .map(|(i, f)| {
            (
                f.name.to_string(),
                state.__field_json(i).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

fn store_initial<F: Flow>(ds: &Datastore, state: &F) -> Result<BTreeMap<String, BlobRef>> {
    let mut out = BTreeMap::new();
    for (i, f) in F::FIELDS.iter().enumerate() {
        let what = What::new(f.name, " of the initial state");
        let blob = cas::put_encoded(ds, None, &what, &mut |w| state.__encode_field(i, w))?;
        out.insert(f.name.to_string(), blob);
    }
    Ok(out)
}

/// The graph's shape, recorded so a later resume can check it maps onto the new code.
pub(crate) fn shape(graph: &Graph) -> Vec<StepShape> {
    graph
        .steps()
        .iter()
        .map(|s| StepShape {
            name: s.name.to_string(),
            next: s
                .next
                .iter()
                .map(|&n| graph.steps()[n].name.to_string())
                .collect(),
            foreach: s.foreach.map(str::to_string),
            joins: s
                .join
                .map(|(split, _)| graph.steps()[split].name.to_string()),
        })
        .collect()
}

struct Launch<F> {
    state: F,
    initial: Option<BTreeMap<String, BlobRef>>,
    resume: Option<ResumeInfo>,
    reuse: Option<ReuseRecord>,
    pre: Prefilled,
}

/// The start step's input for a new run: defaults, then `params`; checks that every
/// required parameter is given. Nothing is written.
pub fn initial_state<F: Flow>(params: &[(String, String)]) -> Result<F> {
    let mut state = F::default();
    state.__apply_param_defaults();
    let mut given = HashSet::new();
    apply_params(&mut state, params, &mut given)?;
    let missing: Vec<String> = F::FIELDS
        .iter()
        .filter_map(|f| {
            f.param
                .filter(|p| p.required && !given.contains(f.name))
                .map(|p| format!("--{}", p.flag))
        })
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "missing required parameter {}",
            missing.join(", ")
        )));
    }
    Ok(state)
}

/// Start a new run of `F` and wait for it to finish.
///
/// Returns the summary whether the run succeeded or failed; errors are for runs that could
/// not start (bad parameters, resources, datastore).
pub fn run<F: Flow>(ds: &Datastore, opts: &RunOptions) -> Result<RunSummary> {
    let state = initial_state::<F>(&opts.params)?;
    launch::<F>(
        ds,
        opts,
        Launch {
            state,
            initial: None,
            resume: None,
            reuse: None,
            pre: Prefilled::default(),
        },
    )
}

fn launch<F: Flow>(ds: &Datastore, opts: &RunOptions, l: Launch<F>) -> Result<RunSummary> {
    let graph = F::graph();
    opts.limits.check(graph)?;
    let initial = match l.initial {
        Some(i) => i,
        None => store_initial(ds, &l.state)?,
    };
    let params: BTreeMap<String, BlobRef> = F::FIELDS
        .iter()
        .filter(|f| f.param.is_some())
        .filter_map(|f| initial.get(f.name).map(|b| (f.name.to_string(), *b)))
        .collect();

    let mut record = RunRecord {
        version: METADATA_VERSION,
        flow: F::NAME.to_string(),
        run_id: String::new(),
        started: now_rfc3339(),
        params: params_json(&l.state),
        initial: initial.clone(),
        graph_digest: graph.digest().to_string(),
        graph: shape(graph),
        code: crate::identity::current(),
        host: hostname(),
        user: username(),
        pid: std::process::id(),
        argv: opts.argv.clone(),
        resume: l.resume,
    };
    // Run ids are unique by construction; create-only makes sure.
    let mut tries = 0;
    loop {
        record.run_id = new_run_id();
        if ds.create_json(&paths::run_record(F::NAME, &record.run_id), &record)? {
            break;
        }
        tries += 1;
        if tries > 5 {
            return Err(Error::invalid("could not pick an unused run id"));
        }
    }
    if let Some(reuse) = &l.reuse {
        if !ds.create_json(&paths::reuse(F::NAME, &record.run_id), reuse)? {
            return Err(Error::metadata(
                paths::reuse(F::NAME, &record.run_id),
                "another writer created this run's reuse record",
            ));
        }
    }
    let run = Arc::new(RunContext {
        ds: ds.clone(),
        flow: F::NAME,
        run_id: record.run_id.clone(),
        params,
        host: record.host.clone(),
        splits: Default::default(),
    });
    if opts.progress != ProgressMode::Quiet {
        let mut line = format!("flowlib: run {} of {} started", record.run_id, F::NAME);
        if let Some(r) = &record.resume {
            line.push_str(&format!(
                " (resuming {}, {} tasks reused)",
                r.origin, r.reused_tasks
            ));
        }
        eprintln!("{line}");
    }
    let start = Arc::new(Committed {
        task: None,
        artifacts: initial,
        foreach_count: None,
        status: AttemptStatus::Ok,
    });
    let summary = Scheduler::<F>::new(run, opts.limits.clone(), l.pre, opts.progress).run(start)?;
    crate::failpoint::hold("before-run-end", &summary.run_id);
    ds.create_json(
        &paths::run_end(F::NAME, &summary.run_id),
        &end_record(&summary),
    )?;
    Ok(summary)
}

/// Resume a run of `F`: a new run that reuses every committed task of the origin that is not
/// at or downstream of the resume point, and runs the rest with the current code.
pub fn resume<F: Flow>(
    ds: &Datastore,
    opts: &RunOptions,
    ropts: &ResumeOptions,
) -> Result<RunSummary> {
    let graph = F::graph();
    let origin_id = match &ropts.origin {
        Some(id) => {
            validate_run_id(id)?;
            id.clone()
        }
        None => ds.latest_run(F::NAME)?.ok_or_else(|| {
            Error::not_found(format!(
                "no earlier run of flow {} in {} to resume",
                F::NAME,
                ds.url()
            ))
        })?,
    };
    let origin = ds.run_info(F::NAME, &origin_id)?;

    // Where to resume from.
    let step = match &ropts.step {
        Some(name) => Some(graph.step(name).ok_or_else(|| {
            let names: Vec<&str> = graph.steps().iter().map(|s| s.name).collect();
            Error::invalid(format!(
                "flow {} has no step `{name}`; steps: {}",
                F::NAME,
                names.join(", ")
            ))
        })?),
        None => None,
    };
    let rerun: Vec<bool> = match step {
        Some(s) => graph.downstream_of(s.index),
        None => vec![false; graph.steps().len()],
    };

    // The graph must map onto the origin's for every step whose tasks are reused.
    let now = shape(graph);
    let old: HashMap<&str, &StepShape> = origin
        .record
        .graph
        .iter()
        .map(|s| (s.name.as_str(), s))
        .collect();
    let mut problems = Vec::new();
    if let Some(s) = step {
        if !old.contains_key(s.name) && !origin.record.graph.is_empty() {
            problems.push(format!(
                "step `{}` does not exist in run {origin_id}",
                s.name
            ));
        }
    }
    if !origin.record.graph.is_empty() {
        for (i, s) in now.iter().enumerate() {
            if rerun[i] {
                continue;
            }
            match old.get(s.name.as_str()) {
                None => problems.push(format!("step `{}` is new (not in run {origin_id})", s.name)),
                Some(o) if *o != s => problems.push(describe_change(o, s)),
                _ => {}
            }
        }
        // Removed steps only matter as an explanation of a reused step that changed.
        if !problems.is_empty() {
            for o in &origin.record.graph {
                if !now.iter().any(|s| s.name == o.name) {
                    problems.push(format!(
                        "step `{}` of run {origin_id} no longer exists",
                        o.name
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::invalid(format!(
            "cannot resume run {origin_id}: the flow's graph changed: {}{}",
            problems.join("; "),
            if step.is_none() {
                "; resume from a step upstream of the changes (`resume <step>`) or start a new run"
            } else {
                "; resume from an earlier step or start a new run"
            }
        )));
    }

    // Initial state: the origin's, with parameter overrides on top.
    let run_ctx = RunContext {
        ds: ds.clone(),
        flow: F::NAME,
        run_id: origin_id.clone(),
        params: BTreeMap::new(),
        host: String::new(),
        splits: Default::default(),
    };
    let origin_initial = Committed {
        task: None,
        artifacts: origin.record.initial.clone(),
        foreach_count: None,
        status: AttemptStatus::Ok,
    };
    let mut state: F = load_state::<F>(
        &run_ctx,
        &origin_initial,
        &format!(" of run {origin_id} initial state"),
    )?;
    let mut given = HashSet::new();
    apply_params(&mut state, &opts.params, &mut given)?;
    let new_params = params_json(&state);
    let changed_params: BTreeMap<String, (serde_json::Value, serde_json::Value)> = new_params
        .iter()
        .filter_map(|(k, v)| {
            let old = origin
                .record
                .params
                .get(k)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            (old != *v).then(|| (k.clone(), (old, v.clone())))
        })
        .collect();

    // Committed tasks of the origin, and which of them are reused.
    let attempts: Vec<TaskAttempt> = ds.task_attempts(F::NAME, &origin_id)?;
    let ok = successful(attempts);
    let index_of: HashMap<&str, usize> = graph.steps().iter().map(|s| (s.name, s.index)).collect();
    let mut pre = Prefilled::default();
    let mut reused = Vec::new();
    for ((step_name, index), a) in &ok {
        let Some(&si) = index_of.get(step_name.as_str()) else {
            continue;
        };
        pre.origin_succeeded.insert((si, index.clone()));
        if rerun[si] {
            continue;
        }
        let m = a
            .manifest
            .as_ref()
            .expect("successful attempts have manifests");
        let pin = a
            .manifest_ref
            .expect("successful attempts pin their manifest");
        pre.reuse.insert(
            (si, index.clone()),
            Arc::new(Committed {
                task: Some(a.source.clone()),
                artifacts: m.artifacts.clone(),
                foreach_count: m.foreach_count,
                status: a.status,
            }),
        );
        reused.push(ReusedTask {
            source: a.source.clone(),
            status: a.status,
            manifest: pin,
        });
    }
    // Reuse is only sound where the whole upstream is reused too; a task whose parent is
    // re-run must run again (this also covers a split whose join is re-run partially).
    prune_reuse(graph, &mut pre.reuse);
    reused.retain(|t| {
        index_of
            .get(t.source.step.as_str())
            .is_some_and(|&si| pre.reuse.contains_key(&(si, t.source.index.clone())))
    });

    // Checkpoint lineage: the origin, then its own origins.
    let mut chain = vec![origin_id.clone()];
    let mut cur = origin.record.resume.as_ref().map(|r| r.origin.clone());
    while let Some(id) = cur {
        if chain.contains(&id) || chain.len() > 64 {
            break;
        }
        chain.push(id.clone());
        cur = ds
            .run_info(F::NAME, &id)
            .ok()
            .and_then(|i| i.record.resume.map(|r| r.origin));
    }
    pre.checkpoint_origins = chain;

    let info = ResumeInfo {
        origin: origin_id.clone(),
        step: ropts.step.clone(),
        changed_params,
        reused_tasks: reused.len(),
    };
    let reuse = ReuseRecord {
        version: METADATA_VERSION,
        origin: origin_id,
        tasks: reused,
    };
    let initial = if given.is_empty() {
        Some(origin.record.initial.clone())
    } else {
        None
    };
    launch::<F>(
        ds,
        opts,
        Launch {
            state,
            initial,
            resume: Some(info),
            reuse: Some(reuse),
            pre,
        },
    )
}

/// Drop reused tasks whose inputs are not all reused.
fn prune_reuse(graph: &Graph, reuse: &mut HashMap<(usize, IndexPath), Arc<Committed>>) {
    loop {
        let mut drop_keys = Vec::new();
        for (s, p) in reuse.keys() {
            let step = &graph.steps()[*s];
            if step.is_start {
                continue;
            }
            let parents_ok = match step.join {
                Some((split, JoinKind::Foreach)) => {
                    // Needs the split and every one of its items' last body step.
                    let split_ok = reuse.contains_key(&(split, p.clone()));
                    let count = reuse
                        .get(&(split, p.clone()))
                        .and_then(|c| c.foreach_count)
                        .unwrap_or(0);
                    let pred = step.preds[0];
                    split_ok && (0..count as u32).all(|i| reuse.contains_key(&(pred, p.child(i))))
                }
                Some((split, JoinKind::Branch)) => {
                    reuse.contains_key(&(split, p.clone()))
                        && step
                            .preds
                            .iter()
                            .all(|&q| reuse.contains_key(&(q, p.clone())))
                }
                None => {
                    let pred = step.preds[0];
                    let pred_step = &graph.steps()[pred];
                    let pp = if pred_step.foreach.is_some() {
                        p.parent()
                    } else {
                        p.clone()
                    };
                    reuse.contains_key(&(pred, pp))
                }
            };
            if !parents_ok {
                drop_keys.push((*s, p.clone()));
            }
        }
        if drop_keys.is_empty() {
            break;
        }
        for k in drop_keys {
            reuse.remove(&k);
        }
    }
}

fn describe_change(old: &StepShape, new: &StepShape) -> String {
    let mut what = Vec::new();
    if old.next != new.next {
        what.push(format!(
            "next was [{}], now [{}]",
            old.next.join(", "),
            new.next.join(", ")
        ));
    }
    if old.foreach != new.foreach {
        what.push(format!(
            "foreach was {}, now {}",
            old.foreach.as_deref().unwrap_or("none"),
            new.foreach.as_deref().unwrap_or("none")
        ));
    }
    if old.joins != new.joins {
        what.push(format!(
            "it joined {}, now {}",
            old.joins.as_deref().unwrap_or("nothing"),
            new.joins.as_deref().unwrap_or("nothing")
        ));
    }
    format!("step `{}` changed ({})", new.name, what.join(", "))
}

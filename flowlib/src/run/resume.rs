//! Resume: a new run that reuses every committed task of an origin run that is not at or
//! downstream of the resume point (by reference: no blob is copied), and runs the rest
//! with the current code. Planning what to reuse is its own unit, [`plan_reuse`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::error::{Error, Result, Site};
use crate::exec::Executor;
use crate::flow::graph::TaskKey;
use crate::flow::{Flow, Graph, Step};
use crate::meta::query::heartbeat_age;
use crate::meta::{
    hostname, now_rfc3339, Committed, Heartbeat, ResumeClaim, ResumeInfo, ReuseRecord, ReusedTask,
    RunInfo, StepShape, TaskAttempt, METADATA_VERSION,
};
use crate::run::scheduler::Prefilled;
use crate::run::start::{apply_params, param_encodings, params_json, store_initial};
use crate::run::{launch, prepare, shape, Launch, ResumeOptions, RunOptions, RunSummary};
use crate::store::{layout, BlobRef, Datastore};
use crate::task::{load_state, RunContext};

/// Resume a run of `F`: a new run that reuses every committed task of the origin that is not
/// at or downstream of the resume point, and runs the rest with the current code.
pub fn resume<F: Flow>(
    ds: &Datastore,
    opts: &RunOptions,
    ropts: &ResumeOptions,
) -> Result<RunSummary> {
    let executor = prepare::<F>(opts)?;
    resume_prepared::<F>(ds, opts, ropts, executor)
}

/// [`resume`] with an executor from [`prepare`].
pub(crate) fn resume_prepared<F: Flow>(
    ds: &Datastore,
    opts: &RunOptions,
    ropts: &ResumeOptions,
    executor: Box<dyn Executor>,
) -> Result<RunSummary> {
    let graph = F::graph();
    let origin_id = origin_of::<F>(ds, ropts)?;
    let origin = ds.run_info(F::NAME, &origin_id)?;
    refuse_live_origin(&origin)?;
    // Refuse early, before writing anything, when another resume of it is alive; the
    // claim itself is made when the run record is written (`claim_origin`).
    refuse_live_claim(
        ds,
        F::NAME,
        &origin_id,
        newest_claim(ds, F::NAME, &origin_id)?,
    )?;
    let step = resume_step::<F>(graph, ropts)?;
    let mut rerun: Vec<bool> = match step {
        Some(s) => graph.downstream_of(s.index),
        None => vec![false; graph.steps().len()],
    };

    // Initial state: the origin's, with parameter overrides on top.
    let run_ctx = RunContext::new(ds.clone(), F::NAME, origin_id.clone(), BTreeMap::new());
    let origin_initial = Committed::initial(origin.record.initial.clone());
    let site = Site::detail(Some(&origin_id), "initial state");
    let mut state: F = load_state::<F>(&run_ctx, &origin_initial, &site)?;
    let (origin_json, origin_enc) = (params_json(&state), param_encodings(&state));
    let mut given = HashSet::new();
    apply_params(&mut state, &opts.params, &mut given)?;
    let changed_params = changed_params(
        &origin.record.initial,
        (&origin_json, &origin_enc),
        (&params_json(&state), &param_encodings(&state)),
    );

    // A step that reads a changed parameter re-runs with the new value, and so does
    // everything downstream of it.
    let changed: Vec<&str> = changed_params.keys().map(String::as_str).collect();
    let (for_params, fresh) = rerun_for_params::<F>(graph, &changed);
    for (r, f) in rerun.iter_mut().zip(&fresh) {
        *r |= *f;
    }
    check_shape(graph, &origin, step, &rerun)?;
    let initial = if changed_params.is_empty() {
        origin.record.initial.clone()
    } else {
        store_initial(ds, &state)?
    };

    let (mut pre, reused) = plan_reuse(graph, ds, F::NAME, &origin_id, &rerun)?;
    pre.checkpoint_origins = lineage(ds, F::NAME, &origin);
    pre.fresh = fresh;

    let info = ResumeInfo {
        origin: origin_id.clone(),
        step: ropts.step.clone(),
        changed_params,
        reused_tasks: reused.len(),
        rerun_for_params: for_params,
        reuse: None,
    };
    let reuse = ReuseRecord {
        version: METADATA_VERSION,
        origin: origin_id,
        tasks: reused,
    };
    let l = Launch {
        initial: Some(initial),
        resume: Some(info),
        reuse: Some(reuse),
        pre,
        ..Launch::new(state)
    };
    launch::<F>(ds, opts, executor, l)
}

/// A run that is still alive is not resumed: its in-flight tasks would run twice.
fn refuse_live_origin(origin: &RunInfo) -> Result<()> {
    if origin.is_alive() != Some(true) {
        return Ok(());
    }
    let r = &origin.record;
    let how = match &origin.heartbeat {
        Some(h) => describe_heartbeat(h),
        None => format!("pid {} on this host", r.pid),
    };
    Err(Error::invalid(format!(
        "run {} is still running ({how}); wait for it to finish, then resume it if it failed",
        r.run_id
    )))
}

fn describe_heartbeat(h: &Heartbeat) -> String {
    if let Some(o) = &h.orchestrator {
        return format!(
            "driven by {o}, which has not ended it: wait for the workflow; if it was deleted or terminated before its exit handler ran, record the run's end with `argo-end --run RUN` first"
        );
    }
    let ago = heartbeat_age(h).map_or_else(|| "?".to_string(), |a| a.as_secs().to_string());
    format!("heartbeat {ago} s ago on host {} pid {}", h.host, h.pid)
}

/// Claim origin `origin` for resumed run `run`, before that run writes anything but its
/// heartbeat: refuse if another resume of the same origin is alive.
///
/// Claims are numbered, create-only records `resume-claims/<n>.json` under the origin.
/// A resume reads the newest claim; if its claimant's heartbeat is live (no end record,
/// fresh, its process exists) it refuses, else it creates claim `n + 1`. Two resumes that
/// both found claimant `n` dead race for the same name `n + 1`, and create-only lets one
/// win: the other refuses. A resume that starts after claim `n + 1` exists sees it, and
/// its claimant's heartbeat, which was created before the claim. So at most one resume of
/// an origin is alive at any time, while a resume after an earlier one finished (or died)
/// proceeds.
pub(crate) fn claim_origin(ds: &Datastore, flow: &str, origin: &str, run: &str) -> Result<()> {
    let newest = newest_claim(ds, flow, origin)?;
    refuse_live_claim(ds, flow, origin, newest)?;
    let next = newest.map_or(0, |n| n + 1);
    let claim = ResumeClaim {
        run: run.to_string(),
        host: hostname(),
        pid: std::process::id(),
        claimed: now_rfc3339(),
    };
    if ds.create_json(&layout::resume_claim(flow, origin, next), &claim)? {
        return Ok(());
    }
    // Another resume took this number first: it is alive (it has just claimed).
    refuse_live_claim(ds, flow, origin, Some(next))?;
    Err(Error::invalid(format!(
        "cannot resume run {origin}: another resume claimed it at the same time"
    )))
}

/// The number of the newest claim on `origin`, if it has any.
fn newest_claim(ds: &Datastore, flow: &str, origin: &str) -> Result<Option<u64>> {
    let prefix = layout::resume_claims(flow, origin);
    Ok(ds
        .list(&prefix)?
        .iter()
        .filter_map(|l| {
            l.rel
                .strip_prefix(&prefix)
                .and_then(layout::parse_resume_claim)
        })
        .max())
}

/// Refuse if the claimant of claim `n` of `origin` is alive.
fn refuse_live_claim(ds: &Datastore, flow: &str, origin: &str, n: Option<u64>) -> Result<()> {
    let Some(n) = n else {
        return Ok(());
    };
    let claim: ResumeClaim = match ds.get_json(&layout::resume_claim(flow, origin, n)) {
        Ok(Some(c)) => c,
        // A damaged claim holds nothing.
        Ok(None) | Err(Error::Metadata { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    match ds.live_heartbeat(flow, &claim.run)? {
        None => Ok(()),
        Some(h) => Err(Error::invalid(format!(
            "cannot resume run {origin}: run {} is resuming it right now ({}); wait for it to \
             finish, then resume {origin} again or resume {} if it failed",
            claim.run,
            describe_heartbeat(&h),
            claim.run
        ))),
    }
}

/// The run to resume: the one asked for, or the latest run of the flow.
fn origin_of<F: Flow>(ds: &Datastore, ropts: &ResumeOptions) -> Result<String> {
    match &ropts.origin {
        Some(id) => ds.resolve_run(F::NAME, id),
        None => ds.latest_run(F::NAME)?.ok_or_else(|| {
            Error::not_found(format!(
                "no earlier run of flow {} in {} to resume",
                F::NAME,
                ds.url()
            ))
        }),
    }
}

/// The step to resume from, if one was asked for.
fn resume_step<F: Flow>(
    graph: &'static Graph,
    ropts: &ResumeOptions,
) -> Result<Option<&'static Step>> {
    let Some(name) = &ropts.step else {
        return Ok(None);
    };
    graph.step(name).map(Some).ok_or_else(|| {
        let names: Vec<&str> = graph.steps().iter().map(|s| s.name).collect();
        Error::invalid(format!(
            "flow {} has no step `{name}`; steps: {}",
            F::NAME,
            names.join(", ")
        ))
    })
}

/// The graph must map onto the origin's for every step whose tasks are reused.
fn check_shape(graph: &Graph, origin: &RunInfo, step: Option<&Step>, rerun: &[bool]) -> Result<()> {
    let origin_id = &origin.record.run_id;
    let recorded = &origin.record.graph;
    if recorded.is_empty() {
        return Ok(());
    }
    let now = shape(graph);
    let old: HashMap<&str, &StepShape> = recorded.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut problems = Vec::new();
    if let Some(s) = step {
        if !old.contains_key(s.name) {
            problems.push(format!(
                "step `{}` does not exist in run {origin_id}",
                s.name
            ));
        }
    }
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
    if problems.is_empty() {
        return Ok(());
    }
    // Removed steps only matter as an explanation of a reused step that changed.
    for o in recorded {
        if !now.iter().any(|s| s.name == o.name) {
            problems.push(format!(
                "step `{}` of run {origin_id} no longer exists",
                o.name
            ));
        }
    }
    Err(Error::invalid(format!(
        "cannot resume run {origin_id}: the flow's graph changed: {}{}",
        problems.join("; "),
        if step.is_none() {
            "; resume from a step upstream of the changes (`resume <step>`) or start a new run"
        } else {
            "; resume from an earlier step or start a new run"
        }
    )))
}

/// The parameters' recorded values and their encodings.
type ParamValues<'a> = (
    &'a BTreeMap<String, serde_json::Value>,
    &'a BTreeMap<String, Option<Vec<u8>>>,
);

/// Parameters whose value differs from the origin's: name, (origin value, new value).
/// Values are compared by their encodings, the bytes of their blobs: exact, so NaN and
/// the infinities count like any other value. A parameter added since the origin ran
/// (its initial state has no blob for it) shows `null` as its origin value.
fn changed_params(
    origin_initial: &BTreeMap<String, BlobRef>,
    (origin_json, origin_enc): ParamValues<'_>,
    (now_json, now_enc): ParamValues<'_>,
) -> BTreeMap<String, (serde_json::Value, serde_json::Value)> {
    let json = |m: &BTreeMap<String, serde_json::Value>, k: &str| {
        m.get(k).cloned().unwrap_or(serde_json::Value::Null)
    };
    now_enc
        .iter()
        .filter(|(k, now)| {
            // A value that cannot be encoded in memory cannot be compared: changed.
            now.is_none() || origin_enc.get(*k) != Some(*now)
        })
        .map(|(k, _)| {
            let old = if origin_initial.contains_key(k) {
                json(origin_json, k)
            } else {
                serde_json::Value::Null
            };
            (k.clone(), (old, json(now_json, k)))
        })
        .collect()
}

/// Whether step `s` may read field `field`. Its field set says what its body reaches
/// through `self` (`None`: anything); a split also reads its foreach field, an item step
/// its item's source; and a join may read any field of its inputs, which load every
/// field, parameters included, so a join counts as reading every parameter.
fn may_read(s: &Step, field: usize) -> bool {
    s.field_set.as_ref().is_none_or(|set| set.contains(&field))
        || s.foreach_read == Some(field)
        || s.item_source == Some(field)
        || s.is_join()
}

/// The steps a resume re-runs because parameters changed: for each changed parameter, the
/// steps that may read it and everything downstream of them (names in graph order), and
/// all of them as a mask over the graph's steps.
fn rerun_for_params<F: Flow>(
    graph: &Graph,
    changed: &[&str],
) -> (BTreeMap<String, Vec<String>>, Vec<bool>) {
    let n = graph.steps().len();
    let mut all = vec![false; n];
    let mut by_param = BTreeMap::new();
    for &name in changed {
        let Some(field) = F::field_index(name) else {
            continue;
        };
        let mut mask = vec![false; n];
        for s in graph.steps().iter().filter(|s| may_read(s, field)) {
            for (m, d) in mask.iter_mut().zip(graph.downstream_of(s.index)) {
                *m |= d;
            }
        }
        let steps: Vec<String> = graph
            .steps()
            .iter()
            .filter(|s| mask[s.index])
            .map(|s| s.name.to_string())
            .collect();
        for (a, m) in all.iter_mut().zip(&mask) {
            *a |= *m;
        }
        if !steps.is_empty() {
            by_param.insert(name.to_string(), steps);
        }
    }
    (by_param, all)
}

/// Which committed tasks of run `origin` a resume reuses: every successful one outside the
/// re-run steps whose whole upstream is reused too (the last successful attempt of each).
///
/// The origin's attempts are read a few thousand at a time and only their views are kept,
/// so planning the resume of 100,000 tasks never holds 100,000 manifests.
pub(crate) fn plan_reuse(
    graph: &Graph,
    ds: &Datastore,
    flow: &str,
    origin: &str,
    rerun: &[bool],
) -> Result<(Prefilled, Vec<ReusedTask>)> {
    let index_of: HashMap<&str, usize> = graph.steps().iter().map(|s| (s.name, s.index)).collect();
    let mut pre = Prefilled::default();
    // Per task, its last successful attempt as the resume takes it (`None`: not reusable).
    type Taken = Option<(Arc<Committed>, ReusedTask)>;
    let mut last: HashMap<TaskKey, Taken> = HashMap::new();
    let mut like: HashMap<usize, Arc<Committed>> = HashMap::new();
    ds.for_each_attempt(flow, origin, &mut |a: TaskAttempt| {
        if !a.status.is_success() || a.manifest.is_none() {
            return;
        }
        let Some(&si) = index_of.get(a.step.as_str()) else {
            return;
        };
        let key = (si, a.index.clone());
        pre.origin_succeeded.insert(key.clone());
        if rerun[si] {
            return;
        }
        let (Some(m), Some(pin)) = (a.manifest, a.manifest_ref) else {
            last.insert(key, None);
            return;
        };
        // The first view of a step is a table the step's other views are stored over:
        // 100,000 reused foreach items hold what each changed, not every field each.
        let mut c = match like.get(&si) {
            Some(first) => Committed::over(first, a.source.clone(), pin, m, false),
            None => Committed::of(a.source.clone(), pin, m),
        };
        c.status = a.status;
        let c = Arc::new(c);
        like.entry(si).or_insert_with(|| c.clone());
        let task = ReusedTask {
            source: a.source,
            status: a.status,
            manifest: pin,
        };
        last.insert(key, Some((c, task)));
    })?;
    drop(like);
    let mut reused = Vec::new();
    for (key, (c, task)) in last.into_iter().filter_map(|(k, t)| Some((k, t?))) {
        pre.reuse.insert(key, c);
        reused.push(task);
    }
    // In task order, as the origin lists them.
    reused
        .sort_by(|a, b| (&a.source.step, &a.source.index).cmp(&(&b.source.step, &b.source.index)));
    prune_reuse(graph, &mut pre.reuse);
    reused.retain(|t| {
        index_of
            .get(t.source.step.as_str())
            .is_some_and(|&si| pre.reuse.contains_key(&(si, t.source.index.clone())))
    });
    Ok((pre, reused))
}

/// Reuse is only sound where the whole upstream is reused too: drop reused tasks whose
/// inputs (by the graph's inputs rule) are not all reused, until none changes. This also
/// covers a split whose join is re-run partially.
fn prune_reuse(
    graph: &Graph,
    reuse: &mut HashMap<(usize, crate::meta::IndexPath), Arc<Committed>>,
) {
    loop {
        let drop_keys: Vec<_> = reuse
            .keys()
            .filter(|(s, p)| {
                let inputs = graph.inputs_of(*s, p, |k| {
                    reuse.get(k).map(|c| c.foreach_count.unwrap_or(0))
                });
                !inputs.is_some_and(|i| {
                    i.base
                        .iter()
                        .chain(i.joined.iter())
                        .all(|k| reuse.contains_key(k))
                })
            })
            .cloned()
            .collect();
        if drop_keys.is_empty() {
            break;
        }
        for k in drop_keys {
            reuse.remove(&k);
        }
    }
}

/// Checkpoint lineage: the origin, then its own origins, newest first.
fn lineage(ds: &Datastore, flow: &str, origin: &RunInfo) -> Vec<String> {
    let mut chain = vec![origin.record.run_id.clone()];
    let mut cur = origin.record.resume.as_ref().map(|r| r.origin.clone());
    while let Some(id) = cur {
        if chain.contains(&id) || chain.len() > 64 {
            break;
        }
        chain.push(id.clone());
        cur = ds
            .run_info(flow, &id)
            .ok()
            .and_then(|i| i.record.resume.map(|r| r.origin));
    }
    chain
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

#[cfg(test)]
mod claim_tests {
    use super::*;
    use crate::run::heartbeat::Beating;
    use crate::store::OpenMode;

    #[test]
    fn one_live_claim_per_origin_and_dead_or_finished_claimants_are_taken_over() {
        let ds = Datastore::open("memory://resume-claims", OpenMode::Create).unwrap();
        let (flow, origin) = ("F", "origin");
        // A claimant that never started its heartbeat holds nothing.
        claim_origin(&ds, flow, origin, "r1").unwrap();
        claim_origin(&ds, flow, origin, "r2").unwrap();

        // A live claimant (fresh heartbeat, this process) refuses every other resume.
        let mut live = Beating::start(&ds, flow, "r3", None)
            .unwrap()
            .expect("fresh id");
        live.recorded = true;
        claim_origin(&ds, flow, origin, "r3").unwrap();
        let err = claim_origin(&ds, flow, origin, "r4").unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("run r3 is resuming it") && msg.contains(origin),
            "{msg}"
        );
        assert!(
            Beating::start(&ds, flow, "r3", None).unwrap().is_none(),
            "ids are reserved"
        );

        // Once it stops (its heartbeat is marked ended), the next resume proceeds.
        drop(live);
        claim_origin(&ds, flow, origin, "r4").unwrap();
        let claims = ds.list(&layout::resume_claims(flow, origin)).unwrap();
        assert_eq!(claims.len(), 4, "claims 0..=3, none overwritten");
    }

    #[test]
    fn of_many_resumes_claiming_one_origin_at_once_exactly_one_wins() {
        let ds = Datastore::open("memory://resume-claims-race", OpenMode::Create).unwrap();
        for round in 0..20 {
            let origin = format!("origin{round}");
            let barrier = std::sync::Barrier::new(4);
            let won: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|i| {
                        let (ds, barrier, origin) = (&ds, &barrier, &origin);
                        s.spawn(move || {
                            let run = format!("{origin}-r{i}");
                            let mut b = Beating::start(ds, "F", &run, None).unwrap().unwrap();
                            b.recorded = true;
                            barrier.wait();
                            let r = claim_origin(ds, "F", origin, &run);
                            if let Err(e) = &r {
                                assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
                            }
                            // Stay alive until every claim was tried.
                            barrier.wait();
                            r.is_ok()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(
                won.iter().filter(|w| **w).count(),
                1,
                "round {round}: {won:?}"
            );
        }
    }
}

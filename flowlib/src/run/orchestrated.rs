//! Runs that a workflow engine drives instead of a flowlib driver process (`export argo`):
//! the engine's first task creates an ordinary run record, every step runs as
//! `<exe> step NAME --run RUN --task INDEX --attempt N`, and the engine's exit handler
//! writes the end record the driver would have written. The store stays the truth: the end
//! record is worked out from the run's commit records, not from what the engine says.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::meta::{Orchestrator, RunEnd, RunRecord, RunStatus};
use crate::run::{create_run_record, heartbeat, new_record, start, RunSummary};
use crate::store::{layout, Datastore};

/// Create the run record of a new run of `F` that `orchestrator` drives, with `params`
/// (field name, command-line text) over the flow's defaults. Returns the record; its
/// heartbeat names the engine, so readers count the run alive until its end record.
pub(crate) fn start_orchestrated<F: Flow>(
    ds: &Datastore,
    params: &[(String, String)],
    orchestrator: Orchestrator,
    argv: Vec<String>,
) -> Result<RunRecord> {
    let state = start::initial_state::<F>(params)?;
    let initial = start::store_initial(ds, &state)?;
    let mut record = new_record::<F>(&state, initial, argv, None);
    record.orchestrator = Some(orchestrator);
    // Its tasks run in the engine's pods, on no flowlib executor.
    record.executors = Some(Vec::new());
    let (record, beating) = create_run_record(ds, record, None)?;
    drop(beating); // leaves the heartbeat as it is: the engine drives the run from here
    Ok(record)
}

/// Write the end record of run `run` of `F`, which a workflow engine drove, from its
/// commit records: succeeded when every task that ran has a successful attempt and the end
/// step committed, else cancelled when `cancel` was asked for (the steps then start no new
/// task), else failed, naming each task without a successful attempt.
/// `engine_status` is what the engine says of the workflow (`Succeeded`, `Failed`,
/// `Error`); it only adds a line when it disagrees with the store. Writing it again
/// returns the record already there.
///
/// `engine_failures` are the engine's own words on the nodes that failed (Argo's
/// `{{workflow.failures}}`: node name, message), kept for a failed run: they explain deaths
/// the store cannot (`Pod was active on the node longer than the specified deadline`,
/// `OOMKilled`), one line per node.
pub(crate) fn end_orchestrated<F: Flow>(
    ds: &Datastore,
    run: &str,
    engine_status: Option<&str>,
    engine_failures: &[(String, String)],
) -> Result<RunEnd> {
    let info = ds.run_info(F::NAME, run)?;
    if let Some(end) = info.end {
        return Ok(end);
    }
    let Some(orchestrator) = info.record.orchestrator.clone() else {
        return Err(Error::invalid(format!(
            "run {run} of flow {} is driven by a flowlib driver (pid {} on {}), not by a workflow engine: its driver writes its end record",
            F::NAME,
            info.record.pid,
            info.record.host
        )));
    };
    let graph = F::graph();
    // Per task: whether some attempt succeeded, and the error of its latest failed one.
    let mut tasks: BTreeMap<String, (bool, u32, Option<String>)> = BTreeMap::new();
    let mut ran: BTreeSet<String> = BTreeSet::new();
    for a in ds.task_attempts(F::NAME, run)? {
        ran.insert(a.step.clone());
        let e = tasks.entry(a.task_id()).or_insert((false, 0, None));
        if a.status.is_success() {
            e.0 = true;
        } else if e.2.is_none() || a.source.attempt >= e.1 {
            e.1 = a.source.attempt;
            e.2 = Some(a.error.unwrap_or_else(|| a.status.to_string()));
        }
    }
    let mut failures: Vec<(String, String)> = tasks
        .iter()
        .filter(|(_, (ok, _, _))| !ok)
        .map(|(t, (_, _, e))| (t.clone(), e.clone().unwrap_or_default()))
        .collect();
    let tasks_ok = tasks.values().filter(|(ok, _, _)| *ok).count();
    let end_step = graph.steps().iter().find(|s| s.is_end()).map(|s| s.name);
    let end_ok = end_step.is_some_and(|e| tasks.get(e).is_some_and(|t| t.0));
    let cancelled = ds.head(&layout::cancel_request(F::NAME, run))?.is_some();
    let status = if end_ok && failures.is_empty() {
        RunStatus::Succeeded
    } else if cancelled {
        RunStatus::Cancelled
    } else {
        RunStatus::Failed
    };
    if status == RunStatus::Failed && failures.is_empty() {
        failures.push((
            "workflow".to_string(),
            format!(
                "{orchestrator} ended {} before the end step committed, with no failed attempt in the store (a pod killed, out of memory, past its deadline, or the workflow stopped)",
                engine_status.unwrap_or("without a status")
            ),
        ));
    }
    if status == RunStatus::Failed {
        let mut seen = BTreeSet::new();
        for (node, message) in engine_failures.iter().rev() {
            if !message.is_empty() && seen.insert(node) {
                failures.push((format!("argo node {node}"), message.clone()));
            }
        }
    }
    let not_run: Vec<String> = graph
        .steps()
        .iter()
        .filter(|s| !ran.contains(s.name))
        .map(|s| s.name.to_string())
        .collect();
    let started = chrono::DateTime::parse_from_rfc3339(&info.record.started).ok();
    let duration = started
        .and_then(|t| chrono::Utc::now().signed_duration_since(t).to_std().ok())
        .unwrap_or(Duration::ZERO);
    let summary = RunSummary {
        run_id: run.to_string(),
        status,
        tasks_ok,
        tasks_reused: 0,
        tasks_cached: 0,
        failures,
        not_run: if status == RunStatus::Succeeded {
            Vec::new()
        } else {
            not_run
        },
        duration,
        rerun_for_params: BTreeMap::new(),
    };
    let end = summary.end_record();
    ds.create_json(&layout::run_end(F::NAME, run), &end)?;
    heartbeat::end_orchestrated(ds, F::NAME, run, &orchestrator)?;
    // Create-only: a concurrent writer's record wins, and is the one to return.
    Ok(ds.run_info(F::NAME, run)?.end.unwrap_or(end))
}

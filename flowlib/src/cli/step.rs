//! `step` (hidden): run one task of an existing run, as execution backends do.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::cli::args::open;
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::store::{Datastore, Digest, OpenMode};
use crate::task::{self, TaskOutcome};

pub(super) fn command() -> Command {
    Command::new("step")
        .about("Run one task of an existing run (used by execution backends)")
        .hide(true)
        .arg(
            Arg::new("spec")
                .long("spec")
                .value_name("DIGEST")
                .conflicts_with_all(["name", "run", "task", "attempt"])
                .help("Run the task spec stored under this digest (what executors run)"),
        )
        .arg(
            Arg::new("name")
                .required_unless_present("spec")
                .value_name("STEP"),
        )
        .arg(
            Arg::new("run")
                .long("run")
                .required_unless_present("spec")
                .value_name("RUN"),
        )
        .arg(
            Arg::new("task")
                .long("task")
                .visible_alias("index")
                .default_value("_")
                .value_name("INDEX")
                .help("The task's foreach index (`2.5`), or its id (`fit/2.5`)"),
        )
        .arg(
            Arg::new("attempt")
                .long("attempt")
                .default_value("0")
                .value_parser(clap::value_parser!(u32)),
        )
        .arg(
            Arg::new("capture")
                .long("capture")
                .action(clap::ArgAction::SetTrue)
                .conflicts_with("spec")
                .help("Run the attempt in a watched child whose output is stored while it runs (what `export argo` pods run)"),
        )
        .arg(
            Arg::new("emit-foreach")
                .long("emit-foreach")
                .value_name("PATH")
                .conflicts_with("spec")
                .help("After a foreach split commits, write its items' task indices to PATH as a JSON list (`[\"0\",\"1\"]`, `[\"2.0\"]` nested): what an Argo `withParam` fans out over"),
        )
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    if let Some(text) = sub.get_one::<String>("spec") {
        let digest: Digest = text
            .parse()
            .map_err(|e| Error::invalid(format!("invalid --spec {text:?}: {e}")))?;
        let outcome = task::run_spec::<F>(&ds, &digest)?;
        return Ok(outcome_exit(&format!("spec {digest}"), outcome));
    }
    let step = sub
        .get_one::<String>("name")
        .ok_or_else(|| Error::invalid("`step` needs a step name (or --spec <digest>)"))?;
    let run = sub.get_one::<String>("run").expect("required");
    let index = sub.get_one::<String>("task").expect("has default");
    let attempt = *sub.get_one::<u32>("attempt").expect("has default");
    let index = index.strip_prefix(&format!("{step}/")).unwrap_or(index);
    let task = if index == "_" || index.is_empty() {
        step.clone()
    } else {
        format!("{step}/{index}")
    };
    let what = format!("task {task} of run {run} attempt {attempt}");
    record_skipped_attempts::<F>(&ds, run, &task, attempt)?;
    let code = if sub.get_flag("capture") {
        if ds
            .head(&crate::store::layout::cancel_request(F::NAME, run))?
            .is_some()
        {
            // No driver watches cancel.json when an engine drives the run: its tasks do.
            eprintln!("flowlib: run {run} was cancelled (`cancel {run}`): {what} not started");
            return Ok(ExitCode::from(1));
        }
        captured::<F>(&ds, run, &task, attempt)?
    } else {
        outcome_exit(&what, task::run_task::<F>(&ds, run, &task, attempt)?)
    };
    if let Some(path) = sub.get_one::<String>("emit-foreach") {
        if code == ExitCode::SUCCESS {
            emit_foreach::<F>(&ds, run, &task, path)?;
        }
    }
    Ok(code)
}

/// Record `lost` every earlier attempt of `task` that left no commit record: an engine
/// that retries a pod which died before flowlib started in it (evicted, image pull
/// failure, node lost) asks for attempt N while attempt N - 1 never recorded itself, and
/// readers rely on attempts being numbered without gaps. Create-only, so an attempt that
/// did commit keeps its record.
fn record_skipped_attempts<F: Flow>(
    ds: &Datastore,
    run: &str,
    task: &str,
    attempt: u32,
) -> Result<()> {
    let (step, index) = crate::meta::parse_task_id(task)?;
    for earlier in 0..attempt {
        let t = crate::meta::TaskRef {
            run: run.to_string(),
            step: step.to_string(),
            index: index.clone(),
            attempt: earlier,
        };
        if crate::meta::commit::read_commit(ds, F::NAME, &t)?.is_none() {
            let why = format!(
                "attempt {earlier} ended without a record of its own: its process was killed (at its deadline, out of memory, evicted, its node lost) or never started; the engine then retried the task as attempt {attempt}"
            );
            crate::meta::commit::record_lost(ds, F::NAME, &t, &why)?;
        }
    }
    Ok(())
}

/// `step NAME --run RUN --capture`: run the attempt as `task-exec` runs a spec, in a watched
/// child whose output is stored while it runs (so `logs` shows it); an attempt whose process
/// died without a commit record (a signal, out of memory, killed at its deadline by the
/// engine's watcher) is recorded `lost` with the decoded reason.
fn captured<F: Flow>(ds: &Datastore, run: &str, task: &str, attempt: u32) -> Result<ExitCode> {
    let spec = task::spec_of_task::<F>(ds, run, task, attempt)?;
    let digest = spec.store(ds)?;
    let ended = crate::exec::child::watch_spec::<F>(ds, digest)?;
    let code = exit_code(&ended.record);
    let committed = crate::meta::commit::read_commit(ds, F::NAME, &spec.task)
        .ok()
        .flatten()
        .is_some();
    if !committed {
        crate::meta::commit::record_lost(ds, F::NAME, &spec.task, &ended.message())?;
    }
    if code != 0 {
        eprintln!(
            "flowlib: task {task} of run {run} attempt {attempt}: {}",
            ended.record.reason
        );
    }
    Ok(ExitCode::from(code))
}

/// Write the task indices of the items of committed foreach split `task` of run `run` to
/// `path`, as a JSON list of strings.
fn emit_foreach<F: Flow>(ds: &Datastore, run: &str, task: &str, path: &str) -> Result<()> {
    let attempt = ds.successful_task(F::NAME, run, task)?;
    let count = attempt
        .manifest
        .as_ref()
        .and_then(|m| m.foreach_count)
        .ok_or_else(|| {
            Error::invalid(format!(
                "--emit-foreach: task {task} of run {run} is not a foreach split (its manifest counts no items)"
            ))
        })?;
    let items: Vec<String> = (0..count)
        .map(|i| attempt.index.child(i as u32).to_string())
        .collect();
    let json = serde_json::to_string(&items).expect("strings serialize");
    std::fs::write(path, json)
        .map_err(|e| Error::io(format!("writing the foreach items of {task} to {path}"), e))
}

/// Say how a `step` invocation ended; exit 0 only when it committed.
fn outcome_exit(what: &str, outcome: TaskOutcome) -> ExitCode {
    match outcome {
        TaskOutcome::Committed => {
            // Under a watcher the output is the task's log: keep it the task's own.
            if std::env::var_os(crate::task::CAPTURED_ENV).is_none() {
                eprintln!("flowlib: {what} committed");
            }
            ExitCode::SUCCESS
        }
        TaskOutcome::Failed(e) => {
            if std::env::var_os(crate::task::CAPTURED_ENV).is_none() {
                eprintln!("flowlib: {what} failed: {e}");
            }
            ExitCode::from(1)
        }
        TaskOutcome::AlreadyCommitted => {
            eprintln!("flowlib: {what} was already committed (or fenced) by another writer");
            ExitCode::from(1)
        }
    }
}

/// `task-exec` (hidden): what a batch job runs. It starts `<exe> step --spec <digest>` as a
/// child, stores the child's stdout and stderr in chunks while it runs (and copies them to
/// its own, which the engine keeps in the job's output file), and records how the child
/// ended. Its exit code is the child's (128 + signal when a signal ended it).
pub(super) fn task_exec_command() -> Command {
    Command::new("task-exec")
        .about("Run one task spec in a watched child process (what batch jobs run)")
        .hide(true)
        .arg(
            Arg::new("spec")
                .long("spec")
                .required(true)
                .value_name("DIGEST"),
        )
}

pub(super) fn task_exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let text = sub.get_one::<String>("spec").expect("required");
    let digest: Digest = text
        .parse()
        .map_err(|e| Error::invalid(format!("invalid --spec {text:?}: {e}")))?;
    let ended = crate::exec::child::watch_spec::<F>(&ds, digest)?;
    let code = exit_code(&ended.record);
    if code != 0 {
        eprintln!("flowlib: {}", ended.record.reason);
    }
    Ok(ExitCode::from(code))
}

/// The exit code a watched task process's wrapper passes on: the child's, or 128 + the
/// signal that ended it.
fn exit_code(record: &crate::meta::ExitRecord) -> u8 {
    let code = match (record.code, record.signal) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    };
    code.clamp(0, 255) as u8
}

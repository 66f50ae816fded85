//! `cancel`: cancel a running run from anywhere: a cancel request in the store (the run's
//! driver sees it within seconds, stops its tasks and ends the run as cancelled), and
//! for a run placed on Slurm, `scancel` of its jobs (and deletion of its Kubernetes Jobs for
//! a run on Kubernetes, `TerminateJob` of its AWS Batch jobs), so jobs stop even when the
//! driver is gone. The run record says which executors the run used.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::cli::args::open;
use crate::error::{chain, Result};
use crate::flow::Flow;
use crate::store::{layout, OpenMode};

pub(super) fn command() -> Command {
    Command::new("cancel")
        .about("Cancel a running run: its driver stops its tasks (Slurm jobs are cancelled); resume continues it")
        .arg(
            Arg::new("run")
                .required(true)
                .value_name("RUN")
                .help("The run id, or `latest`"),
        )
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let run = ds.resolve_run(F::NAME, sub.get_one::<String>("run").expect("required"))?;
    let info = ds.run_info(F::NAME, &run)?;
    let request = serde_json::json!({
        "requested": crate::meta::now_rfc3339(),
        "host": crate::meta::hostname(),
        "user": crate::meta::username(),
    });
    let new = ds.create_json(&layout::cancel_request(F::NAME, &run), &request)?;
    let alive = info.is_alive() == Some(true);
    let mut line = format!(
        "flowlib: cancel of run {run} {}",
        if new {
            "requested"
        } else {
            "was already requested"
        }
    );
    match &info.record.orchestrator {
        Some(o) if info.end.is_none() => line.push_str(&format!(
            "; {o} starts no new task (its running tasks finish: stop them with the engine, `argo stop {}`)",
            o.workflow
        )),
        _ => line.push_str(if alive {
            "; its driver stops within a few seconds"
        } else {
            "; its driver is not running"
        }),
    }
    // The engines the run used (a record of older flowlib does not say: its command line,
    // and Slurm whenever it is installed, as that flowlib did).
    let used = |name: &str| match &info.record.executors {
        Some(e) => e.iter().any(|x| x == name),
        None => name == "slurm" || info.record.argv.iter().any(|a| a.contains(name)),
    };
    let slurm = match used("slurm") {
        true => crate::exec::slurm::cancel_run_jobs(F::NAME, &run),
        false => Ok(0),
    };
    match slurm {
        Ok(0) => {}
        Ok(n) => line.push_str(&format!("; scancel of {n} Slurm job(s)")),
        Err(e) => line.push_str(&format!("; could not cancel its Slurm jobs: {}", chain(&e))),
    }
    // Kubernetes Jobs, when the run was started with `--with kubernetes`.
    #[cfg(feature = "kubernetes")]
    if used("kubernetes") {
        match crate::exec::kubernetes::cancel_run_jobs(F::graph(), &run) {
            Ok(0) => {}
            Ok(n) => line.push_str(&format!("; deleted {n} Kubernetes Job(s)")),
            Err(e) => line.push_str(&format!(
                "; could not delete its Kubernetes Jobs: {}",
                chain(&e)
            )),
        }
    }
    // AWS Batch jobs, when the run was started with `--with batch`.
    #[cfg(feature = "batch")]
    if used("batch") {
        match crate::exec::batch::cancel_run_jobs(F::graph(), F::NAME, &run) {
            Ok(0) => {}
            Ok(n) => line.push_str(&format!("; TerminateJob of {n} AWS Batch job(s)")),
            Err(e) => line.push_str(&format!(
                "; could not terminate its AWS Batch jobs: {}",
                chain(&e)
            )),
        }
    }
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

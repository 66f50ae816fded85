//! `run`: run the flow.

use std::process::ExitCode;

use clap::{ArgMatches, Command};

use crate::cli::args::{open, prepare, with_run_args};
use crate::error::Result;
use crate::flow::Flow;
use crate::meta::RunStatus;
use crate::run::{self as runtime, RunSummary};
use crate::store::OpenMode;

pub(super) fn command<F: Flow>() -> Command {
    with_run_args::<F>(Command::new("run").about("Run the flow"), true)
}

pub(super) fn exec<F: Flow>(
    m: &ArgMatches,
    sub: &ArgMatches,
    argv: Vec<String>,
) -> Result<ExitCode> {
    let (opts, executor) = prepare::<F>(sub, argv)?;
    let state = runtime::initial_state::<F>(&opts.params)?;
    let ds = open(m, OpenMode::Create)?;
    let summary = runtime::run_prepared::<F>(&ds, &opts, executor, state)?;
    Ok(finish(&summary))
}

/// Print the summary of a run that ended (`run` or `resume`); exit 0 only if it succeeded.
pub(super) fn finish(summary: &RunSummary) -> ExitCode {
    eprint!("{}", summary.render_text());
    if summary.status == RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

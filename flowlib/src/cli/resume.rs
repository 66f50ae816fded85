//! `resume`: continue a run, reusing its committed tasks.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::cli::args::{open, prepare, with_run_args};
use crate::error::Result;
use crate::flow::Flow;
use crate::run::{self as runtime, ResumeOptions};
use crate::store::OpenMode;

pub(super) fn command<F: Flow>() -> Command {
    let cmd = Command::new("resume")
        .about("Resume a run: reuse its committed tasks, run the failed or missing ones (or STEP and everything after it)")
        .arg(Arg::new("step").value_name("STEP").help("Re-run this step and everything downstream of it"))
        .arg(
            Arg::new("origin")
                .long("origin")
                .value_name("RUN")
                .help("The run to resume [default: the latest run of this flow]"),
        );
    with_run_args::<F>(cmd, false)
}

pub(super) fn exec<F: Flow>(
    m: &ArgMatches,
    sub: &ArgMatches,
    argv: Vec<String>,
) -> Result<ExitCode> {
    let ropts = ResumeOptions {
        origin: sub.get_one::<String>("origin").cloned(),
        step: sub.get_one::<String>("step").cloned(),
    };
    let (opts, executor) = prepare::<F>(sub, argv)?;
    let ds = open(m, OpenMode::Existing)?;
    let summary = runtime::resume_prepared::<F>(&ds, &opts, &ropts, executor)?;
    Ok(super::run::finish(&summary))
}

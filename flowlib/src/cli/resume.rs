//! `resume`: continue a run, reusing its committed tasks.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::cli::args::{limit_args, open, param_args, run_options};
use crate::error::Result;
use crate::flow::Flow;
use crate::run::{self as runtime, ResumeOptions};
use crate::store::OpenMode;

pub(super) fn command<F: Flow>() -> Command {
    Command::new("resume")
        .about("Resume a run: reuse its committed tasks, run the failed or missing ones (or STEP and everything after it)")
        .arg(Arg::new("step").value_name("STEP").help("Re-run this step and everything downstream of it"))
        .arg(
            Arg::new("origin")
                .long("origin")
                .value_name("RUN")
                .help("The run to resume [default: the latest run of this flow]"),
        )
        .args(param_args::<F>(false))
        .args(limit_args())
}

pub(super) fn exec<F: Flow>(
    m: &ArgMatches,
    sub: &ArgMatches,
    argv: Vec<String>,
) -> Result<ExitCode> {
    let opts = run_options::<F>(sub, argv)?;
    let executor = runtime::prepare::<F>(&opts)?;
    let ds = open(m, OpenMode::Existing)?;
    let ropts = ResumeOptions {
        origin: sub.get_one::<String>("origin").cloned(),
        step: sub.get_one::<String>("step").cloned(),
    };
    let summary = runtime::resume_prepared::<F>(&ds, &opts, &ropts, executor)?;
    Ok(super::run::finish(&summary))
}

//! `runs`: the runs of the flow with their status and times.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::cli::args::{format_arg, open, print_report};
use crate::error::Result;
use crate::flow::Flow;
use crate::report::RunsReport;
use crate::store::OpenMode;

pub(super) fn command() -> Command {
    Command::new("runs")
        .about("List runs with their status and times")
        .arg(
            Arg::new("limit")
                .long("limit")
                .short('n')
                .value_parser(clap::value_parser!(usize))
                .help("Show only the last N runs"),
        )
        .arg(format_arg())
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let report = RunsReport::build(&ds, F::NAME, sub.get_one::<usize>("limit").copied())?;
    print_report(sub, &report, RunsReport::render_text);
    Ok(ExitCode::SUCCESS)
}

//! `verify`: every committed artifact exists and hashes to its address; `--repair` moves
//! corrupt blobs to quarantine so that the next run or resume writes them again.

use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::cli::args::open;
use crate::error::Result;
use crate::flow::Flow;
use crate::store::OpenMode;

pub(super) fn command() -> Command {
    Command::new("verify")
        .about("Check that every committed artifact exists and hashes to its address")
        .arg(
            Arg::new("run")
                .long("run")
                .value_name("RUN")
                .help("Only this run (`latest`: the latest run)"),
        )
        .arg(
            Arg::new("repair")
                .long("repair")
                .action(ArgAction::SetTrue)
                .help("Move every corrupt blob found to quarantine/, so that the next run or resume that produces it stores it again"),
        )
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let run = match sub.get_one::<String>("run") {
        Some(id) => Some(ds.resolve_run(F::NAME, id)?),
        None => None,
    };
    let mut report = crate::maintenance::verify(&ds, Some(F::NAME), run.as_deref())?;
    if sub.get_flag("repair") {
        report.repair(&ds)?;
    }
    print!("{}", report.render_text());
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

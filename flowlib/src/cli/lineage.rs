//! `lineage`: where a value came from and which runs read it.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::cli::args::{format_arg, open, print_report};
use crate::client::{lineage, resolve_value, Lineage};
use crate::error::Result;
use crate::flow::Flow;
use crate::store::OpenMode;

pub(super) fn command() -> Command {
    Command::new("lineage")
        .about("Which tasks produced a value, from which inputs and parameters, and which runs read it")
        .arg(
            Arg::new("value")
                .value_name("DIGEST|RUN/STEP[/INDEX]/ARTIFACT")
                .required(true)
                .help("A digest (sha256:…), or an artifact of a task"),
        )
        .arg(format_arg())
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let value = sub.get_one::<String>("value").expect("required");
    let digest = resolve_value(&ds, F::NAME, value)?;
    let report = lineage(&ds, F::NAME, &digest)?;
    print_report(sub, &report, Lineage::render_text);
    Ok(ExitCode::SUCCESS)
}

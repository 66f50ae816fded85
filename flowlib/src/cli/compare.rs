//! `compare`: runs side by side — parameters, final metrics, tags and the digests of their
//! end state's artifacts — with the lines that differ marked.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::cli::args::{format_arg, open, print_report};
use crate::client::RunRow;
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::report::CompareReport;
use crate::store::OpenMode;

pub(super) fn command() -> Command {
    Command::new("compare")
        .about("Compare runs: parameters, final metrics, tags and artifact digests side by side")
        .arg(
            Arg::new("runs")
                .value_name("RUN")
                .num_args(2..)
                .required(true)
                .help("Two or more runs (`latest` too)"),
        )
        .arg(format_arg())
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let end = F::graph()
        .steps()
        .iter()
        .find(|s| s.is_end())
        .map(|s| s.name)
        .ok_or_else(|| Error::internal("the flow has no end step"))?;
    let mut rows = Vec::new();
    let mut artifacts = Vec::new();
    for id in sub.get_many::<String>("runs").into_iter().flatten() {
        let run = crate::meta::tags::existing_run(&ds, F::NAME, id)?;
        let info = ds.run_info(F::NAME, &run)?;
        rows.push(RunRow::read(&ds, F::NAME, &info)?);
        let digests: BTreeMap<String, String> = match ds.successful_task(F::NAME, &run, end) {
            Ok(a) => a
                .manifest
                .map(|m| {
                    m.artifacts
                        .into_iter()
                        .map(|(k, b)| (format!("{end}/{k}"), b.digest.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            Err(Error::NotFound(_)) => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        artifacts.push(digests);
    }
    let report = CompareReport::new(&rows, &artifacts);
    print_report(sub, &report, CompareReport::render_text);
    Ok(ExitCode::SUCCESS)
}

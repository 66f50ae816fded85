//! `dump RUN[/STEP[/TASK]] [ARTIFACT]`: a run, a step, a task, or one artifact.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::cli::args::{format_arg, open, print_report};
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::report::DumpReport;
use crate::store::{Datastore, OpenMode};

pub(super) fn command() -> Command {
    Command::new("dump")
        .about("Show a run, a step, a task, or one artifact")
        .arg(
            Arg::new("target")
                .required(true)
                .value_name("RUN[/STEP[/TASK]]")
                .help("`latest` names the latest run"),
        )
        .arg(Arg::new("artifact").value_name("ARTIFACT"))
        .arg(format_arg())
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let target = sub.get_one::<String>("target").expect("required");
    let artifact = sub.get_one::<String>("artifact").map(String::as_str);
    let (run_id, path) = parse_target::<F>(&ds, target)?;
    let report = DumpReport::build::<F>(&ds, &run_id, path, artifact)?;
    print_report(sub, &report, DumpReport::render_text);
    Ok(ExitCode::SUCCESS)
}

/// `RUN[/STEP[/INDEX]]` as the run id (`latest` resolved) and the `STEP[/INDEX]` part.
fn parse_target<'t, F: Flow>(ds: &Datastore, target: &'t str) -> Result<(String, Option<&'t str>)> {
    if target.split('/').any(|p| p == ".." || p == ".") {
        return Err(Error::invalid(format!(
            "invalid run id in `{}`: use <run>[/<step>[/<index>]], without `.` or `..` parts",
            target.escape_default()
        )));
    }
    let (run_id, path) = match target.split_once('/') {
        Some((r, p)) => (r, Some(p)),
        None => (target, None),
    };
    let run_id = ds.resolve_run(F::NAME, run_id)?;
    Ok((run_id, path))
}

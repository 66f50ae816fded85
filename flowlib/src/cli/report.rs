//! `report`: write a run's self-contained HTML report.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::cli::args::open;
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::report::html::RunReport;
use crate::store::OpenMode;

pub(super) fn command() -> Command {
    Command::new("report")
        .about("Write a run's HTML report: graph, timeline, tasks, cards (one file, no network needed)")
        .arg(
            Arg::new("run")
                .required(true)
                .value_name("RUN")
                .help("The run: its id, or `latest`"),
        )
        .arg(
            Arg::new("task")
                .long("task")
                .value_name("STEP[/INDEX]")
                .help("List only this step's or task's attempts (all their cards embedded)"),
        )
        .arg(
            Arg::new("output")
                .long("output")
                .short('o')
                .value_name("FILE")
                .help("Where to write it [default: <run>.html in the current directory; `-` for stdout]"),
        )
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let run = sub.get_one::<String>("run").expect("required");
    let run = ds.resolve_run(F::NAME, run)?;
    let only = sub.get_one::<String>("task").map(String::as_str);
    let report = RunReport::build(&ds, F::NAME, &run, Some(F::graph()), only)?;
    let html = report.render_html();
    let out = sub
        .get_one::<String>("output")
        .cloned()
        .unwrap_or_else(|| format!("{run}.html"));
    if out == "-" {
        use std::io::Write;
        return match std::io::stdout().lock().write_all(html.as_bytes()) {
            // `report latest -o - | head`: the reader had enough.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::invalid(format!(
                "cannot write the report to stdout: {e}"
            ))),
            _ => Ok(ExitCode::SUCCESS),
        };
    }
    std::fs::write(&out, html.as_bytes()).map_err(|e| {
        Error::invalid(format!(
            "cannot write the report of run {run} to {out}: {e}"
        ))
    })?;
    eprintln!(
        "flowlib: wrote the report of run {run} to {out} ({} KiB)",
        html.len().div_ceil(1024)
    );
    Ok(ExitCode::SUCCESS)
}

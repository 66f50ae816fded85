//! `runs`: the runs of the flow with their status and times; with `--where` or
//! `--order-by`, a search over parameters, final metrics and tags (`client::search`).

use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::cli::args::{open, print_report};
use crate::client::{search, Query};
use crate::error::Result;
use crate::flow::Flow;
use crate::report::{RunsReport, SearchReport};
use crate::store::OpenMode;

pub(super) fn command() -> Command {
    Command::new("runs")
        .about("List runs with their status and times, or search them (--where, --order-by)")
        .arg(
            Arg::new("limit")
                .long("limit")
                .short('n')
                .value_parser(clap::value_parser!(usize))
                .help("Show only the last N runs (with --where/--order-by: the first N found)"),
        )
        .arg(
            Arg::new("where")
                .long("where")
                .value_name("FILTER")
                .help("Only runs passing FILTER: 'params.lr < 0.01 and metrics.val_loss < 0.4 and tags.team = \"vision\"'"),
        )
        .arg(
            Arg::new("order-by")
                .long("order-by")
                .value_name("FIELD")
                .help("Order by a field: params.<name>, metrics.<name>[.min|.max|.count], tags.<key>, run.started"),
        )
        .arg(
            Arg::new("desc")
                .long("desc")
                .action(ArgAction::SetTrue)
                .requires("order-by")
                .help("Descending order"),
        )
        .arg(
            Arg::new("format")
                .long("format")
                .value_parser(["text", "table", "json", "csv"])
                .default_value("text")
                .help("Output format: a table for people (text = table), JSON or CSV for tools"),
        )
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let filter = sub.get_one::<String>("where");
    let order = sub.get_one::<String>("order-by");
    let format = sub.get_one::<String>("format").map(String::as_str);
    // Bad input is refused before the datastore is opened.
    if filter.is_none() && order.is_none() && format != Some("csv") {
        let ds = open(m, OpenMode::Existing)?;
        let report = RunsReport::build(&ds, F::NAME, sub.get_one::<usize>("limit").copied())?;
        print_report(sub, &report, RunsReport::render_text);
        return Ok(ExitCode::SUCCESS);
    }
    let mut query = Query::parse(filter.map(String::as_str).unwrap_or(""))?;
    if let Some(f) = order {
        query = query.order_by(f, sub.get_flag("desc"))?;
    }
    if let Some(n) = sub.get_one::<usize>("limit") {
        query = query.limit(*n);
    }
    let ds = open(m, OpenMode::Existing)?;
    let report = SearchReport::new(&query, search(&ds, F::NAME, &query)?);
    match format {
        Some("csv") => print!("{}", report.render_csv()),
        _ => print_report(sub, &report, SearchReport::render_text),
    }
    Ok(ExitCode::SUCCESS)
}

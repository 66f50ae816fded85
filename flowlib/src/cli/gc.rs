//! `gc`: delete what no committed run references.

use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::cli::args::{open, parse_duration};
use crate::error::Result;
use crate::store::OpenMode;

pub(super) fn command() -> Command {
    Command::new("gc")
        .about("Delete blobs and records that no committed run references")
        .arg(
            Arg::new("dry-run")
                .long("dry-run")
                .action(ArgAction::SetTrue)
                .help("List what would be deleted"),
        )
        .arg(
            Arg::new("grace")
                .long("grace")
                .value_name("DURATION")
                .default_value("24h")
                .help("Keep anything younger than this (protects runs in progress)"),
        )
}

pub(super) fn exec(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let grace = parse_duration(sub.get_one::<String>("grace").expect("has default"))?;
    let report = crate::maintenance::gc(&ds, sub.get_flag("dry-run"), grace)?;
    print!("{}", report.render_text());
    Ok(ExitCode::SUCCESS)
}

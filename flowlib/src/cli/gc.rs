//! `gc`: delete what no committed run references.

use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::cli::args::{open, parse_duration};
use crate::error::{Error, Result};
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
        .arg(
            Arg::new("cache-max-age")
                .long("cache-max-age")
                .value_name("DURATION")
                .help("Delete cache entries older than this first (they stop keeping their tasks' artifacts) [default: keep all]"),
        )
        .arg(
            Arg::new("cache-keep")
                .long("cache-keep")
                .value_name("N")
                .value_parser(clap::value_parser!(usize))
                .help("Keep only the N newest cache entries of each #[cache] step [default: keep all]"),
        )
        .arg(
            Arg::new("force")
                .long("force")
                .action(ArgAction::SetTrue)
                .help(
                    "Allow a grace period below the safe minimum (only when no run is in progress)",
                ),
        )
}

/// Below this, a run in progress could lose a blob it is about to commit: a process trusts
/// its memory that a blob exists for up to `KNOWN_TTL` before it refreshes the blob.
fn min_grace() -> std::time::Duration {
    2 * crate::store::KNOWN_TTL
}

pub(super) fn exec(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let text = sub.get_one::<String>("grace").expect("has default");
    let grace = parse_duration(text)?;
    if grace < min_grace() && !sub.get_flag("force") {
        return Err(Error::invalid(format!(
            "--grace {text} is below the safe minimum of {}: a run in progress could lose blobs it is about to commit; add --force if no run is in progress",
            crate::flow::graph::format_ms(min_grace().as_millis() as u64)
        )));
    }
    let max_age = match sub.get_one::<String>("cache-max-age") {
        Some(t) => Some(parse_duration(t)?),
        None => None,
    };
    let policy =
        crate::maintenance::CachePolicy::new(max_age, sub.get_one::<usize>("cache-keep").copied());
    let dry_run = sub.get_flag("dry-run");
    let pruned = crate::maintenance::prune_cache(&ds, policy, dry_run)?;
    if !pruned.is_empty() {
        println!(
            "{} {} cache entr{}",
            if dry_run { "would delete" } else { "deleted" },
            pruned.len(),
            if pruned.len() == 1 { "y" } else { "ies" }
        );
    }
    let report = crate::maintenance::gc(&ds, dry_run, grace)?;
    print!("{}", report.render_text());
    Ok(ExitCode::SUCCESS)
}

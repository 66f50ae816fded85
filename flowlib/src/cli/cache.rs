//! `cache list|show|clear [STEP]`: the cross-run cache of `#[cache]` steps.

use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::cli::args::open;
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::meta::cache;
use crate::store::OpenMode;

pub(super) fn command() -> Command {
    let step = || {
        Arg::new("step")
            .value_name("STEP")
            .help("Only this step's entries")
    };
    Command::new("cache")
        .about("The cache of #[cache] steps: list, show or clear its entries")
        .subcommand_required(true)
        .subcommand(
            Command::new("list")
                .about("List cache entries: key, step, the task that computed it, when")
                .arg(step())
                .arg(
                    Arg::new("json")
                        .long("json")
                        .action(ArgAction::SetTrue)
                        .help("One JSON object per entry"),
                ),
        )
        .subcommand(
            Command::new("show")
                .about("Show what went into one cache key")
                .arg(
                    Arg::new("key")
                        .required(true)
                        .value_name("KEY")
                        .help("The key, or at least 6 of its first hex digits"),
                ),
        )
        .subcommand(
            Command::new("clear")
                .about("Delete cache entries (runs and artifacts stay; the next run recomputes)")
                .arg(step()),
        )
}

/// A step name given on the command line must be a `#[cache]` step of the flow.
fn step_of<F: Flow>(m: &ArgMatches) -> Result<Option<&str>> {
    let Some(name) = m.get_one::<String>("step") else {
        return Ok(None);
    };
    match F::graph().step(name) {
        None => Err(Error::invalid(format!(
            "flow {} has no step `{name}`",
            F::NAME
        ))),
        Some(s) if s.cache.is_none() => Err(Error::invalid(format!(
            "step `{name}` is not a #[cache] step: it has no cache entries"
        ))),
        Some(s) => Ok(Some(s.name)),
    }
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    match sub.subcommand() {
        Some(("list", a)) => {
            let step = step_of::<F>(a)?;
            let ds = open(m, OpenMode::Existing)?;
            let (entries, bad) = cache::entries(&ds, F::NAME, step)?;
            if a.get_flag("json") {
                for e in &entries {
                    println!("{}", serde_json::to_string(e).expect("entries serialize"));
                }
            } else if entries.is_empty() {
                println!("no cache entries for {}", step.unwrap_or(F::NAME));
            } else {
                println!("{:<14} {:<14} {:<32} created", "key", "step", "computed by");
                for e in &entries {
                    println!(
                        "{:<14} {:<14} {:<32} {}",
                        e.key.short(),
                        e.step,
                        format!("run {} task {}", e.source.run, e.source.task_id()),
                        e.created
                    );
                }
            }
            for (path, why) in &bad {
                eprintln!("flowlib: unreadable cache entry {path}: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(("show", a)) => {
            let ds = open(m, OpenMode::Existing)?;
            let e = cache::entry(&ds, F::NAME, a.get_one::<String>("key").expect("required"))?;
            println!("key       {}", e.key);
            println!("step      {}", e.step);
            println!(
                "computed  run {} task {} attempt {}",
                e.source.run,
                e.source.task_id(),
                e.source.attempt
            );
            println!("manifest  {}", e.manifest.digest);
            println!("created   {} by {}", e.created, e.writer);
            println!("parts:");
            for (k, v) in &e.parts {
                println!("  {k:<16} {v}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(("clear", a)) => {
            let step = step_of::<F>(a)?;
            let ds = open(m, OpenMode::Existing)?;
            let n = cache::clear(&ds, F::NAME, step)?;
            println!(
                "cleared {n} cache entr{} of {}",
                if n == 1 { "y" } else { "ies" },
                step.unwrap_or(F::NAME)
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => unreachable!("clap requires a subcommand"),
    }
}

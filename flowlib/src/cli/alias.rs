//! `alias`: named pointers at artifacts or runs (a model registry), moved by create-only
//! numbered records.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::cli::args::{format_arg, open, print_report};
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::meta::aliases::{self, AliasRecord};
use crate::meta::tags::{self, parse_assignment, TagEvent, TagTarget};
use crate::report::{AliasMove, AliasReport};
use crate::store::{Datastore, OpenMode};

fn name_arg() -> Arg {
    Arg::new("name")
        .value_name("NAME")
        .required(true)
        .help("The alias (`champion`)")
}

pub(super) fn command() -> Command {
    Command::new("alias")
        .about("Aliases: set, get, list and the history of named pointers at artifacts or runs")
        .subcommand_required(true)
        .subcommand(
            Command::new("set")
                .about("Point NAME at <run>/<step>[/<index>]/<artifact>, or at a run's end state")
                .arg(name_arg())
                .arg(
                    Arg::new("target")
                        .value_name("TARGET")
                        .required(true)
                        .help("<run>/<step>[/<index>]/<artifact>, or <run>"),
                ),
        )
        .subcommand(
            Command::new("get")
                .about("Where NAME points now")
                .arg(name_arg())
                .arg(format_arg()),
        )
        .subcommand(
            Command::new("list")
                .about("Every alias and where it points")
                .arg(format_arg()),
        )
        .subcommand(
            Command::new("history")
                .about("Every move of NAME")
                .arg(name_arg())
                .arg(format_arg()),
        )
        .subcommand(
            Command::new("tag")
                .about("Tag what NAME points at now")
                .arg(name_arg())
                .arg(
                    Arg::new("tags")
                        .value_name("KEY=VALUE")
                        .num_args(1..)
                        .required(true),
                )
                .arg(format_arg()),
        )
}

/// The tag target of what `record` points at.
fn target_of(record: &AliasRecord) -> TagTarget {
    match &record.artifact {
        Some(a) => TagTarget::Artifact {
            run: record.task.run.clone(),
            step: record.task.step.clone(),
            index: record.task.index.clone(),
            artifact: a.clone(),
        },
        None => TagTarget::Run {
            run: record.task.run.clone(),
        },
    }
}

fn with_tags(ds: &Datastore, flow: &str, record: AliasRecord) -> Result<AliasMove> {
    let tags = tags::read(ds, flow, &target_of(&record))?.tags;
    Ok(AliasMove { record, tags })
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let flow = F::NAME;
    let (cmd, args) = sub.subcommand().expect("clap requires a subcommand");
    let name = args
        .try_get_one::<String>("name")
        .ok()
        .flatten()
        .map(String::as_str)
        .unwrap_or("");
    let moves: Vec<AliasRecord> = match cmd {
        "set" => {
            let target = args.get_one::<String>("target").expect("required");
            let end = F::graph()
                .steps()
                .iter()
                .find(|s| s.is_end())
                .map(|s| s.name)
                .ok_or_else(|| Error::internal("the flow has no end step"))?;
            let r = ds.set_alias(flow, name, target, end)?;
            println!("{name} #{} -> {}", r.number, r.target());
            return Ok(ExitCode::SUCCESS);
        }
        "get" => {
            let r = aliases::current(&ds, flow, name)?;
            aliases::check_target(&ds, flow, &r)?;
            vec![r]
        }
        "list" => aliases::list(&ds, flow)?,
        "history" => ds.alias_history(flow, name)?,
        "tag" => {
            let r = aliases::current(&ds, flow, name)?;
            aliases::check_target(&ds, flow, &r)?;
            let set: BTreeMap<String, String> = args
                .get_many::<String>("tags")
                .into_iter()
                .flatten()
                .map(|t| parse_assignment(t))
                .collect::<Result<_>>()?;
            tags::add(
                &ds,
                flow,
                &target_of(&r),
                &TagEvent::new(set, Vec::new(), None),
            )?;
            vec![r]
        }
        _ => unreachable!("clap checks the subcommand"),
    };
    let report = AliasReport {
        moves: moves
            .into_iter()
            .map(|r| with_tags(&ds, flow, r))
            .collect::<Result<_>>()?,
    };
    print_report(args, &report, AliasReport::render_text);
    Ok(ExitCode::SUCCESS)
}

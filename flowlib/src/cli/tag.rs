//! `tag` and `untag`: tags and notes on runs and artifacts (create-only events).

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::cli::args::{format_arg, open, print_report};
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::meta::aliases::TargetSpec;
use crate::meta::tags::{self, existing_run, parse_assignment, TagEvent, TagTarget};
use crate::report::TagsReport;
use crate::store::{Datastore, OpenMode};

fn target_arg() -> Arg {
    Arg::new("target")
        .value_name("RUN[/TASK/ARTIFACT]")
        .required(true)
        .help(
            "A run (`latest` too), or one artifact of one task: <run>/<step>[/<index>]/<artifact>",
        )
}

pub(super) fn command() -> Command {
    Command::new("tag")
        .about("Tag a run or an artifact (key=value), add a note, or show its tags and notes")
        .arg(target_arg())
        .arg(
            Arg::new("tags")
                .value_name("KEY=VALUE")
                .num_args(0..)
                .help("Tags to set"),
        )
        .arg(
            Arg::new("note")
                .long("note")
                .value_name("TEXT")
                .help("Add a note"),
        )
        .arg(format_arg())
}

pub(super) fn untag_command() -> Command {
    Command::new("untag")
        .about("Remove tags from a run or an artifact")
        .arg(target_arg())
        .arg(
            Arg::new("keys")
                .value_name("KEY")
                .num_args(1..)
                .required(true)
                .action(ArgAction::Append)
                .help("Tag keys to remove"),
        )
}

/// The tag target `s` names, checked: the run exists, and an artifact's task committed.
pub(super) fn resolve_target(ds: &Datastore, flow: &str, s: &str) -> Result<TagTarget> {
    let spec = TargetSpec::parse(s)?;
    let run = existing_run(ds, flow, &spec.run)?;
    Ok(match spec.task {
        None => TagTarget::Run { run },
        Some((step, index, artifact)) => {
            let id = crate::meta::task_id(&step, &index);
            let a = ds.successful_task(flow, &run, &id)?;
            let has = a
                .manifest
                .as_ref()
                .is_some_and(|m| m.artifacts.contains_key(&artifact));
            if !has {
                return Err(Error::not_found(format!(
                    "task {id} of run {run} has no artifact `{artifact}`"
                )));
            }
            TagTarget::Artifact {
                run,
                step,
                index,
                artifact,
            }
        }
    })
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let name = sub.get_one::<String>("target").expect("required");
    let set: BTreeMap<String, String> = sub
        .get_many::<String>("tags")
        .into_iter()
        .flatten()
        .map(|t| parse_assignment(t))
        .collect::<Result<_>>()?;
    let note = sub.get_one::<String>("note").cloned();
    let target = resolve_target(&ds, F::NAME, name)?;
    if !set.is_empty() || note.is_some() {
        tags::add(&ds, F::NAME, &target, &TagEvent::new(set, Vec::new(), note))?;
    }
    let report = TagsReport {
        target: name.clone(),
        tags: tags::read(&ds, F::NAME, &target)?,
    };
    print_report(sub, &report, TagsReport::render_text);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn untag<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let name = sub.get_one::<String>("target").expect("required");
    let keys: Vec<String> = sub
        .get_many::<String>("keys")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let target = resolve_target(&ds, F::NAME, name)?;
    let current = tags::read(&ds, F::NAME, &target)?;
    if let Some(k) = keys.iter().find(|k| !current.tags.contains_key(*k)) {
        return Err(Error::not_found(format!("{name} has no tag `{k}`")));
    }
    tags::add(
        &ds,
        F::NAME,
        &target,
        &TagEvent::new(BTreeMap::new(), keys, None),
    )?;
    let report = TagsReport {
        target: name.clone(),
        tags: tags::read(&ds, F::NAME, &target)?,
    };
    print!("{}", report.render_text());
    Ok(ExitCode::SUCCESS)
}

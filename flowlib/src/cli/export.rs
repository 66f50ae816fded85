//! `export argo`: write the flow as an Argo Workflows `WorkflowTemplate`; and the two
//! hidden commands the exported workflow runs around the steps: `argo-init` (create the
//! run record) and `argo-end` (write the end record).

use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::cli::args::{open, param_args, params_of};
use crate::error::{Error, Result};
use crate::export::{self, ArgoOptions};
use crate::flow::Flow;
use crate::meta::Orchestrator;
use crate::store::{OpenMode, DATASTORE_ENV};

pub(super) fn command() -> Command {
    Command::new("export")
        .about("Export the flow to a production scheduler (Argo Workflows)")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("argo")
                .about("Write an Argo Workflows WorkflowTemplate that runs the flow with no flowlib driver")
                .arg(
                    Arg::new("image")
                        .long("image")
                        .value_name("IMAGE")
                        .help("Container image holding the flow binary [default: <flow-name>:latest]"),
                )
                .arg(
                    Arg::new("exe")
                        .long("exe")
                        .value_name("PATH")
                        .default_value("/flow")
                        .help("Path of the flow binary in the image"),
                )
                .arg(
                    Arg::new("name")
                        .long("name")
                        .value_name("NAME")
                        .help("Name of the WorkflowTemplate [default: the flow name in kebab case]"),
                )
                .arg(
                    Arg::new("datastore-url")
                        .long("datastore-url")
                        .value_name("URL")
                        .help(format!("Datastore the pods use (s3://, gs://, az://, or a path on a shared volume) [default: --datastore, else {DATASTORE_ENV}]")),
                )
                .arg(
                    Arg::new("secret")
                        .long("secret")
                        .value_name("SECRET")
                        .action(ArgAction::Append)
                        .help("Kubernetes secret whose keys become the containers' environment (the datastore's credentials); repeatable"),
                )
                .arg(
                    Arg::new("service-account")
                        .long("service-account")
                        .value_name("NAME")
                        .help("Service account the pods run as"),
                )
                .arg(
                    Arg::new("format")
                        .long("format")
                        .value_parser(["yaml", "json"])
                        .default_value("yaml")
                        .help("Output format"),
                )
                .arg(
                    Arg::new("output")
                        .long("output")
                        .short('o')
                        .value_name("FILE")
                        .help("Write to FILE instead of stdout"),
                ),
        )
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let Some(("argo", a)) = sub.subcommand() else {
        unreachable!("clap requires a subcommand");
    };
    let datastore = a
        .get_one::<String>("datastore-url")
        .or_else(|| m.get_one::<String>("datastore"))
        .cloned()
        .or_else(|| std::env::var(DATASTORE_ENV).ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "export argo needs the datastore every pod uses: --datastore-url s3://bucket/prefix (or --datastore, or {DATASTORE_ENV})"
            ))
        })?;
    let mut opts =
        ArgoOptions::new(datastore).with_exe(a.get_one::<String>("exe").expect("default"));
    if let Some(i) = a.get_one::<String>("image") {
        opts = opts.with_image(i);
    }
    if let Some(n) = a.get_one::<String>("name") {
        opts = opts.with_name(n);
    }
    for s in a.get_many::<String>("secret").into_iter().flatten() {
        opts = opts.with_secret(s);
    }
    if let Some(sa) = a.get_one::<String>("service-account") {
        opts = opts.with_service_account(sa);
    }
    let doc = export::workflow_template::<F>(&opts)?;
    let text = match a.get_one::<String>("format").map(String::as_str) {
        Some("json") => {
            let mut t = serde_json::to_string_pretty(&doc).expect("JSON values serialize");
            t.push('\n');
            t
        }
        _ => export::to_yaml(&doc),
    };
    match a.get_one::<String>("output") {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Error::io(format!("writing the exported workflow to {path}"), e))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `argo-init` (hidden): the exported workflow's first task.
pub(super) fn init_command<F: Flow>() -> Command {
    Command::new("argo-init")
        .about("Create the run record of a run an Argo workflow drives (what `export argo` runs first)")
        .hide(true)
        .arg(
            Arg::new("workflow")
                .long("workflow")
                .required(true)
                .value_name("NAME"),
        )
        .arg(Arg::new("uid").long("uid").required(true).value_name("UID"))
        .arg(
            Arg::new("graph")
                .long("graph")
                .value_name("DIGEST")
                .help("Refuse to start unless this binary's graph has this digest (the one the template was exported from)"),
        )
        .arg(
            Arg::new("run-id-file")
                .long("run-id-file")
                .value_name("PATH")
                .help("Also write the new run's id to PATH (an Argo output parameter)"),
        )
        .args(param_args::<F>(true))
}

pub(super) fn init<F: Flow>(
    m: &ArgMatches,
    sub: &ArgMatches,
    argv: Vec<String>,
) -> Result<ExitCode> {
    if let Some(want) = sub.get_one::<String>("graph") {
        let have = F::graph().digest().to_string();
        if *want != have {
            return Err(Error::invalid(format!(
                "argo-init: the template was exported from flow {} with graph {want}, but this binary's graph is {have}: the image holds another build of the flow; export the template again from the image's binary",
                F::NAME
            )));
        }
    }
    let ds = open(m, OpenMode::Create)?;
    let orchestrator = Orchestrator::argo(
        sub.get_one::<String>("workflow").expect("required"),
        sub.get_one::<String>("uid").expect("required"),
    );
    let record =
        crate::run::start_orchestrated::<F>(&ds, &params_of::<F>(sub), orchestrator, argv)?;
    if let Some(path) = sub.get_one::<String>("run-id-file") {
        std::fs::write(path, &record.run_id)
            .map_err(|e| Error::io(format!("writing run id {} to {path}", record.run_id), e))?;
    }
    println!("{}", record.run_id);
    eprintln!(
        "flowlib: run {} of {} created for argo workflow {}",
        record.run_id,
        F::NAME,
        sub.get_one::<String>("workflow").expect("required")
    );
    Ok(ExitCode::SUCCESS)
}

/// `argo-end` (hidden): the exported workflow's exit handler.
pub(super) fn end_command() -> Command {
    Command::new("argo-end")
        .about("Write the end record of a run an Argo workflow drove (its exit handler), from the run's commit records")
        .hide(true)
        .arg(Arg::new("run").long("run").required(true).value_name("RUN"))
        .arg(
            Arg::new("status")
                .long("status")
                .value_name("STATUS")
                .help("The workflow's status as Argo reports it ({{workflow.status}})"),
        )
        .arg(
            Arg::new("failures")
                .long("failures")
                .value_name("JSON")
                .help("The workflow's failed nodes as Argo reports them ({{workflow.failures}})"),
        )
}

pub(super) fn end<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let run = sub.get_one::<String>("run").expect("required");
    if run.starts_with("{{") {
        return Err(Error::invalid(format!(
            "argo-end: the run id is the unsubstituted {run}: the workflow's flowlib-init task never created a run (see its log)"
        )));
    }
    let status = sub.get_one::<String>("status").map(String::as_str);
    let failures = sub
        .get_one::<String>("failures")
        .map(|j| engine_failures(j))
        .unwrap_or_default();
    let end = crate::run::end_orchestrated::<F>(&ds, run, status, &failures)?;
    eprintln!("flowlib: run {run} of {} ended {}", F::NAME, end.status);
    for (task, error) in &end.failures {
        eprintln!("  {task}: {error}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Argo's `{{workflow.failures}}` (a JSON list of failed nodes: `displayName`, `message`,
/// ...) as (node, message) pairs. Argo substitutes it quoted, as a JSON string holding the
/// list (`strconv.Quote` in its controller), and `null` when nothing failed; the list
/// itself is taken too. Anything else is no failures: the store still names every failed
/// task.
fn engine_failures(json: &str) -> Vec<(String, String)> {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    if let serde_json::Value::String(inner) = &v {
        v = serde_json::from_str(inner).unwrap_or_default();
    }
    let serde_json::Value::Array(nodes) = v else {
        return Vec::new();
    };
    // Only what the store cannot say: the pods of steps, with a message other than Argo's
    // generic one for a container that exited non-zero (the store has that error).
    nodes
        .iter()
        .filter(|n| {
            n["templateName"]
                .as_str()
                .is_some_and(|t| t.starts_with("step-"))
        })
        .map(|n| {
            let field = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            (field("displayName"), field("message"))
        })
        .filter(|(_, m)| !m.is_empty() && !m.starts_with("Error (exit code"))
        .collect()
}
